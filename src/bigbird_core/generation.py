"""Decoding, once for every backend: the arguments, the logits warpers, the greedy/sampling step and beam search.

The rules are transformers 4.57.6's ``generate`` (``GenerationMixin._sample`` and the vectorised ``_beam_search``),
written against the Python array API so that torch runs them in its eager loop and JAX inside ``lax.while_loop``
(a traced step counter included). A backend owns only the model calls, the cache and its random numbers.

Shapes: ``B`` examples, ``K`` beams, ``V`` the vocabulary, ``T = max_length`` tokens in all (prompt included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .arrays import device, namespace
from .config import BigBirdConfig
from .errors import InputError, NumericalError, fail

NEG = -1.0e9  # transformers' "never pick this beam" score


@dataclass(frozen=True)
class Generation:
    """Validated ``generate`` arguments (transformers' names and defaults).

    Attributes:
        max_length: tokens in all, the prompt (or the decoder start token) included.
        eos: the end-of-sequence ids (empty: none); pad: what finished sequences are filled with.
    """

    max_length: int
    prompt_len: int
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    eos: tuple[int, ...]
    pad: int


def _integer(name: str, value: Any, low: int, text: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise fail(InputError, name, text, repr(value))
    return value


def generation(config: BigBirdConfig, prompt_len: int, *, max_length: int | None = None,
               max_new_tokens: int | None = None, eos_token_id: Any = None, pad_token_id: int | None = None,
               do_sample: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
               num_beams: int = 1, length_penalty: float = 1.0, early_stopping: bool | str = False) -> Generation:  # fmt: skip
    """Check ``generate``'s arguments once for every backend; defaults are transformers' (``max_length`` 20).

    ``max_new_tokens`` wins over ``max_length`` (as in transformers); ``eos_token_id`` None is the config's, and
    may be a list; ``pad_token_id`` None is the config's.
    """
    if not config.is_decoder:
        raise fail(InputError, "config.is_decoder", "True for generation (a decoder)", False)
    if max_new_tokens is not None:
        total = prompt_len + _integer("max_new_tokens", max_new_tokens, 1, "a positive integer")
        limit = "max_new_tokens"
    else:
        total = 20 if max_length is None else _integer("max_length", max_length, 1, "a positive integer")
        limit = "max_length"
        if total <= prompt_len:
            raise fail(InputError, "max_length", f"more than the prompt's {prompt_len} tokens (or use max_new_tokens)",
                       str(total))  # fmt: skip
    if total > config.max_position_embeddings:
        raise fail(InputError, limit, f"a total length of at most max_position_embeddings = "
                   f"{config.max_position_embeddings}", f"{total} tokens")  # fmt: skip
    eos = config.eos_token_id if eos_token_id is None else eos_token_id
    eos = tuple(eos) if isinstance(eos, (list, tuple)) else () if eos is None else (eos,)
    for e in eos:
        if not isinstance(e, int) or isinstance(e, bool) or not 0 <= e < config.vocab_size:
            raise fail(InputError, "eos_token_id", f"token ids in [0, {config.vocab_size})", repr(eos_token_id))
    pad = config.pad_token_id if pad_token_id is None else pad_token_id
    if not isinstance(pad, int) or isinstance(pad, bool) or not 0 <= pad < config.vocab_size:
        raise fail(InputError, "pad_token_id", f"a token id in [0, {config.vocab_size})", repr(pad_token_id))
    if not isinstance(do_sample, bool):
        raise fail(InputError, "do_sample", "True or False", repr(do_sample))
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 < temperature < math.inf:
        raise fail(InputError, "temperature", "a positive finite number", repr(temperature))
    _integer("top_k", top_k, 0, "a non-negative integer (0: no top-k filter)")
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1:
        raise fail(InputError, "top_p", "a number in (0, 1]", repr(top_p))
    _integer("num_beams", num_beams, 1, "a positive integer")
    if not isinstance(length_penalty, (int, float)) or isinstance(length_penalty, bool) or not math.isfinite(
            length_penalty):  # fmt: skip
        raise fail(InputError, "length_penalty", "a finite number", repr(length_penalty))
    if early_stopping not in (True, False, "never"):
        raise fail(InputError, "early_stopping", 'True, False or "never"', repr(early_stopping))
    return Generation(total, prompt_len, do_sample, float(temperature), top_k, float(top_p), num_beams,
                      float(length_penalty), early_stopping, eos, pad)  # fmt: skip


def unusable_scores(logits: Any) -> Any:
    """Rows ``(N,)`` of a step's logits ``(N, V)`` with no finite score: nothing to choose from (NaN weights, say).
    Greedy search would pick token 0 from them and sampling fail or do the same; :func:`check_scores` refuses."""
    xp = namespace(logits)
    return ~xp.any(xp.isfinite(logits), axis=-1)


def scores_error(step: Any = None) -> NumericalError:
    """The error of a decoding step with :func:`unusable_scores` (the same text from every backend)."""
    at = "" if step is None else f" at step {step}"
    return NumericalError(f"generate: the model's next-token scores{at} are all NaN or infinite for some sequence "
                          "(its weights or inputs hold non-finite values); no token can be chosen")


def positions_from_mask(mask: Any) -> Any:
    """transformers' positions of a (left-)padded prompt: ``cumsum(mask) - 1``, padding at position 1."""
    xp = namespace(mask)
    m = xp.astype(mask, xp.int64 if xp.__name__ != "jax.numpy" else xp.int32)
    positions = xp.cumulative_sum(m, axis=-1) - 1
    return xp.where(m == 0, xp.ones_like(positions), positions)


def warp(scores: Any, g: Generation) -> Any:
    """The sampling warpers in transformers' order: temperature, top-k, top-p (``-inf`` for removed tokens).
    Greedy and plain beam search use the scores as they are."""
    if not g.do_sample:
        return scores
    xp = namespace(scores)
    keep = 2 if g.num_beams > 1 else 1  # tokens every warper keeps (transformers: 2 with beams)
    if g.temperature != 1.0:
        scores = scores / g.temperature
    vocab = scores.shape[-1]
    ninf = xp.asarray(-math.inf, dtype=scores.dtype, device=device(scores))
    if g.top_k:
        k = min(max(g.top_k, keep), vocab)
        kth = xp.sort(scores, axis=-1, descending=True)[..., k - 1 : k]
        scores = xp.where(scores < kth, ninf, scores)
    if g.top_p < 1.0:
        order = xp.argsort(scores, axis=-1, stable=True)  # ascending
        ordered = xp.take_along_axis(scores, order, axis=-1)
        e = xp.exp(ordered - xp.max(ordered, axis=-1, keepdims=True))
        cumulative = xp.cumulative_sum(e / xp.sum(e, axis=-1, keepdims=True), axis=-1)
        remove = cumulative <= (1 - g.top_p)
        rank = xp.arange(vocab, device=device(scores))
        remove = remove & (rank < vocab - keep)  # the last (most likely) tokens stay
        back = xp.argsort(order, axis=-1, stable=True)  # undo the sort
        scores = xp.where(xp.take_along_axis(remove, back, axis=-1), ninf, scores)
    return scores


def log_softmax(x: Any) -> Any:
    xp = namespace(x)
    shifted = x - xp.max(x, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def next_tokens(chosen: Any, unfinished: Any, g: Generation) -> Any:
    """Greedy / sampling: finished sequences get ``pad`` (when there is an end-of-sequence id)."""
    if not g.eos:
        return chosen
    xp = namespace(chosen)
    return xp.where(unfinished, chosen, xp.full_like(chosen, g.pad))


def is_eos(tokens: Any, g: Generation) -> Any:
    xp = namespace(tokens)
    hit = xp.zeros(tokens.shape, dtype=xp.bool, device=device(tokens))
    for e in g.eos:
        hit = hit | (tokens == e)
    return hit


# ------------------------------------------------------------------------------------------------ beam search
def _gather(x: Any, index: Any) -> Any:
    """``x`` ``(B, N, ...)`` at beams ``index`` ``(B, M)`` -> ``(B, M, ...)``."""
    xp = namespace(x)
    idx = xp.reshape(index, tuple(index.shape) + (1,) * (x.ndim - 2))
    return xp.take_along_axis(x, xp.broadcast_to(idx, tuple(index.shape) + tuple(x.shape[2:])), axis=1)


def _top(x: Any, k: int) -> Any:
    """Indices of the ``k`` largest entries along the last axis (ties: the lower index first)."""
    xp = namespace(x)
    return xp.argsort(x, axis=-1, descending=True, stable=True)[..., :k]


def beam_start(prompt: Any, g: Generation) -> dict[str, Any]:
    """The state of beam search over ``prompt`` ``(B, P)`` (every beam starts from it)."""
    xp = namespace(prompt)
    dev = device(prompt)
    batch, plen = prompt.shape
    K, T = g.num_beams, g.max_length
    fill = (g.pad or g.eos[0]) if g.eos else -1  # transformers' `pad_token_id or eos_token_id[0]` (pad 0 is falsy)
    seqs = xp.full((batch, K, T), fill, dtype=prompt.dtype, device=dev)
    seqs = xp.concat([xp.broadcast_to(prompt[:, None, :], (batch, K, plen)), seqs[:, :, plen:]], axis=2)
    first = xp.arange(K, device=dev)[None, :] == 0
    return dict(
        running=seqs, sequences=seqs,
        running_scores=xp.where(first, xp.zeros((batch, K), device=dev), xp.full((batch, K), NEG, device=dev)),
        scores=xp.full((batch, K), NEG, device=dev),
        finished=xp.zeros((batch, K), dtype=xp.bool, device=dev),
        improvable=xp.ones((batch, 1), dtype=xp.bool, device=dev),
        hits=xp.zeros((batch, max(2, 1 + len(g.eos)) * K), dtype=xp.bool, device=dev),  # did each candidate stop
        running_beams=xp.full((batch, K, T - plen), -1, dtype=xp.int32, device=dev),
        beams=xp.full((batch, K, T - plen), -1, dtype=xp.int32, device=dev),
    )  # fmt: skip


def beam_step(state: dict[str, Any], log_probs: Any, cur_len: Any, g: Generation,
              sampled: Any = None) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """One step of transformers' vectorised beam search.

    Args:
        state: from :func:`beam_start` or the previous step.
        log_probs: ``(B*K, V)`` log-softmax of the last logits, warped (float32).
        cur_len: tokens so far (a Python int, or a traced scalar inside ``lax.while_loop``).
        sampled: beam sampling only: ``(B, 2K)`` candidate indices into ``K*V`` drawn by the backend without
            replacement from ``softmax`` of the accumulated scores (:func:`beam_candidates_scores`).

    Returns:
        The new state and ``(B*K,)`` the source row of every new beam (reorder the cache with it).
    """
    xp = namespace(log_probs)
    dev = device(log_probs)
    batch, K = state["running_scores"].shape
    vocab = log_probs.shape[-1]
    T, plen = g.max_length, g.prompt_len
    keep = max(2, 1 + len(g.eos)) * K
    acc = beam_candidates_scores(state, log_probs)  # (B, K*V)
    if sampled is None:
        top = _top(acc, keep)  # (B, 2K)
    else:
        top = sampled
    top_scores = xp.take_along_axis(acc, top, axis=1)
    src = top // vocab  # the beam each candidate extends
    ids = xp.astype(top % vocab, state["running"].dtype)
    seqs = _gather(state["running"], src)  # (B, 2K, T)
    at = xp.arange(T, device=dev)[None, None, :] == cur_len
    seqs = xp.where(at, ids[:, :, None], seqs)
    offset = xp.arange(batch, device=dev)[:, None] * K
    beams = _gather(state["running_beams"], src)
    at_b = xp.arange(T - plen, device=dev)[None, None, :] == (cur_len - plen)
    beams = xp.where(at_b, xp.astype(src + offset, xp.int32)[:, :, None], beams)
    # stopping: the length is reached, or the new token ends the sequence
    hits = is_eos(ids, g) | ((cur_len + 1) >= T)  # (B, 2K)
    # the running beams of the next step: the best that did not stop
    running_scores = top_scores + xp.astype(hits, top_scores.dtype) * NEG
    best = _top(running_scores, K)
    running = _gather(seqs, best)
    new_running_scores = xp.take_along_axis(running_scores, best, axis=1)
    running_beams = _gather(beams, best)
    # the finished beams: the best of the old and the just-finished top K
    top_k_mask = xp.arange(keep, device=dev)[None, :] < K
    just = hits & top_k_mask
    length = xp.asarray(cur_len + 1 - plen, dtype=top_scores.dtype, device=dev)  # a Python int or a traced one
    final = top_scores / (length**g.length_penalty)
    full = xp.all(state["finished"], axis=-1, keepdims=True) & (g.early_stopping is True)
    final = final + xp.astype(full, final.dtype) * NEG
    final = final + xp.astype(~state["improvable"], final.dtype) * NEG
    final = final + xp.astype(~just, final.dtype) * NEG
    merged_scores = xp.concat([state["scores"], final], axis=1)
    pick = _top(merged_scores, K)
    sequences = _gather(xp.concat([state["sequences"], seqs], axis=1), pick)
    scores = xp.take_along_axis(merged_scores, pick, axis=1)
    beam_hist = _gather(xp.concat([state["beams"], beams], axis=1), pick)
    finished = xp.take_along_axis(xp.concat([state["finished"], just], axis=1), pick, axis=1)
    # can a running beam still beat the worst finished one?
    if g.early_stopping == "never" and g.length_penalty > 0.0:
        hypothetical = xp.asarray(T - plen, dtype=top_scores.dtype, device=dev)
    else:
        hypothetical = length
    best_possible = new_running_scores[:, :1] / (hypothetical**g.length_penalty)
    worst = xp.where(finished, xp.min(scores, axis=1, keepdims=True), xp.full_like(scores, NEG))
    improvable = state["improvable"] & xp.any(best_possible > worst, axis=-1, keepdims=True)
    # the cache rows the new running beams came from
    rows = xp.reshape(_gather(xp.astype(src + offset, xp.int32), best), (-1,))
    new = dict(running=running, sequences=sequences, running_scores=new_running_scores, scores=scores,
               finished=finished, improvable=improvable, hits=hits, running_beams=running_beams, beams=beam_hist)
    return new, rows


def beam_candidates_scores(state: dict[str, Any], log_probs: Any) -> Any:
    """Accumulated scores of every continuation: ``(B, K*V)``."""
    xp = namespace(log_probs)
    batch, K = state["running_scores"].shape
    acc = xp.reshape(log_probs, (batch, K, -1)) + state["running_scores"][:, :, None]
    return xp.reshape(acc, (batch, -1))


def beam_continues(state: dict[str, Any], g: Generation) -> Any:
    """transformers' stopping rule of beam search: a scalar boolean array."""
    xp = namespace(state["scores"])
    improvement = xp.any(state["improvable"])
    open_beam = ~(xp.all(state["finished"]) & (g.early_stopping is True))
    continuations = ~xp.all(state["hits"])
    return improvement & open_beam & continuations


def beam_result(state: dict[str, Any], g: Generation) -> tuple[Any, Any]:
    """The best beam of every example ``(B, T)`` and its generated tokens' count ``(B,)`` (transformers cuts the
    output after the prompt and the longest of them)."""
    xp = namespace(state["scores"])
    best = state["sequences"][:, 0]
    generated = xp.sum(xp.astype(state["beams"][:, 0] >= 0, xp.int32), axis=-1)
    return best, generated
