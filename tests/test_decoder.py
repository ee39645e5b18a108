"""The decoder half of the API in every backend: cross-attention (transformers' parameter names, the oracle's
numbers), cached decoding equal to the full forward at every step, and the errors of bad decoder calls.

Oracles: transformers 4.57.6's Flax classes, and its PyTorch classes with the decoder layer patched to compute
what its Flax layer computes (``oracle.decoder_layers_as_in_flax``: the unpatched PyTorch layer attends to the
encoder from its self-attention, a bug pinned below)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import transformers  # noqa: E402

import bigbird_core as bc  # noqa: E402
import bigbird_flax as bf  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, InputError  # noqa: E402
from bigbird_core.tolerances import assert_close, identical  # noqa: E402
from oracle import decoder_layers_as_in_flax, hf_config  # noqa: E402

BACKENDS = ("numpy", "torch", "flax")
MODULES = {"numpy": bc, "torch": bt, "flax": bf}
DECODER = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        num_hidden_layers=2, max_position_embeddings=64, block_size=8, num_random_blocks=2,
                        is_decoder=True, add_cross_attention=True, attention_type="original_full",
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
HEADS = ("BigBirdModel", "BigBirdForCausalLM")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """transformers' PyTorch decoders with cross-attention, saved: ``{head: directory}``."""
    out = {}
    for head in HEADS:
        torch.manual_seed(0)
        model = getattr(transformers, head)(hf_config(DECODER)).eval()
        out[head] = str(tmp_path_factory.mktemp(head))
        model.save_pretrained(out[head])
    return out


def inputs(batch: int = 2, length: int = 11, encoder_len: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, (batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, :3] = 0  # a left-padded prompt
    enc_mask = np.ones((batch, encoder_len), np.int64)
    enc_mask[0, 5:] = 0  # a padded encoder input
    return dict(input_ids=ids, attention_mask=mask, encoder_hidden_states=rng.standard_normal(
        (batch, encoder_len, DECODER.hidden_size)).astype(np.float32), encoder_attention_mask=enc_mask)  # fmt: skip


def load(backend: str, head: str, directory: str):
    model = MODULES[backend].MODEL_CLASSES[head].from_pretrained(directory)
    return model if backend == "flax" else model.eval()


def call(backend: str, model, train: bool = False, **kwargs):
    """One forward call with NumPy inputs; the outputs as NumPy (caches left as they are)."""
    if backend == "torch":
        model.train(train)
        with torch.no_grad():
            return model(**{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    if backend == "flax":  # (transformers' Flax call has no use_cache: a cache is kept when one is given)
        kwargs.pop("use_cache", None)
        return model(**{k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}, train=train)
    return model.train(train)(**kwargs)


def main_output(head: str, out) -> np.ndarray:
    return np.asarray(out.logits if head == "BigBirdForCausalLM" else out.last_hidden_state, np.float64)


def valid(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` ``(batch, seq, ...)`` with the padded positions zeroed (their outputs mean nothing)."""
    return np.asarray(x, np.float64) * mask.reshape(mask.shape + (1,) * (x.ndim - 2))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_attention_equals_transformers(backend, head, train, checkpoints):
    x = inputs()
    model = load(backend, head, checkpoints[head])
    out = call(backend, model, train=train, output_attentions=True, output_hidden_states=True, use_cache=False, **x)
    flax_oracle = getattr(transformers, "Flax" + head).from_pretrained(checkpoints[head], from_pt=True)
    expected = flax_oracle(**{k: jnp.asarray(v) for k, v in x.items()}, output_attentions=True, train=train,
                           output_hidden_states=True, dropout_rng=jax.random.PRNGKey(0))  # fmt: skip
    with decoder_layers_as_in_flax():
        pt = getattr(transformers, head).from_pretrained(checkpoints[head]).train(train)
        with torch.no_grad():
            expected_pt = pt(**{k: torch.as_tensor(v) for k, v in x.items()}, output_attentions=True,
                             output_hidden_states=True, use_cache=False)  # fmt: skip
    m = x["attention_mask"]
    for oracle in (expected, expected_pt):
        assert_close(valid(main_output(head, out), m), valid(main_output(head, oracle), m), name=head)
        assert len(out.cross_attentions) == DECODER.num_hidden_layers
        for got, want in zip(out.cross_attentions, oracle.cross_attentions, strict=True):
            assert got.shape == (2, DECODER.num_attention_heads, 11, 7)
            assert_close(valid(np.swapaxes(np.asarray(got), 1, 2), m), valid(np.swapaxes(
                np.asarray(want.detach() if hasattr(want, "detach") else want), 1, 2), m), name="cross_attentions")  # fmt: skip
        for got, want in zip(out.attentions, oracle.attentions, strict=True):
            want = np.asarray(want.detach() if hasattr(want, "detach") else want)
            assert_close(valid(np.swapaxes(np.asarray(got), 1, 2), m), valid(np.swapaxes(want, 1, 2), m),
                         name="attentions")  # fmt: skip


def test_the_pytorch_oracle_is_patched_only_where_it_differs(checkpoints):
    """transformers 4.57.6's PyTorch decoder with cross-attention attends to the encoder from its self-attention:
    it differs from its own Flax class (and from the patched layer); without encoder states the two agree."""
    x = inputs()
    pt = transformers.BigBirdForCausalLM.from_pretrained(checkpoints["BigBirdForCausalLM"]).eval()
    flax_oracle = transformers.FlaxBigBirdForCausalLM.from_pretrained(checkpoints["BigBirdForCausalLM"], from_pt=True)
    with torch.no_grad():
        buggy = pt(**{k: torch.as_tensor(v) for k, v in x.items()}, use_cache=False).logits.numpy()
        plain = pt(torch.as_tensor(x["input_ids"]), attention_mask=torch.as_tensor(x["attention_mask"])).logits
    right = np.asarray(flax_oracle(**{k: jnp.asarray(v) for k, v in x.items()}).logits)
    m = x["attention_mask"]
    assert np.abs(valid(buggy, m) - valid(right, m)).max() > 1e-3  # if this fails, transformers fixed the layer
    flax_plain = flax_oracle(jnp.asarray(x["input_ids"]), attention_mask=jnp.asarray(m)).logits
    assert_close(valid(plain.numpy(), m), valid(np.asarray(flax_plain), m))


@pytest.mark.parametrize("backend", ["torch", "flax"])
def test_cross_attention_weights_keep_transformers_names_bit_for_bit(backend, checkpoints, tmp_path):
    directory = checkpoints["BigBirdForCausalLM"]
    model = load(backend, "BigBirdForCausalLM", directory)
    if backend == "torch":
        reference = transformers.BigBirdForCausalLM.from_pretrained(directory).state_dict()
        ours = model.state_dict()
        assert any(".crossattention.self.query.weight" in k for k in ours)
        for name, value in reference.items():
            if name in ours:
                assert identical(ours[name].numpy(), value.numpy()), name
        assert {k for k in ours} == {k for k in reference if "predictions.decoder" not in k}
    else:
        reference = transformers.FlaxBigBirdForCausalLM.from_pretrained(directory, from_pt=True).params
        ref_leaves = dict(jax.tree_util.tree_leaves_with_path(reference))
        ours = dict(jax.tree_util.tree_leaves_with_path(model.params))
        assert any("crossattention" in jax.tree_util.keystr(p) for p in ours)
        shared = set(ours) & set(ref_leaves)
        assert shared == set(ours) - {p for p in ours if "pooler" in jax.tree_util.keystr(p)}
        for path in shared:
            assert identical(np.asarray(ours[path]), np.asarray(ref_leaves[path])), jax.tree_util.keystr(path)
    model.save_pretrained(tmp_path / "again")  # and back: transformers reads what we wrote
    if backend == "torch":
        again = transformers.BigBirdForCausalLM.from_pretrained(tmp_path / "again").state_dict()
        for name, value in reference.items():
            assert identical(again[name].numpy(), value.numpy()), name
    else:
        again = transformers.FlaxBigBirdForCausalLM.from_pretrained(tmp_path / "again").params
        for path, value in jax.tree_util.tree_leaves_with_path(again):
            assert identical(np.asarray(value), np.asarray(ref_leaves[path])), jax.tree_util.keystr(path)


def decode_stepwise(backend: str, model, x: dict, prefill: int, cross: bool) -> list[np.ndarray]:
    """Logits of a prefill of ``prefill`` tokens, then one token at a time with the cache."""
    ids, mask = x["input_ids"], x["attention_mask"]
    extra = {k: x[k] for k in ("encoder_hidden_states", "encoder_attention_mask")} if cross else {}
    length = ids.shape[1]
    if backend == "flax":  # a fixed-size cache of 16 positions; the mask covers them all
        past = model.init_cache(ids.shape[0], 16)
        big = np.zeros((ids.shape[0], 16), np.int64)
        big[:, :length] = mask
        positions = np.broadcast_to(np.arange(length), ids.shape)
        steps = [(0, prefill)] + [(t, t + 1) for t in range(prefill, length)]
        logits = []
        for a, b in steps:
            out = call(backend, model, input_ids=ids[:, a:b], attention_mask=big, position_ids=positions[:, a:b],
                       past_key_values=past, **extra)  # fmt: skip
            past = out.past_key_values
            logits.append(np.asarray(out.logits))
        return logits
    out = call(backend, model, input_ids=ids[:, :prefill], attention_mask=mask[:, :prefill], use_cache=True, **extra)
    logits = [np.asarray(out.logits)]
    for t in range(prefill, length):
        past = out.past_key_values
        assert len(past[0]) == (4 if cross else 2)  # cross keys and values are cached too
        out = call(backend, model, input_ids=ids[:, t : t + 1], attention_mask=mask[:, : t + 1],
                   past_key_values=past, use_cache=True, **extra)  # fmt: skip
        logits.append(np.asarray(out.logits))
    return logits


@pytest.mark.parametrize("cross", [True, False], ids=["cross", "self-only"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_decoding_with_the_cache_equals_the_full_forward_at_every_step(backend, cross, checkpoints):
    x = inputs()
    model = load(backend, "BigBirdForCausalLM", checkpoints["BigBirdForCausalLM"])
    extra = {k: x[k] for k in ("encoder_hidden_states", "encoder_attention_mask")} if cross else {}
    full = np.asarray(call(backend, model, input_ids=x["input_ids"], attention_mask=x["attention_mask"],
                           use_cache=False, **extra).logits)  # fmt: skip
    steps = decode_stepwise(backend, model, x, 5, cross)
    got = np.concatenate(steps, axis=1)
    assert got.shape == full.shape
    m = x["attention_mask"]
    assert_close(valid(got, m), valid(full, m), name=f"{backend} cached logits")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_decoder_calls_give_one_error_everywhere(backend, checkpoints, tmp_path):
    encoder = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                            num_hidden_layers=2, max_position_embeddings=64, block_size=8, num_random_blocks=2)  # fmt: skip
    plain = MODULES[backend].MODEL_CLASSES["BigBirdModel"](encoder)
    x = inputs()
    with pytest.raises(InputError, match=r"^encoder_hidden_states: expected None: this model has no cross-attention "
                       r"\(config.add_cross_attention is False\), got a floating-point array of shape \(2, 7, 32\)$"):
        call(backend, plain, input_ids=x["input_ids"], encoder_hidden_states=x["encoder_hidden_states"])
    decoder = load(backend, "BigBirdForCausalLM", checkpoints["BigBirdForCausalLM"])
    with pytest.raises(InputError, match=r"^encoder_attention_mask: expected None without encoder_hidden_states"):
        call(backend, decoder, input_ids=x["input_ids"], encoder_attention_mask=x["encoder_attention_mask"])
    with pytest.raises(InputError, match=r"^encoder_hidden_states: expected a float array of shape \(2, "
                       r"encoder_len, 32\), got a floating-point array of shape \(2, 7, 16\)$"):
        call(backend, decoder, input_ids=x["input_ids"], encoder_hidden_states=x["encoder_hidden_states"][..., :16])
    with pytest.raises(InputError, match=r"^input_ids: expected at most max_position_embeddings = 64 tokens, got 65"):
        call(backend, decoder, input_ids=np.ones((1, 65), np.int64))
    if backend == "flax":
        cache = decoder.init_cache(2, 12)
        with pytest.raises(InputError, match=r"^past_key_values: expected None unless config.is_decoder is True"):
            call(backend, plain, input_ids=x["input_ids"], past_key_values=cache)
        with pytest.raises(InputError, match=r"^max_length: expected an integer in \[1, max_position_embeddings = "
                           r"64\], got 65$"):
            decoder.init_cache(2, 65)
        with pytest.raises(InputError, match=r"^past_key_values: expected room for 11 more token\(s\), got a cache "
                           r"holding 0 of its max_length 8$"):
            call(backend, decoder, input_ids=x["input_ids"], attention_mask=np.ones((2, 8), np.int64),
                 position_ids=np.zeros((2, 11), np.int64), past_key_values=decoder.init_cache(2, 8))
        with pytest.raises(InputError, match=r"^position_ids: expected the positions of the new tokens"):
            call(backend, decoder, input_ids=x["input_ids"][:, :2], attention_mask=np.ones((2, 12), np.int64),
                 past_key_values=cache)  # fmt: skip
    else:
        out = call(backend, decoder, input_ids=x["input_ids"], use_cache=True)
        with pytest.raises(InputError, match=r"^past_key_values: expected None unless config.is_decoder is True"):
            call(backend, plain, input_ids=x["input_ids"], past_key_values=out.past_key_values)
        with pytest.raises(InputError, match=r"^input_ids: expected at most max_position_embeddings = 64 tokens, got "
                           r"65 tokens$"):  # a cache of 11 and 54 new tokens
            call(backend, decoder, input_ids=np.ones((2, 54), np.int64), past_key_values=out.past_key_values)
        with pytest.raises(InputError, match=r"^past_key_values: expected a tuple of 2 layers \(one per layer\), got "
                           r"1 layers$"):
            call(backend, decoder, input_ids=x["input_ids"], past_key_values=out.past_key_values[:1])
