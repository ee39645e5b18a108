"""Output containers with the transformers field names, shared by every backend.

An output is a dataclass that also behaves like the tuple of its non-None fields: ``out.logits``,
``out["logits"]``, ``out[0]`` and ``loss, logits = out`` all work, and like transformers' ``ModelOutput``
mapping: ``keys()``, ``values()``, ``items()``, ``get()`` and item assignment (``out["logits"] = x`` sets the
field; a new name adds a key after the fields, as transformers' pipelines do).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class ModelOutput:
    """Base class: attribute, key and tuple access to the fields that are not None."""

    def _added(self) -> dict[str, Any]:
        """Keys set by item assignment that are not fields."""
        return self.__dict__.setdefault("_added_items", {})

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self[k] for k in self.keys())

    def keys(self) -> list[str]:
        names = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
        return names + list(self._added())

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self.keys() else default

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return self._added()[key] if key in self._added() else getattr(self, key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"output keys are field names (strings), got {type(key).__name__}")
        if key in {f.name for f in dataclasses.fields(self)}:
            setattr(self, key, value)
        else:
            self._added()[key] = value

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
    past_key_values: Any = None  # decoders: the key/value cache (see bigbird_core.cache)
    hidden_states: Any = None  # embeddings + each layer, (batch, padded seq, hidden)
    attentions: Any = None  # each layer (batch, heads, padded seq, padded seq)
    cross_attentions: Any = None  # each layer (batch, heads, seq, encoder_len), with cross-attention


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
class Seq2SeqLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, decoder seq, vocab)
    past_key_values: Any = None  # the decoder's cache (see bigbird_core.cache)
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None  # (batch, seq, encoder hidden)
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None


@dataclass
class FlaxGenerateOutput(ModelOutput):
    sequences: Any = None  # (batch, max_length): prompt and generated tokens, padded after the end


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


# every output class here (each head's registry entry names its own; backends register these as pytrees)
OUTPUT_CLASSES = (
    BaseModelOutputWithPoolingAndCrossAttentions, BigBirdForPreTrainingOutput, MaskedLMOutput,
    CausalLMOutputWithCrossAttentions, SequenceClassifierOutput, MultipleChoiceModelOutput, TokenClassifierOutput,
    BigBirdForQuestionAnsweringModelOutput, Seq2SeqLMOutput, FlaxGenerateOutput,
)  # fmt: skip
