"""What benchmarks/gpu.py's sections share: the results document, checks, rows and the timers."""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

RESULTS: dict = {"rows": [], "checks": [], "errors": []}


def log(*parts) -> None:
    print(*parts, flush=True)


def save(path: str) -> None:
    with open(path, "w") as fh:
        json.dump(RESULTS, fh, indent=2)


def rel(a, b) -> float:
    """max |a - b| / max |b| in float64."""
    a, b = (np.asarray(x.detach().float().cpu() if hasattr(x, "detach") else x, np.float64) for x in (a, b))
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check(name: str, value: float, tol: float) -> None:
    ok = bool(value <= tol)
    RESULTS["checks"].append(dict(name=name, rel=value, tol=tol, ok=ok))
    log(f"check {name:58} rel {value:9.2e}  tol {tol:7.0e}  {'ok' if ok else 'FAIL'}")


def with_kernel(fn, model, kernel: str):
    """``fn`` run with ``model``'s block-sparse kernel set to ``kernel`` (the core's names), then restored."""

    def run():
        previous = model.set_block_sparse_kernel(kernel)
        try:
            return fn()
        finally:
            model.set_block_sparse_kernel(previous)

    return run


# --------------------------------------------------------------------------------------------- timing
def torch_time(fn, device) -> float:
    """Median ms of ``fn`` (CUDA events through triton's do_bench, or the host clock on the CPU)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=50, rep=300, return_mode="median"))
    fn()
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def torch_peak_mib(fn, device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def jax_time(fn, reps: int = 20) -> float:
    fn()
    fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def row(kind, impl, seq, dtype, ms, mib=None, **extra) -> None:
    RESULTS["rows"].append(dict(kind=kind, impl=impl, seq=seq, dtype=dtype, ms=ms, mib=mib, **extra))
    mem = f"  {mib:9.1f} MiB" if mib is not None else ""
    log(f"{kind:10} {impl:32} {seq:6} {dtype:8} {ms:10.3f} ms{mem}")
