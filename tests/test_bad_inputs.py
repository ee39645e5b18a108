"""One bad-input table over the three backends: the same error class and the same message from each.

Every check lives in the core's call recipe; a backend that validated on its own (or not at all) would
give another message, another exception or a result, and fail here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import bigbird_core as core
from bigbird_core import BigBirdConfig, InputError
from cases import TINY

CFG = BigBirdConfig(**TINY)  # vocab 97, 2 layers, 4 heads, block 8, r 2, max positions 256
L = 150  # block-sparse length (> (5 + 2r) * block = 72)


def ids(shape=(2, L), low=3, high=90, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, shape)


@dataclass(frozen=True)
class Bad:
    id: str
    head: str
    make: Callable[[], dict]  # the forward arguments (NumPy; converted per backend)
    message: str  # the exact message every backend must give
    raw: bool = False  # hand the NumPy arrays to every backend as they are (no conversion by the test)


def _with(**extra) -> Callable[[], dict]:
    return lambda: {"input_ids": ids(), **{k: v() if callable(v) else v for k, v in extra.items()}}


MC = (2, 2, L)
QA = "BigBirdForQuestionAnswering"
CASES = [
    Bad("ids-past-int32", "BigBirdModel", lambda: {"input_ids": ids().astype(np.int64) + 2**31},
        "input_ids: expected values in [0, 97), got values in [2.14748e+09, 2.14748e+09]", raw=True),
    Bad("ids-list-too-high", "BigBirdModel", lambda: {"input_ids": [[5, 6, 97]]},
        "input_ids: expected values in [0, 97), got values in [5, 97]", raw=True),
    Bad("ids-too-high", "BigBirdModel", lambda: {"input_ids": ids(high=98)},
        "input_ids: expected values in [0, 97), got values in [3, 97]"),
    Bad("ids-negative", "BigBirdModel", lambda: {"input_ids": ids(low=-1)},
        "input_ids: expected values in [0, 97), got values in [-1, 89]"),
    Bad("ids-float", "BigBirdModel", lambda: {"input_ids": ids().astype(np.float32)},
        "input_ids: expected a 2-D integer array (batch, seq), got a floating-point array of shape (2, 150)"),
    Bad("ids-rank-1", "BigBirdModel", lambda: {"input_ids": ids((L,))},
        "input_ids: expected a 2-D integer array (batch, seq), got an integer array of shape (150,)"),
    Bad("choices-rank-2", "BigBirdForMultipleChoice", lambda: {"input_ids": ids()},
        "input_ids: expected a 3-D integer array (batch, num_choices, seq), got an integer array of shape (2, 150)"),
    Bad("batch-0", "BigBirdModel", lambda: {"input_ids": ids((0, L))},
        "input_ids: expected a non-empty batch of non-empty sequences, got shape (0, 150)"),
    Bad("length-0", "BigBirdModel", lambda: {"input_ids": ids((2, 0))},
        "input_ids: expected a non-empty batch of non-empty sequences, got shape (2, 0)"),
    Bad("too-long", "BigBirdModel", lambda: {"input_ids": ids((1, 257))},
        "input_ids: expected at most max_position_embeddings = 256 tokens, got 257 tokens"),
    Bad("ids-and-embeds", "BigBirdModel", _with(inputs_embeds=lambda: np.zeros((2, L, 32), np.float32)),
        "input_ids / inputs_embeds: expected exactly one of them, got both"),
    Bad("embeds-width", "BigBirdModel", lambda: {"inputs_embeds": np.zeros((2, L, 31), np.float32)},
        "inputs_embeds: expected a 3-D float array (batch, seq, 32), got a floating-point array of shape (2, 150, 31)"),
    Bad("mask-shape", "BigBirdModel", _with(attention_mask=lambda: np.ones((2, L - 1), np.int64)),
        "attention_mask: expected a 0/1 array of shape (2, 150), got an integer array of shape (2, 149)"),
    Bad("mask-two", "BigBirdModel", _with(attention_mask=lambda: np.full((2, L), 2, np.int64)),
        "attention_mask: expected only the values 0 and 1, got values in [2, 2]"),
    Bad("mask-half", "BigBirdModel", _with(attention_mask=lambda: np.full((2, L), 0.5, np.float32)),
        "attention_mask: expected only the values 0 and 1, got values in [0.5, 0.5]"),
    Bad("types-too-high", "BigBirdModel", _with(token_type_ids=lambda: np.full((2, L), 2, np.int64)),
        "token_type_ids: expected values in [0, 2), got values in [2, 2]"),
    Bad("types-shape", "BigBirdModel", _with(token_type_ids=lambda: np.zeros((2, 3), np.int64)),
        "token_type_ids: expected shape (2, 150), got an integer array of shape (2, 3)"),
    Bad("positions-too-high", "BigBirdModel", _with(position_ids=lambda: np.full((2, L), 256, np.int64)),
        "position_ids: expected values in [0, 256), got values in [256, 256]"),
    Bad("head-mask-shape", "BigBirdModel", _with(head_mask=lambda: np.ones((3,), np.float32)),
        "head_mask: expected an array of shape (4,) or (2, 4), got a floating-point array of shape (3,)"),
    Bad("plan-short-input", "BigBirdModel",
        lambda: {"input_ids": ids((2, 60)), "plan": np.zeros((2, 4, 6, 2), np.int32)},
        "plan: expected None: this call of 60 tokens runs full attention (block-sparse needs more than 72), "
        "got an integer array of shape (2, 4, 6, 2)"),
    Bad("plan-shape", "BigBirdModel", _with(plan=lambda: np.zeros((2, 4, 5, 2), np.int32)),
        "plan: expected an integer array of shape (2, 4, 17, 2), got an integer array of shape (2, 4, 5, 2)"),
    Bad("plan-range", "BigBirdModel", _with(plan=lambda: np.full((2, 4, 17, 2), 19, np.int32)),
        "plan: expected block indices in [0, 19), got values in [19, 19]"),
    Bad("question-lengths-batch", QA, _with(question_lengths=lambda: np.ones((3,), np.int64)),
        "question_lengths: expected an integer array of shape (2,) or (2, 1), got an integer array of shape (3,)"),
    Bad("mlm-labels-too-high", "BigBirdForMaskedLM", _with(labels=lambda: np.full((2, L), 97, np.int64)),
        "labels: expected class ids in [0, 97) or -100, got values in [97, 97]"),
    Bad("mlm-labels-negative", "BigBirdForMaskedLM", _with(labels=lambda: np.full((2, L), -5, np.int64)),
        "labels: expected class ids in [0, 97) or -100, got values in [-5, -5]"),
    Bad("mlm-labels-shape", "BigBirdForMaskedLM", _with(labels=lambda: np.zeros((2, L - 1), np.int64)),
        "labels: expected an integer array of shape (2, 150), got an integer array of shape (2, 149)"),
    Bad("causal-labels-too-high", "BigBirdForCausalLM", _with(labels=lambda: np.full((2, L), 100, np.int64)),
        "labels: expected class ids in [0, 97) or -100, got values in [100, 100]"),
    Bad("causal-labels-negative", "BigBirdForCausalLM", _with(labels=lambda: np.full((2, L), -3, np.int64)),
        "labels: expected class ids in [0, 97) or -100, got values in [-3, -3]"),
    Bad("causal-labels-shape", "BigBirdForCausalLM", _with(labels=lambda: np.zeros((2,), np.int64)),
        "labels: expected an integer array of shape (2, 150), got an integer array of shape (2,)"),
    Bad("pretraining-labels-shape", "BigBirdForPreTraining", _with(labels=lambda: np.zeros((1, L), np.int64)),
        "labels: expected an integer array of shape (2, 150), got an integer array of shape (1, 150)"),
    Bad("pretraining-labels-too-high", "BigBirdForPreTraining", _with(labels=lambda: np.full((2, L), 500, np.int64)),
        "labels: expected class ids in [0, 97) or -100, got values in [500, 500]"),
    Bad("nsp-label-negative", "BigBirdForPreTraining",
        _with(labels=lambda: np.zeros((2, L), np.int64), next_sentence_label=lambda: np.array([-1, 0])),
        "next_sentence_label: expected class ids in [0, 2) or -100, got values in [-1, 0]"),
    Bad("nsp-label-too-high", "BigBirdForPreTraining",
        _with(labels=lambda: np.zeros((2, L), np.int64), next_sentence_label=lambda: np.array([0, 2])),
        "next_sentence_label: expected class ids in [0, 2) or -100, got values in [0, 2]"),
    Bad("seq-labels-too-high", "BigBirdForSequenceClassification", _with(labels=lambda: np.array([0, 100])),
        "labels: expected class ids in [0, 2) or -100, got values in [0, 100]"),
    Bad("seq-labels-negative", "BigBirdForSequenceClassification", _with(labels=lambda: np.array([-1, 0])),
        "labels: expected class ids in [0, 2) or -100, got values in [-1, 0]"),
    Bad("seq-labels-shape", "BigBirdForSequenceClassification", _with(labels=lambda: np.zeros((3,), np.int64)),
        "labels: expected an integer array of shape (2,) or (2, 1), got an integer array of shape (3,)"),
    Bad("multi-label-shape", "BigBirdForSequenceClassification",
        _with(labels=lambda: np.zeros((2, 3), np.float32)),
        "labels: expected multi-label targets of shape (2, 2), got a floating-point array of shape (2, 3)"),
    Bad("multi-label-range", "BigBirdForSequenceClassification",
        _with(labels=lambda: np.full((2, 2), 1.5, np.float32)),
        "labels: expected multi-label targets in [0, 1], got values in [1.5, 1.5]"),
    Bad("token-labels-too-high", "BigBirdForTokenClassification", _with(labels=lambda: np.full((2, L), 2, np.int64)),
        "labels: expected class ids in [0, 2) or -100, got values in [2, 2]"),
    Bad("token-labels-negative", "BigBirdForTokenClassification", _with(labels=lambda: np.full((2, L), -2, np.int64)),
        "labels: expected class ids in [0, 2) or -100, got values in [-2, -2]"),
    Bad("token-labels-shape", "BigBirdForTokenClassification", _with(labels=lambda: np.zeros((2, 7), np.int64)),
        "labels: expected an integer array of shape (2, 150), got an integer array of shape (2, 7)"),
    Bad("choice-labels-negative", "BigBirdForMultipleChoice",
        lambda: {"input_ids": ids(MC), "labels": np.array([-1, 0])},
        "labels: expected class ids in [0, 2) or -100, got values in [-1, 0]"),
    Bad("choice-labels-too-high", "BigBirdForMultipleChoice",
        lambda: {"input_ids": ids(MC), "labels": np.array([0, 2])},
        "labels: expected class ids in [0, 2) or -100, got values in [0, 2]"),
    Bad("choice-labels-shape", "BigBirdForMultipleChoice",
        lambda: {"input_ids": ids(MC), "labels": np.zeros((2, 2), np.int64)},
        "labels: expected an integer array of shape (2,) or (2, 1), got an integer array of shape (2, 2)"),
    Bad("qa-positions-negative", QA,
        _with(start_positions=lambda: np.array([-1, 3]), end_positions=lambda: np.array([4, 5])),
        "start_positions: expected non-negative positions, got values in [-1, 3]"),
    Bad("qa-positions-shape", QA,
        _with(start_positions=lambda: np.array([1, 2, 3]), end_positions=lambda: np.array([4, 5, 6])),
        "start_positions: expected an integer array of shape (2,) or (2, 1), got an integer array of shape (3,)"),
    Bad("qa-labels-float", QA,
        _with(start_positions=lambda: np.array([1.0, 2.0]), end_positions=lambda: np.array([4, 5])),
        "start_positions: expected an integer array of shape (2,) or (2, 1), got a floating-point array of shape (2,)"),
    Bad("qa-end-missing", QA, _with(start_positions=lambda: np.array([1, 2])),
        "end_positions: expected an array given together with start_positions, got None"),
]  # fmt: skip


def _torch(x):
    import torch

    return torch.as_tensor(x)


def _jax(x):
    import jax.numpy as jnp

    return jnp.asarray(x)


BACKENDS = {"numpy": ("bigbird_core", np.asarray), "torch": ("bigbird_torch", _torch), "flax": ("bigbird_flax", _jax)}
_models: dict[tuple[str, str], object] = {}


def run(backend: str, case: Bad):
    module_name, convert = BACKENDS[backend]
    module = pytest.importorskip(module_name)
    key = (backend, case.head)
    if key not in _models:
        _models[key] = module.MODEL_CLASSES[case.head](CFG)
    return _models[key](**{k: v if case.raw else convert(v) for k, v in case.make().items()})


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_the_same_error_everywhere(case, backend):
    with pytest.raises(InputError) as info:
        run(backend, case)
    assert str(info.value) == case.message


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_good_version_of_each_bad_case_runs(backend):
    """The table is not vacuous: the same heads with valid arguments run on every backend."""
    for head in core.HEADS:
        shape = MC if head == "BigBirdForMultipleChoice" else (2, L)
        good = Bad("good", head, lambda shape=shape: {"input_ids": ids(shape), "attention_mask": np.ones(shape, np.int64)},
                   "")  # fmt: skip
        assert run(backend, good) is not None
