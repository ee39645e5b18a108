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

from .backends import BACKENDS, available_backends
from .errors import BigBirdError
from .weights import HEADS


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
    from .check import supported_heads
    from .checkpoint import read_checkpoint

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
    info = sub.add_parser("info", help="describe a checkpoint directory")
    info.add_argument("model", metavar="DIR")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BigBirdError as exc:
        print(f"bigbird: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bigbird: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
