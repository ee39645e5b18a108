"""What the commands share: exit codes, the usage error, JSON output with the versions, the progress line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

OK, DIFFERENCE, BAD_INPUT, INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """A bad command line (exit code 2)."""


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
