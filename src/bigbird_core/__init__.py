"""bigbird_core: the NumPy specification of BigBird and its NumPy reference backend.

Importing this package never imports torch or jax.
"""

from .config import BigBirdConfig
from .encoder_decoder import EncoderDecoderConfig
from .errors import BigBirdError, CheckpointError, ConfigError, InputError
from .head_specs import HEADS
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
    model_class,
    runner,
)
from .inputs import CallPlan, plan_call
from .layout import BlockLayout, block_layout, dense_mask
from .plans import google_plan, make_plan, seeded_plan, transformers_plan
from .recipe import BodyOutput, PreparedCall, finish_call, prepare_call
from .registry import HeadSpec, head_names, head_spec, register_head, unregister_head
from .tolerances import TOLERANCES, assert_close, compare

__version__ = "0.1.0"
NAME = "numpy"


def to_canonical(state):
    """The NumPy backend's weights are canonical already: a copy of the mapping (same name in every backend)."""
    return dict(state)


from_canonical = to_canonical


def asarray(x):
    """A NumPy array of ``x`` (the same function exists in every backend)."""
    import numpy as np

    return np.asarray(x)


__all__ = [
    "BigBirdConfig", "BigBirdError", "CheckpointError", "ConfigError", "InputError", "MODEL_CLASSES",
    "BigBirdModel", "BigBirdForPreTraining", "BigBirdForMaskedLM", "BigBirdForCausalLM",
    "BigBirdForSequenceClassification", "BigBirdForMultipleChoice", "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering", "BigBirdPreTrainedModel", "CallPlan", "plan_call", "BlockLayout",
    "block_layout", "dense_mask", "make_plan", "transformers_plan", "google_plan", "seeded_plan", "HEADS",
    "TOLERANCES", "assert_close", "compare", "asarray", "NAME", "runner", "PreparedCall", "prepare_call", "finish_call",
    "EncoderDecoderConfig", "BodyOutput", "HeadSpec", "head_names", "head_spec", "register_head",
    "unregister_head", "model_class", "to_canonical", "from_canonical",
]  # fmt: skip
