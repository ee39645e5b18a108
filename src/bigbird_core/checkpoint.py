"""Checkpoint directories as transformers writes them, read and written with NumPy only.

A directory holds ``config.json`` and one of: ``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, ``pytorch_model.bin`` or ``flax_model.msgpack``. The last two need
their framework and are read by the backend that has it (see :func:`register_format`; ``.bin`` with
``torch.load(weights_only=True)``: no pickle code is ever executed). Writes are atomic: files are written
under a temporary name in the target directory and renamed at the end, so a failure leaves nothing
half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
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


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Read a safetensors file into NumPy arrays (bfloat16 as ``ml_dtypes.bfloat16`` when installed).

    Each tensor is read straight into its own array, so peak memory is the weights once.

    Raises:
        CheckpointError naming the file when it is truncated or corrupt.
    """
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > size - 8:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors header (declares {n} bytes)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path}: corrupt safetensors header (not JSON)") from None
        body = size - 8 - n
        out: dict[str, np.ndarray] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                start, end = info["data_offsets"]
                kind, shape = info["dtype"], tuple(info["shape"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{path}: corrupt safetensors entry for {name!r}") from None
            if end > body or start > end:
                raise CheckpointError(
                    f"{path}: truncated: tensor {name!r} ends at byte {end}, file has {body}"
                )
            if kind != "BF16" and kind not in _ST_DTYPES:
                raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {kind}")
            dtype = np.dtype("<u2") if kind == "BF16" else np.dtype(_ST_DTYPES[kind]).newbyteorder("<")
            count = int(np.prod(shape))
            if count * dtype.itemsize != end - start:
                raise CheckpointError(
                    f"{path}: tensor {name!r} has {end - start} bytes for shape {shape} {kind}"
                )
            arr = np.empty(count, dtype=dtype)
            fh.seek(8 + n + start)
            if fh.readinto(memoryview(arr).cast("B")) != end - start:
                raise CheckpointError(f"{path}: truncated while reading tensor {name!r}")
            arr = _bf16_from_bits(arr) if kind == "BF16" else arr.astype(_ST_DTYPES[kind], copy=False)
            out[name] = arr.reshape(shape)
    return out


def write_safetensors(
    path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` as a safetensors file (to ``path`` directly; wrap in :func:`atomic_dir`).

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


WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, FLAX_MSGPACK)  # the default reading order


def _read_index(directory: str) -> dict[str, np.ndarray]:
    index = os.path.join(directory, SAFETENSORS_INDEX)
    try:
        with open(index, encoding="utf-8") as fh:
            shards = sorted(set(json.load(fh)["weight_map"].values()))
    except (OSError, KeyError, TypeError, json.JSONDecodeError, AttributeError):
        raise CheckpointError(f"{index}: corrupt index (expected a JSON object with 'weight_map')") from None
    out: dict[str, np.ndarray] = {}
    for shard in shards:
        out.update(read_safetensors(os.path.join(directory, shard)))
    return out


# Formats that need a framework are read and written where that framework is: importing
# ``bigbird_torch.convert`` registers pytorch_model.bin, ``bigbird_flax.convert`` flax_model.msgpack. The core
# never imports a backend.
_FRAMEWORK_FORMATS: dict[str, tuple[Callable[[str], dict], Callable[[str, dict], None]]] = {}
_NEEDS = {TORCH_BIN: ("torch", "bigbird_torch"), FLAX_MSGPACK: ("flax", "bigbird_flax")}


def register_format(filename: str, reader: Callable[[str], dict], writer: Callable[[str, dict], None]) -> None:
    """Let a backend read and write a weight file that needs its framework (``filename`` in a directory)."""
    _FRAMEWORK_FORMATS[filename] = (reader, writer)


def _framework_format(filename: str, path: str) -> tuple[Callable[[str], dict], Callable[[str, dict], None]]:
    if filename not in _FRAMEWORK_FORMATS:
        extra, package = _NEEDS[filename]
        raise CheckpointError(
            f"{path}: {filename} needs {extra}: import {package} first (pip install 'bigbird[{extra}]'), or "
            "convert the checkpoint to safetensors with `bigbird convert`"
        )
    return _FRAMEWORK_FORMATS[filename]


def _read_file(name: str, path: str) -> dict[str, np.ndarray]:
    if name == SAFETENSORS:
        return read_safetensors(path)
    return _framework_format(name, path)[0](path)


def read_state_dict(directory: str, prefer: tuple[str, ...] = WEIGHT_FILES) -> dict[str, np.ndarray]:
    """The canonical ``{name: array}`` weights of a checkpoint directory.

    Args:
        directory: holds ``model.safetensors``, sharded safetensors, ``pytorch_model.bin`` or
            ``flax_model.msgpack``.
        prefer: the order in which weight files are tried (the Flax backend reads its msgpack first).
    """
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: not a directory")
    for name in tuple(prefer) + WEIGHT_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return _read_index(directory) if name == SAFETENSORS_INDEX else _read_file(name, path)
    found = ", ".join(sorted(os.listdir(directory))) or "nothing"
    raise CheckpointError(
        f"{directory}: no weights found (expected one of {', '.join(WEIGHT_FILES)}; found {found})"
    )


def read_checkpoint(
    directory: str, prefer: tuple[str, ...] = WEIGHT_FILES
) -> tuple[BigBirdConfig, dict[str, np.ndarray]]:
    """``(config, state_dict)`` of a transformers checkpoint directory."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    return BigBirdConfig.load(os.path.join(directory, "config.json")), read_state_dict(directory, prefer)


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


FORMATS = ("safetensors", "torch-bin", "flax")


def write_checkpoint(directory: str, config: BigBirdConfig, state: dict[str, np.ndarray], architecture: str,
                     fmt: str = "safetensors", max_shard_bytes: int | None = None) -> None:  # fmt: skip
    """Write ``config.json`` and the weights atomically: a failure leaves nothing half-written.

    Args:
        fmt: "safetensors" (``model.safetensors``, or shards with an index when ``max_shard_bytes`` is
            given and exceeded), "torch-bin" (``pytorch_model.bin``, needs torch) or "flax"
            (``flax_model.msgpack``, needs flax).
    """
    if fmt not in FORMATS:
        raise CheckpointError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    data = config.to_dict()
    data["architectures"] = [architecture]
    cfg = BigBirdConfig.from_dict(data)
    with atomic_dir(directory) as stage:
        if fmt == "safetensors":
            _write_sharded(stage, state, max_shard_bytes)
        else:
            name = TORCH_BIN if fmt == "torch-bin" else FLAX_MSGPACK
            _framework_format(name, os.path.join(directory, name))[1](os.path.join(stage, name), state)
        cfg.save(os.path.join(stage, "config.json"))
    _remove_shadowing(directory, fmt)


def _remove_shadowing(directory: str, fmt: str) -> None:
    """Readers prefer safetensors, then .bin, then msgpack: drop older weight files that would shadow ours."""
    order = [SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, FLAX_MSGPACK]
    ours = {
        "safetensors": (SAFETENSORS, SAFETENSORS_INDEX),
        "torch-bin": (TORCH_BIN,),
        "flax": (FLAX_MSGPACK,),
    }[fmt]
    first = min(order.index(n) for n in ours if os.path.exists(os.path.join(directory, n)))
    for name in order[:first]:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.remove(path)


def _write_sharded(stage: str, state: dict[str, np.ndarray], max_shard_bytes: int | None) -> None:
    total = sum(int(np.asarray(v).nbytes) for v in state.values())
    if max_shard_bytes is None or total <= max_shard_bytes:
        write_safetensors(os.path.join(stage, SAFETENSORS), state)
        return
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(state):
        nbytes = int(np.asarray(state[name]).nbytes)
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = state[name]
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(stage, fname), shard)
        weight_map.update({k: fname for k in shard})
    with open(os.path.join(stage, SAFETENSORS_INDEX), "w", encoding="utf-8") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2, sort_keys=True)
