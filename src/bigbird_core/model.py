"""The NumPy reference body: embeddings, encoder layers (both attention types) and pooler.

Parameters are a ``{canonical name: ndarray}`` dict; ``prefix`` is ``"bert."`` inside heads and ``""``
in ``BigBirdModel``. Everything is computed in the parameters' dtype (float32 or float64).
"""

from __future__ import annotations

import numpy as np

from .attention import block_sparse_attention, full_attention
from .config import BigBirdConfig
from .numerics import act, layer_norm, linear
from .recipe import BodyOutput, PreparedCall

Params = dict[str, np.ndarray]


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


def _attention_output(p: Params, a: str, ctx: np.ndarray, x: np.ndarray, config: BigBirdConfig) -> np.ndarray:
    """dense + residual LayerNorm after an attention (``a``: ``...attention.`` or ``...crossattention.``)."""
    batch, length = x.shape[:2]
    ctx = ctx.transpose(0, 2, 1, 3).reshape(batch, length, config.hidden_size)  # (B, L, hidden)
    h = linear(ctx, p[a + "output.dense.weight"], p[a + "output.dense.bias"])
    return layer_norm(h + x, p[a + "output.LayerNorm.weight"], p[a + "output.LayerNorm.bias"], config.layer_norm_eps)


def _project(p: Params, a: str, x: np.ndarray, names: tuple[str, ...], config: BigBirdConfig) -> list[np.ndarray]:
    return [_heads(linear(x, p[a + f"self.{n}.weight"], p.get(a + f"self.{n}.bias")), config) for n in names]


def run_body(p: Params, prefix: str, prep: PreparedCall, pooler: bool = True, past=None) -> BodyOutput:
    """The encoder on one prepared call: embeddings, layers, pooler (the sequence is not cut back).

    Decoders: ``past`` is a growing cache (``bigbird_core.cache``); with ``prep.use_cache`` the new one is
    returned. With cross-attention inputs every layer attends to ``prep.encoder_hidden_states`` after its
    self-attention (keys and values from the cache when it holds them)."""
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
    activate = act(config.hidden_act)
    enc = prep.encoder_hidden_states
    enc = None if enc is None else np.asarray(enc, dtype)
    hidden, attentions, crosses, presents = [], [], [], []
    for i in range(config.num_hidden_layers):
        if output_hidden_states:
            hidden.append(x)
        a = f"{prefix}encoder.layer.{i}."
        layer_past = None if past is None else past[i]
        q, k, v = _project(p, a + "attention.", x, ("query", "key", "value"), config)
        if layer_past is not None:
            k, v = np.concatenate([layer_past[0], k], axis=2), np.concatenate([layer_past[1], v], axis=2)
        present = (k, v)
        hm = None if prep.head_mask is None else prep.head_mask[i][None, :, None, None]
        if layout is not None:
            ctx, probs = block_sparse_attention(q, k, v, mask, layout, layer=i, output_attentions=output_attentions)
        else:
            ctx, probs = full_attention(q, k, v, prep.additive_mask, hm)
        x = _attention_output(p, a + "attention.", ctx, x, config)
        if enc is not None:  # cross-attention: the decoder's queries over the encoder's keys and values
            (cq,) = _project(p, a + "crossattention.", x, ("query",), config)
            if layer_past is not None and len(layer_past) == 4:
                ck, cv = layer_past[2], layer_past[3]
            else:
                ck, cv = _project(p, a + "crossattention.", enc, ("key", "value"), config)
            ctx, cprobs = full_attention(cq, ck, cv, prep.cross_mask, hm)
            x = _attention_output(p, a + "crossattention.", ctx, x, config)
            present = present + (ck, cv)
            if output_attentions:
                crosses.append(cprobs)
        if prep.use_cache:
            presents.append(present)
        h = activate(linear(x, p[a + "intermediate.dense.weight"], p[a + "intermediate.dense.bias"]))
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
    return BodyOutput(x, pooled, hidden_states=tuple(hidden) if output_hidden_states else None,
                      attentions=tuple(attentions) if output_attentions else None,
                      cross_attentions=tuple(crosses) if output_attentions and enc is not None else None,
                      past_key_values=tuple(presents) if prep.use_cache else None)  # fmt: skip
