"""Image loading: any PIL-readable file to an RGB image, transparency composited on white."""

from __future__ import annotations

from os import PathLike

from PIL import Image

from unipt.data.errors import DataFileNotFoundError, DataFormatError

__all__ = ["load_rgb", "to_rgb"]


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any PIL mode to RGB; transparent pixels (RGBA, LA, P with transparency) go onto white."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def load_rgb(path: str | PathLike[str]) -> Image.Image:
    """Open an image file fully (no lazy file handle left open) and return it as RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb(im)
    except FileNotFoundError as exc:
        raise DataFileNotFoundError(path, "image file", "check the image root / path options") from exc
    except (OSError, SyntaxError) as exc:
        raise DataFormatError(path, problem=f"unreadable image ({exc})", expected="a PNG/JPEG image") from exc
