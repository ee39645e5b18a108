"""Record transformers 4.57.6's outputs for `bigbird check`'s built-in default model.

`bigbird check` compares every installed backend with these numbers (and with each other), so it checks
something real even where NumPy is the only backend. Run from the repository root with the test
dependencies installed; tests/test_reference.py re-runs it against the oracle and compares.

    python scripts/record_reference.py [OUT]   # default: src/bigbird_core/cli/reference.npz
"""

from __future__ import annotations

import io
import os
import sys
import tempfile

import numpy as np
import transformers

import torch
from bigbird_cli.check import DEFAULT_CONFIG, DEFAULT_SEQ_LEN, default_inputs, reference_fields
from bigbird_core.heads import MODEL_CLASSES

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "src", "bigbird_core", "cli", "reference.npz")


def oracle_outputs(head: str, directory: str, train: bool) -> dict[str, np.ndarray]:
    """transformers' outputs for ``head`` on the default inputs (seed 0), NumPy's global RNG left alone."""
    model = getattr(transformers, head).from_pretrained(directory).train(train)
    inputs = default_inputs(DEFAULT_CONFIG, head, DEFAULT_SEQ_LEN, 2, 0)
    state = np.random.get_state()
    try:
        with torch.no_grad():
            out = model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, return_dict=True)
    finally:
        np.random.set_state(state)
    return {k: out[k].detach().numpy().astype(np.float32) for k in reference_fields(out.keys())}


def record(out_path: str = DEFAULT_OUT) -> dict[str, np.ndarray]:
    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        for head, cls in MODEL_CLASSES.items():
            path = os.path.join(tmp, head)
            cls(DEFAULT_CONFIG, seed=0).save_pretrained(path)  # the default model `bigbird check` builds
            for mode in ("eval", "train"):
                for field, value in oracle_outputs(head, path, mode == "train").items():
                    arrays[f"{head}|{mode}|{field}"] = value
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(out_path, "wb") as fh:
        fh.write(buf.getvalue())
    return arrays


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    arrays = record(target)
    print(f"wrote {len(arrays)} arrays to {target} (transformers {transformers.__version__})")
