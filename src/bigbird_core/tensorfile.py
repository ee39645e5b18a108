"""safetensors files with NumPy only: a header validated in full before any tensor is read, and the writer.

The header must be a JSON object whose entries each give a known dtype, a shape of non-negative
integers and ``data_offsets`` ``[start, end]`` inside the data section, with ``end - start`` the tensor's
byte size and no two tensors overlapping. Anything else is one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, BinaryIO

import numpy as np

from .errors import CheckpointError

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}  # fmt: skip
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}
_ITEM_SIZE = {**{k: np.dtype(v).itemsize for k, v in _ST_DTYPES.items()}, "BF16": 2}
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit
MAX_TENSORS = 100_000  # per file: a BigBird of a thousand layers has about 16,000 tensors in all

try:  # NumPy's bfloat16, from the small NumPy-only package that JAX also uses
    from ml_dtypes import bfloat16 as BF16
except ImportError:  # pragma: no cover - without it bf16 tensors are upcast exactly to float32
    BF16 = None


def _bf16_from_bits(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) to a bfloat16 array, or to float32 (exact) without ml_dtypes."""
    if BF16 is not None:
        return raw.view(BF16)
    return (raw.astype(np.uint32) << 16).view(np.float32)


def is_bf16(arr: np.ndarray) -> bool:
    return str(arr.dtype) == "bfloat16"


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_header(path: str, raw: bytes, body: int) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    """Validate a safetensors header; returns ``{name: (dtype, shape, start, end)}`` (offsets in the data
    section of ``body`` bytes)."""
    if raw.count(b'"data_offsets"') > MAX_TENSORS:  # counted in the bytes, before a million entries are parsed
        raise CheckpointError(f"{path}: a safetensors header of more than {MAX_TENSORS} tensors (at most "
                              f"{MAX_TENSORS} per file are read)")  # fmt: skip
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (expected a JSON object, got {type(header).__name__})")
    if len(header) > MAX_TENSORS + 1:  # (+1: __metadata__) refused before validating a million entries
        raise CheckpointError(f"{path}: a safetensors header of {len(header) - 1} tensors (at most {MAX_TENSORS} "
                              "per file are read)")  # fmt: skip
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict):
                raise CheckpointError(f"{path}: corrupt safetensors header (__metadata__ is not an object)")
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"} or len(info) != 3:
            raise CheckpointError(f"{where}: expected an object with dtype, shape and data_offsets")
        kind, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if kind not in _ITEM_SIZE:
            raise CheckpointError(f"{where}: unsupported dtype {kind!r}")
        if not isinstance(shape, list) or not all(_int(s) and s >= 0 for s in shape):
            raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):  # fmt: skip
            raise CheckpointError(f"{where}: data_offsets must be [start, end] with 0 <= start <= end, got {offsets!r}")
        start, end = offsets
        if end > body:
            raise CheckpointError(f"{path}: truncated: tensor {name!r} ends at byte {end} of the data, which has {body}")
        if math.prod(shape) * _ITEM_SIZE[kind] != end - start:
            raise CheckpointError(f"{where}: {end - start} bytes for shape {tuple(shape)} {kind}")
        entries[name] = (kind, tuple(shape), start, end)
    reach, holder = 0, None  # the furthest byte any earlier tensor covers, and that tensor
    for start, end, name in sorted((s, e, n) for n, (_, _, s, e) in entries.items() if e > s):
        if start < reach:
            raise CheckpointError(f"{path}: tensors {holder!r} and {name!r} overlap")
        reach, holder = end, name
    return entries


def read_safetensors_file(fh: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """Read an open safetensors file into NumPy arrays (bfloat16 as ``ml_dtypes.bfloat16`` when installed).

    Each tensor is read straight into its own array, so peak memory is the weights once.
    """
    size = os.fstat(fh.fileno()).st_size
    if size < 8:
        raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes)")
    (n,) = struct.unpack("<Q", fh.read(8))
    if n > min(size - 8, MAX_HEADER_BYTES):
        raise CheckpointError(f"{path}: truncated or corrupt safetensors header (declares {n} bytes)")
    entries = parse_header(path, fh.read(n), size - 8 - n)
    out: dict[str, np.ndarray] = {}
    for name, (kind, shape, start, end) in entries.items():
        dtype = np.dtype("<u2") if kind == "BF16" else np.dtype(_ST_DTYPES[kind]).newbyteorder("<")
        arr = np.empty(math.prod(shape), dtype=dtype)
        fh.seek(8 + n + start)
        if fh.readinto(memoryview(arr).cast("B")) != end - start:
            raise CheckpointError(f"{path}: truncated while reading tensor {name!r}")
        arr = _bf16_from_bits(arr) if kind == "BF16" else arr.astype(_ST_DTYPES[kind], copy=False)
        out[name] = arr.reshape(shape)
    return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as a safetensors file at ``path`` (inside a staging directory: see ``files.py``).

    bfloat16 arrays (``ml_dtypes.bfloat16``) are stored as BF16.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        bf16 = is_bf16(arr)
        if bf16:
            arr = arr.view(np.uint16)
        elif arr.dtype not in _ST_NAMES:
            raise CheckpointError(f"{path}: cannot store tensor {name!r} of dtype {arr.dtype}")
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        kind = "BF16" if bf16 else _ST_NAMES[arr.dtype]
        header[name] = {"dtype": kind, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}  # fmt: skip
        offset += len(blob)
        blobs.append(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for blob in blobs:
            fh.write(blob)
