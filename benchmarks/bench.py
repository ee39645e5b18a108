"""Speed and memory of bigbird against transformers 4.57.6, side by side in one process.

    python benchmarks/bench.py --quick                   # 1024 tokens, fp32: about a minute
    python benchmarks/bench.py                           # 1024/4096/16384, fp32 and bf16, train step at 4096
    python benchmarks/bench.py --memory                  # also peak RSS, each measurement in a fresh process

Rows: the block-sparse attention kernel alone (q, k, v given), the whole model (``--layers`` encoder
layers at base width: 768 hidden, 12 heads, block 64, r 3), and one training step (forward + backward
of a sum over the last hidden state). Timings are medians over ``--reps`` runs after a warm-up, the
implementations interleaved within every run, so ratios are measured side by side. Eval mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

PAIRS = {"torch": ("ours-torch", "hf-torch"), "flax": ("ours-flax", "hf-flax")}


def base_config(args):
    from bigbird_core import BigBirdConfig

    return BigBirdConfig(hidden_size=args.hidden, num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                         num_hidden_layers=args.layers, block_size=args.block, num_random_blocks=3,
                         max_position_embeddings=max(args.seqs), vocab_size=args.vocab, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)  # fmt: skip


def hf_config(config):
    import transformers

    data = {k: v for k, v in config.to_dict().items() if k not in ("random_plan", "plan_seed")}
    return transformers.BigBirdConfig(**data)


# ------------------------------------------------------------------------------------------ workloads
def make_attention(impl: str, config, seq: int, dtype: str):
    """A function running the block-sparse attention kernel alone on fixed q, k, v."""
    import torch
    from bigbird_core.layout import block_layout, compact_slots
    from bigbird_core.plans import make_plan

    H, d, b, r = config.num_attention_heads, config.head_dim, config.block_size, config.num_random_blocks
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(1, H, seq, d)).astype(np.float32) for _ in range(3))
    plan = make_plan(config, seq // b, training=False)
    if impl.endswith("torch"):
        tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        tq, tk, tv = (torch.as_tensor(x).to(tdt) for x in (q, k, v))
        mask = torch.ones(1, seq, dtype=tdt)
        if impl == "ours-torch":
            from bigbird_torch.attention import LayoutTensors, block_sparse_attention

            lay = LayoutTensors.build(block_layout(plan, b), torch.device("cpu"))
            return lambda: block_sparse_attention(tq, tk, tv, mask, lay, layer=0)[0]
        from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention
        from transformers.models.big_bird.modeling_big_bird import BigBirdModel as HFModel

        att = BigBirdBlockSparseAttention(hf_config(config), seed=0).eval()
        blocked, band, from_mask, to_mask = HFModel.create_masks_for_block_sparse_attn(mask, b)
        return lambda: att.bigbird_block_sparse_attention(
            tq, tk, tv, band, from_mask, to_mask, blocked, blocked, H, r, d, b, b, 1, seq, seq, seed=0,
            plan_from_length=None, plan_num_rand_blocks=None, output_attentions=False)[0]  # fmt: skip
    import jax
    import jax.numpy as jnp

    jdt = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype]
    jq, jk, jv = (jnp.asarray(x, jdt) for x in (q, k, v))
    mask = jnp.ones((1, seq), jdt)
    if impl == "ours-flax":
        from bigbird_flax.attention import fast_block_sparse_attention

        merged = compact_slots(block_layout(plan, b))
        blocks, bias = jnp.asarray(merged.key_blocks[0]), jnp.asarray(merged.slot_bias[0], jnp.float32)
        fn = jax.jit(lambda q, k, v, m: fast_block_sparse_attention(q, k, v, m, blocks, bias, b))
        return lambda: fn(jq, jk, jv, mask).block_until_ready()
    from transformers.models.big_bird.modeling_flax_big_bird import FlaxBigBirdBlockSparseAttention

    module = FlaxBigBirdBlockSparseAttention(hf_config(config), block_sparse_seed=0, dtype=jdt)

    def kernel(q, k, v, m):
        blocked, band, from_mask, to_mask = module.create_masks_for_block_sparse_attn(m, b)
        return module.apply({}, q, k, v, band, from_mask, to_mask, blocked, blocked, H, d, deterministic=True,
                            method=FlaxBigBirdBlockSparseAttention.bigbird_block_sparse_attention)[0]  # fmt: skip

    fn = jax.jit(kernel)
    return lambda: fn(jq, jk, jv, mask).block_until_ready()


def make_model(impl: str, config, seq: int, dtype: str, directory: str, train: bool = False):
    """A function running the whole model forward (or one training step) on a fixed input."""
    ids = np.random.default_rng(1).integers(5, config.vocab_size, (1, seq))
    if impl.endswith("torch"):
        import torch

        tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        if impl == "ours-torch":
            import bigbird_torch

            model = bigbird_torch.BigBirdModel.from_pretrained(directory, torch_dtype=tdt)
        else:
            import transformers

            model = transformers.BigBirdModel.from_pretrained(directory, torch_dtype=tdt)
        model.eval()
        tids = torch.as_tensor(ids)
        if not train:

            def forward():
                with torch.no_grad():
                    return model(input_ids=tids).last_hidden_state

            return forward

        def step():
            model.zero_grad(set_to_none=True)
            model(input_ids=tids).last_hidden_state.float().sum().backward()

        return step
    import jax
    import jax.numpy as jnp

    jdt = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype]
    jids = jnp.asarray(ids, jnp.int32)
    if impl == "ours-flax":
        import bigbird_flax

        model = bigbird_flax.FlaxBigBirdModel.from_pretrained(directory, dtype=jdt)
        run = lambda p: model(jids, params=p).last_hidden_state  # noqa: E731
    else:
        import transformers

        model = transformers.FlaxBigBirdModel.from_pretrained(directory, from_pt=True, dtype=jdt)
        run = lambda p: model(jids, params=p).last_hidden_state  # noqa: E731
    params = model.params
    if not train:
        fn = jax.jit(run)
        return lambda: fn(params).block_until_ready()
    grad = jax.jit(jax.grad(lambda p: run(p).astype(jnp.float32).sum()))
    return lambda: jax.tree_util.tree_leaves(grad(params))[0].block_until_ready()


def build(kind: str, impl: str, config, seq: int, dtype: str, directory: str):
    if kind == "attention":
        return make_attention(impl, config, seq, dtype)
    return make_model(impl, config, seq, dtype, directory, train=kind == "train")


# ------------------------------------------------------------------------------------------- running
def time_interleaved(fns: dict, reps: int) -> dict[str, float]:
    """Median ms per implementation; every repetition runs each implementation once, in turn, the order
    reversed every other repetition so that no implementation always follows the same one."""
    for fn in fns.values():
        fn()  # warm-up (and jit compilation)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for rep in range(reps):
        for name, fn in list(fns.items())[:: 1 if rep % 2 == 0 else -1]:
            t0 = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {k: statistics.median(v) for k, v in samples.items()}


def peak_rss_mib(kind: str, impl: str, seq: int, dtype: str, directory: str, args) -> float:
    """Peak RSS of a fresh process that builds and runs one workload twice."""
    cmd = [sys.executable, __file__, "--child", f"{kind},{impl},{seq},{dtype},{directory}",
           "--layers", str(args.layers), "--hidden", str(args.hidden), "--heads", str(args.heads),
           "--block", str(args.block), "--vocab", str(args.vocab), "--seq", ",".join(map(str, args.seqs))]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def child(spec: str, args) -> None:
    kind, impl, seq, dtype, directory = spec.split(",")
    fn = build(kind, impl, base_config(args), int(seq), dtype, directory)
    fn()
    fn()
    print(peak_of_this_process_mib())


def peak_of_this_process_mib() -> float:
    """VmHWM: this process's own peak RSS (ru_maxrss would include the parent's peak across fork+exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def available(impls: list[str]) -> list[str]:
    keep = []
    for impl in impls:
        try:
            __import__("bigbird_torch" if impl == "ours-torch" else "bigbird_flax" if impl == "ours-flax"
                       else "transformers")  # fmt: skip
            if impl.endswith("flax"):
                __import__("flax")
            keep.append(impl)
        except ImportError:
            pass
    return keep


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1024 tokens, fp32, attention and model, 3 reps")
    p.add_argument("--seq", default="1024,4096,16384")
    p.add_argument("--dtype", default="float32,bfloat16")
    p.add_argument("--kinds", default="attention,model,train")
    p.add_argument("--impls", default="ours-torch,hf-torch,ours-flax,hf-flax")
    p.add_argument("--train-seq", type=int, default=4096, help="length of the training-step rows")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--vocab", type=int, default=50358)
    p.add_argument("--memory", action="store_true", help="also measure peak RSS (a process per measurement)")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "latest.json"))
    p.add_argument("--report", metavar="JSON", help="print a results file as a Markdown table and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.seq, args.dtype, args.kinds, args.reps = "1024", "float32", "attention,model", 3
    args.seqs = [int(s) for s in args.seq.split(",")]
    if args.report:
        print(markdown(json.load(open(args.report))))
        return 0
    if args.child:
        child(args.child, args)
        return 0
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    config = base_config(args)
    impls = available(args.impls.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import bigbird_torch

        bigbird_torch.BigBirdModel(config, seed=0).save_pretrained(tmp)
        for kind in args.kinds.split(","):
            for dtype in args.dtype.split(","):
                seqs = [args.train_seq] if kind == "train" else args.seqs
                for seq in seqs:
                    if kind == "train" and dtype != "float32":
                        continue
                    fns = {impl: build(kind, impl, config, seq, dtype, tmp) for impl in impls}
                    ms = {}  # each framework's pair side by side (XLA's idle threads slow whoever follows JAX)
                    for pair in PAIRS.values():
                        ms.update(time_interleaved({i: fns[i] for i in pair if i in fns}, args.reps))
                    mem = (
                        {i: peak_rss_mib(kind, i, seq, dtype, tmp, args) for i in impls}
                        if args.memory
                        else {}
                    )
                    for fw, (ours, theirs) in PAIRS.items():
                        if ours in ms and theirs in ms:
                            rows.append(dict(kind=kind, framework=fw, seq=seq, dtype=dtype, ours_ms=ms[ours],
                                             theirs_ms=ms[theirs], speedup=ms[theirs] / ms[ours],
                                             ours_mib=mem.get(ours), theirs_mib=mem.get(theirs)))  # fmt: skip
                            print_row(rows[-1])
                    del fns
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"
    result = {"machine": machine, "torch": torch.__version__, "layers": args.layers, "rows": rows,
              "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    try:
        import jax

        result["jax"] = jax.__version__
    except ImportError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {args.json}")
    return 0


def markdown(result: dict) -> str:
    """The rows of a results file as a Markdown table (ratios: transformers / ours)."""
    lines = [
        "| kind | framework | seq | dtype | ours ms | transformers ms | speedup | ours MiB | transformers MiB | memory ratio |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        mem = ["—", "—", "—"]
        if r.get("ours_mib") and r.get("theirs_mib") and r["ours_mib"] == r["ours_mib"]:
            mem = [f"{r['ours_mib']:.0f}", f"{r['theirs_mib']:.0f}", f"{r['ours_mib'] / r['theirs_mib']:.2f}"]
        lines.append(f"| {r['kind']} | {r['framework']} | {r['seq']} | {r['dtype']} | {r['ours_ms']:.1f} | "
                     f"{r['theirs_ms']:.1f} | {r['speedup']:.2f}x | " + " | ".join(mem) + " |")  # fmt: skip
    return "\n".join(lines)


def print_row(r: dict) -> None:
    mem = ""
    if r["ours_mib"] is not None:
        mem = f"  {r['ours_mib']:8.0f} MiB vs {r['theirs_mib']:8.0f} MiB ({r['ours_mib'] / r['theirs_mib']:.2f}x)"
    print(f"{r['kind']:9} {r['framework']:5} {r['seq']:6} {r['dtype']:8}  ours {r['ours_ms']:9.1f} ms  "
          f"transformers {r['theirs_ms']:9.1f} ms  speedup {r['speedup']:5.2f}x{mem}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
