"""PyTorch attention: full attention and block-sparse attention over the core's layout.

Same function names and contract as ``bigbird_core.attention`` and ``bigbird_flax.attention``:
``block_sparse_attention(q, k, v, mask, layout, *, layer, kernel, output_attentions)``. Shapes: ``q, k, v``
are ``(batch, heads, L, d)``; ``mask`` is the padded ``(batch, L)`` attention mask; ``layout`` is the core's
layout on this device (:class:`bigbird_torch.layouts.LayoutTensors`); ``kernel`` one of the core's kernel
names (:mod:`bigbird_core.kernels`). Scores are upcast to float32 for masking and softmax when the compute
dtype is bf16/fp16 (fp32 results are unchanged).
"""

from __future__ import annotations

import math

import torch
from bigbird_core.attention import full_layout_attention
from bigbird_core.layout import BLOCK_SPARSE_PENALTY

from .flex import (
    _autograd,
    _global_rows,
    flex_available,
    flex_block_sparse_attention,
    flex_kernel_options,
    softmax_dtype,
)
from .layouts import LayoutTensors


def full_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, additive_mask: torch.Tensor | None,
    head_mask: torch.Tensor | None = None, dropout: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Softmax attention over all keys; ``additive_mask`` is built in the softmax dtype.

    Returns:
        context ``(batch, heads, Lq, d)`` and probabilities ``(batch, heads, Lq, Lk)``.
    """
    sdt = softmax_dtype(q.dtype)
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
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, *, layer: int,
    kernel: str = "auto", output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """BigBird ITC attention: global rows over all keys, middle rows over their slots in one softmax.

    Without ``output_attentions`` this runs ``kernel`` (the gather kernel, or FlexAttention: see
    :mod:`bigbird_core.kernels`); with it, the full layout so that the dense probabilities are exact.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    if output_attentions:
        return _block_sparse_with_probs(q, k, v, mask, layout, layer)
    if _use_flex(q, k, layout.layout.block_size, kernel):
        tiles = kernel != "flex-bias"
        return flex_block_sparse_attention(q, k, v, mask, layout, layer, repeated_tiles=tiles), None
    return fast_block_sparse_attention(q, k, v, mask, layout, layer), None


def _use_flex(q: torch.Tensor, k: torch.Tensor, block_size: int, kernel: str) -> bool:
    """FlexAttention for "auto" and the flex kernels on CUDA (where the block size admits its tiles); on
    the CPU only when asked for and without autograd (its eager reference has no backward)."""
    if kernel == "gather":
        return False
    if q.is_cuda:
        return flex_available() and flex_kernel_options(block_size) is not None
    return kernel in ("flex", "flex-bias") and not _autograd(q, k)


def _global_rows_in_chunks(q, k, v, key_bias: torch.Tensor, b: int, scale: float) -> torch.Tensor:
    """:func:`_global_rows` for CPU inference: (batch, head) items in chunks whose scores stay in cache."""
    batch, heads, length, d = k.shape
    g_q = torch.cat([q[:, :, :b], q[:, :, -b:]], dim=2).view(batch * heads, 2 * b, d)
    k_t, v_i = k.view(batch * heads, length, d).transpose(1, 2), v.view(batch * heads, length, d)
    bias = key_bias[:, None, None, :].expand(batch, heads, 1, length).reshape(batch * heads, 1, length)
    out = torch.empty(batch * heads, 2 * b, d, dtype=v.dtype)
    chunk = max(1, _CHUNK_BYTES // (2 * b * length * key_bias.element_size()))
    for s0 in range(0, batch * heads, chunk):
        part = slice(s0, s0 + chunk)
        if key_bias.dtype == q.dtype:
            scores = torch.baddbmm(bias[part], g_q[part], k_t[part], alpha=scale)  # (chunk, 2b, L)
        else:
            scores = torch.add(bias[part], torch.bmm(g_q[part], k_t[part]).to(key_bias.dtype), alpha=scale)
        torch.bmm(torch.softmax(scores, dim=-1).to(v.dtype), v_i[part], out=out[part])
    return out.view(batch, heads, 2 * b, d)


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
    sdt = softmax_dtype(q.dtype)
    scale = 1.0 / math.sqrt(d)
    k, v = k.contiguous(), v.contiguous()  # rows of blocks are views of these
    key_bias = (1.0 - mask.to(sdt)) * BLOCK_SPARSE_PENALTY  # (B, L)
    # the chunk loops run eagerly only: a traced program (torch.export, compile) keeps the batch symbolic
    cpu_inference = q.device.type == "cpu" and not _autograd(q, k) and not torch.compiler.is_compiling()
    g_ctx = (_global_rows_in_chunks if cpu_inference else _global_rows)(
        q, k, v, key_bias, b, scale
    )  # (B, H, 2b, d)

    # middle query blocks against their merged slots
    blocks, slot_bias = layout.compact
    idx = blocks[layer]  # (H, n-2, S')
    rows, slots = n - 2, idx.shape[-1]
    items = torch.arange(batch * heads, device=q.device).view(batch, heads, 1, 1) * n
    flat = (items + idx[None]).view(-1, slots)  # (B*H*(n-2), S'): rows of k viewed as (B*H*n, b, d)
    bias = key_bias.view(batch, n, b)[:, idx] + slot_bias[layer][None, :, :, :, None]  # (B, H, n-2, S', b)
    bias = bias.view(-1, 1, slots * b)  # (B*H*(n-2), 1, S'b)
    m_q = q[:, :, b:-b].reshape(-1, b, d)  # (B*H*(n-2), b, d)
    k_rows, v_rows = k.view(-1, b, d), v.view(-1, b, d)  # (B*H*n, b, d)
    keep = mask[:, None, :, None].to(v.dtype)  # zeroes the rows of padded queries
    if not cpu_inference:
        m_ctx = _middle_rows(m_q, k_rows, v_rows, flat, bias, sdt, scale)  # (B*H*(n-2), b, d)
        ctx = torch.cat([g_ctx[:, :, :b], m_ctx.view(batch, heads, rows * b, d), g_ctx[:, :, b:]], dim=2)
        return ctx * keep  # (B, H, L, d)

    # inference on CPU: cache-sized chunks of rows keep scores and probabilities in L2, every result is
    # written once into its place
    chunk = max(1, _CHUNK_BYTES // (b * slots * b * key_bias.element_size()))
    m_ctx = torch.empty(m_q.shape, dtype=v.dtype)
    for s0 in range(0, m_q.shape[0], chunk):
        part = slice(s0, s0 + chunk)
        _middle_rows(m_q[part], k_rows, v_rows, flat[part], bias[part], sdt, scale, out=m_ctx[part])
    out = torch.empty(batch, heads, length, d, dtype=v.dtype)
    torch.mul(g_ctx[:, :, :b], keep[:, :, :b], out=out[:, :, :b])
    torch.mul(m_ctx.view(batch, heads, rows * b, d), keep[:, :, b:-b], out=out[:, :, b:-b])
    torch.mul(g_ctx[:, :, b:], keep[:, :, -b:], out=out[:, :, -b:])
    return out


_CHUNK_BYTES = 1 << 21  # scores per chunk of rows in CPU inference


def _middle_rows(m_q, k_rows, v_rows, flat, bias, sdt, scale: float, out=None):
    """Attention of a set of middle rows over their gathered slots: ``(rows, b, d)``."""
    rows, slots = flat.shape
    b, d = k_rows.shape[1:]
    k_g = k_rows.index_select(0, flat.reshape(-1)).view(rows, slots * b, d)  # (rows, S'b, d)
    v_g = v_rows.index_select(0, flat.reshape(-1)).view(rows, slots * b, d)
    if sdt == m_q.dtype:
        scores = torch.baddbmm(bias, m_q, k_g.transpose(1, 2), alpha=scale)  # (rows, b, S'b)
    else:
        scores = torch.bmm(m_q, k_g.transpose(1, 2)).to(sdt) * scale + bias
    return torch.bmm(torch.softmax(scores, dim=-1).to(v_rows.dtype), v_g, out=out)


def _block_sparse_with_probs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The full-layout path (the core's, array API) with torch's softmax: the exact dense probabilities."""
    return full_layout_attention(q, k, v, mask, layout.key_blocks[layer], layout.layout.block_size,
                                 softmax=_softmax_last)  # fmt: skip


def _softmax_last(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)
