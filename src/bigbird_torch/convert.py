"""Torch <-> NumPy weights: ``state_dict`` conversion and ``pytorch_model.bin`` writing, dtypes kept."""

from __future__ import annotations

import numpy as np

import torch
from bigbird_core.checkpoint import BF16, is_bf16
from bigbird_core.errors import CheckpointError


def state_dict_to_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """``{name: tensor}`` to ``{name: ndarray}``, bit-exact (bf16 as ``ml_dtypes.bfloat16``)."""
    out = {}
    for name, value in state.items():
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            bits = t.view(torch.int16).numpy().view(np.uint16)
            out[name] = bits.view(BF16) if BF16 is not None else t.float().numpy()
        else:
            out[name] = t.numpy().copy()
    return out


def numpy_to_state_dict(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """``{name: ndarray}`` to ``{name: tensor}``, bit-exact (bf16 included)."""
    out = {}
    for name, value in state.items():
        arr = np.ascontiguousarray(value)
        if is_bf16(arr):
            out[name] = torch.from_numpy(arr.view(np.int16).copy()).view(torch.bfloat16)
        else:
            out[name] = torch.from_numpy(arr.copy())
    return out


def save_torch_bin(path: str, state: dict[str, np.ndarray]) -> None:
    """Write ``pytorch_model.bin`` (tensors only, so ``torch.load(weights_only=True)`` reads it)."""
    torch.save(numpy_to_state_dict(state), path)


def load_torch_bin(path: str) -> dict[str, np.ndarray]:
    """Read ``pytorch_model.bin`` with ``weights_only=True`` (no pickle code runs), dtypes kept."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"{path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    return state_dict_to_numpy(state)
