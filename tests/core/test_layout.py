"""Block layout: the slots of every row, the dense mask, and block-sparse vs dense attention."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bigbird_core import BigBirdConfig, block_layout, dense_mask
from bigbird_core.attention import block_sparse_attention, full_attention
from bigbird_core.layout import block_mask
from bigbird_core.plans import seeded_plan, transformers_plan


def config(r=2, heads=2, layers=1, block=4) -> BigBirdConfig:
    return BigBirdConfig(hidden_size=heads * 4, num_attention_heads=heads, num_hidden_layers=layers,
                         block_size=block, num_random_blocks=r)  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(0, 30), st.integers(0, 10**6))
def test_each_middle_block_sees_window_globals_and_random(r, extra, seed):
    n = 6 + 2 * r + extra
    plan = seeded_plan(config(r), n, seed)
    lay = block_layout(plan, 4)
    blocks = block_mask(lay, 0)  # (heads, n, n)
    assert blocks[:, 0].all() and blocks[:, -1].all()
    for h in range(plan.shape[1]):
        for i in range(1, n - 1):
            expected = {0, n - 1, i - 1, i, i + 1} | set(plan[0, h, i - 1].tolist())
            assert set(np.flatnonzero(blocks[h, i]).tolist()) == expected
            assert len(expected) == 5 + r - (i in (1, n - 2))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2), st.integers(0, 10), st.integers(0, 10**6))
def test_dense_mask_agrees_with_block_lists(r, extra, seed):
    n, b = 6 + 2 * r + extra, 3
    lay = block_layout(seeded_plan(config(r, block=b), n, seed), b)
    dense, blocks = dense_mask(lay, 0), block_mask(lay, 0)
    assert dense.shape == (2, n * b, n * b)
    assert np.array_equal(dense[:, ::b, ::b], blocks)
    assert np.array_equal(dense.reshape(2, n, b, n, b).all(axis=(2, 4)), blocks)


def test_rows_one_and_second_to_last_switch_off_the_duplicate_slot():
    lay = block_layout(transformers_plan(config(), 12, training=False), 4)
    assert lay.key_blocks[0, 0, 0, :5].tolist() == [0, 0, 1, 2, 11] and not lay.slot_valid[0, 1]
    assert lay.key_blocks[0, 0, -1, :5].tolist() == [0, 9, 10, 11, 11] and not lay.slot_valid[-1, 3]
    assert lay.slot_valid[1:-1].all()


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 3), st.integers(0, 12), st.integers(0, 10**6), st.sampled_from(["float32", "float64"]))
def test_block_sparse_equals_masked_dense_attention(r, extra, seed, dtype):
    """Without repeated blocks (seeded plans) and padding, block-sparse attention is dense attention
    restricted to the layout's mask."""
    n, b, heads, d = 6 + 2 * r + extra, 4, 2, 5
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(2, heads, n * b, d)).astype(dtype) for _ in range(3))
    lay = block_layout(seeded_plan(config(r, heads), n, seed), b)
    ctx, probs = block_sparse_attention(q, k, v, np.ones((2, n * b), dtype), lay, layer=0, output_attentions=True)
    additive = np.where(dense_mask(lay, 0), 0.0, -np.inf).astype(dtype)[None]
    ref_ctx, ref_probs = full_attention(q, k, v, additive)
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(ctx, ref_ctx, atol=tol, rtol=tol)
    np.testing.assert_allclose(probs, ref_probs, atol=tol, rtol=tol)
