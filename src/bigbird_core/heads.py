"""The NumPy backend: ``BigBirdModel`` and the seven heads, with transformers' names and call signatures.

Inference-only reference: ``.train()`` switches the random-block plan to training's, but dropout is not
implemented here (train mode requires every dropout probability to be 0).

Example:
    >>> from bigbird_core import BigBirdConfig, BigBirdForMaskedLM
    >>> model = BigBirdForMaskedLM(BigBirdConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
    ...                                          intermediate_size=128, vocab_size=100))
    >>> model(input_ids=np.ones((1, 10), np.int64)).logits.shape
    (1, 10, 100)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import outputs as O
from .checkpoint import read_checkpoint, write_checkpoint
from .config import BigBirdConfig
from .errors import ConfigError, InputError, fail
from .inputs import QA_LOGITS_PENALTY, default_question_lengths, question_masks
from .model import BodyOutput, run_body
from .numerics import ACTIVATIONS, bce_with_logits, cross_entropy, layer_norm, linear, mse
from .weights import BODY_PREFIX, LoadReport, init_params, match_state_dict


class BigBirdPreTrainedModel:
    """Shared behaviour of the NumPy models: parameters, modes, checkpoints."""

    head: str = ""
    default_pooler = True

    def __init__(self, config: BigBirdConfig, params: dict[str, np.ndarray] | None = None, *,
                 add_pooling_layer: bool | None = None, seed: int = 0, dtype: str = "float32") -> None:  # fmt: skip
        if not isinstance(config, BigBirdConfig):
            raise fail(InputError, "config", "a bigbird_core.BigBirdConfig", config)
        if self.head == "BigBirdForQuestionAnswering" and config.num_labels != 2:
            config = config.replace(num_labels=2)  # QA always has a start and an end logit
        self.config = config
        self.add_pooling_layer = self.default_pooler if add_pooling_layer is None else add_pooling_layer
        if params is None:
            params = init_params(
                config, self.head, seed=seed, dtype=dtype, add_pooling_layer=self.add_pooling_layer
            )
            self.load_report = LoadReport((), (), ())
        else:
            params, self.load_report = match_state_dict(config, self.head, params, seed=seed,
                                                        add_pooling_layer=self.add_pooling_layer)  # fmt: skip
        self.params = params
        self.training = False

    # ------------------------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> BigBirdPreTrainedModel:
        self.training = bool(mode)
        return self

    def eval(self) -> BigBirdPreTrainedModel:
        return self.train(False)

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    def astype(self, dtype: str) -> BigBirdPreTrainedModel:
        """Cast every parameter to ``dtype`` (float32 or float64) in place; returns self."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise fail(InputError, "dtype", "float32 or float64 for the NumPy backend", str(dtype))
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    # ------------------------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *, dtype: str | None = None,
                        add_pooling_layer: bool | None = None, seed: int = 0, **config_overrides: Any):  # fmt: skip
        """Load a transformers checkpoint directory (safetensors, sharded, or pytorch_model.bin).

        Keys of another head load into the shared body; the rest is initialised from ``seed`` and listed
        in ``model.load_report``.
        """
        config, state = read_checkpoint(os.fspath(directory))
        if config_overrides:
            config = config.replace(**config_overrides)
        if dtype is not None:
            state = {k: v.astype(dtype) for k, v in state.items()}
        return cls(config, state, add_pooling_layer=add_pooling_layer, seed=seed)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` atomically."""
        write_checkpoint(os.fspath(directory), self.config, self.params, self.head)

    # ---------------------------------------------------------------------------------- helpers
    @property
    def prefix(self) -> str:
        return "" if self.head == "BigBirdModel" else BODY_PREFIX

    def _body(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
              output_attentions, output_hidden_states, plan) -> BodyOutput:  # fmt: skip
        if self.training:
            c = self.config
            if max(c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.effective_classifier_dropout) > 0:
                raise ConfigError(
                    "dropout: the NumPy reference has no dropout; train mode needs hidden_dropout_prob, "
                    "attention_probs_dropout_prob and classifier_dropout set to 0"
                )
        return run_body(
            self.params, self.prefix, self.config,
            input_ids=None if input_ids is None else np.asarray(input_ids),
            attention_mask=None if attention_mask is None else np.asarray(attention_mask),
            token_type_ids=None if token_type_ids is None else np.asarray(token_type_ids),
            position_ids=None if position_ids is None else np.asarray(position_ids),
            inputs_embeds=None if inputs_embeds is None else np.asarray(inputs_embeds),
            head_mask=head_mask, training=self.training, plan=plan, pooler=self.add_pooling_layer,
            output_attentions=self._flag(output_attentions, "output_attentions"),
            output_hidden_states=self._flag(output_hidden_states, "output_hidden_states"),
        )  # fmt: skip

    def _flag(self, value: bool | None, name: str) -> bool:
        return bool(getattr(self.config, name) if value is None else value)

    def _finish(self, out: O.ModelOutput, return_dict: bool | None):
        return (
            out if (self.config.use_return_dict if return_dict is None else return_dict) else out.to_tuple()
        )

    def _p(self, name: str) -> np.ndarray:
        return self.params[name]

    def _mlm_logits(self, x: np.ndarray) -> np.ndarray:
        c, t = self.config, "cls.predictions.transform."
        h = ACTIVATIONS[c.hidden_act](linear(x, self._p(t + "dense.weight"), self._p(t + "dense.bias")))
        h = layer_norm(h, self._p(t + "LayerNorm.weight"), self._p(t + "LayerNorm.bias"), c.layer_norm_eps)
        decoder = self.params.get(
            "cls.predictions.decoder.weight", self._p("bert.embeddings.word_embeddings.weight")
        )
        return linear(h, decoder, self._p("cls.predictions.bias"))  # (batch, seq, vocab)


def _cut(x: np.ndarray, body: BodyOutput) -> np.ndarray:
    """Cut the padded sequence axis back to the input length."""
    return x[:, : body.call.seq_len]


class BigBirdModel(BigBirdPreTrainedModel):
    head = "BigBirdModel"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                 plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        out = O.BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=_cut(body.sequence_output, body), pooler_output=body.pooled,
            hidden_states=body.hidden_states, attentions=body.attentions)  # fmt: skip
        return self._finish(out, return_dict)


class BigBirdForPreTraining(BigBirdPreTrainedModel):
    head = "BigBirdForPreTraining"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                 output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        logits = self._mlm_logits(_cut(body.sequence_output, body))
        nsp = linear(
            body.pooled, self._p("cls.seq_relationship.weight"), self._p("cls.seq_relationship.bias")
        )
        loss = None
        if labels is not None:
            loss = cross_entropy(logits, labels)
            if next_sentence_label is not None:
                loss = loss + cross_entropy(nsp, next_sentence_label)
        out = O.BigBirdForPreTrainingOutput(loss, logits, nsp, body.hidden_states, body.attentions)
        return self._finish(out, return_dict)


class BigBirdForMaskedLM(BigBirdPreTrainedModel):
    head = "BigBirdForMaskedLM"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        logits = self._mlm_logits(_cut(body.sequence_output, body))
        loss = None if labels is None else cross_entropy(logits, labels)
        return self._finish(O.MaskedLMOutput(loss, logits, body.hidden_states, body.attentions), return_dict)


class BigBirdForCausalLM(BigBirdPreTrainedModel):
    """Causal LM head. With ``config.is_decoder`` the attention is causal (full attention); the NumPy
    reference recomputes the whole prefix (no key/value cache)."""

    head = "BigBirdForCausalLM"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        logits = self._mlm_logits(_cut(body.sequence_output, body))
        loss = None
        if labels is not None:
            loss = cross_entropy(logits[:, :-1], np.asarray(labels)[:, 1:])  # predict the next token
        out = O.CausalLMOutputWithCrossAttentions(loss=loss, logits=logits, hidden_states=body.hidden_states,
                                                  attentions=body.attentions)  # fmt: skip
        return self._finish(out, return_dict)


def sequence_classification_loss(config: BigBirdConfig, logits: np.ndarray, labels: Any) -> np.ndarray:
    """transformers' problem_type rule: regression (1 label), single-label (integer labels), multi-label."""
    labels = np.asarray(labels)
    problem = config.problem_type_for(labels.dtype.kind in "iu")
    if problem == "regression":
        return mse(logits.squeeze(), labels.squeeze()) if config.num_labels == 1 else mse(logits, labels)
    if problem == "single_label_classification":
        return cross_entropy(logits.reshape(-1, config.num_labels), labels.reshape(-1))
    return bce_with_logits(logits, labels)


class BigBirdForSequenceClassification(BigBirdPreTrainedModel):
    head = "BigBirdForSequenceClassification"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        x = body.sequence_output[:, 0]  # (batch, hidden): the first token
        x = ACTIVATIONS[self.config.hidden_act](linear(x, self._p("classifier.dense.weight"),
                                                       self._p("classifier.dense.bias")))  # fmt: skip
        logits = linear(x, self._p("classifier.out_proj.weight"), self._p("classifier.out_proj.bias"))
        loss = None if labels is None else sequence_classification_loss(self.config, logits, labels)
        return self._finish(
            O.SequenceClassifierOutput(loss, logits, body.hidden_states, body.attentions), return_dict
        )


def _flatten_choices(x: Any) -> Any:
    if x is None:
        return None
    x = np.asarray(x)
    return x.reshape((-1,) + x.shape[2:])


class BigBirdForMultipleChoice(BigBirdPreTrainedModel):
    """Inputs are ``(batch, num_choices, seq)``; logits ``(batch, num_choices)``."""

    head = "BigBirdForMultipleChoice"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        first = input_ids if input_ids is not None else inputs_embeds
        if first is None or np.ndim(first) < 3:
            raise fail(InputError, "input_ids", "a (batch, num_choices, seq) array", first)
        num_choices = np.shape(first)[1]
        body = self._body(_flatten_choices(input_ids), _flatten_choices(attention_mask),
                          _flatten_choices(token_type_ids), _flatten_choices(position_ids), head_mask,
                          _flatten_choices(inputs_embeds), output_attentions, output_hidden_states, plan)  # fmt: skip
        logits = linear(body.pooled, self._p("classifier.weight"), self._p("classifier.bias")).reshape(
            -1, num_choices
        )
        loss = None if labels is None else cross_entropy(logits, labels)
        return self._finish(
            O.MultipleChoiceModelOutput(loss, logits, body.hidden_states, body.attentions), return_dict
        )


class BigBirdForTokenClassification(BigBirdPreTrainedModel):
    head = "BigBirdForTokenClassification"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        x = _cut(body.sequence_output, body)
        logits = linear(x, self._p("classifier.weight"), self._p("classifier.bias"))  # (batch, seq, labels)
        loss = None if labels is None else cross_entropy(logits, labels)
        return self._finish(
            O.TokenClassifierOutput(loss, logits, body.hidden_states, body.attentions), return_dict
        )


class BigBirdForQuestionAnswering(BigBirdPreTrainedModel):
    """Span extraction. ``question_lengths`` defaults to the position of the first [SEP] + 1; the logits
    of question tokens (except position 0) get ``1e6`` subtracted."""

    head = "BigBirdForQuestionAnswering"
    default_pooler = False

    def __call__(self, input_ids=None, attention_mask=None, question_lengths=None, token_type_ids=None,
                 position_ids=None, head_mask=None, inputs_embeds=None, start_positions=None, end_positions=None,
                 output_attentions=None, output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        c = self.config
        first = input_ids if input_ids is not None else inputs_embeds
        seq = np.shape(first)[1] if first is not None and np.ndim(first) >= 2 else 0
        if question_lengths is None and input_ids is not None:
            question_lengths = default_question_lengths(np, np.asarray(input_ids), c.sep_token_id)
        logits_mask = None
        if question_lengths is not None:
            default_types, logits_mask = question_masks(np, np.asarray(question_lengths), seq)
            if token_type_ids is None:
                token_type_ids = default_types
        body = self._body(input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                          output_attentions, output_hidden_states, plan)  # fmt: skip
        x = _cut(body.sequence_output, body)
        q = "qa_classifier."
        h = ACTIVATIONS[c.hidden_act](linear(x, self._p(q + "intermediate.dense.weight"),
                                             self._p(q + "intermediate.dense.bias")))  # fmt: skip
        h = linear(h, self._p(q + "output.dense.weight"), self._p(q + "output.dense.bias"))
        h = layer_norm(h + x, self._p(q + "output.LayerNorm.weight"), self._p(q + "output.LayerNorm.bias"),
                       c.layer_norm_eps)  # fmt: skip
        logits = linear(
            h, self._p(q + "qa_outputs.weight"), self._p(q + "qa_outputs.bias")
        )  # (batch, seq, 2)
        if logits_mask is not None:
            logits = logits - logits_mask[:, :, None].astype(logits.dtype) * np.asarray(
                QA_LOGITS_PENALTY, logits.dtype
            )
        start, end = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start.shape[1]
            sp = np.clip(np.asarray(start_positions).reshape(-1), 0, ignored)
            ep = np.clip(np.asarray(end_positions).reshape(-1), 0, ignored)
            loss = (
                cross_entropy(start, sp, ignore_index=ignored) + cross_entropy(end, ep, ignore_index=ignored)
            ) / 2
        out = O.BigBirdForQuestionAnsweringModelOutput(loss, start, end, body.pooled, body.hidden_states,
                                                        body.attentions)  # fmt: skip
        return self._finish(out, return_dict)


MODEL_CLASSES = {cls.head: cls for cls in (
    BigBirdModel, BigBirdForPreTraining, BigBirdForMaskedLM, BigBirdForCausalLM, BigBirdForSequenceClassification,
    BigBirdForMultipleChoice, BigBirdForTokenClassification, BigBirdForQuestionAnswering)}  # fmt: skip


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend)."""
    model = MODEL_CLASSES[head].from_pretrained(directory, dtype=dtype, **config_overrides).train(train)
    return lambda **inputs: model(**inputs)
