"""``bigbird info`` and ``bigbird check`` on an encoder-decoder pair (transformers' ``EncoderDecoderModel`` of two
BigBirds): described as a pair, and run on every installed backend that has the pair, compared field by field."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from bigbird_core.encoder_decoder import EncoderDecoderConfig
from bigbird_core.errors import InputError

from .backends import load_backend
from .check import Row, finite_rows, flatten_output, worst_field

PAIR = "EncoderDecoderModel"


def pair_backends(backends: list[str]) -> list[str]:
    """The backends among ``backends`` that run a pair (``BigBirdEncoderDecoderModel``)."""
    return [b for b in backends if hasattr(load_backend(b), "BigBirdEncoderDecoderModel")]


def describe_pair(config: EncoderDecoderConfig, state: dict[str, np.ndarray]) -> dict[str, Any]:
    """What ``bigbird info`` shows of a pair: both sides' sizes and the projection."""

    def side(c) -> dict[str, Any]:
        return {"layers": c.num_hidden_layers, "hidden_size": c.hidden_size, "heads": c.num_attention_heads,
                "vocab_size": c.vocab_size, "attention_type": c.attention_type, "is_decoder": c.is_decoder,
                "add_cross_attention": c.add_cross_attention}  # fmt: skip

    return {"kind": "encoder-decoder pair", "encoder": side(config.encoder), "decoder": side(config.decoder),
            "enc_to_dec_proj": bool(config.projection), "parameters": int(sum(v.size for v in state.values())),
            "tensors": len(state)}  # fmt: skip


def pair_inputs(config: EncoderDecoderConfig, seq_len: int, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded encoder ids with a padded mask and decoder labels of eight tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, config.encoder.vocab_size, (batch, seq_len))
    mask = np.ones((batch, seq_len), np.int64)
    mask[0, -max(1, seq_len // 10) :] = 0
    labels = rng.integers(3, config.decoder.vocab_size, (batch, min(8, config.decoder.max_position_embeddings)))
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def check_pair(directory: str, config: EncoderDecoderConfig, backends: list[str], *, seq_len: int, batch: int,
               seed: int, dtype: str, progress: Callable[[str], None]) -> list[Row]:  # fmt: skip
    """The pair on every backend that has it, each pair of backends compared (and every output finite)."""
    runnable = pair_backends(backends)
    if len(runnable) < 2:
        raise InputError(f"--model: an encoder-decoder pair runs in {' and '.join(runnable) or 'no backend here'} "
                         "only; comparing it needs torch and flax installed")  # fmt: skip
    if dtype != "float32":
        raise InputError(f"--dtype: expected float32 for an encoder-decoder pair, got {dtype!r}")
    inputs = pair_inputs(config, seq_len, batch, seed)
    results, rows = {}, []
    for name in runnable:
        progress(f"{PAIR}: running {name}")
        module = load_backend(name)
        model = module.BigBirdEncoderDecoderModel.from_pretrained(directory)
        out = model(**{k: module.asarray(v) for k, v in inputs.items()}) if name == "flax" else _torch_run(
            module, model, inputs)  # fmt: skip
        results[name] = flatten_output(out)
        rows += finite_rows(PAIR, name, results[name])
    for left, right in itertools.combinations(runnable, 2):
        c, field = worst_field(results[right], results[left], dtype)
        rows.append(Row(PAIR, left, right, field, c.max_abs, c.rel, c.tol, c.ok))
    return rows


def _torch_run(module, model, inputs):
    import torch

    with torch.no_grad():
        return model.eval()(**{k: module.asarray(v) for k, v in inputs.items()})
