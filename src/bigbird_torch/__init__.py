"""bigbird_torch: BigBird in PyTorch with the transformers API, executing the plans of ``bigbird_core``."""

from bigbird_core import BigBirdConfig
from bigbird_core.encoder_decoder import EncoderDecoderConfig
from bigbird_core.errors import BigBirdError, CheckpointError, ConfigError, InputError

from . import convert, pytrees  # noqa: F401  (registers pytorch_model.bin and the output pytrees)
from .convert import from_canonical, to_canonical
from .encoder_decoder import BigBirdEncoderDecoderModel
from .heads import (
    MODEL_CLASSES,
    BigBirdForCausalLM,
    BigBirdForMaskedLM,
    BigBirdForMultipleChoice,
    BigBirdForPreTraining,
    BigBirdForQuestionAnswering,
    BigBirdForSequenceClassification,
    BigBirdForTokenClassification,
    BigBirdModel,
    BigBirdPreTrainedModel,
    asarray,
    model_class,
    runner,
)

NAME = "torch"

__all__ = [
    "BigBirdConfig", "BigBirdError", "CheckpointError", "ConfigError", "InputError", "MODEL_CLASSES", "NAME",
    "BigBirdModel", "BigBirdForPreTraining", "BigBirdForMaskedLM", "BigBirdForCausalLM",
    "BigBirdForSequenceClassification", "BigBirdForMultipleChoice", "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering", "BigBirdPreTrainedModel", "asarray", "runner", "BigBirdEncoderDecoderModel",
    "EncoderDecoderConfig", "model_class", "to_canonical", "from_canonical",
]  # fmt: skip
