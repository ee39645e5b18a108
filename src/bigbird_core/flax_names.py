"""The transformers Flax naming of the weight table: canonical (PyTorch) names to Flax tree paths and back.

Linear weights ``[out, in]`` become ``kernel`` ``[in, out]``; LayerNorm weights ``scale``; embedding tables
``embedding``; layer indices stay path components ("0", "1", ...). Conversions are bit-exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def flax_path(name: str) -> tuple[tuple[str, ...], bool]:
    """The transformers Flax path of canonical parameter ``name`` and whether the array is transposed.

    Linear weights ``[out, in]`` become ``kernel`` ``[in, out]``; LayerNorm weights become ``scale``;
    embedding tables become ``embedding``; layer indices stay path components ("0", "1", ...).

    Example:
        >>> flax_path("bert.encoder.layer.0.attention.self.query.weight")
        (('bert', 'encoder', 'layer', '0', 'attention', 'self', 'query', 'kernel'), True)
    """
    parts = name.split(".")
    if parts[-1] != "weight":
        return tuple(parts), False
    if parts[-2].endswith("_embeddings"):
        return tuple(parts[:-1]) + ("embedding",), False
    if parts[-2] == "LayerNorm":
        return tuple(parts[:-1]) + ("scale",), False
    return tuple(parts[:-1]) + ("kernel",), True


def canonical_name(path: tuple[str, ...]) -> tuple[str, bool]:
    """The inverse of :func:`flax_path`: ``(canonical name, transposed)``."""
    *parent, leaf = path
    if leaf in ("embedding", "scale"):
        return ".".join(parent + ["weight"]), False
    if leaf == "kernel":
        return ".".join(parent + ["weight"]), True
    return ".".join(path), False


def to_flax_tree(state: dict[str, Any], leaf: Callable[[Any, bool], Any] | None = None) -> dict:
    """Canonical ``{name: array}`` to a nested Flax params dict (kernels transposed); bit-exact.

    ``leaf(value, transposed)`` builds each leaf instead (shapes, shardings, fresh values in Flax layout).
    """
    tree: dict = {}
    for name, value in state.items():
        path, transpose = flax_path(name)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if leaf is not None:
            node[path[-1]] = leaf(value, transpose)
        else:
            node[path[-1]] = np.ascontiguousarray(np.asarray(value).T) if transpose else value
    return tree


def from_flax_tree(tree: dict) -> dict[str, np.ndarray]:
    """A nested Flax params dict to canonical ``{name: array}`` (NumPy); bit-exact."""
    out: dict[str, np.ndarray] = {}

    def walk(node, path):
        if isinstance(node, dict) or hasattr(node, "items"):
            for key, child in node.items():
                walk(child, path + (str(key),))
            return
        name, transpose = canonical_name(path)
        arr = np.asarray(node)
        out[name] = np.ascontiguousarray(arr.T) if transpose else arr

    walk(tree, ())
    return out
