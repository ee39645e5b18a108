"""Torch <-> NumPy weights and ``pytorch_model.bin`` files, dtypes kept.

Same function names as ``bigbird_flax.convert`` (``to_canonical``, ``from_canonical``, ``load_file``,
``save_file``); the canonical NumPy weights and every NumPy-readable format live in
``bigbird_core.checkpoint``. Importing this module registers ``pytorch_model.bin`` with the core.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

import torch
from bigbird_core.checkpoint import BF16, TORCH_BIN, is_bf16, register_format
from bigbird_core.errors import CheckpointError


def to_canonical(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A ``state_dict`` as canonical ``{name: ndarray}``, bit-exact (bf16 as ``ml_dtypes.bfloat16``)."""
    out = {}
    for name, value in state.items():
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            bits = t.view(torch.int16).numpy().view(np.uint16)
            out[name] = bits.view(BF16) if BF16 is not None else t.float().numpy()
        else:
            out[name] = t.numpy().copy()
    return out


def from_canonical(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Canonical ``{name: ndarray}`` as a ``state_dict``, bit-exact (bf16 included)."""
    out = {}
    for name, value in state.items():
        arr = np.ascontiguousarray(value)
        if is_bf16(arr):
            out[name] = torch.from_numpy(arr.view(np.int16).copy()).view(torch.bfloat16)
        else:
            out[name] = torch.from_numpy(arr.copy())
    return out


def save_file(path: str, state: dict[str, np.ndarray]) -> None:
    """Write ``pytorch_model.bin`` (tensors only, so ``torch.load(weights_only=True)`` reads it)."""
    torch.save(from_canonical(state), path)


def read_file(fh: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """Read an open ``pytorch_model.bin`` with ``weights_only=True`` (no pickle code runs), dtypes kept: a
    flat mapping of names to tensors, anything else a :class:`CheckpointError`."""
    try:
        state = torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        first = (str(exc).splitlines() or [""])[0]
        raise CheckpointError(f"{path}: cannot read ({type(exc).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a mapping of names to tensors, got {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
    return to_canonical(state)


def load_file(path: str) -> dict[str, np.ndarray]:
    """Read ``pytorch_model.bin`` at ``path`` (see :func:`read_file`)."""
    with open(path, "rb") as fh:
        return read_file(fh, path)


register_format(TORCH_BIN, read_file, save_file)
