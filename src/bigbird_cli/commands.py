"""The ``bigbird`` commands: check, info, init, convert, regress (each a function of the parsed arguments,
returning the exit code)."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import numpy as np

from bigbird_core.errors import CheckpointError

from .backends import BACKENDS, available_backends
from .common import DIFFERENCE, OK, Progress, UsageError, _emit


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
