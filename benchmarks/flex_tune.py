"""FlexAttention kernel variants for BigBird's middle rows (CUDA): which score_mod and tile settings are fastest.

    python benchmarks/flex_tune.py [--seq 16384]

Times (median, CUDA events) the compiled ``flex_attention`` alone on the library's block mask for the middle
query blocks, bf16, base width: the library's score_mod (key padding + merged-slot bias) with its tile options,
with other warps/stages, with the key-padding bias only, and with no score_mod.
"""

from __future__ import annotations

import argparse
import sys

import torch._dynamo
from torch.nn.attention.flex_attention import flex_attention
from triton.testing import do_bench

import bigbird_torch.attention as A
import torch
from bigbird_core import BigBirdConfig
from bigbird_core.layout import block_layout
from bigbird_core.plans import make_plan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seq", type=int, default=16384)
    args = p.parse_args(argv)
    torch._dynamo.config.recompile_limit = 64
    cfg = BigBirdConfig(hidden_size=768, num_attention_heads=12, block_size=64, num_random_blocks=3)
    b, seq = 64, args.seq
    lay = A.LayoutTensors.build(
        block_layout(make_plan(cfg, seq // b, training=False), b), torch.device("cuda")
    )
    block_mask, block_bias = lay.flex(0)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 12, seq, 64, generator=g).to("cuda", torch.bfloat16) for _ in range(3))
    qm = q[:, :, b:-b]
    key_bias = torch.zeros(1, seq, device="cuda")
    kernel = torch.compile(flex_attention, dynamic=False)

    def both(score, batch, head, q_idx, kv_idx):
        return score + key_bias[batch, kv_idx] + block_bias[head, q_idx // b + 1, kv_idx // b]

    def key_only(score, batch, head, q_idx, kv_idx):
        return score + key_bias[batch, kv_idx]

    lib = A.flex_kernel_options(b)
    variants = {
        "library (bias both, 64x64 tiles)": (both, lib),
        "bias both, warps 4 stages 3": (both, {**lib, "num_warps": 4, "num_stages": 3}),
        "bias both, warps 4 stages 2": (both, {**lib, "num_warps": 4, "num_stages": 2}),
        "bias both, warps 8 stages 2": (both, {**lib, "num_warps": 8, "num_stages": 2}),
        "key bias only": (key_only, lib),
        "key bias only, warps 4 stages 3": (key_only, {**lib, "num_warps": 4, "num_stages": 3}),
        "no score_mod": (None, lib),
        "no score_mod, warps 4 stages 3": (None, {**lib, "num_warps": 4, "num_stages": 3}),
    }
    ref = None
    with torch.no_grad():
        for name, (mod, options) in variants.items():
            try:
                fn = lambda mod=mod, options=options: kernel(qm, k, v, score_mod=mod, block_mask=block_mask,  # noqa: E731
                                                             kernel_options=options)  # fmt: skip
                out = fn()
                ms = do_bench(fn, warmup=50, rep=200, return_mode="median")
                diff = (
                    ""
                    if ref is None
                    else f"  max diff vs library {float((out.float() - ref).abs().max()):.2e}"
                )
                ref = out.float() if ref is None else ref
                print(f"{name:40} {ms * 1000:8.1f} us{diff}", flush=True)
            except Exception as exc:  # noqa: BLE001 - report a variant that does not compile
                print(f"{name:40} failed: {str(exc)[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
