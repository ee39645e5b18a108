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


def describe(value: Any) -> str:
    """A short, readable description of ``value`` for error messages (arrays by shape and dtype)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
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
