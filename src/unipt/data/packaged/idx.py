"""Reader for the IDX array format of (Fashion-)MNIST, optionally gzip-compressed.

Header: two zero bytes, a type code, the number of dimensions ``d``; then ``d`` big-endian uint32
sizes; then the data, big-endian, C order.
"""

from __future__ import annotations

import gzip
import struct
from os import PathLike

import numpy as np

from unipt.data.errors import DataFormatError
from unipt.data.io import require_file

__all__ = ["read_idx"]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` allowed) into a read-only numpy array in native byte order."""
    p = require_file(path, "IDX array file")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataFormatError(p, problem=f"cannot decompress ({exc})", expected="a gzip'd IDX file") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataFormatError(
            p,
            record="header (bytes 0-3)",
            field="magic",
            problem=f"got {raw[:4]!r}",
            expected="0x00 0x00 <type code> <ndim>",
            hint="is this really an IDX file?",
        )
    dtype = np.dtype(_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(p, record="header", field="dimensions", problem="file truncated in header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise DataFormatError(
            p,
            record="data",
            field="payload",
            problem=f"{len(raw) - header} data bytes for shape {shape}",
            expected=f"{count * dtype.itemsize} bytes",
            hint="the file may be truncated",
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    array = array.astype(dtype.newbyteorder("="), copy=False)
    array.flags.writeable = False
    return array
