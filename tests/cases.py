"""The config grid every parity test runs over, and the seeded inputs of each case."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bigbird_core import BigBirdConfig

TINY = dict(vocab_size=97, hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=48,
            block_size=8, num_random_blocks=2, max_position_embeddings=256, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, sep_token_id=66)  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One parity case: a config, a sequence length, and whether the attention mask has padding."""

    id: str
    seq_len: int
    padded_mask: bool = True
    overrides: dict = field(default_factory=dict)

    @property
    def config(self) -> BigBirdConfig:
        return BigBirdConfig(**{**TINY, **self.overrides})


CASES = [
    Case("ragged150", 150),  # not a multiple of the block size, padding in the mask
    Case("aligned128", 128, padded_mask=False),  # a multiple of the block size, no padding
    Case("short60", 60),  # falls back to full attention
    Case("rescale-nobias", 150, overrides=dict(rescale_embeddings=True, use_bias=False)),
    Case(
        "paper1024", 1024, overrides=dict(block_size=16, max_position_embeddings=1024)
    ),  # transformers' paper path
]
QUICK_CASES = CASES[:1] + CASES[2:4]


def make_inputs(case: Case, head: str, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Seeded ids and mask for ``case`` (multiple choice gets a choices axis of 2; QA a [SEP] at 5)."""
    rng = np.random.default_rng(seed)
    c = case.config
    shape = (batch, 2, case.seq_len) if head == "BigBirdForMultipleChoice" else (batch, case.seq_len)
    ids = rng.integers(3, c.vocab_size, shape)
    ids[ids == c.sep_token_id] = 3
    if head == "BigBirdForQuestionAnswering":
        ids[..., 5] = c.sep_token_id
        ids[0, 9] = c.sep_token_id  # a second [SEP]: the first one counts
    mask = np.ones(shape, np.int64)
    if case.padded_mask:
        mask[0, ..., -11:] = 0
        ids[0, ..., -11:] = c.pad_token_id
    return {"input_ids": ids, "attention_mask": mask}


def make_labels(case: Case, head: str, seed: int = 1, batch: int = 2) -> dict[str, np.ndarray]:
    """Seeded labels for every head's loss."""
    rng = np.random.default_rng(seed)
    c, L = case.config, case.seq_len
    if head in ("BigBirdForMaskedLM", "BigBirdForCausalLM", "BigBirdForPreTraining"):
        labels = rng.integers(0, c.vocab_size, (batch, L))
        labels[:, ::3] = -100
        out = {"labels": labels}
        if head == "BigBirdForPreTraining":
            out["next_sentence_label"] = rng.integers(0, 2, (batch,))
        return out
    if head == "BigBirdForSequenceClassification":
        return {"labels": rng.integers(0, c.num_labels, (batch,))}
    if head == "BigBirdForMultipleChoice":
        return {"labels": rng.integers(0, 2, (batch,))}
    if head == "BigBirdForTokenClassification":
        return {"labels": rng.integers(0, c.num_labels, (batch, L))}
    if head == "BigBirdForQuestionAnswering":
        return {
            "start_positions": rng.integers(0, L, (batch,)),
            "end_positions": rng.integers(0, L + 5, (batch,)),
        }
    return {}


def causal_lms(config: BigBirdConfig, seed: int = 0) -> list[tuple]:
    """``(backend, BigBirdForCausalLM of config, array converter)`` in every installed framework backend."""
    out = []
    try:
        import bigbird_torch as bt
        import torch

        out.append(("torch", bt.BigBirdForCausalLM(config, seed=seed).eval(), torch.as_tensor))
    except ImportError:
        pass
    try:
        import jax.numpy as jnp

        import bigbird_flax as bf

        out.append(("flax", bf.FlaxBigBirdForCausalLM(config, seed=seed), jnp.asarray))
    except ImportError:
        pass
    return out
