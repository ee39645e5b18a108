"""The wrappers' jitted applies (compiled code per module description, no data) and the fixed-size cache's
checks before a jitted call."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
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


def cache_room(config: BigBirdConfig, head: str, cache: Any, batch: int, seq: int) -> int:
    """Validate a fixed-size cache given as ``past_key_values``; returns its ``max_length``."""
    check_cache_head(head)
    if not config.is_decoder:
        raise fail(InputError, "past_key_values", "None unless config.is_decoder is True", "a cache")
    names = lambda path: [getattr(p, "key", None) for p in path]  # noqa: E731
    keys = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(cache)
            if names(path)[-1] == "cached_key" and "crossattention" not in names(path)]  # self-attention's  # fmt: skip
    indices = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(cache)
               if getattr(path[-1], "key", None) == "cache_index"]  # fmt: skip
    heads, d = config.num_attention_heads, config.head_dim
    if len(keys) != config.num_hidden_layers or len(indices) != len(keys) or any(
            k.ndim != 4 or k.shape[0] != batch or k.shape[2:] != (heads, d) for k in keys):  # fmt: skip
        raise fail(InputError, "past_key_values", f"the cache of init_cache({batch}, max_length) (or of the call "
                   "before)", "another pytree")  # fmt: skip
    max_length = int(keys[0].shape[1])
    if all(not isinstance(i, jax.core.Tracer) for i in indices):
        used = int(np.asarray(indices[0]))
        if used + seq > max_length:
            raise fail(InputError, "past_key_values", f"room for {seq} more token(s)", f"a cache holding {used} "
                       f"of its max_length {max_length}")  # fmt: skip
    return max_length
