"""PyTorch body modules with transformers' parameter names: embeddings, encoder layers, pooler.

The core decides everything shared (per-call attention type and padding, random plan, layout, masks);
these modules execute it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch.utils.checkpoint import checkpoint

import torch
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import InputError, fail
from bigbird_core.inputs import CallPlan, check_inputs, pad_values, plan_call
from bigbird_core.layout import block_layout
from bigbird_core.plans import check_plan, make_plan
from torch import nn

from .attention import LayoutTensors, block_sparse_attention, full_attention

ACTIVATIONS = {
    "gelu_new": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu": nn.functional.gelu,
    "relu": nn.functional.relu,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


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

    def forward(self, x, ctx: dict[str, Any], layer: int, past=None):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        present = (k, v) if ctx["use_cache"] else None
        if ctx["layout"] is not None:
            out, probs = block_sparse_attention(
                q, k, v, ctx["mask"], ctx["layout"], layer, ctx["output_attentions"]
            )
        else:
            out, probs = full_attention(q, k, v, ctx["additive_mask"], ctx["head_masks"][layer], self.dropout)
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
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BigBirdLayer(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.attention = BigBirdAttention(config)
        self.intermediate = BigBirdIntermediate(config)
        self.output = BigBirdResidualOutput(config, config.intermediate_size)

    def forward(self, x, ctx: dict[str, Any], layer: int, past=None):
        attn, probs, present = self.attention.self(x, ctx, layer, past)
        x = self.attention.output(attn, x)
        return self.output(self.intermediate(x), x), probs, present


class BigBirdEncoder(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BigBirdLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(self, x, ctx: dict[str, Any], past_key_values=None):
        hidden, attentions, presents = [], [], []
        for i, layer in enumerate(self.layer):
            if ctx["output_hidden_states"]:
                hidden.append(x)
            past = None if past_key_values is None else past_key_values[i]
            if self.gradient_checkpointing and self.training:
                x, probs, present = checkpoint(layer, x, ctx, i, past, use_reentrant=False)
            else:
                x, probs, present = layer(x, ctx, i, past)
            if ctx["output_attentions"]:
                attentions.append(probs)
            if ctx["use_cache"]:
                presents.append(present)
        if ctx["output_hidden_states"]:
            hidden.append(x)
        return x, hidden, attentions, presents


class ArrayAdapter:
    """The array namespace of ``bigbird_core.inputs`` for torch tensors on one device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def arange(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.device)

    where = staticmethod(torch.where)
    reshape = staticmethod(torch.reshape)

    @staticmethod
    def argmax(x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.argmax(x, dim=axis)


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
        self._layouts: dict[tuple, LayoutTensors] = {}

    def _layout(self, num_blocks: int, plan: Any, device: torch.device) -> LayoutTensors:
        """The core's plan and layout for this call, as tensors (cached per plan and device)."""
        if plan is None:
            key = (
                "auto",
                num_blocks,
                self.training,
                self.config.random_plan,
                self.config.plan_seed,
                str(device),
            )
            if key not in self._layouts:
                made = make_plan(self.config, num_blocks, training=self.training)
                self._layouts[key] = LayoutTensors.build(block_layout(made, self.config.block_size), device)
            return self._layouts[key]
        plan = plan.detach().cpu().numpy() if isinstance(plan, torch.Tensor) else np.asarray(plan)
        return LayoutTensors.build(
            block_layout(check_plan(self.config, num_blocks, plan), self.config.block_size), device
        )

    @torch.compiler.disable
    def prepare(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask, plan,
                past_len: int, flags: dict[str, bool]):  # fmt: skip
        """Validate, decide (through the core) and pad; returns padded inputs and the layer context."""
        c = self.config
        batch, seq = check_inputs(c, input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids, position_ids=position_ids, past_len=past_len)  # fmt: skip
        ref = input_ids if input_ids is not None else inputs_embeds
        device = ref.device
        dtype = self.embeddings.LayerNorm.weight.dtype
        call: CallPlan = plan_call(c, seq, past_len=past_len)
        mask = torch.ones(batch, past_len + seq, device=device) if attention_mask is None else attention_mask
        types = (
            torch.zeros(batch, seq, dtype=torch.long, device=device)
            if token_type_ids is None
            else token_type_ids
        )
        if inputs_embeds is not None:
            inputs_embeds = inputs_embeds.to(dtype)
        if call.pad_len:
            pads, pad = pad_values(c), (0, call.pad_len)
            if input_ids is not None:
                input_ids = nn.functional.pad(input_ids, pad, value=pads["input_ids"])
            if position_ids is not None:
                position_ids = nn.functional.pad(position_ids, pad, value=pads["position_ids"])
            if inputs_embeds is not None:
                # transformers pads given embeddings with the *embedding output* of pad tokens (positions 0..)
                pad_ids = torch.full((batch, call.pad_len), c.pad_token_id, device=device)
                pad_pos = torch.arange(call.pad_len, device=device).expand(batch, -1)
                extra = self.embeddings(pad_ids, torch.zeros_like(pad_ids), pad_pos)
                inputs_embeds = torch.cat([inputs_embeds, extra], dim=1)
            mask = nn.functional.pad(mask, pad, value=pads["attention_mask"])
            types = nn.functional.pad(types, pad, value=pads["token_type_ids"])
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + call.padded_len, device=device).expand(batch, -1)
        sdt = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        ctx: dict[str, Any] = dict(flags, layout=None, additive_mask=None, mask=mask,
                                   head_masks=self._head_masks(head_mask, dtype, device))  # fmt: skip
        if call.block_sparse:
            ctx["layout"] = self._layout(call.num_blocks, plan, device)
        else:
            keep = mask[:, None, None, :].to(sdt)  # (B, 1, 1, K)
            if c.is_decoder:
                k_len = mask.shape[1]
                rows = torch.arange(seq, device=device)[:, None] + past_len
                keep = keep * (torch.arange(k_len, device=device)[None, :] <= rows).to(sdt)
            ctx["additive_mask"] = (1.0 - keep) * torch.finfo(sdt).min
        return call, input_ids, types, position_ids, inputs_embeds, ctx

    def _head_masks(self, head_mask, dtype, device) -> list:
        c = self.config
        if head_mask is None:
            return [None] * c.num_hidden_layers
        hm = torch.as_tensor(head_mask, dtype=dtype, device=device)
        if hm.dim() == 1:
            hm = hm.expand(c.num_hidden_layers, -1)
        if tuple(hm.shape) != (c.num_hidden_layers, c.num_attention_heads):
            raise fail(InputError, "head_mask", f"shape ({c.num_attention_heads},) or "
                       f"({c.num_hidden_layers}, {c.num_attention_heads})", hm)  # fmt: skip
        return [hm[i][None, :, None, None] for i in range(c.num_hidden_layers)]

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, past_key_values=None, use_cache=False, output_attentions=False,
                output_hidden_states=False, plan=None):  # fmt: skip
        past_len = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        flags = dict(output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                     use_cache=use_cache)  # fmt: skip
        call, ids, types, positions, embeds, ctx = self.prepare(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            head_mask,
            plan,
            past_len,
            flags,
        )
        x = self.embeddings(ids, types, positions, embeds)
        x, hidden, attentions, presents = self.encoder(x, ctx, past_key_values)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return dict(sequence_output=x, pooled=pooled, call=call,
                    hidden_states=tuple(hidden) if output_hidden_states else None,
                    attentions=tuple(attentions) if output_attentions else None,
                    past_key_values=tuple(presents) if use_cache else None)  # fmt: skip
