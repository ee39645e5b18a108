"""The key/value cache of decoders, one layout for every backend.

Growing cache (NumPy and torch, transformers' legacy tuples): one tuple per layer,
``(self_key, self_value)`` or, with cross-attention, ``(self_key, self_value, cross_key, cross_value)``:
self keys and values ``(batch, heads, past_len, head_dim)`` of every token decoded so far, cross keys and values
``(batch, heads, encoder_len, head_dim)`` computed once from the encoder's hidden states.

Fixed-size cache (Flax, transformers' 4.x Flax semantics, so a jitted decoding step has static shapes): the
``"cache"`` collection holds per self-attention module ``cached_key`` and ``cached_value``
``(batch, max_length, heads, head_dim)`` and ``cache_index`` (tokens written so far), and per cross-attention
module ``cached_key`` / ``cached_value`` ``(batch, encoder_len, heads, head_dim)``, written on the first step.
The attention mask of a cached call covers all ``max_length`` positions (``(batch, max_length)``); the causal
part comes from the index (:func:`causal_mask`).
"""

from __future__ import annotations

from typing import Any

from .arrays import device, namespace
from .config import BigBirdConfig
from .errors import InputError, describe, fail
from .registry import cache_heads, head_spec


def _describe_layer(entry: Any) -> str:
    if not isinstance(entry, (tuple, list)):
        return type(entry).__name__
    return f"a tuple of {len(entry)}"


def cache_length(config: BigBirdConfig, past_key_values: Any, batch: int | None = None, *, dtype: Any = None,
                 encoder_len: int | None = None) -> tuple[int, bool]:  # fmt: skip
    """Validate a growing cache; returns ``(past_len, holds_cross)`` (``(0, False)`` for None).

    Args:
        dtype: the model's compute dtype: every cached array must be of it (a float64 cache for a float32 model,
            or integer keys, are refused rather than promoted or failing inside the framework).
        encoder_len: the length of the call's ``encoder_hidden_states``: cached cross keys and values must be of
            that many encoder states.

    Raises:
        InputError naming ``past_key_values``: a cache for a model that is not a decoder, the wrong number of
        layers, entries that are not 2 (or, with cross-attention, 4) arrays, or arrays of the wrong shape or dtype.
    """
    if past_key_values is None:
        return 0, False
    if not config.is_decoder:
        raise fail(InputError, "past_key_values", "None unless config.is_decoder is True", "a cache")
    layers, heads, d = config.num_hidden_layers, config.num_attention_heads, config.head_dim
    sizes = (2, 4) if config.add_cross_attention else (2,)
    if not isinstance(past_key_values, (tuple, list)) or len(past_key_values) != layers:
        shown = f"{len(past_key_values)} layers" if isinstance(past_key_values, (tuple, list)) else past_key_values
        raise fail(InputError, "past_key_values", f"a tuple of {layers} layers (one per layer)", shown)
    first = past_key_values[0]
    kinds = " or ".join(str(s) for s in sizes)
    lengths: dict[bool, int | None] = {False: None, True: encoder_len}  # self / cross: the length seen first
    want = None if dtype is None else _dtype_name(dtype)
    for i, entry in enumerate(past_key_values):
        if not isinstance(entry, (tuple, list)) or len(entry) not in sizes or len(entry) != len(first):
            raise fail(InputError, f"past_key_values[{i}]", f"a tuple of {kinds} arrays (keys and values)",
                       _describe_layer(entry))  # fmt: skip
        for j, x in enumerate(entry):
            shape = tuple(getattr(x, "shape", ()))
            cross = j >= 2
            ok = len(shape) == 4 and shape[1] == heads and shape[3] == d and (batch is None or shape[0] == batch)
            ok = ok and _dtype_name(getattr(x, "dtype", None)).startswith(("float", "bfloat")) and (
                want is None or _dtype_name(x.dtype) == want)  # fmt: skip
            if ok:
                lengths[cross] = shape[2] if lengths[cross] is None else lengths[cross]
                ok = shape[2] == lengths[cross]
            if not ok:
                what = "cross" if cross else "self"
                known = lengths[cross]
                length = str(known) if known is not None else ("encoder_len" if cross else "past_len")
                b = "batch" if batch is None else str(batch)
                kind = f" of {want}" if want else " (floating point)"
                got = f"{describe(x)} of {_dtype_name(getattr(x, 'dtype', None)) or type(x).__name__}"
                raise fail(InputError, f"past_key_values[{i}][{j}]", f"{what}-attention keys/values of shape "
                           f"({b}, {heads}, {length}, {d}){kind}", got)  # fmt: skip
    return int(lengths[False]), len(first) == 4


def _dtype_name(dtype: Any) -> str:
    return "" if dtype is None else str(dtype).replace("torch.", "")


def causal_mask(mask: Any, index: Any, q_len: int) -> Any:
    """The causal rule, once: the additive mask ``(batch, 1, q_len, K)`` of ``q_len`` queries after ``index``
    earlier positions (a growing cache's length, or a fixed-size cache's index).

    Query ``t`` (at position ``index + t``) sees the positions ``<= index + t`` that ``mask`` ``(batch, K)`` keeps
    (``finfo.min`` elsewhere); ``index`` may be traced (inside ``jax.jit``).
    """
    xp = namespace(mask)
    max_len, dev = mask.shape[1], device(mask)
    rows = xp.arange(q_len, device=dev)[:, None] + index  # (Q, 1)
    causal = xp.arange(max_len, device=dev)[None, :] <= rows  # (Q, K)
    keep = mask[:, None, None, :] * xp.astype(causal, mask.dtype)[None, None]
    return (1.0 - keep) * xp.finfo(mask.dtype).min


def cache_mask(mask: Any, max_length: int) -> Any:
    """The attention mask of every position a fixed-size cache will hold when decoding from a prompt whose mask is
    ``mask`` ``(batch, P)``: the prompt's, then ones for the tokens to come ``(batch, max_length)``."""
    xp = namespace(mask)
    rest = xp.ones((mask.shape[0], max_length - mask.shape[1]), dtype=mask.dtype, device=device(mask))
    return xp.concat([mask, rest], axis=1)


def check_fixed_cache(config: BigBirdConfig, max_length: int, batch_size: int) -> None:
    """The arguments of ``init_cache``: a positive batch and a length within ``max_position_embeddings``."""
    if not config.is_decoder:
        raise fail(InputError, "init_cache", "a decoder (config.is_decoder is True)", "config.is_decoder False")
    if not _integer(batch_size) or batch_size < 1:
        raise fail(InputError, "batch_size", "a positive integer", repr(batch_size))
    if not _integer(max_length) or not 1 <= max_length <= config.max_position_embeddings:
        raise fail(InputError, "max_length", f"an integer in [1, max_position_embeddings = "
                   f"{config.max_position_embeddings}]", repr(max_length))  # fmt: skip


def _integer(x: Any) -> bool:
    """A Python or NumPy integer (``np.int64(4)`` is as good as ``4``), not a bool."""
    import numpy as np

    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_cache_head(head: str) -> None:
    """Only the heads whose registry entry says so (``BigBirdModel``, ``BigBirdForCausalLM``) decode with a
    cache."""
    if not head_spec(head).cache:
        raise fail(InputError, "past_key_values", f"None for {head} (only {' and '.join(cache_heads())} decode "
                   "with a cache)", "a cache")  # fmt: skip
