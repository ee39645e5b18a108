"""torch.export of every head in eval mode: static shapes and a dynamic batch, equal to eager."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import bigbird_core as core  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from cases import CASES, TINY, make_inputs  # noqa: E402

CFG = BigBirdConfig(**TINY)


@pytest.mark.parametrize("head", core.HEADS)
def test_export_matches_eager_static_and_with_a_dynamic_batch(head):
    model = bt.MODEL_CLASSES[head](CFG, seed=0).eval()
    inputs = {k: torch.as_tensor(v) for k, v in make_inputs(CASES[0], head).items()}  # block-sparse, padded
    bigger = {k: torch.cat([v, v.flip(0), v]) for k, v in inputs.items()}  # batch 6 instead of 2
    with torch.no_grad():
        eager, eager_bigger = model(**inputs), model(**bigger)
    static = torch.export.export(model, (), inputs).module()
    batch = torch.export.Dim("batch", min=1, max=64)
    dynamic = torch.export.export(model, (), inputs, dynamic_shapes={k: {0: batch} for k in inputs}).module()
    for name, program, args, expected in (("static", static, inputs, eager), ("dynamic", dynamic, inputs, eager),
                                          ("dynamic batch 6", dynamic, bigger, eager_bigger)):  # fmt: skip
        out = program(**args)
        assert type(out) is type(expected), name  # the output dataclass is a registered pytree
        assert out.keys() == expected.keys()
        for key in expected.keys():
            assert_close(out[key], expected[key], name=f"{name} {key}")
