"""The idx file format of MNIST (LeCun et al. 1998): a big-endian header (two zero bytes, the
dtype code 0x08 for unsigned bytes, the number of dimensions, then each size as uint32) followed
by the raw bytes. torchvision's raw layout stores MNIST this way."""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["idx_bytes", "parse_idx"]


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the idx format (big-endian header, then raw bytes)."""
    if array.dtype != np.uint8:
        raise TypeError(f"idx writer expects uint8, got {array.dtype}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse an unsigned-byte idx file; ``name`` (for errors) says which.

    :raises ValueError: for a bad magic number or a size that does not match the header.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim < 1:
        raise ValueError(f"{name}: not an unsigned-byte idx file (bad magic number)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{name}: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)
