"""The per-call choice of attention type and padding (the call recipe in ``recipe.py`` applies them)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import BigBirdConfig

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

    Block-sparse needs ``seq_len >= config.min_block_sparse_length`` (judged on the unpadded length, as
    transformers does); otherwise the call uses full attention. Decoders (``is_decoder``) and calls
    with a key/value cache always use full attention.

    Example:
        >>> plan_call(BigBirdConfig(), 1000)
        CallPlan(seq_len=1000, attention_type='block_sparse', pad_len=24, block_size=64)
    """
    b = config.block_size
    sparse = (
        config.attention_type == "block_sparse"
        and not config.is_decoder
        and past_len == 0
        and seq_len >= config.min_block_sparse_length
    )
    if not sparse:
        return CallPlan(seq_len, "original_full", 0, b)
    return CallPlan(seq_len, "block_sparse", (b - seq_len % b) % b, b)


def pad_values(config: BigBirdConfig) -> dict[str, int]:
    """The value each input is padded with: ids and given positions with pad_token_id, mask and types 0."""
    return {"input_ids": config.pad_token_id, "position_ids": config.pad_token_id,
            "attention_mask": 0, "token_type_ids": 0}  # fmt: skip
