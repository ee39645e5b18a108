"""The ``bigbird`` command: check numerics across backends, inspect checkpoints.

bigbird check                  # every head, every installed backend, on the seeded default model
bigbird check --model DIR      # the same for a checkpoint directory
bigbird info DIR               # config, parameter count, dtypes and supported heads
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..errors import BigBirdError
from ..weights import HEADS
from .backends import BACKENDS, available_backends, load_formats


def _csv(kind: str, allowed):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"{kind}: expected a comma-separated subset of {', '.join(allowed)}, got {text!r}"
            )
        return items

    return parse


def _check(args: argparse.Namespace) -> int:
    from .check import DEFAULT_SEQ_LEN, run_check

    backends = args.backends or available_backends()
    if len(backends) < 2:
        backends = ["numpy", "numpy"] if backends == ["numpy"] else backends
    say = (
        (lambda s: None)
        if args.json or args.quiet
        else (lambda s: print(f"  .. {s}", file=sys.stderr, flush=True))
    )
    rows = run_check(args.model, backends=backends, heads=args.heads, seq_len=args.seq_len or DEFAULT_SEQ_LEN,
                     batch=args.batch, dtype=args.dtype, seed=args.seed, train=args.train, progress=say)  # fmt: skip
    failed = [r for r in rows if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "rows": [r.__dict__ for r in rows]}, indent=2))
    else:
        print(f"{'head':34} {'pair':14} {'max abs':>10} {'rel':>10} {'tol':>7}  result  worst field")
        for r in rows:
            pair = f"{r.left}-{r.right}"
            verdict = "pass" if r.ok else "FAIL"
            print(
                f"{r.head:34} {pair:14} {r.max_abs:10.2e} {r.rel:10.2e} {r.tol:7.0e}  {verdict:6}  {r.field}"
            )
        print(f"{len(rows) - len(failed)}/{len(rows)} rows within tolerance ({args.dtype}); "
              + ("FAILED: " + ", ".join(f"{r.head} {r.left}-{r.right}" for r in failed) if failed else "all passed"))  # fmt: skip
    return 1 if failed else 0


def _info(args: argparse.Namespace) -> int:
    from ..checkpoint import read_checkpoint
    from .check import supported_heads

    config, state = read_checkpoint(args.model)
    dtypes = sorted({str(v.dtype) for v in state.values()})
    print(f"checkpoint: {args.model}")
    print(
        f"parameters: {sum(int(np.prod(v.shape)) for v in state.values()):,} in {len(state)} tensors ({', '.join(dtypes)})"
    )
    print(f"heads supported: {', '.join(supported_heads(args.model)) or 'none'}")
    print("config:")
    for key, value in sorted(config.to_dict().items()):
        print(f"  {key}: {value}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from ..checkpoint import read_checkpoint
    from ..convert import convert_checkpoint
    from ..heads import MODEL_CLASSES
    from ..tolerances import compare
    from .check import default_inputs, flatten_output

    head = convert_checkpoint(args.src, args.dst, args.to, dtype=args.dtype, head=args.head)
    print(f"wrote {args.dst} ({args.to}, {head})")
    if args.no_verify:
        return 0
    _, src_state = read_checkpoint(args.src)
    _, dst_state = read_checkpoint(args.dst)
    if args.dtype is None:
        bad = [k for k, v in dst_state.items() if not np.array_equal(np.asarray(v), np.asarray(src_state[k]))]
        if bad:
            print(f"bigbird: error: weights changed in conversion: {', '.join(bad[:5])}", file=sys.stderr)
            return 1
        print(f"weights: {len(dst_state)} tensors bit-identical")
    src, dst = (MODEL_CLASSES[head].from_pretrained(d, dtype="float32") for d in (args.src, args.dst))
    inputs = default_inputs(
        src.config,
        head,
        min(src.config.max_position_embeddings, src.config.min_block_sparse_length + 3),
        1,
        0,
    )
    a, b = flatten_output(src(**inputs)), flatten_output(dst(**inputs))
    dtype = args.dtype if args.dtype in ("bfloat16", "float16") else "float32"
    worst = max((compare(b[k], a[k], dtype) for k in a), key=lambda c: (not c.ok, c.rel))
    print(f"outputs: {head} on a seeded input, {worst}")
    return 0 if worst.ok else 1


def _regress(args: argparse.Namespace) -> int:
    from .regress import record, verify

    say = (lambda s: None) if args.quiet else (lambda s: print(f"  .. {s}", file=sys.stderr, flush=True))
    if args.action == "record":
        manifest = record(args.model, args.golden, backend=args.backend, progress=say)
        print(
            f"recorded {len(manifest['entries'])} outputs of {', '.join(manifest['heads'])} into {args.golden}"
        )
        return 0
    drifts, manifest = verify(args.model, args.golden, backend=args.backend, progress=say)
    bad = [d for d in drifts if not d.ok]
    for d in drifts if args.verbose else bad:
        print(
            f"{'ok  ' if d.ok else 'DRIFT'} {d.entry:70} max abs {d.max_abs:.2e} rel {d.rel:.2e} (tol {d.tol:.0e})"
        )
    recorded = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    print(
        f"{len(drifts) - len(bad)}/{len(drifts)} outputs within tolerance on {args.backend} (recorded with {recorded})"
    )
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigbird", description="BigBird across NumPy, PyTorch and Flax.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="run every head on every installed backend and compare")
    check.add_argument(
        "--model", metavar="DIR", help="a checkpoint directory (default: the seeded tiny model)"
    )
    check.add_argument(
        "--backends", type=_csv("backends", list(BACKENDS)), help="default: every installed backend"
    )
    check.add_argument(
        "--heads", type=_csv("heads", list(HEADS)), help="default: every head the weights support"
    )
    check.add_argument("--seq-len", type=int, default=None, help="sequence length (default 150)")
    check.add_argument("--batch", type=int, default=2)
    check.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--train", action="store_true", help="train mode (dropout must be 0 in the config)")
    check.add_argument("--json", action="store_true", help="print JSON for machines")
    check.add_argument("--quiet", action="store_true", help="no progress lines")
    check.set_defaults(func=_check)
    conv = sub.add_parser("convert", help="write a checkpoint directory in another format")
    conv.add_argument("src", metavar="SRC")
    conv.add_argument("dst", metavar="DST")
    conv.add_argument("--to", required=True, choices=["safetensors", "torch-bin", "flax"])
    conv.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "float64"], help="cast weights")
    conv.add_argument("--head", choices=list(HEADS), help="keep only this head's weights")
    conv.add_argument("--no-verify", action="store_true", help="skip running both sides on a seeded input")
    conv.set_defaults(func=_convert)
    reg = sub.add_parser("regress", help="record or verify golden outputs of a checkpoint")
    reg.add_argument("action", choices=["record", "verify"])
    reg.add_argument("model", metavar="DIR")
    reg.add_argument("golden", metavar="GOLDEN", help="golden file path (GOLDEN.npz + GOLDEN.json)")
    reg.add_argument("--backend", default="numpy", choices=list(BACKENDS))
    reg.add_argument("--verbose", action="store_true", help="list every output, not only drifting ones")
    reg.add_argument("--quiet", action="store_true")
    reg.set_defaults(func=_regress)
    info = sub.add_parser("info", help="describe a checkpoint directory")
    info.add_argument("model", metavar="DIR")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_formats()
        return args.func(args)
    except BigBirdError as exc:
        print(f"bigbird: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bigbird: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"bigbird: error: a backend is not installed ({exc.name}): {exc}", file=sys.stderr)
        return 2

