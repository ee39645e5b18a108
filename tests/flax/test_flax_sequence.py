"""JAX sequence parallelism on 8 host devices: one example's blocks over a mesh axis with ``shard_map``. The
attention over 2, 4 and 8 devices and the whole body (``sequence_parallel_apply``) over 8 equal one device,
forward and backward, eval and training plans; the compiled programs move tiles by collective-permute and
reduce the global rows, with no all-gather and no all-to-all; per layer they move the bytes the core's plan says,
so the busiest device receives less than an all-gather of K and V would bring it. Subprocesses: the device count is fixed when JAX starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("flax")
from bigbird_core.tolerances import tolerance  # noqa: E402

SCRIPT = r"""
import json, os, re, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
import bigbird_flax as bf
from bigbird_core import BigBirdConfig, InputError
from bigbird_core.layout import block_layout
from bigbird_core.plans import transformers_plan
from bigbird_core.tolerances import compare
from bigbird_flax.attention import layer_attention
from bigbird_flax.sequence import sequence_parallel_apply, sequence_parallel_attention, sequence_shards

cfg = BigBirdConfig(vocab_size=128, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=1024, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
rng = np.random.default_rng(0)
n, b, L = 64, 8, 512
OPS = r"\b(all-gather|collective-permute|all-reduce|reduce-scatter|all-to-all)(?:-start)?\("
BYTES = re.compile(r"= (f32\[[0-9,]*\][^ ]*) collective-permute(?:-start)?\(")
out = {"attention": [], "model": []}

def worst(a, b, kind="output"):
    a, b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    scale = max(float(np.abs(np.asarray(x)).max()) for x in b)  # gradients: relative to the whole gradient's scale
    return max(compare(x, y, kind=kind, scale=scale if kind == "gradient" else 0.0).rel for x, y in zip(a, b))

q, k, v, w = (jnp.asarray(rng.standard_normal((2, 2, L, 16)), jnp.float32) for _ in range(4))
mask = np.ones((2, L), np.float32)
mask[1, 450:] = 0
for training in (False, True):
    lay = block_layout(transformers_plan(cfg, n, training=training), b)
    blocks = jnp.asarray(lay.key_blocks[1])
    one = lambda q, k, v: layer_attention(q, k, v, jnp.asarray(mask), blocks, b)[0]
    ref, ref_grad = one(q, k, v), jax.grad(lambda *a: (one(*a) * w).sum(), argnums=(0, 1, 2))(q, k, v)
    for devices in (2, 4, 8):
        mesh = Mesh(np.array(jax.devices()[:devices]), ("seq",))
        plan = sequence_shards(lay, devices)
        sp = lambda q, k, v: sequence_parallel_attention(q, k, v, mask, plan, 1, mesh)
        fwd = jax.jit(sp)
        grad = jax.jit(jax.grad(lambda *a: (sp(*a) * w).sum(), argnums=(0, 1, 2)))
        hlo = fwd.lower(q, k, v).compile().as_text()
        moved = sum(4 * int(np.prod([int(d) for d in s[4:s.index("]")].split(",")])) for s in BYTES.findall(hlo))
        out["attention"].append(dict(training=training, devices=devices, output=worst(fwd(q, k, v), ref),
                                     gradient=worst(grad(q, k, v), ref_grad, "gradient"),
                                     ops=sorted(set(re.findall(OPS, hlo))), permute_bytes=moved,
                                     planned=plan.bytes_per_layer(2, 16, 4)))

module = bf.FlaxBigBirdModule(cfg)
ids = rng.integers(5, 100, (2, L)).astype(np.int32)
ids_mask = np.ones_like(ids)
ids_mask[1, 450:] = 0
params = module.init(jax.random.PRNGKey(0), ids)["params"]
wh = rng.standard_normal((2, L, 32)).astype(np.float32)
mesh = Mesh(np.array(jax.devices()), ("seq",))
for deterministic in (True, False):
    ref = module.apply({"params": params}, ids, ids_mask, deterministic=deterministic)
    ref_grad = jax.grad(lambda p: (module.apply({"params": p}, ids, ids_mask, deterministic=deterministic)
                                   .last_hidden_state * wh).sum())(params)
    sp = lambda p: sequence_parallel_apply(module, {"params": p}, mesh, ids, ids_mask, deterministic=deterministic)
    got = jax.jit(sp)(params)
    step = jax.jit(jax.grad(lambda p: (sp(p).last_hidden_state * wh).sum()))
    hlo = step.lower(params).compile().as_text()
    out["model"].append(dict(training=not deterministic, output=worst(got.last_hidden_state, ref.last_hidden_state),
                             pooled=worst(got.pooler_output, ref.pooler_output), gradient=worst(step(params), ref_grad, "gradient"),
                             sharding=str(got.last_hidden_state.sharding.spec), ops=sorted(set(re.findall(OPS, hlo)))))

errors = []
for call in (lambda: sequence_parallel_apply(module, {"params": params}, mesh, ids[:, :500], ids_mask[:, :500]),
             lambda: sequence_parallel_apply(module, {"params": params}, mesh, ids[:, :64]),
             lambda: sequence_parallel_apply(module, {"params": params}, mesh, ids, axis="sequence")):
    try:
        call()
    except InputError as e:
        errors.append(str(e))
out["errors"] = errors
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    script = tmp_path_factory.mktemp("sp") / "run.py"
    script.write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_attention_over_2_4_and_8_devices_equals_one_device(results):
    assert len(results["attention"]) == 6
    for row in results["attention"]:
        label = f"{row['devices']} devices, training={row['training']}"
        assert row["output"] <= tolerance("float32"), label
        assert row["gradient"] <= tolerance("float32", "gradient"), label


def test_attention_moves_tiles_not_the_sequence(results):
    for row in results["attention"]:
        assert row["ops"] == ["all-reduce", "collective-permute"], row  # tiles by permute, global rows reduced
        assert row["permute_bytes"] == row["planned"]["buffers"], row  # exactly the planned rounds' buffers
        assert row["planned"]["tiles"] < row["planned"]["all_gather"], row  # what the busiest shard receives
    eval8 = next(r for r in results["attention"] if r["devices"] == 8 and not r["training"])
    assert eval8["permute_bytes"] * 3 < eval8["planned"]["all_gather"]  # eval plans: neighbours and globals only


def test_the_whole_body_over_8_devices_equals_one_device(results):
    for row in results["model"]:
        label = f"training={row['training']}"
        assert row["output"] <= tolerance("float32"), label
        assert row["pooled"] <= tolerance("float32"), label
        assert row["gradient"] <= tolerance("float32", "gradient"), label
        assert "seq" in row["sharding"], row["sharding"]  # the output stays split along the sequence
        assert "all-gather" not in row["ops"] and "all-to-all" not in row["ops"], row["ops"]


def test_bad_calls_name_the_argument(results):
    short, full, axis = results["errors"]
    assert short == "shards: expected a divisor of the 63 blocks of the sequence, got 8"
    assert full.startswith("input_ids: expected a call that runs block-sparse attention")
    assert axis == "axis: expected an axis of the mesh (seq), got 'sequence'"
