"""The NumPy backend's behaviour: input checks, checkpoints, modes and per-call attention choice."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import bigbird_core as bb
from bigbird_core import BigBirdConfig, CheckpointError, ConfigError, InputError
from cases import TINY

CFG = BigBirdConfig(**TINY)


def test_importing_the_core_imports_no_framework():
    code = "import sys, bigbird_core; print(sorted(m for m in ('torch', 'jax', 'flax', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kwargs,argument", [
    (dict(input_ids=np.ones((2, 10, 3), np.int64)), "input_ids"),
    (dict(input_ids=np.ones((2, 10), np.float32)), "input_ids"),
    (dict(input_ids=np.full((2, 10), 97)), "input_ids"),
    (dict(input_ids=np.full((2, 10), -1)), "input_ids"),
    (dict(input_ids=np.ones((1, 300), np.int64)), "max_position_embeddings"),
    (dict(input_ids=np.ones((2, 10), np.int64), attention_mask=np.ones((2, 9))), "attention_mask"),
    (dict(input_ids=np.ones((2, 10), np.int64), token_type_ids=np.full((2, 10), 2)), "token_type_ids"),
    (dict(input_ids=np.ones((2, 10), np.int64), position_ids=np.full((2, 10), 256)), "position_ids"),
    (dict(), "input_ids / inputs_embeds"),
    (dict(inputs_embeds=np.ones((2, 10, 5), np.float32)), "inputs_embeds"),
])  # fmt: skip
def test_bad_inputs_name_the_argument(kwargs, argument):
    with pytest.raises(InputError, match=argument) as err:
        bb.BigBirdModel(CFG)(**kwargs)
    assert "expected" in str(err.value)


def test_unknown_head_and_bad_plan():
    from bigbird_core.weights import param_specs

    with pytest.raises(InputError, match="head"):
        param_specs(CFG, "BigBirdForSummarization")
    with pytest.raises(InputError, match="plan"):
        bb.BigBirdModel(CFG)(input_ids=np.ones((1, 128), np.int64), plan=np.zeros((2, 4, 3, 2), np.int32))


def test_short_inputs_fall_back_per_call_and_never_mutate_the_model():
    model = bb.BigBirdModel(CFG)
    ids = np.random.default_rng(0).integers(3, 90, (1, 200))
    long_before = model(input_ids=ids).last_hidden_state
    short = model(input_ids=ids[:, :40], output_attentions=True)
    assert short.attentions[0].shape == (1, 4, 40, 40)  # full attention, no padding
    assert model.config.attention_type == "block_sparse"
    np.testing.assert_array_equal(model(input_ids=ids).last_hidden_state, long_before)


def test_train_mode_needs_zero_dropout():
    model = bb.BigBirdModel(CFG.replace(hidden_dropout_prob=0.1)).train()
    with pytest.raises(ConfigError, match="dropout"):
        model(input_ids=np.ones((1, 20), np.int64))


def test_train_mode_uses_the_train_plan():
    model = bb.BigBirdModel(CFG)
    ids = np.random.default_rng(1).integers(3, 90, (1, 160))
    eval_out = model(input_ids=ids).last_hidden_state
    train_out = model.train()(input_ids=ids).last_hidden_state
    assert not np.allclose(eval_out, train_out)


def test_save_and_reload_is_exact(tmp_path):
    model = bb.BigBirdForQuestionAnswering(CFG, seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    again = bb.BigBirdForQuestionAnswering.from_pretrained(tmp_path / "ckpt")
    assert again.load_report.missing_keys == ()
    for k, v in model.params.items():
        np.testing.assert_array_equal(again.params[k], v)
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["config.json", "model.safetensors"]


def test_loading_another_heads_checkpoint_reports_initialised_keys(tmp_path):
    bb.BigBirdForPreTraining(CFG, seed=1).save_pretrained(tmp_path)
    qa = bb.BigBirdForQuestionAnswering.from_pretrained(tmp_path)
    assert set(qa.load_report.missing_keys) == {k for k in qa.params if k.startswith("qa_classifier.")}
    assert "cls.seq_relationship.weight" in qa.load_report.unexpected_keys
    base = bb.BigBirdModel.from_pretrained(tmp_path)
    assert base.load_report.missing_keys == ()


def test_mis_shaped_weights_are_listed(tmp_path):
    bb.BigBirdModel(CFG).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="mis-shaped embeddings.word_embeddings.weight"):
        bb.BigBirdModel.from_pretrained(tmp_path, vocab_size=120)


def test_truncated_and_missing_weights_name_the_file(tmp_path):
    bb.BigBirdModel(CFG).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors: truncated"):
        bb.BigBirdModel.from_pretrained(tmp_path)
    path.unlink()
    with pytest.raises(CheckpointError, match="no weights found"):
        bb.BigBirdModel.from_pretrained(tmp_path)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import bigbird_core.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.BigBirdConfig, "save", boom)
    with pytest.raises(OSError):
        bb.BigBirdModel(CFG).save_pretrained(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_reads_pytorch_model_bin_and_sharded_safetensors(tmp_path):
    transformers = pytest.importorskip("transformers")
    import bigbird_torch.convert  # noqa: F401  registers pytorch_model.bin with the core
    import torch
    from oracle import hf_config
    torch.manual_seed(0)
    hf = transformers.BigBirdForMaskedLM(hf_config(CFG)).eval()
    hf.save_pretrained(tmp_path / "bin", safe_serialization=False)
    hf.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    assert (tmp_path / "shards" / "model.safetensors.index.json").exists()
    ids = np.random.default_rng(0).integers(3, 90, (1, 150))
    with torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(ids)).logits.numpy()
    for sub in ("bin", "shards"):
        got = bb.BigBirdForMaskedLM.from_pretrained(tmp_path / sub)(input_ids=ids).logits
        bb.assert_close(got, expected, name=sub)


def test_outputs_index_and_unpack_like_tuples():
    out = bb.BigBirdForMaskedLM(CFG)(input_ids=np.ones((1, 12), np.int64), labels=np.ones((1, 12), np.int64))
    loss, logits = out
    assert out[0] is loss and out["logits"] is logits and out.logits is logits
    as_tuple = bb.BigBirdForMaskedLM(CFG)(input_ids=np.ones((1, 12), np.int64), return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (1, 12, 97)


def test_the_core_never_imports_a_backend(tmp_path):
    """Reading and running a checkpoint with bigbird_core imports neither torch nor jax; a weight file that
    needs a framework is a clear error naming the backend to import."""
    import subprocess
    import sys

    bb.BigBirdForMaskedLM(CFG).save_pretrained(tmp_path / "st")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "st" / "config.json").read_text())
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not read")
    code = f"""
import sys, numpy as np, bigbird_core as bb
m = bb.BigBirdForMaskedLM.from_pretrained({str(tmp_path / "st")!r})
m(input_ids=np.ones((1, 150), np.int64))
try:
    bb.BigBirdForMaskedLM.from_pretrained({str(tmp_path / "bin")!r})
except bb.CheckpointError as exc:
    print("ERR", exc)
print(sorted(k for k in ("torch", "jax", "flax", "bigbird_torch", "bigbird_flax", "transformers") if k in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pytorch_model.bin needs torch: import bigbird_torch first" in out
    assert out.strip().endswith("[]")
