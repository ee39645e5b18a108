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
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

from bigbird_core.checkpoint import FORMATS
from bigbird_core.convert import DTYPES
from bigbird_core.errors import BigBirdError
from bigbird_core.head_specs import ALL_WEIGHTS_HEAD
from bigbird_core.registry import head_names

from .backends import BACKENDS, load_formats
from .commands import _check, _convert, _info, _init, _regress
from .common import BAD_INPUT, DIFFERENCE, INTERNAL, OK, UsageError, _emit, _version_line, versions

__all__ = ["main", "run", "build_parser", "versions", "OK", "DIFFERENCE", "BAD_INPUT", "INTERNAL", "UsageError"]


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
    conv.add_argument("--to", required=True, choices=list(FORMATS), help="the format to write")
    conv.add_argument("--dtype", choices=list(DTYPES),
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
    init.add_argument("--head", default=ALL_WEIGHTS_HEAD, choices=list(head_names()),
                      help="the head whose weights to write")  # fmt: skip
    init.add_argument("--to", default="safetensors", choices=list(FORMATS),
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
