"""NumPy reference attention: full attention and block-sparse attention over a :class:`BlockLayout`, and the
full-layout block-sparse path every backend shares (:func:`full_layout_attention`, array API).

Shapes: ``q, k, v`` are ``(batch, heads, L, d)``; ``mask`` is the padded ``(batch, L)`` attention mask
(1 = attend, 0 = padding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .arrays import device, namespace, softmax_dtype
from .layout import BLOCK_SPARSE_PENALTY, NUM_STATIC_SLOTS, BlockLayout, static_slots, winner_slots
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
    return full_layout_attention(q, k, v, mask, layout.key_blocks[layer], layout.block_size,
                                 softmax=softmax, output_attentions=output_attentions)  # fmt: skip


def full_layout_attention(
    q: Any, k: Any, v: Any, mask: Any, key_blocks: Any, block_size: int, *, softmax: Callable[[Any], Any],
    output_attentions: bool = True,
) -> tuple[Any, Any]:  # fmt: skip
    """Block-sparse attention over the full layout, every slot of every row (the reference path, and every
    backend's path for ``output_attentions``): written once against the array API, so NumPy, torch (autograd)
    and JAX (under jit, with a traced plan too) run the same algorithm with their own ``softmax``.

    Args:
        q, k, v: ``(batch, heads, L, d)``.
        mask: ``(batch, L)`` attention mask of the padded sequence.
        key_blocks: ``(heads, n-2, S)`` key block of every slot of this layer (``bigbird_core.layout``).
        block_size: tokens per block.
        softmax: the backend's softmax over the last axis.
        output_attentions: also build the dense probabilities.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense probabilities
        ``(batch, heads, L, L)`` (else None).
    """
    xp, dev = namespace(q), device(q)
    batch, heads, length, d = q.shape
    b = block_size
    n = length // b
    _, valid, masked = static_slots(n, key_blocks.shape[-1] - NUM_STATIC_SLOTS)
    slot_valid = xp.asarray(valid, device=dev)  # (n-2, S)
    query_masked = xp.asarray(masked, device=dev)  # (n-2, S)
    sdt = softmax_dtype(xp, q.dtype)
    scale = 1.0 / math.sqrt(d)
    mask = xp.astype(mask, sdt)
    qb = xp.reshape(q, (batch, heads, n, b, d))
    kb = xp.reshape(k, (batch, heads, n, b, d))
    vb = xp.reshape(v, (batch, heads, n, b, d))
    mask_b = xp.reshape(mask, (batch, n, b))

    # global query blocks 0 and n-1: every key, masked by the key's padding only
    # (B, H, 2, b, d), laid out with the two blocks outermost (as NumPy's qb[:, :, [0, n - 1]] is): einsum's
    # summation order follows the layout, and this one keeps the reference's float32 results to the bit
    g_q = xp.permute_dims(xp.stack([qb[:, :, 0], qb[:, :, -1]], axis=0), (1, 2, 0, 3, 4))
    g_scores = xp.astype(xp.einsum("bhgqd,bhkd->bhgqk", g_q, k), sdt) * scale  # (B, H, 2, b, L)
    g_scores = g_scores + (1.0 - mask)[:, None, None, None, :] * BLOCK_SPARSE_PENALTY
    g_probs = softmax(g_scores)
    g_ctx = xp.einsum("bhgqk,bhkd->bhgqd", xp.astype(g_probs, v.dtype), v)  # (B, H, 2, b, d)

    # middle query blocks 1..n-2: gather the key blocks of every slot
    h_idx = xp.arange(heads, device=dev)[:, None, None]
    k_g = kb[:, h_idx, key_blocks]  # (B, H, n-2, S, b, d)
    v_g = vb[:, h_idx, key_blocks]  # (B, H, n-2, S, b, d)
    m_scores = xp.astype(xp.einsum("bhjqd,bhjskd->bhjqsk", qb[:, :, 1:-1], k_g), sdt) * scale  # (B, H, n-2, b, S, b)
    key_mask = mask_b[:, key_blocks]  # (B, H, n-2, S, b)
    one = xp.asarray(1.0, dtype=sdt, device=dev)
    query_mask = xp.where(query_masked[None, :, None, :, None], mask_b[:, 1:-1, :, None, None], one)  # (B, n-2, b, S, 1)
    full_mask = key_mask[:, :, :, None, :, :] * query_mask[:, None]  # (B, H, n-2, b, S, b)
    m_scores = m_scores + (1.0 - full_mask) * BLOCK_SPARSE_PENALTY
    minus_inf = xp.asarray(-math.inf, dtype=sdt, device=dev)
    m_scores = xp.where(slot_valid[None, None, :, None, :, None], m_scores, minus_inf)
    rows, slots = n - 2, key_blocks.shape[-1]
    m_probs = softmax(xp.reshape(m_scores, (batch, heads, rows, b, slots * b)))
    m_probs = xp.reshape(m_probs, (batch, heads, rows, b, slots, b))
    m_ctx = xp.einsum("bhjqsk,bhjskd->bhjqd", xp.astype(m_probs, v.dtype), v_g)  # (B, H, n-2, b, d)

    ctx = xp.reshape(xp.concat([g_ctx[:, :, :1], m_ctx, g_ctx[:, :, 1:]], axis=2), (batch, heads, length, d))
    ctx = ctx * xp.astype(mask[:, None, :, None], ctx.dtype)  # zero the rows of padded queries
    if not output_attentions:
        return ctx, None

    winner = winner_slots(key_blocks, valid, n)  # (H, n-2, n): the slot shown at each key block, or -1
    index = xp.clip(winner, 0, None)[None, :, :, None, :, None]
    picked = xp.take_along_axis(m_probs, index, axis=4)  # (B, H, n-2, b, n, b)
    picked = picked * xp.astype(winner >= 0, picked.dtype)[None, :, :, None, :, None]
    probs = xp.concat([
        xp.reshape(g_probs[:, :, 0], (batch, heads, 1, b, n, b)), picked,
        xp.reshape(g_probs[:, :, 1], (batch, heads, 1, b, n, b)),
    ], axis=2)  # fmt: skip
    return ctx, xp.astype(xp.reshape(probs, (batch, heads, length, length)), q.dtype)
