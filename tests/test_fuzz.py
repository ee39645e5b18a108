"""Fuzzing the file parsers: every input loads or raises the library's own error, never another exception
and never a hang (safetensors headers, shard indexes, config.json, golden files)."""

from __future__ import annotations

import json
import os
import struct
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigbird_core as bb
from bigbird_core import BigBirdConfig, BigBirdError
from bigbird_core.checkpoint import read_checkpoint, read_safetensors
from cases import TINY

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
CFG = BigBirdConfig(**TINY)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
tensor_entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F8", 3]),
    "shape": st.lists(st.integers(-2, 2**40), max_size=3) | json_values,
    "data_offsets": st.lists(st.integers(-5, 200), min_size=0, max_size=3) | json_values,
})  # fmt: skip
headers = st.dictionaries(st.text(max_size=8), tensor_entries | json_values, max_size=4) | json_values


def _only_our_errors(fn) -> None:
    try:
        fn()
    except BigBirdError:
        pass


@FUZZ
@given(header=headers, data=st.binary(max_size=256), declared=st.none() | st.integers(0, 2**64 - 1))
def test_safetensors_header_parser(header, data, declared):
    raw = json.dumps(header).encode()
    size = len(raw) if declared is None else declared
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", size) + raw + data)
        _only_our_errors(lambda: read_safetensors(path))


@FUZZ
@given(blob=st.binary(max_size=300))
def test_safetensors_arbitrary_bytes(blob):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.safetensors")
        with open(path, "wb") as fh:
            fh.write(blob)
        _only_our_errors(lambda: read_safetensors(path))


@FUZZ
@given(index=json_values | st.fixed_dictionaries({"weight_map": st.dictionaries(st.text(max_size=30), json_values
                                                                                   | st.text(max_size=30))}))
def test_shard_index(index):
    with tempfile.TemporaryDirectory() as tmp:
        CFG.save(os.path.join(tmp, "config.json"))
        with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as fh:
            json.dump(index, fh)
        _only_our_errors(lambda: read_checkpoint(tmp))


FIELDS = [f for f in CFG.to_dict() if f not in ("id2label", "label2id")]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4), raw=st.none() | st.binary(max_size=40))
def test_config_json(changes, raw):
    data = {**CFG.to_dict(), **changes}
    blob = json.dumps(data).encode() if raw is None else raw
    _only_our_errors(lambda: BigBirdConfig.from_json_bytes(blob))


@FUZZ
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), drop=st.integers(0, 20), which=st.booleans())
def test_golden_files(golden, cut, flip, drop, which):
    from bigbird_cli.regress import load_golden

    base, npz, manifest = golden
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "g")
        data, meta = bytearray(npz), dict(manifest)
        if which:
            data = data[: cut % (len(data) + 1)]
            if data:
                data[flip % len(data)] ^= 0xFF
        else:
            meta.pop(sorted(meta)[drop % len(meta)], None)
        with open(target + ".npz", "wb") as fh:
            fh.write(bytes(data))
        with open(target + ".json", "w") as fh:
            json.dump(meta, fh)
        _only_our_errors(lambda: load_golden(target))


def _golden():
    from bigbird_cli.regress import record

    tmp = tempfile.mkdtemp()
    bb.BigBirdModel(CFG, seed=0).save_pretrained(os.path.join(tmp, "m"))
    manifest = record(os.path.join(tmp, "m"), os.path.join(tmp, "g"), heads=["BigBirdModel"])
    with open(os.path.join(tmp, "g.npz"), "rb") as fh:
        return tmp, fh.read(), manifest


_GOLDEN = None


def pytest_generate_tests(metafunc):  # one recorded golden file for every fuzz example
    global _GOLDEN
    if "golden" in metafunc.fixturenames:
        if _GOLDEN is None:
            _GOLDEN = _golden()
        metafunc.parametrize("golden", [_GOLDEN], ids=["recorded"])


def test_a_valid_golden_file_loads(golden):
    from bigbird_cli.regress import load_golden

    base, npz, manifest = golden
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "g")
        with open(target + ".npz", "wb") as fh:
            fh.write(npz)
        with open(target + ".json", "w") as fh:
            json.dump(manifest, fh)
        loaded, arrays = load_golden(target)
    assert loaded == manifest and sorted(arrays) == manifest["entries"]
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
