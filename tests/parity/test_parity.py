"""The parity contract: every head x every backend x mode, against transformers 4.57.6 and against the
NumPy reference, outputs and attention probabilities at float32 tolerance."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
import bigbird_core as bb  # noqa: E402
from bigbird_cli.backends import available_backends, load_backend  # noqa: E402
from cases import CASES, make_inputs, make_labels  # noqa: E402
from oracle import oracle_forward, oracle_model, save_oracle  # noqa: E402
from parity.helpers import compare_outputs  # noqa: E402

BACKENDS = available_backends()
FLAGS = dict(output_attentions=True, output_hidden_states=True)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One oracle model and its saved directory per (case, head), shared by every backend and mode."""
    cache = {}

    def get(case, head):
        if (case.id, head) not in cache:
            model = oracle_model(case.config, head, seed=0)
            path = save_oracle(model, str(tmp_path_factory.mktemp(f"{case.id}-{head}")))
            cache[(case.id, head)] = (model, path)
        return cache[(case.id, head)]

    return get


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head", bb.HEADS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backend_matches_oracle_and_reference(case, head, backend, mode, checkpoints):
    """Every output field, the loss and every hidden state (the backends' fast attention paths)."""
    oracle, path = checkpoints(case, head)
    train = mode == "train"
    inputs = {**make_inputs(case, head), **make_labels(case, head)}
    actual = load_backend(backend).runner(head, path, train=train)(**inputs, output_hidden_states=True)
    results = compare_outputs(actual, oracle_forward(oracle, train, **inputs, output_hidden_states=True))
    assert "loss" in results or head == "BigBirdModel"
    assert any(k.startswith("hidden_states[") for k in results)
    if backend != "numpy":
        compare_outputs(actual, bb.runner(head, path, train=train)(**inputs, output_hidden_states=True))


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_attention_probabilities_match_oracle(case, backend, mode, checkpoints):
    """Dense probabilities of every layer (both attention types); asking for them changes no output."""
    head = "BigBirdModel"
    oracle, path = checkpoints(case, head)
    train = mode == "train"
    inputs = make_inputs(case, head)
    run = load_backend(backend).runner(head, path, train=train)
    actual = run(**inputs, **FLAGS)
    results = compare_outputs(actual, oracle_forward(oracle, train, **inputs, **FLAGS))
    assert sum(k.startswith("attentions[") for k in results) == case.config.num_hidden_layers
    compare_outputs(run(**inputs), actual, fields=["last_hidden_state", "pooler_output"])
