"""PyTorch attention kernels: full attention and block-sparse attention over the core's layout.

Same function names as ``bigbird_core.attention``. Shapes: ``q, k, v`` are ``(batch, heads, L, d)``;
``mask`` is the padded ``(batch, L)`` attention mask. Scores are upcast to float32 for masking and
softmax when the compute dtype is bf16/fp16 (fp32 results are unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import torch
from bigbird_core.layout import BLOCK_SPARSE_PENALTY, BlockLayout, dense_winner


@dataclass(frozen=True)
class LayoutTensors:
    """The core's :class:`BlockLayout` as tensors on one device (built once per plan and device)."""

    layout: BlockLayout
    key_blocks: torch.Tensor  # (layers, heads, n-2, S) int64
    slot_valid: torch.Tensor  # (n-2, S) bool
    query_masked: torch.Tensor  # (n-2, S) bool

    @classmethod
    def build(cls, layout: BlockLayout, device: torch.device) -> LayoutTensors:
        return cls(
            layout,
            torch.as_tensor(np.asarray(layout.key_blocks, np.int64), device=device),
            torch.as_tensor(np.array(layout.slot_valid), device=device),
            torch.as_tensor(np.array(layout.query_masked), device=device),
        )

    def winner(self, layer: int) -> torch.Tensor:
        return torch.as_tensor(
            dense_winner(self.layout, layer).astype(np.int64), device=self.key_blocks.device
        )


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def full_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, additive_mask: torch.Tensor | None,
    head_mask: torch.Tensor | None = None, dropout: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Softmax attention over all keys; ``additive_mask`` is built in the softmax dtype.

    Returns:
        context ``(batch, heads, Lq, d)`` and probabilities ``(batch, heads, Lq, Lk)``.
    """
    sdt = _softmax_dtype(q.dtype)
    scores = torch.matmul(q, k.transpose(-1, -2)).to(sdt) / math.sqrt(q.shape[-1])  # (B, H, Lq, Lk)
    if additive_mask is not None:
        scores = scores + additive_mask
    probs = torch.softmax(scores, dim=-1).to(q.dtype)
    if dropout is not None:
        probs = dropout(probs)
    if head_mask is not None:
        probs = probs * head_mask
    return torch.matmul(probs, v), probs


def block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """BigBird ITC attention: global rows over all keys, middle rows over their slots in one softmax.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    batch, heads, length, d = q.shape
    n, b = layout.layout.num_blocks, layout.layout.block_size
    sdt = _softmax_dtype(q.dtype)
    scale = 1.0 / math.sqrt(d)
    mask = mask.to(sdt)
    qb = q.view(batch, heads, n, b, d)
    kb = k.view(batch, heads, n, b, d)
    vb = v.view(batch, heads, n, b, d)
    mask_b = mask.view(batch, n, b)

    # global query blocks 0 and n-1: every key, masked by the key's padding only
    g_q = torch.stack([qb[:, :, 0], qb[:, :, -1]], dim=2)  # (B, H, 2, b, d)
    g_scores = torch.einsum("bhgqd,bhkd->bhgqk", g_q, k).to(sdt) * scale  # (B, H, 2, b, L)
    g_scores = g_scores + (1.0 - mask)[:, None, None, None, :] * BLOCK_SPARSE_PENALTY
    g_probs = torch.softmax(g_scores, dim=-1)
    g_ctx = torch.einsum("bhgqk,bhkd->bhgqd", g_probs.to(v.dtype), v)  # (B, H, 2, b, d)

    # middle query blocks 1..n-2: gather the key blocks of every slot
    idx = layout.key_blocks[layer]  # (H, n-2, S)
    h_idx = torch.arange(heads, device=q.device)[:, None, None]
    k_g = kb[:, h_idx, idx]  # (B, H, n-2, S, b, d)
    v_g = vb[:, h_idx, idx]  # (B, H, n-2, S, b, d)
    m_scores = (
        torch.einsum("bhjqd,bhjskd->bhjqsk", qb[:, :, 1:-1], k_g).to(sdt) * scale
    )  # (B, H, n-2, b, S, b)
    key_mask = mask_b[:, idx]  # (B, H, n-2, S, b)
    query_mask = torch.where(layout.query_masked[None, :, None, :, None], mask_b[:, 1:-1, :, None, None], 1.0)
    full_mask = key_mask[:, :, :, None, :, :] * query_mask[:, None]  # (B, H, n-2, b, S, b)
    m_scores = m_scores + (1.0 - full_mask) * BLOCK_SPARSE_PENALTY
    m_scores = m_scores.masked_fill(~layout.slot_valid[None, None, :, None, :, None], float("-inf"))
    rows, slots = n - 2, idx.shape[-1]
    m_probs = torch.softmax(m_scores.reshape(batch, heads, rows, b, slots * b), dim=-1)
    m_probs = m_probs.view(batch, heads, rows, b, slots, b)
    m_ctx = torch.einsum("bhjqsk,bhjskd->bhjqd", m_probs.to(v.dtype), v_g)  # (B, H, n-2, b, d)

    ctx = torch.cat([g_ctx[:, :, :1], m_ctx, g_ctx[:, :, 1:]], dim=2).reshape(batch, heads, length, d)
    ctx = ctx * mask[:, None, :, None].to(ctx.dtype)  # zero the rows of padded queries

    if not output_attentions:
        return ctx, None
    winner = layout.winner(layer)  # (H, n-2, n)
    index = winner.clamp(min=0)[None, :, :, None, :, None].expand(batch, heads, rows, b, n, b)
    picked = (
        torch.gather(m_probs, 4, index) * (winner >= 0)[None, :, :, None, :, None]
    )  # (B, H, n-2, b, n, b)
    probs = torch.cat([
        g_probs[:, :, 0].reshape(batch, heads, 1, b, n, b), picked, g_probs[:, :, 1].reshape(batch, heads, 1, b, n, b),
    ], dim=2)  # fmt: skip
    return ctx, probs.reshape(batch, heads, length, length).to(q.dtype)
