"""Checkpoints that cannot be tricked, torn or mixed: confined reads, validated files, whole-directory writes."""

from __future__ import annotations

import json
import os
import signal
import struct

import numpy as np
import pytest

import bigbird_core as bb
from bigbird_core import BigBirdConfig, CheckpointError, ConfigError
from bigbird_core.checkpoint import read_checkpoint, write_checkpoint, write_safetensors
from cases import TINY

CFG = BigBirdConfig(**TINY)


@pytest.fixture
def saved(tmp_path):
    model = bb.BigBirdForMaskedLM(CFG, seed=1)
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", model


@pytest.fixture
def alarm():
    """Fail instead of hanging (a FIFO opened for reading blocks forever without O_NONBLOCK)."""
    signal.signal(signal.SIGALRM, lambda *a: pytest.fail("hung"))
    signal.alarm(20)
    yield
    signal.alarm(0)


def _sharded(directory, weight_map: dict) -> None:
    (directory / "model.safetensors").unlink(missing_ok=True)
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.mark.parametrize("shard", ["../../../../etc/passwd", "/etc/passwd", "..", "sub/x.safetensors", 7])
def test_index_shard_names_stay_inside_the_directory(saved, shard):
    directory, _ = saved
    _sharded(directory, {"bert.embeddings.word_embeddings.weight": shard})
    with pytest.raises(CheckpointError, match="expected a plain file name inside the checkpoint directory") as info:
        read_checkpoint(str(directory))
    assert "root:x" not in str(info.value)


def test_a_valid_safetensors_file_outside_is_never_loaded(saved, tmp_path):
    directory, model = saved
    write_safetensors(str(tmp_path / "outside.safetensors"), model.params)
    _sharded(directory, {k: "../outside.safetensors" for k in model.params})
    with pytest.raises(CheckpointError, match="plain file name"):
        read_checkpoint(str(directory))


def test_fifos_are_refused_without_hanging(saved, alarm):
    directory, model = saved
    os.rename(directory / "model.safetensors", directory / "real.safetensors")
    os.mkfifo(directory / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors: not a regular file"):
        read_checkpoint(str(directory))
    os.unlink(directory / "model.safetensors")
    os.mkfifo(directory / "shard.safetensors")
    _sharded(directory, {k: "shard.safetensors" for k in model.params})
    with pytest.raises(CheckpointError, match="shard.safetensors: not a regular file"):
        read_checkpoint(str(directory))


def test_symlinks_to_regular_files_are_followed(saved, tmp_path):
    """The Hugging Face cache is made of symlinks into a blobs folder."""
    directory, model = saved
    blob = tmp_path / "blob"
    os.rename(directory / "model.safetensors", blob)
    os.symlink(blob, directory / "model.safetensors")
    _, state = read_checkpoint(str(directory))
    assert all(np.array_equal(state[k], v) for k, v in model.params.items())


def _header_file(path, header, data=b"") -> None:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header, data, message", [
    ([1, 2], b"", "expected a JSON object, got list"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, b"\0" * 4, "data_offsets must be"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "non-negative integers"),
    ({"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4, "4 bytes for shape"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "overlap"),
    ({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unsupported dtype"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated"),
    ({"a": [1]}, b"", "expected an object with dtype, shape and data_offsets"),
    (b"\xff\xfe", b"", "not JSON"),
])  # fmt: skip
def test_safetensors_headers_are_validated_in_full(tmp_path, header, data, message):
    _header_file(tmp_path / "model.safetensors", header, data)
    with pytest.raises(CheckpointError, match=message):
        bb.checkpoint.read_safetensors(str(tmp_path / "model.safetensors"))


@pytest.mark.parametrize("field, value, shown", [
    ("is_decoder", "false", '"false"'), ("layer_norm_eps", "1e-12", '"1e-12"'), ("hidden_size", "768", '"768"'),
    ("num_hidden_layers", 2.0, "2.0"), ("use_bias", 1, "1"), ("attention_type", None, "null"),
])  # fmt: skip
def test_config_fields_have_their_json_types(saved, field, value, shown):
    directory, _ = saved
    data = json.loads((directory / "config.json").read_text())
    data[field] = value
    (directory / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=f"^{field}: expected .*, got {shown}$"):
        read_checkpoint(str(directory))


@pytest.mark.parametrize("raw, message", [(b"\xff{}", "not UTF-8"), (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
                                          (b"[]", "expected a JSON object")])  # fmt: skip
def test_unreadable_configs_are_config_errors(saved, raw, message):
    directory, _ = saved
    (directory / "config.json").write_bytes(raw)
    with pytest.raises(ConfigError, match=message):
        read_checkpoint(str(directory))


def test_integer_weights_and_foreign_checkpoints_are_refused(saved, tmp_path, caplog):
    directory, model = saved
    state = dict(model.params)
    state["bert.embeddings.word_embeddings.weight"] = state["bert.embeddings.word_embeddings.weight"].astype(np.int32)
    write_checkpoint(str(tmp_path / "ints"), CFG, state, "BigBirdForMaskedLM")
    with pytest.raises(CheckpointError, match="floating-point parameters stored as other dtypes: .*int32"):
        bb.BigBirdForMaskedLM.from_pretrained(tmp_path / "ints")
    write_checkpoint(str(tmp_path / "other"), CFG, {"something.else": np.zeros(3, np.float32)}, "Other")
    with pytest.raises(CheckpointError, match="holds none of the .* body weights"):
        bb.BigBirdForMaskedLM.from_pretrained(tmp_path / "other")
    with caplog.at_level("WARNING", logger="bigbird"):  # a body without its head: loads, with a warning
        qa = bb.BigBirdForQuestionAnswering.from_pretrained(directory)
    assert "qa_classifier.qa_outputs.weight" in qa.load_report.missing_keys
    assert "initialised" in caplog.text and "qa_classifier" in caplog.text


def test_a_new_checkpoint_replaces_every_weight_file_and_keeps_the_rest(saved):
    directory, model = saved
    (directory / "tokenizer.json").write_text("{}")
    (directory / "flax_model.msgpack").write_bytes(b"stale")
    (directory / "pytorch_model.bin").write_bytes(b"stale")
    (directory / "model-00001-of-00009.safetensors").write_bytes(b"stale")
    other = bb.BigBirdForMaskedLM(CFG, seed=2)
    write_checkpoint(str(directory), CFG, other.params, "BigBirdForMaskedLM", max_shard_bytes=20_000)
    names = sorted(os.listdir(directory))
    assert "tokenizer.json" in names and "model.safetensors.index.json" in names
    stale = {"flax_model.msgpack", "pytorch_model.bin", "model.safetensors", "model-00001-of-00009.safetensors"}
    assert not stale & set(names)  # no backend can load an old weight file
    _, state = read_checkpoint(str(directory))
    assert all(np.array_equal(state[k], v) for k, v in other.params.items())
    assert not [n for n in os.listdir(directory.parent) if ".bigbird-tmp-" in n]


def test_leftovers_of_killed_writers_are_cleaned_by_the_next_write(saved):
    directory, model = saved
    dead = directory.parent / f".{directory.name}.bigbird-tmp-999999999-abc"
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"x" * 1000)
    old_style = directory / ".bigbird-tmp-xyz"
    old_style.mkdir()
    live = directory.parent / f".{directory.name}.bigbird-tmp-{os.getpid()}-live"  # a writer still running
    live.mkdir()
    model.save_pretrained(directory)
    assert not dead.exists() and not old_style.exists() and live.exists()


def test_a_symlinked_destination_is_written_where_it_points(saved, tmp_path):
    directory, model = saved
    os.symlink(directory, tmp_path / "alias")
    bb.BigBirdForMaskedLM(CFG, seed=3).save_pretrained(tmp_path / "alias")
    assert os.path.islink(tmp_path / "alias")
    _, state = read_checkpoint(str(directory))
    assert not np.array_equal(state["cls.predictions.bias"], np.zeros(0))
    assert all(np.array_equal(state[k], v) for k, v in bb.BigBirdForMaskedLM(CFG, seed=3).params.items())


def test_convert_refuses_a_destination_that_resolves_to_the_source(saved, tmp_path):
    from bigbird_core.convert import convert_checkpoint

    directory, _ = saved
    os.symlink(directory, tmp_path / "same")
    before = (directory / "model.safetensors").read_bytes()
    with pytest.raises(bb.InputError, match="DST: expected a directory other than SRC"):
        convert_checkpoint(str(directory), str(tmp_path / "same"), "safetensors", dtype="float16")
    assert (directory / "model.safetensors").read_bytes() == before


def test_nan_weights_compare_equal_to_themselves(saved, tmp_path):
    from bigbird_core.convert import convert_checkpoint
    from bigbird_core.tolerances import compare, identical

    directory, model = saved
    state = dict(model.params)
    state["cls.predictions.bias"] = state["cls.predictions.bias"].copy()
    state["cls.predictions.bias"][3] = np.nan
    write_checkpoint(str(tmp_path / "nan"), CFG, state, "BigBirdForMaskedLM")
    convert_checkpoint(str(tmp_path / "nan"), str(tmp_path / "copy"), "safetensors")
    back = read_checkpoint(str(tmp_path / "copy"))[1]
    assert all(identical(back[k], v) for k, v in state.items())
    assert compare(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])).ok
    assert not compare(np.array([np.nan, 1.0]), np.array([0.0, 1.0])).ok


def test_framework_weight_files_hold_only_tensors(saved):
    directory, _ = saved
    (directory / "model.safetensors").unlink()
    torch = pytest.importorskip("torch")
    import bigbird_torch  # noqa: F401  registers pytorch_model.bin

    torch.save({"bert.x": 1, "y": "text"}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="entry 'bert.x' is a int, not a tensor"):
        read_checkpoint(str(directory))
    torch.save([torch.zeros(2)], directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="expected a mapping of names to tensors, got list"):
        read_checkpoint(str(directory))
    (directory / "pytorch_model.bin").unlink()
    pytest.importorskip("flax")
    import bigbird_flax  # noqa: F401  registers flax_model.msgpack
    from flax import serialization

    (directory / "flax_model.msgpack").write_bytes(serialization.msgpack_serialize({"bert": {"x": "text"}}))
    with pytest.raises(CheckpointError, match="bert/x is a str, not an array"):
        read_checkpoint(str(directory))
    (directory / "flax_model.msgpack").write_bytes(b"\x93\x01\x02")
    with pytest.raises(CheckpointError, match="expected a parameter tree|corrupt"):
        read_checkpoint(str(directory))
