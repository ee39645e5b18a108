"""One decoding step at batch 1: ours (torch eager, jitted Flax on the fixed-size cache) against transformers 4.57.6
PyTorch, on the same weights of a base-width 2-layer decoder (768 hidden, 12 heads, 3072 intermediate, vocabulary
50358), side by side in one process.

    python benchmarks/decode.py                  # a 128-token prompt in the cache, then one new token (a minute)
    python benchmarks/decode.py --json out.json

Rows: "self" = a decoder alone; "cross" = with cross-attention to 1024 encoder states (ours cache the encoder's
keys and values: torch in the growing cache, Flax recomputes them per step as transformers' Flax does).
transformers' PyTorch step with cross-attention runs its 4.57.6 layer (whose self-attention attends to the
encoder; see tests/oracle.py) with a DynamicCache: a timing, not a reference. Timings: medians over ``--reps``
steps after warm-up, the implementations interleaved, so the ratio is measured side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def measure(kind: str, args: argparse.Namespace) -> dict:
    """One row: the three steps of ``kind`` ("self" or "cross"), interleaved."""
    import jax.numpy as jnp
    import transformers

    import bigbird_flax as bf
    import bigbird_torch as bt
    import torch
    from bigbird_core import BigBirdConfig

    cfg = BigBirdConfig(num_hidden_layers=2, is_decoder=True, add_cross_attention=kind == "cross",
                        attention_type="original_full", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        max_position_embeddings=4096)  # fmt: skip
    data = cfg.to_dict()
    for ours_only in ("random_plan", "plan_seed"):
        data.pop(ours_only)
    torch.manual_seed(0)
    hf = transformers.BigBirdForCausalLM(transformers.BigBirdConfig(**data)).eval()
    directory = tempfile.mkdtemp()
    hf.save_pretrained(directory)
    ours = bt.BigBirdForCausalLM.from_pretrained(directory)
    flax = bf.FlaxBigBirdForCausalLM.from_pretrained(directory)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, cfg.vocab_size, (1, args.prompt))
    nxt = torch.as_tensor(rng.integers(5, cfg.vocab_size, (1, 1)))
    cross = {}
    if kind == "cross":
        cross = {"encoder_hidden_states": rng.standard_normal((1, args.encoder_len, cfg.hidden_size)).astype(
            np.float32)}  # fmt: skip
    t = {k: torch.as_tensor(v) for k, v in cross.items()}
    mask = torch.ones(1, args.prompt + 1, dtype=torch.long)

    hf_past = hf(torch.as_tensor(ids), use_cache=True, **t).past_key_values
    hf_len = hf_past.get_seq_length()

    def hf_step():
        hf_past.crop(hf_len)  # the same cache every step
        return hf(nxt, attention_mask=mask, past_key_values=hf_past, use_cache=True, **t).logits

    our_past = ours(torch.as_tensor(ids), use_cache=True, **t).past_key_values

    def ours_step():
        return ours(nxt, attention_mask=mask, past_key_values=our_past, use_cache=True, **t).logits

    max_len = args.prompt + 8
    big = np.zeros((1, max_len), np.int32)
    big[:, : args.prompt + 1] = 1
    prefill = flax(ids, attention_mask=big, position_ids=np.arange(args.prompt)[None],
                   past_key_values=flax.init_cache(1, max_len), **cross)  # fmt: skip
    flax_cache, pos = prefill.past_key_values, jnp.asarray([[args.prompt]])
    j = {k: jnp.asarray(v) for k, v in cross.items()}
    f_ids, f_mask = jnp.asarray(nxt.numpy(), jnp.int32), jnp.asarray(big)

    def flax_step():
        out = flax(f_ids, attention_mask=f_mask, position_ids=pos, past_key_values=flax_cache, **j)
        return out.logits.block_until_ready()

    steps = {"transformers-torch": hf_step, "ours-torch": ours_step, "ours-flax": flax_step}
    check = np.abs(ours_step().numpy() - np.asarray(flax_step())).max()
    for fn in steps.values():  # warm-up (Flax compiles)
        fn()
    times = {name: [] for name in steps}
    for _ in range(args.reps):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ms = {name: 1e3 * statistics.median(v) for name, v in times.items()}
    return dict(kind=kind, prompt=args.prompt, encoder_len=args.encoder_len if kind == "cross" else 0, ms=ms,
                ratio_torch=ms["transformers-torch"] / ms["ours-torch"],
                ratio_flax=ms["transformers-torch"] / ms["ours-flax"], torch_vs_flax_max_abs=float(check))  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--encoder-len", type=int, default=1024)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--json")
    args = p.parse_args(argv)
    import jax

    import torch

    torch.set_grad_enabled(False)
    rows = []
    for kind in ("self", "cross"):
        row = measure(kind, args)
        rows.append(row)
        ms = row["ms"]
        print(f"{kind:5} step: transformers {ms['transformers-torch']:.2f} ms, ours torch {ms['ours-torch']:.2f} ms "
              f"({row['ratio_torch']:.2f}x), ours flax {ms['ours-flax']:.2f} ms ({row['ratio_flax']:.2f}x); "
              f"torch vs flax logits {row['torch_vs_flax_max_abs']:.1e}", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "jax": jax.__version__, "torch": torch.__version__}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
