"""Flax (linen) body modules with transformers' Flax parameter tree: embeddings, encoder, pooler.

Parameter paths are those of transformers 4.x ``FlaxBigBird*`` (``embeddings/word_embeddings/embedding``,
``encoder/layer/0/attention/self/query/kernel``, ...), so its ``flax_model.msgpack`` files load.
Parameters stay float32; ``dtype`` is the compute dtype.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core.activations import activation
from bigbird_core.cache import causal_mask
from bigbird_core.config import BigBirdConfig
from bigbird_core.head_specs import BASE_HEAD
from bigbird_core.kernels import check_kernel
from bigbird_core.layout import distinct_slot_bias, slot_key_blocks
from bigbird_core.recipe import BodyOutput, PreparedCall, finish_call, prepare_call
from bigbird_core.validate import check_inputs
from flax import struct

from .attention import block_sparse_attention, full_attention
from .plans import draw_plan
from .sequence import shard_attention

# JAX's kernel of each activation kind (the names and aliases are bigbird_core.activations')
ACTIVATION_KINDS = {"gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
                    "gelu_erf": lambda x: jax.nn.gelu(x, approximate=False), "relu": jax.nn.relu,
                    "silu": jax.nn.silu, "tanh": jnp.tanh}  # fmt: skip


def act(name: str):
    """The JAX function of activation ``name`` (``config.hidden_act``)."""
    return activation(name, ACTIVATION_KINDS)


@struct.dataclass
class LayoutArrays:
    """The core's block layout of a call as arrays, every layer: the merged slots (fast path: ``slot_bias``
    given) or the full layout (exact dense probabilities, or a traced plan that may repeat blocks)."""

    key_blocks: Any  # (layers, heads, n-2, S) key block of every slot
    slot_bias: Any = None  # (layers, heads, n-2, S) log-multiplicity or -inf of merged slots; else None
    block_size: int = struct.field(pytree_node=False, default=64)  # tokens per block


@struct.dataclass
class LayerContext:
    """What every encoder layer needs of one call (a pytree: it passes through remat and jit)."""

    mask: Any  # (B, K) attention mask in the softmax dtype
    additive_mask: Any = None  # full attention: (B, 1, Lq, K); else None
    cross_mask: Any = None  # cross-attention: (B, 1, 1, Le) additive; else None
    encoder_hidden_states: Any = None  # cross-attention: (B, Le, hidden); else None
    layout: LayoutArrays | None = None  # block-sparse: the layout of every layer; else None
    sequence: Any = None  # inside shard_map: this shard's part of a sequence-parallel call (ShardedCall)
    kernel: str = struct.field(pytree_node=False, default="auto")  # bigbird_core.kernels


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
    def __call__(self, x, ctx: LayerContext, layer: int, head_mask, deterministic: bool, output_attentions: bool):
        c = self.config
        batch, seq, _ = x.shape

        def split(t):
            return t.reshape(batch, seq, c.num_attention_heads, c.head_dim).transpose(
                0, 2, 1, 3
            )  # (B, H, L, d)

        q, k, v = (
            nn.with_logical_constraint(split(dense(c, c.hidden_size, name, self.dtype, c.use_bias)(x)), HEADS_ACT)
            for name in ("query", "key", "value")
        )
        if ctx.sequence is not None:  # this shard's blocks of a sequence split over devices (bigbird_flax.sequence)
            plan, arrays = ctx.sequence.plan, {name: a[layer] for name, a in ctx.sequence.arrays.items()}
            out, probs = shard_attention(q, k, v, ctx.mask, arrays, plan.shards, plan.axis), None
        elif ctx.layout is not None:
            out, probs = block_sparse_attention(q, k, v, ctx.mask, ctx.layout, layer=layer, kernel=ctx.kernel,
                                                output_attentions=output_attentions)  # fmt: skip
        else:
            additive = ctx.additive_mask
            if c.is_decoder:
                k, v, additive = self.fixed_cache(k, v, ctx.mask, additive)
            drop = nn.Dropout(c.attention_probs_dropout_prob)
            out, probs = full_attention(q, k, v, additive, head_mask,
                                        lambda p: drop(p, deterministic=deterministic))  # fmt: skip
        out = out.transpose(0, 2, 1, 3).reshape(batch, seq, c.hidden_size)
        return nn.with_logical_constraint(out, ("batch", None, "act_heads")), probs

    def fixed_cache(self, k, v, mask, additive):
        """Decoders: the fixed-size cache (``bigbird_core.cache``). Initialising declares it (sized by the
        input: ``init_cache`` initialises on ``max_length`` tokens); a call with a ``"cache"`` collection writes
        the new keys and values at ``cache_index`` and attends to every cached position the mask and the causal
        rule allow. Other calls leave ``k``, ``v`` and the mask as they are."""
        batch, heads, seq, d = k.shape
        initializing = self.is_initializing()
        if not (initializing or self.has_variable("cache", "cached_key")):
            return k, v, additive
        cached_key = self.variable("cache", "cached_key", jnp.zeros, (batch, seq, heads, d), k.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, (batch, seq, heads, d), v.dtype)
        index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if initializing:
            return k, v, additive
        start = index.value
        cached_key.value = jax.lax.dynamic_update_slice(cached_key.value, k.transpose(0, 2, 1, 3), (0, start, 0, 0))
        cached_value.value = jax.lax.dynamic_update_slice(cached_value.value, v.transpose(0, 2, 1, 3),
                                                          (0, start, 0, 0))  # fmt: skip
        index.value = start + seq
        return (cached_key.value.transpose(0, 2, 1, 3), cached_value.value.transpose(0, 2, 1, 3),
                causal_mask(mask, start, seq))  # fmt: skip


class FlaxBigBirdCrossSelfAttention(nn.Module):
    """The queries of the decoder and the keys and values of the encoder's hidden states (full attention)."""

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, ctx: LayerContext, head_mask, deterministic: bool):
        c = self.config
        enc = ctx.encoder_hidden_states.astype(self.dtype)

        def split(t):
            return t.reshape(t.shape[0], t.shape[1], c.num_attention_heads, c.head_dim).transpose(0, 2, 1, 3)

        q = split(dense(c, c.hidden_size, "query", self.dtype, c.use_bias)(x))  # (B, H, L, d)
        project = lambda name: split(dense(c, c.hidden_size, name, self.dtype, c.use_bias)(enc))  # noqa: E731
        if self.is_mutable_collection("cache") and not self.is_initializing():
            # decoding on a cache: the encoder's keys and values are computed on the first step and kept
            # (bigbird_core.cache); later steps read them (the encoder states must stay the same)
            if not self.has_variable("cache", "cached_key"):
                k, v = project("key"), project("value")
            ck = self.variable("cache", "cached_key", lambda: k.transpose(0, 2, 1, 3))  # (B, Le, H, d)
            cv = self.variable("cache", "cached_value", lambda: v.transpose(0, 2, 1, 3))
            k, v = ck.value.transpose(0, 2, 1, 3), cv.value.transpose(0, 2, 1, 3)
        else:
            k, v = project("key"), project("value")
        drop = nn.Dropout(c.attention_probs_dropout_prob)
        out, probs = full_attention(q, k, v, ctx.cross_mask, head_mask,
                                    lambda p: drop(p, deterministic=deterministic))  # fmt: skip
        return out.transpose(0, 2, 1, 3).reshape(x.shape), probs


class FlaxBigBirdCrossAttention(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, ctx, head_mask, deterministic: bool):
        out, probs = FlaxBigBirdCrossSelfAttention(self.config, self.dtype, name="self")(
            x, ctx, head_mask, deterministic)  # fmt: skip
        return FlaxBigBirdResidualOutput(self.config, self.dtype, name="output")(out, x, deterministic), probs


# Logical axes of activations (a no-op unless the caller sets flax's logical_axis_rules under a mesh):
# "batch" the examples, "act_heads" the attention heads, "act_mlp" the feed-forward width, "act_embed" the
# model width. With ("batch", "data") the activations stay sharded by example (data parallelism, FSDP: XLA
# gathers weights, not activations); ("act_heads", "model"), ("act_mlp", "model") keep tensor parallelism's
# split (DATA_PARALLEL_RULES, TENSOR_PARALLEL_RULES).
HEADS_ACT = ("batch", "act_heads", None, None)  # (B, H, L, d)
DATA_PARALLEL_RULES = (("batch", "data"),)  # data parallelism and FSDP
TENSOR_PARALLEL_RULES = (("batch", "data"), ("act_heads", "model"), ("act_mlp", "model"))


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
    def __call__(self, x, ctx: LayerContext, layer: int, head_mask, deterministic: bool, output_attentions: bool):
        out, probs = FlaxBigBirdSelfAttention(self.config, self.dtype, name="self")(
            x, ctx, layer, head_mask, deterministic, output_attentions)  # fmt: skip
        return FlaxBigBirdResidualOutput(self.config, self.dtype, name="output")(out, x, deterministic), probs


class FlaxBigBirdIntermediate(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = act(self.config.hidden_act)(dense(self.config, self.config.intermediate_size, "dense", self.dtype)(x))
        return nn.with_logical_constraint(h, ("batch", None, "act_mlp"))


class FlaxBigBirdLayer(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x, ctx: LayerContext, layer: int, head_mask, deterministic: bool = True, output_attentions: bool = False
    ):
        x, probs = FlaxBigBirdAttention(self.config, self.dtype, name="attention")(
            x, ctx, layer, head_mask, deterministic, output_attentions)  # fmt: skip
        cross = None
        if ctx.encoder_hidden_states is not None:
            x, cross = FlaxBigBirdCrossAttention(self.config, self.dtype, name="crossattention")(
                x, ctx, head_mask, deterministic)  # fmt: skip
        h = FlaxBigBirdIntermediate(self.config, self.dtype, name="intermediate")(x)
        return FlaxBigBirdResidualOutput(self.config, self.dtype, name="output")(h, x, deterministic), (probs, cross)


class FlaxBigBirdLayerCollection(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(self, x, ctx: LayerContext, head_masks, deterministic, output_attentions, output_hidden_states):
        layer_cls = FlaxBigBirdLayer
        if self.gradient_checkpointing:  # layer, deterministic, output_attentions are static (self is 0)
            layer_cls = nn.remat(FlaxBigBirdLayer, static_argnums=(3, 5, 6))
        hidden, attentions, crosses = [], [], []
        for i in range(self.config.num_hidden_layers):
            if output_hidden_states:
                hidden.append(x)
            hm = None if head_masks is None else head_masks[i][None, :, None, None]
            # activations stay sharded by example under a mesh with logical-axis rules ("batch" -> the data
            # axis): with FSDP, XLA then gathers the weights, not the activations (a no-op without rules)
            x = nn.with_logical_constraint(x, ("batch", None, "act_embed"))
            x, (probs, cross) = layer_cls(self.config, self.dtype, name=str(i))(
                x, ctx, i, hm, deterministic, output_attentions
            )
            if output_attentions:
                attentions.append(probs)
                crosses.append(cross)
        if output_hidden_states:
            hidden.append(x)
        return x, tuple(hidden), tuple(attentions), tuple(crosses)


class FlaxBigBirdEncoder(nn.Module):
    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    gradient_checkpointing: bool = False

    @nn.compact
    def __call__(self, *args):
        return FlaxBigBirdLayerCollection(self.config, self.dtype, self.gradient_checkpointing, name="layer")(
            *args
        )


def layout_arrays(prep: PreparedCall, drawn: bool) -> LayoutArrays | None:
    """The attention layout of a prepared call as arrays, or None for full attention: the core's merged slots
    (fast path), the full layout (exact dense probabilities, or a traced plan that may repeat blocks), or a
    drawn plan's own layout (its blocks are distinct)."""
    b = prep.config.block_size
    if prep.layout is not None:
        if prep.output_attentions:
            return LayoutArrays(jnp.asarray(prep.layout.layout.key_blocks), block_size=b)
        merged = prep.layout.compact
        return LayoutArrays(jnp.asarray(merged.key_blocks), jnp.asarray(merged.slot_bias, jnp.float32), b)
    if prep.plan is not None:
        blocks = slot_key_blocks(jnp.asarray(prep.plan, jnp.int32))
        bias = distinct_slot_bias(blocks) if drawn and not prep.output_attentions else None
        return LayoutArrays(blocks, bias, b)
    return None


_HOST_CHECKED = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "question_lengths")


def on_device(config: BigBirdConfig, head: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's host arrays (NumPy, lists) as JAX arrays, so that the recipe runs in JAX even when the arrays are
    closed over by a user's ``jax.jit`` (a NumPy mask indexed by traced key blocks cannot be); integer inputs are
    judged on the host first (JAX without x64 would truncate int64 ids past int32)."""
    host = {k: v for k, v in arguments.items() if v is not None and not isinstance(v, jax.Array)
            and not isinstance(v, (bool, int, float, str)) and hasattr(np.asarray(v), "dtype")}  # fmt: skip
    if not host:
        return arguments
    host = {k: np.asarray(v) for k, v in host.items()}
    checked = {k: host[k] for k in _HOST_CHECKED if k in host}
    if checked and (arguments.get("input_ids") is not None or arguments.get("inputs_embeds") is not None):
        ref = {k: arguments[k] for k in ("input_ids", "inputs_embeds") if arguments.get(k) is not None}
        check_inputs(config, head, **{**ref, **checked})
    return {**arguments, **{k: jnp.asarray(v) for k, v in host.items() if v.dtype.kind in "biuf"}}


def prepare(module: nn.Module, head: str, deterministic: bool, plan: Any, **arguments: Any) -> tuple:
    """The core's call recipe inside a linen module: ``(prepared call, whether the plan was drawn)``.

    A decoder applied with a ``"cache"`` collection decodes on its fixed-size cache (``bigbird_core.cache``).

    In train mode (``deterministic=False``) with an ``indices`` rng stream, the plan is drawn on the device
    (:func:`bigbird_flax.plans.draw_plan`) and sown as the intermediate ``plan``; otherwise it is the
    config's (or the one given).
    """
    drawn = plan is None and not deterministic and module.has_rng("indices")
    if drawn:
        config = module.config
        plan = lambda n: draw_plan(module.make_rng("indices"), config, n)  # noqa: E731
    arguments = on_device(module.config, head, arguments)
    cached = module.config.is_decoder and not module.is_initializing() and "cache" in module.variables
    mask = arguments.get("attention_mask")
    cache_size = (mask.shape[-1] if mask is not None else 0) if cached else None
    prep = prepare_call(module.config, head, dtype=module.dtype, training=not deterministic, plan=plan,
                        cache_size=cache_size, **arguments)  # fmt: skip
    drawn = drawn and prep.plan is not None
    if drawn:  # visible with apply(..., mutable=["intermediates"])
        module.sow("intermediates", "plan", prep.plan)
    return prep, drawn


class FlaxBigBirdModule(nn.Module):
    """``BigBirdModel`` as a linen module: embeddings + encoder + optional pooler, with transformers' Flax
    parameter tree. Called on raw inputs it does what the ``FlaxBigBirdModel`` wrapper does (the core's
    validation, padding, plan and layout; block-sparse when the length allows), so it can live inside a
    user's own module.

    Example:
        >>> module = FlaxBigBirdModule(config)
        >>> params = module.init(jax.random.PRNGKey(0), ids)["params"]
        >>> module.apply({"params": params}, ids).last_hidden_state.shape
    """

    config: BigBirdConfig
    dtype: jnp.dtype = jnp.float32
    add_pooling_layer: bool = True
    gradient_checkpointing: bool = False
    kernel: str = "auto"  # the block-sparse kernel (bigbird_core.kernels)

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 deterministic: bool = True, output_attentions: bool = False, output_hidden_states: bool = False,
                 return_dict: bool = True, plan=None):  # fmt: skip
        prep, drawn = prepare(self, BASE_HEAD, deterministic, plan, input_ids=input_ids,
                              attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
                              head_mask=head_mask, inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                              output_hidden_states=output_hidden_states, return_dict=return_dict,
                              encoder_hidden_states=encoder_hidden_states,
                              encoder_attention_mask=encoder_attention_mask)  # fmt: skip
        return finish_call(prep, self.run(prep, deterministic, drawn))

    @nn.compact
    def run(self, prep: PreparedCall, deterministic: bool = True, drawn: bool = False, sequence=None) -> BodyOutput:
        """Embeddings, encoder and pooler on a call prepared by the core (the sequence is not cut back).

        ``sequence``: inside ``shard_map``, this shard's part of a sequence-parallel call (see
        ``bigbird_flax.sequence.sequence_parallel_apply``): ``prep`` then holds this shard's tokens.
        """
        c = self.config
        embeddings = FlaxBigBirdEmbeddings(c, self.dtype, name="embeddings")
        embeds = prep.inputs_embeds
        pad = prep.embeds_pad
        if pad is not None:  # transformers pads given embeddings with the embedding output of pad tokens
            extra, _ = embeddings(pad["input_ids"], pad["token_type_ids"], pad["position_ids"], None, deterministic)
            embeds = prep.full_embeds(extra)
        x, table = embeddings(prep.input_ids, prep.token_type_ids, prep.position_ids, embeds, deterministic)
        ctx = LayerContext(mask=prep.attention_mask, additive_mask=prep.additive_mask, cross_mask=prep.cross_mask,
                           encoder_hidden_states=prep.encoder_hidden_states, sequence=sequence,
                           layout=None if sequence is not None else layout_arrays(prep, drawn),
                           kernel=check_kernel(self.kernel, "flax"))  # fmt: skip
        x, hidden, attentions, crosses = FlaxBigBirdEncoder(c, self.dtype, self.gradient_checkpointing, name="encoder")(
            x, ctx, prep.head_mask, deterministic, prep.output_attentions, prep.output_hidden_states)  # fmt: skip
        pooled = None
        if self.add_pooling_layer:
            pooled = jnp.tanh(dense(c, c.hidden_size, "pooler", self.dtype)(x[:, 0]))
        with_cross = prep.output_attentions and prep.encoder_hidden_states is not None
        return BodyOutput(x, pooled, hidden_states=hidden if prep.output_hidden_states else None,
                          attentions=attentions if prep.output_attentions else None,
                          cross_attentions=crosses if with_cross else None, word_embeddings=table)  # fmt: skip
