"""Random plans drawn inside ``jax.jit``: the core's rule for fresh plans, executed with a JAX key.

The core makes every plan that is data (``bigbird_core.plans``); this module only draws the fresh
per-step plans of training from an ``indices`` rng stream, which must happen on the device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bigbird_core.config import BigBirdConfig
from bigbird_core.plans import legal_random_blocks


def draw_plan(key: jax.Array, config: BigBirdConfig, num_blocks: int) -> jnp.ndarray:
    """A fresh plan ``(layers, heads, num_blocks - 2, r)``: per layer, head and row, ``r`` distinct blocks
    chosen uniformly among the legal ones (``bigbird_core.plans.legal_random_blocks``).

    Example:
        >>> draw_plan(jax.random.PRNGKey(0), config, 20).shape
        (12, 12, 18, 3)
    """
    legal = jnp.asarray(legal_random_blocks(num_blocks))  # (n-2, n)
    shape = (config.num_hidden_layers, config.num_attention_heads, num_blocks - 2, num_blocks)
    scores = jnp.where(legal, jax.random.uniform(key, shape), jnp.inf)  # illegal blocks sort last
    return jnp.argsort(scores, axis=-1)[..., : config.num_random_blocks].astype(jnp.int32)
