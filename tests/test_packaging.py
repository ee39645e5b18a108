"""The wheel carries the Apache-2.0 licence and the core's runtime dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_wheel_carries_the_license(tmp_path):
    pytest.importorskip("setuptools")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", ROOT, "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = tmp_path.glob("bigbird-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "Apache License" in zf.read(license_file).decode() and "Version 2.0" in zf.read(license_file).decode()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: ml_dtypes" in metadata
    with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as fh:
        assert fh.read().lstrip().startswith("Apache License")
