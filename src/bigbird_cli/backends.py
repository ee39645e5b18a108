"""The backend registry: one entry per backend, its package imported only when asked for.

Every backend package keeps one contract (the same names in ``bigbird_core``, ``bigbird_torch`` and
``bigbird_flax``): ``NAME``; ``model_class(head)``; ``runner(head, directory, dtype=, train=)``, a function of
NumPy inputs; ``asarray`` (NumPy to the backend's arrays); ``to_canonical`` / ``from_canonical`` (the backend's
weights to and from canonical ``{name: ndarray}``). The command line and the tests reach backends only here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from bigbird_core.errors import InputError, fail


@dataclass(frozen=True)
class Backend:
    """One backend: its name on the command line, its package and the weight files it reads and writes."""

    name: str
    package: str
    formats: tuple[str, ...] = ()  # weight files the backend's ``convert`` module registers with the core

    def load(self) -> ModuleType:
        """The backend's package (ImportError when it or its framework is not installed)."""
        return importlib.import_module(self.package)


REGISTRY = (
    Backend("numpy", "bigbird_core"),
    Backend("torch", "bigbird_torch", ("pytorch_model.bin",)),
    Backend("flax", "bigbird_flax", ("flax_model.msgpack",)),
)
BACKENDS = {b.name: b.package for b in REGISTRY}


def backend(name: str) -> Backend:
    """The registry entry of backend ``name``."""
    for entry in REGISTRY:
        if entry.name == name:
            return entry
    raise fail(InputError, "backend", f"one of {', '.join(BACKENDS)}", repr(name))


def load_backend(name: str) -> ModuleType:
    """Import backend ``name`` ('numpy', 'torch' or 'flax')."""
    return backend(name).load()


def available_backends() -> list[str]:
    """The backends whose package and framework import on this machine."""
    found = []
    for entry in REGISTRY:
        try:
            module = entry.load()
        except ImportError:
            continue
        if not hasattr(module, "runner"):  # a package without its framework installed
            continue
        found.append(entry.name)
    return found


def load_format(filename: str) -> None:
    """Import the backend that registers ``filename`` with the core (if that backend is installed)."""
    for entry in REGISTRY:
        if filename in entry.formats:
            try:
                importlib.import_module(entry.package + ".convert")
            except ImportError:
                pass


def load_formats() -> None:
    """Let the core read and write every weight file an installed backend supports, importing that backend
    only when such a file is first met (a safetensors checkpoint imports neither torch nor jax)."""
    from bigbird_core.checkpoint import set_format_loader

    set_format_loader(load_format)
