"""Sequence parallelism, the attention: every shard's block-sparse attention written once against the array API
(:func:`shard_attention`) over the exchange that :mod:`bigbird_core.sequence_plan` plans; an engine supplies only
the collectives (:class:`Comm`): JAX ``ppermute``/``psum`` under ``shard_map``, torch process-group collectives,
or threads over NumPy arrays (:class:`ThreadGroup`, the reference, :func:`sequence_parallel_attention`).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

import numpy as np

from .arrays import namespace, softmax_dtype
from .layout import BLOCK_SPARSE_PENALTY
from .sequence_plan import SequenceShards, sequence_layout, sequence_shards  # noqa: F401  (re-exported)


class Comm(Protocol):
    """The collectives of one shard, supplied by an engine (every shard calls them in the same order)."""

    def exchange(self, tiles: Any) -> Any:
        """``(X, H*m, b, d)`` own tiles -> ``(X, R, b, d)`` the received part of the store (padding zero)."""

    def sum(self, x: Any) -> Any:
        """The sum of ``x`` over shards (differentiable)."""

    def max(self, x: Any) -> Any:
        """The maximum of ``x`` over shards (no gradient: it only shifts a softmax)."""


def shard_attention(q: Any, k: Any, v: Any, mask: Any, comm: Comm, *, send: Any, store_blocks: Any, key_slots: Any,
                    slot_bias: Any, blocks: Any, global_pos: Any, global_own: Any, row_global: Any) -> Any:  # fmt: skip
    """One shard's block-sparse attention (any array API namespace: NumPy, torch, JAX).

    Args:
        q, k, v: ``(batch, heads, m * b, d)``: the shard's own blocks.
        mask: ``(batch, L)``: the attention mask of the whole padded sequence (one value per token; every shard
            holds it).
        comm: the engine's collectives, which know ``send``.
        send, ...: the shard's arrays of :meth:`SequenceShards.local` (in the namespace of ``q``).

    Returns:
        context ``(batch, heads, m * b, d)``, padded query rows zeroed.
    """
    del send  # the engine's comm sends
    xp = namespace(q)
    batch, heads, own_len, d = q.shape
    m = blocks.shape[0]
    b = own_len // m
    n = mask.shape[-1] // b
    sdt = softmax_dtype(xp, q.dtype)
    qb = xp.reshape(q * (1.0 / math.sqrt(d)), (batch, heads, m, b, d))
    own = xp.concat([xp.reshape(k, (batch, heads * m, b, d)), xp.reshape(v, (batch, heads * m, b, d))], axis=0)
    store = xp.concat([own, comm.exchange(own)], axis=1)  # (2B, E, b, d): own tiles, then the received ones
    mask_blocks = xp.reshape(xp.astype(mask, sdt), (batch, n, b))
    store_bias = (1.0 - xp.take(mask_blocks, store_blocks, axis=1)) * BLOCK_SPARSE_PENALTY  # (B, E, b)

    # middle rows: their merged slots, gathered from the store, in one softmax
    slots = key_slots.shape[-1]
    flat = xp.reshape(key_slots, (-1,))  # (H*m*S')
    gathered = xp.reshape(xp.take(store, flat, axis=1), (2, batch, heads, m, slots * b, d))
    k_g, v_g = gathered[0], gathered[1]  # (B, H, m, S'b, d)
    bias = xp.reshape(xp.take(store_bias, flat, axis=1), (batch, heads, m, 1, slots * b)) + xp.reshape(
        xp.broadcast_to(xp.astype(slot_bias, sdt)[..., None], (heads, m, slots, b)), (1, heads, m, 1, slots * b)
    )
    scores = xp.astype(xp.matmul(qb, xp.permute_dims(k_g, (0, 1, 2, 4, 3))), sdt) + bias  # (B, H, m, b, S'b)
    e = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
    probs = xp.astype(e / xp.sum(e, axis=-1, keepdims=True), v.dtype)
    m_ctx = xp.matmul(probs, v_g)  # (B, H, m, b, d)

    # global rows: their queries from the shards that own them, scored against every shard's own keys
    owned = xp.reshape(xp.astype(global_own, q.dtype), (1, 1, 2, 1, 1))
    g_q = xp.reshape(comm.sum(xp.take(qb, global_pos, axis=2) * owned), (batch, heads, 2 * b, d))
    own_bias = (1.0 - xp.reshape(xp.take(mask_blocks, blocks, axis=1), (batch, 1, 1, own_len))) * BLOCK_SPARSE_PENALTY
    g_scores = xp.astype(xp.matmul(g_q, xp.permute_dims(k, (0, 1, 3, 2))), sdt) + own_bias  # (B, H, 2b, m*b)
    top = comm.max(xp.max(g_scores, axis=-1, keepdims=True))  # (B, H, 2b, 1)
    g_e = xp.exp(g_scores - top)
    total = comm.sum(xp.sum(g_e, axis=-1, keepdims=True))
    g_ctx = comm.sum(xp.matmul(xp.astype(g_e, v.dtype), v)) / xp.astype(total, v.dtype)  # (B, H, 2b, d)
    g_ctx = xp.reshape(g_ctx, (batch, heads, 2, b, d))

    is_global = xp.reshape(row_global >= 0, (1, 1, m, 1, 1))
    g_rows = xp.take(g_ctx, xp.clip(row_global, 0, 1), axis=2)  # (B, H, m, b, d)
    ctx = xp.reshape(xp.where(is_global, g_rows, m_ctx), (batch, heads, own_len, d))
    own_mask = xp.reshape(xp.astype(xp.take(mask_blocks, blocks, axis=1), ctx.dtype), (batch, 1, own_len, 1))
    return ctx * own_mask


class ThreadGroup:
    """Collectives among ``P`` threads over NumPy arrays: the reference engine of :func:`shard_attention`.

    Example:
        >>> group = ThreadGroup(shards)
        >>> outs = group.run(lambda comm, p: shard_attention(q[p], ..., comm, **shards.local(layer, p)))
    """

    def __init__(self, shards: SequenceShards, layer: int):
        self.plan, self.layer = shards, layer
        self.size = shards.shards
        self._barrier = threading.Barrier(self.size)
        self._slots: list[Any] = [None] * self.size

    def _gather(self, p: int, x: Any) -> list[Any]:
        self._slots[p] = x
        self._barrier.wait()
        everyone = list(self._slots)
        self._barrier.wait()
        return everyone

    def comm(self, p: int) -> Comm:
        group, plan, layer = self, self.plan, self.layer

        class _Comm:
            def exchange(self, tiles: np.ndarray) -> np.ndarray:
                sent = group._gather(p, tiles)
                regions = [np.zeros(tiles.shape[:1] + (size,) + tiles.shape[2:], tiles.dtype)
                           for size in plan.region_size]  # fmt: skip
                for r, (pairs, start) in enumerate(zip(plan.rounds, plan.send_offsets(), strict=True)):
                    for src, dst in pairs:
                        if dst == p:  # what a ppermute delivers: the source's whole round buffer
                            count = plan.send_counts[layer, src, r]
                            regions[plan.region[r]][:, :count] = sent[src][:, plan.send[layer, src, start : start + count]]
                return np.concatenate(regions, axis=1) if regions else tiles[:, :0]

            def sum(self, x: np.ndarray) -> np.ndarray:
                return np.sum(group._gather(p, x), axis=0).astype(x.dtype)

            def max(self, x: np.ndarray) -> np.ndarray:
                return np.max(group._gather(p, x), axis=0)

        return _Comm()

    def run(self, fn) -> list[Any]:
        """``fn(comm, shard)`` on every shard at once (one thread each); the results in shard order."""
        results: list[Any] = [None] * self.size
        errors: list[BaseException] = []

        def work(p: int) -> None:
            try:
                results[p] = fn(self.comm(p), p)
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)
                self._barrier.abort()

        threads = [threading.Thread(target=work, args=(p,)) for p in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results


def sequence_parallel_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
                                shards: SequenceShards, layer: int) -> np.ndarray:  # fmt: skip
    """The NumPy reference: ``layer``'s block-sparse attention of whole ``(B, H, L, d)`` arrays, computed by
    ``shards.shards`` threads that each hold one shard and exchange tiles as the devices would."""
    own = q.shape[2] // shards.shards
    cut = lambda x, p: x[:, :, p * own : (p + 1) * own]  # noqa: E731
    group = ThreadGroup(shards, layer)
    parts = group.run(lambda comm, p: shard_attention(cut(q, p), cut(k, p), cut(v, p), mask, comm,
                                                      **shards.local(layer, p)))  # fmt: skip
    return np.concatenate(parts, axis=2)
