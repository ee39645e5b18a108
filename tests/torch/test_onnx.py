"""torch.onnx.export(dynamo=True) of every head in eval mode, with a dynamic batch and named outputs, run in
onnxruntime: equal to eager at the exported batch and at another."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import bigbird_core as core  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from cases import CASES, TINY, make_inputs  # noqa: E402

CFG = BigBirdConfig(**TINY)


@pytest.mark.parametrize("head", core.HEADS)
def test_onnx_in_onnxruntime_matches_eager(head, tmp_path):
    model = bt.MODEL_CLASSES[head](CFG, seed=0).eval()
    inputs = {k: torch.as_tensor(v) for k, v in make_inputs(CASES[0], head).items()}  # block-sparse, padded
    bigger = {k: torch.cat([v, v.flip(0), v]) for k, v in inputs.items()}
    with torch.no_grad():
        eager, eager_bigger = model(**inputs), model(**bigger)
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (), kwargs=inputs, dynamo=True, verbose=False,
                                    dynamic_shapes={k: {0: batch} for k in inputs}, output_names=list(eager.keys()))  # fmt: skip
    program.save(str(tmp_path / "model.onnx"))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == list(eager.keys())
    for feed, expected in ((inputs, eager), (bigger, eager_bigger)):
        outputs = session.run(None, {k: v.numpy() for k, v in feed.items()})
        for name, got in zip(names, outputs, strict=True):
            assert_close(np.asarray(got), expected[name].numpy(), name=f"{head} batch {len(feed['input_ids'])} {name}")
