"""PyTorch body modules with transformers' parameter names: embeddings, encoder layers, pooler.

The core decides everything shared (per-call attention type and padding, random plan, layout, masks);
these modules execute it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.checkpoint import checkpoint

import torch
from bigbird_core.activations import activation
from bigbird_core.cache import cache_length
from bigbird_core.config import BigBirdConfig
from bigbird_core.recipe import BodyOutput, PreparedCall, prepare_call
from bigbird_core.registry import head_spec
from torch import nn

from .attention import block_sparse_attention, full_attention
from .layouts import LayoutTensors, ModelLayouts
from .sequence import sequence_parallel_attention

# torch's kernel of each activation kind (the names and aliases are bigbird_core.activations')
ACTIVATION_KINDS = {"gelu_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"), "gelu_erf": nn.functional.gelu,
                    "relu": nn.functional.relu, "silu": nn.functional.silu, "tanh": torch.tanh}  # fmt: skip


def act(name: str):
    """The torch function of activation ``name`` (``config.hidden_act``)."""
    return activation(name, ACTIVATION_KINDS)


@dataclass(frozen=True)
class LayerContext:
    """What every encoder layer needs of one call, decided before the first layer runs."""

    mask: torch.Tensor  # (B, K) attention mask in the softmax dtype
    additive_mask: torch.Tensor | None  # full attention: (B, 1, Lq, K); block-sparse: None
    layout: LayoutTensors | None  # block-sparse: the core's layout on this device; else None
    kernel: str  # the block-sparse kernel (bigbird_core.kernels)
    head_masks: tuple[torch.Tensor | None, ...]  # per layer (1, heads, 1, 1) multipliers, or None
    output_attentions: bool
    use_cache: bool
    encoder_hidden_states: torch.Tensor | None = None  # cross-attention: (B, Le, hidden) in the model's dtype
    cross_mask: torch.Tensor | None = None  # cross-attention: (B, 1, 1, Le) additive
    sequence: Any = None  # a sequence-parallel call: (shards, process group) (bigbird_torch.sequence)
    compiled: Any = None  # compiled dense parts (CompiledLayers, see set_compiled_layers), or None


class BigBirdEmbeddings(nn.Module):
    """word (x sqrt(hidden) if rescale_embeddings) + token type + position, dropout, then LayerNorm."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, h, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, h)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = math.sqrt(h) if config.rescale_embeddings else None

    def forward(self, input_ids, token_type_ids, position_ids, inputs_embeds=None) -> torch.Tensor:
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, hidden)
        if self.scale is not None:
            x = x * self.scale
        x = x + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(position_ids)
        return self.LayerNorm(self.dropout(x))


class BigBirdSelfAttention(nn.Module):
    """The query/key/value projections and the attention itself (block-sparse or full)."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.query = nn.Linear(h, h, bias=config.use_bias)
        self.key = nn.Linear(h, h, bias=config.use_bias)
        self.value = nn.Linear(h, h, bias=config.use_bias)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, seq, _ = x.shape
        return x.view(b, seq, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, d)

    def forward(self, x, ctx: LayerContext, layer: int, past=None):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        return self.attend(q, k, v, ctx, layer, past)

    def attend(self, q, k, v, ctx: LayerContext, layer: int, past=None):
        """The attention of projected ``(B, H, L, d)`` queries, keys and values (``past`` prepended)."""
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        present = (k, v) if ctx.use_cache else None
        if ctx.sequence is not None:  # this rank's blocks of a sequence split over ranks
            shards, group = ctx.sequence
            out, probs = sequence_parallel_attention(q, k, v, ctx.mask, shards, layer, group, agreed=True), None
        elif ctx.layout is not None:
            out, probs = block_sparse_attention(q, k, v, ctx.mask, ctx.layout, layer=layer, kernel=ctx.kernel,
                                                output_attentions=ctx.output_attentions)  # fmt: skip
        else:
            out, probs = full_attention(q, k, v, ctx.additive_mask, ctx.head_masks[layer], self.dropout)
        b, _, seq, _ = out.shape
        return out.transpose(1, 2).reshape(b, seq, -1), probs, present  # (B, L, hidden)


class BigBirdResidualOutput(nn.Module):
    """dense, dropout, LayerNorm(+ residual): the attention output, the feed-forward output and the QA head's."""

    def __init__(self, config: BigBirdConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BigBirdAttention(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.self = BigBirdSelfAttention(config)
        self.output = BigBirdResidualOutput(config, config.hidden_size)


class BigBirdIntermediate(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = act(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BigBirdLayer(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.attention = BigBirdAttention(config)
        if config.add_cross_attention:  # decoders: attention to the encoder's hidden states
            self.crossattention = BigBirdAttention(config)
        self.intermediate = BigBirdIntermediate(config)
        self.output = BigBirdResidualOutput(config, config.intermediate_size)

    def cross(self, x, ctx: LayerContext, layer: int, past=None):
        """Cross-attention of ``x`` over the encoder's hidden states (keys and values from ``past[2:]`` when the
        cache holds them): the new ``x``, the probabilities and the cross keys and values."""
        sa = self.crossattention.self
        q = sa._split(sa.query(x))
        if past is not None and len(past) == 4:
            k, v = past[2], past[3]
        else:
            enc = ctx.encoder_hidden_states
            k, v = sa._split(sa.key(enc)), sa._split(sa.value(enc))
        out, probs = full_attention(q, k, v, ctx.cross_mask, ctx.head_masks[layer], sa.dropout)
        b, _, seq, _ = out.shape
        return self.crossattention.output(out.transpose(1, 2).reshape(b, seq, -1), x), probs, (k, v)

    def forward(self, x, ctx: LayerContext, layer: int, past=None):
        """One layer: ``(x, self-attention probabilities, cache entry, cross-attention probabilities)``."""
        compiled = ctx.compiled
        if compiled is None or ctx.encoder_hidden_states is not None:
            attn, probs, present = self.attention.self(x, ctx, layer, past)
            x = self.attention.output(attn, x)
            cross_probs = None
            if ctx.encoder_hidden_states is not None:
                x, cross_probs, cross_kv = self.cross(x, ctx, layer, past)
                present = None if present is None else present + cross_kv
            return self.output(self.intermediate(x), x), probs, present, cross_probs
        sa, ao, out = self.attention.self, self.attention.output, self.output
        q, k, v = compiled.project(x, sa.query.weight, sa.query.bias, sa.key.weight, sa.key.bias,
                                   sa.value.weight, sa.value.bias, sa.heads)  # fmt: skip
        attn, probs, present = sa.attend(q, k, v, ctx, layer, past)
        x = compiled.finish(
            attn, x, ao.dense.weight, ao.dense.bias, ao.LayerNorm.weight, ao.LayerNorm.bias,
            self.intermediate.dense.weight, self.intermediate.dense.bias, out.dense.weight, out.dense.bias,
            out.LayerNorm.weight, out.LayerNorm.bias, ao.dropout.p if self.training else 0.0,
        )  # fmt: skip
        return x, probs, present, None


def _project(x, wq, bq, wk, bk, wv, bv, heads: int):
    """The query, key and value projections as one matrix product: ``(B, H, L, d)`` each."""
    bias = None if bq is None else torch.cat([bq, bk, bv])
    qkv = nn.functional.linear(x, torch.cat([wq, wk, wv]), bias)  # (B, L, 3 hidden)
    batch, length, _ = x.shape
    return qkv.view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)


def _finish(act, eps: float, attn, x, ao_w, ao_b, ln1_w, ln1_b, i_w, i_b, o_w, o_b, ln2_w, ln2_b, p: float):
    """Attention output dense + residual LayerNorm, feed-forward, output dense + residual LayerNorm."""
    F = nn.functional
    h = x.shape[-1]
    x = F.layer_norm(F.dropout(F.linear(attn, ao_w, ao_b), p) + x, (h,), ln1_w, ln1_b, eps)
    y = F.dropout(F.linear(act(F.linear(x, i_w, i_b)), o_w, o_b), p)
    return F.layer_norm(y + x, (h,), ln2_w, ln2_b, eps)


# the core's recipe runs outside torch.compile graphs (NumPy planning; eager, as the decorator's graph break);
# torch.export (non-strict) traces through it, with the value checks skipped for fake tensors
_prepare_call = torch.compiler.disable(prepare_call)


_NOT_ARRAYS = ("plan", "output_attentions", "output_hidden_states", "return_dict", "use_cache")


def as_tensor(x: Any) -> Any:
    """Array-likes (lists, NumPy arrays) of a forward call as tensors, as NumPy and Flax take them; tensors and
    None as they are (anything else is left for the core's checks to name)."""
    if x is None or isinstance(x, torch.Tensor):
        return x
    try:
        array = np.asarray(x)
    except (TypeError, ValueError):
        return x
    return torch.from_numpy(array) if array.dtype.kind in "biuf" else x


def prepare(model: nn.Module, head: str, past: Any = None, **arguments: Any) -> PreparedCall:
    """The core's call recipe for a forward call of ``model`` (a head): its label arguments (the head's registry
    entry) and its key/value cache ``past`` (decoders) sorted out, in the model's dtype and mode. The same
    function as ``bigbird_flax.model.prepare``."""
    labels = {k: as_tensor(arguments.pop(k)) for k in head_spec(head).labels if k in arguments}
    arguments = {k: v if k in _NOT_ARRAYS else as_tensor(v) for k, v in arguments.items()}
    ref = arguments.get("input_ids") if arguments.get("input_ids") is not None else arguments.get("inputs_embeds")
    dtype = next(model.parameters()).dtype
    enc = arguments.get("encoder_hidden_states")
    past_len, _ = cache_length(model.config, past, None if ref is None else ref.shape[0], dtype=dtype,
                               encoder_len=None if enc is None or enc.ndim != 3 else enc.shape[1])  # fmt: skip
    return _prepare_call(model.config, head, dtype=dtype, training=model.training, labels=labels, past_len=past_len,
                         **arguments)  # fmt: skip


# How the dense parts of every encoder layer run (``model.set_compiled_layers``): "off" (default): eager
# modules; a ``torch.compile`` mode ("default", "max-autotune-no-cudagraphs", "reduce-overhead"): the query,
# key and value projections as one compiled matrix product and everything after the attention (output dense,
# LayerNorms, feed-forward) as one compiled graph, shared by all layers. "reduce-overhead" adds CUDA graphs:
# a call's outputs are overwritten by the next call (clone what you keep).
COMPILE_MODES = ("off", "default", "max-autotune-no-cudagraphs", "reduce-overhead")


@dataclass(frozen=True)
class CompiledLayers:
    project: Any
    finish: Any


@functools.cache
def compiled_layers(mode: str, hidden_act: str, eps: float) -> CompiledLayers:
    """The compiled dense parts for one mode, activation and LayerNorm epsilon (made once per process)."""
    finish = functools.partial(_finish, act(hidden_act), eps)
    return CompiledLayers(torch.compile(_project, mode=mode, dynamic=False),
                          torch.compile(finish, mode=mode, dynamic=False))  # fmt: skip


class BigBirdEncoder(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BigBirdLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False
        self.checkpoint_kwargs: dict[str, Any] = {"use_reentrant": False}

    def forward(self, x, ctx: LayerContext, past_key_values=None, output_hidden_states: bool = False):
        hidden, attentions, presents, crosses = [], [], [], []
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                hidden.append(x)
            past = None if past_key_values is None else past_key_values[i]
            if self.gradient_checkpointing and self.training:
                x, probs, present, cross = checkpoint(layer, x, ctx, i, past, **self.checkpoint_kwargs)
            else:
                x, probs, present, cross = layer(x, ctx, i, past)
            if ctx.output_attentions:
                attentions.append(probs)
                crosses.append(cross)
            if ctx.use_cache:
                presents.append(present)
        if output_hidden_states:
            hidden.append(x)
        return x, hidden, attentions, presents, crosses


class BigBirdBody(nn.Module):
    """Embeddings + encoder + optional pooler: the module transformers calls ``BigBirdModel``'s body."""

    def __init__(self, config: BigBirdConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self._init_body(config, add_pooling_layer)

    def _init_body(self, config: BigBirdConfig, add_pooling_layer: bool) -> None:
        self.config = config
        self.embeddings = BigBirdEmbeddings(config)
        self.encoder = BigBirdEncoder(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.block_sparse_kernel = "auto"
        self.compiled_layers = "off"
        self.layouts = ModelLayouts()  # this model's layouts on its device (never filled while tracing)

    def forward(self, prep: PreparedCall, past_key_values=None, sequence=None) -> BodyOutput:
        """Embeddings, encoder and pooler on a call prepared by the core (the sequence is not cut back).

        ``sequence``: ``(shards, group)`` of a sequence-parallel call (``bigbird_torch.sequence.
        sequence_parallel_forward``): ``prep`` then holds this rank's tokens and the whole mask.
        """
        device = prep.position_ids.device
        embeds = prep.inputs_embeds
        if embeds is not None:
            embeds = embeds.to(self.embeddings.LayerNorm.weight.dtype)
            pad = prep.embeds_pad
            if pad is not None:  # transformers pads given embeddings with the embedding output of pad tokens
                embeds = prep.full_embeds(self.embeddings(pad["input_ids"], pad["token_type_ids"],
                                                          pad["position_ids"]))  # fmt: skip
        dtype = self.embeddings.LayerNorm.weight.dtype
        enc = prep.encoder_hidden_states
        ctx = LayerContext(
            mask=prep.attention_mask, additive_mask=prep.additive_mask,
            layout=None if prep.layout is None else self.layouts.get(prep.layout, device),
            kernel=self.block_sparse_kernel, head_masks=tuple(
                None if prep.head_mask is None else prep.head_mask[i][None, :, None, None]
                for i in range(self.config.num_hidden_layers)),
            output_attentions=prep.output_attentions, use_cache=prep.use_cache,
            encoder_hidden_states=None if enc is None else enc.to(dtype), cross_mask=prep.cross_mask,
            sequence=sequence, compiled=None if self.compiled_layers == "off" else compiled_layers(
                self.compiled_layers, self.config.hidden_act, self.config.layer_norm_eps),
        )  # fmt: skip
        x = self.embeddings(prep.input_ids, prep.token_type_ids, prep.position_ids, embeds)
        x, hidden, attentions, presents, crosses = self.encoder(x, ctx, past_key_values, prep.output_hidden_states)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        with_cross = prep.output_attentions and prep.encoder_hidden_states is not None
        return BodyOutput(x, pooled, hidden_states=tuple(hidden) if prep.output_hidden_states else None,
                          attentions=tuple(attentions) if prep.output_attentions else None,
                          cross_attentions=tuple(crosses) if with_cross else None,
                          past_key_values=tuple(presents) if prep.use_cache else None)  # fmt: skip
