"""Sharding axes of the weight table: each parameter's logical axes, and mesh axes from a mesh's rules."""

from __future__ import annotations

import re

from .config import BigBirdConfig
from .weights import param_specs

# Logical axes of every parameter (canonical, PyTorch layout), in the manner of T5X / MaxText: a mesh's rules
# map them to mesh axes. "embed": the model width; "heads": the attention heads' concatenated width; "mlp":
# the feed-forward width; "vocab": the vocabulary; None: never sharded (small or positional tables).
_LOGICAL = (
    (r"word_embeddings\.weight$", ("vocab", "embed")),
    (r"(position|token_type)_embeddings\.weight$", (None, "embed")),
    (r"attention\.self\.(query|key|value)\.weight$", ("heads", "embed")),
    (r"attention\.self\.(query|key|value)\.bias$", ("heads",)),
    (r"attention\.output\.dense\.weight$", ("embed", "heads")),
    (r"intermediate\.dense\.weight$", ("mlp", "embed")),
    (r"intermediate\.dense\.bias$", ("mlp",)),
    (r"layer\.\d+\.output\.dense\.weight$", ("embed", "mlp")),
    (r"cls\.predictions\.decoder\.weight$", ("vocab", "embed")),
    (r"cls\.predictions\.(decoder\.)?bias$", ("vocab",)),
    (r"(pooler|transform\.dense|dense)\.weight$", (None, "embed")),
)

# rules for the two usual meshes (logical axis -> mesh axis): FSDP shards every matrix along its model
# width over the data axis; tensor parallelism (Megatron) splits heads, feed-forward and vocabulary
FSDP_RULES = {"embed": "data"}
TENSOR_RULES = {"heads": "model", "mlp": "model", "vocab": "model"}


def logical_axes(name: str, shape: tuple[int, ...]) -> tuple[str | None, ...]:
    """The logical axes of canonical parameter ``name`` (``None`` for each axis of anything else)."""
    for pattern, axes in _LOGICAL:
        if re.search(pattern, name) and len(axes) == len(shape):
            return axes
    return (None,) * len(shape)


def mesh_axes(config: BigBirdConfig, head: str, rules: dict[str, str], mesh_shape: dict[str, int],
              add_pooling_layer: bool | None = None) -> dict[str, tuple[str | None, ...]]:  # fmt: skip
    """Every parameter's mesh axis per dimension (canonical names, PyTorch layout): ``rules`` applied to its
    logical axes, an axis left unsharded where the mesh axis does not divide it, and no mesh axis twice."""
    out: dict[str, tuple[str | None, ...]] = {}
    for spec in param_specs(config, head, add_pooling_layer):
        axes: list[str | None] = []
        for logical, size in zip(logical_axes(spec.name, spec.shape), spec.shape, strict=True):
            axis = rules.get(logical) if logical is not None else None
            ok = axis is not None and axis not in axes and size % mesh_shape.get(axis, 1) == 0
            axes.append(axis if ok else None)
        out[spec.name] = tuple(axes)
    return out
