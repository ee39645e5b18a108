"""The wrappers' jitted applies (compiled code per module description, no data) and the fixed-size cache's
checks before a jitted call."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core.cache import check_cache_head
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import InputError, fail

JIT_CACHE_SIZE = 32  # jitted applies kept per process (one per module description: compiled code, no data)


@functools.lru_cache(maxsize=JIT_CACHE_SIZE)
def jitted_apply(module: nn.Module):
    """``module.apply`` under ``jax.jit``, one per module description (config, dtype, head options): every
    wrapper of the same configuration shares its compiled functions."""

    def apply(params, inputs, labels, rngs, *, deterministic, output_attentions, output_hidden_states):
        return module.apply({"params": params}, **inputs, **labels, deterministic=deterministic,
                            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                            rngs=rngs)  # fmt: skip

    return jax.jit(apply, static_argnames=("deterministic", "output_attentions", "output_hidden_states"))


@functools.lru_cache(maxsize=JIT_CACHE_SIZE)
def jitted_cached_apply(module: nn.Module):
    """``module.apply`` on a fixed-size cache under ``jax.jit``: returns the output and the updated cache."""

    def apply(params, cache, inputs, labels, rngs, *, deterministic, output_attentions, output_hidden_states):
        out, mutated = module.apply({"params": params, "cache": cache}, **inputs, **labels,
                                    deterministic=deterministic, output_attentions=output_attentions,
                                    output_hidden_states=output_hidden_states, rngs=rngs,
                                    mutable=["cache"])  # fmt: skip
        return out, mutated["cache"]

    return jax.jit(apply, static_argnames=("deterministic", "output_attentions", "output_hidden_states"))


def cache_room(config: BigBirdConfig, head: str, cache: Any, batch: int, seq: int, *, dtype: Any = None,
               encoder_len: int | None = None) -> int:  # fmt: skip
    """Validate a fixed-size cache given as ``past_key_values``; returns its ``max_length``.

    Every self-attention's keys and values ``(batch, max_length, heads, head_dim)`` of the compute ``dtype``, every
    layer's ``cache_index`` the same integer in ``[0, max_length]`` with room for ``seq`` more tokens (when concrete),
    cross-attention keys of ``encoder_len`` states.
    """
    check_cache_head(head)
    if not config.is_decoder:
        raise fail(InputError, "past_key_values", "None unless config.is_decoder is True", "a cache")
    names = lambda path: [getattr(p, "key", None) for p in path]  # noqa: E731
    leaves = [(names(path), leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(cache)]
    keys = [leaf for n, leaf in leaves if n[-1] in ("cached_key", "cached_value") and "crossattention" not in n]
    cross = [leaf for n, leaf in leaves if n[-1] in ("cached_key", "cached_value") and "crossattention" in n]
    indices = [leaf for n, leaf in leaves if n[-1] == "cache_index"]
    heads, d = config.num_attention_heads, config.head_dim
    layers = config.num_hidden_layers
    if len(keys) != 2 * layers or len(indices) != layers or any(
            getattr(k, "ndim", 0) != 4 or k.shape[0] != batch or k.shape[2:] != (heads, d)
            or k.shape[1] != keys[0].shape[1] for k in keys):  # fmt: skip
        raise fail(InputError, "past_key_values", f"the cache of init_cache({batch}, max_length) (or of the call "
                   "before)", "another pytree")  # fmt: skip
    floating = lambda x: jnp.issubdtype(x.dtype, jnp.floating) and (dtype is None or x.dtype == dtype)  # noqa: E731
    for leaf in keys + cross:
        if not floating(leaf):
            want = "floating point" if dtype is None else str(jnp.dtype(dtype))
            raise fail(InputError, "past_key_values", f"cached keys and values of {want}", f"an array of "
                       f"{leaf.dtype}")  # fmt: skip
    if encoder_len is not None and any(c.ndim != 4 or c.shape[1] != encoder_len for c in cross):
        raise fail(InputError, "past_key_values", f"cross-attention keys of the {encoder_len} encoder states given",
                   f"a cache of {cross[0].shape[1]} encoder states")  # fmt: skip
    max_length = int(keys[0].shape[1])
    if any(getattr(i, "shape", None) != () or not jnp.issubdtype(i.dtype, jnp.integer) for i in indices):
        raise fail(InputError, "past_key_values", "an integer cache_index in every layer", "another pytree")
    if all(not isinstance(i, jax.core.Tracer) for i in indices):
        used = {int(np.asarray(i)) for i in indices}
        if len(used) != 1:
            raise fail(InputError, "past_key_values", "the same cache_index in every layer",
                       f"indices {sorted(used)}")  # fmt: skip
        (index,) = used
        if not 0 <= index <= max_length:
            raise fail(InputError, "past_key_values", f"a cache_index in [0, {max_length}]", str(index))
        if index + seq > max_length:
            raise fail(InputError, "past_key_values", f"room for {seq} more token(s)", f"a cache holding {index} "
                       f"of its max_length {max_length}")  # fmt: skip
    return max_length
