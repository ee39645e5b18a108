"""Block-sparse kernel names: one choice per model, the same names and meaning in every backend.

A kernel decides only *how* block-sparse attention runs; every kernel computes the same attention (the core's
layout, one softmax per row). A model takes its kernel from ``model.set_block_sparse_kernel(name)`` (torch
and Flax wrappers; Flax linen modules take ``kernel=`` as an attribute); nothing is chosen by module globals.
``output_attentions=True`` always runs the full-layout path, whose dense probabilities are exact.
"""

from __future__ import annotations

from .errors import InputError, fail

KERNELS: dict[str, str] = {
    "auto": "the backend's fastest exact kernel for the device: FlexAttention on CUDA (torch, with repeated "
    "blocks as repeated tiles in inference and as a bias in training), the gather kernel elsewhere",
    "gather": "merged slots gathered per row block, additive biases, one batched matmul-softmax (every backend)",
    "flex": "torch FlexAttention wherever it runs: compiled on CUDA; on the CPU its eager reference (dense "
    "scores: for checking, inference only; CPU autograd keeps the gather kernel)",
    "flex-bias": "as flex, with a block that a row counts m times scored through a log(m) bias table in "
    "inference too (the training form; slower on the card, for comparison)",
}

# which kernels each backend runs (a name another backend knows is refused with the list of this one's)
BACKEND_KERNELS: dict[str, tuple[str, ...]] = {
    "numpy": ("auto", "gather"),
    "torch": ("auto", "gather", "flex", "flex-bias"),
    "flax": ("auto", "gather"),
}


def check_kernel(name: object, backend: str) -> str:
    """``name`` when ``backend`` runs that kernel, else an :class:`InputError` listing the ones it runs."""
    allowed = BACKEND_KERNELS[backend]
    if name not in allowed:
        raise fail(InputError, "kernel", f"one of {', '.join(allowed)} for the {backend} backend", repr(name))
    return str(name)
