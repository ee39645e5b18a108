"""Losses of every head in JAX, with transformers' PyTorch rules (transformers' Flax heads had none)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bigbird_core.config import BigBirdConfig


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, ignore_index: int = -100) -> jnp.ndarray:
    """Mean cross-entropy over labels that are not ``ignore_index`` (computed in float32 at least)."""
    logits = logits.reshape(-1, logits.shape[-1])
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, jnp.where(keep, labels, 0)[:, None], axis=-1)[:, 0]
    return -jnp.sum(jnp.where(keep, picked, 0.0)) / jnp.sum(keep)


def head_loss(head: str, config: BigBirdConfig, out: dict, labels: dict) -> jnp.ndarray | None:
    """The loss of ``head`` given its raw outputs (already cut to the input length) and label arrays.

    Labels: ``labels`` (+ ``next_sentence_label`` for pre-training); ``start_positions`` and
    ``end_positions`` for QA. Returns None when the labels a head needs are absent.
    """
    if head == "BigBirdForQuestionAnswering":
        if labels.get("start_positions") is None or labels.get("end_positions") is None:
            return None
        start, end = out["start_logits"], out["end_logits"]
        ignored = start.shape[1]
        sp = jnp.clip(jnp.asarray(labels["start_positions"]).reshape(-1), 0, ignored)
        ep = jnp.clip(jnp.asarray(labels["end_positions"]).reshape(-1), 0, ignored)
        return (cross_entropy(start, sp, ignored) + cross_entropy(end, ep, ignored)) / 2
    y = labels.get("labels")
    if y is None or head == "BigBirdModel":
        return None
    y = jnp.asarray(y)
    logits = out["logits"]
    if head == "BigBirdForCausalLM":
        return cross_entropy(logits[:, :-1], y[:, 1:])
    if head == "BigBirdForPreTraining":
        loss = cross_entropy(logits, y)
        if labels.get("next_sentence_label") is not None:
            loss = loss + cross_entropy(out["nsp"], jnp.asarray(labels["next_sentence_label"]))
        return loss
    if head == "BigBirdForSequenceClassification":
        problem = config.problem_type_for(bool(jnp.issubdtype(y.dtype, jnp.integer)))
        if problem == "regression":
            pred = logits.squeeze() if config.num_labels == 1 else logits
            return jnp.mean((pred - (y.squeeze() if config.num_labels == 1 else y).astype(pred.dtype)) ** 2)
        if problem == "single_label_classification":
            return cross_entropy(logits, y)
        t = y.astype(logits.dtype)
        return jnp.mean(jnp.maximum(logits, 0) - logits * t + jnp.log1p(jnp.exp(-jnp.abs(logits))))
    return cross_entropy(logits, y)  # masked LM, multiple choice, token classification
