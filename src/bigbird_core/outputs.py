"""Output containers with the transformers field names, shared by every backend.

An output is a dataclass that also behaves like the tuple of its non-None fields: ``out.logits``,
``out["logits"]``, ``out[0]`` and ``loss, logits = out`` all work, as in transformers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class ModelOutput:
    """Base class: attribute, key and tuple access to the fields that are not None."""

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None
        )

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.to_tuple())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


@dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    last_hidden_state: Any = None  # (batch, seq, hidden), cut back to the input length
    pooler_output: Any = None  # (batch, hidden): tanh(dense(token 0))
    past_key_values: Any = None  # causal LM cache: per layer (key, value), each (batch, heads, len, d)
    hidden_states: Any = None  # embeddings + each layer, (batch, padded seq, hidden)
    attentions: Any = None  # each layer (batch, heads, padded seq, padded seq)
    cross_attentions: Any = None


@dataclass
class BigBirdForPreTrainingOutput(ModelOutput):
    loss: Any = None
    prediction_logits: Any = None  # (batch, seq, vocab)
    seq_relationship_logits: Any = None  # (batch, 2)
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, seq, vocab)
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, seq, vocab)
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None
    cross_attentions: Any = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, num_labels)
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, num_choices)
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, seq, num_labels)
    hidden_states: Any = None
    attentions: Any = None


@dataclass
class BigBirdForQuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None  # (batch, seq)
    end_logits: Any = None  # (batch, seq)
    pooler_output: Any = None
    hidden_states: Any = None
    attentions: Any = None


OUTPUT_CLASSES = {
    "BigBirdModel": BaseModelOutputWithPoolingAndCrossAttentions,
    "BigBirdForPreTraining": BigBirdForPreTrainingOutput,
    "BigBirdForMaskedLM": MaskedLMOutput,
    "BigBirdForCausalLM": CausalLMOutputWithCrossAttentions,
    "BigBirdForSequenceClassification": SequenceClassifierOutput,
    "BigBirdForMultipleChoice": MultipleChoiceModelOutput,
    "BigBirdForTokenClassification": TokenClassifierOutput,
    "BigBirdForQuestionAnswering": BigBirdForQuestionAnsweringModelOutput,
}
