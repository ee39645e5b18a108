"""Validation of every forward-call argument, once, for every backend.

Each check raises :class:`InputError` naming the argument, the expected and the given value, so the
same bad input gives the same message from NumPy, torch and Flax. Value checks (ranges, 0/1 masks)
run only on concrete arrays (see :func:`bigbird_core.arrays.has_values`); shape and dtype checks
always run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .arrays import dtype_kind, has_values, min_max, values_namespace
from .config import BigBirdConfig
from .errors import InputError, fail
from .registry import head_spec

IGNORE_INDEX = -100  # labels with this value add nothing to a cross-entropy loss



def as_config(config: Any) -> BigBirdConfig:
    """A :class:`BigBirdConfig` from itself, a ``config.json`` dict, or another library's BigBird config
    object (anything with ``to_dict()``, such as transformers' ``BigBirdConfig``)."""
    if isinstance(config, BigBirdConfig):
        return config
    if isinstance(config, dict):
        return BigBirdConfig.from_dict(config)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict) and getattr(config, "model_type", "big_bird") == "big_bird":
        return BigBirdConfig.from_dict(to_dict())
    raise fail(InputError, "config", "a bigbird_core.BigBirdConfig (or a BigBird config with to_dict())", config)


def model_config(config: Any, head: str) -> BigBirdConfig:
    """The config a model of ``head`` is built with (see :func:`as_config`; a head with a fixed number of
    labels, such as question answering's two, always has it)."""
    config = as_config(config)
    fixed = head_spec(head).num_labels  # e.g. question answering: a start and an end logit
    if fixed is not None and config.num_labels != fixed:
        config = config.replace(num_labels=fixed)
    return config


@dataclass(frozen=True)
class Shapes:
    """What validation learned about a call: sizes before flattening the choices axis."""

    batch: int  # examples (outer batch for multiple choice)
    seq_len: int
    num_choices: int | None  # multiple choice only

    @property
    def flat_batch(self) -> int:
        return self.batch * (self.num_choices or 1)


def _shape(x: Any) -> tuple[int, ...]:
    """The shape as a tuple; sizes stay symbolic under ``torch.export`` (no ``int()``: that would
    specialise a dynamic batch to the example's)."""
    return tuple(x.shape)


def _values(name: str, x: Any, low: float, high: float, *, extra: tuple[int, ...] = (), text: str) -> None:
    """Values of ``x`` in ``[low, high)`` (or in ``extra``), when they can be read."""
    if not has_values(x) or 0 in _shape(x):
        return
    lo, hi = min_max(x)
    if lo >= low and hi < high:
        return
    if extra:  # e.g. the ignore index: check element-wise only when the fast bound fails
        xp, x = values_namespace(x)
        ok = (x >= low) & (x < high)
        for e in extra:
            ok = ok | (x == e)
        if bool(xp.all(ok)):
            return
    shown = f"values in [{lo:g}, {hi:g}]"
    raise fail(InputError, name, text, shown)


def _zero_one(name: str, x: Any) -> None:
    """Only 0 and 1 (a mask), when the values can be read."""
    if not has_values(x) or 0 in _shape(x):
        return
    xp, x = values_namespace(x)
    if not bool(xp.all((x == 0) | (x == 1))):
        lo, hi = min_max(x)
        raise fail(InputError, name, "only the values 0 and 1", f"values in [{lo:g}, {hi:g}]")


def _ids(name: str, x: Any, shape: tuple[int, ...], high: int) -> None:
    if dtype_kind(x) != "i":
        raise fail(InputError, name, f"an integer array of shape {shape}", x)
    if _shape(x) != shape:
        raise fail(InputError, name, f"shape {shape}", x)
    _values(name, x, 0, high, text=f"values in [0, {high})")


def check_inputs(
    config: BigBirdConfig, head: str, *, input_ids: Any = None, inputs_embeds: Any = None,
    attention_mask: Any = None, token_type_ids: Any = None, position_ids: Any = None, head_mask: Any = None,
    question_lengths: Any = None, past_len: int = 0,
) -> Shapes:  # fmt: skip
    """Validate the model inputs of a forward call of ``head``.

    Args:
        config: the model config.
        head: the head's name (multiple choice inputs carry a choices axis ``(batch, choices, seq)``).
        input_ids / inputs_embeds: exactly one of them.
        attention_mask: 0/1 values (bool, integer or float), ``(..., past_len + seq)``.
        token_type_ids, position_ids: integer ids of the inputs' shape.
        head_mask: ``(heads,)`` or ``(layers, heads)``.
        question_lengths: question answering only, ``(batch,)`` or ``(batch, 1)`` non-negative integers.
        past_len: tokens already in a key/value cache.

    Returns:
        The call's :class:`Shapes`.

    Raises:
        InputError naming the argument, the expected and the given value.
    """
    spec = head_spec(head)
    choices = spec.choices
    rank = 3 if choices else 2
    dims = "(batch, num_choices, seq)" if choices else "(batch, seq)"
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("input_ids / inputs_embeds: expected exactly one of them, got "
                         + ("both" if input_ids is not None else "neither"))  # fmt: skip
    if input_ids is not None:
        if not hasattr(input_ids, "shape") or len(input_ids.shape) != rank or dtype_kind(input_ids) != "i":
            raise fail(InputError, "input_ids", f"a {rank}-D integer array {dims}", input_ids)
        shape = _shape(input_ids)
    else:
        width = config.hidden_size
        if (not hasattr(inputs_embeds, "shape") or len(inputs_embeds.shape) != rank + 1
                or inputs_embeds.shape[-1] != width or dtype_kind(inputs_embeds) != "f"):  # fmt: skip
            raise fail(InputError, "inputs_embeds", f"a {rank + 1}-D float array {dims[:-1]}, {width})",
                       inputs_embeds)  # fmt: skip
        shape = _shape(inputs_embeds)[:-1]
    name = "input_ids" if input_ids is not None else "inputs_embeds"
    if 0 in shape:
        raise fail(InputError, name, "a non-empty batch of non-empty sequences", f"shape {shape}")
    total = shape[-1] + past_len
    if total > config.max_position_embeddings:
        raise fail(InputError, name, f"at most max_position_embeddings = {config.max_position_embeddings} "
                   "tokens", f"{total} tokens")  # fmt: skip
    if input_ids is not None:
        _values("input_ids", input_ids, 0, config.vocab_size, text=f"values in [0, {config.vocab_size})")
    if attention_mask is not None:
        mask_shape = shape[:-1] + (total,)
        if not hasattr(attention_mask, "shape") or _shape(attention_mask) != mask_shape or dtype_kind(
            attention_mask
        ) == "?":
            raise fail(InputError, "attention_mask", f"a 0/1 array of shape {mask_shape}", attention_mask)
        _zero_one("attention_mask", attention_mask)
    if token_type_ids is not None:
        _ids("token_type_ids", token_type_ids, shape, config.type_vocab_size)
    if position_ids is not None:
        _ids("position_ids", position_ids, shape, config.max_position_embeddings)
    if head_mask is not None:
        layers, heads = config.num_hidden_layers, config.num_attention_heads
        if not hasattr(head_mask, "shape") or _shape(head_mask) not in ((heads,), (layers, heads)) or dtype_kind(
            head_mask
        ) not in "bif":
            raise fail(InputError, "head_mask", f"an array of shape ({heads},) or ({layers}, {heads})", head_mask)
    if question_lengths is not None:
        if not spec.question_lengths:
            raise fail(InputError, "question_lengths", "None (question answering only)", question_lengths)
        if (not hasattr(question_lengths, "shape") or _shape(question_lengths) not in ((shape[0],), (shape[0], 1))
                or dtype_kind(question_lengths) != "i"):  # fmt: skip
            raise fail(InputError, "question_lengths", f"an integer array of shape ({shape[0]},) or "
                       f"({shape[0]}, 1)", question_lengths)  # fmt: skip
        _values("question_lengths", question_lengths, 0, float("inf"), text="non-negative values")
    return Shapes(shape[0], shape[-1], shape[1] if choices else None)


def check_cross_inputs(config: BigBirdConfig, batch: int, encoder_hidden_states: Any,
                       encoder_attention_mask: Any) -> int | None:  # fmt: skip
    """Validate the cross-attention inputs; returns the encoder's length (None without them).

    Rules (transformers 4.57.6): only a model with ``config.add_cross_attention`` (a decoder) takes them;
    ``encoder_hidden_states`` ``(batch, encoder_len, hidden)``, ``encoder_attention_mask`` ``(batch,
    encoder_len)`` of 0/1 (default: every position).
    """
    if encoder_hidden_states is None:
        if encoder_attention_mask is not None:
            raise fail(InputError, "encoder_attention_mask", "None without encoder_hidden_states",
                       encoder_attention_mask)  # fmt: skip
        return None
    if not config.add_cross_attention:
        raise fail(InputError, "encoder_hidden_states", "None: this model has no cross-attention "
                   "(config.add_cross_attention is False)", encoder_hidden_states)  # fmt: skip
    width = config.hidden_size
    x = encoder_hidden_states
    if (not hasattr(x, "shape") or len(x.shape) != 3 or x.shape[0] != batch or x.shape[2] != width
            or x.shape[1] == 0 or dtype_kind(x) != "f"):  # fmt: skip
        raise fail(InputError, "encoder_hidden_states", f"a float array of shape ({batch}, encoder_len, {width})", x)
    length = _shape(x)[1]
    m = encoder_attention_mask
    if m is not None:
        if not hasattr(m, "shape") or _shape(m) != (batch, length) or dtype_kind(m) == "?":
            raise fail(InputError, "encoder_attention_mask", f"a 0/1 array of shape ({batch}, {length})", m)
        _zero_one("encoder_attention_mask", m)
    return length


def check_labels(config: BigBirdConfig, head: str, shapes: Shapes, labels: dict[str, Any]) -> dict[str, Any]:
    """Validate the label arguments of ``head``; returns those that are not None.

    Which arguments a head takes and their rules are its registry entry's (``HeadSpec.labels``,
    ``HeadSpec.check_labels``): token labels ``(batch, seq)`` in ``[0, vocab)`` or ``IGNORE_INDEX``; sequence
    classification by ``problem_type`` (integer classes ``(batch,)``, regression or multi-label floats);
    multiple choice ``(batch,)`` in ``[0, num_choices)``; QA positions ``(batch,)``, non-negative, given
    together (positions past the end are ignored, as in transformers).
    """
    spec = head_spec(head)
    allowed = spec.labels
    for key in labels:
        if key not in allowed:
            expected = f"one of {', '.join(allowed)}" if allowed else "no label argument"
            raise fail(InputError, key, f"{expected} for {head}", "an unknown keyword")
    given = {k: v for k, v in labels.items() if v is not None}
    for key, y in given.items():
        if not hasattr(y, "shape") or dtype_kind(y) == "?":
            raise fail(InputError, key, "an array", y)
    spec.check_labels(config, shapes, given)
    return given


def check_positions(given: dict[str, Any], names: tuple[str, str], batch: int) -> None:
    """Span positions (question answering): both or neither, integers ``(batch,)`` or ``(batch, 1)``, >= 0."""
    if not given:
        return
    for key in names:
        if key not in given:
            other = names[1] if key == names[0] else names[0]
            raise fail(InputError, key, f"an array given together with {other}", None)
        y = given[key]
        if dtype_kind(y) != "i" or _shape(y) not in ((batch,), (batch, 1)):
            raise fail(InputError, key, f"an integer array of shape ({batch},) or ({batch}, 1)", y)
        _values(key, y, 0, float("inf"), text="non-negative positions")


def check_class_ids(name: str, y: Any, shapes: tuple[tuple[int, ...], ...], classes: int) -> None:
    """Integer class ids of one of ``shapes`` in ``[0, classes)`` or ``IGNORE_INDEX``."""
    text = " or ".join(str(s) for s in shapes)
    if dtype_kind(y) != "i" or _shape(y) not in shapes:
        raise fail(InputError, name, f"an integer array of shape {text}", y)
    _values(name, y, 0, classes, extra=(IGNORE_INDEX,), text=f"class ids in [0, {classes}) or {IGNORE_INDEX}")


def check_sequence_labels(config: BigBirdConfig, y: Any, b: int) -> None:
    """Sequence-classification labels by transformers' ``problem_type`` rule."""
    problem = config.problem_type_for(dtype_kind(y) == "i")
    n = config.num_labels
    if problem == "single_label_classification":
        check_class_ids("labels", y, ((b,), (b, 1)), n)
    elif problem == "regression":
        shapes = ((b,), (b, 1)) if n == 1 else ((b, n),)
        if dtype_kind(y) not in "if" or _shape(y) not in shapes:
            raise fail(InputError, "labels", "regression targets of shape " + " or ".join(map(str, shapes)), y)
    else:
        if dtype_kind(y) not in "bif" or _shape(y) != (b, n):
            raise fail(InputError, "labels", f"multi-label targets of shape {(b, n)}", y)
        _values("labels", y, 0, 1, extra=(1,), text="multi-label targets in [0, 1]")
