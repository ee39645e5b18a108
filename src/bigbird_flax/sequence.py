"""Sequence parallelism in JAX: one example's blocks over a mesh axis, with ``shard_map``.

The core plans the exchange and runs the per-shard attention (``bigbird_core.sequence``); this module gives it
JAX's collectives: one ``ppermute`` per round of the exchange for the key/value tiles (static capacities, so
the compiled program has static shapes), ``psum`` and ``pmax`` for the global rows' softmax. Forward and backward move the
same tiles (the transpose of a ``ppermute`` is the reverse ``ppermute``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from bigbird_core import sequence as core
from bigbird_core.errors import InputError, fail
from bigbird_core.head_specs import BASE_HEAD
from bigbird_core.recipe import BodyOutput, finish_call, prepare_call
from bigbird_core.sequence import SequenceShards, sequence_layout, sequence_shards  # noqa: F401  (re-exported)
from flax import struct


class _Comm:
    """The collectives of one shard over mesh axis ``axis``."""

    def __init__(self, send: jax.Array, shards: SequenceShards, axis: str):
        self.send, self.shards, self.axis = send, shards, axis

    def exchange(self, tiles: jax.Array) -> jax.Array:  # (X, H*m, b, d) -> (X, received, b, d)
        plan = self.shards
        regions: list = [None] * len(plan.region_size)
        for r, (pairs, start) in enumerate(zip(plan.rounds, plan.send_offsets(), strict=True)):
            width, g = plan.capacity[r], plan.region[r]
            out = jnp.take(tiles, self.send[start : start + width], axis=1)  # (X, width, b, d)
            got = jax.lax.ppermute(out, self.axis, perm=list(pairs))  # zeros where this shard receives nothing
            got = jnp.pad(got, ((0, 0), (0, plan.region_size[g] - width), (0, 0), (0, 0)))
            regions[g] = got if regions[g] is None else regions[g] + got  # rounds of a region reach other shards
        return jnp.concatenate(regions, axis=1) if regions else tiles[:, :0]

    def sum(self, x: jax.Array) -> jax.Array:
        return jax.lax.psum(x, self.axis)

    def max(self, x: jax.Array) -> jax.Array:
        return jax.lax.stop_gradient(jax.lax.pmax(jax.lax.stop_gradient(x), self.axis))


def shard_arrays(shards: SequenceShards, layer: int) -> dict[str, jax.Array]:
    """``layer``'s per-shard arrays (shard axis first): shard them over the sequence axis, ``P(axis)``."""
    return {name: jnp.asarray(a) for name, a in shards.per_shard(layer).items()}


def shard_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, local: dict[str, jax.Array],
                    shards: SequenceShards, axis: str) -> jax.Array:  # fmt: skip
    """One shard's block-sparse attention, inside ``shard_map`` over ``axis``.

    Args:
        q, k, v: ``(batch, heads, m * b, d)``, this shard's blocks; mask: ``(batch, L)``, the whole sequence's.
        local: this shard's arrays of the layer (:func:`shard_arrays` under ``in_specs`` ``P(axis)``, their
            leading axis of 1 dropped).
        shards: the plan the arrays came from (its capacities are static).
        axis: the mesh axis over the sequence.
    """
    return core.shard_attention(q, k, v, mask, _Comm(local["send"], shards, axis), **local)


def sequence_parallel_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
                                shards: SequenceShards, layer: int, mesh: Mesh, axis: str = "seq") -> jax.Array:  # fmt: skip
    """``layer``'s block-sparse attention with the sequence split over mesh axis ``axis``.

    Args:
        q, k, v: ``(batch, heads, L, d)`` with ``L = n * block_size`` (a padded call), sharded or not along L.
        mask: ``(batch, L)`` attention mask (replicated: one value per token).
        shards: ``sequence_shards(layout, mesh.shape[axis])``.

    Returns:
        context ``(batch, heads, L, d)`` sharded along L, equal to the one-device attention.

    Example:
        >>> mesh = Mesh(np.array(jax.devices()[:8]), ("seq",))
        >>> ctx = sequence_parallel_attention(q, k, v, mask, sequence_shards(layout, 8), 0, mesh)
    """
    if axis not in mesh.shape or mesh.shape[axis] != shards.shards:
        raise fail(InputError, "mesh", f"a mesh with axis {axis!r} of {shards.shards} devices (the plan's shards)",
                   f"axes {dict(mesh.shape)}")  # fmt: skip
    layer = shards.check_call(q, k, v, mask, layer, shards.num_blocks * shards.block_size)
    arrays = shard_arrays(shards, layer)
    seq = P(None, None, axis)
    run = jax.shard_map(
        lambda q, k, v, mask, local: shard_attention(q, k, v, mask, {n: a[0] for n, a in local.items()}, shards, axis),
        mesh=mesh, in_specs=(seq, seq, seq, P(), {name: P(axis) for name in arrays}), out_specs=seq,
    )  # fmt: skip
    return run(q, k, v, mask, arrays)



@jax.tree_util.register_static
class _Plan:
    """The static half of a sequence-parallel call (a pytree without leaves: it passes through remat and jit)."""

    def __init__(self, shards: SequenceShards, axis: str):
        self.shards, self.axis = shards, axis


@struct.dataclass
class ShardedCall:
    """This shard's part of a sequence-parallel call, as the body's layers read it (a pytree)."""

    arrays: dict[str, Any]  # the core's per-shard arrays, every layer: (layers, ...) each
    plan: _Plan  # static: the exchange plan and the mesh axis


def sequence_parallel_apply(module: Any, variables: Any, mesh: Mesh, input_ids: Any, attention_mask: Any = None,
                            token_type_ids: Any = None, position_ids: Any = None, *, axis: str = "seq",
                            deterministic: bool = True, plan: Any = None,
                            rngs: dict[str, jax.Array] | None = None) -> Any:  # fmt: skip
    """``FlaxBigBirdModule`` on one long sequence split over mesh axis ``axis``: every device embeds, projects and
    runs the feed-forward of its own blocks only; the attention exchanges the tiles its rows need.

    Args:
        module: a ``FlaxBigBirdModule`` (a head model's body: ``FlaxBigBirdModule(config)`` with
            ``{"params": model.params["bert"]}``).
        variables: its variables, e.g. ``{"params": params}`` (replicated).
        mesh: a mesh with ``axis``; the padded sequence's blocks must divide evenly over its devices.
        input_ids, attention_mask, token_type_ids, position_ids: as for the module, ``(batch, L)``; the length
            must be block-sparse (the core pads it to whole blocks).
        deterministic: False for training (dropout, the training plan).
        plan: a plan made on the host (default: the config's eval or training plan); the exchange is planned
            from it, so a plan drawn inside ``jit`` cannot be used (nor can a fresh plan per step without
            compiling anew).
        rngs: e.g. ``{"dropout": key}``; each device folds in its index.

    Returns:
        ``BaseModelOutputWithPoolingAndCrossAttentions`` whose ``last_hidden_state`` is sharded along the sequence.

    Example:
        >>> mesh = Mesh(np.array(jax.devices()), ("seq",))
        >>> out = jax.jit(lambda p, ids: sequence_parallel_apply(module, {"params": p}, mesh, ids))(params, ids)
    """
    if axis not in mesh.shape:
        raise fail(InputError, "axis", f"an axis of the mesh ({', '.join(mesh.shape)})", repr(axis))
    prep = prepare_call(module.config, BASE_HEAD, dtype=module.dtype, input_ids=input_ids,
                        attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
                        plan=plan, training=not deterministic)  # fmt: skip
    shards = sequence_shards(sequence_layout(prep), mesh.shape[axis])
    layers = module.config.num_hidden_layers
    arrays = {name: jnp.stack([jnp.asarray(shards.per_shard(i)[name]) for i in range(layers)])
              for name in shards.per_shard(0)}  # (layers, P, ...)  # fmt: skip
    static = _Plan(shards, axis)

    def body(variables, ids, types, positions, mask, arrays, rngs):
        local = {name: a[:, 0] for name, a in arrays.items()}  # (layers, 1, ...) -> (layers, ...)
        mine = dataclasses.replace(prep, input_ids=ids, token_type_ids=types, position_ids=positions,
                                   attention_mask=mask)  # this shard's tokens; the whole mask  # fmt: skip
        if rngs:
            rngs = {name: jax.random.fold_in(key, jax.lax.axis_index(axis)) for name, key in rngs.items()}
        out = module.apply(variables, mine, deterministic, False, ShardedCall(local, static), method="run",
                           rngs=rngs)  # fmt: skip
        pooled = out.pooled  # from this shard's first token: shard 0's is the model's
        return out.sequence_output, (None if pooled is None else pooled[None])

    tok = P(None, axis)
    run = jax.shard_map(
        body, mesh=mesh,
        in_specs=(P(), tok, tok, tok, P(), {name: P(None, axis) for name in arrays}, P()),
        out_specs=(tok, P(axis)),
    )  # fmt: skip
    sequence_output, pooled = run(variables, prep.input_ids, prep.token_type_ids, prep.position_ids,
                                  prep.attention_mask, arrays, rngs or {})  # fmt: skip
    return finish_call(prep, BodyOutput(sequence_output, None if pooled is None else pooled[0]))
