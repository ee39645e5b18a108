"""bigbird_torch beyond forward parity: gradients, checkpoints both ways, compile, bf16, caches, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import bigbird_core as core  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, CheckpointError, InputError  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from bigbird_core.weights import param_specs  # noqa: E402
from cases import CASES, TINY, make_inputs, make_labels  # noqa: E402
from oracle import hf_config, oracle_forward, oracle_model, save_oracle  # noqa: E402

CFG = BigBirdConfig(**TINY)


def tensors(inputs: dict) -> dict:
    return {k: torch.as_tensor(v) for k, v in inputs.items()}


@pytest.mark.parametrize("head", core.HEADS)
def test_state_dict_names_are_the_core_table(head):
    model = bt.MODEL_CLASSES[head](CFG, seed=0)
    assert sorted(model.state_dict()) == sorted(
        s.name for s in param_specs(model.config, head, model.add_pooling_layer)
    )


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=lambda c: c.id)
@pytest.mark.parametrize("head", core.HEADS)
def test_gradients_match_transformers(head, case, tmp_path):
    """Train mode, dropout 0: the loss gradient of every parameter equals transformers'."""
    oracle = oracle_model(case.config, head, seed=0).train()
    ours = bt.MODEL_CLASSES[head].from_pretrained(save_oracle(oracle, str(tmp_path))).train()
    inputs = tensors({**make_inputs(case, head), **make_labels(case, head)})
    if (
        head == "BigBirdModel"
    ):  # a loss that depends on every output (LayerNorm makes sum of squares constant)
        weights = torch.randn(
            case.seq_len, case.config.hidden_size, generator=torch.Generator().manual_seed(0)
        )
        loss_ours = (ours(**inputs).last_hidden_state * weights).sum()
        loss_theirs = (oracle(**inputs).last_hidden_state * weights).sum()
    else:
        loss_ours, loss_theirs = ours(**inputs).loss, oracle(**inputs).loss
    loss_ours.backward()
    loss_theirs.backward()
    assert_close(loss_ours, loss_theirs, name="loss")
    theirs = {k: p.grad for k, p in oracle.named_parameters()}
    scale = max(float(g.abs().max()) for g in theirs.values() if g is not None)
    words = ours.body.embeddings.word_embeddings.weight
    assert words.grad is not None and float(words.grad.abs().max()) > 1e-3 * scale
    for name, p in ours.named_parameters():
        ref = torch.zeros_like(p) if theirs[name] is None else theirs[name]
        got = torch.zeros_like(p) if p.grad is None else p.grad
        assert_close(got, ref, kind="gradient", name=name, scale=scale)


def test_save_reload_and_transformers_loads_ours(tmp_path):
    case = CASES[0]
    ours = bt.BigBirdForMaskedLM(case.config, seed=11).eval()
    ours.save_pretrained(tmp_path / "ours")
    again = bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "ours")
    inputs = tensors(make_inputs(case, "BigBirdForMaskedLM"))
    with torch.no_grad():
        expected = ours(**inputs).logits
        torch.testing.assert_close(again(**inputs).logits, expected, rtol=0, atol=0)
        theirs = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path / "ours").eval()
        assert_close(theirs(**inputs).logits, expected)


def test_pretraining_checkpoint_into_qa_reports_initialised_keys(tmp_path):
    save_oracle(oracle_model(CFG, "BigBirdForPreTraining", seed=2), str(tmp_path))
    qa = bt.BigBirdForQuestionAnswering.from_pretrained(tmp_path)
    assert sorted(qa.load_report.missing_keys) == sorted(
        k for k in qa.state_dict() if k.startswith("qa_classifier.")
    )
    assert "cls.seq_relationship.weight" in qa.load_report.unexpected_keys
    assert "bert.pooler.weight" in qa.load_report.unexpected_keys  # QA has no pooler


def test_mismatched_checkpoint_lists_the_keys(tmp_path):
    save_oracle(oracle_model(CFG, "BigBirdModel", seed=2), str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        bt.BigBirdModel.from_pretrained(tmp_path, intermediate_size=40)
    assert "mis-shaped encoder.layer.0.intermediate.dense.weight" in str(err.value)
    assert "mis-shaped encoder.layer.1.output.dense.weight" in str(err.value)


def test_torch_compile_matches_eager():
    model = bt.BigBirdModel(CFG, seed=4).eval()
    inputs = tensors(make_inputs(CASES[0], "BigBirdModel"))
    with torch.no_grad():
        eager = model(**inputs).last_hidden_state
        compiled = torch.compile(model)(**inputs).last_hidden_state
    assert_close(compiled, eager)


def test_bf16_forward_is_finite_and_close_to_fp32():
    model = bt.BigBirdForQuestionAnswering(CFG, seed=5).eval()
    inputs = tensors(make_inputs(CASES[0], "BigBirdForQuestionAnswering"))
    with torch.no_grad():
        ref = model(**inputs, output_attentions=True)
        low = model.to(torch.bfloat16)(**inputs, output_attentions=True)
    assert low.start_logits.dtype == torch.bfloat16
    for name in ("start_logits", "end_logits"):
        assert torch.isfinite(low[name]).all()
        assert_close(low[name], ref[name], dtype="bfloat16", name=name)
    assert_close(low.attentions[0], ref.attentions[0], dtype="bfloat16", name="attentions")


def test_fp16_masking_does_not_overflow():
    model = bt.BigBirdModel(CFG, seed=5).eval().to(torch.float16)
    for case in (CASES[0], CASES[2]):  # block-sparse and full attention, with padding
        with torch.no_grad():
            out = model(**tensors(make_inputs(case, "BigBirdModel")))
        assert torch.isfinite(out.last_hidden_state).all()


def test_kv_cache_matches_full_forward_and_generate_is_greedy():
    cfg = CFG.replace(is_decoder=True)
    model = bt.BigBirdForCausalLM(cfg, seed=6).eval()
    ids = torch.as_tensor(np.random.default_rng(0).integers(3, 90, (2, 30)))
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
        first = model(input_ids=ids[:, :20], use_cache=True)
        cached = [first.logits]
        past = first.past_key_values
        for t in range(20, 30):
            step = model(input_ids=ids[:, t : t + 1], past_key_values=past, use_cache=True)
            cached.append(step.logits)
            past = step.past_key_values
    assert_close(torch.cat(cached, dim=1), full)
    out = model.generate(ids[:, :5], max_new_tokens=6, eos_token_id=[])  # no end token: six new tokens
    assert out.shape == (2, 11)
    with torch.no_grad():
        for t in range(5, 11):
            assert torch.equal(
                model(input_ids=out[:, :t], use_cache=False).logits[:, -1].argmax(-1), out[:, t]
            )


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = tensors(
        {**make_inputs(CASES[0], "BigBirdForMaskedLM"), **make_labels(CASES[0], "BigBirdForMaskedLM")}
    )
    grads = []
    for ckpt in (False, True):
        model = bt.BigBirdForMaskedLM(CFG, seed=7).train()
        if ckpt:
            model.gradient_checkpointing_enable()
        model(**inputs).loss.backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 30
    scale = max(float(g.abs().max()) for g in grads[0].values())
    for k in grads[0]:
        assert_close(grads[1][k], grads[0][k], kind="gradient", name=k, scale=scale)


def test_dropout_is_active_in_train_mode_only():
    model = bt.BigBirdModel(CFG.replace(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2), seed=8)
    inputs = tensors(make_inputs(CASES[0], "BigBirdModel"))
    model.train()
    a, b = model(**inputs).last_hidden_state, model(**inputs).last_hidden_state
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(
        model(**inputs).last_hidden_state, model(**inputs).last_hidden_state, rtol=0, atol=0
    )


@pytest.mark.parametrize("plan_kind", ["google", "seeded"])
def test_other_plans_match_the_core(plan_kind, tmp_path):
    cfg = CFG.replace(random_plan=plan_kind, plan_seed=3)
    bt.BigBirdModel(cfg, seed=9).save_pretrained(tmp_path)
    inputs = make_inputs(CASES[0], "BigBirdModel")
    ours = bt.runner("BigBirdModel", str(tmp_path))(**inputs).last_hidden_state
    ref = core.runner("BigBirdModel", str(tmp_path))(**inputs).last_hidden_state
    assert_close(ours, ref)
    default = core.BigBirdModel(CFG, core.BigBirdModel.from_pretrained(tmp_path).params)(
        **inputs
    ).last_hidden_state
    assert not np.allclose(ref, default)  # the plan changed the numbers


def test_explicit_plan_argument_matches_the_core():
    model = bt.BigBirdModel(CFG, seed=10).eval()
    ref = core.BigBirdModel(CFG, {k: v.numpy() for k, v in model.state_dict().items()})
    inputs = make_inputs(CASES[0], "BigBirdModel")
    plan = core.seeded_plan(CFG, 19, seed=42)  # 150 tokens pad to 152 = 19 blocks of 8
    with torch.no_grad():
        got = model(**tensors(inputs), plan=torch.as_tensor(plan.copy())).last_hidden_state
    assert_close(got, ref(**inputs, plan=plan).last_hidden_state)
    with pytest.raises(InputError, match="plan"):
        model(**tensors(inputs), plan=plan[:, :, :5])


@pytest.mark.parametrize("kwargs,argument", [
    (dict(input_ids=torch.ones(2, 10, 3, dtype=torch.long)), "input_ids"),
    (dict(input_ids=torch.ones(2, 10)), "input_ids"),
    (dict(input_ids=torch.full((2, 10), 97)), "input_ids"),
    (dict(input_ids=torch.ones(1, 300, dtype=torch.long)), "max_position_embeddings"),
    (dict(input_ids=torch.ones(2, 10, dtype=torch.long), attention_mask=torch.ones(2, 11)), "attention_mask"),
    (dict(input_ids=torch.ones(2, 10, dtype=torch.long), head_mask=torch.ones(3)), "head_mask"),
])  # fmt: skip
def test_bad_inputs_name_the_argument(kwargs, argument):
    with pytest.raises(InputError, match=argument):
        bt.BigBirdModel(CFG, seed=0)(**kwargs)


def test_transformers_bin_checkpoint_loads(tmp_path):
    oracle = oracle_model(CFG, "BigBirdForTokenClassification", seed=12)
    save_oracle(oracle, str(tmp_path), safe=False)
    ours = bt.BigBirdForTokenClassification.from_pretrained(tmp_path)
    inputs = make_inputs(CASES[0], "BigBirdForTokenClassification")
    with torch.no_grad():
        assert_close(ours(**tensors(inputs)).logits, oracle_forward(oracle, False, **inputs).logits)


def test_untied_decoder_round_trips(tmp_path):
    cfg = CFG.replace(tie_word_embeddings=False)
    model = bt.BigBirdForMaskedLM(cfg, seed=13)
    assert "cls.predictions.decoder.weight" in model.state_dict()
    model.save_pretrained(tmp_path)
    theirs = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path).eval()
    ids = torch.as_tensor(make_inputs(CASES[2], "BigBirdForMaskedLM")["input_ids"])
    with torch.no_grad():
        assert_close(theirs(input_ids=ids).logits, model.eval()(input_ids=ids).logits)
    assert hf_config(cfg).tie_word_embeddings is False


@pytest.mark.parametrize("plan_kind", ["transformers", "seeded"])
@pytest.mark.parametrize("train", [False, True])
def test_fast_path_in_small_chunks_equals_the_full_layout(plan_kind, train, monkeypatch):
    """The chunked CPU inference path and the autograd path give the full-layout result."""
    import bigbird_torch.attention as A
    from bigbird_core.layout import block_layout

    cfg = CFG.replace(random_plan=plan_kind, plan_seed=1)
    n, b = 19, cfg.block_size
    plan = core.make_plan(cfg, n, training=train)
    lay = A.LayoutTensors.build(block_layout(plan, b), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, n * b, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, n * b)
    mask[1, -13:] = 0
    ref, _ = A._block_sparse_with_probs(q, k, v, mask, lay, 1)
    monkeypatch.setattr(A, "_CHUNK_BYTES", 4000)  # several chunks
    with torch.no_grad():
        assert_close(A.fast_block_sparse_attention(q, k, v, mask, lay, 1), ref)
    q.requires_grad_(True)
    assert_close(A.fast_block_sparse_attention(q, k, v, mask, lay, 1), ref)  # the autograd path


def test_corrupt_torch_bin_names_the_file(tmp_path):
    bt.BigBirdModel(CFG, seed=0).save_pretrained(tmp_path, safe_serialization=False)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: cannot read"):
        bt.BigBirdModel.from_pretrained(tmp_path)
