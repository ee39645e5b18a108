"""Array helpers written once against the Python array API standard, for NumPy, torch and JAX arrays.

The core never imports a framework: ``namespace(x)`` asks ``array-api-compat`` for the namespace of
arrays the caller already made (``jax.numpy`` and NumPy are used as they are).

Tracing rule (written here once): a check that needs *values* (ids in range, a 0/1 mask, labels in
range) runs only on concrete arrays. Under ``jax.jit``, ``torch.compile`` or ``torch.export`` the
arrays are tracers, :func:`has_values` is False and only the shape and dtype checks run; the
wrappers (``FlaxBigBird*``) validate values eagerly before they enter ``jit``.
"""

from __future__ import annotations

import sys
from typing import Any

import array_api_compat
import numpy as np


def namespace(*arrays: Any) -> Any:
    """The array namespace of ``arrays`` (NumPy for plain Python values)."""
    present = [a for a in arrays if a is not None and hasattr(a, "shape")]
    if not present:
        return array_api_compat.array_namespace(np.zeros(()))
    if array_api_compat.is_jax_array(present[0]):
        return sys.modules["jax.numpy"]
    return array_api_compat.array_namespace(*present)


def device(x: Any) -> Any:
    return array_api_compat.device(x)


def is_torch(x: Any) -> bool:
    return array_api_compat.is_torch_array(x)


def is_jax(x: Any) -> bool:
    return array_api_compat.is_jax_array(x)


def has_values(x: Any) -> bool:
    """Whether ``x``'s values can be read now: False for tracers (jit, compile, export)."""
    if x is None:
        return True
    if is_jax(x):
        return not isinstance(x, sys.modules["jax"].core.Tracer)
    if is_torch(x):
        torch = sys.modules["torch"]
        compiler = torch.compiler
        if compiler.is_compiling() or (hasattr(compiler, "is_exporting") and compiler.is_exporting()):
            return False
        return not isinstance(x, torch._subclasses.fake_tensor.FakeTensor) and x.device.type != "meta"
    return True


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a concrete array of any backend."""
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def values_namespace(x: Any) -> tuple[Any, Any]:
    """``(namespace, array)`` for reading the values of a concrete array: torch tensors stay on their
    device; JAX arrays are read through NumPy (operations on them would be traced inside ``jax.jit``,
    where a concrete array can still appear as a closed-over constant)."""
    if is_torch(x):
        return namespace(x), x
    return namespace(np.zeros(())), np.asarray(x)


def min_max(x: Any) -> tuple[float, float]:
    """Smallest and largest value of a concrete, non-empty array."""
    xp, x = values_namespace(x)
    return float(xp.min(x)), float(xp.max(x))


def dtype_kind(x: Any) -> str:
    """'b' (bool), 'i' (integer, signed or not), 'f' (floating) or '?' for an array of any backend."""
    name = str(getattr(x, "dtype", "")).replace("torch.", "")
    if name == "bool":
        return "b"
    if "int" in name:
        return "i"
    if "float" in name:
        return "f"
    return "?"


def pad_right(xp: Any, x: Any, pad: int, value: Any) -> Any:
    """``x`` with ``pad`` entries of ``value`` appended along axis 1."""
    if pad == 0:
        return x
    fill = xp.full((x.shape[0], pad) + tuple(x.shape[2:]), value, dtype=x.dtype, device=device(x))
    return xp.concat([x, fill], axis=1)


def softmax_dtype(xp: Any, dtype: Any) -> Any:
    """float32 for half-precision compute (masking and softmax are upcast), else ``dtype`` itself."""
    half = [xp.float16] + ([xp.bfloat16] if hasattr(xp, "bfloat16") else [])  # (np.dtype(None) is float64)
    return xp.float32 if any(dtype == h for h in half) else dtype
