"""JAX attention kernels: full attention and block-sparse attention over the core's layout.

Same function names and contract as ``bigbird_core.attention`` and ``bigbird_torch.attention``. ``key_blocks`` may be a constant (a plan made by the
core) or traced (a plan drawn inside jit, see ``bigbird_flax.plans``); everything else about the layout
is static. Scores are upcast to float32 for masking and softmax in bf16/fp16.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from bigbird_core.attention import full_layout_attention
from bigbird_core.layout import BLOCK_SPARSE_PENALTY


def _softmax_dtype(dtype) -> jnp.dtype:
    return jnp.float32 if dtype in (jnp.float16, jnp.bfloat16) else dtype


def full_attention(q, k, v, additive_mask, head_mask=None, dropout=None):
    """Softmax attention over all keys: context ``(B, H, Lq, d)`` and probabilities ``(B, H, Lq, Lk)``.

    ``dropout`` is a function of the probabilities (or None).
    """
    sdt = _softmax_dtype(q.dtype)
    scores = jnp.einsum("bhqd,bhkd->bhqk", q, k).astype(sdt) / math.sqrt(q.shape[-1])
    if additive_mask is not None:
        scores = scores + additive_mask
    probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    if dropout is not None:
        probs = dropout(probs)
    if head_mask is not None:
        probs = probs * head_mask
    return jnp.einsum("bhqk,bhkd->bhqd", probs, v), probs


_CHUNK_BYTES = 1 << 21  # scores per chunk of middle rows


def fast_block_sparse_attention(q, k, v, mask, key_blocks, slot_bias, block_size: int):
    """Block-sparse attention without dense probabilities, over merged slots (``bigbird_core.layout.
    compact_slots``): additive biases instead of mask multiplies; XLA fuses bias and softmax.

    Args:
        key_blocks: ``(heads, n-2, S')`` merged key blocks; slot_bias: ``(heads, n-2, S')`` log-multiplicity
            or -inf.

    Returns:
        context ``(batch, heads, L, d)``, padded query rows zeroed.
    """
    batch, heads, length, d = q.shape
    b = block_size
    n = length // b
    sdt = _softmax_dtype(q.dtype)
    key_bias = (1.0 - mask.astype(sdt)) * BLOCK_SPARSE_PENALTY  # (B, L)
    qs = q * jnp.asarray(1.0 / math.sqrt(d), q.dtype)
    g_q = jnp.concatenate([qs[:, :, :b], qs[:, :, -b:]], axis=2)  # (B, H, 2b, d)
    g_scores = jnp.einsum("bhqd,bhkd->bhqk", g_q, k).astype(sdt) + key_bias[:, None, None, :]
    g_ctx = jnp.einsum(
        "bhqk,bhkd->bhqd", jax.nn.softmax(g_scores, axis=-1).astype(v.dtype), v
    )  # (B, H, 2b, d)

    # every example gathers from its own keys and values only: under a batch-sharded mesh no device needs
    # another's (no all-gather), and a symbolic batch (jax.export) never enters a shape decision
    rows, slots = n - 2, key_blocks.shape[-1]
    per = heads * rows  # middle rows of one example
    flat = (jnp.arange(heads).reshape(heads, 1, 1) * n + key_blocks).reshape(per, slots)  # into (H*n, b, d)
    bias = (
        key_bias.reshape(batch, n, b)[:, key_blocks] + slot_bias.astype(sdt)[None, :, :, :, None]
    ).reshape(batch, per, 1, slots * b)  # (B, H*(n-2), 1, S'b)
    m_q = qs[:, :, b:-b].reshape(batch, per, b, d)
    k_rows, v_rows = k.reshape(batch, heads * n, b, d), v.reshape(batch, heads * n, b, d)

    def middle(cq, cflat, cbias, kr, vr):
        """Attention of some middle rows of one example over their gathered slots."""
        k_g = kr[cflat].reshape(-1, slots * b, d)  # (rows, S'b, d)
        v_g = vr[cflat].reshape(-1, slots * b, d)
        scores = jnp.einsum("cqd,ckd->cqk", cq, k_g).astype(sdt) + cbias  # (rows, b, S'b)
        return jnp.einsum("cqk,ckd->cqd", jax.nn.softmax(scores, axis=-1).astype(v.dtype), v_g)

    def whole(cq, cbias, kr, vr):  # accelerators: every row in one batch of fused einsums
        return middle(cq, flat, cbias, kr, vr)

    chunk = max(1, min(per, _CHUNK_BYTES // (b * slots * b * 4)))
    pad = -per % chunk

    def chunked(cq, cbias, kr, vr):  # CPU: cache-sized chunks of rows (a loop inside XLA) stay in L2
        parts = [jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)) for x in (cq, flat, cbias)]
        parts = tuple(x.reshape((-1, chunk) + x.shape[1:]) for x in parts)
        out = jax.lax.map(lambda c: middle(c[0], c[1], c[2], kr, vr), parts)
        return out.reshape(-1, b, d)[:per]

    def one_example(cq, cbias, kr, vr):
        # the kernel of the platform the program is lowered for (an export for CUDA from a CPU host too)
        return jax.lax.platform_dependent(cq, cbias, kr, vr, cpu=chunked, default=whole)

    m_ctx = jax.vmap(one_example)(m_q, bias, k_rows, v_rows)  # (B, H*(n-2), b, d)
    ctx = jnp.concatenate(
        [g_ctx[:, :, :b], m_ctx.reshape(batch, heads, rows * b, d), g_ctx[:, :, b:]], axis=2
    )
    return ctx * mask[:, None, :, None].astype(ctx.dtype)


def block_sparse_attention(q, k, v, mask, layout, *, layer: int, kernel: str = "auto",
                           output_attentions: bool = False):  # fmt: skip
    """BigBird ITC attention of ``layer`` over ``layout`` (a :class:`bigbird_flax.model.LayoutArrays`: the
    core's layout as arrays), with the contract of ``bigbird_torch.attention.block_sparse_attention``.

    ``kernel``: one of the core's names this backend runs ("auto" and "gather" are the same gather kernel
    here); ``output_attentions`` runs the full layout and returns the exact dense probabilities.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    bias = None if layout.slot_bias is None else layout.slot_bias[layer]
    return layer_attention(q, k, v, mask, layout.key_blocks[layer], layout.block_size, output_attentions, bias)


def layer_attention(q, k, v, mask, key_blocks, block_size: int, output_attentions: bool = False,
                    slot_bias=None):  # fmt: skip
    """BigBird ITC attention for one layer's key blocks (see :func:`block_sparse_attention`).

    Args:
        q, k, v: ``(batch, heads, L, d)``.
        mask: ``(batch, L)`` attention mask of the padded sequence.
        key_blocks: ``(heads, n-2, S)`` key block of every slot (see ``bigbird_core.layout``), or the
            merged slots when ``slot_bias`` is given.
        block_size: tokens per block.
        slot_bias: with merged slots and no ``output_attentions``, the fast path runs.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    if slot_bias is not None and not output_attentions:
        return fast_block_sparse_attention(q, k, v, mask, key_blocks, slot_bias, block_size), None
    return full_layout_attention(q, k, v, mask, key_blocks, block_size, softmax=_softmax_last,
                                 output_attentions=output_attentions)  # fmt: skip


def _softmax_last(x):
    return jax.nn.softmax(x, axis=-1)
