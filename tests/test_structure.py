"""The structure's promises: a head is one registry entry plus one module class per backend; device layouts
belong to the model (an export first leaves eager calls right); dtype names; files stay small."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import bigbird_core as core
from bigbird_core import BigBirdConfig
from bigbird_core.errors import InputError
from bigbird_core.outputs import ModelOutput
from bigbird_core.params import linear_params
from bigbird_core.rules import cross_entropy
from bigbird_core.tolerances import assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64,
                    block_size=8, num_random_blocks=2, max_position_embeddings=256, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)  # fmt: skip
TOY = "BigBirdForNextSentencePredictionToy"


# ------------------------------------------------------------------------- a new head, defined here only
@dataclass
class NextSentenceOutput(ModelOutput):
    loss: Any = None
    logits: Any = None  # (batch, 2)
    hidden_states: Any = None
    attentions: Any = None


def _labels(config, shapes, given):
    if "labels" in given:
        from bigbird_core.validate import check_class_ids

        check_class_ids("labels", given["labels"], ((shapes.batch,),), 2)


TOY_SPEC = core.HeadSpec(
    TOY, NextSentenceOutput, lambda prep, body, outputs: {"logits": outputs[0]}, labels=("labels",),
    check_labels=_labels, loss=lambda c, f, y: cross_entropy(f["logits"], y["labels"]) if "labels" in y else None,
    params=lambda c: linear_params("cls.seq_relationship", 2, c.hidden_size),
    detect=lambda keys: "cls.seq_relationship.weight" in keys and not any(k.startswith("cls.pred") for k in keys),
    example_labels=lambda c, rng, ids: {"labels": rng.integers(0, 2, (ids.shape[0],))},
)  # fmt: skip


@pytest.fixture(scope="module")
def toy_head():
    """The registry entry and one module class in each installed backend."""
    from bigbird_core.numerics import linear

    core.register_head(TOY_SPEC)

    class NumpyToy(core.BigBirdPreTrainedModel):
        head = TOY

        def head_logits(self, prep, body):
            return (linear(body.pooled, self._p("cls.seq_relationship.weight"), self._p("cls.seq_relationship.bias")),)

    classes = {"numpy": NumpyToy}
    try:
        from bigbird_torch.heads import BigBirdHeadModel
        from torch import nn

        class TorchToy(BigBirdHeadModel):
            head = TOY

            def _build_head(self):
                self.cls = nn.Module()
                self.cls.seq_relationship = nn.Linear(self.config.hidden_size, 2)

            def head_logits(self, prep, body):
                return (self.cls.seq_relationship(body.pooled),)

        classes["torch"] = TorchToy
    except ImportError:
        pass
    try:
        import flax.linen as fnn

        from bigbird_flax.heads import FlaxBigBirdHeadModule
        from bigbird_flax.model import dense

        class _Cls(fnn.Module):
            config: BigBirdConfig

            @fnn.compact
            def __call__(self, pooled):
                return dense(self.config, 2, "seq_relationship", pooled.dtype)(pooled)

        class FlaxToyModule(FlaxBigBirdHeadModule):
            head = TOY

            def head_logits(self, prep, body, deterministic):
                return (_Cls(self.config, name="cls")(body.pooled),)

        classes["flax"] = FlaxToyModule
    except ImportError:
        pass
    yield classes
    core.unregister_head(TOY)


def test_a_new_head_runs_converts_and_checks_in_every_backend(toy_head, tmp_path):
    from bigbird_cli.backends import load_backend
    from bigbird_cli.check import run_check
    from bigbird_core.convert import convert_checkpoint

    model = core.model_class(TOY)(CFG, seed=3)
    assert sorted(model.params)[-2:] == ["cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    assert "bert.pooler.weight" in model.params  # the spec's pooler default
    model.save_pretrained(tmp_path / "np")
    rng = np.random.default_rng(0)
    ids, labels = rng.integers(3, 100, (2, 150)), np.array([0, 1])
    want = model(input_ids=ids, labels=labels)
    backends = list(toy_head)
    for name in backends:
        out = load_backend(name).runner(TOY, str(tmp_path / "np"))(input_ids=ids, labels=labels)
        assert type(out).__name__ == "NextSentenceOutput"
        assert_close(out.logits, want.logits, name=f"{name} logits")
        assert_close(out.loss, want.loss, name=f"{name} loss")
    with pytest.raises(InputError, match="labels"):  # the spec's label check, in every backend
        model(input_ids=ids, labels=np.array([0, 2]))
    # weights: every backend's form and back, bit for bit; conversion detects the head from its keys
    for name in backends:
        module = load_backend(name)
        back = module.to_canonical(module.from_canonical(model.params))
        assert all(np.array_equal(back[k], v) for k, v in model.params.items()) and back.keys() == model.params.keys()
    assert convert_checkpoint(str(tmp_path / "np"), str(tmp_path / "bin"), "safetensors") == TOY
    rows = run_check(str(tmp_path / "np"), backends=backends, heads=[TOY])
    assert len(rows) == len(backends) * (len(backends) - 1) // 2 + 1 and all(r.ok for r in rows), rows


def test_unknown_heads_and_kernels_fail_alike():
    with pytest.raises(InputError, match="head: expected one of BigBirdModel"):
        core.model_class("BigBirdForNothing")
    with pytest.raises(InputError, match="kernel: expected one of auto, gather for the numpy backend"):
        from bigbird_core.kernels import check_kernel

        check_kernel("flex", "numpy")


def test_no_source_file_is_over_500_lines():
    long = []
    for folder in ("src", "scripts", "benchmarks"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                        n = sum(1 for _ in fh)
                    if n > 500:
                        long.append(f"{f}: {n}")
    assert not long, long


# ----------------------------------------------------------------------------------------------- torch


def _torch_inputs(head="BigBirdForQuestionAnswering"):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 100, (2, 150))
    mask = np.ones((2, 150), np.int64)
    mask[1, -20:] = 0
    return {"input_ids": torch.as_tensor(ids), "attention_mask": torch.as_tensor(mask)}, {"input_ids": ids,
                                                                                          "attention_mask": mask}


@pytest.mark.parametrize("exporter", ["torch.export", "onnx"])
def test_an_export_first_leaves_eager_calls_right(exporter, tmp_path):
    torch = pytest.importorskip("torch")
    import bigbird_torch as bt

    head = "BigBirdForQuestionAnswering"
    model = bt.model_class(head)(CFG, seed=0).eval()
    reference = core.model_class(head)(CFG, params=bt.to_canonical(model.state_dict()))
    inputs, arrays = _torch_inputs()
    want = reference(**arrays)
    for round_ in range(2):  # a second export in the same process works too
        kept = len(model.body.layouts)
        if exporter == "onnx":
            pytest.importorskip("onnxscript")
            torch.onnx.export(model, (), kwargs=inputs, dynamo=True, verbose=False, f=str(tmp_path / f"m{round_}.onnx"))
        else:
            program = torch.export.export(model, (), inputs).module()
            assert_close(program(**inputs).start_logits, want.start_logits, name="exported")
        assert len(model.body.layouts) == kept  # nothing kept from the trace
        fresh = bt.model_class(head)(CFG, seed=0).eval()
        with torch.no_grad():
            for m, name in ((model, "same model"), (fresh, "fresh model")):
                got = m(**inputs)
                assert_close(got.start_logits, want.start_logits, name=f"{name} after {exporter}")
                assert_close(got.end_logits, want.end_logits, name=f"{name} after {exporter}")


def test_two_models_of_different_configs_alternate():
    torch = pytest.importorskip("torch")
    import bigbird_torch as bt

    other = CFG.replace(block_size=16, num_random_blocks=1)
    models = [bt.BigBirdModel(c, seed=0).eval() for c in (CFG, other, CFG)]
    refs = [core.BigBirdModel(c, params=bt.to_canonical(m.state_dict())) for c, m in zip((CFG, other, CFG), models, strict=False)]
    inputs, arrays = _torch_inputs()
    with torch.no_grad():
        for _ in range(2):
            for m, r in zip(models, refs, strict=False):
                assert_close(m(**inputs).last_hidden_state, r(**arrays).last_hidden_state)
    assert all(len(m.body.layouts) == 1 for m in models)  # each model keeps its own


@pytest.mark.parametrize("name,expected", [("half", "float16"), ("float", "float32"), ("double", "float64"),
                                           ("bfloat16", "bfloat16"), ("torch.float16", "float16")])  # fmt: skip
def test_from_pretrained_takes_dtype_names(name, expected, tmp_path):
    torch = pytest.importorskip("torch")
    import bigbird_torch as bt

    bt.BigBirdForMaskedLM(CFG, seed=0).save_pretrained(tmp_path)
    assert bt.BigBirdForMaskedLM.from_pretrained(tmp_path, dtype=name).dtype == getattr(torch, expected)
    with pytest.raises(InputError, match="dtype"):
        bt.BigBirdForMaskedLM.from_pretrained(tmp_path, dtype="quarter")


def test_a_bfloat16_encoder_decoder_pair_saves_and_loads(tmp_path):
    torch = pytest.importorskip("torch")
    import bigbird_torch as bt
    from bigbird_core import EncoderDecoderConfig

    dec = CFG.replace(is_decoder=True, add_cross_attention=True)
    pair = bt.BigBirdEncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(CFG, dec)).to(torch.bfloat16)
    pair.save_pretrained(tmp_path)
    back = bt.BigBirdEncoderDecoderModel.from_pretrained(tmp_path, dtype="bfloat16")
    for (k, a), (k2, b) in zip(pair.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and a.dtype == b.dtype == torch.bfloat16 and torch.equal(a, b), k


def test_kernels_are_chosen_per_model_by_the_cores_names():
    pytest.importorskip("torch")
    import bigbird_torch as bt

    a, b = bt.BigBirdModel(CFG, seed=0), bt.BigBirdModel(CFG, seed=0)
    assert a.set_block_sparse_kernel("gather") == "auto" and b.body.block_sparse_kernel == "auto"
    with pytest.raises(InputError, match="kernel: expected one of auto, gather, flex, flex-bias for the torch"):
        a.set_block_sparse_kernel("pallas")


def test_flex_raises_the_recompile_limit_only_for_its_own_call():
    torch = pytest.importorskip("torch")
    from bigbird_torch import flex

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    before = getattr(config, name)
    with flex._recompile_room():
        assert getattr(config, name) >= flex.RECOMPILE_LIMIT
    assert getattr(config, name) == before


def test_importing_the_backends_changes_no_process_wide_setting():
    """Import registers pytrees and weight formats, nothing else: dynamo limits, default dtypes, x64 and the
    NumPy RNG are as they were (the frameworks themselves imported first)."""
    import subprocess
    import sys

    code = """
import json, numpy as np
for framework in ("torch", "jax"):  # (importing jax itself draws from NumPy's global RNG)
    try:
        __import__(framework)
    except ImportError:
        pass
def snapshot():
    out = {"np_rng": int(np.random.get_state()[1][0])}
    try:
        import torch
        c = torch._dynamo.config
        out["torch"] = [str(torch.get_default_dtype()), getattr(c, "recompile_limit", getattr(c, "cache_size_limit", 0)),
                        torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()]
    except ImportError:
        pass
    try:
        import jax
        out["jax"] = [bool(jax.config.jax_enable_x64), str(jax.config.jax_default_matmul_precision)]
    except ImportError:
        pass
    return out
before = snapshot()
import bigbird_core, bigbird_cli
for name in ("bigbird_torch", "bigbird_flax"):
    try:
        __import__(name)
    except ImportError:
        pass
print(json.dumps([before, snapshot()]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    before, after = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert before == after
