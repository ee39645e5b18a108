"""The shipped reference of `bigbird check` is what transformers 4.57.6 computes: re-recorded here with the
oracle (scripts/record_reference.py) and compared with the packaged file."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("transformers")
from bigbird_cli.check import load_reference  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "record_reference.py")


def test_shipped_reference_matches_the_oracle(tmp_path):
    spec = importlib.util.spec_from_file_location("record_reference", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    fresh = script.record(str(tmp_path / "reference.npz"))
    shipped = {f"{h}|{m}|{f}": v for (h, m), fields in load_reference().items() for f, v in fields.items()}
    assert sorted(fresh) == sorted(shipped) and len(shipped) >= 8 * 2 * 2  # every head, eval and train, loss too
    for key, value in fresh.items():
        assert_close(shipped[key], value, name=key)
    assert {k.split("|")[1] for k in shipped} == {"eval", "train"}
    assert all(np.isfinite(v).all() for v in shipped.values())
