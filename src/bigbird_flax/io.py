"""``flax_model.msgpack`` files, as transformers 4.x Flax writes them (via ``flax.serialization``)."""

from __future__ import annotations

import os

import numpy as np

from bigbird_core.errors import CheckpointError
from bigbird_core.weights import from_flax_tree, to_flax_tree
from flax import serialization


def read_msgpack(path: str) -> dict[str, np.ndarray]:
    """Canonical ``{name: array}`` of a ``flax_model.msgpack`` file (dtypes kept)."""
    try:
        with open(path, "rb") as fh:
            tree = serialization.msgpack_restore(fh.read())
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    except Exception as exc:  # msgpack raises several types on corrupt input
        raise CheckpointError(f"{path}: corrupt or truncated msgpack ({type(exc).__name__})") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: expected a parameter tree, got {type(tree).__name__}")
    return from_flax_tree(tree)


def write_msgpack(path: str, state: dict[str, np.ndarray]) -> None:
    """Write canonical weights as a transformers Flax ``flax_model.msgpack`` (to ``path`` directly)."""
    with open(path, "wb") as fh:
        fh.write(serialization.msgpack_serialize(to_flax_tree(state)))


def has_msgpack(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, "flax_model.msgpack"))
