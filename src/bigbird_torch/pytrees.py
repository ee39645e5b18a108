"""The output classes of ``bigbird_core.outputs`` as torch pytrees, so ``torch.export`` and
``torch.compile`` can return them (the same registration ``bigbird_flax.pytrees`` does for JAX)."""

from __future__ import annotations

import torch
from bigbird_core.outputs import OUTPUT_CLASSES

_register = getattr(torch.export, "register_dataclass", None)  # torch >= 2.3
if _register is not None:
    for _cls in OUTPUT_CLASSES.values():
        _register(_cls, serialized_type_name=f"bigbird.{_cls.__name__}")
