"""Loss rules written once for every backend: the losses of transformers 4.57.6's BigBird heads (each
head's registry entry, :mod:`bigbird_core.head_specs`, says which it uses).

Array API code (NumPy, torch with autograd, JAX under jit). Losses are computed in float32 at least
(half-precision logits are upcast; float32 and float64 are unchanged).
"""

from __future__ import annotations

from typing import Any

from .arrays import namespace, softmax_dtype
from .config import BigBirdConfig
from .validate import IGNORE_INDEX


def _upcast(xp: Any, x: Any) -> Any:
    return xp.astype(x, softmax_dtype(xp, x.dtype))


def cross_entropy(logits: Any, labels: Any, ignore_index: int = IGNORE_INDEX) -> Any:
    """Mean cross-entropy of ``logits (..., C)`` against ``labels (...)`` over the labels that are not
    ``ignore_index`` (NaN when none remain, as torch)."""
    xp = namespace(logits)
    logits = _upcast(xp, xp.reshape(logits, (-1, logits.shape[-1])))  # (N, C)
    labels = xp.reshape(labels, (-1,))
    keep = labels != ignore_index
    safe = xp.where(keep, labels, xp.zeros_like(labels))
    top = xp.max(logits, axis=-1, keepdims=True)  # (N, 1)
    log_total = xp.log(xp.sum(xp.exp(logits - top), axis=-1)) + top[:, 0]  # (N,)
    picked = xp.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]  # (N,)
    per_item = xp.where(keep, log_total - picked, xp.zeros_like(picked))
    return xp.sum(per_item) / xp.sum(xp.astype(keep, per_item.dtype))


def mse(pred: Any, target: Any) -> Any:
    xp = namespace(pred)
    pred = _upcast(xp, pred)
    return xp.mean((pred - xp.astype(target, pred.dtype)) ** 2)


def bce_with_logits(logits: Any, targets: Any) -> Any:
    """Mean binary cross-entropy of ``logits`` against ``targets`` in [0, 1] (numerically stable form)."""
    xp = namespace(logits)
    x = _upcast(xp, logits)
    t = xp.astype(targets, x.dtype)
    return xp.mean(xp.clip(x, 0, None) - x * t + xp.log1p(xp.exp(-xp.abs(x))))


def sequence_classification_loss(config: BigBirdConfig, logits: Any, labels: Any) -> Any:
    """transformers' problem_type rule: regression (1 label: squeezed), single-label (integer labels),
    multi-label (float targets)."""
    xp = namespace(logits)
    integer = "int" in str(labels.dtype)
    problem = config.problem_type_for(integer)
    if problem == "regression":
        if config.num_labels == 1:
            return mse(xp.reshape(logits, (-1,)), xp.reshape(labels, (-1,)))
        return mse(logits, labels)
    if problem == "single_label_classification":
        return cross_entropy(logits, labels)
    return bce_with_logits(logits, labels)


def question_answering_loss(start_logits: Any, end_logits: Any, start: Any, end: Any) -> Any:
    """Mean of the start and end cross-entropies; positions are clamped to ``[0, L]`` and ``L`` (outside
    the sequence) is ignored."""
    xp = namespace(start_logits)
    length = start_logits.shape[1]
    sp = xp.clip(xp.reshape(start, (-1,)), 0, length)
    ep = xp.clip(xp.reshape(end, (-1,)), 0, length)
    return (cross_entropy(start_logits, sp, length) + cross_entropy(end_logits, ep, length)) / 2
