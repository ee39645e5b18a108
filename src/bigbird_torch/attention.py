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
from bigbird_core.layout import BLOCK_SPARSE_PENALTY, BlockLayout, compact_slots, dense_winner


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

    @property
    def compact(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The core's merged slots: key blocks ``(layers, heads, n-2, S')`` and slot bias (float32)."""
        if "_compact" not in self.__dict__:
            c = compact_slots(self.layout)
            device = self.key_blocks.device
            blocks = torch.as_tensor(np.asarray(c.key_blocks, np.int64), device=device)
            bias = torch.as_tensor(np.asarray(c.slot_bias, np.float32), device=device)
            object.__setattr__(self, "_compact", (blocks, bias))
        return self.__dict__["_compact"]


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

    Without ``output_attentions`` this runs the fast path (merged slots, additive biases, fused
    ``baddbmm``); with it, the full layout so that the dense probabilities are exact.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    if not output_attentions:
        return fast_block_sparse_attention(q, k, v, mask, layout, layer), None
    return _block_sparse_with_probs(q, k, v, mask, layout, layer)


def fast_block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int
) -> torch.Tensor:
    """Block-sparse attention without dense probabilities: no masking multiplies over gathered blocks,
    no concatenated key copies per query group, no dense tensors; memory linear in the length.

    Returns:
        context ``(batch, heads, L, d)``, padded query rows zeroed.
    """
    batch, heads, length, d = q.shape
    n, b = layout.layout.num_blocks, layout.layout.block_size
    sdt = _softmax_dtype(q.dtype)
    key_bias = (1.0 - mask.to(sdt)) * BLOCK_SPARSE_PENALTY  # (B, L)
    qs = q * (1.0 / math.sqrt(d))

    # global query blocks 0 and n-1 against every key
    g_q = torch.cat([qs[:, :, :b], qs[:, :, -b:]], dim=2)  # (B, H, 2b, d)
    g_scores = torch.matmul(g_q, k.transpose(-1, -2)).to(sdt) + key_bias[:, None, None, :]  # (B, H, 2b, L)
    g_ctx = torch.matmul(torch.softmax(g_scores, dim=-1).to(v.dtype), v)  # (B, H, 2b, d)

    # middle query blocks against their merged slots
    blocks, slot_bias = layout.compact
    idx = blocks[layer]  # (H, n-2, S')
    rows, slots = n - 2, idx.shape[-1]
    items = torch.arange(batch * heads, device=q.device).view(batch, heads, 1, 1) * n
    flat = (items + idx[None]).view(-1, slots)  # (B*H*(n-2), S'): rows of k viewed as (B*H*n, b, d)
    bias = key_bias.view(batch, n, b)[:, idx] + slot_bias[layer][None, :, :, :, None]  # (B, H, n-2, S', b)
    bias = bias.view(-1, 1, slots * b)  # (B*H*(n-2), 1, S'b)
    m_q = qs[:, :, b:-b].reshape(-1, b, d)  # (B*H*(n-2), b, d)
    k_rows, v_rows = k.reshape(-1, b, d), v.reshape(-1, b, d)  # (B*H*n, b, d)
    chunk = m_q.shape[0]
    if q.device.type == "cpu" and not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)):
        # inference on CPU: cache-sized chunks of rows keep scores and probabilities in L2
        chunk = max(1, _CHUNK_BYTES // (b * slots * b * q.element_size()))
    pieces = [
        _middle_rows(m_q[s0 : s0 + chunk], k_rows, v_rows, flat[s0 : s0 + chunk], bias[s0 : s0 + chunk], sdt)
        for s0 in range(0, m_q.shape[0], chunk)
    ]
    m_ctx = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)  # (B*H*(n-2), b, d)

    ctx = torch.cat([g_ctx[:, :, :b], m_ctx.view(batch, heads, rows * b, d), g_ctx[:, :, b:]], dim=2)
    return ctx * mask[:, None, :, None].to(ctx.dtype)  # (B, H, L, d)


_CHUNK_BYTES = 1 << 21  # scores per chunk of middle rows in CPU inference


def _middle_rows(m_q, k_rows, v_rows, flat, bias, sdt):
    """Attention of a set of middle rows over their gathered slots: ``(rows, b, d)``."""
    rows, slots = flat.shape
    b, d = k_rows.shape[1:]
    k_g = k_rows.index_select(0, flat.reshape(-1)).view(rows, slots * b, d)  # (rows, S'b, d)
    v_g = v_rows.index_select(0, flat.reshape(-1)).view(rows, slots * b, d)
    if sdt == m_q.dtype:
        scores = torch.baddbmm(bias, m_q, k_g.transpose(1, 2))  # (rows, b, S'b)
    else:
        scores = torch.bmm(m_q, k_g.transpose(1, 2)).to(sdt) + bias
    return torch.bmm(torch.softmax(scores, dim=-1).to(v_rows.dtype), v_g)


def _block_sparse_with_probs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-layout path: the exact dense probabilities for ``output_attentions``."""
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

    winner = layout.winner(layer)  # (H, n-2, n)
    index = winner.clamp(min=0)[None, :, :, None, :, None].expand(batch, heads, rows, b, n, b)
    picked = (
        torch.gather(m_probs, 4, index) * (winner >= 0)[None, :, :, None, :, None]
    )  # (B, H, n-2, b, n, b)
    probs = torch.cat([
        g_probs[:, :, 0].reshape(batch, heads, 1, b, n, b), picked, g_probs[:, :, 1].reshape(batch, heads, 1, b, n, b),
    ], dim=2)  # fmt: skip
    return ctx, probs.reshape(batch, heads, length, length).to(q.dtype)
