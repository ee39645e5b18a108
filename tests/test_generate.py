"""``generate`` in torch and Flax against transformers' PyTorch ``generate`` on the same weights, token for token:
a decoder alone (its cached generate works) and an encoder-decoder pair (transformers' ``EncoderDecoderModel``
with BigBird on both sides; its decoder layer patched to its Flax twin, ``use_cache=False`` because its cache
crashes on that pair). Sampling is reproducible from a seed / PRNG key; bad arguments fail alike in both."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import transformers  # noqa: E402

import bigbird_flax as bf  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, EncoderDecoderConfig, InputError  # noqa: E402
from bigbird_core.tolerances import assert_close, identical  # noqa: E402
from oracle import decoder_layers_as_in_flax, hf_config  # noqa: E402

# a wide initialisation makes the next token depend on the input (tiny random models otherwise repeat one token)
DECODER = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        num_hidden_layers=2, max_position_embeddings=64, block_size=8, num_random_blocks=2,
                        is_decoder=True, attention_type="original_full", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, initializer_range=0.5)  # fmt: skip
ENCODER = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        num_hidden_layers=2, max_position_embeddings=512, block_size=8, num_random_blocks=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.3)  # fmt: skip
SEARCHES = {
    "greedy": {},
    "beams": dict(num_beams=3),
    "beams-early": dict(num_beams=3, length_penalty=0.5, early_stopping=True),
    "beams-never": dict(num_beams=2, length_penalty=2.0, early_stopping="never"),
}


def prompt():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, (3, 6))
    mask = np.ones_like(ids)
    ids[1, :2], mask[1, :2] = 0, 0  # left padding
    return ids, mask


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    """transformers' decoder, saved; the end token is one it generates early, so sequences end at different
    steps: ``(hf model, directory, eos)``."""
    torch.manual_seed(0)
    model = transformers.BigBirdForCausalLM(hf_config(DECODER)).eval()
    ids, mask = prompt()
    free = model.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_length=20,
                          eos_token_id=None)  # fmt: skip
    eos = int(free[0, 9])  # example 0 ends at its 4th new token
    model.config.eos_token_id = model.generation_config.eos_token_id = eos
    directory = tmp_path_factory.mktemp("decoder")
    model.save_pretrained(directory)
    return model, str(directory), eos


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """transformers' encoder-decoder of two BigBirds of different widths (``enc_to_dec_proj``), saved."""
    decoder = ENCODER.replace(hidden_size=24, intermediate_size=48, max_position_embeddings=64,
                              attention_type="original_full")  # fmt: skip
    cfg = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(hf_config(ENCODER), hf_config(decoder))
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 7
    torch.manual_seed(0)
    model = transformers.EncoderDecoderModel(cfg).eval()
    directory = tmp_path_factory.mktemp("pair")
    model.save_pretrained(directory)
    return model, str(directory)


def long_input():
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 100, (2, 200))  # block-sparse in the encoder
    mask = np.ones_like(ids)
    mask[1, 150:] = 0
    return ids, mask


@pytest.mark.parametrize("search", list(SEARCHES))
def test_decoder_generate_equals_transformers(decoder, search):
    hf, directory, eos = decoder
    ids, mask = prompt()
    kwargs = SEARCHES[search]
    expected = hf.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_length=20, **kwargs)
    assert (expected == eos).any()  # some sequence ended early
    model = bt.BigBirdForCausalLM.from_pretrained(directory)
    got = model.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_length=20, **kwargs)
    assert torch.equal(got, expected), (got, expected)
    flax = bf.FlaxBigBirdForCausalLM.from_pretrained(directory).generate(ids, attention_mask=mask, max_length=20,
                                                                        **kwargs).sequences  # fmt: skip
    assert flax.shape == (3, 20)  # static: max_length, padded after the end
    assert np.array_equal(np.asarray(flax)[:, : expected.shape[1]], expected.numpy())
    pad = model.config.pad_token_id if search == "greedy" else eos  # transformers' fill of finished beams
    assert (np.asarray(flax)[:, expected.shape[1] :] == pad).all()


def test_decoder_max_new_tokens_and_no_cache(decoder):
    hf, directory, _ = decoder
    ids, mask = prompt()
    model = bt.BigBirdForCausalLM.from_pretrained(directory)
    expected = hf.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_new_tokens=9,
                           eos_token_id=None)  # fmt: skip
    assert expected.shape == (3, 15)
    for use_cache in (True, False):
        got = model.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_new_tokens=9,
                             eos_token_id=[], use_cache=use_cache)  # fmt: skip
        assert torch.equal(got, expected)


@pytest.mark.parametrize("search", ["greedy", "beams", "beams-early"])
def test_encoder_decoder_generate_equals_transformers(pair, search):
    hf, directory = pair
    ids, mask = long_input()
    kwargs = SEARCHES[search]
    with decoder_layers_as_in_flax(), torch.no_grad():
        expected = hf.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_length=16,
                               use_cache=False, **kwargs)  # fmt: skip
    model = bt.BigBirdEncoderDecoderModel.from_pretrained(directory)
    assert model.enc_to_dec_proj is not None and not model.load_report.missing_keys
    got = model.generate(torch.as_tensor(ids), attention_mask=torch.as_tensor(mask), max_length=16, **kwargs)
    assert torch.equal(got, expected), (got, expected)
    flax = bf.FlaxBigBirdEncoderDecoderModel.from_pretrained(directory)
    out = flax.generate(ids, attention_mask=mask, max_length=16, **kwargs).sequences
    assert np.array_equal(np.asarray(out)[:, : expected.shape[1]], expected.numpy())


@pytest.mark.parametrize("backend", ["torch", "flax"])
def test_encoder_decoder_forward_and_loss_equal_transformers(pair, backend, tmp_path):
    hf, directory = pair
    ids, mask = long_input()
    labels = np.random.default_rng(2).integers(5, 100, (2, 9))
    labels[0, -2:] = -100  # ignored: shifted in as padding, masked out
    with decoder_layers_as_in_flax(), torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
                      labels=torch.as_tensor(labels), output_attentions=True)  # fmt: skip
    if backend == "torch":
        model = bt.BigBirdEncoderDecoderModel.from_pretrained(directory)
        with torch.no_grad():
            out = model(input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(mask),
                        labels=torch.as_tensor(labels), output_attentions=True)  # fmt: skip
    else:
        model = bf.FlaxBigBirdEncoderDecoderModel.from_pretrained(directory)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, output_attentions=True)
    assert_close(out.logits, expected.logits, name="logits")
    assert_close(out.loss, expected.loss, name="loss")
    assert_close(out.encoder_last_hidden_state, expected.encoder_last_hidden_state, name="encoder")
    for got, want in zip(out.cross_attentions, expected.cross_attentions, strict=True):
        assert_close(got, want, name="cross_attentions")
    # saved in transformers' layout: transformers and the other backend read it back bit for bit
    model.save_pretrained(tmp_path / "saved")
    if backend == "torch":
        again = transformers.EncoderDecoderModel.from_pretrained(tmp_path / "saved").state_dict()
        for name, value in hf.state_dict().items():
            assert identical(again[name].numpy(), value.numpy()), name
    else:
        again = bt.BigBirdEncoderDecoderModel.from_pretrained(tmp_path / "saved").state_dict()
        for name, value in again.items():
            assert identical(value.numpy(), hf.state_dict()[name].numpy()), name


def test_sampling_is_reproducible_and_warped(decoder):
    _, directory, _ = decoder
    ids, mask = prompt()
    model = bt.BigBirdForCausalLM.from_pretrained(directory)
    flax = bf.FlaxBigBirdForCausalLM.from_pretrained(directory)
    t = lambda x: torch.as_tensor(x)  # noqa: E731
    sample = dict(do_sample=True, max_length=20, temperature=1.5, top_k=20, top_p=0.95, eos_token_id=[])
    a, b = (model.generate(t(ids), attention_mask=t(mask), seed=3, **sample) for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, model.generate(t(ids), attention_mask=t(mask), seed=4, **sample))
    key = jax.random.PRNGKey(3)
    fa, fb = (np.asarray(flax.generate(ids, attention_mask=mask, prng_key=key, **sample).sequences) for _ in range(2))
    assert np.array_equal(fa, fb)
    fc = np.asarray(flax.generate(ids, attention_mask=mask, prng_key=jax.random.PRNGKey(4), **sample).sequences)
    assert not np.array_equal(fa, fc)
    # top_k=1 leaves one token: sampling is greedy decoding
    greedy = model.generate(t(ids), attention_mask=t(mask), max_length=20, eos_token_id=[])
    one = dict(do_sample=True, top_k=1, max_length=20, eos_token_id=[])
    assert torch.equal(model.generate(t(ids), attention_mask=t(mask), seed=5, **one), greedy)
    flax_one = flax.generate(ids, attention_mask=mask, prng_key=key, **one).sequences
    assert np.array_equal(np.asarray(flax_one), greedy.numpy())
    beam_sample = dict(do_sample=True, num_beams=2, max_length=12, eos_token_id=[])
    assert torch.equal(*(model.generate(t(ids), attention_mask=t(mask), seed=1, **beam_sample) for _ in range(2)))


@pytest.mark.parametrize("backend", ["torch", "flax"])
def test_bad_generate_calls_fail_alike(backend, decoder):
    _, directory, _ = decoder
    model = (bt.BigBirdForCausalLM if backend == "torch" else bf.FlaxBigBirdForCausalLM).from_pretrained(directory)
    ids = np.ones((1, 4), np.int64)
    run = (lambda **kw: model.generate(torch.as_tensor(ids), **kw)) if backend == "torch" else (
        lambda **kw: model.generate(ids, **kw))  # fmt: skip
    cases = {
        r"^max_length: expected a total length of at most max_position_embeddings = 64, got 65 tokens$":
            dict(max_length=65),
        r"^max_new_tokens: expected a total length of at most max_position_embeddings = 64, got 65 tokens$":
            dict(max_new_tokens=61),
        r"^max_length: expected more than the prompt's 4 tokens \(or use max_new_tokens\), got 4$": dict(max_length=4),
        r"^num_beams: expected a positive integer, got 0$": dict(num_beams=0),
        r"^top_p: expected a number in \(0, 1\], got 0$": dict(top_p=0),
        r"^temperature: expected a positive finite number, got -1$": dict(temperature=-1),
        r"^early_stopping: expected True, False or \"never\", got 'soon'$": dict(early_stopping="soon"),
        r"^eos_token_id: expected token ids in \[0, 100\), got 100$": dict(eos_token_id=100),
    }  # fmt: skip
    for message, kwargs in cases.items():
        with pytest.raises(InputError, match=message):
            run(**kwargs)
    plain = (bt if backend == "torch" else bf).BigBirdForCausalLM(DECODER.replace(is_decoder=False))
    with pytest.raises(InputError, match=r"^config.is_decoder: expected True for generation \(a decoder\), got False"):
        (plain.generate(torch.as_tensor(ids)) if backend == "torch" else plain.generate(ids))


def test_encoder_decoder_config_rules():
    with pytest.raises(Exception, match=r"^decoder: expected a config with is_decoder and add_cross_attention True"):
        EncoderDecoderConfig(ENCODER, DECODER)
    pair = EncoderDecoderConfig.from_encoder_decoder_configs(ENCODER, ENCODER, decoder_start_token_id=1)
    assert pair.decoder.is_decoder and pair.decoder.add_cross_attention and not pair.projection
    assert EncoderDecoderConfig.from_dict(pair.to_dict()) == pair
    model = bt.BigBirdEncoderDecoderModel(pair, seed=0)
    assert model.enc_to_dec_proj is None and "decoder.bert.encoder.layer.0.crossattention.self.query.weight" in (
        model.state_dict())  # fmt: skip


def test_flax_generation_helpers_drive_a_manual_loop(decoder):
    """transformers' Flax protocol: prepare_inputs_for_generation, then calls on the cache with
    update_inputs_for_generation between them, decode what generate decodes."""
    _, directory, _ = decoder
    ids, mask = prompt()
    model = bf.FlaxBigBirdForCausalLM.from_pretrained(directory)
    kwargs = model.prepare_inputs_for_generation(ids, 14, attention_mask=mask)
    tokens, step = ids, ids
    for _ in range(14 - ids.shape[1]):
        out = model(step, **kwargs)
        step = np.asarray(out.logits[:, -1].argmax(-1))[:, None]
        tokens = np.concatenate([tokens, step], axis=1)
        kwargs = model.update_inputs_for_generation(out, kwargs)
    expected = model.generate(ids, attention_mask=mask, max_length=14, eos_token_id=[]).sequences
    assert np.array_equal(tokens, np.asarray(expected))
