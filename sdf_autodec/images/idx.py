"""The IDX file format (LeCun's MNIST files), read and written without torchvision.

An IDX file is a big-endian header, then the array in C order::

    magic: 4 bytes = 0x00 0x00 <type code> <number of dimensions>
    dims:  one big-endian uint32 per dimension
    data:  prod(dims) items of the type (MNIST: unsigned bytes)

MNIST's magic numbers are 2051 (images: ubyte, 3 dims) and 2049 (labels: ubyte, 1 dim). Files may be
gzipped (recognised by their first two bytes, whatever their name). Every problem (missing file,
broken gzip stream, bad magic number, a header or data shorter or longer than it should be) raises
:class:`IdxError` with one line that names the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# IDX type code -> big-endian numpy dtype
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """An IDX file is missing, unreadable or inconsistent (the message is one line naming the file)."""


def _raw_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise IdxError(f"{path}: IDX file not found")
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise IdxError(f"{path}: broken gzip stream (truncated download?): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return data


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Decode IDX ``data`` into an array (native byte order). ``name`` labels errors."""
    if len(data) < 4:
        raise IdxError(f"{name}: {len(data)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = struct.unpack(">I", data[:4])[0]
    if zero != 0 or code not in DTYPES or ndim == 0:
        raise IdxError(f"{name}: bad magic number {magic} (0x{magic:08x}), not an IDX file")
    if expected_magic is not None and magic != expected_magic:
        raise IdxError(f"{name}: magic number {magic}, expected {expected_magic}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header ({len(data)} bytes, {ndim} dimensions need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(DTYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise IdxError(f"{name}: truncated: dimensions {list(dims)} need {expected} data bytes, the file holds {found}")
    if found > expected:
        raise IdxError(f"{name}: {found - expected} bytes beyond the {expected} that dimensions {list(dims)} describe (wrong count in the header?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into an array; ``expected_magic`` (e.g. 2051) is checked."""
    path = Path(path)
    return parse_idx(_raw_bytes(path), str(path), expected_magic)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX (header + big-endian data): the inverse of :func:`parse_idx`."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
    dtype = np.dtype(array.dtype).newbyteorder("=")
    if dtype not in codes or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX cannot store a {array.ndim}-d array of {array.dtype}")
    code = codes[dtype]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
