"""The output classes of ``bigbird_core.outputs`` as JAX pytrees, so a jitted function returns them.

Fields are children (None ones are empty subtrees); the class is the static part. A head added to the
registry later has its output class registered when its first model is built (:func:`register_output`).
"""

from __future__ import annotations

import dataclasses

import jax

from bigbird_core.outputs import OUTPUT_CLASSES

_DONE: set[type] = set()


def register_output(cls: type) -> None:
    """Register output dataclass ``cls`` as a JAX pytree (once)."""
    if cls in _DONE:
        return
    names = tuple(f.name for f in dataclasses.fields(cls))
    jax.tree_util.register_dataclass(cls, data_fields=list(names), meta_fields=[])
    _DONE.add(cls)


for _cls in OUTPUT_CLASSES:
    register_output(_cls)
