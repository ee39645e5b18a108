"""The one tolerance table, and the comparison every test and ``bigbird check`` use.

Error measure: ``max |actual - expected| / scale`` where ``scale`` is the largest magnitude of the
expected array among its ordinary entries. Entries shifted by a masking penalty (``|x| >= 1e4``: the QA
``-1e6`` and attention ``-1e4`` masks) would otherwise set the scale; they are measured relative to
themselves instead. Low-precision arrays are upcast to float64 before comparing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SENTINEL = 1e4  # magnitudes from here on are masking penalties, compared relative to themselves


@dataclass(frozen=True)
class Tolerance:
    output: float  # outputs, hidden states, attention probabilities, losses
    gradient: float  # gradients of a loss with respect to parameters


TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(output=1e-10, gradient=1e-9),
    "float32": Tolerance(output=1e-5, gradient=1e-4),
    "bfloat16": Tolerance(output=2e-2, gradient=2e-2),
    "float16": Tolerance(output=2e-2, gradient=2e-2),
}


def tolerance(dtype: Any, kind: str = "output") -> float:
    """The tolerance for ``dtype`` ('float32', np.float32, torch.float32, ...) and ``kind``."""
    name = str(dtype).replace("torch.", "").replace("<class 'numpy.", "").rstrip("'>")
    if name not in TOLERANCES:
        raise ValueError(f"dtype: expected one of {sorted(TOLERANCES)}, got {dtype!r}")
    return getattr(TOLERANCES[name], kind)


@dataclass(frozen=True)
class Comparison:
    max_abs: float  # largest absolute difference
    rel: float  # the error measure (see module docstring)
    where: tuple[int, ...]  # index of the worst element
    tol: float
    ok: bool

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        return (
            f"max abs {self.max_abs:.3e}, rel {self.rel:.3e} at {self.where} (tol {self.tol:.0e}) {verdict}"
        )


def as_float64(x: Any) -> np.ndarray:
    """A float64 NumPy copy of a NumPy, torch or JAX array (bf16 upcast)."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        x = x.float() if str(x.dtype) in ("torch.bfloat16", "torch.float16") else x
        return x.numpy().astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def identical(a: Any, b: Any) -> bool:
    """Same dtype, shape and values, NaN equal to NaN (weights compared bit for bit)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or str(a.dtype) == "bfloat16":
        return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))
    return bool(np.array_equal(a, b))


def compare(actual: Any, expected: Any, dtype: Any = "float32", kind: str = "output",
            scale: float = 0.0) -> Comparison:  # fmt: skip
    """Compare ``actual`` against ``expected`` at the table's tolerance for ``dtype`` and ``kind``.

    ``scale`` is a floor for the array's own scale: gradients are compared relative to the scale of
    the whole gradient (a parameter whose true gradient is 0, such as a key bias, holds only noise).
    """
    a, e = as_float64(actual), as_float64(expected)
    tol = tolerance(dtype, kind)
    if a.shape != e.shape:
        return Comparison(float("inf"), float("inf"), (), tol, False)
    if a.size == 0:
        return Comparison(0.0, 0.0, (), tol, True)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - e)
    same = (a == e) | (np.isnan(a) & np.isnan(e))  # NaN equals NaN, inf equals inf, where both have it
    diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
    big = np.abs(e) >= SENTINEL
    usable = ~big & np.isfinite(e)
    ordinary = np.abs(e[usable]).max() if usable.any() else 1.0
    denom = np.where(big, np.abs(e), max(ordinary, scale, 1e-30))
    err = diff / denom
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    rel = float(err[worst])
    return Comparison(float(diff.max()), rel, tuple(int(i) for i in worst), tol, rel <= tol)


def assert_close(actual: Any, expected: Any, dtype: Any = "float32", kind: str = "output", name: str = "",
                 scale: float = 0.0) -> Comparison:  # fmt: skip
    """Raise AssertionError with the max difference and where it is, unless within tolerance."""
    c = compare(actual, expected, dtype, kind, scale)
    if not c.ok:
        shapes = (
            f" (shapes {np.shape(actual)} vs {np.shape(expected)})"
            if np.shape(actual) != np.shape(expected)
            else ""
        )
        raise AssertionError(f"{name or 'value'}: {c}{shapes}")
    return c
