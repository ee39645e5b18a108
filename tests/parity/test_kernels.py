"""Every backend's attention kernels against the core's NumPy kernels, on the same inputs and layouts
(not only each backend against itself): block-sparse (fast, full-layout and dense probabilities) and full."""

from __future__ import annotations

import numpy as np
import pytest

import bigbird_core as core
from bigbird_core.attention import block_sparse_attention, full_attention
from bigbird_core.layout import block_layout, compact_slots, distinct_slot_bias, slot_key_blocks
from bigbird_core.recipe import PlannedLayout
from bigbird_core.tolerances import assert_close
from cases import TINY

CFG = core.BigBirdConfig(**TINY)
N, B, D = 13, CFG.block_size, 8  # blocks, block size, head dim


def make(plan_kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, CFG.num_attention_heads, N * B, D)).astype(np.float32) for _ in range(3))
    mask = np.ones((2, N * B), np.float32)
    mask[1, -11:] = 0
    training = plan_kind != "eval"
    cfg = CFG.replace(random_plan="seeded", plan_seed=seed) if plan_kind == "seeded" else CFG
    plan = core.make_plan(cfg, N, training=training)
    return q, k, v, mask, plan


PLANS = ["eval", "train", "seeded"]  # repeated blocks (merged slots), transformers' draw, distinct blocks


@pytest.mark.parametrize("plan_kind", PLANS)
def test_torch_kernels_match_the_core(plan_kind):
    torch = pytest.importorskip("torch")
    import bigbird_torch.attention as A

    q, k, v, mask, plan = make(plan_kind)
    layout = block_layout(plan, B)
    lay = A.LayoutTensors.build(PlannedLayout.of(plan, B), torch.device("cpu"))
    t = [torch.as_tensor(x) for x in (q, k, v, mask)]
    for layer in range(CFG.num_hidden_layers):
        ref_ctx, ref_probs = block_sparse_attention(q, k, v, mask, layout, layer=layer, output_attentions=True)
        with torch.no_grad():
            fast = A.fast_block_sparse_attention(*t, lay, layer)
            ctx, probs = A.block_sparse_attention(*t, lay, layer=layer, output_attentions=True)
        assert_close(fast, ref_ctx, name="torch fast")
        assert_close(ctx, ref_ctx, name="torch full layout")
        assert_close(probs, ref_probs, name="torch probabilities")
        # autograd takes the uncached path
        tq = t[0].clone().requires_grad_(True)
        assert_close(A.fast_block_sparse_attention(tq, *t[1:], lay, layer), ref_ctx, name="torch fast (grad)")
    additive = (1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min
    ref, ref_p = full_attention(q, k, v, additive)
    got, got_p = A.full_attention(*t[:3], torch.as_tensor(additive))
    assert_close(got, ref, name="torch full attention")
    assert_close(got_p, ref_p, name="torch full attention probabilities")


@pytest.mark.parametrize("plan_kind", PLANS)
def test_flax_kernels_match_the_core(plan_kind):
    pytest.importorskip("jax")
    import jax.numpy as jnp

    import bigbird_flax.attention as A

    q, k, v, mask, plan = make(plan_kind)
    layout = block_layout(plan, B)
    merged = compact_slots(layout)
    j = [jnp.asarray(x) for x in (q, k, v, mask)]
    for layer in range(CFG.num_hidden_layers):
        ref_ctx, ref_probs = block_sparse_attention(q, k, v, mask, layout, layer=layer, output_attentions=True)
        fast = A.fast_block_sparse_attention(*j, jnp.asarray(merged.key_blocks[layer]),
                                             jnp.asarray(merged.slot_bias[layer], jnp.float32), B)  # fmt: skip
        ctx, probs = A.layer_attention(*j, jnp.asarray(layout.key_blocks[layer]), B, True)
        assert_close(fast, ref_ctx, name="flax fast")
        assert_close(ctx, ref_ctx, name="flax full layout")
        assert_close(probs, ref_probs, name="flax probabilities")
        if plan_kind == "seeded":  # distinct blocks: the drawn-plan layout runs the fast kernel unmerged
            blocks = slot_key_blocks(jnp.asarray(plan[layer]))
            drawn = A.fast_block_sparse_attention(*j, blocks, distinct_slot_bias(blocks), B)
            assert_close(drawn, ref_ctx, name="flax drawn-plan layout")
    additive = (1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min
    ref, ref_p = full_attention(q, k, v, additive)
    got, got_p = A.full_attention(*j[:3], jnp.asarray(additive))
    assert_close(got, ref, name="flax full attention")
    assert_close(got_p, ref_p, name="flax full attention probabilities")


def test_the_array_api_layout_functions_match_numpy_on_every_backend():
    """slot_key_blocks and winner_slots, written once, give NumPy's answer on torch and JAX arrays."""
    from bigbird_core.layout import dense_winner, winner_slots

    plan = core.make_plan(CFG, N, training=True)
    layout = block_layout(plan, B)
    expected_blocks, expected_winner = layout.key_blocks, dense_winner(layout, 1)
    arrays = [np.asarray]
    for name in ("torch", "jax.numpy"):
        module = pytest.importorskip(name)
        arrays.append(module.asarray if name == "jax.numpy" else module.as_tensor)
    for to in arrays:
        blocks = slot_key_blocks(to(plan))
        np.testing.assert_array_equal(np.asarray(blocks), expected_blocks)
        winner = winner_slots(blocks[1], layout.slot_valid, N)
        np.testing.assert_array_equal(np.asarray(winner), expected_winner)
