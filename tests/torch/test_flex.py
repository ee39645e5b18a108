"""The FlexAttention kernel of bigbird_torch: its BlockMask and score bias give the reference results.

On CPU the eager FlexAttention runs (dense scores, exact semantics of the block mask's ``mask_mod`` and the
``score_mod``); on CUDA the compiled kernel, which visits only the listed blocks, also runs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
import bigbird_core as core  # noqa: E402
import bigbird_torch as bt  # noqa: E402
import bigbird_torch.attention as A  # noqa: E402
from bigbird_core import BigBirdConfig, InputError  # noqa: E402
from bigbird_core.layout import block_layout, block_mask, key_block_lists  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from cases import CASES, TINY, make_inputs, make_labels  # noqa: E402
from oracle import oracle_forward, oracle_model, save_oracle  # noqa: E402
from parity.helpers import compare_outputs  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not A.flex_available(), reason="this torch has no FlexAttention"),
    pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile"),
]
CFG = BigBirdConfig(**TINY)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def kernel_inputs(n: int, b: int, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(2, 4, n * b, 16, generator=g, dtype=torch.float64).to(dtype).to(device) for _ in range(3)
    )
    mask = torch.ones(2, n * b, dtype=dtype, device=device)
    mask[1, -13:] = 0  # padding: ends inside a block
    return q, k, v, mask


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("plan_kind", ["transformers", "seeded"])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("n", [11, 19])
def test_flex_kernel_equals_the_full_layout(n, train, plan_kind, device):
    """Outputs (and on CUDA the gradients of q, k and v) equal the full-layout path: odd block counts,
    padding ending inside a block, eval plans with repeated blocks and train plans."""
    cfg = CFG.replace(random_plan=plan_kind, plan_seed=1)
    b = cfg.block_size if device == "cpu" else 16
    lay = A.LayoutTensors.build(block_layout(core.make_plan(cfg, n, training=train), b), torch.device(device))
    q, k, v, mask = kernel_inputs(n, b, torch.float32, device)
    with torch.no_grad():
        assert_close(
            A.flex_block_sparse_attention(q, k, v, mask, lay, 1),
            A._block_sparse_with_probs(q, k, v, mask, lay, 1)[0],
        )
    if device == "cpu":
        return  # FlexAttention has no backward on the CPU
    for t in (q, k, v):
        t.requires_grad_(True)
    ref, _ = A._block_sparse_with_probs(q, k, v, mask, lay, 1)
    got = A.flex_block_sparse_attention(q, k, v, mask, lay, 1)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2)).to(device)
    ref_grads = torch.autograd.grad((ref * weights).sum(), (q, k, v))
    got_grads = torch.autograd.grad((got * weights).sum(), (q, k, v))
    scale = max(float(g.abs().max()) for g in ref_grads)
    for name, g_got, g_ref in zip("qkv", got_grads, ref_grads, strict=True):
        assert_close(g_got, g_ref, kind="gradient", name=f"d{name}", scale=scale)


def test_block_lists_are_the_layout():
    """Every query block lists exactly the key blocks of the layout's block mask, multiplicities as bias."""
    for train in (False, True):
        lay = block_layout(core.make_plan(CFG, 11, training=train), CFG.block_size)
        for layer in range(CFG.num_hidden_layers):
            lists = key_block_lists(lay, layer)
            np.testing.assert_array_equal(lists.allowed, block_mask(lay, layer))
            for h in range(lists.counts.shape[0]):
                for qb in range(11):
                    listed = lists.indices[h, qb, : lists.counts[h, qb]]
                    assert list(listed) == sorted(np.flatnonzero(lists.allowed[h, qb]))
            for h in range(lists.counts.shape[0]):  # repeated tiles: the full layout's valid slots, as a multiset
                for j in range(1, 10):
                    tiles = lists.tile_indices[h, j, : lists.tile_counts[h, j]]
                    slots = lay.key_blocks[layer, h, j - 1][lay.slot_valid[j - 1]]
                    assert list(tiles) == sorted(slots)
            assert lists.repeats == (not train)
            r = CFG.num_random_blocks
            expected = np.log(r + 1) if not train else 0.0  # eval plans repeat block 0 in every random slot
            assert np.isclose(lists.bias[0, 3, 0], expected)
            assert (lists.bias[:, [0, -1]] == 0).all()


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("head", core.HEADS)
@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=lambda c: c.id)
def test_every_head_through_flex_matches_transformers(case, head, mode, tmp_path, monkeypatch):
    calls = []
    kernel = A.flex_block_sparse_attention
    monkeypatch.setattr(A, "flex_block_sparse_attention", lambda *a, **kw: calls.append(1) or kernel(*a, **kw))
    oracle = oracle_model(case.config, head, seed=0)
    path = save_oracle(oracle, str(tmp_path))
    train = mode == "train"
    inputs = {**make_inputs(case, head), **make_labels(case, head)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bt.MODEL_CLASSES[head].from_pretrained(path).train(train)
        assert model.set_block_sparse_kernel("flex") == "auto"
        with torch.no_grad():
            actual = model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, output_hidden_states=True)
    compare_outputs(actual, oracle_forward(oracle, train, **inputs, output_hidden_states=True))
    assert len(calls) == case.config.num_hidden_layers  # every layer ran through FlexAttention


def test_auto_uses_the_gather_path_on_cpu(monkeypatch):
    flex_model = bt.BigBirdModel(CFG, seed=0)
    flex_model.set_block_sparse_kernel("flex")  # another model's choice does not leak into this one
    monkeypatch.setattr(
        A, "flex_block_sparse_attention", lambda *a, **kw: pytest.fail("flex ran on CPU under auto")
    )
    model = bt.BigBirdModel(CFG, seed=0).eval()
    ids = torch.as_tensor(make_inputs(CASES[0], "BigBirdModel")["input_ids"])
    with torch.no_grad():
        assert model(input_ids=ids).last_hidden_state.shape == (2, 150, CFG.hidden_size)


def test_unknown_kernel_names_the_argument():
    with pytest.raises(InputError, match="kernel: expected one of auto, gather, flex, flex-bias for the torch backend, "
                       "got 'fast'"):  # fmt: skip
        bt.BigBirdModel(CFG, seed=0).set_block_sparse_kernel("fast")


def test_tile_sizes_divide_the_block():
    assert A.flex_kernel_options(64) == {"BLOCK_M": 64, "BLOCK_N": 64, "bwd_BLOCK_M1": 32, "bwd_BLOCK_N1": 64,
                                         "bwd_BLOCK_M2": 64, "bwd_BLOCK_N2": 32}  # fmt: skip
    assert A.flex_kernel_options(128)["BLOCK_M"] == 64
    assert A.flex_kernel_options(48)["BLOCK_M"] == 16
    assert A.flex_kernel_options(8) is None and A.flex_kernel_options(24) is None


def test_cpu_autograd_through_keys_keeps_the_gather_path():
    """Under "flex" on the CPU, a graph through k alone (q constant) still takes the gather path: the eager
    FlexAttention would refuse it."""
    lay = A.LayoutTensors.build(block_layout(core.make_plan(CFG, 11, training=False), 8), torch.device("cpu"))
    q, k, v, mask = kernel_inputs(11, 8, torch.float32, "cpu")
    k.requires_grad_(True)
    out, _ = A.block_sparse_attention(q, k, v, mask, lay, layer=0, kernel="flex")
    out.sum().backward()
    assert k.grad is not None and float(k.grad.abs().max()) > 0


def test_score_bias_table_only_for_repeated_blocks():
    """Eval plans repeat block 0 (a bias table is needed); seeded train plans repeat nothing (key bias only)."""
    cfg = CFG.replace(random_plan="seeded", plan_seed=1)
    repeats = A.LayoutTensors.build(
        block_layout(core.make_plan(CFG, 11, training=False), 8), torch.device("cpu")
    )
    distinct = A.LayoutTensors.build(
        block_layout(core.make_plan(cfg, 11, training=True), 8), torch.device("cpu")
    )
    assert repeats.flex(0)[1] is not None and float(repeats.flex(0)[1].max()) == pytest.approx(np.log(3))
    assert distinct.flex(0)[1] is None


def test_repeated_tiles_equal_the_full_layout_when_compiled():
    """Eval plans (block 0 in every random slot) as repeated tiles, no bias: a compiled FlexAttention kernel
    walks every listed tile (inductor's CPU template here; the library's CUDA path is checked by
    benchmarks/gpu.py) and equals the full layout; the eager implementation reads the mask densely (a repeat
    counts once), which is why tiles are for compiled inference only. (Inductor's CPU template mishandles
    fewer queries than keys, so this runs every query block, global rows included, on the core's lists.)"""
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    n, b = 13, 16
    cfg = CFG.replace(block_size=b)
    layout = block_layout(core.make_plan(cfg, n, training=False), b)
    lay = A.LayoutTensors.build(layout, torch.device("cpu"))
    lists = key_block_lists(layout, 1)
    assert lists.repeats
    q, k, v, _ = kernel_inputs(n, b, torch.float32, "cpu")
    mask = torch.ones(2, n * b)
    counts, indices = torch.as_tensor(lists.tile_counts)[None], torch.as_tensor(lists.tile_indices)[None]
    tiles = BlockMask.from_kv_blocks(torch.zeros_like(counts), torch.zeros_like(indices), counts, indices,
                                     BLOCK_SIZE=b)  # fmt: skip
    with torch.no_grad():
        ref = A._block_sparse_with_probs(q, k, v, mask, lay, 1)[0]
        assert_close(torch.compile(flex_attention, dynamic=False)(q, k, v, block_mask=tiles), ref)
        assert float((flex_attention(q, k, v, block_mask=tiles) - ref).abs().max()) > 1e-3
    # the library's middle-row mask lists the same tiles, and needs no bias
    block_mask, bias = lay.flex(1, tiles=True)
    assert bias is None and lay.flex(1)[1] is not None
    kv_counts, kv_indices = block_mask.full_kv_num_blocks[0], block_mask.full_kv_indices[0]
    np.testing.assert_array_equal(kv_counts.numpy(), lists.tile_counts[:, 1:-1])
    np.testing.assert_array_equal(kv_indices.numpy(), lists.tile_indices[:, 1:-1])


def test_compiled_layers_equal_the_eager_modules():
    """``set_compiled_layers``: the fused projection and the compiled layer tail (inductor on the CPU here)
    give the eager model's outputs and gradients, in eval and in train mode (dropout 0)."""
    cfg = CFG.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids = torch.as_tensor(make_inputs(CASES[0], "BigBirdModel")["input_ids"])
    eager = bt.BigBirdForMaskedLM(cfg, seed=0)
    compiled = bt.BigBirdForMaskedLM(cfg, seed=0)
    assert compiled.set_compiled_layers("default") == "off"
    for train in (False, True):
        outs, grads = [], []
        for model in (eager, compiled):
            model.train(train).zero_grad()
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            outs.append(out.logits.detach())
            grads.append(model.bert.encoder.layer[0].attention.self.query.weight.grad)
        assert_close(outs[1], outs[0])
        assert_close(grads[1], grads[0], kind="gradient")
    with pytest.raises(InputError, match="mode: expected one of off, default, max-autotune-no-cudagraphs, "
                                         "reduce-overhead, got 'fast'"):  # fmt: skip
        compiled.set_compiled_layers("fast")
