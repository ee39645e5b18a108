"""``generate`` for Flax decoders: the core's decoding rules (``bigbird_core.generation``) in one jitted
``lax.while_loop`` over the fixed-size cache (static shapes: the output is always ``max_length`` long, finished
sequences padded), with JAX's random numbers for sampling."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bigbird_core import generation as G
from bigbird_core.cache import cache_mask
from bigbird_core.errors import InputError, fail


def _step(module: nn.Module, params, cache, ids, mask, positions, cross: dict):
    """The decoder on new tokens ``ids`` ``(N, q)`` with the cache: last logits ``(N, V)`` and the new cache."""
    out, mutated = module.apply({"params": params, "cache": cache}, ids, mask, position_ids=positions, **cross,
                                mutable=["cache"])  # fmt: skip
    return out.logits[:, -1].astype(jnp.float32), mutated["cache"]


def _reorder(cache, rows: jax.Array):
    """The cache of the beams in ``rows``: every array with a batch axis (not the scalar indices)."""
    return jax.tree_util.tree_map(lambda x: jnp.take(x, rows, axis=0) if x.ndim else x, cache)


@functools.partial(jax.jit, static_argnames=("module", "g"))
def decode(module: nn.Module, g: G.Generation, params, cache, input_ids, attention_mask, cross: dict,
           key: jax.Array) -> tuple[jax.Array, jax.Array]:  # fmt: skip
    """Greedy, sampling or beam search from ``input_ids`` ``(B, P)``; returns ``(B, max_length)`` and whether a
    step had no finite score for a sequence (checked after the loop: raising inside it is not possible)."""
    batch, plen = input_ids.shape
    K, T = g.num_beams, g.max_length
    if K > 1:
        input_ids, attention_mask = (jnp.repeat(x, K, axis=0) for x in (input_ids, attention_mask))
        cross = {k: jnp.repeat(v, K, axis=0) for k, v in cross.items()}
    # the mask of every position the cache will hold: the prompt's, then the generated tokens'
    mask = cache_mask(attention_mask, T)
    positions = G.positions_from_mask(attention_mask)
    logits, cache = _step(module, params, cache, input_ids, mask, positions, cross)
    last_pos = positions[:, -1:]

    if K == 1:
        tokens = jnp.full((batch, T), g.pad, input_ids.dtype).at[:, :plen].set(input_ids)

        def cond(carry):
            cur, _, unfinished, *_ = carry
            return (cur < T) & jnp.any(unfinished)

        def body(carry):
            cur, tokens, unfinished, logits, cache, pos, key, bad = carry
            bad = bad | jnp.any(G.unusable_scores(logits) & unfinished)
            key, draw = jax.random.split(key)
            scores = G.warp(logits, g)
            chosen = jax.random.categorical(draw, scores, axis=-1) if g.do_sample else jnp.argmax(scores, axis=-1)
            chosen = G.next_tokens(chosen.astype(tokens.dtype), unfinished, g)
            tokens = jax.lax.dynamic_update_slice(tokens, chosen[:, None], (0, cur))
            unfinished = unfinished & ~G.is_eos(chosen, g)
            pos = pos + 1
            logits, cache = _step(module, params, cache, chosen[:, None], mask, pos, cross)
            return cur + 1, tokens, unfinished, logits, cache, pos, key, bad

        carry = (jnp.asarray(plen), tokens, jnp.ones((batch,), bool), logits, cache, last_pos, key, jnp.asarray(False))
        carry = jax.lax.while_loop(cond, body, carry)
        return carry[1], carry[-1]

    state = G.beam_start(input_ids.reshape(batch, K, plen)[:, 0], g)

    def cond(carry):
        return G.beam_continues(carry[1], g)

    def body(carry):
        cur, state, logits, cache, pos, key, bad = carry
        bad = bad | jnp.any(G.unusable_scores(logits))
        key, draw = jax.random.split(key)
        log_probs = G.warp(G.log_softmax(logits), g)
        sampled = None
        if g.do_sample:  # without replacement: the largest of the scores plus Gumbel noise
            acc = G.beam_candidates_scores(state, log_probs)
            noisy = acc + jax.random.gumbel(draw, acc.shape, acc.dtype)
            sampled = jnp.argsort(-noisy, axis=-1)[:, : state["hits"].shape[1]]
        state, rows = G.beam_step(state, log_probs, cur, g, sampled)
        cache = _reorder(cache, rows)
        chosen = jax.lax.dynamic_slice_in_dim(state["running"].reshape(batch * K, T), cur, 1, axis=1)
        pos = pos + 1
        logits, cache = _step(module, params, cache, chosen, mask, pos, cross)
        return cur + 1, state, logits, cache, pos, key, bad

    carry = jax.lax.while_loop(cond, body, (jnp.asarray(plen), state, logits, cache, last_pos, key,
                                            jnp.asarray(False)))  # fmt: skip
    return G.beam_result(carry[1], g)[0], carry[-1]


def generate(model: Any, input_ids: Any, attention_mask: Any, g: G.Generation, *, params: Any = None,
             encoder_hidden_states: Any = None, encoder_attention_mask: Any = None,
             prng_key: jax.Array | None = None) -> jax.Array:  # fmt: skip
    """Decode with ``model`` (a ``FlaxBigBirdForCausalLM``); see :func:`decode`."""
    input_ids = jnp.asarray(input_ids)
    mask = jnp.ones_like(input_ids) if attention_mask is None else jnp.asarray(attention_mask).astype(input_ids.dtype)
    cross = {}
    if encoder_hidden_states is not None:
        cross["encoder_hidden_states"] = jnp.asarray(encoder_hidden_states)
        cross["encoder_attention_mask"] = (jnp.ones(cross["encoder_hidden_states"].shape[:2], jnp.int32)
                                           if encoder_attention_mask is None else jnp.asarray(encoder_attention_mask))  # fmt: skip
    cache = model.init_cache(input_ids.shape[0] * g.num_beams, g.max_length)
    key = jax.random.PRNGKey(0) if prng_key is None else check_key(prng_key)
    tokens, bad = decode(model.module, g, model.params if params is None else params, cache, input_ids, mask, cross,
                         key)  # fmt: skip
    if bool(bad):  # NaN weights: refuse rather than return token 0
        raise G.scores_error()
    return tokens


def check_key(key: Any) -> jax.Array:
    """``prng_key``: a JAX PRNG key, ``jax.random.PRNGKey(seed)`` (uint32 ``(2,)``) or ``jax.random.key(seed)``."""
    typed = isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()
    raw = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
    if not (typed or raw):
        raise fail(InputError, "prng_key", "a JAX PRNG key (jax.random.PRNGKey(seed) or jax.random.key(seed))", key)
    return key
