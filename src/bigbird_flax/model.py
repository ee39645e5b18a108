"""Flax (linen) body modules with transformers' Flax parameter tree: embeddings, encoder, pooler.

Parameter paths are those of transformers 4.x ``FlaxBigBird*`` (``embeddings/word_embeddings/embedding``,
``encoder/layer/0/attention/self/query/kernel``, ...), so its ``flax_model.msgpack`` files load.
Parameters stay float32; ``dtype`` is the compute dtype.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigbird_core.config import BigBirdConfig

from .attention import block_sparse_attention, full_attention

ACTIVATIONS = {
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "linear": lambda x: x,
}


def dense(config: BigBirdConfig, features: int, name: str, dtype, use_bias: bool = True) -> nn.Dense:
    init = jax.nn.initializers.normal(config.initializer_range)
    return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=init, name=name)


def layer_norm(config: BigBirdConfig, name: str, dtype) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=dtype, use_fast_variance=False, name=name)


class FlaxBigBirdEmbeddings(nn.Module):
    """word (x sqrt(hidden) if rescale_embeddings) + token type + position, dropout, then LayerNorm."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, input_ids, token_type_ids, position_ids, inputs_embeds=None, deterministic: bool = True
    ):
        c = self.config
        init = jax.nn.initializers.normal(c.initializer_range)
        words = nn.Embed(
            c.vocab_size, c.hidden_size, embedding_init=init, dtype=self.dtype, name="word_embeddings"
        )
        positions = nn.Embed(c.max_position_embeddings, c.hidden_size, embedding_init=init, dtype=self.dtype,
                             name="position_embeddings")  # fmt: skip
        types = nn.Embed(c.type_vocab_size, c.hidden_size, embedding_init=init, dtype=self.dtype,
                         name="token_type_embeddings")  # fmt: skip
        norm = layer_norm(c, "LayerNorm", self.dtype)
        if inputs_embeds is None:
            # as torch's padding_idx: the pad token's row gets no gradient
            looked = words(input_ids)  # (B, L, hidden)
            x = jnp.where((input_ids == c.pad_token_id)[..., None], jax.lax.stop_gradient(looked), looked)
        else:
            x = inputs_embeds.astype(self.dtype)  # (B, L, hidden)
        if c.rescale_embeddings:
            x = x * math.sqrt(c.hidden_size)
        x = x + types(token_type_ids) + positions(position_ids)
        x = nn.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
        return norm(x), words.embedding


class FlaxBigBirdSelfAttention(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, ctx: dict, key_blocks, head_mask, deterministic: bool, output_attentions: bool):
        c = self.config
        batch, seq, _ = x.shape

        def split(t):
            return t.reshape(batch, seq, c.num_attention_heads, c.head_dim).transpose(
                0, 2, 1, 3
            )  # (B, H, L, d)

        q = split(dense(c, c.hidden_size, "query", self.dtype, c.use_bias)(x))
        k = split(dense(c, c.hidden_size, "key", self.dtype, c.use_bias)(x))
        v = split(dense(c, c.hidden_size, "value", self.dtype, c.use_bias)(x))
        if key_blocks is not None:
            blocks, bias = key_blocks
            out, probs = block_sparse_attention(
                q, k, v, ctx["mask"], blocks, c.block_size, output_attentions, bias
            )
        else:
            drop = nn.Dropout(c.attention_probs_dropout_prob)
            out, probs = full_attention(q, k, v, ctx["additive_mask"], head_mask,
                                        lambda p: drop(p, deterministic=deterministic))  # fmt: skip
        return out.transpose(0, 2, 1, 3).reshape(batch, seq, c.hidden_size), probs


class FlaxBigBirdResidualOutput(nn.Module):
    """dense, dropout, LayerNorm(+ residual): the attention output and the feed-forward output."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, residual, deterministic: bool):
        c = self.config
        x = dense(c, c.hidden_size, "dense", self.dtype)(x)
        x = nn.Dropout(c.hidden_dropout_prob)(x, deterministic=deterministic)
        return layer_norm(c, "LayerNorm", self.dtype)(x + residual)


class FlaxBigBirdAttention(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, ctx, key_blocks, head_mask, deterministic: bool, output_attentions: bool):
        out, probs = FlaxBigBirdSelfAttention(self.config, self.dtype, name="self")(
            x, ctx, key_blocks, head_mask, deterministic, output_attentions)  # fmt: skip
        return FlaxBigBirdResidualOutput(self.config, self.dtype, name="output")(out, x, deterministic), probs


class FlaxBigBirdIntermediate(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return ACTIVATIONS[self.config.hidden_act](
            dense(self.config, self.config.intermediate_size, "dense", self.dtype)(x)
        )


class FlaxBigBirdLayer(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x, ctx, key_blocks, head_mask, deterministic: bool = True, output_attentions: bool = False
    ):
        x, probs = FlaxBigBirdAttention(self.config, self.dtype, name="attention")(
            x, ctx, key_blocks, head_mask, deterministic, output_attentions)  # fmt: skip
        h = FlaxBigBirdIntermediate(self.config, self.dtype, name="intermediate")(x)
        return FlaxBigBirdResidualOutput(self.config, self.dtype, name="output")(h, x, deterministic), probs


class FlaxBigBirdLayerCollection(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(
        self, x, ctx, key_blocks, head_masks, deterministic, output_attentions, output_hidden_states
    ):
        layer_cls = FlaxBigBirdLayer
        if self.gradient_checkpointing:
            layer_cls = nn.remat(FlaxBigBirdLayer, static_argnums=(5, 6))  # deterministic, output_attentions
        hidden, attentions = [], []
        for i in range(self.config.num_hidden_layers):
            if output_hidden_states:
                hidden.append(x)
            kb = (
                None
                if key_blocks is None
                else (key_blocks[0][i], None if key_blocks[1] is None else key_blocks[1][i])
            )
            hm = None if head_masks is None else head_masks[i][None, :, None, None]
            x, probs = layer_cls(self.config, self.dtype, name=str(i))(
                x, ctx, kb, hm, deterministic, output_attentions
            )
            if output_attentions:
                attentions.append(probs)
        if output_hidden_states:
            hidden.append(x)
        return x, tuple(hidden), tuple(attentions)


class FlaxBigBirdEncoder(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(self, *args):
        return FlaxBigBirdLayerCollection(self.config, self.dtype, self.gradient_checkpointing, name="layer")(
            *args
        )


class FlaxBigBirdModule(nn.Module):
    """Embeddings + encoder + optional pooler, on inputs already padded by the wrapper.

    ``key_blocks`` selects block-sparse attention (None: full attention): a pair ``(blocks, slot_bias)`` of
    ``(layers, heads, n-2, S)`` arrays, the merged slots with their bias (fast path) or the full layout
    with ``slot_bias=None`` (exact dense probabilities).
    ``embeds_pad`` > 0 pads given embeddings with the embedding output of pad tokens (transformers' rule).
    """

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(self, input_ids, attention_mask, token_type_ids, position_ids, head_mask=None, inputs_embeds=None,
                 key_blocks=None, deterministic: bool = True, output_attentions: bool = False,
                 output_hidden_states: bool = False, embeds_pad: int = 0):  # fmt: skip
        c = self.config
        embeddings = FlaxBigBirdEmbeddings(c, self.dtype, name="embeddings")
        if inputs_embeds is not None and embeds_pad:
            batch = inputs_embeds.shape[0]
            pad_ids = jnp.full((batch, embeds_pad), c.pad_token_id, jnp.int32)
            pad_pos = jnp.broadcast_to(jnp.arange(embeds_pad), pad_ids.shape)
            extra, _ = embeddings(pad_ids, jnp.zeros_like(pad_ids), pad_pos, None, deterministic)
            inputs_embeds = jnp.concatenate([inputs_embeds.astype(extra.dtype), extra], axis=1)
        x, table = embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, deterministic)
        sdt = jnp.float32 if self.dtype in (jnp.float16, jnp.bfloat16) else self.dtype
        ctx = {"mask": attention_mask, "additive_mask": None}
        if key_blocks is None:
            keep = attention_mask[:, None, None, :].astype(sdt)  # (B, 1, 1, K)
            if c.is_decoder:
                seq = attention_mask.shape[1]
                keep = keep * (jnp.arange(seq)[None, :] <= jnp.arange(seq)[:, None]).astype(sdt)
            ctx["additive_mask"] = (1.0 - keep) * jnp.finfo(sdt).min
        else:
            head_mask = None  # block-sparse attention has no head mask
        x, hidden, attentions = FlaxBigBirdEncoder(c, self.dtype, self.gradient_checkpointing, name="encoder")(
            x, ctx, key_blocks, head_mask, deterministic, output_attentions, output_hidden_states)  # fmt: skip
        pooled = None
        if self.add_pooling_layer:
            pooled = jnp.tanh(dense(c, c.hidden_size, "pooler", self.dtype)(x[:, 0]))
        return dict(sequence_output=x, pooled=pooled, hidden_states=hidden if output_hidden_states else None,
                    attentions=attentions if output_attentions else None, word_embeddings=table)  # fmt: skip
