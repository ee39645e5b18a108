"""Checkpoint directories as transformers writes them, read and written with NumPy only.

A directory holds ``config.json`` and one of: ``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, ``pytorch_model.bin`` or ``flax_model.msgpack``. The last two need
their framework and are read by the backend that has it (see :func:`register_format`; ``.bin`` with
``torch.load(weights_only=True)``: no pickle code is ever executed).

Reads are confined and consistent: every file is opened through one descriptor of the directory (plain
names only, regular files only; see ``files.py``), so one load never mixes two checkpoints. Writes are
atomic for the whole directory: the complete checkpoint is built in a sibling staging directory and
swapped in at once, replacing every weight file of the old one (other files are kept).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from .config import BigBirdConfig
from .errors import CheckpointError, CheckpointNotFoundError
from .files import OpenDirectory, carry_over, plain_name, read_consistently, staged, swap_in
from .tensorfile import BF16, is_bf16, read_safetensors_file, write_safetensors

__all__ = ["BF16", "is_bf16", "read_safetensors", "write_safetensors", "read_checkpoint", "read_state_dict",
           "write_checkpoint", "register_format", "FORMATS", "WEIGHT_FILES"]  # fmt: skip

log = logging.getLogger("bigbird")

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
FLAX_MSGPACK = "flax_model.msgpack"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, TORCH_BIN, FLAX_MSGPACK)  # the default reading order
# every model-weight file a transformers checkpoint may hold (all formats, shards and indexes)
_WEIGHT_NAME = re.compile(r"(model|pytorch_model|flax_model|tf_model)(-\d+-of-\d+)?"
                          r"\.(safetensors|bin|msgpack|h5)(\.index\.json)?")  # fmt: skip

Reader = Callable[[BinaryIO, str], dict]
Writer = Callable[[str, dict], None]


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Read one safetensors file (a regular file; the header validated in full first)."""
    directory, name = os.path.split(os.fspath(path))
    with OpenDirectory(directory or ".") as d, d.open(name) as fh:
        return read_safetensors_file(fh, path)


MAX_INDEX_BYTES = 64 * 1024 * 1024  # an index of a million tensors is under 100 bytes each


def parse_index(raw: bytes, where: str) -> dict[str, list[str]]:
    """``{shard file: [tensor, ...]}`` of a ``model.safetensors.index.json``'s bytes: a JSON object whose
    ``weight_map`` maps tensor names to plain shard file names; anything else is a :class:`CheckpointError`."""
    try:
        index = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_INDEX_BYTES else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        index = None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) for k in weight_map):
        raise CheckpointError(f"{where}: corrupt index (expected a JSON object with a 'weight_map' object)")
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(plain_name(shard, f"{where}: shard of {tensor!r}"), []).append(tensor)
    return shards


def read_index_file(path: str) -> dict[str, list[str]]:
    """:func:`parse_index` of the index file at ``path``, opened as a checkpoint file is (a regular file only:
    never a FIFO or a device)."""
    directory, name = os.path.split(os.fspath(path))
    with OpenDirectory(directory or ".") as d, d.open(name) as fh:
        return parse_index(fh.read(MAX_INDEX_BYTES + 1), path)


def _read_index(d: OpenDirectory) -> dict[str, np.ndarray]:
    where = d.where(SAFETENSORS_INDEX)
    with d.open(SAFETENSORS_INDEX) as fh:
        shards = parse_index(fh.read(MAX_INDEX_BYTES + 1), where)
    out: dict[str, np.ndarray] = {}
    for shard, tensors in sorted(shards.items()):
        with d.open(shard) as fh:
            part = read_safetensors_file(fh, d.where(shard))
        missing = sorted(set(tensors) - set(part))
        if missing:
            raise CheckpointError(f"{d.where(shard)}: lacks {', '.join(missing[:5])} (listed in {SAFETENSORS_INDEX})")
        out.update({k: part[k] for k in tensors})
    return out


# Formats that need a framework are read and written where that framework is: importing
# ``bigbird_torch.convert`` registers pytorch_model.bin, ``bigbird_flax.convert`` flax_model.msgpack. The core
# never imports a backend.
_FRAMEWORK_FORMATS: dict[str, tuple[Reader, Writer]] = {}
_NEEDS = {TORCH_BIN: ("torch", "bigbird_torch"), FLAX_MSGPACK: ("flax", "bigbird_flax")}


def register_format(filename: str, reader: Reader, writer: Writer) -> None:
    """Let a backend read and write a weight file that needs its framework.

    Args:
        filename: the file's name in a checkpoint directory.
        reader: ``(open binary file, path for messages) -> {canonical name: ndarray}``.
        writer: ``(path, {canonical name: ndarray}) -> None``.
    """
    _FRAMEWORK_FORMATS[filename] = (reader, writer)


_format_loader: Callable[[str], None] | None = None


def set_format_loader(loader: Callable[[str], None] | None) -> None:
    """Let an application (the ``bigbird`` command) import the backend that registers a format on first
    need: ``loader(filename)`` is called for a weight file no backend has registered yet."""
    global _format_loader
    _format_loader = loader


def _framework_format(filename: str, path: str) -> tuple[Reader, Writer]:
    if filename not in _FRAMEWORK_FORMATS and _format_loader is not None:
        _format_loader(filename)
    if filename not in _FRAMEWORK_FORMATS:
        extra, package = _NEEDS[filename]
        raise CheckpointError(
            f"{path}: {filename} needs {extra}: import {package} first (pip install 'bigbird[{extra}]'), or "
            "convert the checkpoint to safetensors with `bigbird convert`"
        )
    return _FRAMEWORK_FORMATS[filename]


def _read_weights(d: OpenDirectory, prefer: tuple[str, ...], allowed: tuple[str, ...] | None = None,
                  ) -> dict[str, np.ndarray]:  # fmt: skip
    for name in tuple(prefer) + WEIGHT_FILES:
        if (allowed is not None and name not in allowed) or not d.exists(name):
            continue
        if name == SAFETENSORS_INDEX:
            return _read_index(d)
        with d.open(name) as fh:
            if name == SAFETENSORS:
                return read_safetensors_file(fh, d.where(name))
            return _framework_format(name, d.where(name))[0](fh, d.where(name))
    found = ", ".join(d.names()) or "nothing"
    raise CheckpointNotFoundError(
        f"{d.path}: no weights found (expected one of {', '.join(allowed or WEIGHT_FILES)}; found {found})"
    )


def read_state_dict(directory: str, prefer: tuple[str, ...] = WEIGHT_FILES) -> dict[str, np.ndarray]:
    """The canonical ``{name: array}`` weights of a checkpoint directory.

    Args:
        directory: holds ``model.safetensors``, sharded safetensors, ``pytorch_model.bin`` or
            ``flax_model.msgpack``.
        prefer: the order in which weight files are tried (the Flax backend reads its msgpack first).
    """
    return read_consistently(os.fspath(directory), lambda d: _read_weights(d, prefer))


def read_checkpoint(
    directory: str, prefer: tuple[str, ...] = WEIGHT_FILES, allowed: tuple[str, ...] | None = None,
    config: BigBirdConfig | None = None,
) -> tuple[BigBirdConfig, dict[str, np.ndarray]]:
    """``(config, state_dict)`` of a transformers checkpoint directory, both from the same version of it
    (weights: the first of ``prefer``, then the default order, that exists and is ``allowed``). With
    ``config`` given, a directory of weights without ``config.json`` (what transformers' Trainer saves for
    models that are not its own) reads too."""

    def read(d: OpenDirectory) -> tuple[BigBirdConfig, dict[str, np.ndarray]]:
        if not d.exists(CONFIG) and config is not None:
            return config, _read_weights(d, prefer, allowed)
        if not d.exists(CONFIG):
            hint = ""
            if any(_WEIGHT_NAME.fullmatch(n) for n in d.names()):
                hint = ("; it holds weights: pass config= (or train with bigbird_torch.integrations."
                        "BigBirdTrainerCallback, which writes the config where Trainer saves)")
            raise CheckpointNotFoundError(f"{d.path}: no {CONFIG} (not a checkpoint directory){hint}")
        with d.open(CONFIG) as fh:
            stored = BigBirdConfig.from_json_bytes(fh.read(), d.where(CONFIG))
        return stored, _read_weights(d, prefer, allowed)

    return read_consistently(os.fspath(directory), read)


FORMATS = ("safetensors", "torch-bin", "flax")


def is_weight_file(name: str) -> bool:
    """Whether ``name`` is a model-weight file of some format (or config.json): what a new checkpoint replaces."""
    return name == CONFIG or _WEIGHT_NAME.fullmatch(name) is not None


def write_checkpoint(directory: str, config: Any, state: dict[str, np.ndarray], architecture: str,
                     fmt: str = "safetensors", max_shard_bytes: int | None = None,
                     verify: Callable[[str], None] | None = None) -> None:  # fmt: skip
    """Write ``config.json`` and the weights as one atomic step: a reader, or a crash at any instant, sees
    the old checkpoint or the new one, never a mix. Every weight file of the old checkpoint (all formats,
    all shards) is replaced; other files in the directory are kept.

    Args:
        fmt: "safetensors" (``model.safetensors``, or shards with an index when ``max_shard_bytes`` is
            given and exceeded), "torch-bin" (``pytorch_model.bin``, needs torch) or "flax"
            (``flax_model.msgpack``, needs flax).
        verify: called with the staging directory once the new checkpoint is complete there, before it is
            swapped in; an exception it raises leaves ``directory`` as it was.
    """
    if fmt not in FORMATS:
        raise CheckpointError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    data = config.to_dict()
    data["architectures"] = [architecture]
    data.pop("torch_dtype", None)
    floating = [str(np.asarray(v).dtype) for v in state.values() if np.asarray(v).dtype.kind == "f"
                or str(np.asarray(v).dtype) == "bfloat16"]  # fmt: skip
    if floating:
        data["dtype"] = max(set(floating), key=floating.count)  # the parameters' dtype, as transformers writes it
    cfg = type(config).from_dict(data)  # a BigBirdConfig, or an encoder-decoder pair's config
    target = os.path.realpath(os.fspath(directory))  # a symlinked destination is written where it points
    if os.path.exists(target) and not os.path.isdir(target):
        raise CheckpointError(f"{directory}: exists and is not a directory")
    with staged(target) as stage:
        if fmt == "safetensors":
            _write_sharded(stage, state, max_shard_bytes)
        else:
            name = TORCH_BIN if fmt == "torch-bin" else FLAX_MSGPACK
            _framework_format(name, os.path.join(directory, name))[1](os.path.join(stage, name), state)
        cfg.save(os.path.join(stage, CONFIG))
        if verify is not None:  # the complete new checkpoint, before anyone can see it: raising discards it
            verify(stage)
        replaced = carry_over(target, stage, is_weight_file)
        swap_in(stage, target)
    old = [n for n in replaced if n != CONFIG and not os.path.exists(os.path.join(target, n))]
    if old:
        log.warning("%s: replaced the old weight files %s (a checkpoint holds one set of weights)", directory,
                    ", ".join(old))


def write_config(directory: str, config: BigBirdConfig, architecture: str) -> None:
    """Write ``config.json`` alone into an existing ``directory`` (atomically: a temporary file renamed over
    it), for weights that another tool wrote there (transformers' Trainer writes ``model.safetensors`` but
    no config for models that are not its own)."""
    data = config.to_dict()
    data["architectures"] = [architecture]
    target = os.path.join(os.fspath(directory), CONFIG)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        BigBirdConfig.from_dict(data).save(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
