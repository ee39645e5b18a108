"""The backend registry: which backends are installed, imported only when asked for.

Every backend package exposes the same names: the eight model classes, ``asarray`` (NumPy to the
backend's array type) and ``NAME``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import InputError, fail

BACKENDS = {"numpy": "bigbird_core", "torch": "bigbird_torch", "flax": "bigbird_flax"}


def load_backend(name: str) -> ModuleType:
    """Import backend ``name`` ('numpy', 'torch' or 'flax')."""
    if name not in BACKENDS:
        raise fail(InputError, "backend", f"one of {', '.join(BACKENDS)}", repr(name))
    return importlib.import_module(BACKENDS[name])


def available_backends() -> list[str]:
    """The backends whose package and framework import on this machine."""
    found = []
    for name in BACKENDS:
        try:
            module = load_backend(name)
        except ImportError:
            continue
        if not hasattr(module, "runner"):  # a package without its framework installed
            continue
        found.append(name)
    return found


def load_formats() -> None:
    """Import the ``convert`` module of every installed backend: it registers the weight files that need
    its framework (``pytorch_model.bin``, ``flax_model.msgpack``) with the core's checkpoint reader."""
    for name in ("bigbird_torch.convert", "bigbird_flax.convert"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
