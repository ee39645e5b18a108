"""The NumPy reference against transformers 4.57.6 (PyTorch), every head, eval and train (dropout 0)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
from cases import CASES, make_inputs, make_labels  # noqa: E402
from oracle import oracle_forward, oracle_model, save_oracle  # noqa: E402
from parity.helpers import compare_outputs  # noqa: E402

import bigbird_core as bb  # noqa: E402


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("head", bb.HEADS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numpy_matches_oracle(case, head, mode, tmp_path):
    oracle = oracle_model(case.config, head, seed=0)
    ours = bb.MODEL_CLASSES[head].from_pretrained(save_oracle(oracle, str(tmp_path)))
    assert ours.load_report.missing_keys == () and ours.load_report.unexpected_keys == ()
    ours.train(mode == "train")
    inputs = {**make_inputs(case, head), **make_labels(case, head)}
    flags = dict(output_attentions=True, output_hidden_states=True)
    expected = oracle_forward(oracle, mode == "train", **inputs, **flags)
    actual = ours(**inputs, **flags)
    results = compare_outputs(actual, expected)
    assert "loss" in results or head == "BigBirdModel"


@pytest.mark.parametrize("head", ["BigBirdModel", "BigBirdForQuestionAnswering"])
def test_numpy_float64_matches_oracle(head, tmp_path):
    case = CASES[0]
    oracle = oracle_model(case.config, head, seed=3, dtype=torch.float64)
    ours = bb.MODEL_CLASSES[head].from_pretrained(save_oracle(oracle, str(tmp_path)))
    assert ours.dtype == np.float64
    inputs = make_inputs(case, head)
    expected = oracle_forward(oracle, False, **inputs)
    compare_outputs(ours(**inputs), expected, dtype="float64")


def test_inputs_embeds_and_position_ids_match_oracle(tmp_path):
    """Given embeddings are padded with the embedding output of pad tokens; given positions with pad_token_id."""
    case = CASES[0]
    oracle = oracle_model(case.config, "BigBirdModel", seed=5)
    ours = bb.BigBirdModel.from_pretrained(save_oracle(oracle, str(tmp_path)))
    rng = np.random.default_rng(0)
    embeds = rng.normal(size=(2, case.seq_len, case.config.hidden_size)).astype(np.float32)
    positions = np.broadcast_to(np.arange(case.seq_len)[::-1] + 3, (2, case.seq_len)).copy()
    types = rng.integers(0, 2, (2, case.seq_len))
    inputs = dict(inputs_embeds=embeds, position_ids=positions, token_type_ids=types)
    flags = dict(output_hidden_states=True, output_attentions=True)
    compare_outputs(ours(**inputs, **flags), oracle_forward(oracle, False, **inputs, **flags))


def test_head_mask_full_attention_matches_oracle(tmp_path):
    case = CASES[2]  # short: full attention, where head_mask applies
    oracle = oracle_model(case.config, "BigBirdModel", seed=6)
    ours = bb.BigBirdModel.from_pretrained(save_oracle(oracle, str(tmp_path)))
    head_mask = np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]], np.float32)
    inputs = {**make_inputs(case, "BigBirdModel"), "head_mask": head_mask}
    compare_outputs(ours(**inputs, output_attentions=True), oracle_forward(oracle, False, **inputs, output_attentions=True))


def test_decoder_causal_lm_matches_oracle(tmp_path):
    """A decoder is causal. transformers keeps block-sparse (non-causal) attention for an
    ``is_decoder`` config on long inputs; we always use causal full attention for decoders, so the
    oracle is compared with ``original_full``, where both are causal."""
    case = CASES[0]
    config = case.config.replace(is_decoder=True, attention_type="original_full")
    oracle = oracle_model(config, "BigBirdForCausalLM", seed=7)
    ours = bb.BigBirdForCausalLM.from_pretrained(save_oracle(oracle, str(tmp_path)))
    assert ours.config.is_decoder
    inputs = {**make_inputs(case, "BigBirdForCausalLM"), **make_labels(case, "BigBirdForCausalLM")}
    expected = oracle_forward(oracle, False, **inputs, use_cache=False)
    compare_outputs(ours(**inputs), expected)


@pytest.mark.parametrize("problem", ["regression", "single_label_classification", "multi_label_classification"])
def test_sequence_classification_losses_match_oracle(problem, tmp_path):
    case = CASES[0]
    num_labels = 1 if problem == "regression" else 3
    config = case.config.replace(num_labels=num_labels, problem_type=problem)
    oracle = oracle_model(config, "BigBirdForSequenceClassification", seed=8)
    ours = bb.BigBirdForSequenceClassification.from_pretrained(save_oracle(oracle, str(tmp_path)))
    rng = np.random.default_rng(2)
    labels = {
        "regression": rng.normal(size=(2,)).astype(np.float32),
        "single_label_classification": rng.integers(0, 3, (2,)),
        "multi_label_classification": rng.integers(0, 2, (2, 3)).astype(np.float32),
    }[problem]
    inputs = {**make_inputs(case, "BigBirdForSequenceClassification"), "labels": labels}
    compare_outputs(ours(**inputs), oracle_forward(oracle, False, **inputs))
