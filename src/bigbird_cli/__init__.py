"""The ``bigbird`` command: check numerics across backends, inspect, convert and regress checkpoints.

bigbird check                  # every head, every installed backend, on the seeded default model
bigbird check --model DIR      # the same for a checkpoint directory
bigbird info DIR               # config, parameter count, dtypes, weight files and supported heads
bigbird init DIR               # write the built-in default model (to try convert, info and regress on)
bigbird --version              # the library's version and those of the installed backends

Progress goes to stderr through tqdm while a command runs, only when stderr is a terminal and neither
``--json`` nor ``--quiet`` is given.

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

from bigbird_core.errors import BigBirdError, CheckpointError
from bigbird_core.registry import head_names

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


VERSIONED = ("bigbird", "numpy", "torch", "jax", "flax", "transformers")


def versions() -> dict[str, str | None]:
    """Installed versions (read from package metadata: no backend is imported), None when absent."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    return found


def _version_line() -> str:
    v = versions()
    parts = ", ".join(f"{k} {v[k] or 'not installed'}" for k in VERSIONED[1:])
    return f"bigbird {v['bigbird'] or 'unknown'} ({parts}; python {v['python']})"


def _emit(data: dict) -> None:
    """One JSON document on stdout, with ``meta``: the versions it ran with."""
    data = {**data, "meta": {"versions": versions(), "argv": sys.argv[1:]}}
    print(json.dumps(_finite(data), indent=2, allow_nan=False))


class Progress:
    """A command's steps on stderr through tqdm (a bar with the current step and the elapsed time), only
    when stderr is a terminal and the command is neither ``--json`` nor ``--quiet``."""

    def __init__(self, args: argparse.Namespace, total: int | None = None) -> None:
        self.bar = None
        if not (getattr(args, "json", False) or getattr(args, "quiet", False)) and sys.stderr.isatty():
            from tqdm import tqdm

            form = "{desc} ({elapsed})" if total is None else "{desc} ({n}/{total}, {elapsed})"
            self.bar = tqdm(total=total, file=sys.stderr, leave=False, dynamic_ncols=True, mininterval=0,
                            bar_format=form)  # fmt: skip

    def __call__(self, step: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(step, refresh=False)
            self.bar.update(1)
            self.bar.refresh()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


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
    with Progress(args) as say:
        rows = run_check(args.model, backends=backends, heads=args.heads, seq_len=args.seq_len, batch=args.batch,
                         dtype=args.dtype, seed=args.seed, train=args.train, progress=say)  # fmt: skip
    failed = [r for r in rows if not r.ok]
    skipped = [b for b in BACKENDS if b not in backends]
    if args.json:
        _emit({"ok": not failed, "backends": backends, "not_installed": [b for b in BACKENDS if b not in installed],
               "skipped": skipped, "reference": "transformers 4.57.6" if reference else None,
               "settings": {"model": args.model or "the seeded default", "dtype": args.dtype, "seq_len": args.seq_len,
                            "batch": args.batch, "seed": args.seed, "train": args.train},
               "rows": [r.__dict__ for r in rows]})  # fmt: skip
    else:
        width = max(34, *(len(r.head) for r in rows))
        pairs = [f"{r.left}>{r.right}" if ">" in r.left else f"{r.left}-{r.right}" for r in rows]
        pw = max(20, *(len(p) for p in pairs))
        print(f"{'head':{width}} {'pair':{pw}} {'max abs':>10} {'rel':>10} {'tol':>7}  result  worst field")
        for r, pair in zip(rows, pairs, strict=True):
            verdict = "pass" if r.ok else "FAIL"
            print(f"{r.head:{width}} {pair:{pw}} {r.max_abs:10.2e} {r.rel:10.2e} {r.tol:7.0e}  {verdict:6}  {r.field}")
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
    from bigbird_core.checkpoint import is_weight_file, read_checkpoint
    from bigbird_core.encoder_decoder import read_pair_config

    from .check import supported_heads

    pair = read_pair_config(args.model)
    if pair is not None:
        return _info_pair(args, pair)
    with Progress(args, total=2) as say:
        say("reading the checkpoint")
        config, state = read_checkpoint(args.model)
        say("probing which heads its weights fit")
        heads = supported_heads(args.model)
    if not heads:  # described, but no backend can load it: bad input
        example = f" such as {sorted(state)[0]}" if state else ""
        raise CheckpointError(f"{args.model}: its weights fit no head ({len(state)} tensors{example}): no backend "
                              "can load it")  # fmt: skip
    dtypes = sorted({str(v.dtype) for v in state.values()})
    count = sum(int(np.prod(v.shape)) for v in state.values())
    files = {n: os.path.getsize(os.path.join(args.model, n)) for n in sorted(os.listdir(args.model))
             if is_weight_file(n) and n != "config.json"}  # fmt: skip
    if args.json:
        _emit({"ok": True, "checkpoint": args.model, "kind": "BigBird", "parameters": count, "tensors": len(state),
               "dtypes": dtypes, "weight_files": files, "heads": heads, "config": config.to_dict()})  # fmt: skip
        return OK
    print(f"checkpoint: {args.model}")
    print(f"parameters: {count:,} in {len(state)} tensors ({', '.join(dtypes)})")
    print("weight files: " + ", ".join(f"{n} ({size / 2**20:.1f} MiB)" for n, size in files.items())
          + ("  (formats differ: each backend reads its own; `bigbird check --model` compares them)"
             if len({n.split('.')[0].split('-')[0] for n in files}) > 1 else ""))  # fmt: skip
    print(f"heads supported: {', '.join(heads) or 'none'}")
    print("config:")
    for key, value in sorted(config.to_dict().items()):
        print(f"  {key}: {value}")
    return OK


def _info_pair(args: argparse.Namespace, config: Any) -> int:
    """``bigbird info`` of an encoder-decoder pair: both sides and the projection, its weights read whole (a pair
    whose weights do not fit its config is bad input)."""
    from bigbird_core.checkpoint import _read_weights
    from bigbird_core.encoder_decoder import split_state
    from bigbird_core.files import read_consistently

    from .pair import describe_pair

    with Progress(args, total=1) as say:
        say("reading the pair")
        state = read_consistently(args.model, lambda d: _read_weights(d, (), None))
        split_state(config, state)  # both sides and the projection fit their configs (else bad input)
    info = describe_pair(config, state)
    if args.json:
        _emit({"ok": True, "checkpoint": args.model, **info, "config": config.to_dict()})
        return OK
    print(f"checkpoint: {args.model} (an encoder-decoder pair of BigBirds)")
    print(f"parameters: {info['parameters']:,} in {info['tensors']} tensors")
    for side in ("encoder", "decoder"):
        d = info[side]
        print(f"{side}: {d['layers']} layers, hidden {d['hidden_size']}, {d['heads']} heads, vocabulary "
              f"{d['vocab_size']}, {d['attention_type']}" + (", cross-attention" if d["add_cross_attention"] else ""))
    print(f"enc_to_dec_proj: {'yes' if info['enc_to_dec_proj'] else 'no'}")
    print("run it with BigBirdEncoderDecoderModel (torch) or FlaxBigBirdEncoderDecoderModel; `bigbird check --model` "
          "compares them")
    return OK


def _init(args: argparse.Namespace) -> int:
    from bigbird_core.checkpoint import write_checkpoint
    from bigbird_core.heads import model_class

    from .check import DEFAULT_CONFIG

    with Progress(args, total=1) as say:
        say(f"writing the default {args.head}")
        model = model_class(args.head)(DEFAULT_CONFIG, seed=args.seed)
        write_checkpoint(args.dst, model.config, model.params, args.head, args.to)
    count = sum(v.size for v in model.params.values())
    if args.json:
        _emit({"ok": True, "wrote": args.dst, "head": args.head, "format": args.to, "parameters": count})
    else:
        print(f"wrote {args.dst} ({args.to}, {args.head}, the seeded default: {count:,} parameters)")
    return OK


def _convert(args: argparse.Namespace) -> int:
    with Progress(args, total=1 if args.no_verify else 4) as progress:  # closed on errors too
        result, lines = _convert_run(args, progress)
    if args.json:
        _emit(result)
    else:
        print("\n".join(lines))
    return OK if result["ok"] else DIFFERENCE


class _Differs(Exception):
    """The converted checkpoint differs from its source: it is not swapped in."""


def _convert_run(args: argparse.Namespace, progress: Progress) -> tuple[dict[str, Any], list[str]]:
    from bigbird_core.convert import convert_checkpoint

    result: dict[str, Any] = {"ok": True, "wrote": args.dst, "format": args.to}
    lines: list[str] = []

    def verify(written: str, head: str) -> None:
        """The new checkpoint compared with its source before it replaces DST (exit 1, nothing written)."""
        result["head"] = head
        _verify_conversion(args, written, head, result, lines, progress)
        if not result["ok"]:
            raise _Differs

    progress(f"converting {args.src} to {args.to}")
    try:
        head = convert_checkpoint(args.src, args.dst, args.to, dtype=args.dtype, head=args.head,
                                  verify=None if args.no_verify else verify)  # fmt: skip
    except _Differs:
        result["wrote"] = None
        return result, [f"not written: {args.dst} would differ from {args.src}", *lines]
    result["head"] = head
    return result, [f"wrote {args.dst} ({args.to}, {head})", *lines]


def _verify_conversion(args: argparse.Namespace, written: str, head: str, result: dict[str, Any],
                       lines: list[str], progress: Progress) -> None:  # fmt: skip
    from bigbird_core.checkpoint import read_checkpoint
    from bigbird_core.heads import model_class
    from bigbird_core.tolerances import compare, identical

    from .check import default_inputs, flatten_output

    progress("comparing the weights")
    _, src_state = read_checkpoint(args.src)
    _, dst_state = read_checkpoint(written)
    if args.dtype is None:
        changed = [k for k, v in dst_state.items() if not identical(v, src_state[k])]
        result["weights_changed"] = changed
        if changed:
            result["ok"] = False
            lines.append(f"weights changed in conversion: {', '.join(changed[:5])}")
        else:
            lines.append(f"weights: {len(dst_state)} tensors bit-identical")
    progress("loading both checkpoints")
    src, dst = (model_class(head).from_pretrained(d, dtype="float32") for d in (args.src, written))
    progress("running both on a seeded input")
    length = min(src.config.max_position_embeddings, src.config.min_block_sparse_length + 3)
    inputs = default_inputs(src.config, head, length, 1, 0)
    a, b = flatten_output(src(**inputs)), flatten_output(dst(**inputs))
    dtype = args.dtype if args.dtype in ("bfloat16", "float16") else "float32"
    worst = max((compare(b[k], a[k], dtype) for k in a), key=lambda c: (not c.ok, c.rel))
    result["outputs"] = {"max_abs": worst.max_abs, "rel": worst.rel, "tol": worst.tol, "ok": worst.ok}
    result["ok"] = result["ok"] and worst.ok
    lines.append(f"outputs: {head} on a seeded input, {worst}")


def _regress(args: argparse.Namespace) -> int:
    with Progress(args) as say:
        return _regress_run(args, say)


def _regress_run(args: argparse.Namespace, say: Progress) -> int:
    from .regress import record, verify

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


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one worth showing (not None or False, not already in its help)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS or \
                "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    fmt = _Help
    parser = _Parser(prog="bigbird", description="BigBird across NumPy, PyTorch and Flax: check that the backends "
                     "agree, inspect, convert and regress checkpoints.", formatter_class=fmt,
                     epilog="exit codes: 0 all good, 1 a numerical difference, 2 bad usage or input, 3 internal error")  # fmt: skip
    parser.add_argument("--version", action="version", version=_version_line())
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    check = sub.add_parser(
        "check", formatter_class=fmt, help="run every head on every installed backend and compare",
        description="Run every head on every installed backend on the same seeded inputs and compare each pair "
        "(and, for the built-in default model, each backend with transformers 4.57.6's recorded outputs) against "
        "the tolerance table; then round-trip the weights through every backend's format.",
    )  # fmt: skip
    check.add_argument("--model", metavar="DIR", help="a checkpoint directory (default: the seeded tiny model)")
    check.add_argument("--backends", type=_csv("backends", list(BACKENDS)),
                       help=f"comma-separated subset of {', '.join(BACKENDS)} (default: every installed backend)")  # fmt: skip
    check.add_argument("--heads", type=_csv("heads", list(head_names())), help="comma-separated heads (default: every "
                       "head the weights support)")  # fmt: skip
    check.add_argument("--seq-len", type=_count(1), default=150, help="sequence length")
    check.add_argument("--batch", type=_count(1), default=2, help="batch size")
    check.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="compute dtype")
    check.add_argument("--seed", type=_count(0), default=0, help="seed of the inputs")
    check.add_argument("--train", action="store_true", help="train mode (dropout must be 0 in the config)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_check)
    conv = sub.add_parser(
        "convert", formatter_class=fmt, help="write a checkpoint directory in another format",
        description="Write SRC's weights to DST in another format (atomically; DST's other files are kept), then "
        "verify: the weights bit-identical (unless --dtype casts them) and both checkpoints' outputs on a seeded "
        "input within tolerance.",
    )  # fmt: skip
    conv.add_argument("src", metavar="SRC", help="the checkpoint directory to read")
    conv.add_argument("dst", metavar="DST", help="the checkpoint directory to write (created or replaced)")
    conv.add_argument("--to", required=True, choices=["safetensors", "torch-bin", "flax"], help="the format to write")
    conv.add_argument("--dtype", choices=["float32", "float16", "bfloat16", "float64"],
                      help="cast the weights (default: keep their dtype)")  # fmt: skip
    conv.add_argument("--head", choices=list(head_names()), help="keep only this head's weights (default: all)")
    conv.add_argument("--no-verify", action="store_true", help="skip running both sides on a seeded input")
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(func=_convert)
    reg = sub.add_parser(
        "regress", formatter_class=fmt, help="record or verify golden outputs of a checkpoint",
        description="record: run every head the weights support on fixed seeded inputs (block-sparse with padding, "
        "and full attention) and write GOLDEN.npz + GOLDEN.json (versions, digests). verify: rerun them on a "
        "backend and compare with the tolerance table (exit 1 on drift, 2 on a damaged golden file).",
    )  # fmt: skip
    reg.add_argument("action", choices=["record", "verify"], help="record golden outputs or verify against them")
    reg.add_argument("model", metavar="DIR", help="the checkpoint directory")
    reg.add_argument("golden", metavar="GOLDEN", help="golden file path (GOLDEN.npz + GOLDEN.json)")
    reg.add_argument("--backend", default="numpy", choices=list(BACKENDS), help="the backend that runs the model")
    reg.add_argument("--verbose", action="store_true", help="list every output, not only drifting ones")
    reg.add_argument("--quiet", action="store_true", help="no progress bar")
    reg.set_defaults(func=_regress)
    init = sub.add_parser(
        "init", formatter_class=fmt, help="write the built-in default model to a directory",
        description="Write the seeded built-in default model (the one `bigbird check` runs) as a checkpoint "
        "directory, so that convert, info and regress can be tried on it.",
    )  # fmt: skip
    init.add_argument("dst", metavar="DIR", help="the checkpoint directory to write (created or replaced)")
    init.add_argument("--head", default="BigBirdForPreTraining", choices=list(head_names()),
                      help="the head whose weights to write")  # fmt: skip
    init.add_argument("--to", default="safetensors", choices=["safetensors", "torch-bin", "flax"],
                      help="the weight format")  # fmt: skip
    init.add_argument("--seed", type=_count(0), default=0, help="seed of the weights")
    init.add_argument("--quiet", action="store_true", help="no progress bar")
    init.set_defaults(func=_init)
    info = sub.add_parser(
        "info", formatter_class=fmt, help="describe a checkpoint directory",
        description="Describe a checkpoint: parameters, dtypes, the weight files present, the heads its weights "
        "support, and its config.",
    )  # fmt: skip
    info.add_argument("model", metavar="DIR", help="the checkpoint directory")
    info.add_argument("--quiet", action="store_true", help="no progress bar")
    info.set_defaults(func=_info)
    for command in (check, conv, reg, info, init):
        command.add_argument("--json", action="store_true", help="print one JSON document for machines")
        command.add_argument("--debug", action="store_true", help="show the traceback of an internal error "
                             "(also before the command)")  # fmt: skip
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
        if as_json and any(a in ("--help", "-h", "--version") for a in argv):
            return _json_help(argv)
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


def _json_help(argv: list[str]) -> int:
    """``--help`` or ``--version`` with ``--json``: the text argparse prints, inside one JSON document."""
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            build_parser().parse_args([a for a in argv if a != "--json"])
        except SystemExit:
            pass
    key = "version" if "--version" in argv else "help"
    extra = {"versions": versions()} if key == "version" else {}
    _emit({"ok": True, key: text.getvalue().strip(), **extra})
    return OK


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
