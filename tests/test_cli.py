"""The ``bigbird`` command as users run it: subprocesses on small checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bigbird_cli.check import DEFAULT_CONFIG
from bigbird_core.checkpoint import read_checkpoint, write_safetensors
from bigbird_core.heads import BigBirdForMaskedLM, BigBirdForQuestionAnswering

BIGBIRD = [sys.executable, "-m", "bigbird_cli"]


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

    from bigbird_cli.backends import available_backends

    pairs = {(r["left"], r["right"]) for r in data["rows"] if not r["head"].startswith("weights round trip")}
    installed = available_backends()
    assert pairs == set(combinations(installed, 2)) | {(b, "transformers") for b in installed}
    assert data["reference"] == "transformers 4.57.6" and data["backends"] == installed
    assert {r["head"] for r in data["rows"]} >= {"BigBirdModel", "BigBirdForQuestionAnswering"}
    assert any(r["head"].startswith("weights round trip") and r["ok"] for r in data["rows"])


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
    assert info.stderr == ""  # probing which heads the weights fit logs nothing


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


def strict_json(text: str):
    """Parse JSON refusing NaN and infinities (Python's json accepts them; JSON does not)."""

    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _bad_checkpoint(qa_dir, tmp_path, name: str, mutate) -> str:
    bad = tmp_path / name
    bad.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bad / f).write_bytes(open(os.path.join(qa_dir, f), "rb").read())
    mutate(bad)
    return str(bad)


def _header(path, header):
    import struct

    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)


def _index(path, weight_map):
    (path / "model.safetensors").unlink()
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def _config(path, **changes):
    data = json.loads((path / "config.json").read_text())
    data.update(changes)
    (path / "config.json").write_text(json.dumps(data))


BAD_FILES = {
    "header-list": (lambda p: _header(p / "model.safetensors", [1, 2]), "expected a JSON object, got list"),
    "string-offsets": (lambda p: _header(p / "model.safetensors", {"a": {"dtype": "F32", "shape": [2],
                                         "data_offsets": ["0", "8"]}}), "data_offsets must be"),
    "negative-shape": (lambda p: _header(p / "model.safetensors", {"a": {"dtype": "F32", "shape": [-2],
                                         "data_offsets": [0, 8]}}), "non-negative integers"),
    "index-integers": (lambda p: _index(p, {"bert.pooler.weight": 3}), "plain file name"),
    "index-escape": (lambda p: _index(p, {"bert.pooler.weight": "../../../../etc/passwd"}), "plain file name"),
    "config-bool-string": (lambda p: _config(p, is_decoder="false"), 'is_decoder: expected a JSON boolean'),
    "config-number-string": (lambda p: _config(p, hidden_size="768"), 'hidden_size: expected an integer, got "768"'),
    "config-utf8": (lambda p: (p / "config.json").write_bytes(b"\xff\xfe{}"), "not UTF-8"),
    "config-deep": (lambda p: (p / "config.json").write_bytes(b"[" * 100000 + b"]" * 100000), "nested too deeply"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_files_give_one_line_and_exit_2(qa_dir, tmp_path, case, command):
    mutate, message = BAD_FILES[case]
    bad = _bad_checkpoint(qa_dir, tmp_path, case, mutate)
    args = ("info", bad) if command == "info" else ("convert", bad, str(tmp_path / "out"), "--to", "safetensors")
    out = run(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("bigbird: error: ") and out.stderr.count("\n") == 1 and message in out.stderr
    assert "Traceback" not in out.stderr and "root:x" not in out.stderr
    assert not (tmp_path / "out").exists()
    as_json = run(*args, "--json")
    data = strict_json(as_json.stdout)
    assert as_json.returncode == 2 and data["ok"] is False and message in data["error"]


@pytest.mark.parametrize("args, message", [
    (("check", "--seq-len", "-5"), "--seq-len: expected an integer >= 1, got -5"),
    (("check", "--seq-len", "0"), "--seq-len: expected an integer >= 1, got 0"),
    (("check", "--batch", "0"), "--batch: expected an integer >= 1, got 0"),
    (("check", "--batch", "-1"), "--batch: expected an integer >= 1, got -1"),
    (("check", "--seed", "-1"), "--seed: expected an integer >= 0, got -1"),
    (("check", "--backends", "numpy,tf"), "expected a comma-separated subset"),
    (("frobnicate",), "invalid choice"),
])  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    data = strict_json(run(*args, "--json").stdout)
    assert data == {"ok": False, "error": data["error"], "exit_code": 2, "meta": data["meta"]}
    assert message in data["error"] and data["meta"]["versions"]["bigbird"]


def test_check_never_passes_with_nothing_to_compare(qa_dir):
    out = run("check", "--quiet", "--model", qa_dir, "--backends", "torch")
    assert out.returncode == 2 and "nothing to compare" in out.stderr
    # one backend on the default model is compared with transformers' recorded outputs
    alone = strict_json(run("check", "--quiet", "--backends", "numpy", "--heads", "BigBirdModel", "--json").stdout)
    rows = [r for r in alone["rows"] if not r["head"].startswith("weights round trip")]
    assert alone["ok"] and [(r["left"], r["right"]) for r in rows] == [("numpy", "transformers")]
    assert alone["skipped"] == ["torch", "flax"]


def test_nan_weights_give_valid_json(qa_dir, tmp_path):
    config, state = read_checkpoint(qa_dir)
    state["bert.encoder.layer.0.output.dense.bias"] = state["bert.encoder.layer.0.output.dense.bias"].copy()
    state["bert.encoder.layer.0.output.dense.bias"][0] = np.nan
    from bigbird_core.checkpoint import write_checkpoint

    write_checkpoint(str(tmp_path / "nan"), config, state, "BigBirdForQuestionAnswering")
    out = run("check", "--quiet", "--model", str(tmp_path / "nan"), "--backends", "numpy,torch", "--json",
              "--heads", "BigBirdForQuestionAnswering")  # fmt: skip
    strict_json(out.stdout)  # NaN outputs compare equal on both sides; no bare NaN in the JSON
    conv = run("convert", str(tmp_path / "nan"), str(tmp_path / "nan2"), "--to", "safetensors", "--json")
    data = strict_json(conv.stdout)
    assert data["weights_changed"] == []


def test_regress_cannot_be_defeated_by_deleting_entries(qa_dir, tmp_path):
    import hashlib

    golden = str(tmp_path / "g")
    assert run("regress", "record", qa_dir, golden, "--quiet").returncode == 0
    manifest = json.loads(open(golden + ".json").read())
    manifest["entries"] = manifest["entries"][:3]
    open(golden + ".json", "w").write(json.dumps(manifest))
    out = run("regress", "verify", qa_dir, golden, "--quiet")
    assert out.returncode == 2 and "edited after recording" in out.stderr
    # an editor who also recomputes the digest, and removes the arrays: the missing outputs still fail
    with np.load(golden + ".npz") as data:
        kept = {k: data[k] for k in data.files if k.replace("|", "/") in manifest["entries"]}
    np.savez_compressed(golden + ".npz", **kept)
    manifest["npz_sha256"] = hashlib.sha256(open(golden + ".npz", "rb").read()).hexdigest()
    manifest["digest"] = hashlib.sha256(json.dumps({k: v for k, v in manifest.items() if k != "digest"},
                                                   sort_keys=True).encode()).hexdigest()  # fmt: skip
    open(golden + ".json", "w").write(json.dumps(manifest))
    out = run("regress", "verify", qa_dir, golden, "--quiet")
    assert out.returncode == 1 and "MISSING" in out.stdout, out.stdout + out.stderr
    # truncated arrays, a manifest without its keys: one clear line each
    data = open(golden + ".npz", "rb").read()
    open(golden + ".npz", "wb").write(data[: len(data) // 2])
    out = run("regress", "verify", qa_dir, golden, "--quiet")
    assert out.returncode == 2 and "does not match its manifest" in out.stderr and "Traceback" not in out.stderr
    open(golden + ".json", "w").write("{}")
    out = run("regress", "verify", qa_dir, golden, "--quiet")
    assert out.returncode == 2 and "not a golden manifest" in out.stderr


def on_a_terminal(argv: list[str], **kwargs) -> tuple[subprocess.Popen, int]:
    """Run ``argv`` with stderr on a pseudo-terminal of 24 x 100 (stdout a pipe); returns the master side."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, **kwargs)
    os.close(slave)
    return proc, master


def read_terminal(master: int, until: str | None = None) -> str:
    """What the child wrote to the terminal, up to ``until`` (or until it closed the terminal)."""
    seen = b""
    while until is None or until.encode() not in seen:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def test_broken_pipe_and_ctrl_c_exit_quietly(qa_dir):
    import signal
    import time

    proc = subprocess.Popen([*BIGBIRD, "info", qa_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `bigbird info DIR | head -1`
    proc.wait(timeout=120)
    assert b"Traceback" not in proc.stderr.read() and proc.returncode in (0, 141)
    proc, master = on_a_terminal([*BIGBIRD, "check"],
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal has it
    assert "running" in read_terminal(master, until="running")  # working (past the interpreter's own imports)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    rest = read_terminal(master)
    assert proc.returncode == 130 and "Traceback" not in rest


def test_version_help_and_json_metadata(qa_dir):
    from importlib import metadata

    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith(f"bigbird {metadata.version('bigbird')} (numpy ")
    assert "torch" in out.stdout and "python" in out.stdout
    for command in ("check", "convert", "regress", "info"):
        text = run(command, "--help").stdout
        assert "usage: bigbird " + command in text and "(default: None)" not in text
        described = text.split("\n\n")[1]
        assert len(described) > 40  # a description, not only the usage line
    assert "SRC                   the checkpoint directory to read" in run("convert", "--help").stdout
    assert "(default: 150)" in run("check", "--help").stdout
    data = json.loads(run("info", qa_dir, "--json").stdout)
    assert data["meta"]["versions"]["numpy"] == np.__version__ and data["weight_files"] == {
        "model.safetensors": os.path.getsize(os.path.join(qa_dir, "model.safetensors"))}  # fmt: skip
    assert "weight files: model.safetensors (" in run("info", qa_dir).stdout
    data = json.loads(run("check", "--heads", "BigBirdModel", "--backends", "numpy", "--json").stdout)
    assert data["settings"] == {"model": "the seeded default", "dtype": "float32", "seq_len": 150, "batch": 2,
                                "seed": 0, "train": False}  # fmt: skip


def test_progress_shows_on_a_terminal_only(qa_dir, tmp_path):
    """A progress bar (tqdm) on stderr when it is a terminal; nothing when it is a pipe or with --json."""
    proc, master = on_a_terminal([*BIGBIRD, "convert", qa_dir, str(tmp_path / "a"), "--to", "flax"])
    seen = read_terminal(master)
    assert proc.wait(timeout=600) == 0
    assert "running both on a seeded input" in seen and "/4" in seen
    piped = run("convert", qa_dir, str(tmp_path / "b"), "--to", "flax")
    assert piped.returncode == 0 and piped.stderr == ""


def test_debug_is_taken_after_the_command_and_report_errors_are_one_line(tmp_path):
    out = run("info", str(tmp_path / "nothing"), "--debug")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no such checkpoint directory" in out.stderr
    report = os.path.join(os.path.dirname(__file__), "parity", "report.py")
    out = subprocess.run([sys.executable, report, "nosuch"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("report.py: error: case: expected one of ragged150")
    assert "Traceback" not in out.stderr


def test_init_writes_the_default_model_that_the_readme_examples_use(tmp_path):
    """README's convert and regress examples, as written, on the default model `bigbird init` writes."""
    here = str(tmp_path)

    def at(*args):
        return subprocess.run([*BIGBIRD, *args], capture_output=True, text=True, timeout=600, cwd=here)

    out = at("init", "hf-qa", "--head", "BigBirdForQuestionAnswering")
    assert out.returncode == 0 and "42,018 parameters" in out.stdout, out.stderr
    assert at("convert", "hf-qa", "qa-flax", "--to", "flax").returncode == 0
    assert at("convert", "hf-qa", "qa-bf16", "--to", "safetensors", "--dtype", "bfloat16").returncode == 0
    out = at("regress", "record", "hf-qa", "golden/qa")
    assert out.returncode == 0 and "recorded 12 outputs of BigBirdForQuestionAnswering" in out.stdout
    out = at("regress", "verify", "qa-flax", "golden/qa", "--backend", "flax")
    assert out.returncode == 0 and out.stdout.startswith("12/12 outputs within tolerance on flax")
    out = at("regress", "verify", "qa-bf16", "golden/qa")  # the same model in bf16: drift, exit 1 (not 2)
    assert out.returncode == 1 and "DRIFT BigBirdForQuestionAnswering" in out.stdout, out.stdout + out.stderr
