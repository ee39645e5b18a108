"""Random-block planners: properties, exact agreement with transformers' draws, and its quirks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigbird_core import BigBirdConfig
from bigbird_core.errors import InputError
from bigbird_core.plans import google_plan, make_plan, seeded_plan, transformers_plan


def config(block=8, r=2, heads=3, layers=2, max_pos=4096) -> BigBirdConfig:
    return BigBirdConfig(hidden_size=heads * 4, num_attention_heads=heads, num_hidden_layers=layers,
                         block_size=block, num_random_blocks=r, max_position_embeddings=max_pos)  # fmt: skip


def rows_of(plan):
    """Yield (query block i, its random blocks) for every layer, head and middle row."""
    for layer in plan:
        for head in layer:
            for j, row in enumerate(head):
                yield j + 1, row


@st.composite
def shapes(draw):
    r = draw(st.integers(0, 4))
    n = draw(st.integers(6 + 2 * r, 6 + 2 * r + 40))
    block = draw(st.sampled_from([2, 4, 8]))
    return r, n, block


@settings(max_examples=40, deadline=None)
@given(shapes(), st.integers(0, 2**31 - 1))
def test_seeded_plan_rows_are_distinct_and_avoid_window_and_globals(shape, seed):
    r, n, block = shape
    plan = seeded_plan(config(block, r), n, seed)
    assert plan.shape == (2, 3, n - 2, r)
    for i, row in rows_of(plan):
        assert len(set(row.tolist())) == r
        assert not set(row.tolist()) & {0, n - 1, i - 1, i, i + 1}


@settings(max_examples=30, deadline=None)
@given(shapes(), st.integers(0, 2**31 - 1))
def test_plans_are_deterministic_and_leave_the_global_rng_alone(shape, seed):
    r, n, block = shape
    np.random.seed(99)
    before = np.random.get_state()
    for make in (lambda: seeded_plan(config(block, r), n, seed),
                 lambda: transformers_plan(config(block, r), n, training=True),
                 lambda: google_plan(config(block, r), n)):  # fmt: skip
        assert np.array_equal(make(), make())
    after = np.random.get_state()
    assert np.array_equal(after[1], before[1]) and after[2:] == before[2:]


@settings(max_examples=30, deadline=None)
@given(shapes())
def test_transformers_train_plan_on_the_length_path(shape):
    """Rows are distinct and avoid block 0, the window and the last block; quirk: every random block
    lies in the first 2r+5 blocks (transformers plans from length (2r+5)*b), never on block 2r+4."""
    r, n, block = shape
    if n * block in (1024, 3072, 4096):
        return
    plan = transformers_plan(config(block, r), n, training=True)
    for i, row in rows_of(plan):
        assert len(set(row.tolist())) == r
        assert not set(row.tolist()) & {0, n - 1, i - 1, i, i + 1}
        assert (row < 2 * r + 4).all()


def test_quirk_length_path_row_one_skips_block_2r_plus_3():
    """transformers' neighbour rule bans block ``end - 2`` of the plan part (2r+3) for query block 1."""
    r, n = 2, 40
    plan = transformers_plan(config(8, r, heads=4, layers=12), n, training=True)
    row1 = plan[:, :, 0].ravel()
    assert 2 * r + 3 not in row1
    assert set(range(3, 2 * r + 3)) <= set(row1.tolist())  # every other legal block occurs somewhere


def test_quirk_paper_length_may_pick_the_last_global_block():
    """At 1024 tokens of block 64 the candidates run up to block 15, the last (global) block."""
    plan = transformers_plan(config(64, 3, heads=12, layers=12), 16, training=True)
    assert (plan == 15).any()


def test_quirk_paper_length_last_rows_may_pick_their_own_window():
    """When the length equals the planning length, the last two rows draw from all middle blocks."""
    cfg = config(64, 3, heads=12, layers=12, max_pos=1024)
    plan = transformers_plan(cfg, 16, training=True)
    hits = [(i in row or i - 1 in row or i + 1 in row) for i, row in rows_of(plan) if i >= 13]
    assert any(hits)


def test_eval_plan_is_all_zeros():
    plan = transformers_plan(config(), 20, training=False)
    assert plan.shape == (2, 3, 18, 2) and not plan.any()


def test_make_plan_dispatches_on_config():
    cfg = config()
    assert np.array_equal(
        make_plan(cfg.replace(random_plan="google"), 20, training=False), google_plan(cfg, 20)
    )
    assert np.array_equal(make_plan(cfg.replace(random_plan="seeded", plan_seed=4), 20, training=False),
                          seeded_plan(cfg, 20, 4))  # fmt: skip
    assert not np.array_equal(seeded_plan(cfg, 20, 4), seeded_plan(cfg, 20, 5))


def test_google_plan_uses_the_paper_path_at_2048():
    cfg = config(64, 3)
    g = google_plan(cfg, 32)
    t = transformers_plan(cfg, 32, training=True)
    assert g.shape == t.shape and not np.array_equal(g, t)
    assert (g <= 15).all()  # paper path: candidates stop at block 1024/64 - 1


def test_too_short_for_block_sparse_is_refused():
    with pytest.raises(InputError, match="num_blocks"):
        seeded_plan(config(8, 2), 9, 0)


@pytest.mark.parametrize("length,block,r,max_pos", [
    (1024, 64, 3, 4096), (1024, 16, 2, 1024), (3072, 32, 1, 4096), (4096, 64, 3, 4096),
    (768, 64, 3, 4096), (2048, 64, 3, 4096), (400, 16, 4, 512), (832, 64, 1, 4096),
])  # fmt: skip
def test_train_plan_equals_the_oracle_draw(length, block, r, max_pos):
    """The indices transformers 4.57.6 draws in train mode, layer by layer (seed = layer index)."""
    pytest.importorskip("transformers")
    from transformers import BigBirdConfig as HFConfig
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    cfg = config(block, r, heads=4, layers=3, max_pos=max_pos)
    hf = HFConfig(hidden_size=16, num_attention_heads=4, block_size=block, num_random_blocks=r,
                  max_position_embeddings=max_pos)  # fmt: skip
    ours = transformers_plan(cfg, length // block, training=True)
    for layer in range(3):
        att = BigBirdBlockSparseAttention(hf, seed=layer).train()
        np.random.seed(layer)
        if length in (1024, 3072, 4096):
            drawn = [att._bigbird_block_rand_mask(max_pos, max_pos, block, block, r, last_idx=1024)[: length // block - 2]
                     for _ in range(4)]  # fmt: skip
        else:
            plan_len, plan_r = att._get_rand_attn_plan(length, block, r)
            drawn = att._bigbird_block_rand_mask_with_head(length, length, block, block, 4, plan_len, plan_r)
        assert np.array_equal(np.stack(drawn), ours[layer]), f"layer {layer}"
