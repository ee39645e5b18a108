"""Every backend against transformers 4.57.6 on inputs beyond the main grid (see test_parity.py):
given embeddings and positions, head masks, decoders, and every sequence-classification loss."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402
from bigbird_cli.backends import available_backends, load_backend  # noqa: E402
from cases import CASES, make_inputs, make_labels  # noqa: E402
from oracle import oracle_forward, oracle_model, save_oracle  # noqa: E402
from parity.helpers import compare_outputs  # noqa: E402

BACKENDS = available_backends()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head", ["BigBirdModel", "BigBirdForQuestionAnswering"])
def test_float64_matches_oracle(head, backend, tmp_path):
    case = CASES[0]
    oracle = oracle_model(case.config, head, seed=3, dtype=torch.float64)
    path = save_oracle(oracle, str(tmp_path))
    inputs = make_inputs(case, head)
    expected = oracle_forward(oracle, False, **inputs)
    actual = load_backend(backend).runner(head, path, dtype="float64")(**inputs)
    assert str(actual[0].dtype).endswith("float64")
    compare_outputs(actual, expected, dtype="float64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_embeds_and_position_ids_match_oracle(backend, tmp_path):
    """Given embeddings are padded with the embedding output of pad tokens; given positions with pad_token_id."""
    case = CASES[0]
    oracle = oracle_model(case.config, "BigBirdModel", seed=5)
    ours = load_backend(backend).runner("BigBirdModel", save_oracle(oracle, str(tmp_path)))
    rng = np.random.default_rng(0)
    embeds = rng.normal(size=(2, case.seq_len, case.config.hidden_size)).astype(np.float32)
    positions = np.broadcast_to(np.arange(case.seq_len)[::-1] + 3, (2, case.seq_len)).copy()
    types = rng.integers(0, 2, (2, case.seq_len))
    inputs = dict(inputs_embeds=embeds, position_ids=positions, token_type_ids=types)
    flags = dict(output_hidden_states=True, output_attentions=True)
    compare_outputs(ours(**inputs, **flags), oracle_forward(oracle, False, **inputs, **flags))


@pytest.mark.parametrize("backend", BACKENDS)
def test_head_mask_full_attention_matches_oracle(backend, tmp_path):
    case = CASES[2]  # short: full attention, where head_mask applies
    oracle = oracle_model(case.config, "BigBirdModel", seed=6)
    ours = load_backend(backend).runner("BigBirdModel", save_oracle(oracle, str(tmp_path)))
    head_mask = np.array([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]], np.float32)
    inputs = {**make_inputs(case, "BigBirdModel"), "head_mask": head_mask}
    compare_outputs(
        ours(**inputs, output_attentions=True),
        oracle_forward(oracle, False, **inputs, output_attentions=True),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoder_causal_lm_matches_oracle(backend, tmp_path):
    """A decoder is causal. transformers keeps block-sparse (non-causal) attention for an
    ``is_decoder`` config on long inputs; we always use causal full attention for decoders, so the
    oracle is compared with ``original_full``, where both are causal."""
    case = CASES[0]
    config = case.config.replace(is_decoder=True, attention_type="original_full")
    oracle = oracle_model(config, "BigBirdForCausalLM", seed=7)
    ours = load_backend(backend).runner("BigBirdForCausalLM", save_oracle(oracle, str(tmp_path)))
    inputs = {**make_inputs(case, "BigBirdForCausalLM"), **make_labels(case, "BigBirdForCausalLM")}
    expected = oracle_forward(oracle, False, **inputs, use_cache=False)
    compare_outputs(ours(**inputs, use_cache=False) if backend == "torch" else ours(**inputs), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "problem", ["regression", "single_label_classification", "multi_label_classification"]
)
def test_sequence_classification_losses_match_oracle(problem, backend, tmp_path):
    case = CASES[0]
    num_labels = 1 if problem == "regression" else 3
    config = case.config.replace(num_labels=num_labels, problem_type=problem)
    oracle = oracle_model(config, "BigBirdForSequenceClassification", seed=8)
    ours = load_backend(backend).runner(
        "BigBirdForSequenceClassification", save_oracle(oracle, str(tmp_path))
    )
    rng = np.random.default_rng(2)
    labels = {
        "regression": rng.normal(size=(2,)).astype(np.float32),
        "single_label_classification": rng.integers(0, 3, (2,)),
        "multi_label_classification": rng.integers(0, 2, (2, 3)).astype(np.float32),
    }[problem]
    inputs = {**make_inputs(case, "BigBirdForSequenceClassification"), "labels": labels}
    compare_outputs(ours(**inputs), oracle_forward(oracle, False, **inputs))
