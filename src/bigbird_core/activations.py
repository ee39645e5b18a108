"""The activation table, once: each ``hidden_act`` name transformers accepts, and the function it means.

Names map to a *kind*; each backend binds the kinds to its framework's kernels (``activation(name, kinds)``),
so aliases (``gelu_new`` = ``gelu_pytorch_tanh``, ``swish`` = ``silu``) and the composite ``gelu_fast`` are
written here only (``gelu_fast`` against the array API: one definition for NumPy, torch and JAX arrays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .arrays import namespace

# name (config.hidden_act) -> kind
ACTIVATIONS: dict[str, str] = {
    "gelu_new": "gelu_tanh",  # the tanh approximation of GELU (transformers' gelu_new, in both frameworks)
    "gelu": "gelu_erf",  # exact GELU
    "gelu_fast": "gelu_fast",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
    "linear": "identity",
}

GELU_FAST_COEFF = 0.7978845608  # sqrt(2 / pi) as transformers' FastGELUActivation writes it


def gelu_fast(x: Any) -> Any:
    """transformers' ``gelu_fast``: ``0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x^2)))`` (any array)."""
    xp = namespace(x)
    return 0.5 * x * (1.0 + xp.tanh(x * GELU_FAST_COEFF * (1.0 + 0.044715 * x * x)))


def identity(x: Any) -> Any:
    return x


def activation(name: str, kinds: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The function of activation ``name`` given a backend's kernel of each kind (``gelu_fast`` and
    ``identity`` default to the ones here)."""
    kind = ACTIVATIONS[name]
    return kinds.get(kind) or {"gelu_fast": gelu_fast, "identity": identity}[kind]
