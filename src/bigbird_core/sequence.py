"""Sequence parallelism: one long example's blocks split over ``P`` devices, each fetching only what its rows need.

Shard ``p`` owns the ``m = n / P`` consecutive blocks ``p*m .. p*m + m - 1`` of every head: their queries, keys
and values. A middle row's softmax needs its window, the two global blocks and its random blocks; the ones
another shard owns are *tiles* ``(head, block)`` of keys and values that shard sends. The global rows (blocks 0
and ``n - 1``) attend to every key: every shard scores them against its own keys and the softmax is finished
as a reduction over shards (a max, then sums), so no shard ever holds the whole sequence's keys.

The core plans the exchange from the layout (:func:`sequence_shards`) and runs the per-shard attention once,
against the Python array API (:func:`shard_attention`); an engine supplies only the collectives (:class:`Comm`):
JAX ``ppermute``/``psum`` under ``shard_map``, torch process-group collectives, or threads over NumPy arrays
(:class:`ThreadGroup`, the reference). The exchange, per layer:

- tiles go from shard ``q`` to shard ``(q + s) % P`` in "shift" ``s = 1 .. P-1``; each shift has a static
  capacity (the most tiles any shard sends in it), so the per-shift buffers have static shapes (``ppermute``);
  an engine with ragged collectives (torch's ``all_to_all_single``) sends exactly the tiles
  (:meth:`SequenceShards.all_to_all`).
- the receiving shard's *store* of key/value tiles is its own ``H * m`` tiles, then the received tiles shift by
  shift, each shift padded to its capacity; ``key_slots`` point every merged slot (``layout.compact_slots``)
  of every row into that store.

The exchange is planned on the host from a known layout (the core's eval and training plans, or a plan given);
a plan drawn inside ``jax.jit`` cannot be used.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .arrays import namespace, softmax_dtype
from .errors import InputError, fail
from .layout import BLOCK_SPARSE_PENALTY, BlockLayout, compact_slots
from .recipe import PreparedCall


@dataclass(frozen=True)
class SequenceShards:
    """The exchange and the per-shard slots of every layer of one layout over ``shards`` devices.

    Per-shard arrays have the shard as their leading axis after the layer (an engine slices or shards it).

    Attributes:
        shards: ``P``; num_blocks: ``n``; heads: ``H``; block_size: ``b``.
        capacity: tiles per shift ``s = 1 .. P-1`` (index ``s - 1``), the same for every layer.
        send: int32 ``(layers, P, R)``, ``R = sum(capacity)``: own tiles (``head * m + local block``) each
            shard sends, shift by shift (padding: 0).
        send_counts: int32 ``(layers, P, P - 1)``: tiles really sent per shift (the rest is padding).
        store_blocks: int32 ``(layers, P, H * m + R)``: the key block of every store entry (its padding mask).
        key_slots: int32 ``(layers, P, H, m, S')``: the store entry of every merged slot of every own row.
        slot_bias: float64 ``(layers, P, H, m, S')``: ``log(multiplicity)`` or ``-inf`` (the rows of the global
            blocks, computed by the reduction instead, keep one harmless own slot).
        blocks: int32 ``(P, m)``: the blocks each shard owns.
        global_pos: int32 ``(P, 2)``: local block of the first and last global block (0 where not owned).
        global_own: float32 ``(P, 2)``: 1 where the shard owns that global block.
        row_global: int32 ``(P, m)``: 0 or 1 for an own global block, -1 for a middle row.
    """

    shards: int
    num_blocks: int
    heads: int
    block_size: int
    capacity: tuple[int, ...]
    send: np.ndarray
    send_counts: np.ndarray
    store_blocks: np.ndarray
    key_slots: np.ndarray
    slot_bias: np.ndarray
    blocks: np.ndarray
    global_pos: np.ndarray
    global_own: np.ndarray
    row_global: np.ndarray

    @property
    def blocks_per_shard(self) -> int:
        return self.num_blocks // self.shards

    def local(self, layer: int, shard: int) -> dict[str, np.ndarray]:
        """The arrays one shard needs for ``layer`` (the keywords of :func:`shard_attention`)."""
        return {name: arr[shard] for name, arr in self.per_shard(layer).items()}

    def per_shard(self, layer: int) -> dict[str, np.ndarray]:
        """``layer``'s per-shard arrays, shard axis first (what an engine shards over its devices)."""
        return {
            "send": self.send[layer], "store_blocks": self.store_blocks[layer], "key_slots": self.key_slots[layer],
            "slot_bias": self.slot_bias[layer], "blocks": self.blocks, "global_pos": self.global_pos,
            "global_own": self.global_own, "row_global": self.row_global,
        }  # fmt: skip

    def offsets(self) -> list[int]:
        """Start of each shift's tiles in ``send`` and in the received part of a store."""
        return [int(x) for x in np.cumsum((0,) + self.capacity)[:-1]]

    def all_to_all(self, layer: int, shard: int) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
        """The exact exchange of ``shard`` for an engine with ragged all-to-all (no padding sent).

        Returns:
            ``(send_index, send_splits, recv_index, recv_splits)``: own tiles to send, ordered by destination
            shard, and how many go to each shard; the store position (counted from the start of the received
            part) of every received tile, ordered by source shard, and how many come from each shard.
        """
        p, P, offsets = shard, self.shards, self.offsets()
        counts = self.send_counts[layer]
        send_index, send_splits, recv_index, recv_splits = [], [], [], []
        for other in range(P):
            if other == p:
                send_splits.append(0)
                recv_splits.append(0)
                continue
            s_out = (other - p) % P  # the shift that carries our tiles to `other`
            c = int(counts[p, s_out - 1])
            send_index.append(self.send[layer, p, offsets[s_out - 1] : offsets[s_out - 1] + c])
            send_splits.append(c)
            s_in = (p - other) % P  # the shift that carries `other`'s tiles to us
            c = int(counts[other, s_in - 1])
            recv_index.append(offsets[s_in - 1] + np.arange(c))
            recv_splits.append(c)
        cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)  # noqa: E731
        return cat(send_index), send_splits, cat(recv_index), recv_splits

    def tiles_received(self, padded: bool = True) -> int:
        """Key/value tiles the busiest shard receives in one layer (padded: what per-shift buffers carry)."""
        if padded:
            return sum(self.capacity)
        recv = np.zeros((self.send.shape[0], self.shards), np.int64)
        for s in range(1, self.shards):
            recv += np.roll(self.send_counts[:, :, s - 1], s, axis=1)  # shard q's shift-s tiles land on q + s
        return int(recv.max())

    def bytes_per_layer(self, batch: int, head_dim: int, itemsize: int, padded: bool = True) -> dict[str, int]:
        """Bytes one shard receives per layer (forward) against an all-gather of K and V.

        ``tiles``: keys and values of the fetched tiles; ``global``: the reductions of the global rows (their
        queries, the running max and sums); ``all_gather``: what an all-gather of K and V delivers to a shard.
        """
        b, H, m, P = self.block_size, self.heads, self.blocks_per_shard, self.shards
        tile = batch * b * head_dim * itemsize
        glob = batch * H * 2 * b * (2 * head_dim + 2) * itemsize  # queries, numerators, max, denominators
        return {"tiles": 2 * self.tiles_received(padded) * tile, "global": glob, "all_gather": 2 * (P - 1) * H * m * tile}


def sequence_shards(layout: BlockLayout, shards: int) -> SequenceShards:
    """Plan the exchange of ``layout`` (all layers) over ``shards`` devices.

    Args:
        layout: the block layout of the call (``n`` blocks; ``n`` a multiple of ``shards``).
        shards: devices over the sequence, at least 2.

    Example:
        >>> shards = sequence_shards(block_layout(transformers_plan(config, 16, training=False), 64), 4)
        >>> shards.capacity  # eval plans: the neighbours and the global blocks
    """
    n, P = layout.num_blocks, shards
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 2:
        raise fail(InputError, "shards", "an integer of at least 2", repr(shards))
    if n % P:
        raise fail(InputError, "shards", f"a divisor of the {n} blocks of the sequence", str(P))
    m = n // P
    compact = compact_slots(layout)
    kb, bias = compact.key_blocks, compact.slot_bias  # (layers, H, n-2, S')
    layers, H, _, S = kb.shape
    # remote tiles each (layer, destination) needs, grouped by source: sorted unique (head * n + block)
    needs: list[list[dict[int, np.ndarray]]] = []
    for lay in range(layers):
        per_dest = []
        for p in range(P):
            rows = np.arange(max(p * m, 1), min((p + 1) * m, n - 1))  # own middle rows (query blocks)
            blocks = kb[lay][:, rows - 1]  # (H, rows, S')
            present = np.isfinite(bias[lay][:, rows - 1])
            heads = np.broadcast_to(np.arange(H)[:, None, None], blocks.shape)
            keys = np.unique((heads * n + blocks)[present & (blocks // m != p)])
            per_dest.append({q: keys[(keys % n) // m == q] for q in range(P) if q != p})
        needs.append(per_dest)
    cap = tuple(max(len(needs[lay][p][(p - s) % P]) for lay in range(layers) for p in range(P)) for s in range(1, P))
    offsets = np.cumsum((0,) + cap)[:-1]
    R, E = sum(cap), H * m + sum(cap)
    send = np.zeros((layers, P, R), np.int32)
    send_counts = np.zeros((layers, P, P - 1), np.int32)
    store_blocks = np.zeros((layers, P, E), np.int32)
    key_slots = np.zeros((layers, P, H, m, S), np.int32)
    slot_bias = np.full((layers, P, H, m, S), -np.inf)
    own_blocks = np.arange(n, dtype=np.int32).reshape(P, m)
    for lay in range(layers):
        for p in range(P):
            where = {}  # (head * n + block) -> store entry
            store_blocks[lay, p, : H * m] = np.tile(own_blocks[p], H)
            for s in range(1, P):
                src = (p - s) % P
                keys = needs[lay][p][src]
                start = H * m + offsets[s - 1]
                store_blocks[lay, p, start : start + len(keys)] = keys % n
                where.update({int(key): start + i for i, key in enumerate(keys)})
                tiles = (keys // n) * m + (keys % n - src * m)  # the source's own tile indices
                send[lay, src, offsets[s - 1] : offsets[s - 1] + len(keys)] = tiles
                send_counts[lay, src, s - 1] = len(keys)
            for j in range(m):
                i = p * m + j
                if i in (0, n - 1):  # a global row: one own slot keeps its softmax finite; the result is replaced
                    key_slots[lay, p, :, j, 0] = np.arange(H) * m + j
                    slot_bias[lay, p, :, j, 0] = 0.0
                    continue
                for h in range(H):
                    for s_ in range(S):
                        if not np.isfinite(bias[lay, h, i - 1, s_]):
                            continue
                        blk = int(kb[lay, h, i - 1, s_])
                        own = blk // m == p
                        key_slots[lay, p, h, j, s_] = h * m + blk - p * m if own else where[h * n + blk]
                        slot_bias[lay, p, h, j, s_] = bias[lay, h, i - 1, s_]
    global_pos = np.zeros((P, 2), np.int32)
    global_own = np.zeros((P, 2), np.float32)
    row_global = np.full((P, m), -1, np.int32)
    global_pos[0, 0], global_own[0, 0], row_global[0, 0] = 0, 1.0, 0
    global_pos[P - 1, 1], global_own[P - 1, 1], row_global[P - 1, m - 1] = m - 1, 1.0, 1
    out = SequenceShards(P, n, H, layout.block_size, cap, send, send_counts, store_blocks, key_slots, slot_bias,
                         own_blocks, global_pos, global_own, row_global)  # fmt: skip
    for name in ("send", "send_counts", "store_blocks", "key_slots", "slot_bias", "blocks", "global_pos",
                 "global_own", "row_global"):  # fmt: skip
        getattr(out, name).setflags(write=False)
    return out


def sequence_layout(prep: PreparedCall) -> BlockLayout:
    """The layout of a prepared call to split over devices, or the error every backend gives when it has none."""
    if prep.layout is not None:
        return prep.layout.layout
    if prep.plan is not None:
        raise fail(InputError, "plan", "a plan known on the host (sequence parallelism plans its exchange from "
                   "it)", "a traced plan (drawn inside jit)")  # fmt: skip
    config = prep.config
    raise fail(InputError, "input_ids", "a call that runs block-sparse attention (sequence parallelism splits its "
               f"blocks): attention_type 'block_sparse' and at least {config.min_block_sparse_length} tokens",
               f"attention_type {config.attention_type!r} and {prep.call.seq_len} tokens")  # fmt: skip


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
                parts = []
                for s, start in zip(range(1, group.size), plan.offsets(), strict=True):
                    src = (p - s) % group.size
                    parts.append(sent[src][:, plan.send[layer, src, start : start + plan.capacity[s - 1]]])
                    parts[-1][:, plan.send_counts[layer, src, s - 1] :] = 0  # padding arrives as zeros
                return np.concatenate(parts, axis=1) if parts else tiles[:, :0]

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
