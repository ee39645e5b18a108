"""The call recipe: one forward call, validated and prepared once, for every backend.

``prepare_call`` turns the raw arguments of any head's forward call into a frozen
:class:`PreparedCall`: the attention type of this call, inputs padded to the block size (the core's
padding rule), default positions and token types, the additive mask (full or causal), head masks, the
random plan and its layout (cached, bounded), the QA question masks, the multiple-choice reshape and
what to cut back. ``finish_call`` applies the head rules (QA penalty, choices reshape, losses) and
builds the output object. A backend runs only its embeddings, layers and head modules in between.

Arrays stay the caller's (NumPy, torch or JAX): the array code is written against the array API
standard, so it also runs inside ``jax.jit``, ``torch.compile`` and ``torch.export`` (value checks
are skipped there, see :mod:`bigbird_core.arrays`).

Example:
    >>> prep = prepare_call(config, "BigBirdForMaskedLM", dtype=np.float32, input_ids=ids)
    >>> x = my_embeddings(prep.input_ids, prep.token_type_ids, prep.position_ids)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from .arrays import device, has_values, namespace, pad_right, softmax_dtype, to_numpy
from .cache import causal_mask
from .config import BigBirdConfig
from .errors import InputError, fail
from .inputs import CallPlan, pad_values, plan_call
from .layout import BlockLayout, CompactSlots, block_layout, compact_slots
from .plans import check_plan, make_plan
from .registry import head_spec
from .validate import Shapes, check_cross_inputs, check_inputs, check_labels

LAYOUT_CACHE_SIZE = 64  # (config, length, mode) layouts kept per process


@dataclass(frozen=True, eq=False)
class PlannedLayout:
    """A random plan with its block layout and merged slots (NumPy, read-only; hashed by identity so
    that a backend can cache its device copy per object)."""

    plan: np.ndarray  # (layers, heads, n-2, r) int32
    layout: BlockLayout

    @cached_property
    def compact(self) -> CompactSlots:
        return compact_slots(self.layout)

    @classmethod
    def of(cls, plan: np.ndarray, block_size: int) -> PlannedLayout:
        return cls(plan, block_layout(plan, block_size))


@lru_cache(maxsize=LAYOUT_CACHE_SIZE)
def planned_layout(config: BigBirdConfig, num_blocks: int, training: bool) -> PlannedLayout:
    """The config's plan for ``num_blocks`` blocks in this mode, with its layout (cached, bounded)."""
    return PlannedLayout.of(make_plan(config, num_blocks, training=training), config.block_size)


@dataclass(frozen=True)
class PreparedCall:
    """Everything a backend needs for one forward call, decided by the core.

    Arrays are the backend's own; ``(B, Lp)`` is the flattened batch (choices folded in) and the
    padded length, ``K = past_len + Lp`` the keys.
    """

    config: BigBirdConfig
    head: str
    shapes: Shapes
    call: CallPlan  # attention type, padding and lengths of this call
    input_ids: Any  # (B, Lp) int, or None when inputs_embeds are given
    inputs_embeds: Any  # (B, L, hidden) as given (see embeds_pad), or None
    token_type_ids: Any  # (B, Lp) int
    position_ids: Any  # (B, Lp) int
    attention_mask: Any  # (B, K) in the softmax dtype
    additive_mask: Any  # full attention: (B, 1, Lq, K), 0 or finfo.min (causal for decoders); else None
    head_mask: Any  # full attention: (layers, heads) multipliers, or None
    layout: PlannedLayout | None  # block-sparse with a plan known now (the config's, or a concrete one)
    plan: Any  # block-sparse with a traced plan (drawn inside jit): (layers, heads, n-2, r); else None
    logits_mask: Any  # QA: (B, L) bool, True where the question penalty applies; else None
    encoder_hidden_states: Any = None  # cross-attention: (B, Le, hidden) as given; else None
    cross_mask: Any = None  # cross-attention: (B, 1, 1, Le) additive, 0 or finfo.min; else None
    labels: dict[str, Any] = field(default_factory=dict)
    output_attentions: bool = False
    output_hidden_states: bool = False
    return_dict: bool = True
    use_cache: bool = False

    @property
    def past_len(self) -> int:
        return int(self.attention_mask.shape[1]) - self.call.padded_len

    @property
    def block_sparse(self) -> bool:
        return self.call.block_sparse

    @property
    def embeds_pad(self) -> dict[str, Any] | None:
        """For given embeddings: the ids, token types and positions whose embedding output pads them
        (transformers' rule: pad tokens at positions ``0..pad-1``), or None when nothing is padded."""
        pad = self.call.pad_len
        if self.inputs_embeds is None or pad == 0:
            return None
        xp, dev = namespace(self.token_type_ids), device(self.token_type_ids)
        batch = self.inputs_embeds.shape[0]
        ids = xp.full((batch, pad), self.config.pad_token_id, dtype=self.token_type_ids.dtype, device=dev)
        positions = xp.broadcast_to(xp.arange(pad, dtype=ids.dtype, device=dev)[None, :], (batch, pad))
        return {"input_ids": ids, "token_type_ids": xp.zeros_like(ids), "position_ids": positions}

    def full_embeds(self, embed_output: Any) -> Any:
        """``inputs_embeds`` followed by ``embed_output`` (the embedding of :attr:`embeds_pad`)."""
        xp = namespace(self.inputs_embeds)
        return xp.concat([xp.astype(self.inputs_embeds, embed_output.dtype), embed_output], axis=1)

    def cut(self, x: Any) -> Any:
        """``x`` cut back to the input length along the sequence axis (1)."""
        return x[:, : self.call.seq_len]


def prepare_call(
    config: BigBirdConfig, head: str, *, dtype: Any, input_ids: Any = None, attention_mask: Any = None,
    token_type_ids: Any = None, position_ids: Any = None, inputs_embeds: Any = None, head_mask: Any = None,
    question_lengths: Any = None, plan: Any = None, labels: dict[str, Any] | None = None, training: bool = False,
    past_len: int = 0, output_attentions: bool | None = None, output_hidden_states: bool | None = None,
    return_dict: bool | None = None, use_cache: bool | None = None, encoder_hidden_states: Any = None,
    encoder_attention_mask: Any = None, cache_size: int | None = None,
) -> PreparedCall:  # fmt: skip
    """Validate and prepare one forward call of ``head`` (see the module docstring).

    Args:
        config: the model config.
        head: the head's name, e.g. ``"BigBirdForQuestionAnswering"``.
        dtype: the model's compute dtype in the inputs' framework; masks are built in its softmax dtype
            (float32 for half precision).
        input_ids ... head_mask: transformers' forward arguments (multiple choice with a choices axis).
        question_lengths: QA only; defaults to the first ``[SEP]`` + 1.
        plan: a random plan ``(layers, heads, n-2, r)`` for block-sparse calls, or a function of the number
            of blocks that makes one (drawn on the backend's device); None: the config's.
        labels: the head's label arguments by name.
        training: train mode (the train plan of the config's planner).
        past_len: tokens already in the key/value cache (decoders).
        use_cache: return a key/value cache (decoders, ``config.is_decoder``; None: ``config.use_cache``).
        encoder_hidden_states, encoder_attention_mask: cross-attention inputs (``config.add_cross_attention``).
        cache_size: a call on a fixed-size cache of this many positions (``bigbird_core.cache``): the attention
            mask covers them all, the positions of the new tokens are given, and the backend builds the additive
            mask from its cache index (``additive_mask`` is None).

    Returns:
        The :class:`PreparedCall`.
    """
    c = config
    if (past_len or cache_size) and not c.is_decoder:
        raise fail(InputError, "past_key_values", "None unless config.is_decoder is True", "a cache")
    if cache_size is not None:
        ref = input_ids if input_ids is not None else inputs_embeds
        seq_now = ref.shape[-1] if input_ids is not None else ref.shape[-2]
        if attention_mask is None:
            raise fail(InputError, "attention_mask", f"a mask of every cached position, shape (batch, {cache_size}), "
                       "when decoding with a fixed-size cache", None)  # fmt: skip
        if position_ids is None:
            raise fail(InputError, "position_ids", "the positions of the new tokens when decoding with a fixed-size "
                       "cache (past_key_values)", None)  # fmt: skip
        if seq_now > cache_size:
            raise fail(InputError, "past_key_values", f"a cache of at least {seq_now} positions (the input's "
                       "tokens)", f"a cache of {cache_size} (its max_length)")  # fmt: skip
        past_len = cache_size - seq_now  # the mask's shape; the cache index is decided on the device
    spec = head_spec(head)
    use_cache = spec.cache and c.is_decoder and (
        c.use_cache if use_cache is None else use_cache)  # fmt: skip
    shapes = check_inputs(c, head, input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, position_ids=position_ids, head_mask=head_mask,
                          question_lengths=question_lengths, past_len=past_len)  # fmt: skip
    labels = check_labels(c, head, shapes, labels or {})
    encoder_len = check_cross_inputs(c, shapes.flat_batch, encoder_hidden_states, encoder_attention_mask)
    ref = input_ids if input_ids is not None else inputs_embeds
    xp, dev = namespace(ref), device(ref)
    # unsigned ids (uint8 token ids, say) index as signed ones: the embeddings of every backend take those
    signed = xp.int32 if xp.__name__ == "jax.numpy" else xp.int64
    input_ids, token_type_ids, position_ids = (
        xp.astype(x, signed) if x is not None and "uint" in str(x.dtype) else x
        for x in (input_ids, token_type_ids, position_ids))  # fmt: skip
    if shapes.num_choices is not None:  # fold the choices axis into the batch
        flat = lambda x: None if x is None else xp.reshape(x, (-1,) + tuple(x.shape[2:]))  # noqa: E731
        input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds = map(
            flat, (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds))  # fmt: skip
    batch, seq = shapes.flat_batch, shapes.seq_len
    call = plan_call(c, seq, past_len=past_len)
    index = input_ids.dtype if input_ids is not None else xp.int64 if xp.__name__ != "jax.numpy" else xp.int32
    sdt = softmax_dtype(xp, dtype)

    logits_mask = None
    if spec.question_lengths:
        if question_lengths is None and input_ids is not None:
            hits = xp.astype(input_ids == c.sep_token_id, xp.int32)
            question_lengths = xp.argmax(hits, axis=-1) + 1  # the question ends at the first [SEP]
        if question_lengths is not None:
            positions = xp.arange(seq, device=dev)[None, :]  # (1, L)
            question = positions < xp.reshape(question_lengths, (-1, 1))  # (B, L)
            logits_mask = question & (positions > 0)
            if token_type_ids is None:  # 1 - question mask, computed before position 0 is cleared
                token_type_ids = xp.astype(~question, index)

    pads = pad_values(c)
    mask = xp.ones((batch, past_len + seq), dtype=sdt, device=dev) if attention_mask is None else xp.astype(
        attention_mask, sdt)  # fmt: skip
    types = xp.zeros((batch, seq), dtype=index, device=dev) if token_type_ids is None else token_type_ids
    pad = call.pad_len
    if input_ids is not None:
        input_ids = pad_right(xp, input_ids, pad, pads["input_ids"])
    if position_ids is not None:
        position_ids = pad_right(xp, position_ids, pad, pads["position_ids"])
    else:
        position_ids = xp.broadcast_to(
            xp.arange(past_len, past_len + call.padded_len, dtype=index, device=dev)[None, :],
            (batch, call.padded_len))  # fmt: skip
    mask = pad_right(xp, mask, pad, pads["attention_mask"])
    types = pad_right(xp, types, pad, pads["token_type_ids"])

    layout = traced_plan = additive = heads_mult = None
    if callable(plan):  # a plan maker (a backend drawing on its device): only block-sparse calls use one
        plan = plan(call.num_blocks) if call.block_sparse else None
    if call.block_sparse:
        if plan is None:
            layout = planned_layout(c, call.num_blocks, bool(training))
        elif has_values(plan):
            layout = PlannedLayout.of(check_plan(c, call.num_blocks, to_numpy(plan)), c.block_size)
        else:  # drawn inside jit: the backend builds its layout from the traced plan
            want = (c.num_hidden_layers, c.num_attention_heads, call.num_blocks - 2, c.num_random_blocks)
            if tuple(plan.shape) != want:
                raise fail(InputError, "plan", f"an integer array of shape {want}", plan)
            traced_plan = plan
    else:
        if plan is not None:
            raise fail(InputError, "plan", f"None: this call of {seq} tokens runs full attention (block-sparse "
                       f"needs more than {c.min_block_sparse_length - 1})", plan)  # fmt: skip
        additive = None if cache_size is not None else full_attention_mask(c, xp, mask, call.padded_len, past_len)
        if head_mask is not None:
            heads_mult = xp.astype(head_mask, dtype)
            if heads_mult.ndim == 1:
                heads_mult = xp.broadcast_to(heads_mult[None, :], (c.num_hidden_layers, c.num_attention_heads))
    cross_mask = None
    if encoder_len is not None:  # transformers' inverted mask: finfo.min where the encoder position is padding
        keep = xp.ones((batch, encoder_len), dtype=sdt, device=dev) if encoder_attention_mask is None else xp.astype(
            encoder_attention_mask, sdt)  # fmt: skip
        cross_mask = ((1.0 - keep) * xp.finfo(sdt).min)[:, None, None, :]
    return PreparedCall(
        config=c, head=head, shapes=shapes, call=call, input_ids=input_ids, inputs_embeds=inputs_embeds,
        token_type_ids=types, position_ids=position_ids, attention_mask=mask, additive_mask=additive,
        head_mask=heads_mult, layout=layout, plan=traced_plan, logits_mask=logits_mask, labels=labels,
        output_attentions=bool(c.output_attentions if output_attentions is None else output_attentions),
        output_hidden_states=bool(c.output_hidden_states if output_hidden_states is None else output_hidden_states),
        return_dict=bool(c.use_return_dict if return_dict is None else return_dict), use_cache=bool(use_cache),
        encoder_hidden_states=encoder_hidden_states, cross_mask=cross_mask,
    )  # fmt: skip


def full_attention_mask(config: BigBirdConfig, xp: Any, mask: Any, q_len: int, past_len: int = 0) -> Any:
    """Additive mask ``(batch, 1, q_len, K)``: ``finfo(dtype).min`` where masked; causal for decoders (the
    cache's rule, :func:`bigbird_core.cache.causal_mask`: query ``t`` sees keys ``<= past_len + t``)."""
    if config.is_decoder:
        return causal_mask(mask, past_len, q_len)
    return (1.0 - mask[:, None, None, :]) * xp.finfo(mask.dtype).min  # (B, 1, 1, K)


@dataclass(frozen=True)
class BodyOutput:
    """What a backend's body returns for one prepared call (its own arrays); the sequence is not cut back."""

    sequence_output: Any  # (B, Lp, hidden)
    pooled: Any = None  # (B, hidden): tanh(dense(token 0)), or None without a pooler
    hidden_states: tuple[Any, ...] | None = None  # embeddings + each layer, (B, Lp, hidden)
    attentions: tuple[Any, ...] | None = None  # each layer (B, heads, Lp, K)
    cross_attentions: tuple[Any, ...] | None = None  # each layer (B, heads, Lp, encoder_len)
    past_key_values: Any = None  # decoders: the new cache (see bigbird_core.cache)
    word_embeddings: Any = None  # the word embedding table, for tied output layers (Flax)


# what every output class may carry from the body besides the head's own fields
_BODY_FIELDS = ("past_key_values", "hidden_states", "attentions", "cross_attentions")


def finish_call(prep: PreparedCall, body: BodyOutput, *outputs: Any) -> Any:
    """The head's rules on the backend's results, and its output object.

    Args:
        prep: the prepared call.
        body: the body's outputs.
        outputs: what the head's module returned (``(logits,)``, pre-training's ``(logits, nsp)``, nothing
            for the base model); the head's registry entry turns them into output fields (the QA penalty,
            the choices reshape) and computes the loss from the call's labels.

    Returns:
        The transformers output object, or its tuple when ``return_dict`` is False.
    """
    spec = head_spec(prep.head)
    fields = spec.fields(prep, body, outputs)
    loss = spec.loss(prep.config, fields, prep.labels) if prep.labels else None
    names = {f.name for f in dataclasses.fields(spec.output)}
    if "loss" in names:
        fields["loss"] = loss
    for name in _BODY_FIELDS:
        if name in names and name not in fields:
            fields[name] = getattr(body, name)
    out = spec.output(**fields)
    return out if prep.return_dict else out.to_tuple()
