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


_FORMAT_BACKENDS = {"pytorch_model.bin": "bigbird_torch.convert", "flax_model.msgpack": "bigbird_flax.convert"}


def load_format(filename: str) -> None:
    """Import the backend ``convert`` module that registers ``filename`` (if that backend is installed)."""
    try:
        importlib.import_module(_FORMAT_BACKENDS[filename])
    except (ImportError, KeyError):
        pass


def load_formats() -> None:
    """Let the core read and write every weight file an installed backend supports, importing that backend
    only when such a file is first met (a safetensors checkpoint imports neither torch nor jax)."""
    from ..checkpoint import set_format_loader

    set_format_loader(load_format)
