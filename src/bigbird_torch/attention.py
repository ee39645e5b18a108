"""PyTorch attention kernels: full attention and block-sparse attention over the core's layout.

Same function names as ``bigbird_core.attention``. Shapes: ``q, k, v`` are ``(batch, heads, L, d)``;
``mask`` is the padded ``(batch, L)`` attention mask. Scores are upcast to float32 for masking and
softmax when the compute dtype is bf16/fp16 (fp32 results are unchanged).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

import torch
from bigbird_core.errors import InputError, fail
from bigbird_core.layout import (
    BLOCK_SPARSE_PENALTY,
    NUM_STATIC_SLOTS,
    BlockLayout,
    dense_winner,
    key_block_lists,
)
from bigbird_core.recipe import LAYOUT_CACHE_SIZE, PlannedLayout


@dataclass(frozen=True)
class LayoutTensors:
    """The core's :class:`PlannedLayout` as tensors on one device (see :func:`layout_tensors`)."""

    planned: PlannedLayout
    key_blocks: torch.Tensor  # (layers, heads, n-2, S) int64
    slot_valid: torch.Tensor  # (n-2, S) bool
    query_masked: torch.Tensor  # (n-2, S) bool

    @property
    def layout(self) -> BlockLayout:
        return self.planned.layout

    @classmethod
    def build(cls, layout: BlockLayout | PlannedLayout, device: torch.device) -> LayoutTensors:
        """Tensors of a core layout on ``device`` (uncached; models use :func:`layout_tensors`)."""
        if isinstance(layout, BlockLayout):
            layout = PlannedLayout(layout.key_blocks[..., NUM_STATIC_SLOTS:], layout)
        blocks = layout.layout
        return cls(
            layout,
            torch.as_tensor(np.asarray(blocks.key_blocks, np.int64), device=device),
            torch.as_tensor(np.array(blocks.slot_valid), device=device),
            torch.as_tensor(np.array(blocks.query_masked), device=device),
        )

    def winner(self, layer: int) -> torch.Tensor:
        return torch.as_tensor(
            dense_winner(self.layout, layer).astype(np.int64), device=self.key_blocks.device
        )

    @property
    def compact(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The core's merged slots: key blocks ``(layers, heads, n-2, S')`` and slot bias (float32)."""
        if "_compact" not in self.__dict__:
            c = self.planned.compact
            device = self.key_blocks.device
            blocks = torch.as_tensor(np.asarray(c.key_blocks, np.int64), device=device)
            bias = torch.as_tensor(np.asarray(c.slot_bias, np.float32), device=device)
            object.__setattr__(self, "_compact", (blocks, bias))
        return self.__dict__["_compact"]

    def flex(self, layer: int, tiles: bool = False):
        """FlexAttention's ``BlockMask`` of ``layer``'s middle query blocks (1..n-2) against every key, and
        the ``(heads, n, n)`` float32 log-multiplicity bias (``None`` when no row repeats a block).

        With ``tiles``, the repeated-tile form: a key block that a row's softmax counts ``m`` times is listed
        ``m`` times and the bias is ``None``. The compiled forward kernel walks every listed tile, so this is
        exact without a per-score lookup; the eager implementation and the backward (which walks the
        mask's transposed, de-duplicated lists) are not, so it is for compiled inference only.

        Every listed block is a full block; off CUDA the mask's ``mask_mod`` states the same layout for the
        eager implementation.
        """
        cache = self.__dict__.setdefault("_flex", {})
        key = (layer, tiles)
        if key not in cache:
            from torch.nn.attention.flex_attention import BlockMask

            device, b = self.key_blocks.device, self.layout.block_size
            lists = key_block_lists(self.layout, layer, self.planned.compact)
            if tiles and not lists.repeats:
                cache[key] = self.flex(layer)
                return cache[key]
            counts, indices = (lists.tile_counts, lists.tile_indices) if tiles else (lists.counts, lists.indices)
            counts = torch.as_tensor(counts[:, 1:-1], device=device)[None]  # (1, H, n-2): any batch
            indices = torch.as_tensor(indices[:, 1:-1], device=device)[None]  # (1, H, n-2, n)
            allowed = torch.as_tensor(lists.allowed, device=device)

            def layout_mask(batch, head, q_idx, kv_idx):
                return allowed[head, q_idx // b + 1, kv_idx // b]

            # the compiled kernel visits only the listed (full) blocks and never calls mask_mod: one shared
            # mask_mod (the default) keeps every layer on one compiled kernel; the eager one needs the layout
            block_mask = BlockMask.from_kv_blocks(
                torch.zeros_like(counts), torch.zeros_like(indices), counts, indices, BLOCK_SIZE=b,
                mask_mod=None if device.type == "cuda" else layout_mask,
            )  # fmt: skip
            # without repeated blocks the bias is all zeros: no per-score table lookup (5.6x faster kernel)
            bias = torch.as_tensor(lists.bias, device=device) if lists.repeats and not tiles else None
            cache[key] = (block_mask, bias)
        return cache[key]


# a model's layouts on its device, per core layout object (the core caches those): bounded like the core
layout_tensors = functools.lru_cache(maxsize=LAYOUT_CACHE_SIZE)(LayoutTensors.build)


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
    output_attentions: bool = False, kernel: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """BigBird ITC attention: global rows over all keys, middle rows over their slots in one softmax.

    Without ``output_attentions`` this runs the fast path (merged slots, additive biases, fused
    ``baddbmm``, or FlexAttention: see :data:`KERNELS`); with it, the full layout so that the dense
    probabilities are exact.

    Returns:
        context ``(batch, heads, L, d)`` (padded query rows zeroed) and, when asked, the dense
        probabilities ``(batch, heads, L, L)``.
    """
    if output_attentions:
        return _block_sparse_with_probs(q, k, v, mask, layout, layer)
    if _use_flex(q, k, layout.layout.block_size, kernel):
        return flex_block_sparse_attention(q, k, v, mask, layout, layer), None
    return fast_block_sparse_attention(q, k, v, mask, layout, layer), None


# The block-sparse kernel, chosen per model (``model.set_block_sparse_kernel``):
# "auto" (default): FlexAttention on CUDA when this torch has it and the block size is a multiple of 16
#   (half-precision training too, unless HALF_PRECISION_TRAINING is "gather"), else the gather path;
# "gather": always the gather path (:func:`fast_block_sparse_attention`);
# "flex": FlexAttention wherever it can run: compiled on CUDA (as "auto"); on the CPU its eager reference
#   implementation (dense scores: for checking, not for speed), which has no backward, so CPU autograd
#   keeps the gather path.
KERNELS = ("auto", "gather", "flex")


def check_kernel(name: str) -> str:
    if name not in KERNELS:
        raise fail(InputError, "kernel", f"one of {', '.join(KERNELS)}", repr(name))
    return name


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


# How the compiled FlexAttention kernel counts a key block that a row's softmax counts m times (transformers'
# eval plan lists block 0 in every random slot: r + 1 times): "bias" adds log(m) to its scores through a
# (heads, n, n) table read per score; "tiles" lists the block m times in the BlockMask (no per-score read;
# inference only, training keeps "bias"). See LayoutTensors.flex. Measured on an H100 (bf16, 16384 tokens,
# benchmarks/README.md): the kernel 108 us instead of 437, the whole attention 0.279 ms instead of 0.601.
REPEATED_BLOCKS = "tiles"
# Half-precision training on CUDA: "flex" (FlexAttention, its backward compiled with max-autotune, whose
# candidate tiles include ones no wider than a 64-token block; the default table's half-precision Hopper
# entry for head_dim 64 has 128-wide tiles, which a 64-token block does not admit) or "gather" (the gather
# path). Measured on an H100 (bf16, one-layer training step): 7.27 vs 7.74 ms at 4096 tokens, 8.88 vs 11.46
# ms at 16384, 2.2-2.4x less memory; the autotuning costs about 50 s per new shape on the first step.
HALF_PRECISION_TRAINING = "flex"


def _use_flex(q: torch.Tensor, k: torch.Tensor, block_size: int, kernel: str) -> bool:
    if kernel == "gather":
        return False
    if q.is_cuda:
        if q.dtype != torch.float32 and _autograd(q, k) and HALF_PRECISION_TRAINING == "gather":
            return False
        return flex_available() and flex_kernel_options(block_size) is not None
    return kernel == "flex" and not _autograd(q, k)


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
    eager FlexAttention, which materialises dense scores, so the limit is raised to :data:`RECOMPILE_LIMIT`.
    """
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    if autotune:
        options = {"max_autotune": True, "max_autotune_gemm_backends": "ATEN"}
        return torch.compile(_flex_body, dynamic=False, options=options)
    return torch.compile(_flex_body, dynamic=False)


def flex_block_sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, layout: LayoutTensors, layer: int
) -> torch.Tensor:
    """Block-sparse attention through FlexAttention: the middle query blocks' distinct key blocks as full
    ``block_size`` tiles, the key padding (and the merged-slot multiplicity, where a row repeats a block)
    as a score bias; the two global query blocks as one parallel matmul-softmax over all keys.

    Same results as :func:`fast_block_sparse_attention` (one softmax over the merged slots). On CUDA the
    whole attention runs compiled; elsewhere the eager FlexAttention (dense scores: for checking).

    Measured on an H100 at 16384 tokens, bf16 (benchmarks/README.md): the global blocks inside the kernel
    took 1.65 ms instead of 0.61 (their tiles walk every key block alone), and compiling
    ``flex_attention`` alone instead of the whole body 0.96 ms.

    Returns:
        context ``(batch, heads, L, d)``, padded query rows zeroed.
    """
    training = _autograd(q, k, v)
    block_mask, block_bias = layout.flex(layer, tiles=q.is_cuda and REPEATED_BLOCKS == "tiles" and not training)
    b = layout.layout.block_size
    if not q.is_cuda:
        return _flex_body(q, k, v, mask, block_mask, block_bias, b, None)
    options = flex_kernel_options(b)
    if training and q.dtype != torch.float32:  # autotune picks backward tiles that the block admits
        forward_tiles = {"fwd_BLOCK_M": options["BLOCK_M"], "fwd_BLOCK_N": options["BLOCK_N"]}
        return _compiled_fn(True)(q, k, v, mask, block_mask, block_bias, b, forward_tiles)
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
    g_ctx = _global_rows(q, k, v, key_bias.to(_softmax_dtype(q.dtype)), b, scale)  # (B, H, 2b, d)
    ctx = torch.cat([g_ctx[:, :, :b], m_ctx, g_ctx[:, :, b:]], dim=2)
    return ctx * mask[:, None, :, None].to(ctx.dtype)


def _global_rows(q, k, v, key_bias: torch.Tensor, b: int, scale: float) -> torch.Tensor:
    """Query blocks 0 and n-1 against every key, ``key_bias`` in the softmax dtype: ``(B, H, 2b, d)``."""
    g_q = torch.cat([q[:, :, :b], q[:, :, -b:]], dim=2)  # (B, H, 2b, d)
    scores = torch.matmul(g_q, k.transpose(-1, -2)).to(key_bias.dtype)  # (B, H, 2b, L)
    scores = torch.add(key_bias[:, None, None, :], scores, alpha=scale)
    return torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)


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
    sdt = _softmax_dtype(q.dtype)
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
