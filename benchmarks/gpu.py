"""GPU checks and benchmarks: the FlexAttention path's results, then its speed and memory on CUDA.

    python benchmarks/gpu.py                      # on a CUDA machine: checks, then 4096 and 16384 in bf16
    python benchmarks/gpu.py --smoke              # tiny sizes on whatever device there is (harness check)

Results go to benchmarks/results/gpu.json (``--out`` or ``$OUT`` for another folder); without a CUDA device the
full run is refused (exit 2): ``--smoke`` checks the harness on a CPU in under a minute.

Sections, each independent (a failing one is reported and the rest still run):
  check     fp32 and bf16 results of the flex paths against the gather path, the full layout and
            transformers 4.57.6 on the same device (kernel and a two-layer base-width model, padded).
  attention the block-sparse kernel alone: ours (flex, both treatments of the global rows; gather) vs dense
            ``scaled_dot_product_attention`` vs transformers' block-sparse kernel.
  model     ``BigBirdModel`` with one encoder layer, forward, ours vs transformers' block-sparse model; and
            one training step (forward + backward) at 4096.
  flax      our Flax backend on the GPU: results against the torch backend, kernel and model timings
            against dense ``jax.nn.dot_product_attention`` and transformers' Flax model.
Times are medians (CUDA events for torch, host clock after ``block_until_ready`` for JAX); memory is the
peak allocated by the workload above what was allocated before it (torch), or XLA's compiled temp size (JAX).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU with torch
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
from bench import base_config, hf_config  # noqa: E402
from gpu_common import (  # noqa: E402
    RESULTS,
    check,
    jax_time,
    log,
    rel,
    row,
    save,
    torch_peak_mib,
    torch_time,
    with_kernel,
)


# ------------------------------------------------------------------------------------------- sections
def kernel_inputs(config, seq, dtype, device, batch=1, pad=0, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    shape = (batch, config.num_attention_heads, seq, config.head_dim)
    q, k, v = (torch.randn(shape, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    mask = torch.ones(batch, seq, device=device, dtype=dtype)
    if pad:
        mask[-1, -pad:] = 0
    return q, k, v, mask


def layout_for(config, seq, device, training=False):
    import torch
    from bigbird_core.layout import block_layout
    from bigbird_core.plans import make_plan
    from bigbird_torch.attention import LayoutTensors

    plan = make_plan(config, seq // config.block_size, training=training)
    return LayoutTensors.build(block_layout(plan, config.block_size), torch.device(device))


def section_peak(device) -> None:
    """The card's measured ceilings: a bf16 8192^3 matrix product and a device-to-device copy."""
    import torch

    if device.type != "cuda":
        return
    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    ms = torch_time(lambda: a @ b, device)
    RESULTS["peak_bf16_tflops"] = 2 * 8192**3 / ms / 1e9
    x = torch.empty(2**30, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    ms = torch_time(lambda: y.copy_(x), device)
    RESULTS["copy_tb_per_s"] = 2 * 2**30 / ms / 1e9
    log(f"peak bf16 matmul {RESULTS['peak_bf16_tflops']:.0f} TFLOP/s, copy {RESULTS['copy_tb_per_s']:.2f} TB/s")


def section_check(args, device, config, tmp) -> None:
    """Results of the flex paths on this device: kernel (values, gradients) and a padded two-layer model."""
    import bigbird_torch.attention as A
    import torch

    seq = args.check_seq
    for training in (False, True):
        lay = layout_for(config, seq, device, training)
        q, k, v, mask = kernel_inputs(config, seq, torch.float32, device, batch=2, pad=77)
        for t in (q, k, v):
            t.requires_grad_(True)
        ref, _ = A._block_sparse_with_probs(q, k, v, mask, lay, 0)
        w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3)).to(device)
        ref_g = torch.autograd.grad((ref * w).sum(), (q, k, v))
        gather = A.fast_block_sparse_attention(q, k, v, mask, lay, 0)
        check(f"kernel gather fp32 train={training}", rel(gather, ref), 1e-5)
        qkv = (q, k, v) if device.type == "cuda" else (q.detach(), k.detach(), v.detach())  # no CPU backward
        got = A.flex_block_sparse_attention(*qkv, mask, lay, 0)
        check(f"kernel flex fp32 train={training}", rel(got, ref), 1e-5)
        if device.type == "cuda":
            got_g = torch.autograd.grad((got * w).sum(), (q, k, v))
            check(f"kernel flex fp32 grad q,k,v train={training}",
                  max(rel(a, b) for a, b in zip(got_g, ref_g, strict=True)), 1e-4)  # fmt: skip
        with torch.no_grad():
            qb, kb, vb, mb = (x.detach().to(torch.bfloat16) for x in (q, k, v, mask))
            got = A.flex_block_sparse_attention(qb, kb, vb, mb, lay, 0)
            check(f"kernel flex bf16 vs fp32 train={training}", rel(got, ref), 2e-2)
            if device.type == "cuda" and not training:  # the eval plan repeats block 0: the bias table
                got = A.flex_block_sparse_attention(*(x.detach() for x in (q, k, v)), mask, lay, 0, repeated_tiles=False)
                check("kernel flex bias table fp32 train=False", rel(got, ref), 1e-5)
                got = A.flex_block_sparse_attention(qb, kb, vb, mb, lay, 0, repeated_tiles=False)
                check("kernel flex bias table bf16 vs fp32 train=False", rel(got, ref), 2e-2)
        if device.type == "cuda":  # half-precision training through FlexAttention (autotuned backward tiles)
            qb, kb, vb = (x.detach().to(torch.bfloat16).requires_grad_(True) for x in (q, k, v))
            got = A.block_sparse_attention(qb, kb, vb, mask.to(torch.bfloat16), lay, layer=0, kernel="flex")[0]
            got_g = torch.autograd.grad((got * w.to(got.dtype)).float().sum(), (qb, kb, vb))
            check(f"kernel flex bf16 training vs fp32 train={training}", rel(got, ref), 2e-2)
            check(f"kernel flex bf16 grad q,k,v vs fp32 train={training}",
                  max(rel(a, b) for a, b in zip(got_g, ref_g, strict=True)), 5e-2)  # fmt: skip

    import transformers

    import bigbird_torch

    cfg = config.replace(num_hidden_layers=2, max_position_embeddings=seq)
    path = os.path.join(tmp, "check")
    bigbird_torch.BigBirdModel(cfg, seed=0).save_pretrained(path)
    ids = torch.as_tensor(np.random.default_rng(0).integers(5, cfg.vocab_size, (2, seq - 37)), device=device)
    attn = torch.ones_like(ids)
    attn[1, -200:] = 0
    theirs = transformers.BigBirdModel.from_pretrained(path).to(device).eval()
    with torch.no_grad():
        ref = theirs(input_ids=ids, attention_mask=attn).last_hidden_state
    del theirs
    variants = [("gather", "tiles", "off"), ("flex", "tiles", "off")]
    if device.type == "cuda":
        variants += [("flex-bias", "bias", "off"), ("flex", "tiles", "default")]
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        ours = bigbird_torch.BigBirdModel.from_pretrained(path, torch_dtype=dtype).to(device).eval()
        for kernel, repeated, compiled in variants:
            ours.set_block_sparse_kernel(kernel)
            ours.set_compiled_layers(compiled)
            with torch.no_grad():  # the kernel's name says how repeated blocks count ("flex" / "flex-bias")
                out = ours(input_ids=ids, attention_mask=attn).last_hidden_state
            name = str(dtype).split(".")[-1]
            extra = "" if (repeated, compiled) == ("tiles", "off") else f" {repeated} compiled={compiled}"
            check(
                f"model {kernel}{extra} {name} vs transformers (valid rows)",
                rel(out[attn.bool()], ref[attn.bool()]),
                tol,
            )
    RESULTS["check_model_path"] = path


def section_attention(args, device, config) -> None:
    import torch

    for seq in args.seqs:
        for dtype in args.dtypes:
            fns = attention_fns(config, seq, getattr(torch, dtype), device)
            fns = {k: f for k, f in fns.items() if not args.impls or any(k.startswith(p) for p in args.impls)}
            with torch.no_grad():
                for impl, fn in fns.items():
                    row("attention", impl, seq, dtype, torch_time(fn, device), torch_peak_mib(fn, device))
                if args.profile and device.type == "cuda" and seq == max(args.seqs):
                    for impl in ("ours-flex", "ours-flex-bias"):
                        profile(fns[impl], f"attention {impl} {seq} {dtype}")


def profile(fn, name: str = "attention", cpu: bool = False) -> None:
    """The CUDA kernels of 5 calls of ``fn``, by time (for the benchmarks README's explanation); with
    ``cpu`` the host side too (is the GPU waiting for launches?)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    import torch

    fn()
    torch.cuda.synchronize()
    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if cpu else [])
    t0 = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) / 5 * 1000
    gemm_us = total_us = 0.0
    for evt in prof.key_averages():
        us = getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0.0)
        if getattr(evt, "device_type", None) is not None and "CUDA" not in str(evt.device_type):
            continue
        total_us += us
        if any(t in evt.key.lower() for t in ("gemm", "nvjet", "xmma", "cutlass", "mm_")):
            gemm_us += us
    RESULTS.setdefault("profiles", {})[name] = dict(
        wall_ms_per_call_profiled=wall, gpu_us_per_call=total_us / 5, gemm_us_per_call=gemm_us / 5
    )
    log(f"profile {name}: GPU busy {total_us / 5:.1f} us per call, of which matrix products {gemm_us / 5:.1f} us")
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=16, max_name_column_width=60)
    RESULTS["profiles"][name]["table"] = table
    log(f"profile {name}: {wall:.3f} ms per call under the profiler")
    log(table)


def attention_fns(config, seq, tdt, device) -> dict:
    """The kernels timed side by side, on the same q, k, v (batch 1, no padding)."""
    import torch.nn.functional as F

    import bigbird_torch.attention as A

    H, d, b, r = config.num_attention_heads, config.head_dim, config.block_size, config.num_random_blocks
    lay = layout_for(config, seq, device)
    q, k, v, mask = kernel_inputs(config, seq, tdt, device)

    fns = {
        "ours-flex": lambda: A.flex_block_sparse_attention(q, k, v, mask, lay, 0),
        "ours-flex-bias": lambda: A.flex_block_sparse_attention(q, k, v, mask, lay, 0, repeated_tiles=False),
        "ours-gather": lambda: A.fast_block_sparse_attention(q, k, v, mask, lay, 0),
        "dense-sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
    }
    try:
        from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention
        from transformers.models.big_bird.modeling_big_bird import BigBirdModel as HFModel

        att = BigBirdBlockSparseAttention(hf_config(config), seed=0).eval()
        blocked, band, from_mask, to_mask = HFModel.create_masks_for_block_sparse_attn(mask, b)
        fns["transformers"] = lambda: att.bigbird_block_sparse_attention(
            q, k, v, band, from_mask, to_mask, blocked, blocked, H, r, d, b, b, 1, seq, seq, seed=0,
            plan_from_length=None, plan_num_rand_blocks=None, output_attentions=False)[0]  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a missing oracle leaves the other rows
        RESULTS["errors"].append(f"transformers attention {seq}: {exc!r}")
    return fns


def section_model(args, device, config, tmp) -> None:
    import bigbird_torch
    import torch

    path = os.path.join(tmp, "bench")
    bigbird_torch.BigBirdModel(config, seed=0).save_pretrained(path)
    runs = [(seq, 1, dtype, False) for seq in args.seqs for dtype in args.dtypes]
    runs += [(seq, 8, dtype, False) for seq in args.batch8_seqs for dtype in args.dtypes]
    runs += [(seq, 1, dtype, True) for seq in args.train_seqs for dtype in args.train_dtypes]
    for seq, batch, dtype, train in runs:
        fns = model_fns(config, seq, batch, getattr(torch, dtype), device, path, train)
        for kind, impl, fn in fns:
            try:
                row(kind, impl, seq, dtype, torch_time(fn, device), torch_peak_mib(fn, device), batch=batch)
            except Exception as exc:  # noqa: BLE001 - a variant that fails is reported, the rest run
                RESULTS["errors"].append(f"{kind} {impl} {seq} b{batch} {dtype}: {exc!r}"[:2000])
                log(f"error: {kind} {impl} {seq} b{batch} {dtype}: {exc!r}"[:2000])
        if args.profile and device.type == "cuda" and not train and batch == 1 and seq == max(args.seqs):
            for _, impl, fn in fns:
                if impl in ("ours", "ours-compiled"):
                    profile(fn, f"model {impl} {seq} {dtype}", cpu=True)
        del fns
        torch.cuda.empty_cache() if device.type == "cuda" else None


MODEL_KERNEL = "auto"  # the block-sparse kernel of our models ("flex" in the CPU smoke run)


def model_fns(config, seq, batch, tdt, device, path, train: bool) -> list:
    """(kind, impl, fn): one-layer forward of ours (the library's defaults and, on CUDA, its measured
    options) and transformers', or with ``train`` a training step."""
    import transformers

    import bigbird_torch
    import torch

    ids = torch.as_tensor(np.random.default_rng(1).integers(5, config.vocab_size, (batch, seq)), device=device)
    ours = bigbird_torch.BigBirdModel.from_pretrained(path, torch_dtype=tdt).to(device).eval()
    theirs = transformers.BigBirdModel.from_pretrained(path, torch_dtype=tdt).to(device).eval()
    ours.set_block_sparse_kernel(MODEL_KERNEL)

    def forward(model, compiled="off", graphs=False):
        if model is ours:
            model.set_compiled_layers(compiled)
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.no_grad():
            return model(input_ids=ids).last_hidden_state

    def step(model, compiled="off"):
        if model is ours:
            model.set_compiled_layers(compiled)
        model.zero_grad(set_to_none=True)
        model(input_ids=ids).last_hidden_state.float().sum().backward()

    if train:
        out = [("train", "ours", lambda: step(ours))]
        if device.type == "cuda":
            if tdt != torch.float32:
                out.append(("train", "ours-gather", with_kernel(lambda: step(ours), ours, "gather")))
            out.append(("train", "ours-compiled", lambda: step(ours, "default")))
        return out + [("train", "transformers", lambda: step(theirs))]
    out = [("model", "ours", lambda: forward(ours))]
    if device.type == "cuda":
        out += [
            ("model", "ours-bias", with_kernel(lambda: forward(ours), ours, "flex-bias")),
            ("model", "ours-compiled", lambda: forward(ours, "default")),
            ("model", "ours-cudagraphs", lambda: forward(ours, "reduce-overhead", True)),
        ]
    return out + [("model", "transformers", lambda: forward(theirs))]


def section_flax(args, config, tmp) -> None:
    import jax
    import jax.numpy as jnp

    import bigbird_flax
    import bigbird_torch

    log(f"jax {jax.__version__} on {jax.devices()}")
    RESULTS["jax"] = f"{jax.__version__} {jax.devices()[0].device_kind}"

    # results: Flax on this device against the torch backend (CPU, float32) on a padded two-layer model
    seq = args.check_seq
    cfg = config.replace(num_hidden_layers=2, max_position_embeddings=seq)
    path = os.path.join(tmp, "flax-check")
    torch_model = bigbird_torch.BigBirdModel(cfg, seed=0).eval()
    torch_model.save_pretrained(path)
    ids = np.random.default_rng(0).integers(5, cfg.vocab_size, (2, seq - 37))
    attn = np.ones_like(ids)
    attn[1, -200:] = 0
    import torch

    with torch.no_grad():
        ref = torch_model(
            input_ids=torch.as_tensor(ids), attention_mask=torch.as_tensor(attn)
        ).last_hidden_state
    valid = attn.astype(bool)
    # fp32 matmuls on NVIDIA GPUs default to TF32 in XLA: strict parity asks for "highest"
    for dtype, precision, tol in ((jnp.float32, "highest", 1e-5), (jnp.float32, "default", 1e-2),
                                  (jnp.bfloat16, "default", 5e-2)):  # fmt: skip
        with jax.default_matmul_precision(precision):
            model = bigbird_flax.FlaxBigBirdModel.from_pretrained(path, dtype=dtype)
            out = model(jnp.asarray(ids), attention_mask=jnp.asarray(attn)).last_hidden_state
        check(f"flax model {jnp.dtype(dtype).name} precision={precision} vs torch backend (valid rows)",
              rel(np.asarray(out, np.float32)[valid], ref.numpy()[valid]), tol)  # fmt: skip

    bench_path = os.path.join(tmp, "flax-bench")
    bigbird_torch.BigBirdModel(config, seed=0).save_pretrained(bench_path)
    for seq in args.seqs:
        for dtype in args.dtypes:
            for kind, impl, fn, fargs in flax_fns(config, seq, getattr(jnp, dtype), bench_path):
                try:
                    temp = fn.lower(*fargs).compile().memory_analysis()
                    mib = temp.temp_size_in_bytes / 2**20 if temp is not None else None
                    row(
                        kind,
                        impl,
                        seq,
                        dtype,
                        jax_time(lambda f=fn, a=fargs: f(*a).block_until_ready(), 10),
                        mib,
                    )
                except Exception as exc:  # noqa: BLE001 - transformers' Flax model may not run on this flax
                    RESULTS["errors"].append(f"{impl} {kind} {seq} {dtype}: {exc!r}")
                    log(f"error: {impl} {kind} {seq} {dtype}: {exc!r}")


def flax_fns(config, seq, jdt, path) -> list:
    """(kind, impl, jitted fn, args): our Flax kernel vs dense attention, our Flax model vs transformers'."""
    import jax
    import jax.numpy as jnp

    import bigbird_flax
    from bigbird_core.layout import block_layout, compact_slots
    from bigbird_core.plans import make_plan
    from bigbird_flax.attention import fast_block_sparse_attention

    H, d, b = config.num_attention_heads, config.head_dim, config.block_size
    key = jax.random.PRNGKey(0)
    q, k, v = (jax.random.normal(jax.random.fold_in(key, i), (1, H, seq, d), jdt) for i in range(3))
    mask = jnp.ones((1, seq), jdt)
    merged = compact_slots(block_layout(make_plan(config, seq // b, training=False), b))
    blocks, bias = jnp.asarray(merged.key_blocks[0]), jnp.asarray(merged.slot_bias[0], jnp.float32)
    ours = jax.jit(lambda q, k, v, m: fast_block_sparse_attention(q, k, v, m, blocks, bias, b))
    dense = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(
        q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)))  # fmt: skip
    out = [("attention", "ours-flax", ours, (q, k, v, mask)), ("attention", "dense-jax", dense, (q, k, v))]
    ids = jnp.asarray(np.random.default_rng(1).integers(5, config.vocab_size, (1, seq)), jnp.int32)
    models = {"ours-flax": lambda: bigbird_flax.FlaxBigBirdModel.from_pretrained(path, dtype=jdt)}
    try:
        import transformers

        models["transformers-flax"] = lambda: transformers.FlaxBigBirdModel.from_pretrained(
            path, from_pt=True, dtype=jdt
        )
    except Exception as exc:  # noqa: BLE001
        RESULTS["errors"].append(f"transformers Flax: {exc!r}")
    for impl, load in models.items():
        try:
            model = load()
        except Exception as exc:  # noqa: BLE001 - transformers' Flax model may not load on this flax
            RESULTS["errors"].append(f"{impl} load: {exc!r}")
            continue
        fn = jax.jit(lambda p, m=model: m(ids, params=p).last_hidden_state)
        out.append(("model", impl, fn, (model.params,)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, any device: checks the harness")
    p.add_argument("--seq", default="4096,16384")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--train-seq", default="4096,16384")
    p.add_argument("--batch8-seq", default="4096", help="lengths also run at batch 8 (model forward)")
    p.add_argument("--train-dtype", default="bfloat16,float32")
    p.add_argument(
        "--impls", default="", help="attention rows whose name starts with one of these (default all)"
    )
    p.add_argument(
        "--profile", action="store_true", help="CUDA kernels of the first attention row, largest seq"
    )
    p.add_argument("--check-seq", type=int, default=4096)
    p.add_argument("--sections", default="peak,check,attention,model,flax")
    p.add_argument("--out", default=os.environ.get("OUT", RESULTS_DIR),
                   help="folder of gpu.json (default: benchmarks/results, or $OUT)")  # fmt: skip
    args = p.parse_args(argv)
    import bigbird_torch.attention as A
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:  # the full run times CUDA kernels: minutes of nothing on a CPU
        print("gpu.py: error: no CUDA device; run it on a GPU machine, or --smoke for the quick harness check "
              "on this one", file=sys.stderr)  # fmt: skip
        return 2
    os.makedirs(args.out, exist_ok=True)
    hidden, heads, block, vocab = 768, 12, 64, 50358
    if args.smoke:
        args.seq, args.train_seq, args.check_seq, args.batch8_seq = "1024", "1024", 1024, ""
        hidden, heads, vocab = 128, 2, 1000
        if device.type == "cpu":
            global MODEL_KERNEL
            MODEL_KERNEL = "flex"  # the eager FlexAttention: checks the harness only
    args.seqs = [int(s) for s in args.seq.split(",")]
    args.train_seqs = [int(s) for s in args.train_seq.split(",") if s]
    args.batch8_seqs = [int(s) for s in args.batch8_seq.split(",") if s]
    args.dtypes = args.dtype.split(",")
    args.train_dtypes = [t for t in args.train_dtype.split(",") if t]
    args.impls = [i for i in args.impls.split(",") if i]
    ns = argparse.Namespace(
        hidden=hidden, heads=heads, layers=1, block=block, vocab=vocab,
        seqs=args.seqs + args.train_seqs + [args.check_seq]
    )
    config = base_config(ns)
    RESULTS.update(device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", torch=torch.__version__,
                   flex=A.flex_available(), date=time.strftime("%Y-%m-%d"), config=dict(hidden=hidden, heads=heads,
                   block=block, r=config.num_random_blocks, layers=1))  # fmt: skip
    try:
        import transformers

        RESULTS["transformers"] = transformers.__version__
    except ImportError as exc:
        RESULTS["errors"].append(f"transformers: {exc!r}")
    log(json.dumps({k: v for k, v in RESULTS.items() if k not in ("rows", "checks")}))
    out = os.path.join(args.out, "gpu.json")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sections.split(","):
            t0 = time.perf_counter()
            log(f"--- {name}")
            try:
                if name == "peak":
                    section_peak(device)
                elif name == "check":
                    section_check(args, device, config, tmp)
                elif name == "attention":
                    section_attention(args, device, config)
                elif name == "model":
                    section_model(args, device, config, tmp)
                elif name == "flax":
                    torch.cuda.empty_cache() if device.type == "cuda" else None
                    section_flax(args, config, tmp)
            except Exception:  # noqa: BLE001 - report and go on with the next section
                RESULTS["errors"].append(f"{name}: {traceback.format_exc()}")
                log(traceback.format_exc())
            log(f"--- {name}: {time.perf_counter() - t0:.1f} s")
            save(out)
    log(
        f"wrote {out}; {sum(not c['ok'] for c in RESULTS['checks'])} failed checks, {len(RESULTS['errors'])} errors"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
