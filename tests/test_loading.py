"""from_pretrained / save_pretrained with transformers' keywords in torch and Flax, Hub ids through a local
cache in huggingface_hub's own layout (offline), dtypes recorded and restored, shards by size strings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
jnp = pytest.importorskip("jax.numpy")
import jax  # noqa: E402

import bigbird_core as core  # noqa: E402
import bigbird_flax as bf  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, CheckpointError, InputError  # noqa: E402
from hubcache import hub_cache  # noqa: E402

CFG = BigBirdConfig(vocab_size=64, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=256, block_size=8, num_random_blocks=2, pad_token_id=0,
                    bos_token_id=1, eos_token_id=2, sep_token_id=3)  # fmt: skip
IDS = np.array([[1, 5, 6, 7, 8, 9, 2]])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    bt.BigBirdModel(CFG, seed=0).save_pretrained(tmp / "main")
    bt.BigBirdModel(CFG, seed=1).save_pretrained(tmp / "v2", safe_serialization=False)  # pytorch_model.bin
    bt.BigBirdModel(CFG, seed=2).save_pretrained(tmp / "nested" / "encoder")
    hub_cache(str(tmp / "cache"), "org/nested", {"main": str(tmp / "nested")})
    return hub_cache(str(tmp / "cache"), "org/tiny", {"main": str(tmp / "main"), "v2": str(tmp / "v2")}), tmp


def torch_out(model) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(IDS)).last_hidden_state.float().numpy()


def test_hub_ids_load_offline_from_the_cache_in_both_backends(cache):
    root, tmp = cache
    local = torch_out(bt.BigBirdModel.from_pretrained(tmp / "main"))
    ours = bt.BigBirdModel.from_pretrained("org/tiny", cache_dir=root, local_files_only=True)
    np.testing.assert_array_equal(torch_out(ours), local)
    v2 = bt.BigBirdModel.from_pretrained("org/tiny", revision="v2", cache_dir=root, local_files_only=True)
    np.testing.assert_array_equal(torch_out(v2), torch_out(bt.BigBirdModel.from_pretrained(tmp / "v2")))
    flax = bf.FlaxBigBirdModel.from_pretrained("org/tiny", cache_dir=root, local_files_only=True)
    np.testing.assert_allclose(np.asarray(flax(IDS).last_hidden_state), local, rtol=1e-5, atol=1e-5)
    reference = core.BigBirdModel.from_pretrained("org/tiny", cache_dir=root, local_files_only=True)
    np.testing.assert_allclose(reference(IDS).last_hidden_state, local, rtol=1e-5, atol=1e-5)
    with warnings.catch_warnings():  # the oracle reads the same cache
        warnings.simplefilter("ignore")
        theirs = transformers.BigBirdModel.from_pretrained("org/tiny", cache_dir=root, local_files_only=True).eval()
    np.testing.assert_allclose(torch_out(theirs), local, rtol=1e-5, atol=1e-5)
    nested = bt.BigBirdModel.from_pretrained("org/nested", subfolder="encoder", cache_dir=root, local_files_only=True)
    np.testing.assert_array_equal(torch_out(nested), torch_out(bt.BigBirdModel.from_pretrained(tmp / "nested" / "encoder")))
    for load in (bt.BigBirdModel.from_pretrained, bf.FlaxBigBirdModel.from_pretrained, core.BigBirdModel.from_pretrained):
        with pytest.raises(CheckpointError, match="org/missing: no config.json in the local Hugging Face cache"):
            load("org/missing", cache_dir=root, local_files_only=True)
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        bt.BigBirdModel.from_pretrained("./no/such/dir")


def test_hf_hub_offline_and_the_default_cache(cache):
    """Under HF_HUB_OFFLINE=1 with the cache at HF_HUB_CACHE, a bare id loads (a fresh process: the hub
    reads its environment at import)."""
    root, _ = cache
    code = ("import bigbird_torch as bt; m = bt.BigBirdModel.from_pretrained('org/tiny'); "
            "print(m.config.hidden_size, m.dtype)")  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": root}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["32", "torch.float32"]


def test_dtype_is_recorded_and_restored(tmp_path):
    model = bt.BigBirdForMaskedLM(CFG, seed=0).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    assert bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "bf16").dtype == torch.float32  # transformers 4.x
    for kw in ({"dtype": "auto"}, {"torch_dtype": "auto"}, {"dtype": torch.bfloat16}, {"torch_dtype": "bfloat16"}):
        assert bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "bf16", **kw).dtype == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert theirs.dtype == torch.bfloat16
    flax = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path / "bf16")  # Flax keeps the stored dtype
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(flax.params)} == {jnp.dtype(jnp.bfloat16)}
    flax.save_pretrained(tmp_path / "flax-bf16")
    assert json.loads((tmp_path / "flax-bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    again = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path / "flax-bf16")
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(again.params)} == {jnp.dtype(jnp.bfloat16)}
    with pytest.raises(InputError, match="dtype: expected a floating torch dtype, its name or \"auto\", got 'int8'"):
        bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "bf16", dtype="int8")


def test_unknown_keywords_are_named_the_same_in_both_backends(tmp_path):
    bt.BigBirdModel(CFG, seed=0).save_pretrained(tmp_path)
    messages = []
    for load in (bt.BigBirdModel.from_pretrained, bf.FlaxBigBirdModel.from_pretrained):
        with pytest.raises(InputError) as err:
            load(tmp_path, not_a_thing=1)
        messages.append(str(err.value).split(" (")[0])
        assert "got an unknown keyword" in str(err.value) and "revision" in str(err.value)
        # config fields update the config, as in transformers
        assert load(tmp_path, hidden_dropout_prob=0.3).config.hidden_dropout_prob == 0.3
    assert messages[0] == messages[1] == "not_a_thing: expected a keyword of from_pretrained"
    with pytest.raises(InputError, match="attn_implementation: expected \"eager\""):
        bt.BigBirdModel.from_pretrained(tmp_path, attn_implementation="sdpa")
    with pytest.raises(InputError, match="device_map: expected one device"):
        bt.BigBirdModel.from_pretrained(tmp_path, device_map="auto")
    assert bt.BigBirdModel.from_pretrained(tmp_path, device_map="cpu", low_cpu_mem_usage=True).device.type == "cpu"
    for model in (bt.BigBirdModel(CFG, seed=0), bf.FlaxBigBirdModel(CFG)):
        with pytest.raises(InputError, match="push_to_hub: expected False"):
            model.save_pretrained(tmp_path / "x", push_to_hub=True)


def test_transformers_config_objects_are_accepted(tmp_path):
    data = {k: v for k, v in CFG.to_dict().items() if k not in ("random_plan", "plan_seed")}
    theirs = transformers.BigBirdConfig(**data)
    assert bt.BigBirdModel(theirs, seed=0).config.hidden_size == 32
    assert bf.FlaxBigBirdModel(theirs).config.hidden_size == 32
    bt.BigBirdModel(CFG, seed=0).save_pretrained(tmp_path)
    model = bt.BigBirdModel.from_pretrained(tmp_path, config=theirs.__class__(**{**data, "hidden_dropout_prob": 0.2}))
    assert model.config.hidden_dropout_prob == 0.2
    with pytest.raises(InputError, match="config: expected a bigbird_core.BigBirdConfig"):
        bt.BigBirdModel(transformers.BertConfig())


def test_shards_by_size_string_load_in_both_libraries(tmp_path):
    model = bt.BigBirdForMaskedLM(CFG, seed=0)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 3
    ids = torch.as_tensor(IDS)
    with torch.no_grad():
        np.testing.assert_array_equal(bt.BigBirdForMaskedLM.from_pretrained(tmp_path)(input_ids=ids).logits.numpy(),
                                      model.eval()(input_ids=ids).logits.numpy())  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = transformers.BigBirdForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=ids).logits, model(input_ids=ids).logits)
    flax = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path)
    flax.save_pretrained(tmp_path / "flax", safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "flax" / "model.safetensors.index.json").exists()
    for bad in ("5XB", "-1MB", 0, "MB"):
        with pytest.raises(InputError, match="max_shard_size: expected a positive number of bytes"):
            model.save_pretrained(tmp_path / "bad", max_shard_size=bad)


def test_ignore_mismatched_sizes(tmp_path):
    bt.BigBirdForSequenceClassification(CFG, seed=0).save_pretrained(tmp_path)
    for cls in (bt.BigBirdForSequenceClassification, bf.FlaxBigBirdForSequenceClassification):
        with pytest.raises(CheckpointError, match="ignore_mismatched_sizes=True initialises them instead"):
            cls.from_pretrained(tmp_path, num_labels=5)
        model = cls.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
        assert [k for k, _, _ in model.load_report.mismatched_keys] == ["classifier.out_proj.weight",
                                                                        "classifier.out_proj.bias"]  # fmt: skip
        assert model.config.num_labels == 5


def test_safetensors_choice_and_from_pt(tmp_path):
    model = bt.BigBirdModel(CFG, seed=0)
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    with pytest.raises(CheckpointError, match="no weights found"):
        bt.BigBirdModel.from_pretrained(tmp_path / "bin", use_safetensors=True)
    assert bt.BigBirdModel.from_pretrained(tmp_path / "bin", use_safetensors=False) is not None
    flax = bf.FlaxBigBirdModel.from_pretrained(tmp_path / "bin", from_pt=True)
    np.testing.assert_allclose(np.asarray(flax(IDS).last_hidden_state), torch_out(model.eval()), rtol=1e-5, atol=1e-5)


def test_flax_parameter_trees(tmp_path):
    model = bf.FlaxBigBirdForMaskedLM(CFG)
    shapes = model.params_shape_tree
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(model.params)
    assert all(s.shape == p.shape for s, p in zip(jax.tree_util.tree_leaves(shapes),
                                                    jax.tree_util.tree_leaves(model.params), strict=True))  # fmt: skip
    assert ("bert", "embeddings", "word_embeddings", "embedding") in model.required_params
    half = model.to_bf16(model.params)
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(half)} == {jnp.dtype(jnp.bfloat16)}
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(model.to_fp32(half))} == {jnp.dtype(jnp.float32)}
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(model.to_fp16(half))} == {jnp.dtype(jnp.float16)}
    mask = jax.tree_util.tree_map(lambda x: x.ndim > 1, model.params)  # matrices only
    mixed = model.to_bf16(model.params, mask)
    assert {jnp.dtype(x.dtype) for x in jax.tree_util.tree_leaves(mixed)} == {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)}
    model.save_pretrained(tmp_path)
    bare, params = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path, _do_init=False)
    assert model.main_input_name == "input_ids"
    with pytest.raises(InputError, match="params: this model was built with _do_init=False"):
        bare(IDS)
    np.testing.assert_array_equal(np.asarray(bare(IDS, params=params).logits), np.asarray(model(IDS).logits))


def test_flax_initialisation_is_traceable():
    model = bf.FlaxBigBirdForMaskedLM(CFG)
    abstract = jax.eval_shape(model.init_weights, jax.random.PRNGKey(0), model.input_shape)
    assert jax.tree_util.tree_structure(abstract) == jax.tree_util.tree_structure(model.params_shape_tree)
    assert [a.shape for a in jax.tree_util.tree_leaves(abstract)] == [
        s.shape for s in jax.tree_util.tree_leaves(model.params_shape_tree)]  # fmt: skip
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    init = jax.jit(model.init_weights, static_argnums=1, out_shardings=replicated)
    params = init(jax.random.PRNGKey(0), model.input_shape)
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    words = flat["['bert']['embeddings']['word_embeddings']['embedding']"]
    assert float(jnp.abs(words[CFG.pad_token_id]).max()) == 0.0
    assert abs(float(words[1:].std()) - CFG.initializer_range) < 0.1 * CFG.initializer_range
    assert all(float(jnp.abs(v).max()) == 0 for k, v in flat.items() if k.endswith("['bias']"))
    assert all(float(jnp.abs(v - 1).max()) == 0 for k, v in flat.items() if k.endswith("['scale']"))
    assert all(x.sharding == replicated for x in jax.tree_util.tree_leaves(params))
    ids = np.array([[1, 5, 6, 2]])
    assert np.isfinite(np.asarray(model(ids, params=params).logits)).all()


def test_torch_models_build_on_the_meta_device():
    with torch.device("meta"):
        model = bt.BigBirdForMaskedLM(CFG)
    assert all(p.is_meta for p in model.parameters())
    model.to_empty(device="cpu")
    source = bt.BigBirdForMaskedLM(CFG, seed=3).eval()
    model.load_state_dict(source.state_dict())
    with torch.no_grad():
        ids = torch.as_tensor(IDS)
        torch.testing.assert_close(model.eval()(input_ids=ids).logits, source(input_ids=ids).logits)


def test_saving_over_another_format_says_what_it_replaced(tmp_path, caplog):
    bt.BigBirdModel(CFG, seed=0).save_pretrained(tmp_path, safe_serialization=False)
    (tmp_path / "tokenizer.json").write_text("{}")
    with caplog.at_level("WARNING", logger="bigbird"):
        bf.FlaxBigBirdModel(CFG).save_pretrained(tmp_path)
    assert "replaced the old weight files pytorch_model.bin" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["config.json", "flax_model.msgpack", "tokenizer.json"]


def test_weights_without_a_config_load_with_config_given(tmp_path):
    """What transformers' Trainer writes for a model not its own (weights, no config.json): a clear error
    naming the way out, and loads with config= in every backend."""
    from safetensors.numpy import save_file

    model = bt.BigBirdModel(CFG, seed=4).eval()
    save_file({k: v.numpy() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no config.json .*it holds weights: pass config="):
        bt.BigBirdModel.from_pretrained(tmp_path)
    np.testing.assert_array_equal(torch_out(bt.BigBirdModel.from_pretrained(tmp_path, config=CFG)), torch_out(model))
    flax = bf.FlaxBigBirdModel.from_pretrained(tmp_path, config=CFG.to_dict())
    np.testing.assert_allclose(np.asarray(flax(IDS).last_hidden_state), torch_out(model), rtol=1e-5, atol=1e-5)
