"""The output classes of ``bigbird_core.outputs`` as JAX pytrees, so a jitted function returns them.

Fields are children (None ones are empty subtrees); the class is the static part.
"""

from __future__ import annotations

import dataclasses

import jax

from bigbird_core.outputs import OUTPUT_CLASSES


def _register(cls: type) -> None:
    names = tuple(f.name for f in dataclasses.fields(cls))
    jax.tree_util.register_dataclass(cls, data_fields=list(names), meta_fields=[])


for _cls in OUTPUT_CLASSES.values():
    _register(_cls)
