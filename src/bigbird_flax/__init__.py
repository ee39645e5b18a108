"""bigbird_flax: BigBird in Flax (linen) with the transformers 4.x ``FlaxBigBird*`` API.

The classes are also exported without the ``Flax`` prefix, so swapping ``import bigbird_torch as bb``
for ``import bigbird_flax as bb`` switches backends. The linen modules (``FlaxBigBirdModule``,
``FlaxBigBirdFor*Module``) run the same computation on their own, inside a user's module.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core import BigBirdConfig
from bigbird_core.encoder_decoder import EncoderDecoderConfig
from bigbird_core.errors import BigBirdError, CheckpointError, ConfigError, InputError

from . import convert, pytrees  # noqa: F401  (registers flax_model.msgpack and the output pytrees)
from .encoder_decoder import FlaxBigBirdEncoderDecoderModel
from .heads import (
    MODEL_CLASSES,
    FlaxBigBirdForCausalLM,
    FlaxBigBirdForCausalLMModule,
    FlaxBigBirdForMaskedLM,
    FlaxBigBirdForMaskedLMModule,
    FlaxBigBirdForMultipleChoice,
    FlaxBigBirdForMultipleChoiceModule,
    FlaxBigBirdForPreTraining,
    FlaxBigBirdForPreTrainingModule,
    FlaxBigBirdForQuestionAnswering,
    FlaxBigBirdForQuestionAnsweringModule,
    FlaxBigBirdForSequenceClassification,
    FlaxBigBirdForSequenceClassificationModule,
    FlaxBigBirdForTokenClassification,
    FlaxBigBirdForTokenClassificationModule,
    FlaxBigBirdModel,
    FlaxBigBirdPreTrainedModel,
)
from .model import DATA_PARALLEL_RULES, TENSOR_PARALLEL_RULES, FlaxBigBirdModule  # noqa: F401
from .plans import draw_plan

NAME = "flax"

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
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend).

    float64 runs inside ``jax.enable_x64`` for each call only: the process-wide setting is left alone.
    """
    x64 = dtype == "float64"
    with jax.enable_x64(x64):
        model = MODEL_CLASSES[head].from_pretrained(directory, dtype=_DTYPES[dtype], **config_overrides)
        if x64:
            model.params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), model.params)

    def run(**inputs):
        with jax.enable_x64(x64):
            return model(**{k: asarray(v) for k, v in inputs.items()}, train=train)

    return run


__all__ = [
    "BigBirdConfig", "BigBirdError", "CheckpointError", "ConfigError", "InputError", "MODEL_CLASSES", "NAME",
    "FlaxBigBirdModel", "FlaxBigBirdForPreTraining", "FlaxBigBirdForMaskedLM", "FlaxBigBirdForCausalLM",
    "FlaxBigBirdForSequenceClassification", "FlaxBigBirdForMultipleChoice", "FlaxBigBirdForTokenClassification",
    "FlaxBigBirdForQuestionAnswering", "FlaxBigBirdPreTrainedModel", "BigBirdModel", "BigBirdForPreTraining",
    "BigBirdForMaskedLM", "BigBirdForCausalLM", "BigBirdForSequenceClassification", "BigBirdForMultipleChoice",
    "BigBirdForTokenClassification", "BigBirdForQuestionAnswering", "BigBirdPreTrainedModel", "asarray", "runner",
    "FlaxBigBirdModule", "FlaxBigBirdForPreTrainingModule", "FlaxBigBirdForMaskedLMModule",
    "FlaxBigBirdForCausalLMModule", "FlaxBigBirdForSequenceClassificationModule",
    "FlaxBigBirdForMultipleChoiceModule", "FlaxBigBirdForTokenClassificationModule",
    "FlaxBigBirdForQuestionAnsweringModule", "draw_plan", "FlaxBigBirdEncoderDecoderModel", "EncoderDecoderConfig",
]  # fmt: skip
