"""The head registry: what a head is, in one place.

A head is one :class:`HeadSpec`: its label arguments and their checks, its parameters in the weight table,
how its logits become output fields, its loss, its output class, its pooler default, whether it decodes
with a cache, the keys that detect it in a checkpoint and the inputs ``bigbird check`` gives it. Validation,
the recipe, the weight table, conversion and the command line read the spec; each backend adds only one
module class that computes the head's logits from the body's outputs.

Adding a head: ``register_head(HeadSpec(...))`` and, in each backend, a subclass of its head base class with
``head = "<name>"`` and a ``head_logits`` method (see ARCHITECTURE.md, "How to add a head").

Example:
    >>> head_spec("BigBirdForQuestionAnswering").labels
    ('start_positions', 'end_positions')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InputError, fail

if TYPE_CHECKING:
    import numpy as np

    from .config import BigBirdConfig
    from .params import ParamSpec
    from .recipe import BodyOutput, PreparedCall
    from .validate import Shapes


def _no_labels(config: BigBirdConfig, shapes: Shapes, given: dict[str, Any]) -> None:
    return None


def _no_params(config: BigBirdConfig) -> list[ParamSpec]:
    return []


def _no_loss(config: BigBirdConfig, fields: dict[str, Any], labels: dict[str, Any]) -> Any:
    return None


@dataclass(frozen=True)
class HeadSpec:
    """Everything the core knows about one head (see the module docstring)."""

    name: str  # transformers' class name, e.g. "BigBirdForMaskedLM"
    output: type  # the output class (bigbird_core.outputs)
    # output fields from the head module's outputs (a tuple of arrays, e.g. (logits,) or (mlm, nsp))
    fields: Callable[[PreparedCall, BodyOutput, tuple[Any, ...]], dict[str, Any]]
    labels: tuple[str, ...] = ()  # label arguments of the forward call
    check_labels: Callable[[BigBirdConfig, Shapes, dict[str, Any]], None] = _no_labels  # the given ones
    loss: Callable[[BigBirdConfig, dict[str, Any], dict[str, Any]], Any] = _no_loss  # None without labels
    params: Callable[[BigBirdConfig], list[ParamSpec]] = _no_params  # the head's own parameters
    pooler: bool = True  # add_pooling_layer's default
    body_prefix: str = "bert."  # where the body's parameters live ("" for BigBirdModel)
    cache: bool = False  # decodes with a key/value cache (transformers' decoders)
    choices: bool = False  # inputs carry a choices axis: (batch, num_choices, seq)
    question_lengths: bool = False  # takes question_lengths (the QA rule of the recipe)
    num_labels: int | None = None  # a fixed number of labels whatever the config says (QA: 2)
    detect: Callable[[dict[str, tuple[int, ...]]], bool] | None = None  # a checkpoint's {key: shape} is ours
    # labels for `bigbird check`'s default inputs, drawn from rng after the ids (may edit the ids in place)
    example_labels: Callable[[BigBirdConfig, np.random.Generator, Any], dict[str, Any]] | None = None


_REGISTRY: dict[str, HeadSpec] = {}


def _builtins() -> dict[str, HeadSpec]:
    if not _REGISTRY:
        from . import head_specs  # noqa: F401  (registers the eight heads of transformers' BigBird)
    return _REGISTRY


def register_head(spec: HeadSpec) -> HeadSpec:
    """Add ``spec`` to the registry (its name must be new); returns it."""
    if spec.name in _builtins():
        raise fail(InputError, "spec.name", "a head name not registered yet", repr(spec.name))
    _REGISTRY[spec.name] = spec
    return spec


def unregister_head(name: str) -> None:
    """Remove a head added with :func:`register_head` (the built-in heads stay)."""
    from .head_specs import HEADS

    if name in HEADS:
        raise fail(InputError, "name", "a head added with register_head (not a built-in)", repr(name))
    _builtins().pop(name, None)


def head_names() -> tuple[str, ...]:
    """Every registered head, the built-in eight first."""
    return tuple(_builtins())


def head_spec(head: str) -> HeadSpec:
    """The spec of ``head``; an unknown name is an :class:`InputError` listing the known ones."""
    specs = _builtins()
    if head not in specs:
        raise fail(InputError, "head", f"one of {', '.join(specs)}", repr(head))
    return specs[head]


def check_head(head: str) -> str:
    """``head`` itself when it is registered (see :func:`head_spec`)."""
    return head_spec(head).name


def registered_class(classes: dict[str, type], head: str, backend: str) -> type:
    """A backend's class of ``head`` from its ``{head: class}`` table: an unknown head lists the registered ones,
    a registered head without a class in this backend lists the backend's (the same errors everywhere)."""
    spec = head_spec(head)
    if spec.name not in classes:
        raise fail(InputError, "head", f"a head with a {backend} model class ({', '.join(classes)})", repr(head))
    return classes[spec.name]


def cache_heads() -> tuple[str, ...]:
    """The heads that decode with a key/value cache."""
    return tuple(name for name, spec in _builtins().items() if spec.cache)


def detect_head(shapes: dict[str, tuple[int, ...]]) -> str:
    """The head a checkpoint's ``{key: shape}`` was saved from: the first registered head whose detection
    rule holds, the base model when none does."""
    from .head_specs import BASE_HEAD

    for spec in _builtins().values():
        if spec.detect is not None and spec.detect(shapes):
            return spec.name
    return BASE_HEAD
