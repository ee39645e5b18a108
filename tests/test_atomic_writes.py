"""Writers killed at random instants and readers racing writers: the destination is always the old or the
new checkpoint, whole, bit for bit; a load never pairs one model's config with another's weights."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import bigbird_core as bb
from bigbird_core.checkpoint import read_checkpoint
from cases import TINY

CFG = bb.BigBirdConfig(**TINY)
HERE = os.path.dirname(__file__)
SRC = os.path.join(HERE, "..", "src")

# two checkpoints that differ in config (plan_seed) and in every weight (seed); B is written sharded
WRITER = textwrap.dedent("""
    import sys
    import bigbird_core as bb
    from bigbird_core.checkpoint import write_checkpoint
    from cases import TINY
    dest, rounds = sys.argv[1], int(sys.argv[2])
    models = {}
    for tag, seed in (("A", 1), ("B", 2)):
        cfg = bb.BigBirdConfig(**TINY, plan_seed=seed)
        models[tag] = (cfg, bb.BigBirdForMaskedLM(cfg, seed=seed).params)
    print("ready", flush=True)
    for i in range(rounds):
        cfg, params = models["AB"[i % 2]]
        write_checkpoint(dest, cfg, params, "BigBirdForMaskedLM", max_shard_bytes=None if i % 2 == 0 else 30_000)
""")


def expected() -> dict[int, dict[str, np.ndarray]]:
    return {seed: bb.BigBirdForMaskedLM(CFG.replace(plan_seed=seed), seed=seed).params for seed in (1, 2)}


def writer(dest, rounds: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, HERE]))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest), str(rounds)], env=env, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    return proc


def assert_whole(dest, models) -> int:
    """The checkpoint at ``dest`` is A or B, config and every weight from the same one; returns its seed."""
    config, state = read_checkpoint(str(dest))
    params = models[config.plan_seed]
    assert sorted(state) == sorted(params)
    for k, v in params.items():
        assert np.array_equal(state[k], v), f"{k} does not belong to the checkpoint of plan_seed {config.plan_seed}"
    return config.plan_seed


def test_save_killed_at_random_instants_leaves_the_old_or_the_new_checkpoint(tmp_path):
    models = expected()
    dest = tmp_path / "ckpt"
    bb.BigBirdForMaskedLM(CFG.replace(plan_seed=1), seed=1).save_pretrained(dest)
    rng = random.Random(0)
    seen = set()
    for _ in range(12):
        proc = writer(dest, 10_000)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.add(assert_whole(dest, models))
    assert seen == {1, 2}  # the kills landed at different points of the alternation
    # the leftovers of killed writers are cleaned by the next write to the same place
    bb.BigBirdForMaskedLM(CFG.replace(plan_seed=1), seed=1).save_pretrained(dest)
    assert not [n for n in os.listdir(tmp_path) if ".bigbird-tmp-" in n]


def test_convert_killed_at_random_instants_leaves_the_old_or_the_new_checkpoint(tmp_path):
    models = expected()
    for seed in (1, 2):
        bb.BigBirdForMaskedLM(CFG.replace(plan_seed=seed), seed=seed).save_pretrained(tmp_path / f"m{seed}")
    dest = tmp_path / "out"
    bb.BigBirdForMaskedLM(CFG.replace(plan_seed=1), seed=1).save_pretrained(dest)
    env = dict(os.environ, PYTHONPATH=SRC)
    rng = random.Random(1)
    for i in range(6):
        src = tmp_path / f"m{1 + i % 2}"
        proc = subprocess.Popen([sys.executable, "-m", "bigbird_cli", "convert", str(src), str(dest), "--to",
                                 "safetensors", "--no-verify"], env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.2, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_whole(dest, models)


def test_readers_racing_a_writer_never_see_a_mix(tmp_path):
    models = expected()
    dest = tmp_path / "ckpt"
    bb.BigBirdForMaskedLM(CFG.replace(plan_seed=1), seed=1).save_pretrained(dest)
    proc = writer(dest, 10_000)
    loads, seen = 0, set()
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            seen.add(assert_whole(dest, models))
            loads += 1
    finally:
        proc.kill()
        proc.wait()
    assert loads > 20 and seen == {1, 2}, (loads, seen)


@pytest.mark.parametrize("backend", ["torch", "flax"])
def test_backend_from_pretrained_races_save_pretrained(tmp_path, backend):
    """The same through a backend's from_pretrained (which reads through the core)."""
    module = pytest.importorskip(f"bigbird_{backend}")
    models = expected()
    dest = tmp_path / "ckpt"
    bb.BigBirdForMaskedLM(CFG.replace(plan_seed=1), seed=1).save_pretrained(dest)
    proc = writer(dest, 10_000)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            model = module.BigBirdForMaskedLM.from_pretrained(dest)
            params = models[model.config.plan_seed]
            state = model.state_dict()
            key = "bert.encoder.layer.1.output.dense.weight"
            got = state[key].detach().numpy() if hasattr(state[key], "detach") else np.asarray(state[key])
            assert np.array_equal(got, params[key])
    finally:
        proc.kill()
        proc.wait()
