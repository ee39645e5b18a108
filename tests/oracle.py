"""The test oracle: transformers 4.57.6's BigBird, random-initialised and saved to a directory.

Only tests import this module; the library never imports transformers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from bigbird_core import BigBirdConfig  # noqa: E402

HF_CLASSES = {
    "BigBirdModel": "BigBirdModel",
    "BigBirdForPreTraining": "BigBirdForPreTraining",
    "BigBirdForMaskedLM": "BigBirdForMaskedLM",
    "BigBirdForCausalLM": "BigBirdForCausalLM",
    "BigBirdForSequenceClassification": "BigBirdForSequenceClassification",
    "BigBirdForMultipleChoice": "BigBirdForMultipleChoice",
    "BigBirdForTokenClassification": "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering": "BigBirdForQuestionAnswering",
}


def hf_config(config: BigBirdConfig):
    data = config.to_dict()
    for ours in ("random_plan", "plan_seed"):
        data.pop(ours, None)
    return transformers.BigBirdConfig(**data)


def oracle_model(config: BigBirdConfig, head: str, seed: int, dtype=torch.float32):
    """A seeded random transformers model of ``head`` (eval mode)."""
    torch.manual_seed(seed)
    model = getattr(transformers, HF_CLASSES[head])(hf_config(config))
    return model.to(dtype).eval()


def save_oracle(model, directory: str, safe: bool = True) -> str:
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=safe)
    return directory


def oracle_forward(model, train: bool, **inputs):
    """Run the oracle on a fresh attention type (transformers mutates it on short inputs)."""
    body = getattr(model, "bert", model)
    body.set_attention_type(model.config.attention_type)
    model.train(train)
    state = np.random.get_state()
    try:
        with torch.no_grad():
            return model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, return_dict=True)
    finally:
        np.random.set_state(state)
