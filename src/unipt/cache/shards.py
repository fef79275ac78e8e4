"""Shard files: how a tower's ``Taps`` are laid out in safetensors, written atomically, read per record.

Tensor names in a shard (``T`` = tower name, ``R`` = records in the shard)::

    T/hidden/<j>     masked taps: [sum of stored lengths, D_j] (rows of every record, back to back)
                     other taps:  [R, ...] (CNN maps [R, C, H, W], unmasked tokens [R, L, D])
    T/lengths        [R] int64  stored rows per record (masked taps only)
    T/mask           [sum of lengths] uint8  1 = real token (masked taps stored with padding only)
    T/final          [R, D]       frozen final embedding (single_query backbones)
    T/class_index    [R] int64    class-token position
    T/decoder/<k>    [R, Q, D]    decoder taps (cross_stream backbones)

Without padding (``padding=False``) only real tokens are stored and every stored row is real; with
padding each record keeps the rows of its build batch (the padded rows are masked out at load time).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from unipt.cache.errors import CacheCorrupted
from unipt.files import atomic_write
from unipt.taps import Taps

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def pack_taps(tower: str, taps: Taps, dtype: torch.dtype, padding: bool) -> dict[str, torch.Tensor]:
    """One build batch of ``taps`` (batch size B) -> the shard tensors of its B records."""
    out: dict[str, torch.Tensor] = {}
    mask = taps.mask
    masked = mask is not None and taps.hidden[0].dim() == 3
    if masked:
        keep = mask.bool() if not padding else torch.ones_like(mask, dtype=torch.bool)
        out[f"{tower}/lengths"] = keep.sum(1).long()
        if padding:
            out[f"{tower}/mask"] = mask[keep].to(torch.uint8)
    for j, h in enumerate(taps.hidden):
        if masked:
            if h.shape[:2] != mask.shape:
                raise ValueError(f"tap {j} of tower {tower!r} has shape {tuple(h.shape)}, mask {tuple(mask.shape)}")
            out[f"{tower}/hidden/{j}"] = h[keep].to(dtype)
        else:
            out[f"{tower}/hidden/{j}"] = h.to(dtype)
    if taps.final is not None:
        out[f"{tower}/final"] = taps.final.to(dtype)
    if taps.class_index is not None:
        out[f"{tower}/class_index"] = taps.class_index.long()
    for k, d in enumerate(taps.decoder_hidden or []):
        out[f"{tower}/decoder/{k}"] = d.to(dtype)
    return {k: v.detach().cpu().contiguous() for k, v in out.items()}


def concat_packs(packs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the packs of consecutive build batches along the record / row dimension."""
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for pack in packs:
        for key, value in pack.items():
            parts[key].append(value)
    return {k: torch.cat(v) for k, v in parts.items()}


def pack_bytes(pack: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() * v.element_size() for v in pack.values())


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_shard(path: Path, tensors: dict[str, torch.Tensor]) -> tuple[str, int]:
    """Write ``tensors`` to ``path`` atomically (:func:`unipt.files.atomic_write`); returns (sha256, bytes)."""
    measured: list[tuple[str, int]] = []

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        measured.append((sha256_file(tmp), tmp.stat().st_size))

    atomic_write(path, write)
    return measured[0]


class ShardReader:
    """Memory-mapped reads of single records from one shard (opened on first use).

    ``verify=True`` checks the file's sha256 against the manifest before the first read, so a corrupted
    shard is named instead of silently feeding garbage to training.
    """

    def __init__(self, path: Path, sha256: str, size: int, towers: dict[str, dict[str, Any]], verify: bool = True):
        self.path, self.sha256, self.size, self.towers, self.verify = Path(path), sha256, size, towers, verify
        self._file: Any = None
        self._offsets: dict[str, torch.Tensor] = {}

    def check_present(self) -> None:
        """Cheap check: the file exists with the size the manifest recorded."""
        if not self.path.is_file():
            raise CacheCorrupted(f"shard {self.path} is missing; rebuild the cache (`unipt cache build` resumes)")
        size = self.path.stat().st_size
        if size != self.size:
            raise CacheCorrupted(f"shard {self.path} has {size} bytes, the manifest says {self.size}: it is "
                                 "truncated or was replaced; delete it and rerun `unipt cache build` to rebuild it")

    def check_checksum(self) -> None:
        self.check_present()
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise CacheCorrupted(f"shard {self.path} is corrupted: sha256 {actual[:16]}... != manifest "
                                 f"{self.sha256[:16]}...; delete it and rerun `unipt cache build` to rebuild it")

    def _open(self) -> Any:
        if self._file is None:
            if self.verify:
                self.check_checksum()
                self.verify = False  # once per reader (and per DataLoader worker copy made before that)
            try:
                self._file = safe_open(str(self.path), framework="pt")
            except Exception as err:  # any parse failure means a broken file
                raise CacheCorrupted(f"shard {self.path} cannot be read ({err}); rebuild it") from err
            for tower, info in self.towers.items():
                if info["masked"]:
                    lengths = self._file.get_tensor(f"{tower}/lengths")
                    self._offsets[tower] = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
        return self._file

    def record(self, local: int) -> dict[str, dict[str, Any]]:
        """Record ``local`` of this shard: ``{tower: {hidden, mask, final, class_index, decoder_hidden}}``."""
        f = self._open()
        out = {}
        for tower, info in self.towers.items():
            entry: dict[str, Any] = {"mask": None, "final": None, "class_index": None}
            if info["masked"]:
                a, b = (int(x) for x in self._offsets[tower][local: local + 2])
                entry["hidden"] = [f.get_slice(f"{tower}/hidden/{j}")[a:b] for j in range(info["num_hidden"])]
                entry["mask"] = (f.get_slice(f"{tower}/mask")[a:b] if info["padding"]
                                 else torch.ones(b - a, dtype=torch.uint8))
            else:
                entry["hidden"] = [f.get_slice(f"{tower}/hidden/{j}")[local] for j in range(info["num_hidden"])]
            if info["final"]:
                entry["final"] = f.get_slice(f"{tower}/final")[local]
            if info["class_index"]:
                entry["class_index"] = f.get_slice(f"{tower}/class_index")[local]
            entry["decoder_hidden"] = [f.get_slice(f"{tower}/decoder/{k}")[local] for k in range(info["num_decoder"])]
            out[tower] = entry
        return out

    def close(self) -> None:
        self._file, self._offsets = None, {}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the memory map themselves
        return {**self.__dict__, "_file": None, "_offsets": {}}


def layout_of(tower: str, pack: dict[str, torch.Tensor], padding: bool) -> dict[str, Any]:
    """What the reader needs to know about a tower's tensors in every shard (+ shapes for the manifest)."""
    hidden = sorted((k for k in pack if k.startswith(f"{tower}/hidden/")), key=lambda k: int(k.rsplit("/", 1)[1]))
    decoder = [k for k in pack if k.startswith(f"{tower}/decoder/")]
    masked = f"{tower}/lengths" in pack
    return {
        "masked": masked,
        "padding": padding and masked,
        "num_hidden": len(hidden),
        "num_decoder": len(decoder),
        "final": f"{tower}/final" in pack,
        "class_index": f"{tower}/class_index" in pack,
        "hidden_shapes": [["L", *pack[k].shape[1:]] if masked else list(pack[k].shape[1:]) for k in hidden],
    }
