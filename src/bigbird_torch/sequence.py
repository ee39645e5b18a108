"""Sequence parallelism in torch: one example's blocks over the ranks of a process group.

The core plans the exchange and runs the per-shard attention (``bigbird_core.sequence``); this module gives it
torch.distributed's collectives: one ``all_to_all_single`` with exact split sizes for the key/value tiles (no
padding is sent), all-reduces for the global rows' softmax. Both are the autograd-aware collectives of
``torch.distributed.nn``, so the backward sends each tile's gradient back to its owner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.distributed as dist

import torch
from bigbird_core import outputs as O
from bigbird_core import sequence as core
from bigbird_core.errors import BigBirdError, InputError, fail
from bigbird_core.head_specs import BASE_HEAD
from bigbird_core.recipe import prepare_call
from bigbird_core.sequence import SequenceShards, sequence_layout, sequence_shards  # noqa: F401  (re-exported)


class _AllToAll(torch.autograd.Function):
    """``all_to_all_single`` along dim 0 with exact splits; its gradient is the reverse exchange."""

    @staticmethod
    def forward(ctx, x, send_splits, recv_splits, group):
        ctx.splits, ctx.group = (send_splits, recv_splits), group
        out = x.new_empty((sum(recv_splits),) + tuple(x.shape[1:]))
        dist.all_to_all_single(out, x.contiguous(), recv_splits, send_splits, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        send_splits, recv_splits = ctx.splits
        back = grad.new_empty((sum(send_splits),) + tuple(grad.shape[1:]))
        dist.all_to_all_single(back, grad.contiguous(), send_splits, recv_splits, group=ctx.group)
        return back, None, None, None


class _AllReduceSum(torch.autograd.Function):
    """The sum over ranks; every rank's loss uses it, so the gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class _Comm:
    """The collectives of rank ``rank`` of ``group`` for one layer's exchange."""

    def __init__(self, shards: SequenceShards, layer: int, rank: int, group: dist.ProcessGroup | None):
        self.group = group
        send_index, self.send_splits, recv_index, self.recv_splits = shards.all_to_all(layer, rank)
        self.send_index, self.recv_index = torch.from_numpy(send_index), torch.from_numpy(recv_index)
        self.received = sum(shards.region_size)  # the received part of the store

    def exchange(self, tiles: torch.Tensor) -> torch.Tensor:  # (X, H*m, b, d) -> (X, R, b, d)
        out = tiles.index_select(1, self.send_index.to(tiles.device)).transpose(0, 1).contiguous()  # (sent, X, b, d)
        got = _AllToAll.apply(out, self.send_splits, self.recv_splits, self.group)  # (received, X, b, d)
        store = got.new_zeros((self.received,) + tuple(got.shape[1:]))
        store = store.index_copy(0, self.recv_index.to(got.device), got)  # (R, X, b, d)
        return store.transpose(0, 1)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return _AllReduceSum.apply(x, self.group)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.MAX, group=self.group)
        return x


def shard_arrays(shards: SequenceShards, layer: int, rank: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``layer``'s arrays of shard ``rank`` as tensors."""
    return {name: torch.tensor(a, device=device) for name, a in shards.local(layer, rank).items()}


def _checksum(x: torch.Tensor) -> int:
    """An order-sensitive checksum of an integer or 0/1 tensor, on its device (one value comes back)."""
    flat = x.reshape(-1).to(torch.float64)
    weights = torch.arange(1, flat.numel() + 1, device=flat.device, dtype=torch.float64).remainder(9973) + 1
    return int(torch.sum(flat * weights).item()) & ((1 << 52) - 1)


def agree(group: dist.ProcessGroup | None, *items: tuple[str, int], refused: Exception | None = None) -> None:
    """Every rank of ``group`` holds the same ``items`` (name, integer), checked with two all-reduces (max and min
    of the values): on a difference every rank raises an InputError naming what differs, none hangs. ``refused``:
    this rank's own error, raised after the collectives (the other ranks then see a difference)."""
    values = torch.tensor([v for _, v in items] + [0 if refused is None else 1], dtype=torch.int64)
    items = (*items, ("a call that every rank accepts", 0))
    high, low = values.clone(), values.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=group)
    dist.all_reduce(low, op=dist.ReduceOp.MIN, group=group)
    if refused is not None:
        raise refused
    differ = [name for (name, _), h, lo in zip(items, high.tolist(), low.tolist(), strict=True) if h != lo]
    if differ:
        raise fail(InputError, "sequence parallelism", "the same call on every rank", f"ranks that differ in "
                   f"{', '.join(differ)}")  # fmt: skip


def sequence_parallel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                                shards: SequenceShards, layer: int, group: dist.ProcessGroup | None = None, *,
                                agreed: bool = False) -> torch.Tensor:  # fmt: skip
    """``layer``'s block-sparse attention of this rank's blocks, the sequence split over ``group``'s ranks.

    Args:
        q, k, v: ``(batch, heads, m * b, d)``: the blocks of this rank (rank ``p`` holds blocks ``p*m .. p*m+m-1``
            of the padded sequence, ``m = n / world size``).
        mask: ``(batch, L)``: the attention mask of the whole padded sequence (every rank holds it).
        shards: ``sequence_shards(layout, world size)``; group: the process group (default: the world).
        agreed: the ranks already agreed on the call (``sequence_parallel_forward`` does, once per call); else
            they agree on the plan, the shapes and the mask first (:func:`agree`: two small all-reduces).

    Returns:
        this rank's context ``(batch, heads, m * b, d)``, equal to its rows of the one-process attention.

    Example:
        >>> shards = sequence_shards(layout, dist.get_world_size())
        >>> ctx = sequence_parallel_attention(q_mine, k_mine, v_mine, mask, shards, layer=0)
    """
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if world != shards.shards:
        raise fail(InputError, "shards", f"a plan for the group's {world} ranks", f"a plan for {shards.shards} shards")
    layer = shards.check_call(q, k, v, mask, layer, shards.blocks_per_shard * shards.block_size)
    if not agreed:
        agree(group, ("the plan", shards.digest()), ("the shapes", hash((tuple(q.shape), tuple(mask.shape))) >> 2),
              ("the attention mask", _checksum(mask)))  # fmt: skip
    local = shard_arrays(shards, layer, rank, q.device)
    return core.shard_attention(q, k, v, mask, _Comm(shards, layer, rank, group), **local)


def sequence_parallel_forward(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                              token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None, *,
                              group: dist.ProcessGroup | None = None, plan: Any = None,
                              ) -> Any:  # fmt: skip
    """The model's body on one long sequence split over ``group``'s ranks: every rank embeds, projects and runs the
    feed-forward of its own blocks only; the attention exchanges the tiles its rows need.

    Every rank passes the whole inputs (ids and masks are small; the core pads and plans them identically on every
    rank) and gets back its own tokens.

    Args:
        model: a ``BigBirdModel`` or any head (its body runs); ``model.training`` picks the plan and dropout.
        input_ids, attention_mask, token_type_ids, position_ids: ``(batch, L)``, the same on every rank; the padded
            sequence's blocks must divide evenly over the ranks.
        group: the process group over the sequence (default: the world).
        plan: a plan made on the host (default: the config's eval or training plan), e.g. a fresh
            ``bigbird_core.seeded_plan`` per step.

    Returns:
        ``BaseModelOutputWithPoolingAndCrossAttentions``: ``last_hidden_state`` ``(batch, m * b, hidden)`` is this
        rank's tokens ``rank * m * b ..`` of the padded sequence (those past the input length are padding);
        ``pooler_output`` is the model's (rank 0's first token), on every rank.

    Example:
        >>> out = sequence_parallel_forward(model, ids, mask)  # under torchrun, after init_process_group
        >>> out.last_hidden_state.shape  # (batch, L / world size, hidden)
    """
    body = model.body if hasattr(model, "body") else model
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    # every rank must hold the same call: agreed with two small all-reduces before anything is exchanged (ranks
    # that differ would return wrong numbers, or abort inside gloo on mismatched exchanges), and a call refused
    # on one rank is refused on all (the others would wait for it forever)
    refused = None
    try:
        prep = prepare_call(body.config, BASE_HEAD, dtype=body.embeddings.LayerNorm.weight.dtype,
                            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, plan=plan, training=body.training)  # fmt: skip
        shards = sequence_shards(sequence_layout(prep), world)
        items = [("the input length", int(input_ids.shape[-1])), ("the batch", int(input_ids.shape[0])),
                 ("the input ids", _checksum(prep.input_ids)), ("the attention mask", _checksum(prep.attention_mask)),
                 ("the plan", shards.digest())]  # fmt: skip
    except BigBirdError as exc:
        refused = exc
        items = [(name, -1) for name in ("the input length", "the batch", "the input ids", "the attention mask",
                                         "the plan")]  # fmt: skip
    agree(group, *items, refused=refused)
    own = shards.blocks_per_shard * shards.block_size
    mine = slice(rank * own, (rank + 1) * own)
    prep = dataclasses.replace(prep, input_ids=prep.input_ids[:, mine], token_type_ids=prep.token_type_ids[:, mine],
                               position_ids=prep.position_ids[:, mine])  # the whole mask stays  # fmt: skip
    from .model import BigBirdBody  # (the body's attention calls this module)

    out = BigBirdBody.forward(body, prep, sequence=(shards, group))
    pooled = out.pooled
    if pooled is not None:  # rank 0's first token is the sequence's
        pooled = _AllReduceSum.apply(pooled * (1.0 if rank == 0 else 0.0), group)
    return O.BaseModelOutputWithPoolingAndCrossAttentions(last_hidden_state=out.sequence_output,
                                                          pooler_output=pooled)  # fmt: skip
