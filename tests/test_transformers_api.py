"""transformers users change one import and nothing else: configs round-trip with transformers' own, the
keywords its tools pass are taken (part of the transformers-API issue; generation and transformers 5 come later)."""

from __future__ import annotations

import warnings

import pytest

from bigbird_core import BigBirdConfig

transformers = pytest.importorskip("transformers")

# a value other than the default for every BigBird field of transformers' config
NON_DEFAULT = dict(vocab_size=1000, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                   hidden_act="gelu_fast", hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3,
                   max_position_embeddings=1024, type_vocab_size=3, initializer_range=0.03, layer_norm_eps=1e-6,
                   use_cache=False, pad_token_id=5, bos_token_id=6, eos_token_id=7, sep_token_id=8,
                   attention_type="original_full", use_bias=False, rescale_embeddings=True, block_size=32,
                   num_random_blocks=2, classifier_dropout=0.4, is_decoder=True, add_cross_attention=True,
                   tie_word_embeddings=False, problem_type="regression", num_labels=1, output_attentions=True,
                   output_hidden_states=True, return_dict=False, chunk_size_feed_forward=0)  # fmt: skip


def _theirs(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.BigBirdConfig(**kwargs)


def test_every_transformers_field_round_trips():
    theirs = _theirs(**NON_DEFAULT, architectures=["BigBirdForSequenceClassification"], finetuning_task="x")
    ours = BigBirdConfig(**theirs.to_dict())
    assert ours == BigBirdConfig.from_dict(theirs.to_dict())
    assert ours.use_return_dict is False and ours.num_labels == 1 and ours.extra["architectures"] == [
        "BigBirdForSequenceClassification"]  # fmt: skip
    back = _theirs(**ours.to_dict()).to_dict()
    for key, value in theirs.to_dict().items():
        if key in ("transformers_version", "label2id"):  # (transformers writes label2id None beside id2label)
            continue
        assert back[key] == value, key
    assert BigBirdConfig(**ours.to_dict()) == ours


def test_pretrained_config_keywords():
    config = BigBirdConfig(id2label={0: "neg", 1: "pos", 2: "mid"}, return_dict=False, architectures=["X"])
    assert config.num_labels == 3 and config.id2label == {0: "neg", 1: "pos", 2: "mid"}
    assert config.label2id == {"neg": 0, "pos": 1, "mid": 2} and config.use_return_dict is False
    assert config.to_dict()["architectures"] == ["X"]
    with pytest.raises(Exception, match="model_type"):
        BigBirdConfig(model_type="bert")


def test_save_pretrained_takes_accelerates_documented_call(tmp_path):
    torch = pytest.importorskip("torch")
    accelerate = pytest.importorskip("accelerate")
    import bigbird_torch as bt
    from bigbird_core import InputError

    config = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                           num_hidden_layers=2, block_size=8, num_random_blocks=2)  # fmt: skip
    accelerator = accelerate.Accelerator(cpu=True)
    model = accelerator.prepare(bt.BigBirdForMaskedLM(config, seed=0))
    accelerator.unwrap_model(model).save_pretrained(
        tmp_path / "saved", is_main_process=accelerator.is_main_process, save_function=accelerator.save,
        state_dict=accelerator.get_state_dict(model), safe_serialization=True)  # fmt: skip
    back = bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "saved")
    for (name, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    bt.BigBirdForMaskedLM(config).save_pretrained(tmp_path / "other", is_main_process=False)
    assert not (tmp_path / "other").exists()  # another rank writes nothing
    with pytest.raises(InputError, match="state_dict: expected a mapping"):
        back.save_pretrained(tmp_path / "x", state_dict=[1, 2])


def test_jax_jit_over_closed_over_numpy_inputs_and_a_traced_plan():
    pytest.importorskip("flax")
    import jax
    import jax.numpy as jnp
    import numpy as np

    import bigbird_flax as bf
    from bigbird_core import make_plan

    config = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                           num_hidden_layers=2, block_size=8, num_random_blocks=2, max_position_embeddings=512)  # fmt: skip
    model = bf.FlaxBigBirdModel(config, seed=0)
    ids = np.random.default_rng(0).integers(3, 100, (1, 256))  # block-sparse, closed over as NumPy
    want = model(ids).last_hidden_state
    module = bf.FlaxBigBirdModule(config)
    got = jax.jit(lambda p: module.apply({"params": p}, ids).last_hidden_state)(model.params)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    plan = jnp.asarray(make_plan(config, 32, training=False))
    got = jax.jit(lambda p, pl: model(ids, params=p, plan=pl).last_hidden_state)(model.params, plan)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_do_init_false_keeps_the_params_outside_as_in_transformers(tmp_path):
    pytest.importorskip("flax")
    import bigbird_flax as bf

    config = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                           num_hidden_layers=2, block_size=8, num_random_blocks=2)  # fmt: skip
    bf.FlaxBigBirdModel(config).save_pretrained(tmp_path)
    model, params = bf.FlaxBigBirdModel.from_pretrained(tmp_path, _do_init=False)
    with pytest.raises(ValueError, match="_do_init=False"):
        model.params  # noqa: B018
    with pytest.raises(ValueError, match="_do_init=False"):
        model.params = params
    assert model(input_ids=[[5, 6, 7]], params=params).last_hidden_state.shape == (1, 3, 32)
