"""Fuzzing the newer argument surfaces: generate's keywords, decoder caches and encoder-decoder configs. Every
input runs (with results of the right shape) or raises the library's own error, never another exception."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigbird_core as core
from bigbird_core import BigBirdConfig, BigBirdError
from bigbird_core.encoder_decoder import EncoderDecoderConfig
from cases import causal_lms

# BIGBIRD_FUZZ_EXAMPLES=500 for a longer sweep than CI's
FUZZ = settings(max_examples=int(os.environ.get("BIGBIRD_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
CFG = BigBirdConfig(vocab_size=48, hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=2,
                    max_position_embeddings=32, block_size=4, num_random_blocks=1, pad_token_id=0, bos_token_id=1,
                    eos_token_id=2, sep_token_id=3, is_decoder=True)  # fmt: skip

odd = (st.none() | st.booleans() | st.sampled_from([-1, 0, 1, 2, 3, 5, 31, 32, 33, 47, 48, 10**9])
       | st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, math.nan, math.inf]) | st.sampled_from(["never", "yes", ""])
       | st.lists(st.integers(-1, 50), max_size=3))  # fmt: skip
GENERATE_KEYS = ("max_length", "max_new_tokens", "eos_token_id", "pad_token_id", "do_sample", "temperature", "top_k",
                 "top_p", "num_beams", "length_penalty", "early_stopping")  # fmt: skip
generate_kwargs = st.dictionaries(st.sampled_from(GENERATE_KEYS), odd, max_size=3)


DECODERS = causal_lms(CFG)


@pytest.mark.parametrize("backend,model,to", DECODERS, ids=[d[0] for d in DECODERS])
@FUZZ
@given(kwargs=generate_kwargs, prompt=st.lists(st.integers(-2, 50), min_size=0, max_size=6))
def test_generate_keywords(backend, model, to, kwargs, prompt):
    if backend == "flax" and kwargs.get("num_beams") not in (None, 1, 2):  # compiles per beam count: keep it short
        kwargs["num_beams"] = 2
    try:
        out = model.generate(to(np.array([prompt], np.int64)) if prompt else to(np.zeros((1, 0), np.int64)), **kwargs)
    except BigBirdError:
        return
    tokens = np.asarray(out.sequences if hasattr(out, "sequences") else out)
    assert tokens.ndim == 2 and tokens.shape[0] == 1 and len(prompt) < tokens.shape[1] <= CFG.max_position_embeddings
    assert tokens.min() >= 0 and tokens.max() < CFG.vocab_size


def _cache():
    model = core.BigBirdForCausalLM(CFG, seed=0)
    out = model(input_ids=np.array([[5, 6, 7]]), use_cache=True)
    return model, out.past_key_values


MODEL, CACHE = _cache()
mutations = st.sampled_from(["drop layer", "extra layer", "drop entry", "swap", "transpose", "slice", "float64",
                             "int64", "list", "none entry", "scalar", "batch", "nothing"])  # fmt: skip


@FUZZ
@given(mutation=mutations, layer=st.integers(0, 1), entry=st.integers(0, 1))
def test_growing_caches(mutation, layer, entry):
    cache = [list(x) for x in CACHE]
    x = cache[layer][entry]
    if mutation == "drop layer":
        cache = cache[:1]
    elif mutation == "extra layer":
        cache = cache + [cache[0]]
    elif mutation == "drop entry":
        cache[layer] = cache[layer][:1]
    elif mutation == "swap":
        cache[layer][entry] = cache[layer][entry].transpose(0, 2, 1, 3)
    elif mutation == "transpose":
        cache[layer][entry] = x.transpose(3, 1, 2, 0)
    elif mutation == "slice":
        cache[layer][entry] = x[:, :, :1]
    elif mutation in ("float64", "int64"):
        cache[layer][entry] = x.astype(mutation)
    elif mutation == "list":
        cache[layer][entry] = x.tolist()
    elif mutation == "none entry":
        cache[layer][entry] = None
    elif mutation == "scalar":
        cache[layer] = 3
    elif mutation == "batch":
        cache[layer][entry] = np.concatenate([x, x])
    try:
        out = MODEL(input_ids=np.array([[8]]), past_key_values=tuple(tuple(c) if isinstance(c, list) else c
                                                                     for c in cache), use_cache=True)  # fmt: skip
    except BigBirdError:
        return
    assert mutation == "nothing" or mutation == "swap" and x.shape[1] == x.shape[2], mutation
    assert out.logits.shape == (1, 1, CFG.vocab_size)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PAIR = EncoderDecoderConfig.from_encoder_decoder_configs(CFG.replace(is_decoder=False), CFG).to_dict()
pair_fields = st.sampled_from(["decoder_start_token_id", "pad_token_id", "eos_token_id", "model_type", "encoder",
                               "decoder", "is_encoder_decoder"])  # fmt: skip


@FUZZ
@given(changes=st.dictionaries(pair_fields, json_values, max_size=3), side=st.sampled_from(["encoder", "decoder"]),
       inner=st.dictionaries(st.sampled_from(["vocab_size", "hidden_size", "is_decoder", "add_cross_attention",
                                              "model_type", "num_hidden_layers", "layer_norm_eps"]), json_values,
                             max_size=2))  # fmt: skip
def test_pair_configs(changes, side, inner):
    data = {**PAIR, **changes}
    if isinstance(data.get(side), dict):
        data[side] = {**data[side], **inner}
    try:
        config = EncoderDecoderConfig.from_dict(data)
    except BigBirdError:
        return
    assert EncoderDecoderConfig.from_dict(config.to_dict()) == config  # a valid one round-trips
