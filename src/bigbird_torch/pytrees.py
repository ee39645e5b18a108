"""The output classes of ``bigbird_core.outputs`` as torch pytrees, so ``torch.export`` and
``torch.compile`` can return them (the same registration ``bigbird_flax.pytrees`` does for JAX). A head added to
the registry later has its output class registered when its first model is built (:func:`register_output`).
"""

from __future__ import annotations

import torch
from bigbird_core.outputs import OUTPUT_CLASSES

_register = getattr(torch.export, "register_dataclass", None)  # torch >= 2.3
_DONE: set[type] = set()


def register_output(cls: type) -> None:
    """Register output dataclass ``cls`` as a torch pytree (once)."""
    if _register is None or cls in _DONE:
        return
    _register(cls, serialized_type_name=f"bigbird.{cls.__name__}")
    _DONE.add(cls)


for _cls in OUTPUT_CLASSES:
    register_output(_cls)
