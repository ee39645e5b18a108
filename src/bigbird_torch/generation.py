"""``generate`` for torch decoders: the core's decoding rules (``bigbird_core.generation``) in an eager loop, with
the growing key/value cache (reordered between beams) and torch's random numbers for sampling."""

from __future__ import annotations

from typing import Any

import torch
from bigbird_core import generation as G
from bigbird_core.errors import InputError, fail


def _reorder(past, rows: torch.Tensor):
    """The cache of the beams in ``rows`` (every entry, cross keys and values too)."""
    return tuple(tuple(t.index_select(0, rows) for t in layer) for layer in past)


def _sample(probs: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(probs, num_samples=count, generator=generator)


@torch.no_grad()
def generate(decoder: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, g: G.Generation, *,
             encoder_hidden_states: torch.Tensor | None = None, encoder_attention_mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:  # fmt: skip
    """Decode with ``decoder`` (a ``BigBirdForCausalLM``) from ``input_ids`` ``(B, P)``.

    Returns:
        ``(B, P + generated)``: the prompt and the new tokens (finished sequences padded), cut as transformers
        cuts them (greedy and sampling: after the last step taken; beam search: the longest best beam).
    """
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.dtype)
    K = g.num_beams
    if K > 1:  # every beam holds its example's prompt, mask and encoder states
        expand = lambda t: None if t is None else t.repeat_interleave(K, dim=0)  # noqa: E731
        input_ids, mask = expand(input_ids), expand(mask)
        encoder_hidden_states, encoder_attention_mask = expand(encoder_hidden_states), expand(encoder_attention_mask)
    cross = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
    if encoder_hidden_states is None:
        cross = {}
    tokens, past = input_ids, None
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    state = G.beam_start(tokens.view(-1, K, tokens.shape[1])[:, 0], g) if K > 1 else None
    cur_len = input_ids.shape[1]
    while True:
        positions = G.positions_from_mask(mask)
        if past is None:
            step_ids, step_pos = tokens, positions
        else:
            step_ids, step_pos = tokens[:, -1:], positions[:, -1:]
        out = decoder(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=past,
                      use_cache=use_cache, **cross)  # fmt: skip
        past = out.past_key_values if use_cache else None
        logits = out.logits[:, -1].float()  # (B*K, V)
        if bool(G.unusable_scores(logits).any()):  # NaN weights: refuse rather than return token 0
            raise G.scores_error(cur_len - input_ids.shape[1])
        if K == 1:
            scores = G.warp(logits, g)
            if g.do_sample:
                chosen = _sample(torch.softmax(scores, dim=-1), 1, generator)[:, 0]
            else:
                chosen = scores.argmax(dim=-1)
            chosen = G.next_tokens(chosen, unfinished, g)
            tokens = torch.cat([tokens, chosen[:, None]], dim=1)
            unfinished = unfinished & ~G.is_eos(chosen, g)
            if not bool(unfinished.any()) or tokens.shape[1] >= g.max_length:
                return tokens
        else:
            log_probs = G.warp(G.log_softmax(logits), g)
            sampled = None
            if g.do_sample:
                acc = G.beam_candidates_scores(state, log_probs)
                sampled = _sample(torch.softmax(acc, dim=-1), state["hits"].shape[1], generator)
            state, rows = G.beam_step(state, log_probs, cur_len, g, sampled)
            cur_len += 1
            if past is not None:
                past = _reorder(past, rows.long())
            if not bool(G.beam_continues(state, g)):
                best, generated = G.beam_result(state, g)
                return best[:, : g.prompt_len + int(generated.max())]
            tokens = state["running"].reshape(-1, g.max_length)[:, :cur_len]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)


def seeded_generator(seed: int | None, device: torch.device, generator: Any = None) -> torch.Generator | None:
    """A generator for sampling: ``generator`` itself, or one from ``seed`` (None: torch's global one)."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise fail(InputError, "generator", "a torch.Generator (or None; seed= makes one)", generator)
        if seed is not None:
            raise fail(InputError, "seed", "None when a generator is given", repr(seed))
        return generator
    if seed is None:
        return None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise fail(InputError, "seed", "an integer (or None)", repr(seed))
    return torch.Generator(device=device).manual_seed(seed)
