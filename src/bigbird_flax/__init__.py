"""bigbird_flax: BigBird in Flax (linen) with the transformers 4.x ``FlaxBigBird*`` API.

The classes are also exported without the ``Flax`` prefix, so swapping ``import bigbird_torch as bb``
for ``import bigbird_flax as bb`` switches backends. The linen modules (``FlaxBigBirdModule``,
``FlaxBigBirdFor*Module``) run the same computation on their own, inside a user's module.
"""

from bigbird_core import BigBirdConfig
from bigbird_core.encoder_decoder import EncoderDecoderConfig
from bigbird_core.errors import BigBirdError, CheckpointError, ConfigError, InputError

from . import convert, pytrees  # noqa: F401  (registers flax_model.msgpack and the output pytrees)
from .convert import from_canonical, to_canonical
from .encoder_decoder import FlaxBigBirdEncoderDecoderModel
from .heads import (
    HEAD_MODULES,
    FlaxBigBirdForCausalLMModule,
    FlaxBigBirdForMaskedLMModule,
    FlaxBigBirdForMultipleChoiceModule,
    FlaxBigBirdForPreTrainingModule,
    FlaxBigBirdForQuestionAnsweringModule,
    FlaxBigBirdForSequenceClassificationModule,
    FlaxBigBirdForTokenClassificationModule,
)
from .model import DATA_PARALLEL_RULES, TENSOR_PARALLEL_RULES, FlaxBigBirdModule  # noqa: F401
from .plans import draw_plan
from .pretrained import (
    MODEL_CLASSES,
    FlaxBigBirdForCausalLM,
    FlaxBigBirdForMaskedLM,
    FlaxBigBirdForMultipleChoice,
    FlaxBigBirdForPreTraining,
    FlaxBigBirdForQuestionAnswering,
    FlaxBigBirdForSequenceClassification,
    FlaxBigBirdForTokenClassification,
    FlaxBigBirdModel,
    FlaxBigBirdPreTrainedModel,
    asarray,
    model_class,
    runner,
)

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
BigBirdEncoderDecoderModel = FlaxBigBirdEncoderDecoderModel


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
    "model_class", "to_canonical", "from_canonical", "HEAD_MODULES", "BigBirdEncoderDecoderModel",
]  # fmt: skip
