"""torch data parallelism on the engines users have: DDP and FSDP2 (``fully_shard`` per encoder layer), run
with ``torchrun --nproc_per_node=2`` on gloo. After one optimizer step every rank holds the same weights, equal
to one process trained on the concatenated batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402

CFG = BigBirdConfig(vocab_size=100, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2,
                    max_position_embeddings=512, block_size=8, num_random_blocks=2, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)  # fmt: skip
BATCH, LENGTH, LR = 4, 256, 0.5  # 256 tokens: block-sparse attention

WORKER = r"""
import os, sys
import torch
import torch.distributed as dist
sys.path.insert(0, sys.argv[3])
from test_distributed import CFG, data, step
import bigbird_torch as bt

mode, out = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model = bt.BigBirdForMaskedLM(CFG, seed=0).train()
if mode == "ddp":
    # the masked-LM head leaves the pooler unused (as transformers' does): DDP must be told
    model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
else:
    from torch.distributed.fsdp import fully_shard
    for layer in model.bert.encoder.layer:
        fully_shard(layer)
    fully_shard(model)
ids = data()
per = len(ids) // world
loss = step(model, ids[rank * per:(rank + 1) * per])
dist.all_reduce(loss, op=dist.ReduceOp.AVG)
state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
         for k, v in model.state_dict().items()}
state = {k.removeprefix("module."): v for k, v in state.items()}
torch.save({"loss": loss, "state": state}, os.path.join(out, f"rank{rank}.pt"))
dist.barrier()  # every rank done with gloo before any tears it down (a teardown race aborted a run once)
dist.destroy_process_group()
"""


def data() -> torch.Tensor:
    return torch.randint(5, CFG.vocab_size, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))


def step(model, ids: torch.Tensor) -> torch.Tensor:
    """One SGD step of the masked-LM loss (every token a label: equal counts on every rank)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    return loss.detach()


@pytest.mark.parametrize("mode", ["ddp", "fsdp2"])
def test_two_processes_equal_one_on_the_whole_batch(mode, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", str(script), mode, str(tmp_path),
                          os.path.dirname(__file__)], capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key  # ranks identical
    model = bt.BigBirdForMaskedLM(CFG, seed=0).train()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    loss = step(model, data())
    torch.testing.assert_close(ranks[0]["loss"], loss, rtol=1e-5, atol=1e-6)
    reference = model.state_dict()
    assert ranks[0]["state"].keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert all(not torch.equal(reference[k], initial[k]) for k in reference if k.endswith("query.weight"))  # it moved
