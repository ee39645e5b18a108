"""The block layout as data: which key blocks every query block attends to, and how they are masked.

Query blocks 0 and ``n - 1`` are global: they attend to every key. Every other query block ``i``
(a "middle row", row ``j = i - 1`` of a plan) attends, in one softmax, to ``S = 5 + r`` key-block
*slots*::

    slot:  0        1       2     3       4        5 ... 4 + r
    block: 0        i - 1   i     i + 1   n - 1    plan[j, 0 .. r-1]

In rows 1 and ``n - 2`` one window slot repeats a global block (``i - 1 = 0``, ``i + 1 = n - 1``)
and is switched off, giving transformers' ``[0, 1, 2, last]`` and ``[0, n-3, n-2, last]``. Random
slots are never switched off: a repeated block (all-zero eval plans) counts once per slot, as in
transformers.

Masking rule (transformers 4.57.6): a key's padding always masks it; the *query's* padding also
masks the window slots of rows 2..n-3 and every random slot, but not the global slots nor the window
of rows 1 and n-2. It only matters for padded query rows, whose outputs are zeroed, but it shows in
their attention probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import device, namespace

NUM_STATIC_SLOTS = 5  # first global, window of three, last global
BLOCK_SPARSE_PENALTY = -10000.0  # added to masked scores in block-sparse attention (transformers)


@dataclass(frozen=True)
class BlockLayout:
    """The slots of every middle query block, for all layers at once.

    Attributes:
        num_blocks: blocks of the padded sequence (``n``).
        block_size: tokens per block.
        key_blocks: int32 ``(layers, heads, n - 2, S)``, the key block of each slot.
        slot_valid: bool ``(n - 2, S)``; False for the switched-off duplicate window slot.
        query_masked: bool ``(n - 2, S)``; True where the query's padding also masks the slot.
    """

    num_blocks: int
    block_size: int
    key_blocks: np.ndarray
    slot_valid: np.ndarray
    query_masked: np.ndarray

    @property
    def num_slots(self) -> int:
        return self.key_blocks.shape[-1]


def block_layout(plan: np.ndarray, block_size: int) -> BlockLayout:
    """The layout for ``plan`` (``(layers, heads, n - 2, r)``) and ``block_size``.

    Example:
        >>> lay = block_layout(np.zeros((1, 2, 10, 3), np.int32), 16)
        >>> lay.key_blocks.shape, lay.num_blocks
        ((1, 2, 10, 8), 12)
    """
    n, r = plan.shape[2] + 2, plan.shape[3]
    _, slot_valid, query_masked = static_slots(n, r)
    key_blocks = np.asarray(slot_key_blocks(plan.astype(np.int32)))  # (layers, heads, n-2, S)
    for a in (key_blocks, slot_valid, query_masked):
        a.setflags(write=False)
    return BlockLayout(n, block_size, key_blocks, slot_valid, query_masked)


def write_order(num_slots: int) -> list[int]:
    """transformers' order of writing slots into dense probabilities: window, globals, then random."""
    return [1, 2, 3, 0, 4] + list(range(NUM_STATIC_SLOTS, num_slots))


def static_slots(num_blocks: int, num_random: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plan-independent part of a layout: static key blocks ``(n-2, 5)``, ``slot_valid`` and
    ``query_masked`` ``(n-2, 5 + r)``."""
    n = num_blocks
    i = np.arange(1, n - 1, dtype=np.int32)  # query block of each row
    static = np.stack([np.zeros_like(i), i - 1, i, i + 1, np.full_like(i, n - 1)], axis=-1)
    slot_valid = np.ones((n - 2, NUM_STATIC_SLOTS + num_random), dtype=bool)
    slot_valid[0, 1] = False  # row 1: i - 1 == 0 is the first global block
    slot_valid[-1, 3] = False  # row n-2: i + 1 == n - 1 is the last global block
    query_masked = np.zeros((n - 2, NUM_STATIC_SLOTS + num_random), dtype=bool)
    query_masked[1:-1, 1:4] = True  # window of rows 2..n-3
    query_masked[:, NUM_STATIC_SLOTS:] = True  # random slots
    return static, slot_valid, query_masked


def slot_key_blocks(plan: Any) -> Any:
    """The key block of every slot, ``(..., n-2, S)``, for a plan ``(..., n-2, r)`` of any array backend
    (a plan drawn inside ``jax.jit`` included)."""
    xp = namespace(plan)
    rows, r = plan.shape[-2:]
    static = xp.asarray(static_slots(rows + 2, r)[0], dtype=plan.dtype, device=device(plan))  # (n-2, 5)
    static = xp.broadcast_to(static, tuple(plan.shape[:-1]) + (NUM_STATIC_SLOTS,))
    return xp.concat([static, plan], axis=-1)


def distinct_slot_bias(key_blocks: Any) -> Any:
    """Slot bias of a layout whose random blocks are distinct and outside the window (every fresh plan):
    0, or ``-inf`` for the switched-off window slots; same shape as ``key_blocks``. Such a layout needs no
    merging, so the fast kernels take it as it is."""
    xp = namespace(key_blocks)
    rows, slots = key_blocks.shape[-2:]
    _, slot_valid, _ = static_slots(rows + 2, slots - NUM_STATIC_SLOTS)
    bias = np.where(slot_valid, 0.0, -np.inf).astype(np.float32)
    return xp.broadcast_to(xp.asarray(bias, device=device(key_blocks)), tuple(key_blocks.shape))


def winner_slots(key_blocks: Any, slot_valid: np.ndarray, num_blocks: int) -> Any:
    """For output_attentions: which slot's probability shows at (row, key block) in the dense matrix.

    transformers writes the slots of a row into the dense matrix in order (window, globals, then
    random), later writes overwriting earlier ones; with our slot order that is "the last valid slot
    of that block in write order wins".

    Args:
        key_blocks: ``(heads, n - 2, S)`` of any array backend (a traced plan's included).
        slot_valid: bool ``(n - 2, S)``.

    Returns:
        int ``(heads, n - 2, n)``: a slot index, or -1 where the row does not attend the block.
    """
    xp = namespace(key_blocks)
    dev = device(key_blocks)
    order = np.asarray(write_order(key_blocks.shape[-1]))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)  # position of each slot in the write order
    hits = key_blocks[..., None] == xp.arange(num_blocks, dtype=key_blocks.dtype, device=dev)  # (H, n-2, S, n)
    hits = hits & xp.asarray(slot_valid, device=dev)[None, :, :, None]
    ranks = xp.asarray(rank, dtype=key_blocks.dtype, device=dev)[None, None, :, None]
    best = xp.max(xp.where(hits, ranks, xp.full_like(ranks, -1)), axis=2)  # (H, n-2, n): last write, or -1
    slot_of_rank = xp.asarray(order, dtype=key_blocks.dtype, device=dev)
    slots = xp.reshape(xp.take(slot_of_rank, xp.reshape(xp.clip(best, 0, None), (-1,)), axis=0), best.shape)
    return xp.where(best >= 0, slots, xp.full_like(slots, -1))


def dense_winner(layout: BlockLayout, layer: int) -> np.ndarray:
    """:func:`winner_slots` of ``layout``'s ``layer``: int32 ``(heads, n - 2, n)``."""
    return winner_slots(layout.key_blocks[layer], layout.slot_valid, layout.num_blocks).astype(np.int32)


def block_mask(layout: BlockLayout, layer: int) -> np.ndarray:
    """Which key blocks each query block attends to: bool ``(heads, n, n)`` (rows 0, n-1 all True)."""
    heads = layout.key_blocks.shape[1]
    n = layout.num_blocks
    out = np.zeros((heads, n, n), dtype=bool)
    out[:, 0] = True
    out[:, -1] = True
    out[:, 1:-1] = dense_winner(layout, layer) >= 0
    return out


def dense_mask(layout: BlockLayout, layer: int) -> np.ndarray:
    """The token-level attention pattern: bool ``(heads, L, L)`` with ``L = n * block_size``."""
    b = layout.block_size
    return np.repeat(np.repeat(block_mask(layout, layer), b, axis=1), b, axis=2)


@dataclass(frozen=True)
class CompactSlots:
    """The slots of every middle row with repeated key blocks merged, for the fast attention paths.

    A key block that appears ``m`` times in a row's softmax (block 0 in all-zero eval plans appears
    ``r + 1`` times) becomes one slot whose scores get ``log(m)`` added: the same softmax, fewer FLOPs.
    Rows with fewer distinct blocks are padded with slots whose bias is ``-inf``.

    Merging ignores the query-side padding rule, so it is exact for every row whose query is not
    padding; padded query rows are zeroed anyway. Dense probabilities (``output_attentions``) use the
    full :class:`BlockLayout`.

    Attributes:
        key_blocks: int32 ``(layers, heads, n - 2, S')``.
        slot_bias: float64 ``(layers, heads, n - 2, S')``: ``log(multiplicity)`` or ``-inf``.
    """

    key_blocks: np.ndarray
    slot_bias: np.ndarray


def compact_slots(layout: BlockLayout) -> CompactSlots:
    """Merge repeated key blocks of every row of ``layout`` (see :class:`CompactSlots`)."""
    kb = np.where(layout.slot_valid, layout.key_blocks, -1)  # (layers, heads, n-2, S); -1: switched off
    n = layout.num_blocks
    counts = np.zeros(kb.shape[:3] + (n,), dtype=np.int64)  # multiplicity of each key block per row
    idx = np.indices(kb.shape[:3])
    for s in range(kb.shape[-1]):
        valid = kb[..., s] >= 0
        np.add.at(counts, (idx[0][valid], idx[1][valid], idx[2][valid], kb[..., s][valid]), 1)
    width = int((counts > 0).sum(-1).max())
    order = np.argsort(counts == 0, axis=-1, kind="stable")[..., :width]  # present blocks first, ascending
    mult = np.take_along_axis(counts, order, axis=-1)
    with np.errstate(divide="ignore"):
        bias = np.where(mult > 0, np.log(np.maximum(mult, 1)), -np.inf)
    blocks = np.where(mult > 0, order, 0).astype(np.int32)
    blocks.setflags(write=False)
    bias.setflags(write=False)
    return CompactSlots(blocks, bias)


@dataclass(frozen=True)
class KeyBlockLists:
    """One layer's layout as per-query-block lists of distinct key blocks, for block-sparse kernels that
    take a block mask (FlexAttention): every query block, global rows included, with its merged slots.

    Attributes:
        counts: int32 ``(heads, n)``: distinct key blocks of each query block.
        indices: int32 ``(heads, n, n)``: those key blocks first (ascending), then zeros.
        bias: float32 ``(heads, n, n)``: ``log(multiplicity)`` at (query block, key block), 0 elsewhere.
        allowed: bool ``(heads, n, n)``: whether the query block attends to the key block.
        tile_counts: int32 ``(heads, n)``: key-block tiles of each query block when a block that a row's
            softmax counts ``m`` times is listed ``m`` times (the repeated-tile form: no bias needed).
        tile_indices: int32 ``(heads, n, n)``: those tiles first (ascending, repeats adjacent), then zeros.
    """

    counts: np.ndarray
    indices: np.ndarray
    bias: np.ndarray
    allowed: np.ndarray
    tile_counts: np.ndarray
    tile_indices: np.ndarray

    @property
    def repeats(self) -> bool:
        """Whether some row counts a key block more than once (the bias is not all zeros)."""
        return bool((self.tile_counts != self.counts).any())


def key_block_lists(layout: BlockLayout, layer: int, compact: CompactSlots | None = None) -> KeyBlockLists:
    """``layout``'s ``layer`` as :class:`KeyBlockLists` (same merging as :func:`compact_slots`).

    Example:
        >>> lists = key_block_lists(block_layout(np.zeros((1, 2, 6, 3), np.int32), 16), 0)
        >>> lists.counts[0].tolist(), float(lists.bias[0, 3, 0])  # block 0 appears 1 + r times in row 3
        ([8, 4, 5, 5, 5, 5, 4, 8], 1.3862943649291992)
    """
    compact = compact_slots(layout) if compact is None else compact
    blocks, slot_bias = compact.key_blocks[layer], compact.slot_bias[layer]  # (heads, n-2, S')
    heads, rows, _ = blocks.shape
    n = layout.num_blocks
    present = np.isfinite(slot_bias)
    allowed = np.ones((heads, n, n), dtype=bool)
    bias = np.zeros((heads, n, n), dtype=np.float32)
    allowed[:, 1:-1] = False
    h, j, s = np.nonzero(present)
    allowed[h, j + 1, blocks[h, j, s]] = True
    bias[h, j + 1, blocks[h, j, s]] = slot_bias[h, j, s]
    counts = allowed.sum(-1).astype(np.int32)
    indices = np.argsort(~allowed, axis=-1, kind="stable").astype(np.int32)  # allowed blocks first, ascending
    indices = np.where(np.arange(n) < counts[..., None], indices, 0).astype(np.int32)
    # repeated tiles: every valid slot of the full layout once (a block counted m times is listed m times)
    valid = np.broadcast_to(layout.slot_valid, layout.key_blocks.shape[2:])
    middle = np.where(valid, layout.key_blocks[layer], n)  # (heads, n-2, S); n: switched off, sorts last
    if middle.shape[-1] > n:  # unreachable for block-sparse lengths (S = 5 + r < n)
        raise ValueError(f"{middle.shape[-1]} slots do not fit {n} key blocks")
    tile_counts = np.full((heads, n), n, dtype=np.int32)
    tile_counts[:, 1:-1] = valid.sum(-1)
    tile_indices = np.broadcast_to(np.arange(n, dtype=np.int32), (heads, n, n)).copy()
    tile_indices[:, 1:-1] = 0
    tile_indices[:, 1:-1, : middle.shape[-1]] = np.sort(middle, axis=-1) % n  # switched-off slots -> 0
    return KeyBlockLists(counts, indices, bias, allowed, tile_counts, tile_indices)
