"""Checkpoint directories as transformers writes them, read and written with NumPy only.

A directory holds ``config.json`` and one of: ``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, or ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``,
so torch must be installed; no pickle code is ever executed). Writes are atomic: files are written
under a temporary name in the target directory and renamed at the end, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .config import BigBirdConfig
from .errors import CheckpointError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
FLAX_MSGPACK = "flax_model.msgpack"

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}  # fmt: skip
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) to float32, exactly."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Read a safetensors file into NumPy arrays (bfloat16 upcast exactly to float32).

    Raises:
        CheckpointError naming the file when it is truncated or corrupt.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) < 8:
        raise CheckpointError(f"{path}: not a safetensors file (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors header (declares {n} bytes)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: corrupt safetensors header (not JSON)") from None
    body = memoryview(data)[8 + n :]
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            dtype, shape = info["dtype"], tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: corrupt safetensors entry for {name!r}") from None
        if end > len(body) or start > end:
            raise CheckpointError(
                f"{path}: truncated: tensor {name!r} ends at byte {end}, file has {len(body)}"
            )
        raw = bytes(body[start:end])
        if dtype == "BF16":
            arr = _bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<")).astype(
                _ST_DTYPES[dtype]
            )
        else:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        if arr.size != int(np.prod(shape)):
            raise CheckpointError(f"{path}: tensor {name!r} has {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape).copy()
    return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None,
                      bf16: frozenset[str] = frozenset()) -> None:  # fmt: skip
    """Write ``tensors`` as a safetensors file (to ``path`` directly; wrap in :func:`atomic_dir`).

    Names in ``bf16`` hold bfloat16 bit patterns as uint16 arrays (NumPy has no bfloat16) and are
    stored as BF16.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype not in _ST_NAMES:
            raise CheckpointError(f"{path}: cannot store tensor {name!r} of dtype {arr.dtype}")
        blob = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        kind = "BF16" if name in bf16 else _ST_NAMES[arr.dtype]
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


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path}: reading pytorch_model.bin needs torch; install it (pip install 'bigbird[torch]') "
            "or convert the checkpoint to safetensors"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"{path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    out = {}
    for k, v in state.items():
        t = v.detach().cpu()
        out[k] = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy().copy()
    return out


def read_state_dict(directory: str) -> dict[str, np.ndarray]:
    """The canonical ``{name: array}`` weights of a checkpoint directory (safetensors, sharded or .bin)."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: not a directory")
    index = os.path.join(directory, SAFETENSORS_INDEX)
    single = os.path.join(directory, SAFETENSORS)
    if os.path.exists(single):
        return read_safetensors(single)
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as fh:
                shards = sorted(set(json.load(fh)["weight_map"].values()))
        except (OSError, KeyError, json.JSONDecodeError, AttributeError):
            raise CheckpointError(
                f"{index}: corrupt index (expected a JSON object with 'weight_map')"
            ) from None
        out: dict[str, np.ndarray] = {}
        for shard in shards:
            out.update(read_safetensors(os.path.join(directory, shard)))
        return out
    if os.path.exists(os.path.join(directory, TORCH_BIN)):
        return _read_torch_bin(os.path.join(directory, TORCH_BIN))
    if os.path.exists(os.path.join(directory, FLAX_MSGPACK)):
        try:
            from bigbird_flax.io import read_msgpack
        except ImportError:
            raise CheckpointError(
                f"{directory}: reading {FLAX_MSGPACK} needs flax; install it (pip install 'bigbird[flax]')"
            ) from None
        return read_msgpack(os.path.join(directory, FLAX_MSGPACK))
    found = ", ".join(sorted(os.listdir(directory))) or "nothing"
    raise CheckpointError(
        f"{directory}: no weights found (expected {SAFETENSORS}, {SAFETENSORS_INDEX}, {TORCH_BIN} or "
        f"{FLAX_MSGPACK}; found {found})"
    )


def read_checkpoint(directory: str) -> tuple[BigBirdConfig, dict[str, np.ndarray]]:
    """``(config, state_dict)`` of a transformers checkpoint directory."""
    directory = os.fspath(directory)
    return BigBirdConfig.load(os.path.join(directory, "config.json")), read_state_dict(directory)


@contextmanager
def atomic_dir(directory: str) -> Iterator[str]:
    """Yield a staging directory; on success its files replace those in ``directory``, on failure
    nothing in ``directory`` changes (and a directory we created is removed)."""
    directory = os.fspath(directory)
    created = not os.path.exists(directory)
    os.makedirs(directory, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".bigbird-tmp-", dir=directory)
    try:
        yield stage
        for name in os.listdir(stage):
            os.replace(os.path.join(stage, name), os.path.join(directory, name))
    except BaseException:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage, ignore_errors=True)


def write_checkpoint(directory: str, config: BigBirdConfig, state: dict[str, np.ndarray],
                     architecture: str, bf16: frozenset[str] = frozenset()) -> None:  # fmt: skip
    """Write ``config.json`` and ``model.safetensors`` atomically (tied copies are not stored)."""
    data = config.to_dict()
    data["architectures"] = [architecture]
    cfg = BigBirdConfig.from_dict(data)
    with atomic_dir(directory) as stage:
        write_safetensors(os.path.join(stage, SAFETENSORS), state, bf16=bf16)
        cfg.save(os.path.join(stage, "config.json"))
