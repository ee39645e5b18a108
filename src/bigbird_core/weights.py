"""The weight-name table: every parameter of every head, by its canonical name and shape.

Canonical names are the transformers PyTorch ``state_dict`` names (Linear weights ``[out, in]``). Heads
keep the body under ``bert.``; ``BigBirdModel`` has no prefix. The MLM decoder is tied: its weight is
the word embedding matrix and its bias is ``cls.predictions.bias``; neither is stored separately.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import BigBirdConfig
from .errors import CheckpointError, CheckpointMismatchError
from .head_specs import TIED_DECODER_WEIGHT
from .params import ParamSpec, linear_params, norm_params
from .registry import head_spec

BODY_PREFIX = "bert."
log = logging.getLogger("bigbird")
TIED_DECODER_BIAS = "cls.predictions.decoder.bias"


def default_pooler(head: str) -> bool:
    """Whether ``head`` has a pooler by default (QA does not: ``add_pooling_layer=False``)."""
    return head_spec(head).pooler


def _body(c: BigBirdConfig, pooler: bool) -> list[ParamSpec]:
    h = c.hidden_size
    specs = [
        ParamSpec("embeddings.word_embeddings.weight", (c.vocab_size, h), "normal"),
        ParamSpec("embeddings.position_embeddings.weight", (c.max_position_embeddings, h), "normal"),
        ParamSpec("embeddings.token_type_embeddings.weight", (c.type_vocab_size, h), "normal"),
        *norm_params("embeddings.LayerNorm", h),
    ]
    for i in range(c.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            specs += linear_params(p + f"attention.self.{proj}", h, h, bias=c.use_bias)
        specs += linear_params(p + "attention.output.dense", h, h) + norm_params(p + "attention.output.LayerNorm", h)
        if c.add_cross_attention:  # decoders: attention to the encoder's hidden states (transformers' names)
            for proj in ("query", "key", "value"):
                specs += linear_params(p + f"crossattention.self.{proj}", h, h, bias=c.use_bias)
            specs += linear_params(p + "crossattention.output.dense", h, h)
            specs += norm_params(p + "crossattention.output.LayerNorm", h)
        specs += linear_params(p + "intermediate.dense", c.intermediate_size, h)
        specs += linear_params(p + "output.dense", h, c.intermediate_size) + norm_params(p + "output.LayerNorm", h)
    if pooler:
        specs += linear_params("pooler", h, h)
    return specs


def param_specs(config: BigBirdConfig, head: str, add_pooling_layer: bool | None = None) -> list[ParamSpec]:
    """Every stored parameter of ``head``, in a stable order.

    Example:
        >>> [s.name for s in param_specs(BigBirdConfig(num_hidden_layers=1), "BigBirdModel")][:2]
        ['embeddings.word_embeddings.weight', 'embeddings.position_embeddings.weight']
    """
    spec = head_spec(head)
    pooler = spec.pooler if add_pooling_layer is None else add_pooling_layer
    body = [ParamSpec(spec.body_prefix + s.name, s.shape, s.init) for s in _body(config, pooler)]
    return body + spec.params(config)


def init_params(
    config: BigBirdConfig, head: str, *, seed: int = 0, dtype: str = "float32",
    add_pooling_layer: bool | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Seeded random parameters with transformers' initialisation (normal(0, initializer_range) for
    weights and embeddings, zeros for biases, ones for LayerNorm scales, the padding row zeroed)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in param_specs(config, head, add_pooling_layer):
        if spec.init == "normal":  # drawn in float32: no float64 copy of large embeddings
            value = rng.standard_normal(spec.shape, dtype=np.float32) * np.float32(config.initializer_range)
        else:
            value = np.full(spec.shape, 1.0 if spec.init == "ones" else 0.0, dtype=np.float32)
        if spec.name.endswith("word_embeddings.weight"):
            value[config.pad_token_id] = 0.0
        out[spec.name] = value.astype(dtype, copy=False)
    return out


@dataclass(frozen=True)
class LoadReport:
    """What loading a state dict into a head did: keys initialised, ignored and mis-shaped."""

    missing_keys: tuple[str, ...]
    unexpected_keys: tuple[str, ...]
    mismatched_keys: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]


def _adapt_prefix(state: dict[str, np.ndarray], head: str) -> dict[str, np.ndarray]:
    """Move a checkpoint between the base model (no prefix) and a head (``bert.`` body)."""
    has_prefix = any(k.startswith(BODY_PREFIX) for k in state)
    bare = head_spec(head).body_prefix == ""
    if bare and has_prefix:
        return {k[len(BODY_PREFIX) :] if k.startswith(BODY_PREFIX) else k: v for k, v in state.items()}
    if not bare and not has_prefix:
        body = ("embeddings.", "encoder.", "pooler.")
        return {BODY_PREFIX + k if k.startswith(body) else k: v for k, v in state.items()}
    return state


def _is_body(name: str) -> bool:
    """A weight of the encoder body (embeddings and layers; the pooler is optional in some heads)."""
    return name.removeprefix(BODY_PREFIX).startswith(("embeddings.", "encoder."))


_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def check_layer_count(config: BigBirdConfig, state: dict[str, Any]) -> None:
    """A config must not ask for more encoder layers than a checkpoint with layers holds: checked on the
    names alone, before any table or array of the config's size is made (a config of a million layers over a
    two-layer checkpoint is refused at once, not after gigabytes of initialisation)."""
    found = {int(m.group(1)) for m in map(_LAYER.search, state) if m}
    if found and config.num_hidden_layers > max(found) + 1:
        raise CheckpointMismatchError(
            f"num_hidden_layers: the config asks for {config.num_hidden_layers} layers, the checkpoint's weights "
            f"hold {max(found) + 1}"
        )


def match_state_dict(
    config: BigBirdConfig, head: str, state: dict[str, np.ndarray], *, seed: int = 0, dtype: str | None = None,
    add_pooling_layer: bool | None = None, strict: bool = False, warn: bool = False,
    ignore_mismatched_sizes: bool = False,
) -> tuple[dict[str, np.ndarray], LoadReport]:  # fmt: skip
    """Fit a checkpoint's ``{name: array}`` to ``head``: adapt the body prefix, drop tied copies,
    initialise what is missing (seeded), and report; with ``warn`` (a model being loaded) the initialised
    weights are also logged as a warning on the ``bigbird`` logger, as transformers does.

    With ``ignore_mismatched_sizes`` (transformers' keyword: a classifier with another number of labels), a
    mis-shaped weight is initialised instead and reported in ``mismatched_keys``.

    Raises:
        CheckpointError listing every mis-shaped key (and, when ``strict``, missing and unexpected keys).
    """
    check_layer_count(config, state)  # before the table of a config that may ask for millions of layers
    specs = param_specs(config, head, add_pooling_layer)
    state = _adapt_prefix(dict(state), head)
    if TIED_DECODER_BIAS in state and "cls.predictions.bias" not in state:
        state["cls.predictions.bias"] = state[TIED_DECODER_BIAS]
    state.pop(TIED_DECODER_BIAS, None)
    if config.tie_word_embeddings:
        state.pop(TIED_DECODER_WEIGHT, None)
    wanted = {s.name: s for s in specs}
    mismatched = tuple(
        (k, tuple(state[k].shape), s.shape)
        for k, s in wanted.items()
        if k in state and tuple(state[k].shape) != s.shape
    )
    if ignore_mismatched_sizes and mismatched:
        for k, _, _ in mismatched:
            state.pop(k)
        if warn:
            log.warning("%s: initialised %d weights whose checkpoint shapes differ: %s", head, len(mismatched),
                        ", ".join(f"{k} {got} -> {exp}" for k, got, exp in mismatched[:8]))  # fmt: skip
    missing = tuple(k for k in wanted if k not in state)
    unexpected = tuple(k for k in state if k not in wanted)
    not_float = [k for k in wanted if k in state and np.asarray(state[k]).dtype.kind != "f"
                 and str(np.asarray(state[k]).dtype) != "bfloat16"]  # fmt: skip
    if not_float:
        raise CheckpointError("weights: floating-point parameters stored as other dtypes: " + ", ".join(
            f"{k} ({np.asarray(state[k]).dtype})" for k in not_float[:8]))  # fmt: skip
    body = [k for k in wanted if _is_body(k)]
    if body and all(k in missing for k in body):
        raise CheckpointError(
            f"weights: the checkpoint holds none of the {len(body)} body weights of {head} (e.g. {body[0]}); "
            f"it has {len(state)} tensors" + (f" such as {sorted(state)[0]}" if state else "")
        )
    if missing and warn and not strict:  # a model being loaded (not a probe of which heads fit)
        log.warning("%s: initialised %d weights the checkpoint lacks: %s", head, len(missing),
                    ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))  # fmt: skip
    if (mismatched and not ignore_mismatched_sizes) or (strict and (missing or unexpected)):
        lines = [f"  mis-shaped {k}: checkpoint {got}, config expects {exp}" for k, got, exp in mismatched
                 if not ignore_mismatched_sizes]  # fmt: skip
        if strict:
            lines += [f"  missing {k}" for k in missing] + [f"  unexpected {k}" for k in unexpected]
        hint = "" if strict else "\n  (ignore_mismatched_sizes=True initialises them instead)"
        error = CheckpointMismatchError if mismatched and not ignore_mismatched_sizes else CheckpointError
        raise error(f"weights: the checkpoint does not fit {head} with this config:\n" + "\n".join(lines) + hint)
    if dtype is None:
        dtype = str(next(iter(state.values())).dtype) if state else "float32"
    fresh = (
        init_params(config, head, seed=seed, dtype=dtype, add_pooling_layer=add_pooling_layer)
        if missing
        else {}
    )
    params = {k: np.asarray(state[k] if k in state else fresh[k]).astype(dtype, copy=False) for k in wanted}
    return params, LoadReport(missing, unexpected, mismatched)


# the Flax naming and the sharding axes of the table live beside it (re-exported for existing imports)
from .flax_names import canonical_name, flax_path, from_flax_tree, to_flax_tree  # noqa: E402, F401
from .sharding import FSDP_RULES, TENSOR_RULES, logical_axes, mesh_axes  # noqa: E402, F401
