"""The output classes of ``bigbird_core.outputs`` as torch pytrees, so ``torch.export`` and
``torch.compile`` can return them (the same registration ``bigbird_flax.pytrees`` does for JAX)."""

from __future__ import annotations

import torch
from bigbird_core.outputs import OUTPUT_CLASSES

for _cls in OUTPUT_CLASSES.values():
    torch.export.register_dataclass(_cls, serialized_type_name=f"bigbird.{_cls.__name__}")
