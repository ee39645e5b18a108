"""The ``bigbird`` command as users run it: subprocesses on small checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bigbird_core.checkpoint import read_checkpoint, write_safetensors
from bigbird_core.cli.check import DEFAULT_CONFIG
from bigbird_core.heads import BigBirdForMaskedLM, BigBirdForQuestionAnswering

BIGBIRD = [sys.executable, "-m", "bigbird_core.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BIGBIRD, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("qa")
    BigBirdForQuestionAnswering(DEFAULT_CONFIG, seed=1).save_pretrained(path)
    return str(path)


def test_check_passes_on_the_default():
    out = run("check", "--quiet", "--heads", "BigBirdModel,BigBirdForQuestionAnswering", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] and data["rows"]
    from itertools import combinations

    from bigbird_core.cli.backends import available_backends

    pairs = {(r["left"], r["right"]) for r in data["rows"] if not r["head"].startswith("conversion")}
    installed = available_backends()
    assert pairs == set(combinations(installed, 2)) | {(b, "transformers") for b in installed}
    assert data["reference"] == "transformers 4.57.6" and data["backends"] == installed
    assert {r["head"] for r in data["rows"]} >= {"BigBirdModel", "BigBirdForQuestionAnswering"}
    assert any(r["head"].startswith("conversion round trip") and r["ok"] for r in data["rows"])


def test_check_fails_and_names_the_row_when_a_weight_is_perturbed(qa_dir, tmp_path):
    """A directory with torch and Flax weights that disagree: the Flax backend reads its msgpack."""
    pytest.importorskip("flax")
    from bigbird_flax.convert import save_file as write_msgpack

    config, state = read_checkpoint(qa_dir)
    state["bert.encoder.layer.1.output.dense.weight"] = (
        state["bert.encoder.layer.1.output.dense.weight"] * 1.01
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bad / name).write_bytes(open(os.path.join(qa_dir, name), "rb").read())
    write_msgpack(str(bad / "flax_model.msgpack"), state)
    out = run("check", "--quiet", "--model", str(bad), "--backends", "numpy,flax")
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "FAILED: BigBirdForQuestionAnswering numpy-flax" in out.stdout


def test_regress_verify_passes_unchanged_and_fails_perturbed(qa_dir, tmp_path):
    golden = str(tmp_path / "golden" / "qa")
    assert run("regress", "record", qa_dir, golden, "--quiet").returncode == 0
    manifest = json.loads(open(golden + ".json").read())
    assert manifest["input_seed"] and manifest["config_hash"] and "numpy" in manifest["versions"]
    assert {e.split("/")[1] for e in manifest["entries"]} == {"block_sparse", "original_full"}
    ok = run("regress", "verify", qa_dir, golden, "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    config, state = read_checkpoint(qa_dir)
    state["qa_classifier.qa_outputs.bias"] = state["qa_classifier.qa_outputs.bias"] + 1e-3
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "config.json").write_bytes(open(os.path.join(qa_dir, "config.json"), "rb").read())
    write_safetensors(str(moved / "model.safetensors"), state)
    drift = run("regress", "verify", str(moved), golden, "--quiet")
    assert drift.returncode == 1 and "DRIFT" in drift.stdout and "start_logits" in drift.stdout


def test_convert_verifies_and_info_describes(qa_dir, tmp_path):
    pytest.importorskip("torch")
    out = run("convert", qa_dir, str(tmp_path / "bin"), "--to", "torch-bin")
    assert out.returncode == 0, out.stderr
    assert "bit-identical" in out.stdout and "ok" in out.stdout
    assert sorted(os.listdir(tmp_path / "bin")) == ["config.json", "pytorch_model.bin"]
    info = run("info", str(tmp_path / "bin"))
    assert info.returncode == 0 and "BigBirdForQuestionAnswering" in info.stdout and "float32" in info.stdout


@pytest.mark.parametrize("args", [
    ("info", "/no/such/dir"),
    ("check", "--model", "/no/such/dir"),
    ("convert", "/no/such/dir", "OUT", "--to", "flax"),
    ("regress", "verify", "/no/such/dir", "/no/such/golden"),
])  # fmt: skip
def test_bad_paths_give_one_clear_line(args, tmp_path):
    out = subprocess.run([*BIGBIRD, *args], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1 and "/no/such/" in out.stderr
    assert not (tmp_path / "OUT").exists()


def test_corrupt_files_give_one_clear_line_and_no_partial_output(qa_dir, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "config.json").write_bytes(open(os.path.join(qa_dir, "config.json"), "rb").read())
    data = open(os.path.join(qa_dir, "model.safetensors"), "rb").read()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    out = run("convert", str(bad), str(tmp_path / "out"), "--to", "safetensors")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model.safetensors: truncated" in out.stderr
    assert not (tmp_path / "out").exists()
    (bad / "config.json").write_text("{broken")
    out = run("info", str(bad))
    assert out.returncode == 2 and "not valid JSON" in out.stderr and "Traceback" not in out.stderr


def test_golden_inputs_are_fixed(qa_dir, tmp_path):
    """Two recordings of the same checkpoint are identical (the input seed never changes)."""
    for name in ("a", "b"):
        assert run("regress", "record", qa_dir, str(tmp_path / name), "--quiet").returncode == 0
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_numpy_only_model_round_trip_through_cli_convert(tmp_path):
    BigBirdForMaskedLM(DEFAULT_CONFIG, seed=2).save_pretrained(tmp_path / "src")
    out = run("convert", str(tmp_path / "src"), str(tmp_path / "dst"), "--to", "safetensors", "--no-verify")
    assert out.returncode == 0 and "wrote" in out.stdout
