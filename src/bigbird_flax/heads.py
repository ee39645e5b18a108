"""Flax head modules (transformers' Flax parameter tree): the body under ``bert`` and each head's layers.

Every head module runs the core's call recipe itself (validation, padding, plan, masks, head rules), so
it works on its own inside a user's module. A module class with ``head = "<name>"`` is this backend's module of
that registry entry; the ``FlaxBigBird*`` wrappers (params, jit, checkpoints) are ``bigbird_flax.pretrained``'s.

Example:
    >>> module = FlaxBigBirdForMaskedLMModule(config)
    >>> params = module.init(jax.random.PRNGKey(0), ids)["params"]
    >>> module.apply({"params": params}, ids).logits.shape
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigbird_core.config import BigBirdConfig
from bigbird_core.recipe import BodyOutput, PreparedCall, finish_call

from .model import FlaxBigBirdModule, act, dense, layer_norm, prepare

HEAD_MODULES: dict[str, type] = {}  # head name -> linen module class, filled as the classes are defined


class _Transform(nn.Module):
    """cls/predictions/transform: dense, activation, LayerNorm."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = self.config
        h = act(c.hidden_act)(dense(c, c.hidden_size, "dense", self.dtype)(x))
        return layer_norm(c, "LayerNorm", self.dtype)(h)


class FlaxBigBirdLMPredictionHead(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, word_embeddings):
        c = self.config
        h = _Transform(c, self.dtype, name="transform")(x)
        if c.tie_word_embeddings:
            # contract with the table's width axis as it lies: ``h @ table.T`` made XLA (CPU) copy the whole
            # transposed table on every call (155 MB at base width: most of a decoding step)
            table = word_embeddings.astype(self.dtype)
            logits = jax.lax.dot_general(h, table, (((h.ndim - 1,), (1,)), ((), ())))  # (batch, seq, vocab)
        else:
            logits = dense(c, c.vocab_size, "decoder", self.dtype, use_bias=False)(h)
        bias = self.param("bias", nn.initializers.zeros, (c.vocab_size,))
        return logits + bias.astype(self.dtype)


class _Predictions(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    with_nsp: bool = False

    @nn.compact
    def __call__(self, x, pooled, word_embeddings):
        logits = FlaxBigBirdLMPredictionHead(self.config, self.dtype, name="predictions")(x, word_embeddings)
        nsp = dense(self.config, 2, "seq_relationship", self.dtype)(pooled) if self.with_nsp else None
        return logits, nsp


class _ClassificationHead(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, deterministic: bool):
        c = self.config
        drop = nn.Dropout(c.effective_classifier_dropout)
        x = drop(x[:, 0], deterministic=deterministic)
        x = act(c.hidden_act)(dense(c, c.hidden_size, "dense", self.dtype)(x))
        return dense(c, c.num_labels, "out_proj", self.dtype)(drop(x, deterministic=deterministic))


class _QAHead(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, deterministic: bool):
        c = self.config
        h = nn.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
        h = act(c.hidden_act)(_Named(c, c.intermediate_size, self.dtype, name="intermediate")(h))
        h = _Named(c, c.hidden_size, self.dtype, norm=True, name="output")(h, x, deterministic)
        return dense(c, 2, "qa_outputs", self.dtype)(h)  # (batch, seq, 2)


class _Named(nn.Module):
    """A ``dense`` (and optionally ``LayerNorm`` with residual) under one name, for the QA head's tree."""

    config: BigBirdConfig
    features: int
    dtype: jnp.dtype = jnp.float32
    norm: bool = False

    @nn.compact
    def __call__(self, x, residual=None, deterministic: bool = True):
        y = dense(self.config, self.features, "dense", self.dtype)(x)
        if not self.norm:
            return y
        y = nn.Dropout(self.config.hidden_dropout_prob)(y, deterministic=deterministic)
        return layer_norm(self.config, "LayerNorm", self.dtype)(y + residual)


class FlaxBigBirdHeadModule(nn.Module):
    """A head's linen module: the body under ``bert`` plus the head (transformers' Flax tree). Called on
    raw inputs, with the label arguments of the head, it returns the head's output object (with its loss
    when labels are given), exactly as the ``FlaxBigBird*`` wrapper does."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False
    kernel: str = "auto"  # the block-sparse kernel (bigbird_core.kernels)
    head: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("head"):  # a head's module: this backend's module of that registry entry
            HEAD_MODULES[cls.head] = cls

    @nn.compact
    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False,
                 return_dict: bool = True, plan=None, question_lengths=None, **labels):  # fmt: skip
        prep, drawn = prepare(self, self.head, deterministic, plan, input_ids=input_ids,
                              attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
                              head_mask=head_mask, inputs_embeds=inputs_embeds, question_lengths=question_lengths,
                              labels=labels, output_attentions=output_attentions,
                              output_hidden_states=output_hidden_states, return_dict=return_dict,
                              encoder_hidden_states=encoder_hidden_states,
                              encoder_attention_mask=encoder_attention_mask)  # fmt: skip
        bert = FlaxBigBirdModule(self.config, self.dtype, self.add_pooling_layer, self.gradient_checkpointing,
                                 self.kernel, name="bert")  # fmt: skip
        body = bert.run(prep, deterministic, drawn)
        return finish_call(prep, body, *self.head_logits(prep, body, deterministic))

    def head_logits(self, prep: PreparedCall, body: BodyOutput, deterministic: bool) -> tuple[Any, ...]:
        """The head's outputs from the body's (see ``HeadSpec.fields``): ``(logits,)`` for most heads."""
        return ()


class FlaxBigBirdForPreTrainingModule(FlaxBigBirdHeadModule):
    head = "BigBirdForPreTraining"

    def head_logits(self, prep, body, deterministic):
        return _Predictions(self.config, self.dtype, True, name="cls")(
            prep.cut(body.sequence_output), body.pooled, body.word_embeddings)  # fmt: skip


class FlaxBigBirdForMaskedLMModule(FlaxBigBirdHeadModule):
    head = "BigBirdForMaskedLM"

    def head_logits(self, prep, body, deterministic):
        return _Predictions(self.config, self.dtype, False, name="cls")(
            prep.cut(body.sequence_output), body.pooled, body.word_embeddings)  # fmt: skip


class FlaxBigBirdForCausalLMModule(FlaxBigBirdForMaskedLMModule):
    head = "BigBirdForCausalLM"


class FlaxBigBirdForSequenceClassificationModule(FlaxBigBirdHeadModule):
    head = "BigBirdForSequenceClassification"

    def head_logits(self, prep, body, deterministic):
        return (_ClassificationHead(self.config, self.dtype, name="classifier")(body.sequence_output, deterministic),)


class FlaxBigBirdForMultipleChoiceModule(FlaxBigBirdHeadModule):
    head = "BigBirdForMultipleChoice"

    def head_logits(self, prep, body, deterministic):
        pooled = nn.Dropout(self.config.hidden_dropout_prob)(body.pooled, deterministic=deterministic)
        return (dense(self.config, 1, "classifier", self.dtype)(pooled),)  # (batch * choices, 1)


class FlaxBigBirdForTokenClassificationModule(FlaxBigBirdHeadModule):
    head = "BigBirdForTokenClassification"

    def head_logits(self, prep, body, deterministic):
        c = self.config
        x = nn.Dropout(c.effective_classifier_dropout)(prep.cut(body.sequence_output), deterministic=deterministic)
        return (dense(c, c.num_labels, "classifier", self.dtype)(x),)  # (batch, seq, labels)


class FlaxBigBirdForQuestionAnsweringModule(FlaxBigBirdHeadModule):
    head = "BigBirdForQuestionAnswering"

    def head_logits(self, prep, body, deterministic):
        x = prep.cut(body.sequence_output)
        return (_QAHead(self.config, self.dtype, name="qa_classifier")(x, deterministic),)  # (batch, seq, 2)


