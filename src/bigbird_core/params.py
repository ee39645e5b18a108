"""The building blocks of the weight table: one parameter's name, shape and initialisation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its canonical name, shape and how it is initialised ('normal', 'zeros', 'ones')."""

    name: str
    shape: tuple[int, ...]
    init: str


def linear_params(name: str, n_out: int, n_in: int, bias: bool = True) -> list[ParamSpec]:
    """A Linear layer's weight ``[out, in]`` (normal) and bias (zeros)."""
    out = [ParamSpec(f"{name}.weight", (n_out, n_in), "normal")]
    return out + [ParamSpec(f"{name}.bias", (n_out,), "zeros")] if bias else out


def norm_params(name: str, width: int) -> list[ParamSpec]:
    """A LayerNorm's weight (ones) and bias (zeros)."""
    return [ParamSpec(f"{name}.weight", (width,), "ones"), ParamSpec(f"{name}.bias", (width,), "zeros")]
