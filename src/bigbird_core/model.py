"""The NumPy reference body: embeddings, encoder layers (both attention types) and pooler.

Parameters are a ``{canonical name: ndarray}`` dict; ``prefix`` is ``"bert."`` inside heads and ``""``
in ``BigBirdModel``. Everything is computed in the parameters' dtype (float32 or float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention import block_sparse_attention, full_attention
from .config import BigBirdConfig
from .errors import InputError, fail
from .inputs import CallPlan, check_inputs, pad_values, plan_call
from .layout import block_layout
from .numerics import ACTIVATIONS, layer_norm, linear
from .plans import check_plan, make_plan

Params = dict[str, np.ndarray]


@dataclass
class BodyOutput:
    sequence_output: np.ndarray  # (batch, padded seq, hidden)
    pooled: np.ndarray | None  # (batch, hidden)
    hidden_states: tuple[np.ndarray, ...] | None
    attentions: tuple[np.ndarray, ...] | None
    call: CallPlan


def embed(p: Params, prefix: str, config: BigBirdConfig, input_ids: np.ndarray | None,
          token_type_ids: np.ndarray, position_ids: np.ndarray, inputs_embeds: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """word (x sqrt(hidden) if rescale_embeddings) + token type + position, then LayerNorm."""
    e = prefix + "embeddings."
    words = p[e + "word_embeddings.weight"][input_ids] if inputs_embeds is None else inputs_embeds
    if config.rescale_embeddings:
        words = words * np.asarray(config.hidden_size**0.5, words.dtype)
    x = words + p[e + "token_type_embeddings.weight"][token_type_ids]
    x = x + p[e + "position_embeddings.weight"][position_ids]  # (batch, seq, hidden)
    return layer_norm(x, p[e + "LayerNorm.weight"], p[e + "LayerNorm.bias"], config.layer_norm_eps)


def _heads(x: np.ndarray, config: BigBirdConfig) -> np.ndarray:
    b, seq, _ = x.shape
    return x.reshape(b, seq, config.num_attention_heads, config.head_dim).transpose(
        0, 2, 1, 3
    )  # (B, H, L, d)


def full_attention_mask(config: BigBirdConfig, mask: np.ndarray, q_len: int, dtype: np.dtype,
                        past_len: int = 0) -> np.ndarray:  # fmt: skip
    """Additive mask ``(batch, 1, q_len or 1, k_len)``: ``finfo(dtype).min`` where masked; causal for decoders."""
    keep = mask[:, None, None, :].astype(dtype)  # (B, 1, 1, K)
    if config.is_decoder:
        k_len = mask.shape[1]
        causal = np.arange(k_len)[None, :] <= (np.arange(q_len)[:, None] + past_len)  # (Q, K)
        keep = keep * causal[None, None].astype(dtype)
    return (1.0 - keep) * np.finfo(dtype).min


def head_mask_per_layer(config: BigBirdConfig, head_mask: np.ndarray | None, dtype: np.dtype) -> list:
    """``head_mask`` of shape (heads,) or (layers, heads) as per-layer ``(1, heads, 1, 1)`` multipliers."""
    if head_mask is None:
        return [None] * config.num_hidden_layers
    hm = np.asarray(head_mask, dtype)
    L, H = config.num_hidden_layers, config.num_attention_heads
    if hm.shape == (H,):
        hm = np.broadcast_to(hm, (L, H))
    if hm.shape != (L, H):
        raise fail(InputError, "head_mask", f"shape ({H},) or ({L}, {H})", hm)
    return [hm[i][None, :, None, None] for i in range(L)]


def run_body(
    p: Params, prefix: str, config: BigBirdConfig, *, input_ids=None, attention_mask=None, token_type_ids=None,
    position_ids=None, inputs_embeds=None, head_mask=None, output_attentions=False, output_hidden_states=False,
    training=False, plan=None, pooler=True,
) -> BodyOutput:  # fmt: skip
    """The encoder on one batch: validation, padding, embeddings, layers, pooler (not cut back)."""
    batch, seq = check_inputs(config, input_ids=input_ids, inputs_embeds=inputs_embeds,
                              attention_mask=attention_mask, token_type_ids=token_type_ids,
                              position_ids=position_ids)  # fmt: skip
    dtype = p[prefix + "embeddings.LayerNorm.weight"].dtype
    call = plan_call(config, seq)
    mask = (
        np.ones((batch, seq), dtype) if attention_mask is None else np.asarray(attention_mask).astype(dtype)
    )
    types = np.zeros((batch, seq), np.int64) if token_type_ids is None else np.asarray(token_type_ids)
    if inputs_embeds is not None:
        inputs_embeds = np.asarray(inputs_embeds, dtype)
    if call.pad_len:
        pads, pad = pad_values(config), ((0, 0), (0, call.pad_len))
        if input_ids is not None:
            input_ids = np.pad(input_ids, pad, constant_values=pads["input_ids"])
        if position_ids is not None:
            position_ids = np.pad(position_ids, pad, constant_values=pads["position_ids"])
        if inputs_embeds is not None:
            # transformers pads given embeddings with the *embedding output* of pad tokens (positions 0..)
            pad_ids = np.full((batch, call.pad_len), config.pad_token_id)
            pad_pos = np.broadcast_to(np.arange(call.pad_len), pad_ids.shape)
            extra = embed(p, prefix, config, pad_ids, np.zeros_like(pad_ids), pad_pos, None)
            inputs_embeds = np.concatenate([inputs_embeds, extra], axis=1)
        mask = np.pad(mask, pad, constant_values=pads["attention_mask"])
        types = np.pad(types, pad, constant_values=pads["token_type_ids"])
    length = call.padded_len
    if position_ids is None:
        position_ids = np.broadcast_to(np.arange(length), (batch, length))
    x = embed(p, prefix, config, input_ids, types, position_ids, inputs_embeds)  # (B, L, hidden)

    layout = None
    if call.block_sparse:
        if plan is None:
            plan = make_plan(config, call.num_blocks, training=training)
        layout = block_layout(check_plan(config, call.num_blocks, plan), config.block_size)
        additive = None
    else:
        additive = full_attention_mask(config, mask, length, dtype)
    head_masks = head_mask_per_layer(config, head_mask, dtype)
    act = ACTIVATIONS[config.hidden_act]
    hidden, attentions = [], []
    for i in range(config.num_hidden_layers):
        if output_hidden_states:
            hidden.append(x)
        a = f"{prefix}encoder.layer.{i}."
        q, k, v = (_heads(linear(x, p[a + f"attention.self.{n}.weight"], p.get(a + f"attention.self.{n}.bias")), config)
                   for n in ("query", "key", "value"))  # fmt: skip
        if layout is not None:
            ctx, probs = block_sparse_attention(q, k, v, mask, layout, i, output_attentions)
        else:
            ctx, probs = full_attention(q, k, v, additive, head_masks[i])
        ctx = ctx.transpose(0, 2, 1, 3).reshape(batch, length, config.hidden_size)  # (B, L, hidden)
        h = linear(ctx, p[a + "attention.output.dense.weight"], p[a + "attention.output.dense.bias"])
        x = layer_norm(h + x, p[a + "attention.output.LayerNorm.weight"], p[a + "attention.output.LayerNorm.bias"],
                       config.layer_norm_eps)  # fmt: skip
        h = act(linear(x, p[a + "intermediate.dense.weight"], p[a + "intermediate.dense.bias"]))
        h = linear(h, p[a + "output.dense.weight"], p[a + "output.dense.bias"])
        x = layer_norm(
            h + x, p[a + "output.LayerNorm.weight"], p[a + "output.LayerNorm.bias"], config.layer_norm_eps
        )
        if output_attentions:
            attentions.append(probs)
    if output_hidden_states:
        hidden.append(x)
    pooled = None
    if pooler:
        pooled = np.tanh(linear(x[:, 0], p[prefix + "pooler.weight"], p[prefix + "pooler.bias"]))
    return BodyOutput(x, pooled, tuple(hidden) if output_hidden_states else None,
                      tuple(attentions) if output_attentions else None, call)  # fmt: skip
