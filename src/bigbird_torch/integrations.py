"""transformers ``Trainer`` integration for bigbird_torch models, without importing transformers.

``Trainer`` calls ``save_pretrained`` only on its own model classes; for any other model it writes
``model.safetensors`` (transformers' parameter names, which ours are) and no ``config.json``, so what it saved
would load in neither library. :class:`BigBirdTrainerCallback` writes the config beside those weights:

    >>> trainer = Trainer(model=model, args=args, train_dataset=data,
    ...                   callbacks=[BigBirdTrainerCallback()])  # doctest: +SKIP
    >>> trainer.train(); trainer.save_model()  # doctest: +SKIP

Every ``checkpoint-N`` folder gets its ``config.json`` when Trainer saves it (so ``resume_from_checkpoint``
and ``from_pretrained`` work on it), and ``args.output_dir`` gets one when training ends, where
``trainer.save_model()`` writes by default.

Trainer calls each callback's ``on_<event>(args, state, control, **kwargs)`` by name and needs nothing else of
it, so the callback is a plain class: every event it does not handle is a no-op returning None (control
unchanged), which keeps transformers out of the library.
"""

from __future__ import annotations

import os
from typing import Any

from bigbird_core.checkpoint import write_config
from bigbird_core.config import BigBirdConfig


def _bigbird_model(model: Any) -> Any:
    """The bigbird_torch model inside what Trainer holds (a PEFT model's base model too), or None."""
    for candidate in (model, getattr(model, "get_base_model", lambda: None)()):
        if candidate is not None and isinstance(getattr(candidate, "config", None), BigBirdConfig):
            return candidate
    return None


class BigBirdTrainerCallback:
    """Writes ``config.json`` where Trainer writes a bigbird_torch model's weights (see the module docs)."""

    def __getattr__(self, name: str):
        if name.startswith("on_"):  # Trainer's other events
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def _write(self, folder: str, model: Any) -> None:
        ours = _bigbird_model(model)
        if ours is not None and os.path.isdir(folder):
            write_config(folder, ours.config, getattr(ours, "head", type(ours).__name__))

    def on_save(self, args, state, control, model=None, **kwargs):
        self._write(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"), model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        os.makedirs(args.output_dir, exist_ok=True)
        self._write(args.output_dir, model)
