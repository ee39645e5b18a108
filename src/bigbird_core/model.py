"""The NumPy reference body: embeddings, encoder layers (both attention types) and pooler.

Parameters are a ``{canonical name: ndarray}`` dict; ``prefix`` is ``"bert."`` inside heads and ``""``
in ``BigBirdModel``. Everything is computed in the parameters' dtype (float32 or float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention import block_sparse_attention, full_attention
from .config import BigBirdConfig
from .numerics import ACTIVATIONS, layer_norm, linear
from .recipe import PreparedCall

Params = dict[str, np.ndarray]


@dataclass
class BodyOutput:
    sequence_output: np.ndarray  # (batch, padded seq, hidden)
    pooled: np.ndarray | None  # (batch, hidden)
    hidden_states: tuple[np.ndarray, ...] | None
    attentions: tuple[np.ndarray, ...] | None

    def as_dict(self) -> dict:
        return {"sequence_output": self.sequence_output, "pooled": self.pooled,
                "hidden_states": self.hidden_states, "attentions": self.attentions}  # fmt: skip


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


def run_body(p: Params, prefix: str, prep: PreparedCall, pooler: bool = True) -> BodyOutput:
    """The encoder on one prepared call: embeddings, layers, pooler (the sequence is not cut back)."""
    config = prep.config
    batch, length = prep.position_ids.shape
    dtype = p[prefix + "embeddings.LayerNorm.weight"].dtype
    embeds = prep.inputs_embeds
    if embeds is not None:
        pad = prep.embeds_pad
        embeds = np.asarray(embeds, dtype)
        if pad is not None:
            embeds = prep.full_embeds(embed(p, prefix, config, pad["input_ids"], pad["token_type_ids"],
                                            pad["position_ids"], None))  # fmt: skip
    x = embed(p, prefix, config, prep.input_ids, prep.token_type_ids, prep.position_ids, embeds)  # (B, L, hidden)
    mask = prep.attention_mask
    output_attentions, output_hidden_states = prep.output_attentions, prep.output_hidden_states

    layout = None if prep.layout is None else prep.layout.layout
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
            hm = None if prep.head_mask is None else prep.head_mask[i][None, :, None, None]
            ctx, probs = full_attention(q, k, v, prep.additive_mask, hm)
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
                      tuple(attentions) if output_attentions else None)  # fmt: skip
