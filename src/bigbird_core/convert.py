"""Weight conversion between the canonical naming, the Flax tree and checkpoint formats.

The one name table is :mod:`bigbird_core.weights` (``param_specs`` for names and shapes, ``flax_path``
for the Flax tree). Conversions are bit-exact; a dtype change is explicit (``--dtype``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .checkpoint import FORMATS, read_checkpoint, write_checkpoint
from .config import BigBirdConfig
from .errors import CheckpointError, InputError, fail
from .flax_names import from_flax_tree, to_flax_tree
from .registry import detect_head as detect_from_keys
from .registry import head_names
from .weights import TIED_DECODER_BIAS, TIED_DECODER_WEIGHT, param_specs

DTYPES = ("float32", "float16", "bfloat16", "float64")


def check_state_dict(config: BigBirdConfig, head: str, state: dict[str, np.ndarray],
                     add_pooling_layer: bool | None = None) -> None:  # fmt: skip
    """Raise :class:`CheckpointError` listing every missing, unexpected and mis-shaped key of ``state``
    for ``head`` (tied decoder copies are accepted)."""
    wanted = {s.name: s.shape for s in param_specs(config, head, add_pooling_layer)}
    tied = {TIED_DECODER_BIAS} | ({TIED_DECODER_WEIGHT} if config.tie_word_embeddings else set())
    lines = [f"  missing {k}" for k in wanted if k not in state]
    lines += [f"  unexpected {k}" for k in state if k not in wanted and k not in tied]
    lines += [f"  mis-shaped {k}: got {tuple(np.shape(v))}, config expects {wanted[k]}"
              for k, v in state.items() if k in wanted and tuple(np.shape(v)) != wanted[k]]  # fmt: skip
    if lines:
        raise CheckpointError(f"weights: they do not fit {head} with this config:\n" + "\n".join(lines))


def to_flax_params(state: dict[str, np.ndarray], config: BigBirdConfig | None = None, head: str | None = None,
                   add_pooling_layer: bool | None = None) -> dict:  # fmt: skip
    """Canonical ``{name: array}`` (a torch ``state_dict`` via ``bigbird_torch.convert.to_numpy``)
    to a transformers-Flax params tree, checked against ``config``/``head`` when given."""
    state = {k: v for k, v in state.items() if k not in (TIED_DECODER_BIAS, TIED_DECODER_WEIGHT)
             or (k == TIED_DECODER_WEIGHT and config is not None and not config.tie_word_embeddings)}  # fmt: skip
    if config is not None and head is not None:
        check_state_dict(config, head, state, add_pooling_layer)
    return to_flax_tree(state)


def from_flax_params(tree: dict, config: BigBirdConfig | None = None, head: str | None = None,
                     add_pooling_layer: bool | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """A transformers-Flax params tree to canonical ``{name: array}``, checked when ``config``/``head`` given."""
    state = from_flax_tree(tree)
    if config is not None and head is not None:
        check_state_dict(config, head, state, add_pooling_layer)
    return state


def cast_state(state: dict[str, np.ndarray], dtype: str | None) -> dict[str, np.ndarray]:
    """Cast floating weights to ``dtype`` (None keeps every dtype)."""
    if dtype is None:
        return dict(state)
    if dtype not in DTYPES:
        raise fail(InputError, "dtype", f"one of {', '.join(DTYPES)}", repr(dtype))
    if dtype == "bfloat16":
        from .checkpoint import BF16

        if BF16 is None:
            raise InputError("dtype: bfloat16 needs the ml_dtypes package (pip install ml_dtypes)")
        target = np.dtype(BF16)
    else:
        target = np.dtype(dtype)
    return {k: (v.astype(target) if np.asarray(v).dtype.kind == "f" or str(v.dtype) == "bfloat16" else v)
            for k, v in state.items()}  # fmt: skip


def detect_head(config: BigBirdConfig, state: dict[str, np.ndarray]) -> str:
    """The head a checkpoint was saved from: its ``architectures`` entry, else the registry's detection rules
    on its keys and shapes."""
    names = head_names()
    for arch in config.extra.get("architectures") or []:
        name = arch[4:] if arch.startswith("Flax") else arch
        if name in names:
            return name
    return detect_from_keys({k: tuple(np.shape(v)) for k, v in state.items()})


def convert_checkpoint(
    src: str, dst: str, fmt: str, *, dtype: str | None = None, head: str | None = None,
    verify: Callable[[str, str], None] | None = None,
) -> str:  # fmt: skip
    """Read any supported checkpoint directory and write it in ``fmt``; returns the head written.

    Args:
        src, dst: directories (``dst`` may not be ``src``).
        fmt: one of "safetensors", "torch-bin", "flax".
        dtype: cast floating weights (default: keep).
        head: keep only the weights of this head (default: the source's head, all its weights).
        verify: ``verify(written, head)`` on the complete new checkpoint before it replaces ``dst``; raising
            leaves ``dst`` as it was (a conversion writes nothing unless it succeeds).
    """
    if fmt not in FORMATS:
        raise fail(InputError, "--to", f"one of {', '.join(FORMATS)}", repr(fmt))
    if os.path.realpath(src) == os.path.realpath(dst):  # symlinks resolved: never overwrite the source
        raise fail(InputError, "DST", f"a directory other than SRC ({os.path.realpath(src)})", dst)
    from .weights import match_state_dict

    config, state = read_checkpoint(src)
    source_head = detect_head(config, state)
    # every check a load makes (dtypes, shapes, a body at all) before a byte is written: nothing is left at DST
    # by a conversion that fails
    match_state_dict(config, source_head, state)
    if head is not None:
        if head not in head_names():
            raise fail(InputError, "--head", f"one of {', '.join(head_names())}", repr(head))
        kept, report = match_state_dict(config, head, state)
        if report.missing_keys:
            raise CheckpointError(
                f"{src}: has no weights for {head}: missing " + ", ".join(report.missing_keys[:8])
            )
        state = {k: state.get(k, kept[k]) for k in kept}
        source_head = head
    state = cast_state(state, dtype)
    check = None if verify is None else (lambda written: verify(written, source_head))
    write_checkpoint(dst, config, state, source_head, fmt, verify=check)
    return source_head
