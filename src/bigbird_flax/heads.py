"""Flax head modules (transformers' Flax parameter tree) and the ``FlaxBigBird*`` wrapper classes.

A wrapper holds ``params`` (a nested dict) and a jitted apply; calling it validates, pads (the core's
rule), picks the random plan (the core's, as static data, or drawn inside jit from ``indices_rng`` in
train mode) and returns outputs with the transformers field names, cut back to the input length.

Example:
    >>> import bigbird_flax as bb
    >>> model = bb.FlaxBigBirdForMaskedLM.from_pretrained("path/to/checkpoint")
    >>> logits = model(input_ids).logits
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigbird_core.config import BigBirdConfig
from bigbird_core.inputs import (
    QA_LOGITS_PENALTY,
)

from .model import ACTIVATIONS, FlaxBigBirdModule, dense, layer_norm


class _Transform(nn.Module):
    """cls/predictions/transform: dense, activation, LayerNorm."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = self.config
        h = ACTIVATIONS[c.hidden_act](dense(c, c.hidden_size, "dense", self.dtype)(x))
        return layer_norm(c, "LayerNorm", self.dtype)(h)


class FlaxBigBirdLMPredictionHead(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, word_embeddings):
        c = self.config
        h = _Transform(c, self.dtype, name="transform")(x)
        if c.tie_word_embeddings:
            logits = h @ word_embeddings.astype(self.dtype).T  # (batch, seq, vocab)
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
        x = ACTIVATIONS[c.hidden_act](dense(c, c.hidden_size, "dense", self.dtype)(x))
        return dense(c, c.num_labels, "out_proj", self.dtype)(drop(x, deterministic=deterministic))


class _QAHead(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, deterministic: bool):
        c = self.config
        h = nn.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
        h = ACTIVATIONS[c.hidden_act](_Named(c, c.intermediate_size, self.dtype, name="intermediate")(h))
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
    """The body under ``bert`` plus the head of ``head`` (``BigBirdModel`` uses FlaxBigBirdModule itself)."""

    config: BigBirdConfig
    head: str
    dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask=None, inputs_embeds=None,
                 key_blocks=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, embeds_pad: int = 0, logits_mask=None):  # fmt: skip
        c, head = self.config, self.head
        body = FlaxBigBirdModule(c, self.dtype, self.add_pooling_layer, self.gradient_checkpointing, name="bert")(
            input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds, key_blocks,
            deterministic, output_attentions, output_hidden_states, embeds_pad)  # fmt: skip
        x, pooled = body["sequence_output"], body["pooled"]
        out = dict(body)
        if head in ("BigBirdForPreTraining", "BigBirdForMaskedLM", "BigBirdForCausalLM"):
            nsp = head == "BigBirdForPreTraining"
            out["logits"], out["nsp"] = _Predictions(c, self.dtype, nsp, name="cls")(
                x, pooled, body["word_embeddings"]
            )
        elif head == "BigBirdForSequenceClassification":
            out["logits"] = _ClassificationHead(c, self.dtype, name="classifier")(x, deterministic)
        elif head == "BigBirdForMultipleChoice":
            pooled = nn.Dropout(c.hidden_dropout_prob)(pooled, deterministic=deterministic)
            out["logits"] = dense(c, 1, "classifier", self.dtype)(pooled)
        elif head == "BigBirdForTokenClassification":
            x = nn.Dropout(c.effective_classifier_dropout)(x, deterministic=deterministic)
            out["logits"] = dense(c, c.num_labels, "classifier", self.dtype)(x)
        elif head == "BigBirdForQuestionAnswering":
            logits = _QAHead(c, self.dtype, name="qa_classifier")(x, deterministic)
            if logits_mask is not None:
                logits = logits - logits_mask[:, :, None].astype(logits.dtype) * QA_LOGITS_PENALTY
            out["logits"] = logits
        return out
