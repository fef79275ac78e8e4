"""Where packaged datasets live, and fetching Debian data packages into a user cache.

Lookup order for a file shipped by a Debian package: the system install (``/usr/share/...``), then the
cache ``$UNIPT_DATA_DIR`` (default ``~/.cache/unipt``) under ``debs/<package>/``. When neither has it,
``apt-get download`` fetches the ``.deb`` into a temporary folder (running ``apt-get update`` once and
retrying if that fails), ``dpkg -x`` unpacks it there, and the unpacked tree is renamed into place, so
an interrupted fetch never leaves a half-filled cache. No root is needed unless ``apt-get update`` is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from unipt.data.errors import DataFileNotFoundError, DatasetFetchError

__all__ = ["data_dir", "deb_cache_root", "ensure_deb_path", "fetch_deb"]

log = logging.getLogger(__name__)

_MARKER = ".unipt-fetch.json"


def data_dir() -> Path:
    """The cache folder: ``$UNIPT_DATA_DIR`` if set, else ``~/.cache/unipt``."""
    env = os.environ.get("UNIPT_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unipt"


def deb_cache_root(package: str) -> Path:
    """Folder the unpacked package lives in (its ``usr/share/...`` tree is below it)."""
    return data_dir() / "debs" / package


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _manual_hint(package: str) -> str:
    return (
        f"install it with `apt-get install {package}`, or run `apt-get download {package}` and "
        f"`dpkg -x <file>.deb {deb_cache_root(package)}` yourself"
    )


def _apt_download(package: str, workdir: Path) -> Path:
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise DatasetFetchError(
                f"cannot fetch {package}: `{tool}` not found (not a Debian system?); " + _manual_hint(package)
            )
    result = _run(["apt-get", "download", package], workdir)
    if result.returncode != 0:
        log.info("apt-get download %s failed; running apt-get update and retrying", package)
        update = _run(["apt-get", "update"], workdir)
        result = _run(["apt-get", "download", package], workdir)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-500:]
            upd = (
                ""
                if update.returncode == 0
                else f" (apt-get update also failed: {update.stderr.strip()[-200:]})"
            )
            raise DatasetFetchError(
                f"apt-get download {package} failed: {tail}{upd}. " + _manual_hint(package)
            )
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if not debs:
        raise DatasetFetchError(f"apt-get download {package} produced no .deb in {workdir}")
    return debs[-1]


def fetch_deb(package: str, keep: Callable[[Path], bool] | None = None) -> Path:
    """Make sure ``package`` is unpacked in the cache and return its root folder.

    Args:
        package: Debian package name.
        keep: optional filter on unpacked files (e.g. drop audio); rejected files are deleted before the
            tree is moved into the cache.
    """
    final = deb_cache_root(package)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=final.parent))
    try:
        log.warning("fetching Debian package %s into %s (one-time download)", package, final)
        deb = _apt_download(package, tmp)
        tree = tmp / "tree"
        result = _run(["dpkg", "-x", str(deb), str(tree)], tmp)
        if result.returncode != 0:
            raise DatasetFetchError(f"dpkg -x {deb.name} failed: {result.stderr.strip()[-500:]}")
        removed = 0
        if keep is not None:
            for f in tree.rglob("*"):
                if f.is_file() and not keep(f):
                    f.unlink()
                    removed += 1
        (tree / _MARKER).write_text(json.dumps({"package": package, "deb": deb.name, "pruned": removed}))
        try:
            os.rename(tree, final)
        except OSError:
            if not final.is_dir():  # lost a race only if someone else completed it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_deb_path(
    package: str,
    relative: str,
    *,
    system_root: Path = Path("/"),
    fetch: bool = True,
    keep: Callable[[Path], bool] | None = None,
) -> Path:
    """Return ``relative`` (e.g. ``usr/share/datasets/fashion-mnist``) from the system or the cache.

    Fetches the package into the cache when ``fetch`` is True and neither location has it.
    """
    for candidate in (system_root / relative, deb_cache_root(package) / relative):
        if candidate.exists():
            return candidate
    if not fetch:
        raise DataFileNotFoundError(
            system_root / relative, f"data of Debian package {package}", _manual_hint(package)
        )
    root = fetch_deb(package, keep=keep)
    path = root / relative
    if not path.exists():
        raise DatasetFetchError(f"package {package} was unpacked to {root} but has no {relative}")
    return path
