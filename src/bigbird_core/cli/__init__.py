"""The ``bigbird`` command: check numerics across backends, inspect, convert and regress checkpoints.

bigbird check                  # every head, every installed backend, on the seeded default model
bigbird check --model DIR      # the same for a checkpoint directory
bigbird info DIR               # config, parameter count, dtypes and supported heads

Exit codes: 0 all good; 1 a numerical difference found (check, regress verify, convert); 2 bad usage
or bad input (arguments, files); 3 an unexpected internal error. Every error is one line
``bigbird: error: ...`` (``--debug`` adds the traceback); with ``--json`` the output is always one JSON
document, errors included (``{"ok": false, "error": ...}``; NaN and infinities as null).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

import numpy as np

from ..errors import BigBirdError
from ..weights import HEADS
from .backends import BACKENDS, available_backends, load_formats

OK, DIFFERENCE, BAD_INPUT, INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A bad command line (exit code 2)."""


def _csv(kind: str, allowed):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {', '.join(allowed)}, got {text!r}")
        return items

    return parse


def _count(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, recursively (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _emit(data: dict) -> None:
    print(json.dumps(_finite(data), indent=2, allow_nan=False))


def _check(args: argparse.Namespace) -> int:
    from .check import run_check, uses_reference

    installed = available_backends()
    backends = args.backends or installed
    missing = [b for b in (args.backends or BACKENDS) if b not in installed]
    if args.backends and missing:
        raise UsageError(f"--backends: {', '.join(missing)} not installed (installed: {', '.join(installed)})")
    reference = uses_reference(args.model, args.seq_len, args.batch, args.seed)
    if len(backends) < 2 and not reference:
        raise UsageError(
            f"nothing to compare: one backend ({', '.join(backends)}) and no recorded reference for this "
            "model and input; run two or more backends (installed: " + ", ".join(installed) + ")"
        )
    say = (lambda s: None) if args.json or args.quiet else (lambda s: print(f"  .. {s}", file=sys.stderr, flush=True))
    rows = run_check(args.model, backends=backends, heads=args.heads, seq_len=args.seq_len, batch=args.batch,
                     dtype=args.dtype, seed=args.seed, train=args.train, progress=say)  # fmt: skip
    failed = [r for r in rows if not r.ok]
    skipped = [b for b in BACKENDS if b not in backends]
    if args.json:
        _emit({"ok": not failed, "backends": backends, "not_installed": [b for b in BACKENDS if b not in installed],
               "skipped": skipped, "reference": "transformers 4.57.6" if reference else None,
               "rows": [r.__dict__ for r in rows]})  # fmt: skip
    else:
        print(f"{'head':34} {'pair':20} {'max abs':>10} {'rel':>10} {'tol':>7}  result  worst field")
        for r in rows:
            pair = f"{r.left}-{r.right}"
            verdict = "pass" if r.ok else "FAIL"
            print(f"{r.head:34} {pair:20} {r.max_abs:10.2e} {r.rel:10.2e} {r.tol:7.0e}  {verdict:6}  {r.field}")
        ran = f"backends run: {', '.join(backends)}"
        if skipped:
            ran += f"; not run: {', '.join(skipped)}" + (
                f" (not installed: {', '.join(b for b in skipped if b not in installed)})"
                if any(b not in installed for b in skipped) else "")  # fmt: skip
        print(ran + ("; compared with transformers 4.57.6's recorded outputs" if reference else ""))
        print(f"{len(rows) - len(failed)}/{len(rows)} rows within tolerance ({args.dtype}); "
              + ("FAILED: " + ", ".join(f"{r.head} {r.left}-{r.right}" for r in failed) if failed else "all passed"))  # fmt: skip
    return DIFFERENCE if failed else OK


def _info(args: argparse.Namespace) -> int:
    from ..checkpoint import read_checkpoint
    from .check import supported_heads

    config, state = read_checkpoint(args.model)
    dtypes = sorted({str(v.dtype) for v in state.values()})
    count = sum(int(np.prod(v.shape)) for v in state.values())
    heads = supported_heads(args.model)
    if args.json:
        _emit({"ok": True, "checkpoint": args.model, "parameters": count, "tensors": len(state), "dtypes": dtypes,
               "heads": heads, "config": config.to_dict()})  # fmt: skip
        return OK
    print(f"checkpoint: {args.model}")
    print(f"parameters: {count:,} in {len(state)} tensors ({', '.join(dtypes)})")
    print(f"heads supported: {', '.join(heads) or 'none'}")
    print("config:")
    for key, value in sorted(config.to_dict().items()):
        print(f"  {key}: {value}")
    return OK


def _convert(args: argparse.Namespace) -> int:
    from ..checkpoint import read_checkpoint
    from ..convert import convert_checkpoint
    from ..heads import MODEL_CLASSES
    from ..tolerances import compare, identical
    from .check import default_inputs, flatten_output

    head = convert_checkpoint(args.src, args.dst, args.to, dtype=args.dtype, head=args.head)
    result: dict[str, Any] = {"ok": True, "wrote": args.dst, "format": args.to, "head": head}
    lines = [f"wrote {args.dst} ({args.to}, {head})"]
    if not args.no_verify:
        _, src_state = read_checkpoint(args.src)
        _, dst_state = read_checkpoint(args.dst)
        if args.dtype is None:
            changed = [k for k, v in dst_state.items() if not identical(v, src_state[k])]
            result["weights_changed"] = changed
            if changed:
                result["ok"] = False
                lines.append(f"weights changed in conversion: {', '.join(changed[:5])}")
            else:
                lines.append(f"weights: {len(dst_state)} tensors bit-identical")
        src, dst = (MODEL_CLASSES[head].from_pretrained(d, dtype="float32") for d in (args.src, args.dst))
        length = min(src.config.max_position_embeddings, src.config.min_block_sparse_length + 3)
        inputs = default_inputs(src.config, head, length, 1, 0)
        a, b = flatten_output(src(**inputs)), flatten_output(dst(**inputs))
        dtype = args.dtype if args.dtype in ("bfloat16", "float16") else "float32"
        worst = max((compare(b[k], a[k], dtype) for k in a), key=lambda c: (not c.ok, c.rel))
        result["outputs"] = {"max_abs": worst.max_abs, "rel": worst.rel, "tol": worst.tol, "ok": worst.ok}
        result["ok"] = result["ok"] and worst.ok
        lines.append(f"outputs: {head} on a seeded input, {worst}")
    if args.json:
        _emit(result)
    else:
        print("\n".join(lines))
    return OK if result["ok"] else DIFFERENCE


def _regress(args: argparse.Namespace) -> int:
    from .regress import record, verify

    quiet = args.quiet or args.json
    say = (lambda s: None) if quiet else (lambda s: print(f"  .. {s}", file=sys.stderr, flush=True))
    if args.action == "record":
        manifest = record(args.model, args.golden, backend=args.backend, progress=say)
        if args.json:
            _emit({"ok": True, "golden": args.golden, "entries": len(manifest["entries"]), "heads": manifest["heads"]})
        else:
            print(f"recorded {len(manifest['entries'])} outputs of {', '.join(manifest['heads'])} into {args.golden}")
        return OK
    drifts, manifest = verify(args.model, args.golden, backend=args.backend, progress=say)
    bad = [d for d in drifts if not d.ok]
    if args.json:
        _emit({"ok": not bad, "backend": args.backend, "recorded_with": manifest["versions"],
               "entries": [d.__dict__ for d in drifts]})  # fmt: skip
        return DIFFERENCE if bad else OK
    for d in drifts if args.verbose else bad:
        if math.isinf(d.max_abs) and d.tol == 0.0:
            print(f"MISSING {d.entry} (absent from the golden file or no longer produced)")
        else:
            verdict = "ok  " if d.ok else "DRIFT"
            print(f"{verdict} {d.entry:70} max abs {d.max_abs:.2e} rel {d.rel:.2e} (tol {d.tol:.0e})")
    recorded = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    print(f"{len(drifts) - len(bad)}/{len(drifts)} outputs within tolerance on {args.backend} (recorded with {recorded})")
    return DIFFERENCE if bad else OK


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (and JSON with ``--json``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bigbird", description="BigBird across NumPy, PyTorch and Flax.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="run every head on every installed backend and compare")
    check.add_argument("--model", metavar="DIR", help="a checkpoint directory (default: the seeded tiny model)")
    check.add_argument("--backends", type=_csv("backends", list(BACKENDS)), help="default: every installed backend")
    check.add_argument("--heads", type=_csv("heads", list(HEADS)), help="default: every head the weights support")
    check.add_argument("--seq-len", type=_count(1), default=150, help="sequence length (default 150)")
    check.add_argument("--batch", type=_count(1), default=2)
    check.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    check.add_argument("--seed", type=_count(0), default=0)
    check.add_argument("--train", action="store_true", help="train mode (dropout must be 0 in the config)")
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
    for command in (check, conv, reg, info):
        command.add_argument("--json", action="store_true", help="print one JSON document for machines")
    return parser


def _fail(code: int, message: str, as_json: bool) -> int:
    message = " ".join(message.split())  # one line
    if as_json:
        _emit({"ok": False, "error": message, "exit_code": code})
    else:
        print(f"bigbird: error: {message}", file=sys.stderr)
    return code


def _interrupted(signum: int, frame: Any) -> NoReturn:
    """Ctrl-C: leave at once, quietly, with the conventional code. (A KeyboardInterrupt can be swallowed
    when it lands in a finaliser of torch or JAX objects; a half-written checkpoint is never visible and its
    staging directory is removed by the next write.)"""
    os._exit(128 + signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored by our parent
        signal.signal(signal.SIGINT, _interrupted)
    as_json, debug = "--json" in argv, "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        load_formats()
        return args.func(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UsageError as exc:
        return _fail(BAD_INPUT, str(exc), as_json)
    except BigBirdError as exc:
        return _fail(BAD_INPUT, str(exc), as_json)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        return _fail(BAD_INPUT, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", as_json)
    except ImportError as exc:
        return _fail(BAD_INPUT, f"a backend is not installed ({exc.name}): {exc}", as_json)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Exception as exc:  # a bug of ours: one line, the traceback with --debug
        if debug:
            traceback.print_exc()
        return _fail(INTERNAL, f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the "
                     "traceback and report it", as_json)  # fmt: skip


def _broken_pipe() -> int:
    """The reader of our output went away (``bigbird info X | head``): exit quietly, as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def run() -> NoReturn:
    """The console entry point."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _broken_pipe()
    sys.exit(code)
