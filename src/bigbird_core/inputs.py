"""Rules about forward-call inputs that every backend follows: validation, the per-call choice of
attention type, padding to the block size, and the QA question mask.

The functions that compute on arrays take ``xp``, an array namespace (``numpy``, ``jax.numpy`` or
the torch adapter of ``bigbird_torch``), so the rule is written once and run by every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import BigBirdConfig
from .errors import InputError, fail

QA_LOGITS_PENALTY = 1e6  # subtracted from QA logits of question tokens (except position 0)


@dataclass(frozen=True)
class CallPlan:
    """What one forward call computes: attention type and padding (decided per call, never stored).

    Attributes:
        seq_len: the length the caller gave.
        attention_type: "block_sparse" or "original_full" for this call.
        pad_len: tokens appended so the length is a multiple of block_size (block-sparse only).
        block_size: the config's block size.
    """

    seq_len: int
    attention_type: str
    pad_len: int
    block_size: int

    @property
    def padded_len(self) -> int:
        return self.seq_len + self.pad_len

    @property
    def num_blocks(self) -> int:
        return self.padded_len // self.block_size

    @property
    def block_sparse(self) -> bool:
        return self.attention_type == "block_sparse"


def plan_call(config: BigBirdConfig, seq_len: int, *, past_len: int = 0) -> CallPlan:
    """Decide attention type and padding for a call on ``seq_len`` tokens.

    Block-sparse needs ``seq_len > (5 + 2r) * block_size`` (judged on the unpadded length, as
    transformers does); otherwise the call uses full attention. Decoders (``is_decoder``) and calls
    with a key/value cache always use full attention.

    Example:
        >>> plan_call(BigBirdConfig(), 1000)
        CallPlan(seq_len=1000, attention_type='block_sparse', pad_len=24, block_size=64)
    """
    b, r = config.block_size, config.num_random_blocks
    sparse = (
        config.attention_type == "block_sparse"
        and not config.is_decoder
        and past_len == 0
        and seq_len > (5 + 2 * r) * b
    )
    if not sparse:
        return CallPlan(seq_len, "original_full", 0, b)
    return CallPlan(seq_len, "block_sparse", (b - seq_len % b) % b, b)


def pad_values(config: BigBirdConfig) -> dict[str, int]:
    """The value each input is padded with: ids and given positions with pad_token_id, mask and types 0."""
    return {"input_ids": config.pad_token_id, "position_ids": config.pad_token_id,
            "attention_mask": 0, "token_type_ids": 0}  # fmt: skip


def dtype_kind(x: Any) -> str:
    """'b' (bool), 'i' (integer), 'f' (floating) or '?' for a NumPy, torch or JAX array."""
    name = str(getattr(x, "dtype", "")).replace("torch.", "")
    if name == "bool":
        return "b"
    if "int" in name:
        return "i"
    if "float" in name:
        return "f"
    return "?"


def _min_max(x: Any) -> tuple[int, int] | None:
    """Smallest and largest value of a concrete array; None for a traced one (jit), which is not checked."""
    if hasattr(x, "detach"):  # torch, on any device
        return int(x.min()), int(x.max())
    try:
        arr = np.asarray(x)
    except Exception:  # a JAX tracer refuses conversion
        return None
    return int(arr.min()), int(arr.max())


def _check_ids(name: str, x: Any, shape: tuple[int, ...], high: int, concrete: bool) -> None:
    if dtype_kind(x) != "i":
        raise fail(InputError, name, "an integer array", x)
    if tuple(x.shape) != shape:
        raise fail(InputError, name, f"shape {shape}", x)
    if concrete and all(int(s) > 0 for s in x.shape):
        bounds = _min_max(x)
        if bounds is not None and (bounds[0] < 0 or bounds[1] >= high):
            raise fail(InputError, name, f"values in [0, {high})", f"values in [{bounds[0]}, {bounds[1]}]")


def check_inputs(
    config: BigBirdConfig, *, input_ids: Any = None, inputs_embeds: Any = None, attention_mask: Any = None,
    token_type_ids: Any = None, position_ids: Any = None, past_len: int = 0, concrete: bool = True,
    num_choices_axis: bool = False,
) -> tuple[int, int]:  # fmt: skip
    """Validate the inputs of a forward call; return ``(batch, seq_len)``.

    Args:
        config: the model config.
        input_ids / inputs_embeds: exactly one of them.
        attention_mask, token_type_ids, position_ids: optional, same ``(batch, seq_len)`` shape.
        past_len: tokens already in a key/value cache (positions continue after them).
        concrete: False under tracing (jit): value checks are skipped, shape checks stay.
        num_choices_axis: multiple choice inputs carry an extra choices axis ``(batch, choices, seq)``.

    Raises:
        InputError naming the argument, the expected and the given value.
    """
    rank = 3 if num_choices_axis else 2
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("input_ids / inputs_embeds: expected exactly one of them, got "
                         + ("both" if input_ids is not None else "neither"))  # fmt: skip
    if input_ids is not None:
        if len(getattr(input_ids, "shape", ())) != rank:
            raise fail(InputError, "input_ids", f"a {rank}-D integer array", input_ids)
        shape = tuple(input_ids.shape)
        _check_ids("input_ids", input_ids, shape, config.vocab_size, concrete)
    else:
        if (
            len(getattr(inputs_embeds, "shape", ())) != rank + 1
            or inputs_embeds.shape[-1] != config.hidden_size
        ):
            raise fail(InputError, "inputs_embeds", f"a {rank + 1}-D float array (..., {config.hidden_size})",
                       inputs_embeds)  # fmt: skip
        if dtype_kind(inputs_embeds) != "f":
            raise fail(InputError, "inputs_embeds", "a floating-point array", inputs_embeds)
        shape = tuple(inputs_embeds.shape[:-1])
    if shape[-1] == 0 or any(s == 0 for s in shape):
        raise fail(InputError, "input_ids", "a non-empty batch of non-empty sequences", f"shape {shape}")
    total = shape[-1] + past_len
    if total > config.max_position_embeddings:
        raise fail(InputError, "input_ids", f"at most max_position_embeddings = "
                   f"{config.max_position_embeddings} tokens", f"{total} tokens")  # fmt: skip
    if attention_mask is not None:
        mask_shape = shape[:-1] + (total,)
        if tuple(attention_mask.shape) != mask_shape or dtype_kind(attention_mask) == "?":
            raise fail(InputError, "attention_mask", f"a 0/1 array of shape {mask_shape}", attention_mask)
    if token_type_ids is not None:
        _check_ids("token_type_ids", token_type_ids, shape, config.type_vocab_size, concrete)
    if position_ids is not None:
        _check_ids("position_ids", position_ids, shape, config.max_position_embeddings, concrete)
    return shape[0], shape[-1]


def default_question_lengths(xp: Any, input_ids: Any, sep_token_id: int) -> Any:
    """``argmax(input_ids == sep) + 1`` per row, shape ``(batch, 1)``: the question ends at the first [SEP]."""
    return xp.argmax(xp.where(input_ids == sep_token_id, 1, 0), axis=-1)[:, None] + 1


def question_masks(xp: Any, question_lengths: Any, seq_len: int) -> tuple[Any, Any]:
    """The QA rule: ``(token_type_ids, logits_mask)``, both ``(batch, seq_len)``.

    ``token_type_ids`` is ``1 - question_mask`` (used only when the caller gave none); ``logits_mask``
    is the question mask with position 0 cleared: True where ``QA_LOGITS_PENALTY`` is subtracted.
    """
    positions = xp.arange(seq_len)[None, :]  # (1, L)
    question = positions < xp.reshape(question_lengths, (-1, 1))  # (B, L)
    token_type_ids = xp.where(question, 0, 1)
    logits_mask = question & (positions > 0)
    return token_type_ids, logits_mask
