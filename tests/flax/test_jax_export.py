"""jax.export of the Flax heads: a symbolic batch equal to eager at several batch sizes, and a program
lowered for CUDA from this CPU host carries the accelerator kernel, not the CPU loop (lax.platform_dependent)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
import jax.numpy as jnp  # noqa: E402
from jax import export  # noqa: E402

import bigbird_flax as bf  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from cases import CASES, TINY, make_inputs  # noqa: E402

CFG = BigBirdConfig(**TINY)


def exported(head: str, platforms=None):
    model = bf.MODEL_CLASSES[head](CFG)
    inputs = {k: np.asarray(v, np.int32) for k, v in make_inputs(CASES[0], head).items()}  # block-sparse, padded
    ids, mask = inputs["input_ids"], inputs["attention_mask"]

    def run(params, input_ids, attention_mask):
        return model.module.apply({"params": params}, input_ids, attention_mask)

    (batch,) = export.symbolic_shape("b")
    shape = jax.ShapeDtypeStruct((batch,) + ids.shape[1:], jnp.int32)
    params = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model.params)
    program = export.export(jax.jit(run), platforms=platforms)(params, shape, shape)
    return model, program, ids, mask


@pytest.mark.parametrize("head", ["BigBirdModel", "BigBirdForQuestionAnswering", "BigBirdForMaskedLM"])
def test_symbolic_batch_matches_eager(head):
    model, program, ids, mask = exported(head)
    for reps in (1, 3):  # batch 2 and 6 through the same program
        x, m = np.concatenate([ids] * reps), np.concatenate([mask] * reps)
        got, want = program.call(model.params, x, m), model(x, attention_mask=m)
        for key in want.keys():
            assert_close(got[key], want[key], name=f"batch {len(x)} {key}")


def test_a_cuda_export_from_this_host_has_the_accelerator_kernel():
    _, cpu, _, _ = exported("BigBirdModel")
    _, cuda, _, _ = exported("BigBirdModel", platforms=("cuda",))
    _, both, _, _ = exported("BigBirdModel", platforms=("cpu", "cuda"))
    assert cuda.platforms == ("cuda",) and both.platforms == ("cpu", "cuda")
    assert "stablehlo.while" in cpu.mlir_module()  # the CPU's cache-sized loop over rows
    assert "stablehlo.while" not in cuda.mlir_module()  # one batch of fused einsums
