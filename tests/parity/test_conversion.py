"""Conversion: bit-identical round trips for every head, and transformers checkpoints (torch and Flax)
converted by ``bigbird convert`` giving the oracle's outputs."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import jax.numpy as jnp  # noqa: E402

import bigbird_core as core  # noqa: E402
import bigbird_flax as bf  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, CheckpointError  # noqa: E402
from bigbird_core.checkpoint import read_checkpoint  # noqa: E402
from bigbird_core.convert import check_state_dict, convert_checkpoint, from_flax_params, to_flax_params  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from bigbird_torch.convert import from_canonical as numpy_to_state_dict  # noqa: E402
from bigbird_torch.convert import to_canonical as state_dict_to_numpy  # noqa: E402  # noqa: E402
from cases import CASES, TINY, make_inputs  # noqa: E402
from oracle import hf_config, oracle_forward, oracle_model, save_oracle  # noqa: E402

CFG = BigBirdConfig(**TINY)


def assert_identical(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert x.tobytes() == y.tobytes(), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head", core.HEADS)
def test_torch_flax_torch_and_flax_torch_flax_are_bit_identical(head, dtype):
    model = bt.MODEL_CLASSES[head](CFG, seed=1).to(dtype)
    state = state_dict_to_numpy(model.state_dict())
    tree = to_flax_params(state, model.config, head)
    back = numpy_to_state_dict(from_flax_params(tree, model.config, head))
    for k, v in model.state_dict().items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    fm = bf.MODEL_CLASSES[head](CFG, seed=2)
    again = to_flax_params(
        state_dict_to_numpy(numpy_to_state_dict(from_flax_params(fm.params))), fm.config, head
    )
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()),
                                                         fm.params, again))  # fmt: skip


@pytest.mark.parametrize("fmt", ["flax", "torch-bin", "safetensors"])
def test_convert_every_format_round_trip_keeps_dtypes(fmt, tmp_path):
    model = bt.BigBirdForPreTraining(CFG, seed=3).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "src")
    convert_checkpoint(str(tmp_path / "src"), str(tmp_path / "mid"), fmt)
    convert_checkpoint(str(tmp_path / "mid"), str(tmp_path / "back"), "safetensors")
    assert_identical(read_checkpoint(str(tmp_path / "src"))[1], read_checkpoint(str(tmp_path / "back"))[1])
    assert str(read_checkpoint(str(tmp_path / "mid"))[1]["bert.pooler.weight"].dtype) == "bfloat16"


def test_sharded_safetensors_round_trip(tmp_path):
    model = bt.BigBirdForMaskedLM(CFG, seed=4)
    model.save_pretrained(tmp_path, max_shard_size=20_000)
    assert (tmp_path / "model.safetensors.index.json").exists() and not (
        tmp_path / "model.safetensors"
    ).exists()
    assert_identical(read_checkpoint(str(tmp_path))[1], state_dict_to_numpy(model.state_dict()))
    assert transformers.BigBirdForMaskedLM.from_pretrained(tmp_path) is not None


def test_mismatched_weights_list_missing_unexpected_and_mis_shaped():
    state = state_dict_to_numpy(bt.BigBirdForSequenceClassification(CFG, seed=5).state_dict())
    state["classifier.out_proj.weight"] = state["classifier.out_proj.weight"][:1]
    del state["bert.pooler.bias"]
    state["extra.weight"] = np.zeros(3)
    with pytest.raises(CheckpointError) as err:
        check_state_dict(CFG, "BigBirdForSequenceClassification", state)
    text = str(err.value)
    assert "missing bert.pooler.bias" in text and "unexpected extra.weight" in text
    assert "mis-shaped classifier.out_proj.weight: got (1, 32), config expects (2, 32)" in text


@pytest.mark.parametrize(
    "head", ["BigBirdForMaskedLM", "BigBirdForQuestionAnswering", "BigBirdForSequenceClassification"]
)
def test_transformers_torch_checkpoint_converts_to_flax_with_oracle_outputs(head, tmp_path):
    case = CASES[0]
    oracle = oracle_model(case.config, head, seed=6)
    save_oracle(oracle, str(tmp_path / "hf"), safe=False)
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "flax"), "flax")
    inputs = make_inputs(case, head)
    got = bf.MODEL_CLASSES[head].from_pretrained(tmp_path / "flax")(
        **{k: jnp.asarray(v) for k, v in inputs.items()}
    )
    want = oracle_forward(oracle, False, **inputs)
    key = "start_logits" if head == "BigBirdForQuestionAnswering" else "logits"
    assert_close(got[key], want[key])


def test_transformers_flax_checkpoint_converts_to_torch_with_oracle_outputs(tmp_path):
    case, head = CASES[1], "BigBirdForTokenClassification"
    theirs = transformers.FlaxBigBirdForTokenClassification(
        hf_config(case.config), input_shape=(1, 128), seed=7
    )
    theirs.save_pretrained(tmp_path / "hf")
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "pt"), "safetensors")
    ids = make_inputs(case, head)["input_ids"]
    with torch.no_grad():
        got = bt.BigBirdForTokenClassification.from_pretrained(tmp_path / "pt")(
            input_ids=torch.as_tensor(ids)
        ).logits
    assert_close(got, theirs(jnp.asarray(ids)).logits)
