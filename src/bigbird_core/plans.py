"""Random-block plans: which ``r`` random key blocks each middle query block attends to.

A plan is data: an int array ``(layers, heads, num_blocks - 2, r)``; row ``j`` belongs to query block
``j + 1`` (blocks 0 and ``num_blocks - 1`` are global and attend to everything). The core makes plans;
the backends only gather with them.

Planners:
- ``transformers_plan``: what transformers 4.57.6 draws. In eval mode all zeros (PR #23056); in train mode
  NumPy's legacy RNG seeded with the layer index on every call, through the "paper lengths" path
  (1024, 3072, 4096) or the "plan from length" path. Reproduced here with a private ``RandomState``, so
  NumPy's global RNG is never touched.
- ``google_plan``: the original Google planner, the same algorithms drawn once at construction (also in
  eval), with 2048 also on the paper-lengths path.
- ``seeded_plan``: a fresh plan from a seed, each row ``r`` distinct blocks outside the window and the
  global blocks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .config import BigBirdConfig, sparse_blocks_needed
from .errors import ConfigError, InputError, fail

TRANSFORMERS_PAPER_LENGTHS = (1024, 3072, 4096)
GOOGLE_PAPER_LENGTHS = (1024, 2048, 3072, 4096)
GOOGLE_MAX_SEQ_LEN = 4096  # the original code plans paper lengths for 4096 tokens


def _too_few(row: int, candidates: int, r: int) -> ConfigError:
    return ConfigError(
        f"num_random_blocks: query block {row} has only {candidates} legal random blocks under "
        f"transformers' planner, fewer than num_random_blocks ({r}); use a longer sequence, a smaller "
        "block_size or fewer random blocks"
    )


def _paper_rows(rng: np.random.RandomState, max_len: int, block: int, r: int, last_idx: int) -> np.ndarray:
    """transformers' ``_bigbird_block_rand_mask`` in train mode: one head, ``(max_len/block - 2, r)``.

    Quirks kept on purpose (each pinned by a test): candidates stop at block ``last_idx/block - 1``,
    which may be the last (global) block; the last two rows (of the *planning* length) may pick
    blocks of their own window.
    """
    n = max_len // block
    out = np.zeros((n - 2, r), dtype=np.int32)
    middle = np.arange(1, n - 1, dtype=np.int32)  # middle[k] is block k + 1
    last = n - 1
    if last_idx > 2 * block:
        last = last_idx // block - 1
    for i in range(1, n - 1):
        start, end = i - 2, i
        if i == 1:
            cand = middle[2:last]
        elif i == 2:
            cand = middle[3:last]
        elif i in (n - 3, n - 2):
            cand = middle[:last]
        elif start > last:
            cand = middle[:last]
        elif end + 1 == last:
            cand = middle[:start]
        else:
            cand = np.concatenate((middle[:start], middle[end + 1 : last]))
        picked = rng.permutation(cand)[:r]
        if len(picked) < r:
            raise _too_few(i, len(picked), r)
        out[i - 1] = picked
    return out


def _length_plan(num_blocks: int, r: int) -> tuple[list[int], list[int]]:
    """transformers' ``_get_rand_attn_plan`` in blocks: (plan end blocks, random blocks per part)."""
    if 2 * r + 5 < num_blocks:
        return [2 * r + 5, num_blocks], [r, 0]
    if r + 5 < num_blocks:
        return [r + 5, num_blocks], [r // 2, r - r // 2]
    return [num_blocks], [r]


def _row_blocks(rng: np.random.RandomState, row: int, start: int, end: int, r: int) -> np.ndarray:
    """transformers' ``_get_single_block_row_attention`` (window 1, one global block each side).

    The "global" blocks it rejects are ``0`` and ``end - 1`` of the *plan part*, and the special
    neighbour rule uses ``end - 2``: quirks of the original code, kept.
    """
    perm = rng.permutation(np.arange(start, end, dtype=np.int32))
    illegal = {row - 1, row, row + 1, 0, end - 1}
    if row == 1:
        illegal.add(end - 2)
    if row == end - 2:
        illegal.add(1)
    picked = [int(b) for b in perm if int(b) not in illegal][:r]
    if len(picked) < r:
        raise _too_few(row, len(picked), r)
    return np.asarray(picked, dtype=np.int32)


def _length_rows(rng: np.random.RandomState, num_blocks: int, heads: int, r: int) -> np.ndarray:
    """transformers' ``_bigbird_block_rand_mask_with_head`` in train mode: ``(heads, num_blocks - 2, r)``.

    The RNG is consumed in the original order: plan part by part, row by row, head by head (rows
    include the last block, whose draw is discarded).
    """
    ends, counts = _length_plan(num_blocks, r)
    total = sum(counts)
    out = np.zeros((heads, num_blocks, total), dtype=np.int32)
    for part in range(len(ends)):
        if part > 0:
            lo, hi = sum(counts[:part]), sum(counts[: part + 1])
            if counts[part] > 0:
                for row in range(1, ends[part - 1]):
                    for h in range(heads):
                        out[h, row, lo:hi] = _row_blocks(rng, row, ends[part - 1], ends[part], counts[part])
            for prev in range(part):
                if counts[prev] == 0:
                    continue
                lo_p, hi_p = sum(counts[:prev]), sum(counts[: prev + 1])
                start = ends[prev - 1] if prev > 0 else 0
                for row in range(ends[part - 1], ends[part]):
                    for h in range(heads):
                        out[h, row, lo_p:hi_p] = _row_blocks(rng, row, start, ends[prev], counts[prev])
        if counts[part] == 0:
            continue
        lo, hi = sum(counts[:part]), sum(counts[: part + 1])
        first_row = 1 if part == 0 else ends[part - 1]
        start = 0 if part == 0 else ends[part - 1]
        for row in range(first_row, ends[part]):
            for h in range(heads):
                out[h, row, lo:hi] = _row_blocks(rng, row, start, ends[part], counts[part])
    return out[:, 1 : num_blocks - 1]


def _drawn_layer(seed: int, num_blocks: int, heads: int, block: int, r: int, max_len: int,
                 paper_lengths: tuple[int, ...]) -> np.ndarray:  # fmt: skip
    """One layer's trained plan as transformers/Google draw it: ``(heads, num_blocks - 2, r)``."""
    rng = np.random.RandomState(seed)
    seq_len = num_blocks * block
    if seq_len in paper_lengths:
        if max_len // block < num_blocks:
            raise ConfigError(
                f"max_position_embeddings: the paper-length planner plans for {max_len} tokens, "
                f"fewer than the sequence ({seq_len})"
            )
        rows = [_paper_rows(rng, max_len, block, r, last_idx=1024)[: num_blocks - 2] for _ in range(heads)]
        return np.stack(rows, axis=0)
    return _length_rows(rng, num_blocks, heads, r)


def _check(num_blocks: int, r: int) -> None:
    if num_blocks <= sparse_blocks_needed(r):
        raise fail(InputError, "num_blocks", f"more than 5 + 2 * num_random_blocks = {sparse_blocks_needed(r)} blocks "
                   "for block-sparse attention", num_blocks)  # fmt: skip


@lru_cache(maxsize=64)
def _transformers_train(
    layers: int, heads: int, num_blocks: int, block: int, r: int, max_len: int
) -> np.ndarray:
    plan = np.stack([_drawn_layer(i, num_blocks, heads, block, r, max_len, TRANSFORMERS_PAPER_LENGTHS)
                     for i in range(layers)])  # fmt: skip
    plan.setflags(write=False)
    return plan


@lru_cache(maxsize=64)
def _google(layers: int, heads: int, num_blocks: int, block: int, r: int) -> np.ndarray:
    plan = np.stack([_drawn_layer(i, num_blocks, heads, block, r, GOOGLE_MAX_SEQ_LEN, GOOGLE_PAPER_LENGTHS)
                     for i in range(layers)])  # fmt: skip
    plan.setflags(write=False)
    return plan


def transformers_plan(config: BigBirdConfig, num_blocks: int, *, training: bool) -> np.ndarray:
    """The plan transformers 4.57.6 uses: zeros in eval, its seeded per-layer draw in train.

    Args:
        config: the model config (layers, heads, block size, r, max positions).
        num_blocks: blocks of the padded sequence.
        training: train mode (the draw) or eval mode (all zeros).

    Returns:
        A read-only int32 array ``(layers, heads, num_blocks - 2, r)``.
    """
    _check(num_blocks, config.num_random_blocks)
    shape = (config.num_hidden_layers, config.num_attention_heads, num_blocks - 2, config.num_random_blocks)
    if not training:
        plan = np.zeros(shape, dtype=np.int32)
        plan.setflags(write=False)
        return plan
    return _transformers_train(*shape[:2], num_blocks, config.block_size, config.num_random_blocks,
                               config.max_position_embeddings)  # fmt: skip


def google_plan(config: BigBirdConfig, num_blocks: int) -> np.ndarray:
    """The original Google planner's fixed plan (the same in train and eval)."""
    _check(num_blocks, config.num_random_blocks)
    return _google(config.num_hidden_layers, config.num_attention_heads, num_blocks, config.block_size,
                   config.num_random_blocks)  # fmt: skip


def legal_random_blocks(num_blocks: int) -> np.ndarray:
    """bool ``(num_blocks - 2, num_blocks)``: block k may be a random block of middle row j (query block
    j + 1): outside the row's window and not a global block. The rule of every fresh plan."""
    rows = np.arange(1, num_blocks - 1)[:, None]
    k = np.arange(num_blocks)[None, :]
    return (np.abs(k - rows) > 1) & (k > 0) & (k < num_blocks - 1)


def seeded_plan(config: BigBirdConfig, num_blocks: int, seed: int) -> np.ndarray:
    """A fresh plan from ``seed``: per layer, head and row, ``r`` distinct blocks chosen uniformly
    among the legal ones (:func:`legal_random_blocks`)."""
    r = config.num_random_blocks
    _check(num_blocks, r)
    rng = np.random.default_rng(seed)
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    keys = rng.random((layers, heads, num_blocks - 2, num_blocks))
    keys = np.where(legal_random_blocks(num_blocks), keys, np.inf)  # illegal blocks sort last
    plan = np.argsort(keys, axis=-1, kind="stable")[..., :r].astype(np.int32)
    plan.setflags(write=False)
    return plan


def make_plan(
    config: BigBirdConfig, num_blocks: int, *, training: bool, seed: int | None = None
) -> np.ndarray:
    """The plan ``config.random_plan`` asks for, for a padded sequence of ``num_blocks`` blocks.

    Args:
        config: the model config; ``config.random_plan`` picks the planner.
        num_blocks: blocks of the padded sequence.
        training: train or eval mode (matters for the "transformers" planner only).
        seed: for the "seeded" planner, overrides ``config.plan_seed``.

    Returns:
        A read-only int32 array ``(layers, heads, num_blocks - 2, r)``.

    Example:
        >>> make_plan(BigBirdConfig(num_hidden_layers=2), 16, training=True).shape
        (2, 12, 14, 3)
    """
    if config.random_plan == "transformers":
        return transformers_plan(config, num_blocks, training=training)
    if config.random_plan == "google":
        return google_plan(config, num_blocks)
    return seeded_plan(config, num_blocks, config.plan_seed if seed is None else seed)


def check_plan(config: BigBirdConfig, num_blocks: int, plan: object) -> np.ndarray:
    """Validate a user-given plan and return it as an int array."""
    shape = (config.num_hidden_layers, config.num_attention_heads, num_blocks - 2, config.num_random_blocks)
    arr = np.asarray(plan)
    if arr.shape != shape or arr.dtype.kind not in "iu":
        raise fail(InputError, "plan", f"an integer array of shape {shape}", arr)
    if arr.size and (arr.min() < 0 or arr.max() >= num_blocks):
        raise fail(InputError, "plan", f"block indices in [0, {num_blocks})",
                   f"values in [{arr.min()}, {arr.max()}]")  # fmt: skip
    return arr.astype(np.int32, copy=False)
