"""bigbird_flax: BigBird in Flax (linen) with the transformers 4.x ``FlaxBigBird*`` API.

The classes are also exported without the ``Flax`` prefix, so swapping ``import bigbird_torch as bb``
for ``import bigbird_flax as bb`` switches backends.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from bigbird_core import BigBirdConfig
from bigbird_core.errors import BigBirdError, CheckpointError, ConfigError, InputError

from .losses import head_loss
from .wrappers import MODEL_CLASSES, FlaxBigBirdPreTrainedModel

NAME = "flax"

FlaxBigBirdModel = MODEL_CLASSES["BigBirdModel"]
FlaxBigBirdForPreTraining = MODEL_CLASSES["BigBirdForPreTraining"]
FlaxBigBirdForMaskedLM = MODEL_CLASSES["BigBirdForMaskedLM"]
FlaxBigBirdForCausalLM = MODEL_CLASSES["BigBirdForCausalLM"]
FlaxBigBirdForSequenceClassification = MODEL_CLASSES["BigBirdForSequenceClassification"]
FlaxBigBirdForMultipleChoice = MODEL_CLASSES["BigBirdForMultipleChoice"]
FlaxBigBirdForTokenClassification = MODEL_CLASSES["BigBirdForTokenClassification"]
FlaxBigBirdForQuestionAnswering = MODEL_CLASSES["BigBirdForQuestionAnswering"]

BigBirdModel = FlaxBigBirdModel
BigBirdForPreTraining = FlaxBigBirdForPreTraining
BigBirdForMaskedLM = FlaxBigBirdForMaskedLM
BigBirdForCausalLM = FlaxBigBirdForCausalLM
BigBirdForSequenceClassification = FlaxBigBirdForSequenceClassification
BigBirdForMultipleChoice = FlaxBigBirdForMultipleChoice
BigBirdForTokenClassification = FlaxBigBirdForTokenClassification
BigBirdForQuestionAnswering = FlaxBigBirdForQuestionAnswering
BigBirdPreTrainedModel = FlaxBigBirdPreTrainedModel

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def asarray(x: Any) -> jnp.ndarray:
    """A JAX array of ``x`` (the same function exists in every backend)."""
    return jnp.asarray(np.asarray(x))


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend)."""
    if dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    model = MODEL_CLASSES[head].from_pretrained(directory, dtype=_DTYPES[dtype], **config_overrides)
    if dtype == "float64":
        model.params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), model.params)
    return lambda **inputs: model(**{k: asarray(v) for k, v in inputs.items()}, train=train)


__all__ = [
    "BigBirdConfig", "BigBirdError", "CheckpointError", "ConfigError", "InputError", "MODEL_CLASSES", "NAME",
    "FlaxBigBirdModel", "FlaxBigBirdForPreTraining", "FlaxBigBirdForMaskedLM", "FlaxBigBirdForCausalLM",
    "FlaxBigBirdForSequenceClassification", "FlaxBigBirdForMultipleChoice", "FlaxBigBirdForTokenClassification",
    "FlaxBigBirdForQuestionAnswering", "FlaxBigBirdPreTrainedModel", "BigBirdModel", "BigBirdForPreTraining",
    "BigBirdForMaskedLM", "BigBirdForCausalLM", "BigBirdForSequenceClassification", "BigBirdForMultipleChoice",
    "BigBirdForTokenClassification", "BigBirdForQuestionAnswering", "BigBirdPreTrainedModel", "asarray", "runner",
    "head_loss",
]  # fmt: skip
