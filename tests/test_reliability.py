"""The new surfaces fail loudly (issue: Hub cache, loading sizes, command line, inputs, caches, generate, pairs,
sequence parallelism): each row found by trying them as a user and an attacker would, with the clear error it
now gives, the same from every backend that has the surface."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import bigbird_core as core
from bigbird_core import BigBirdConfig, CheckpointError, InputError
from bigbird_core.errors import CheckpointMismatchError, CheckpointNotFoundError
from cases import causal_lms
from hubcache import hub_cache

CFG = BigBirdConfig(vocab_size=64, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=256, block_size=8, num_random_blocks=2, pad_token_id=0, bos_token_id=1,
                    eos_token_id=2, sep_token_id=3)  # fmt: skip


def loaders():
    """``from_pretrained`` of BigBirdModel in every installed backend."""
    out = [("numpy", core.BigBirdModel.from_pretrained)]
    try:
        import bigbird_torch as bt

        out.append(("torch", bt.BigBirdModel.from_pretrained))
    except ImportError:
        pass
    try:
        import bigbird_flax as bf

        out.append(("flax", bf.FlaxBigBirdModel.from_pretrained))
    except ImportError:
        pass
    return out


LOADERS = loaders()
IDS = [name for name, _ in LOADERS]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """A sharded checkpoint in a local folder and in a Hub cache."""
    tmp = tmp_path_factory.mktemp("reliable")
    core.BigBirdModel(CFG, seed=0).save_pretrained(tmp / "model", max_shard_size=20_000)
    assert (tmp / "model" / "model.safetensors.index.json").exists()
    core.BigBirdModel(CFG, seed=1).save_pretrained(tmp / "elsewhere")
    root = hub_cache(str(tmp / "cache"), "org/sharded", {"main": str(tmp / "model")})
    return tmp, root


def _snapshot(root: str, repo: str) -> str:
    base = os.path.join(root, "models--" + repo.replace("/", "--"), "snapshots")
    return os.path.join(base, os.listdir(base)[0])


# ------------------------------------------------------------------------------------------ Hub and loading
@pytest.mark.parametrize("backend,load", LOADERS, ids=IDS)
def test_a_subfolder_stays_inside_the_checkpoint(backend, load, sharded):
    tmp, root = sharded
    for bad in ("../elsewhere", str(tmp / "elsewhere"), "a/../../elsewhere"):
        with pytest.raises(InputError, match="subfolder: expected a relative path inside the checkpoint"):
            load(str(tmp / "model"), subfolder=bad)
        with pytest.raises(InputError, match="subfolder: expected a relative path inside the checkpoint"):
            load("org/sharded", subfolder=bad, cache_dir=root, local_files_only=True)


def test_a_hub_index_that_is_a_fifo_is_refused_not_waited_on(sharded, tmp_path):
    """A snapshot whose index links to a FIFO: a fresh process must fail at once (before: every backend hung)."""
    _, root = sharded
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(root, copy, symlinks=True)
    snap = _snapshot(str(copy), "org/sharded")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    os.remove(os.path.join(snap, "model.safetensors.index.json"))
    os.symlink(fifo, os.path.join(snap, "model.safetensors.index.json"))
    code = (f"import bigbird_core as c\ntry:\n    c.BigBirdModel.from_pretrained('org/sharded', cache_dir={str(copy)!r}, "
            "local_files_only=True)\nexcept c.CheckpointError as e:\n    print('refused:', e)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in run.stdout and "not a regular file" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("index", [b'{"weight_map": [1, 2]}', b"{not json", b"12", b"\xff\xfe\xfa", b'{"weight_map": {"a": 3}}',
                                   b'{"weight_map": {"a": "../x.safetensors"}}'])  # fmt: skip
def test_a_malformed_hub_index_is_a_checkpoint_error(index, sharded, tmp_path):
    _, root = sharded
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(root, copy, symlinks=True)
    target = os.path.join(_snapshot(str(copy), "org/sharded"), "model.safetensors.index.json")
    os.remove(target)
    with open(target, "wb") as fh:
        fh.write(index)
    for _, load in LOADERS:
        with pytest.raises(CheckpointError, match="index|shard"):
            load("org/sharded", cache_dir=str(copy), local_files_only=True)


@pytest.mark.parametrize("backend,load", LOADERS, ids=IDS)
def test_a_config_of_a_million_layers_is_refused_before_anything_is_built(backend, load, sharded):
    tmp, _ = sharded
    start = time.perf_counter()
    with pytest.raises(CheckpointMismatchError, match="num_hidden_layers: the config asks for 1000000 layers, the "
                       "checkpoint's weights hold 2"):  # fmt: skip
        load(str(tmp / "model"), num_hidden_layers=1_000_000)
    assert time.perf_counter() - start < 10
    with pytest.raises(RuntimeError):  # what a transformers user catches for mis-shaped weights
        load(str(tmp / "model"), hidden_size=64, num_attention_heads=2)


def test_a_header_of_a_million_tensors_is_refused_fast(tmp_path):
    import json
    import struct

    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(1_000_000)}
    raw = json.dumps(header).encode()
    os.makedirs(tmp_path / "ck")
    with open(tmp_path / "ck" / "model.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
    from bigbird_core.checkpoint import read_safetensors

    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="tensors"):
        read_safetensors(str(tmp_path / "ck" / "model.safetensors"))
    assert time.perf_counter() - start < 5  # counted in the raw header: no parse of a million entries


def test_missing_checkpoints_are_also_os_errors(tmp_path):
    for _, load in LOADERS:
        with pytest.raises(OSError):
            load(str(tmp_path / "nothing-here"))
        with pytest.raises(CheckpointNotFoundError, match="no config.json"):
            load(str(tmp_path))


@pytest.mark.parametrize("env,expect", [({"HF_HUB_OFFLINE": "1"}, "no config.json in the local Hugging Face cache "
                                         "(offline"),
                                        ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach the Hub")])  # fmt: skip
def test_a_hub_id_the_cache_lacks_says_why_and_fails_fast(env, expect, tmp_path):
    code = ("import bigbird_core as c\ntry:\n    c.BigBirdModel.from_pretrained('org/absent')\n"
            "except OSError as e:\n    print('refused:', e)")  # fmt: skip
    full = {**os.environ, "HF_HUB_CACHE": str(tmp_path), **env}
    if "HF_HUB_OFFLINE" not in env:
        full.pop("HF_HUB_OFFLINE", None)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full)
    assert f"refused: org/absent: {expect}" in run.stdout.replace("\n", " ") or expect in run.stdout, run.stdout + run.stderr
    assert time.perf_counter() - start < 20  # (before: 25 s of retries without a network)


def test_an_unreachable_hub_falls_back_to_the_cache(sharded):
    _, root = sharded
    code = ("import bigbird_core as c\nm = c.BigBirdModel.from_pretrained('org/sharded')\n"
            "print('loaded', m.config.hidden_size)")  # fmt: skip
    env = {**os.environ, "HF_HUB_CACHE": root, "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_HUB_OFFLINE", None)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "loaded 32" in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------- command line
BIGBIRD = [sys.executable, "-m", "bigbird_cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BIGBIRD, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def odd_checkpoints(tmp_path_factory):
    """Checkpoints that a check, info or convert must not pass: NaN weights, weights of no known key, int32
    weights, and an encoder-decoder pair."""
    from bigbird_core.checkpoint import write_checkpoint

    tmp = tmp_path_factory.mktemp("odd")
    nan = core.BigBirdForSequenceClassification(CFG, seed=0)
    nan.params = {k: np.full_like(v, np.nan) if "layer.0.intermediate" in k else v for k, v in nan.params.items()}
    nan.save_pretrained(tmp / "nan")
    write_checkpoint(str(tmp / "nokeys"), CFG, {"foo.weight": np.ones((3, 3), np.float32)}, "BigBirdModel",
                     "safetensors")  # fmt: skip
    ints = {k: v.astype(np.int32) for k, v in core.BigBirdModel(CFG, seed=0).params.items()}
    write_checkpoint(str(tmp / "ints"), CFG, ints, "BigBirdModel", "safetensors")
    return tmp


def test_check_fails_on_non_finite_outputs(odd_checkpoints):
    out = cli("check", "--model", str(odd_checkpoints / "nan"), "--backends", "numpy,torch",
              "--json")  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    import json

    rows = json.loads(out.stdout)["rows"]
    assert any(r["right"] == "finite" and not r["ok"] for r in rows)


def test_check_and_info_refuse_weights_that_fit_no_head(odd_checkpoints):
    for args in (("check", "--model", str(odd_checkpoints / "nokeys")), ("info", str(odd_checkpoints / "nokeys"))):
        out = cli(*args)
        assert out.returncode == 2 and "fit no head" in out.stderr, out.stdout + out.stderr
        assert "Traceback" not in out.stderr


def test_convert_writes_nothing_when_it_fails(odd_checkpoints, tmp_path):
    out = cli("convert", str(odd_checkpoints / "ints"), str(tmp_path / "dst"), "--to", "safetensors")
    assert out.returncode == 2 and "int32" in out.stderr, out.stdout + out.stderr
    assert not (tmp_path / "dst").exists()


def test_check_sizes_are_refused_before_allocation():
    start = time.perf_counter()
    out = cli("check", "--seq-len", "1000000000")
    assert out.returncode == 2 and "--seq-len: expected at most max_position_embeddings = 512" in out.stderr, out.stderr
    out = cli("check", "--batch", "100000", "--seq-len", "500")
    assert out.returncode == 2 and "GiB" in out.stderr and "--batch" in out.stderr, out.stderr
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_with_json_print_json(flag):
    import json

    out = cli(flag, "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["ok"] and (data.get("help") or data.get("version"))
    out = cli("check", flag, "--json") if flag == "--help" else out
    assert json.loads(out.stdout)["ok"]


def test_info_and_check_take_an_encoder_decoder_pair(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("flax")
    import json

    import bigbird_torch as bt
    from bigbird_core import EncoderDecoderConfig

    dec = CFG.replace(is_decoder=True, add_cross_attention=True, hidden_size=24, num_attention_heads=2)
    pair = bt.BigBirdEncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(CFG, dec))
    pair.save_pretrained(tmp_path / "pair")
    out = cli("info", str(tmp_path / "pair"), "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["kind"] == "encoder-decoder pair" and data["enc_to_dec_proj"]
    assert data["decoder"]["hidden_size"] == 24
    out = cli("check", "--model", str(tmp_path / "pair"), "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert [(r["head"], r["left"], r["right"]) for r in data["rows"]] == [("EncoderDecoderModel", "torch", "flax")]
    # a projection of the wrong shape or dtype is refused at load, the same in both backends
    state = bt.to_canonical(pair.state_dict())
    from bigbird_core.checkpoint import write_checkpoint

    for name, bad in (("shape", np.zeros((3, 3), np.float32)), ("dtype", state["enc_to_dec_proj.weight"].astype(np.int32))):
        write_checkpoint(str(tmp_path / name), pair.config, {**state, "enc_to_dec_proj.weight": bad},
                         "EncoderDecoderModel", "safetensors")  # fmt: skip
        import bigbird_flax as bf

        for load in (bt.BigBirdEncoderDecoderModel.from_pretrained, bf.FlaxBigBirdEncoderDecoderModel.from_pretrained):
            with pytest.raises(CheckpointError, match="enc_to_dec_proj.weight"):
                load(str(tmp_path / name))
    del torch


# ------------------------------------------------------------------------------------------ forward inputs
def models():
    """BigBirdModel of CFG in every installed backend (eval mode)."""
    out = [("numpy", core.BigBirdModel(CFG, seed=0))]
    try:
        import bigbird_torch as bt

        out.append(("torch", bt.BigBirdModel(CFG, seed=0).eval()))
    except ImportError:
        pass
    try:
        import bigbird_flax as bf

        out.append(("flax", bf.FlaxBigBirdModel(CFG, seed=0)))
    except ImportError:
        pass
    return out


def test_ids_past_int32_are_refused_alike():
    ids = np.array([[5, 6, 2**31 + 5, 8]], np.int64)
    messages = set()
    for _, model in models():
        with pytest.raises(InputError, match="input_ids: expected values in") as err:
            model(input_ids=ids)
        messages.add(str(err.value))
    assert len(messages) == 1  # the same message from every backend


def test_list_and_unsigned_ids_run_alike():
    for name, model in models():  # (each backend's own seeded weights)
        want = None
        for ids in ([[5, 6, 7, 8]], np.array([[5, 6, 7, 8]], np.uint8), np.array([[5, 6, 7, 8]], np.int32)):
            out = np.asarray(model(input_ids=ids).last_hidden_state if name != "torch" else
                             model(input_ids=ids).last_hidden_state.detach())  # fmt: skip
            want = out if want is None else want
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6, err_msg=f"{name} {type(ids)}")


@pytest.mark.parametrize("field,value,expected", [
    ("layer_norm_eps", float("inf"), "layer_norm_eps: expected a positive finite number, got inf"),
    ("initializer_range", -1.0, "initializer_range: expected a non-negative finite number, got -1.0"),
    ("plan_seed", -1, r"plan_seed: expected an integer in \[0, 2\*\*32\), got -1"),
])  # fmt: skip
def test_config_values_that_cannot_work_are_refused(field, value, expected):
    with pytest.raises(core.ConfigError, match=expected):
        CFG.replace(**{field: value})


def test_label_maps_must_be_mappings():
    with pytest.raises(core.ConfigError, match="id2label: expected a mapping"):
        BigBirdConfig.from_dict({**CFG.to_dict(), "id2label": "oops"})
    with pytest.raises(core.ConfigError, match="id2label: expected class indices"):
        BigBirdConfig.from_dict({**CFG.to_dict(), "id2label": {"x": "a"}})
    assert BigBirdConfig.from_dict({**CFG.to_dict(), "id2label": {"0": "neg", "1": "pos", "2": "mid"}}).num_labels == 3


# ---------------------------------------------------------------------------------- caches and cross-attention
DEC = CFG.replace(is_decoder=True, add_cross_attention=True)


def decoders():
    out = [("numpy", core.BigBirdForCausalLM(DEC, seed=0), np.asarray)]
    try:
        import bigbird_torch as bt
        import torch

        out.append(("torch", bt.BigBirdForCausalLM(DEC, seed=0).eval(), torch.as_tensor))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("backend,model,to", decoders(), ids=[b for b, _, _ in decoders()])
def test_a_growing_cache_must_match_the_call(backend, model, to):
    rng = np.random.default_rng(0)
    enc = to(rng.standard_normal((1, 8, 32)).astype(np.float32))
    out = model(input_ids=to(np.array([[5, 6, 7]])), encoder_hidden_states=enc, use_cache=True)
    cache = out.past_key_values
    for states in (1, 5):  # a cache of 8 encoder states, other encoder states given
        other = to(rng.standard_normal((1, states, 32)).astype(np.float32))
        with pytest.raises(InputError, match=rf"past_key_values\[0\]\[2\]: expected cross-attention keys/values of "
                           rf"shape \(1, 2, {states}, 16\)"):  # fmt: skip
            model(input_ids=to(np.array([[8]])), encoder_hidden_states=other, past_key_values=cache)
    for dtype in (np.float64, np.int64):  # a cache of another dtype than the model's
        bad = tuple(tuple(to(np.asarray(x if backend == "numpy" else x.detach().numpy()).astype(dtype)) for x in layer)
                    for layer in cache)  # fmt: skip
        with pytest.raises(InputError, match=r"past_key_values\[0\]\[0\]: expected self-attention keys/values .* of "
                           r"float32, got .* of (float64|int64)"):  # fmt: skip
            model(input_ids=to(np.array([[8]])), encoder_hidden_states=enc, past_key_values=bad)


def test_a_fixed_size_cache_must_match_the_call():
    pytest.importorskip("flax")
    import jax
    import jax.numpy as jnp

    import bigbird_flax as bf

    model = bf.FlaxBigBirdForCausalLM(DEC.replace(add_cross_attention=False), seed=0)
    cache = model.init_cache(1, 16)
    mask = jnp.ones((1, 16), jnp.int32)
    call = lambda c: model(input_ids=jnp.array([[5]]), attention_mask=mask, position_ids=jnp.array([[0]]),  # noqa: E731
                           past_key_values=c)

    def edit(name, fn):
        return jax.tree_util.tree_map_with_path(
            lambda p, x: fn(x, p) if getattr(p[-1], "key", None) == name else x, cache)

    with pytest.raises(InputError, match=r"a cache_index in \[0, 16\], got -3"):
        call(edit("cache_index", lambda x, p: jnp.array(-3, jnp.int32)))
    with pytest.raises(InputError, match="the same cache_index in every layer"):
        call(edit("cache_index", lambda x, p: jnp.array(int(p[-2].key == "self" and "0" in str(p)), jnp.int32)))
    with pytest.raises(InputError, match="cached keys and values of float32, got an array of int32"):
        call(edit("cached_key", lambda x, p: x.astype(jnp.int32)))
    call(cache)  # the cache itself is fine
    assert jax.tree_util.tree_structure(model.init_cache(np.int64(1), np.int64(16))) == jax.tree_util.tree_structure(
        cache)  # NumPy integers are as good as Python's  # fmt: skip


# ------------------------------------------------------------------------------------------------- generate
GEN = CFG.replace(is_decoder=True, max_position_embeddings=64)


def generators():
    return causal_lms(GEN)


def _tokens(out):
    return np.asarray(out.sequences if hasattr(out, "sequences") else out)


def test_generate_refuses_alike():
    prompt = np.arange(5, 75)[None] % 60 + 4  # 70 tokens, max_position_embeddings 64
    messages = set()
    for name, model, to in generators():
        with pytest.raises(InputError) as err:
            model.generate(to(prompt), max_new_tokens=2)
        messages.add(str(err.value))
        with pytest.raises(InputError, match="length_penalty: expected a finite number, got nan"):
            model.generate(to(prompt[:, :5]), num_beams=2, length_penalty=float("nan"))
        bad_key = {"generator": "seed-7"} if name == "torch" else {"prng_key": 7}
        with pytest.raises(InputError, match="generator: expected a torch.Generator|prng_key: expected a JAX PRNG key"):
            model.generate(to(prompt[:, :5]), do_sample=True, max_new_tokens=2, **bad_key)
    assert messages == {"input_ids: expected at most max_position_embeddings = 64 tokens, got 70 tokens"}


def test_generate_takes_list_prompts_alike():
    results = [_tokens(model.generate([[5, 6, 7, 8]], max_new_tokens=3)) for _, model, _ in generators()]
    assert all(r.shape == (1, 7) for r in results)


@pytest.mark.parametrize("kind", [{}, {"num_beams": 2}, {"do_sample": True}], ids=["greedy", "beams", "sampling"])
def test_generate_with_nan_weights_raises(kind):
    from bigbird_core.errors import NumericalError

    for name, model, to in generators():
        if name == "torch":
            import torch

            with torch.no_grad():
                model.bert.encoder.layer[0].output.dense.weight.fill_(float("nan"))
            broken = model
        else:
            import jax

            broken = type(model)(GEN, seed=0)
            broken.params = jax.tree_util.tree_map_with_path(
                lambda p, x: x * float("nan") if "intermediate" in str(p) else x, model.params)
        with pytest.raises(NumericalError, match="next-token scores .*are all NaN or infinite"):
            broken.generate(to(np.array([[5, 6, 7]])), max_new_tokens=3, **kind)


# ------------------------------------------------------------------------------------- encoder-decoder pair
def test_pair_labels_and_configs_are_checked_alike(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("flax")
    import json

    import bigbird_flax as bf
    import bigbird_torch as bt
    from bigbird_core import EncoderDecoderConfig

    config = EncoderDecoderConfig.from_encoder_decoder_configs(CFG, CFG)
    pair = bt.BigBirdEncoderDecoderModel(config)
    pair.save_pretrained(tmp_path / "pair")
    flax_pair = bf.FlaxBigBirdEncoderDecoderModel.from_pretrained(tmp_path / "pair")
    ids = np.array([[5, 6, 7, 8]])
    for labels in (np.array([[5, 64]]), np.array([[5, -5]])):  # the vocabulary size; a negative id
        messages = set()
        for run in (lambda y: pair(input_ids=torch.as_tensor(ids), labels=torch.as_tensor(y)),
                    lambda y: flax_pair(input_ids=ids, labels=y)):  # fmt: skip
            with pytest.raises(InputError, match=r"labels: expected class ids in \[0, 64\) or -100") as err:
                run(labels)
            messages.add(str(err.value))
        assert len(messages) == 1
    data = config.to_dict()
    with pytest.raises(core.ConfigError, match="decoder_start_token_id: expected a token id"):
        EncoderDecoderConfig.from_dict({**data, "decoder_start_token_id": True})
    nested = data
    for _ in range(3000):
        nested = {"model_type": "encoder-decoder", "encoder": nested, "decoder": nested}
    with pytest.raises(core.ConfigError):
        EncoderDecoderConfig.from_dict(nested)
    deep = "[" * 100_000 + "]" * 100_000  # config.json nested past the parser's recursion limit
    (tmp_path / "pair" / "config.json").write_text('{"model_type": "encoder-decoder", "encoder": ' + deep + "}")
    for load in (bt.BigBirdEncoderDecoderModel.from_pretrained, bf.FlaxBigBirdEncoderDecoderModel.from_pretrained):
        with pytest.raises(core.ConfigError):
            load(tmp_path / "pair")
    del json


# ------------------------------------------------------------------------------------- sequence parallelism
AGREE_WORKER = r"""
import os, sys
import torch
import torch.distributed as dist
import bigbird_torch as bt
from bigbird_core import BigBirdConfig, BigBirdError, seeded_plan
from bigbird_torch.sequence import sequence_parallel_forward

dist.init_process_group("gloo")
rank = dist.get_rank()
cfg = BigBirdConfig(vocab_size=128, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=1024, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
model = bt.BigBirdModel(cfg, seed=0).eval()
ids = torch.randint(5, 128, (1, 256), generator=torch.Generator().manual_seed(0))
other = ids.clone(); other[0, 100] = (other[0, 100] + 1) % 128
cases = {
    "lengths": lambda: sequence_parallel_forward(model, ids if rank == 0 else ids[:, :240]),
    "ids": lambda: sequence_parallel_forward(model, ids if rank == 0 else other),
    "plans": lambda: sequence_parallel_forward(model, ids, plan=seeded_plan(cfg, 32, rank)),
    "refused on one rank": lambda: sequence_parallel_forward(model, ids if rank == 0 else ids * 1000),
    "same call": lambda: sequence_parallel_forward(model, ids),
}
out = {}
for name, call in cases.items():
    try:
        call()
        out[name] = "ran"
    except BigBirdError as e:
        out[name] = type(e).__name__ + ": " + str(e)
torch.save(out, os.path.join(sys.argv[1], f"rank{rank}.pt"))
dist.barrier()  # every rank done with gloo before any tears it down (a teardown race aborted a run once)
dist.destroy_process_group()
"""


def test_sequence_parallel_ranks_agree_before_they_exchange(tmp_path):
    torch = pytest.importorskip("torch")
    import shutil

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    script = tmp_path / "worker.py"
    script.write_text(AGREE_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for case, what in (("lengths", "the input length"), ("ids", "the input ids"), ("plans", "the plan")):
        for result in ranks:
            assert result[case].startswith("InputError: sequence parallelism: expected the same call on every rank")
            assert what in result[case], result[case]
    assert "input_ids: expected values in [0, 128)" in ranks[1]["refused on one rank"]
    assert "a call that every rank accepts" in ranks[0]["refused on one rank"]
    assert ranks[0]["same call"] == ranks[1]["same call"] == "ran"


def test_jax_sequence_parallel_arguments_are_checked():
    pytest.importorskip("flax")
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh

    from bigbird_core import block_layout, transformers_plan
    from bigbird_core.sequence import sequence_shards
    from bigbird_flax.sequence import sequence_parallel_attention

    cfg = CFG.replace(num_attention_heads=2, max_position_embeddings=512)
    shards = sequence_shards(block_layout(transformers_plan(cfg, 16, training=False), 8), np.int64(1))
    mesh = Mesh(np.array(jax.devices()[:1]), ("seq",))
    q = jnp.zeros((1, 2, 128, 16))
    mask = jnp.ones((1, 128))
    cases = {
        "layer: expected an integer in [0, 2)": dict(layer=5),
        "q: expected an array (batch, 2, 128, head_dim)": dict(q=jnp.zeros((1, 4, 128, 16))),
        "mask: expected the whole padded sequence's mask of shape (1, 128)": dict(mask=jnp.ones((1, 200))),
        "k: expected an array (batch, 2, 128, head_dim)": dict(k=jnp.zeros((1, 2, 64, 16))),
    }
    for message, change in cases.items():
        args = dict(q=q, k=q, v=q, mask=mask, layer=0) | change
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            sequence_parallel_attention(args["q"], args["k"], args["v"], args["mask"], shards, args["layer"], mesh)
    assert sequence_parallel_attention(q, q, q, mask, shards, np.int64(1), mesh).shape == q.shape


def test_convert_that_finds_a_difference_writes_nothing(tmp_path, monkeypatch, capsys):
    """A conversion whose verification fails (exit 1) leaves DST as it was: verified before it is swapped in."""
    import bigbird_cli
    import bigbird_core.tolerances as tolerances

    core.BigBirdModel(CFG, seed=0).save_pretrained(tmp_path / "src")
    core.BigBirdModel(CFG, seed=1).save_pretrained(tmp_path / "dst")
    before = {p.name: p.read_bytes() for p in (tmp_path / "dst").iterdir()}
    monkeypatch.setattr(tolerances, "identical", lambda a, b: False)  # every weight "changed"
    code = bigbird_cli.main(["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--to", "safetensors"])
    assert code == 1 and "not written" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (tmp_path / "dst").iterdir()} == before
    monkeypatch.undo()
    assert bigbird_cli.main(["convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--to", "safetensors"]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "dst").iterdir()} != before
