"""Sequence parallelism, the plan: one long example's blocks split over ``P`` devices, each fetching only what its rows need.

Shard ``p`` owns the ``m = n / P`` consecutive blocks ``p*m .. p*m + m - 1`` of every head: their queries, keys
and values. A middle row's softmax needs its window, the two global blocks and its random blocks; the ones
another shard owns are *tiles* ``(head, block)`` of keys and values that shard sends. The global rows (blocks 0
and ``n - 1``) attend to every key: every shard scores them against its own keys and the softmax is finished
as a reduction over shards (a max, then sums), so no shard ever holds the whole sequence's keys.

The core plans the exchange from the layout (:func:`sequence_shards`) and runs the per-shard attention once,
against the Python array API (:func:`shard_attention`); an engine supplies only the collectives (:class:`Comm`):
JAX ``ppermute``/``psum`` under ``shard_map``, torch process-group collectives, or threads over NumPy arrays
(:class:`ThreadGroup`, the reference). The exchange, per layer:

- tiles travel in *rounds*; a round is a partial matching of (source, destination) shards (one ``ppermute``:
  every shard sends to at most one and receives from at most one) with a static capacity. Pairs are grouped so
  that a round's pairs need at least half its capacity: static shapes, and at most twice the tiles the math
  needs on any pair. An engine with ragged collectives (torch's ``all_to_all_single``) sends exactly the tiles
  (:meth:`SequenceShards.all_to_all`).
- rounds share receive *regions* when no shard receives in two of them (a shard's region holds what it got,
  the others' zeros add nothing), so a shard's store stays near what it needs even when one shard (the first
  blocks of transformers' training plans) feeds all the others. A store is the shard's own ``H * m`` tiles, then
  the regions; ``key_slots`` point every merged slot (``layout.compact_slots``) of every row into it.

The exchange is planned on the host from a known layout (the core's eval and training plans, or a plan given);
a plan drawn inside ``jax.jit`` cannot be used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError, fail
from .layout import BlockLayout, compact_slots
from .recipe import PreparedCall


@dataclass(frozen=True)
class SequenceShards:
    """The exchange and the per-shard slots of every layer of one layout over ``shards`` devices.

    Per-shard arrays have the shard as their leading axis after the layer (an engine slices or shards it).

    Attributes:
        shards: ``P``; num_blocks: ``n``; heads: ``H``; block_size: ``b``.
        rounds: per round, its ``(source, destination)`` pairs, the same for every layer.
        capacity: tiles per round.
        region: the receive region of each round; region_size: tiles per region.
        send: int32 ``(layers, P, R)``, ``R = sum(capacity)``: own tiles (``head * m + local block``) each shard
            sends, round by round (padding: 0).
        send_counts: int32 ``(layers, P, rounds)``: tiles really sent per round (the rest is padding).
        store_blocks: int32 ``(layers, P, H * m + sum(region_size))``: the key block of every store entry (its
            padding mask).
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
    rounds: tuple[tuple[tuple[int, int], ...], ...]
    capacity: tuple[int, ...]
    region: tuple[int, ...]
    region_size: tuple[int, ...]
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

    @property
    def layers(self) -> int:
        return int(self.send.shape[0])

    def digest(self) -> int:
        """A 62-bit digest of the exchange (what every rank must agree on before it exchanges)."""
        if "_digest" not in self.__dict__:
            h = hashlib.blake2b(digest_size=8)
            h.update(repr((self.shards, self.num_blocks, self.heads, self.block_size, self.rounds)).encode())
            for arr in (self.send, self.send_counts, self.store_blocks, self.key_slots):
                h.update(np.ascontiguousarray(arr).tobytes())
            object.__setattr__(self, "_digest", int.from_bytes(h.digest(), "little") >> 2)
        return self.__dict__["_digest"]

    def check_call(self, q: Any, k: Any, v: Any, mask: Any, layer: Any, length: int) -> int:
        """The arguments of one layer's sequence-parallel attention, checked the same in every engine: ``layer``
        in range, ``q``, ``k``, ``v`` alike ``(batch, heads, length, head_dim)`` with the plan's heads, ``mask``
        ``(batch, L)`` of the whole padded sequence. Returns ``layer`` as an int."""
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.layers:
            raise fail(InputError, "layer", f"an integer in [0, {self.layers}) (the plan's layers)", repr(layer))
        shape = tuple(getattr(q, "shape", ()))
        for name, x in (("q", q), ("k", k), ("v", v)):
            got = tuple(getattr(x, "shape", ()))
            if len(got) != 4 or got[1] != self.heads or got[2] != length or got != shape:
                raise fail(InputError, name, f"an array (batch, {self.heads}, {length}, head_dim), q's shape for k "
                           "and v (the plan's heads; this shard's tokens)", x)  # fmt: skip
        full = self.num_blocks * self.block_size
        if tuple(getattr(mask, "shape", ())) != (shape[0], full):
            raise fail(InputError, "mask", f"the whole padded sequence's mask of shape ({shape[0]}, {full})", mask)
        return int(layer)

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

    def send_offsets(self) -> list[int]:
        """Start of each round's tiles in ``send``."""
        return [int(x) for x in np.cumsum((0,) + self.capacity)[:-1]]

    def region_offsets(self) -> list[int]:
        """Start of each region in the received part of a store."""
        return [int(x) for x in np.cumsum((0,) + self.region_size)[:-1]]

    def round_of(self, source: int, destination: int) -> int | None:
        """The round that carries ``source``'s tiles to ``destination`` (None: it needs none)."""
        for r, pairs in enumerate(self.rounds):
            if (source, destination) in pairs:
                return r
        return None

    def all_to_all(self, layer: int, shard: int) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
        """The exact exchange of ``shard`` for an engine with ragged all-to-all (no padding sent).

        Returns:
            ``(send_index, send_splits, recv_index, recv_splits)``: own tiles to send, ordered by destination
            shard, and how many go to each shard; the store position (counted from the start of the received
            part) of every received tile, ordered by source shard, and how many come from each shard.
        """
        p, sends, regions = shard, self.send_offsets(), self.region_offsets()
        counts = self.send_counts[layer]
        send_index, send_splits, recv_index, recv_splits = [], [], [], []
        for other in range(self.shards):
            out, into = self.round_of(p, other), self.round_of(other, p)
            c = 0 if out is None else int(counts[p, out])
            send_index.append(self.send[layer, p, sends[out] : sends[out] + c] if c else np.zeros(0, np.int32))
            send_splits.append(c)
            c = 0 if into is None else int(counts[other, into])
            recv_index.append(regions[self.region[into]] + np.arange(c) if c else np.zeros(0, np.int64))
            recv_splits.append(c)
        return np.concatenate(send_index).astype(np.int64), send_splits, np.concatenate(recv_index), recv_splits

    def tiles_received(self, padded: bool = True) -> int:
        """Key/value tiles the busiest shard receives in one layer: ``padded``, what the rounds' buffers carry to
        it; else exactly the tiles its rows need (what ragged engines send)."""
        got = np.zeros((self.send.shape[0], self.shards), np.int64)  # (layers, P)
        for r, pairs in enumerate(self.rounds):
            for src, dst in pairs:
                got[:, dst] += self.capacity[r] if padded else self.send_counts[:, src, r]
        return int(got.max()) if got.size else 0

    def bytes_per_layer(self, batch: int, head_dim: int, itemsize: int) -> dict[str, int]:
        """Bytes per layer (forward; the backward sends the same back) against an all-gather of K and V.

        ``tiles``: keys and values the busiest shard receives (padded rounds); ``exact``: what its rows need (a
        ragged engine sends this); ``buffers``: the round buffers of one shard's program (every shard runs every
        round; only the round's pairs transfer); ``global``: the global rows' reductions (queries, numerators,
        maxima, denominators); ``all_gather``: what an all-gather of K and V delivers to a shard.
        """
        b, H, m, P = self.block_size, self.heads, self.blocks_per_shard, self.shards
        tile = 2 * batch * b * head_dim * itemsize  # a key and a value block of one head
        return {"tiles": self.tiles_received(True) * tile, "exact": self.tiles_received(False) * tile,
                "buffers": sum(self.capacity) * tile, "global": batch * H * 2 * b * (2 * head_dim + 2) * itemsize,
                "all_gather": (P - 1) * H * m * tile}  # fmt: skip


def _rounds(counts: np.ndarray) -> tuple[list[tuple[tuple[int, int], ...]], list[int]]:
    """Group the pairs with tiles to send (``counts[src, dst] > 0``) into partial matchings: largest first, a pair
    joining a round only when it needs at least half the round's capacity."""
    left = {(int(q), int(p)): int(counts[q, p]) for q, p in zip(*np.nonzero(counts), strict=True)}
    rounds, capacity = [], []
    while left:
        order = sorted(left, key=lambda qp: (-left[qp], qp))
        size, sources, destinations, chosen = left[order[0]], set(), set(), []
        for q, p in order:
            if q in sources or p in destinations or 2 * left[(q, p)] < size:
                continue
            chosen.append((q, p))
            sources.add(q)
            destinations.add(p)
        for qp in chosen:
            del left[qp]
        rounds.append(tuple(sorted(chosen)))
        capacity.append(size)
    return rounds, capacity


def _regions(rounds: list[tuple[tuple[int, int], ...]], capacity: list[int]) -> tuple[list[int], list[int]]:
    """First fit: a round joins the first region none of whose rounds delivers to one of its destinations."""
    region, size, takers = [], [], []  # per region: its size and the shards it delivers to
    for pairs, cap in zip(rounds, capacity, strict=True):
        dst = {p for _, p in pairs}
        for g, seen in enumerate(takers):
            if not seen & dst:
                seen |= dst
                size[g] = max(size[g], cap)
                region.append(g)
                break
        else:
            takers.append(set(dst))
            size.append(cap)
            region.append(len(size) - 1)
    return region, size


def sequence_shards(layout: BlockLayout, shards: int) -> SequenceShards:
    """Plan the exchange of ``layout`` (all layers) over ``shards`` devices.

    Args:
        layout: the block layout of the call (``n`` blocks; ``n`` a multiple of ``shards``).
        shards: devices over the sequence (1: nothing to exchange).

    Example:
        >>> shards = sequence_shards(block_layout(transformers_plan(config, 16, training=False), 64), 4)
        >>> shards.rounds, shards.capacity  # eval plans: the neighbours and the global blocks
    """
    if not isinstance(shards, (int, np.integer)) or isinstance(shards, bool) or shards < 1:
        raise fail(InputError, "shards", "a positive integer", repr(shards))
    n, P = layout.num_blocks, int(shards)
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
    counts = np.zeros((P, P), np.int64)  # the most tiles any layer sends from q to p
    for lay in range(layers):
        for p in range(P):
            for q, keys in needs[lay][p].items():
                counts[q, p] = max(counts[q, p], len(keys))
    rounds, cap = _rounds(counts)
    region, region_size = _regions(rounds, cap)
    sends = np.cumsum([0] + cap)[:-1]
    regions = H * m + np.cumsum([0] + region_size)[:-1]
    R, E = sum(cap), H * m + sum(region_size)
    send = np.zeros((layers, P, R), np.int32)
    send_counts = np.zeros((layers, P, len(rounds)), np.int32)
    store_blocks = np.zeros((layers, P, E), np.int32)
    key_slots = np.zeros((layers, P, H, m, S), np.int32)
    slot_bias = np.full((layers, P, H, m, S), -np.inf)
    own_blocks = np.arange(n, dtype=np.int32).reshape(P, m)
    for lay in range(layers):
        for p in range(P):
            store_blocks[lay, p, : H * m] = np.tile(own_blocks[p], H)
            where = {}  # (head * n + block) -> store entry
            for r, pairs in enumerate(rounds):
                for src, dst in pairs:
                    if dst != p:
                        continue
                    keys = needs[lay][p][src]
                    start = regions[region[r]]
                    store_blocks[lay, p, start : start + len(keys)] = keys % n
                    where.update({int(key): start + i for i, key in enumerate(keys)})
                    tiles = (keys // n) * m + (keys % n - src * m)  # the source's own tile indices
                    send[lay, src, sends[r] : sends[r] + len(keys)] = tiles
                    send_counts[lay, src, r] = len(keys)
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
    out = SequenceShards(P, n, H, layout.block_size, tuple(rounds), tuple(cap), tuple(region), tuple(region_size),
                         send, send_counts, store_blocks, key_slots, slot_bias, own_blocks, global_pos, global_own,
                         row_global)  # fmt: skip
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
