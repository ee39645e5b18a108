"""NumPy numerics shared by the reference model: activations, LayerNorm, softmax, losses."""

from __future__ import annotations

import math

import numpy as np

from .activations import activation

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """``gelu_new``: the tanh approximation of GELU."""
    return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def gelu_erf(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))).astype(x.dtype)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


# this backend's kernel of each activation kind (bigbird_core.activations names them)
KINDS = {"gelu_tanh": gelu_tanh, "gelu_erf": gelu_erf, "relu": lambda x: np.maximum(x, 0), "silu": silu,
         "tanh": np.tanh}  # fmt: skip


def act(name: str):
    """The NumPy function of activation ``name`` (``config.hidden_act``)."""
    return activation(name, KINDS)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x @ weight.T + bias`` with torch's ``[out, in]`` weight layout."""
    y = x @ weight.T
    return y if bias is None else y + bias


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.asarray(eps, x.dtype)) * weight + bias


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
