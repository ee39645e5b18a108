"""BigBirdConfig: transformers' defaults, config.json round trips, validation."""

from __future__ import annotations

import json

import pytest

from bigbird_core import BigBirdConfig, ConfigError


def test_defaults_are_transformers_defaults():
    transformers = pytest.importorskip("transformers")
    theirs = transformers.BigBirdConfig()
    ours = BigBirdConfig()
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                 "type_vocab_size", "initializer_range", "layer_norm_eps", "use_cache", "pad_token_id",
                 "bos_token_id", "eos_token_id", "sep_token_id", "attention_type", "use_bias",
                 "rescale_embeddings", "block_size", "num_random_blocks", "classifier_dropout", "num_labels",
                 "problem_type", "is_decoder", "tie_word_embeddings"):  # fmt: skip
        assert getattr(ours, name) == getattr(theirs, name), name


def test_config_json_round_trip_keeps_unknown_keys(tmp_path):
    data = BigBirdConfig(hidden_size=64, num_attention_heads=4, num_labels=3).to_dict()
    data["my_custom_key"] = {"nested": [1, 2]}
    data["transformers_version"] = "4.57.6"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    cfg = BigBirdConfig.load(tmp_path)
    assert cfg.hidden_size == 64 and cfg.num_labels == 3
    assert cfg.extra["my_custom_key"] == {"nested": [1, 2]}
    cfg.save(tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["my_custom_key"] == {"nested": [1, 2]} and again["transformers_version"] == "4.57.6"
    assert BigBirdConfig.load(tmp_path / "again.json") == cfg


def test_reads_a_config_that_transformers_wrote(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.BigBirdConfig(hidden_size=48, num_attention_heads=6, block_size=16, num_labels=5,
                               rescale_embeddings=True).save_pretrained(tmp_path)  # fmt: skip
    cfg = BigBirdConfig.load(tmp_path)
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.block_size, cfg.num_labels) == (48, 6, 16, 5)
    assert cfg.rescale_embeddings and cfg.head_dim == 8
    back = transformers.BigBirdConfig(**cfg.to_dict())
    assert back.num_labels == 5 and back.block_size == 16


@pytest.mark.parametrize("changes,field", [
    (dict(hidden_size=100, num_attention_heads=12), "hidden_size"),
    (dict(block_size=0), "block_size"),
    (dict(block_size=-4), "block_size"),
    (dict(attention_type="sparse"), "attention_type"),
    (dict(hidden_act="gelu_newest"), "hidden_act"),
    (dict(num_random_blocks=-1), "num_random_blocks"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(sep_token_id=10**6), "sep_token_id"),
    (dict(random_plan="mine"), "random_plan"),
    (dict(problem_type="ranking"), "problem_type"),
])  # fmt: skip
def test_validation_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=field) as err:
        BigBirdConfig(**changes)
    assert "expected" in str(err.value) and "got" in str(err.value)


def test_missing_and_corrupt_config_files(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        BigBirdConfig.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BigBirdConfig.load(tmp_path)


def test_problem_type_rule():
    assert BigBirdConfig(num_labels=1).problem_type_for(True) == "regression"
    assert BigBirdConfig(num_labels=3).problem_type_for(True) == "single_label_classification"
    assert BigBirdConfig(num_labels=3).problem_type_for(False) == "multi_label_classification"
    assert BigBirdConfig(num_labels=3, problem_type="regression").problem_type_for(True) == "regression"
