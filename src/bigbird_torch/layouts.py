"""The core's layouts as tensors on a device, owned by the model that uses them.

``LayoutTensors`` holds one :class:`bigbird_core.recipe.PlannedLayout` on one device (key blocks, merged slots,
FlexAttention block masks). ``ModelLayouts`` is a model's bounded cache of them: nothing is shared between
models, and nothing is stored while a program is traced (``torch.export``, ONNX, ``torch.compile``,
``torch.jit``): tensors made there are the trace's constants, and an eager call must never see them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

import torch
from bigbird_core.layout import NUM_STATIC_SLOTS, BlockLayout, key_block_lists
from bigbird_core.recipe import LAYOUT_CACHE_SIZE, PlannedLayout


@dataclass(frozen=True)
class LayoutTensors:
    """The core's :class:`PlannedLayout` as tensors on one device (see :class:`ModelLayouts`)."""

    planned: PlannedLayout
    key_blocks: torch.Tensor  # (layers, heads, n-2, S) int64

    @property
    def layout(self) -> BlockLayout:
        return self.planned.layout

    @classmethod
    def build(cls, layout: BlockLayout | PlannedLayout, device: torch.device) -> LayoutTensors:
        """Tensors of a core layout on ``device`` (uncached; models keep theirs in :class:`ModelLayouts`)."""
        if isinstance(layout, BlockLayout):
            layout = PlannedLayout(layout.key_blocks[..., NUM_STATIC_SLOTS:], layout)
        blocks = layout.layout
        return cls(
            layout,
            torch.as_tensor(np.asarray(blocks.key_blocks, np.int64), device=device),
        )

    @property
    def compact(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The core's merged slots: key blocks ``(layers, heads, n-2, S')`` and slot bias (float32)."""
        if "_compact" not in self.__dict__:
            c = self.planned.compact
            device = self.key_blocks.device
            blocks = torch.as_tensor(np.asarray(c.key_blocks, np.int64), device=device)
            bias = torch.as_tensor(np.asarray(c.slot_bias, np.float32), device=device)
            object.__setattr__(self, "_compact", (blocks, bias))
        return self.__dict__["_compact"]

    def flex(self, layer: int, tiles: bool = False):
        """FlexAttention's ``BlockMask`` of ``layer``'s middle query blocks (1..n-2) against every key, and
        the ``(heads, n, n)`` float32 log-multiplicity bias (``None`` when no row repeats a block).

        With ``tiles``, the repeated-tile form: a key block that a row's softmax counts ``m`` times is listed
        ``m`` times and the bias is ``None``. The compiled forward kernel walks every listed tile, so this is
        exact without a per-score lookup; the eager implementation and the backward (which walks the
        mask's transposed, de-duplicated lists) are not, so it is for compiled inference only.

        Every listed block is a full block; off CUDA the mask's ``mask_mod`` states the same layout for the
        eager implementation.
        """
        cache = self.__dict__.setdefault("_flex", {})
        key = (layer, tiles)
        if key not in cache:
            from torch.nn.attention.flex_attention import BlockMask

            device, b = self.key_blocks.device, self.layout.block_size
            lists = key_block_lists(self.layout, layer, self.planned.compact)
            if tiles and not lists.repeats:
                cache[key] = self.flex(layer)
                return cache[key]
            counts, indices = (lists.tile_counts, lists.tile_indices) if tiles else (lists.counts, lists.indices)
            counts = torch.as_tensor(counts[:, 1:-1], device=device)[None]  # (1, H, n-2): any batch
            indices = torch.as_tensor(indices[:, 1:-1], device=device)[None]  # (1, H, n-2, n)
            allowed = torch.as_tensor(lists.allowed, device=device)

            def layout_mask(batch, head, q_idx, kv_idx):
                return allowed[head, q_idx // b + 1, kv_idx // b]

            # the compiled kernel visits only the listed (full) blocks and never calls mask_mod: one shared
            # mask_mod (the default) keeps every layer on one compiled kernel; the eager one needs the layout
            block_mask = BlockMask.from_kv_blocks(
                torch.zeros_like(counts), torch.zeros_like(indices), counts, indices, BLOCK_SIZE=b,
                mask_mod=None if device.type == "cuda" else layout_mask,
            )  # fmt: skip
            # without repeated blocks the bias is all zeros: no per-score table lookup (5.6x faster kernel)
            bias = torch.as_tensor(lists.bias, device=device) if lists.repeats and not tiles else None
            cache[key] = (block_mask, bias)
        return cache[key]


def tracing() -> bool:
    """Whether a program is being traced now (torch.export, ONNX export, torch.compile, torch.jit)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    if is_exporting is not None and is_exporting():
        return True
    from torch._guards import detect_fake_mode

    return detect_fake_mode() is not None


class ModelLayouts:
    """One model's layouts on its devices, per core layout object and device (the core caches those),
    bounded like the core's cache; never written while tracing."""

    def __init__(self, size: int = LAYOUT_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[int, str], tuple[PlannedLayout, LayoutTensors]] = OrderedDict()

    def get(self, planned: PlannedLayout, device: torch.device, trace: bool | None = None) -> LayoutTensors:
        """The tensors of ``planned`` on ``device``: cached for eager calls, made afresh (and not kept) while
        a program is traced (``trace`` None: detect it)."""
        if tracing() if trace is None else trace:
            return LayoutTensors.build(planned, device)
        key = (id(planned), str(device))
        hit = self._entries.get(key)
        if hit is not None and hit[0] is planned:
            self._entries.move_to_end(key)
            return hit[1]
        tensors = LayoutTensors.build(planned, device)
        self._entries[key] = (planned, tensors)  # the layout object is kept alive with its id
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return tensors

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
