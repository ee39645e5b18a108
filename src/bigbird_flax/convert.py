"""Flax <-> NumPy weights and ``flax_model.msgpack`` files (as transformers 4.x Flax writes them).

Same function names as ``bigbird_torch.convert`` (``to_canonical``, ``from_canonical``, ``load_file``,
``save_file``); the canonical NumPy weights and every NumPy-readable format live in
``bigbird_core.checkpoint``, the name table in ``bigbird_core.weights``. Importing this module
registers ``flax_model.msgpack`` with the core.
"""

from __future__ import annotations

from typing import BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core.checkpoint import FLAX_MSGPACK, register_format
from bigbird_core.errors import CheckpointError
from bigbird_core.flax_names import from_flax_tree, to_flax_tree
from flax import serialization


def to_canonical(tree: dict) -> dict[str, np.ndarray]:
    """A transformers Flax parameter tree as canonical ``{name: ndarray}`` (dtypes kept)."""
    return from_flax_tree(jax.tree_util.tree_map(np.asarray, tree))


def from_canonical(state: dict[str, np.ndarray]) -> dict:
    """Canonical ``{name: ndarray}`` as a transformers Flax parameter tree of JAX arrays."""
    return jax.tree_util.tree_map(jnp.asarray, to_flax_tree(state))


def read_file(fh: BinaryIO, path: str) -> dict[str, np.ndarray]:
    """Canonical ``{name: array}`` of an open ``flax_model.msgpack`` (dtypes kept): nested mappings of names
    with arrays as leaves, anything else a :class:`CheckpointError`."""
    try:
        tree = serialization.msgpack_restore(fh.read())
    except Exception as exc:  # msgpack raises several types on corrupt input
        raise CheckpointError(f"{path}: corrupt or truncated msgpack ({type(exc).__name__})") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: expected a parameter tree, got {type(tree).__name__}")
    _check_tree(tree, path, ())
    try:
        return from_flax_tree(tree)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a BigBird parameter tree ({exc})") from None


def _check_tree(tree: dict, path: str, at: tuple[str, ...]) -> None:
    for key, value in tree.items():
        where = "/".join(at + (str(key),))
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: key {where!r} is not a string")
        if isinstance(value, dict):
            _check_tree(value, path, at + (key,))
        elif not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf" and str(value.dtype) != "bfloat16":
            raise CheckpointError(f"{path}: {where} is a {type(value).__name__}, not an array")


def load_file(path: str) -> dict[str, np.ndarray]:
    """Canonical ``{name: array}`` of the ``flax_model.msgpack`` at ``path`` (see :func:`read_file`)."""
    with open(path, "rb") as fh:
        return read_file(fh, path)


def save_file(path: str, state: dict[str, np.ndarray]) -> None:
    """Write canonical weights as a transformers Flax ``flax_model.msgpack`` (to ``path`` directly)."""
    with open(path, "wb") as fh:
        fh.write(serialization.msgpack_serialize(to_flax_tree(state)))


register_format(FLAX_MSGPACK, read_file, save_file)
