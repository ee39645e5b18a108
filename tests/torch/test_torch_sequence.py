"""torch sequence parallelism under ``torchrun`` on gloo: one example's blocks over 2 and 4 processes. The attention
and the whole body (``sequence_parallel_forward``) equal one process, forward and backward, eval and training
plans; bad calls give the same errors as the other backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from bigbird_core.layout import block_layout  # noqa: E402
from bigbird_core.plans import transformers_plan  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from bigbird_torch.attention import LayoutTensors, block_sparse_attention  # noqa: E402

CFG = BigBirdConfig(vocab_size=128, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=1024, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)  # fmt: skip
LENGTH = 510  # padded to 512 = 64 blocks

WORKER = r"""
import os, sys
import torch
import torch.distributed as dist
sys.path.insert(0, sys.argv[2])
from test_torch_sequence import CFG, attention_inputs, model_inputs, plan_layout
import bigbird_torch as bt
from bigbird_core import InputError
from bigbird_torch.sequence import sequence_parallel_attention, sequence_parallel_forward, sequence_shards

out_dir = sys.argv[1]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
result = {"attention": {}, "model": {}, "errors": []}
q, k, v, mask, w = attention_inputs()
own = q.shape[2] // world
mine = slice(rank * own, (rank + 1) * own)
for training in (False, True):
    lay = plan_layout(training)
    ql, kl, vl = (x[:, :, mine].clone().requires_grad_() for x in (q, k, v))
    ctx = sequence_parallel_attention(ql, kl, vl, mask, sequence_shards(lay, world), 1)
    (ctx * w[:, :, mine]).sum().backward()
    result["attention"][training] = [t.detach() for t in (ctx, ql.grad, kl.grad, vl.grad)]

ids, ids_mask, wh = model_inputs()
model = bt.BigBirdModel(CFG, seed=0)
for training in (False, True):
    model.train(training)
    model.zero_grad()
    out = sequence_parallel_forward(model, ids, ids_mask)
    own = out.last_hidden_state.shape[1]
    (out.last_hidden_state * wh[:, rank * own:(rank + 1) * own]).sum().backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)  # the loss is the sum of the ranks' parts
            grads[name] = p.grad.clone()
    result["model"][training] = dict(hidden=out.last_hidden_state.detach(), pooled=out.pooler_output.detach(),
                                     grads=grads)
for call in (lambda: sequence_parallel_forward(model, ids[:, :500]),
             lambda: sequence_parallel_forward(model, ids[:, :64]),
             lambda: sequence_parallel_attention(ql, kl, vl, mask, sequence_shards(plan_layout(False), 8), 1)):
    try:
        call()
    except InputError as e:
        result["errors"].append(str(e))
torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
dist.barrier()  # every rank done with gloo before any tears it down (a teardown race aborted a run once)
dist.destroy_process_group()
"""


def plan_layout(training: bool):
    return block_layout(transformers_plan(CFG, 64, training=training), CFG.block_size)


def attention_inputs():
    g = torch.Generator().manual_seed(0)
    q, k, v, w = (torch.randn(2, 2, 512, 16, generator=g) for _ in range(4))
    mask = torch.ones(2, 512)
    mask[1, 450:] = 0
    return q, k, v, mask, w


def model_inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (2, LENGTH), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 450:] = 0
    weights = torch.randn(2, 512, CFG.hidden_size, generator=g)
    weights[:, LENGTH:] = 0  # the padding tokens past the input count for nothing
    return ids, mask, weights


def launch(processes: int, directory) -> list[dict]:
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    script = directory / "worker.py"
    script.write_text(WORKER)
    run = subprocess.run([torchrun, "--standalone", f"--nproc_per_node={processes}", str(script), str(directory),
                          os.path.dirname(__file__)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    return [torch.load(directory / f"rank{r}.pt") for r in range(processes)]


@pytest.fixture(scope="module", params=[2, 4], ids=lambda n: f"{n} processes")
def ranks(request, tmp_path_factory):
    return launch(request.param, tmp_path_factory.mktemp(f"sp{request.param}"))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_attention_over_processes_equals_one_process(ranks, training):
    q, k, v, mask, w = attention_inputs()
    lay = LayoutTensors.build(plan_layout(training), torch.device("cpu"))
    q, k, v = (x.clone().requires_grad_() for x in (q, k, v))
    ctx, _ = block_sparse_attention(q, k, v, mask, lay, layer=1)
    (ctx * w).sum().backward()
    names = ("context", "q grad", "k grad", "v grad")
    for name, got, expected in zip(names, zip(*[r["attention"][training] for r in ranks], strict=True),
                                   (ctx, q.grad, k.grad, v.grad), strict=True):  # fmt: skip
        kind = "gradient" if "grad" in name else "output"
        assert_close(torch.cat(got, dim=2), expected, "float32", kind, name=name)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_the_whole_body_over_processes_equals_one_process(ranks, training):
    ids, mask, wh = model_inputs()
    model = bt.BigBirdModel(CFG, seed=0).train(training)
    out = model(ids, mask)
    (out.last_hidden_state * wh[:, :LENGTH]).sum().backward()
    hidden = torch.cat([r["model"][training]["hidden"] for r in ranks], dim=1)[:, :LENGTH]
    assert_close(hidden, out.last_hidden_state, "float32", name="last_hidden_state")
    for r in ranks:
        assert_close(r["model"][training]["pooled"], out.pooler_output, "float32", name="pooler_output")
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    scale = max(float(g.abs().max()) for g in grads.values())
    assert ranks[0]["model"][training]["grads"].keys() == grads.keys()
    for name, g in grads.items():
        for r in ranks:  # every rank holds the same reduced gradient
            assert_close(r["model"][training]["grads"][name], g, "float32", "gradient", name=name, scale=scale)


def test_bad_calls_give_the_errors_of_every_backend(ranks):
    short, full, plan = ranks[0]["errors"]
    assert short == "shards: expected a divisor of the 63 blocks of the sequence, got " + str(len(ranks))
    assert full.startswith("input_ids: expected a call that runs block-sparse attention")
    assert plan == f"shards: expected a plan for the group's {len(ranks)} ranks, got a plan for 8 shards"
