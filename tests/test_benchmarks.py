"""The benchmark harness runs (tiny sizes) so that it cannot rot; its numbers are not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")
BENCH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench.py")
TINY = ["--seq", "256", "--train-seq", "256", "--hidden", "64", "--heads", "4", "--block", "16", "--vocab", "100",
        "--reps", "1", "--dtype", "float32"]  # fmt: skip


def test_benchmark_smoke(tmp_path):
    out_json = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, BENCH, *TINY, "--kinds", "attention,model,train", "--json", str(out_json)],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(out_json.read_text())
    kinds = {(r["kind"], r["framework"]) for r in data["rows"]}
    assert {("attention", "torch"), ("model", "torch"), ("train", "torch")} <= kinds
    assert all(r["ours_ms"] > 0 and r["theirs_ms"] > 0 and r["speedup"] > 0 for r in data["rows"])


def test_benchmark_memory_smoke(tmp_path):
    out_json = tmp_path / "mem.json"
    run = subprocess.run([sys.executable, BENCH, *TINY, "--kinds", "model", "--impls", "ours-torch,hf-torch",
                          "--memory", "--json", str(out_json)], capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    row = json.loads(out_json.read_text())["rows"][0]
    assert row["ours_mib"] > 10 and row["theirs_mib"] > 10


def test_gpu_harness_smoke(tmp_path):
    """gpu.py at tiny sizes on this device (CPU: eager FlexAttention): every check passes, every section reports."""
    gpu = os.path.join(os.path.dirname(BENCH), "gpu.py")
    run = subprocess.run([sys.executable, "-W", "ignore", gpu, "--smoke", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["errors"] == [], data["errors"]
    assert len(data["checks"]) >= 13 and all(c["ok"] for c in data["checks"]), data["checks"]
    impls = {(r["kind"], r["impl"]) for r in data["rows"]}
    assert {("attention", "ours-flex"), ("attention", "dense-sdpa"), ("model", "ours"),
            ("train", "ours"), ("attention", "ours-flax"), ("model", "ours-flax")} <= impls  # fmt: skip


def test_gpu_full_run_refuses_without_a_gpu(tmp_path):
    """Without CUDA the full run stops at once with one line (it would time CUDA kernels for minutes) and writes
    nothing into the working directory."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the full run is what it is for")
    gpu = os.path.join(os.path.dirname(BENCH), "gpu.py")
    run = subprocess.run([sys.executable, gpu], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.startswith("gpu.py: error: no CUDA device")
    assert list(tmp_path.iterdir()) == []
