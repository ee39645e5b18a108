"""FlexAttention for block-sparse attention (CUDA, compiled; on the CPU its eager reference, for checking).

The middle query blocks' key blocks are the layout's lists as full ``block_size`` tiles; the two global
query blocks run as one matmul-softmax over every key. Chosen through the kernel names of
:mod:`bigbird_core.kernels` (``"flex"``, ``"flex-bias"``, and ``"auto"`` on CUDA).
"""

from __future__ import annotations

import functools
import math

import torch
from bigbird_core.layout import BLOCK_SPARSE_PENALTY

from .layouts import LayoutTensors


def softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precision, else the dtype itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def flex_available() -> bool:
    """Whether this torch has FlexAttention with ``BlockMask.from_kv_blocks``."""
    try:
        from torch.nn.attention.flex_attention import BlockMask  # noqa: F401
    except ImportError:
        return False
    return hasattr(BlockMask, "from_kv_blocks")


def _autograd(*tensors: torch.Tensor) -> bool:
    """Whether this call records a graph for backward (FlexAttention on CPU and the CPU chunking can't)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def flex_kernel_options(block_size: int) -> dict | None:
    """Triton tile sizes for FlexAttention that never straddle two of the layout's blocks.

    The kernel's default tiles (128 queries) are larger than BigBird's 64-token blocks; tiles of at most
    64 (32 for the backward's inner dimensions) that divide the block size make them legal. ``None``:
    the block size has no such tile (not a multiple of 16), so FlexAttention cannot run it on CUDA.
    """
    tile = 64
    while tile >= 16 and block_size % tile:
        tile //= 2
    if tile < 16:
        return None
    half = max(16, tile // 2)
    return {"BLOCK_M": tile, "BLOCK_N": tile, "bwd_BLOCK_M1": half, "bwd_BLOCK_N1": tile,
            "bwd_BLOCK_M2": tile, "bwd_BLOCK_N2": half}  # fmt: skip


RECOMPILE_LIMIT = 64  # compiled variants (shape, dtype, grad mode) before dynamo would fall back to eager


@functools.cache
def _compiled_fn(autotune: bool = False):
    """``torch.compile`` of the attention body, made once per process (``autotune``: with max-autotune,
    for half-precision training, matrix products left to ATen).

    Each (shape, dtype, grad mode) is one compiled variant; past dynamo's recompile limit it would run the
    eager FlexAttention, which materialises dense scores, so each call raises the limit to
    :data:`RECOMPILE_LIMIT` for its own duration only (:func:`_recompile_room`; nothing process-wide changes).
    """
    if autotune:
        options = {"max_autotune": True, "max_autotune_gemm_backends": "ATEN"}
        return torch.compile(_flex_body, dynamic=False, options=options)
    return torch.compile(_flex_body, dynamic=False)


def _recompile_room():
    """dynamo's recompile limit raised to :data:`RECOMPILE_LIMIT` for one call (a scoped patch)."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return config.patch(**{name: max(getattr(config, name), RECOMPILE_LIMIT)})


def flex_block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int,
    repeated_tiles: bool = True,
) -> torch.Tensor:  # fmt: skip
    """Block-sparse attention through FlexAttention: the middle query blocks' distinct key blocks as full
    ``block_size`` tiles, the key padding (and the merged-slot multiplicity, where a row repeats a block)
    as a score bias; the two global query blocks as one parallel matmul-softmax over all keys.

    Same results as :func:`fast_block_sparse_attention` (one softmax over the merged slots). On CUDA the
    whole attention runs compiled; elsewhere the eager FlexAttention (dense scores: for checking).

    Measured on an H100 at 16384 tokens, bf16 (benchmarks/README.md): the global blocks inside the kernel
    took 1.65 ms instead of 0.61 (their tiles walk every key block alone), and compiling
    ``flex_attention`` alone instead of the whole body 0.96 ms.

    ``repeated_tiles``: in compiled inference, a key block that a row counts m times is listed m times in the
    block mask (no per-score bias read; the "flex" kernel) instead of scored through a log(m) bias table (the
    "flex-bias" kernel and every training call). Measured on an H100 (bf16, 16384 tokens, benchmarks/README.md):
    the kernel 108 us instead of 437, the whole attention 0.279 ms instead of 0.601.

    Returns:
        context ``(batch, heads, L, d)``, padded query rows zeroed.
    """
    training = _autograd(q, k, v)
    block_mask, block_bias = layout.flex(layer, tiles=q.is_cuda and repeated_tiles and not training)
    b = layout.layout.block_size
    if not q.is_cuda:
        return _flex_body(q, k, v, mask, block_mask, block_bias, b, None)
    options = flex_kernel_options(b)
    if training and q.dtype != torch.float32:  # autotune picks backward tiles that the block admits
        forward_tiles = {"fwd_BLOCK_M": options["BLOCK_M"], "fwd_BLOCK_N": options["BLOCK_N"]}
        with _recompile_room():
            return _compiled_fn(True)(q, k, v, mask, block_mask, block_bias, b, forward_tiles)
    with _recompile_room():
        return _compiled_fn()(q, k, v, mask, block_mask, block_bias, b, options)


def _flex_body(q, k, v, mask, block_mask, block_bias, b: int, options) -> torch.Tensor:
    """:func:`flex_block_sparse_attention` once its mask is built (what ``torch.compile`` compiles)."""
    from torch.nn.attention.flex_attention import flex_attention

    key_bias = (1.0 - mask.to(torch.float32)) * BLOCK_SPARSE_PENALTY  # (B, L)

    if block_bias is None:  # no repeated blocks; a table lookup per score costs 5/6 of the kernel (H100)

        def score_mod(score, batch, head, q_idx, kv_idx):
            return score + key_bias[batch, kv_idx]

    else:

        def score_mod(score, batch, head, q_idx, kv_idx):
            return score + key_bias[batch, kv_idx] + block_bias[head, q_idx // b + 1, kv_idx // b]

    m_ctx = flex_attention(
        q[:, :, b:-b], k, v, score_mod=score_mod, block_mask=block_mask, kernel_options=options
    )
    scale = 1.0 / math.sqrt(q.shape[-1])
    g_ctx = _global_rows(q, k, v, key_bias.to(softmax_dtype(q.dtype)), b, scale)  # (B, H, 2b, d)
    ctx = torch.cat([g_ctx[:, :, :b], m_ctx, g_ctx[:, :, b:]], dim=2)
    return ctx * mask[:, None, :, None].to(ctx.dtype)


def _global_rows(q, k, v, key_bias: torch.Tensor, b: int, scale: float) -> torch.Tensor:
    """Query blocks 0 and n-1 against every key, ``key_bias`` in the softmax dtype: ``(B, H, 2b, d)``."""
    g_q = torch.cat([q[:, :, :b], q[:, :, -b:]], dim=2)  # (B, H, 2b, d)
    scores = torch.matmul(g_q, k.transpose(-1, -2)).to(key_bias.dtype)  # (B, H, 2b, L)
    scores = torch.add(key_bias[:, None, None, :], scores, alpha=scale)
    return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)


