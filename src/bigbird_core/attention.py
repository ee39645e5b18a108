"""NumPy reference attention: full attention and block-sparse attention over a :class:`BlockLayout`.

Shapes: ``q, k, v`` are ``(batch, heads, L, d)``; ``mask`` is the padded ``(batch, L)`` attention mask
(1 = attend, 0 = padding).
"""

from __future__ import annotations

import numpy as np

from .layout import BLOCK_SPARSE_PENALTY, BlockLayout, dense_winner
from .numerics import softmax


def full_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, additive_mask: np.ndarray | None,
    head_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Softmax attention over all keys.

    Args:
        q, k, v: ``(batch, heads, Lq, d)``, ``(batch, heads, Lk, d)``.
        additive_mask: broadcastable to ``(batch, heads, Lq, Lk)``, added to the scaled scores.
        head_mask: ``(batch or 1, heads, 1, 1)`` multipliers of the probabilities, or None.

    Returns:
        context ``(batch, heads, Lq, d)`` and probabilities ``(batch, heads, Lq, Lk)``.
    """
    scores = (q @ np.swapaxes(k, -1, -2)) / np.sqrt(np.asarray(q.shape[-1], q.dtype))  # (B, H, Lq, Lk)
    if additive_mask is not None:
        scores = scores + additive_mask
    probs = softmax(scores, axis=-1)
    if head_mask is not None:
        probs = probs * head_mask
    return probs @ v, probs


def block_sparse_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray, layout: BlockLayout, *, layer: int,
    kernel: str = "auto", output_attentions: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """BigBird ITC attention: global rows over all keys, middle rows over their slots in one softmax.

    The contract of every backend's ``block_sparse_attention`` (``layout``: the core's layout, here as it is;
    ``kernel``: a name of :mod:`bigbird_core.kernels`; the reference has one kernel, the full layout).

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    batch, heads, length, d = q.shape
    n, b = layout.num_blocks, layout.block_size
    dtype = q.dtype
    scale = np.asarray(1.0 / np.sqrt(d), dtype)
    penalty = np.asarray(BLOCK_SPARSE_PENALTY, dtype)
    mask = mask.astype(dtype)
    qb = q.reshape(batch, heads, n, b, d)
    kb = k.reshape(batch, heads, n, b, d)
    vb = v.reshape(batch, heads, n, b, d)
    mask_b = mask.reshape(batch, n, b)

    # global query blocks 0 and n-1: every key, masked by the key's padding only
    g_scores = np.einsum("bhgqd,bhkd->bhgqk", qb[:, :, [0, n - 1]], k) * scale  # (B, H, 2, b, L)
    g_scores = g_scores + (1.0 - mask)[:, None, None, None, :] * penalty
    g_probs = softmax(g_scores, axis=-1)
    g_ctx = np.einsum("bhgqk,bhkd->bhgqd", g_probs, v)  # (B, H, 2, b, d)

    # middle query blocks 1..n-2: gather the key blocks of every slot
    idx = layout.key_blocks[layer]  # (H, n-2, S)
    h_idx = np.arange(heads)[:, None, None]
    k_g = kb[:, h_idx, idx]  # (B, H, n-2, S, b, d)
    v_g = vb[:, h_idx, idx]  # (B, H, n-2, S, b, d)
    m_scores = np.einsum("bhjqd,bhjskd->bhjqsk", qb[:, :, 1:-1], k_g) * scale  # (B, H, n-2, b, S, b)
    key_mask = mask_b[:, idx]  # (B, H, n-2, S, b)
    query_mask = mask_b[:, 1:-1]  # (B, n-2, b)
    qm = np.where(layout.query_masked[None, :, None, :, None], query_mask[:, :, :, None, None], 1.0)
    full_mask = key_mask[:, :, :, None, :, :] * qm[:, None].astype(dtype)  # (B, H, n-2, b, S, b)
    m_scores = m_scores + (1.0 - full_mask) * penalty
    m_scores = np.where(layout.slot_valid[None, None, :, None, :, None], m_scores, -np.inf)
    rows, slots = n - 2, layout.num_slots
    m_probs = softmax(m_scores.reshape(batch, heads, rows, b, slots * b), axis=-1)
    m_probs = m_probs.reshape(batch, heads, rows, b, slots, b)
    m_ctx = np.einsum("bhjqsk,bhjskd->bhjqd", m_probs, v_g)  # (B, H, n-2, b, d)

    ctx = np.concatenate([g_ctx[:, :, :1], m_ctx, g_ctx[:, :, 1:]], axis=2).reshape(batch, heads, length, d)
    ctx = ctx * mask[:, None, :, None]  # zero the rows of padded queries

    if not output_attentions:
        return ctx, None
    probs = np.zeros((batch, heads, n, b, n, b), dtype)
    probs[:, :, 0] = g_probs[:, :, 0].reshape(batch, heads, b, n, b)
    probs[:, :, -1] = g_probs[:, :, 1].reshape(batch, heads, b, n, b)
    winner = dense_winner(layout, layer)  # (H, n-2, n)
    picked = np.take_along_axis(
        m_probs, np.maximum(winner, 0)[None, :, :, None, :, None], axis=4
    )  # (B, H, n-2, b, n, b)
    probs[:, :, 1:-1] = picked * (winner >= 0)[None, :, :, None, :, None]
    return ctx, probs.reshape(batch, heads, length, length)
