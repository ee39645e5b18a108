"""The one exception family of the library.

Every check names the argument, what was expected and what was given, so that a user can fix the call
without reading our source.
"""

from __future__ import annotations

from typing import Any


class BigBirdError(ValueError):
    """Base class of every error raised on purpose by bigbird (a ``ValueError`` subclass)."""


class ConfigError(BigBirdError):
    """A configuration value that cannot work."""


class InputError(BigBirdError):
    """A bad argument to a forward call or another public function."""


class CheckpointError(BigBirdError):
    """A checkpoint directory or file that cannot be read, or weights that do not fit the config."""


class NumericalError(BigBirdError):
    """A computation whose numbers cannot be used (a decoding step whose scores are all NaN or infinite)."""


class CheckpointNotFoundError(CheckpointError, OSError):
    """A checkpoint that is missing or cannot be read: also an ``OSError``, as transformers raises for one."""


class CheckpointMismatchError(CheckpointError, RuntimeError):
    """Weights whose shapes do not fit the config: also a ``RuntimeError``, as torch's ``load_state_dict``
    raises for mis-shaped tensors."""


_KINDS = {"b": "a boolean", "i": "an integer", "f": "a floating-point"}


def describe(value: Any) -> str:
    """A short, readable description of ``value`` for error messages: arrays by kind and shape, worded the
    same for NumPy, torch and JAX arrays so that every backend gives the same message."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        name = str(dtype).replace("torch.", "")
        kind = "b" if name == "bool" else "i" if "int" in name else "f" if "float" in name else "?"
        return f"{_KINDS.get(kind, 'an')} array of shape {tuple(int(s) for s in shape)}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(cls: type[BigBirdError], argument: str, expected: str, given: Any) -> BigBirdError:
    """Build ``cls`` with the standard message: argument, expected, given.

    Example:
        >>> raise fail(InputError, "input_ids", "a 2-D integer array", given)
    """
    return cls(
        f"{argument}: expected {expected}, got {describe(given) if not isinstance(given, str) else given}"
    )
