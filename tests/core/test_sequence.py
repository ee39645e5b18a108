"""Sequence parallelism in the core: the exchange plan fetches exactly the tiles each shard's rows need, and the
per-shard attention run by threads that exchange like devices (the NumPy reference) equals one-device attention
for eval, training and fresh plans, over 2, 4 and 8 shards, with padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bigbird_core import BigBirdConfig, InputError
from bigbird_core.attention import block_sparse_attention
from bigbird_core.layout import block_layout, compact_slots
from bigbird_core.plans import seeded_plan, transformers_plan
from bigbird_core.recipe import prepare_call
from bigbird_core.sequence import sequence_layout, sequence_parallel_attention, sequence_shards
from bigbird_core.tolerances import assert_close

CFG = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=4096, block_size=8, num_random_blocks=3)  # fmt: skip
BLOCKS = 32
PLANS = {
    "eval": lambda: transformers_plan(CFG, BLOCKS, training=False),
    "train": lambda: transformers_plan(CFG, BLOCKS, training=True),
    "fresh": lambda: seeded_plan(CFG, BLOCKS, 7),
}


def layout(kind: str):
    return block_layout(PLANS[kind](), CFG.block_size)


def inputs(dtype=np.float64):
    rng = np.random.default_rng(0)
    length = BLOCKS * CFG.block_size
    q, k, v = (rng.standard_normal((2, 2, length, 16)).astype(dtype) for _ in range(3))
    mask = np.ones((2, length), dtype)
    mask[1, 200:] = 0  # the second example is padded from inside block 25
    return q, k, v, mask


@pytest.mark.parametrize("shards", [1, 2, 4, 8])
@pytest.mark.parametrize("kind", list(PLANS))
def test_threads_exchanging_tiles_equal_one_device(kind, shards):
    lay = layout(kind)
    plan = sequence_shards(lay, shards)
    q, k, v, mask = inputs()
    for layer in range(CFG.num_hidden_layers):
        expected, _ = block_sparse_attention(q, k, v, mask, lay, layer=layer)
        assert_close(sequence_parallel_attention(q, k, v, mask, plan, layer), expected, "float64", name=f"layer {layer}")


@pytest.mark.parametrize("shards", [2, 4, 8])
@pytest.mark.parametrize("kind", list(PLANS))
def test_every_shard_receives_exactly_the_tiles_its_rows_need(kind, shards):
    lay = layout(kind)
    plan = sequence_shards(lay, shards)
    compact = compact_slots(lay)
    n, m, heads = BLOCKS, BLOCKS // shards, CFG.num_attention_heads
    sends, regions = plan.send_offsets(), plan.region_offsets()
    for pairs in plan.rounds:  # a round is a partial matching: one ppermute
        assert len({q for q, _ in pairs}) == len({p for _, p in pairs}) == len(pairs)
    for r, s in itertools.combinations(range(len(plan.rounds)), 2):  # rounds sharing a region reach other shards
        if plan.region[r] == plan.region[s]:
            assert not {p for _, p in plan.rounds[r]} & {p for _, p in plan.rounds[s]}
    for layer in range(CFG.num_hidden_layers):
        for p in range(shards):
            needed = set()
            for i in range(max(p * m, 1), min((p + 1) * m, n - 1)):
                for h in range(heads):
                    present = np.isfinite(compact.slot_bias[layer, h, i - 1])
                    needed |= {(h, int(b)) for b in compact.key_blocks[layer, h, i - 1][present] if b // m != p}
            received = set()
            for r, pairs in enumerate(plan.rounds):
                for src in [q for q, dst in pairs if dst == p]:
                    count = int(plan.send_counts[layer, src, r])
                    assert 2 * plan.send_counts[:, src, r].max() >= plan.capacity[r]  # padding at most doubles
                    tiles = plan.send[layer, src, sends[r] : sends[r] + count]
                    received |= {(int(t) // m, src * m + int(t) % m) for t in tiles}
                    stored = plan.store_blocks[layer, p, heads * m + regions[plan.region[r]] :][:count]
                    assert stored.tolist() == [src * m + int(t) % m for t in tiles]  # the store knows what it got
            assert received == needed, (layer, p)
            # ragged engines receive exactly that, without padding
            _, send_splits, recv_index, recv_splits = plan.all_to_all(layer, p)
            assert sum(recv_splits) == len(received) == len(recv_index)
            assert sum(send_splits) == int(plan.send_counts[layer, p].sum())
    assert plan.tiles_received(padded=False) <= plan.tiles_received(padded=True)


def test_the_exchange_moves_less_than_an_all_gather():
    """Per layer and shard, against an all-gather of K and V: eval plans (random blocks are block 0) fetch only
    neighbours and globals; random plans fetch their random tiles, at most r per row and head."""
    eight = {kind: sequence_shards(layout(kind), 8) for kind in PLANS}
    sizes = {kind: plan.bytes_per_layer(batch=1, head_dim=64, itemsize=4) for kind, plan in eight.items()}
    heads, m = CFG.num_attention_heads, BLOCKS // 8
    assert eight["eval"].tiles_received(padded=False) <= 4 * heads  # a neighbour each side, block 0 and n-1
    assert sizes["eval"]["tiles"] * 3 < sizes["eval"]["all_gather"]
    assert sizes["eval"]["buffers"] * 3 < sizes["eval"]["all_gather"]
    for kind in ("train", "fresh"):
        bound = heads * (m * CFG.num_random_blocks + 4)  # random tiles, two neighbours, two globals
        assert eight[kind].tiles_received(padded=False) <= bound
        assert sizes[kind]["exact"] <= sizes[kind]["tiles"] <= 2 * sizes[kind]["exact"]  # padding at most doubles
        assert sizes[kind]["tiles"] < sizes[kind]["all_gather"]


def test_bad_shard_counts_are_refused_with_the_argument():
    lay = layout("eval")
    with pytest.raises(InputError, match=r"shards: expected a divisor of the 32 blocks of the sequence, got 5"):
        sequence_shards(lay, 5)
    with pytest.raises(InputError, match=r"shards: expected a positive integer, got 0"):
        sequence_shards(lay, 0)


def test_calls_without_block_sparse_attention_are_refused():
    short = prepare_call(CFG, "BigBirdModel", dtype=np.float32, input_ids=np.ones((1, 64), np.int64))
    with pytest.raises(InputError, match=r"input_ids: expected a call that runs block-sparse attention .* at least "
                       r"89 tokens, got attention_type 'block_sparse' and 64 tokens"):  # fmt: skip
        sequence_layout(short)
    long = prepare_call(CFG, "BigBirdModel", dtype=np.float32, input_ids=np.ones((1, 256), np.int64))
    assert sequence_layout(long).num_blocks == BLOCKS
