"""The transformers-style wrapper behaviour of every PyTorch head: construction from a config, checkpoints,
gradient checkpointing, the kernel choice and the forward call through the core's recipe.

The head classes themselves (``bigbird_torch.heads``) add their modules and ``head_logits``; a class with
``head = "<name>"`` is this backend's class of that registry entry (:func:`model_class`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import torch
from bigbird_core.checkpoint import write_checkpoint
from bigbird_core.config import BigBirdConfig
from bigbird_core.convert import check_state_dict
from bigbird_core.errors import InputError, fail
from bigbird_core.hub import HUB_ARGS, load_pretrained, shard_bytes
from bigbird_core.kernels import check_kernel
from bigbird_core.recipe import BodyOutput, PreparedCall, finish_call
from bigbird_core.registry import head_spec, registered_class
from bigbird_core.validate import model_config
from bigbird_core.weights import LoadReport, init_params
from torch import nn

from .convert import to_canonical
from .model import COMPILE_MODES, BigBirdBody, prepare
from .pytrees import register_output

MODEL_CLASSES: dict[str, type] = {}  # head name -> class, filled as the head classes are defined

# dtype names from_pretrained accepts (transformers' and torch's spellings)
DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "float64": torch.float64, "double": torch.float64}  # fmt: skip


class BigBirdPreTrainedModel(nn.Module):
    """Shared behaviour: construction from a config, checkpoints, gradient checkpointing."""

    head: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("head"):  # a head's class: this backend's model class of that registry entry
            MODEL_CLASSES[cls.head] = cls

    def __init__(
        self, config: BigBirdConfig, *, add_pooling_layer: bool | None = None, seed: int | None = None,
        _init: bool = True,
    ) -> None:  # fmt: skip
        nn.Module.__init__(self)
        self.config = config = model_config(config, self.head)
        self.add_pooling_layer = head_spec(self.head).pooler if add_pooling_layer is None else add_pooling_layer
        self.load_report = LoadReport((), (), ())
        register_output(head_spec(self.head).output)  # torch.export returns it
        self._build()
        if not _init or next(self.parameters()).is_meta:  # from_pretrained loads every parameter itself;
            return  # under torch.device("meta") there are no values to draw (to_empty, then load)
        if seed is None:  # follow torch's RNG, as nn.Module initialisation does
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self._load_numpy(init_params(config, self.head, seed=seed, add_pooling_layer=self.add_pooling_layer))

    def _build(self) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------- weights
    def _load_numpy(self, params: dict[str, np.ndarray]) -> None:
        ref = next(self.parameters())
        state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype=ref.dtype, device=ref.device)
                 for k, v in params.items()}  # fmt: skip
        self.load_state_dict(state, strict=True)

    # transformers' keywords that from_pretrained accepts (besides config fields, which update the config)
    LOAD_ARGS = ("config", "dtype", "torch_dtype", "seed", "add_pooling_layer", *HUB_ARGS, "use_safetensors",
                 "ignore_mismatched_sizes", "device_map", "low_cpu_mem_usage", "attn_implementation")  # fmt: skip

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *, config: Any = None,
                        dtype: Any = None, torch_dtype: Any = None, seed: int = 0,
                        add_pooling_layer: bool | None = None, revision: str | None = None,
                        cache_dir: str | os.PathLike[str] | None = None, local_files_only: bool = False,
                        token: Any = None, force_download: bool = False, subfolder: str = "",
                        use_safetensors: bool | None = None, ignore_mismatched_sizes: bool = False,
                        device_map: Any = None, low_cpu_mem_usage: bool | None = None,
                        attn_implementation: str | None = None, **config_overrides: Any):  # fmt: skip
        """Load a checkpoint: a local directory (safetensors, sharded, or pytorch_model.bin) or a Hugging
        Face Hub id through the local cache (``revision``, ``cache_dir``, ``local_files_only``, ``token``,
        ``force_download``, ``subfolder`` as in transformers; offline with ``HF_HUB_OFFLINE=1``).

        ``dtype`` (or ``torch_dtype``): a torch dtype, its name, or ``"auto"`` for the dtype config.json
        records; float32 by default, as transformers 4.x. ``config``: a config (ours, transformers', a dict)
        used instead of the checkpoint's; other keywords naming config fields update it.
        ``ignore_mismatched_sizes``: mis-shaped weights are initialised instead of refused. ``device_map``: a
        device (``"cpu"``, ``"cuda:0"``, a ``torch.device``) to move the model to. ``attn_implementation``:
        only ``"eager"`` (BigBird's attention is the library's own). Keys of another head load into the
        shared body; the rest is initialised from ``seed`` and listed in ``model.load_report``.
        """
        if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
            raise fail(InputError, "torch_dtype", f"the same as dtype={dtype!r} (torch_dtype is its old name)",
                       repr(torch_dtype))  # fmt: skip
        if attn_implementation not in (None, "eager"):
            raise fail(InputError, "attn_implementation", '"eager" (BigBird\'s attention is the library\'s own)',
                       repr(attn_implementation))  # fmt: skip
        if device_map is not None and not isinstance(device_map, str | torch.device) or device_map == "auto":
            raise fail(InputError, "device_map", 'one device ("cpu", "cuda:0" or a torch.device)', repr(device_map))
        config, params, report, stored = load_pretrained(
            pretrained_model_name_or_path, cls.head, prefer=(), config=config, use_safetensors=use_safetensors,
            seed=seed, add_pooling_layer=add_pooling_layer, ignore_mismatched_sizes=ignore_mismatched_sizes,
            overrides=config_overrides, accepted=cls.LOAD_ARGS, revision=revision, cache_dir=cache_dir,
            local_files_only=local_files_only, token=token, force_download=force_download, subfolder=subfolder,
        )  # fmt: skip
        with torch.device("meta"):  # no memory and no random init for weights that are about to be loaded
            model = cls(config, add_pooling_layer=add_pooling_layer, _init=False)
        # writable and contiguous (memory-mapped checkpoint arrays are read-only): the model owns its weights
        tensors = {k: torch.from_numpy(np.require(v, requirements=["C", "W"])) for k, v in params.items()}
        model.load_state_dict(tensors, strict=True, assign=True)
        model.load_report = report
        target = torch_dtype_of(dtype if dtype is not None else torch_dtype, stored)
        if target != torch.float32:
            model.to(target)
        if device_map is not None:
            model.to(device_map)
        return model.eval()

    def save_pretrained(self, save_directory: str | os.PathLike[str], is_main_process: bool = True,
                        state_dict: dict[str, torch.Tensor] | None = None, save_function: Any = None,
                        push_to_hub: bool = False, max_shard_size: int | str | None = None,
                        safe_serialization: bool = True) -> None:  # fmt: skip
        """Write ``config.json`` (with the parameters' ``dtype``) and ``model.safetensors`` (or
        ``pytorch_model.bin``) atomically; dtypes kept. Every weight file already in the folder (any format,
        any shard) is replaced; other files stay.

        transformers' keywords, with their meaning (accelerate's documented call works as written):
        ``is_main_process`` False writes nothing (the other ranks of a distributed run); ``state_dict`` is saved
        instead of the model's own (accelerate's ``get_state_dict``: gathered and unwrapped), checked against the
        head's weight table; ``save_function`` is accepted and not needed (our writer is atomic and
        rank-agnostic). ``max_shard_size`` (bytes, or a size such as ``"5GB"``) splits safetensors into shards
        with ``model.safetensors.index.json``. ``push_to_hub`` is not done here: save, then
        ``huggingface_hub.upload_folder(repo_id=..., folder_path=save_directory)``.
        """
        if push_to_hub:
            raise fail(InputError, "push_to_hub", "False (save, then huggingface_hub.upload_folder(repo_id=..., "
                       "folder_path=...))", "True")  # fmt: skip
        if save_function is not None and not callable(save_function):
            raise fail(InputError, "save_function", "a callable (or None)", save_function)
        if not is_main_process:
            return
        if state_dict is not None and not isinstance(state_dict, dict):
            raise fail(InputError, "state_dict", "a mapping of names to tensors (or None)", state_dict)
        state = to_canonical(self.state_dict() if state_dict is None else state_dict)
        check_state_dict(self.config, self.head, state, self.add_pooling_layer)
        fmt = "safetensors" if safe_serialization else "torch-bin"
        write_checkpoint(os.fspath(save_directory), self.config, state, self.head, fmt, shard_bytes(max_shard_size))

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each encoder layer in the backward pass (train mode) to save memory.

        ``gradient_checkpointing_kwargs`` (what transformers' Trainer passes) go to
        ``torch.utils.checkpoint.checkpoint``; ``use_reentrant`` defaults to False.
        """
        if not isinstance(gradient_checkpointing_kwargs, dict | None):
            raise fail(InputError, "gradient_checkpointing_kwargs", "a dict or None",
                       type(gradient_checkpointing_kwargs).__name__)  # fmt: skip
        kwargs = dict(gradient_checkpointing_kwargs or {})
        kwargs.setdefault("use_reentrant", False)
        self.body.encoder.gradient_checkpointing = True
        self.body.encoder.checkpoint_kwargs = kwargs

    def gradient_checkpointing_disable(self) -> None:
        self.body.encoder.gradient_checkpointing = False

    @property
    def body(self) -> BigBirdBody:
        return self if isinstance(self, BigBirdBody) else self.bert

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (what transformers' pipelines move inputs to)."""
        return next(self.parameters()).device

    main_input_name = "input_ids"
    supports_gradient_checkpointing = True

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.body.encoder.gradient_checkpointing

    def can_generate(self) -> bool:
        """Whether this head has ``generate`` (the causal LM)."""
        return callable(getattr(self, "generate", None))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_block_sparse_kernel(self, name: str) -> str:
        """Choose this model's block-sparse kernel by the core's name (``bigbird_core.kernels.KERNELS``:
        "auto", "gather", "flex", "flex-bias"); returns the previous choice. The same method exists in Flax."""
        previous, self.body.block_sparse_kernel = self.body.block_sparse_kernel, check_kernel(name, "torch")
        return previous


    def set_compiled_layers(self, mode: str) -> str:
        """Run every encoder layer's dense parts compiled (see ``bigbird_torch.model.COMPILE_MODES``):
        ``"default"``, ``"max-autotune-no-cudagraphs"``, ``"reduce-overhead"`` (CUDA graphs) or ``"off"``;
        returns the previous mode. Each input shape compiles once (shared by every layer and model)."""
        if mode not in COMPILE_MODES:
            raise fail(InputError, "mode", f"one of {', '.join(COMPILE_MODES)}", repr(mode))
        previous, self.body.compiled_layers = self.body.compiled_layers, mode
        return previous

    # ---------------------------------------------------------------------------------- forward
    def _forward(self, args: dict[str, Any]) -> Any:
        """One forward call: the core's recipe, this backend's body and head, the core's head rules."""
        args = {k: v for k, v in args.items() if k not in ("self", "__class__")}
        past = args.pop("past_key_values", None)
        prep = prepare(self, self.head, past, **args)
        body = BigBirdBody.forward(self.body, prep, past)
        return finish_call(prep, body, *self.head_logits(prep, body))

    def forward(self, **inputs: Any) -> Any:
        """The forward call with the keywords of the head's transformers class (the built-in heads spell
        them out); labels are the head's registry entry's."""
        return self._forward(inputs)

    def head_logits(self, prep: PreparedCall, body: BodyOutput) -> tuple[Any, ...]:
        """The head's outputs from the body's (see ``HeadSpec.fields``): ``(logits,)`` for most heads."""
        return ()


def torch_dtype_of(dtype: Any, stored: str | None) -> torch.dtype:
    """The torch dtype ``from_pretrained`` loads into: given, named, ``"auto"`` (config.json's), or float32."""
    if dtype is None:
        return torch.float32
    if dtype == "auto":
        return DTYPES.get(str(stored), torch.float32)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype.replace("torch.", "") in DTYPES:
        return DTYPES[dtype.replace("torch.", "")]
    raise fail(InputError, "dtype", 'a floating torch dtype, its name or "auto"', repr(dtype))


def model_class(head: str) -> type[BigBirdPreTrainedModel]:
    """This backend's class of ``head`` (a registered head whose class is defined)."""
    return registered_class(MODEL_CLASSES, head, "torch")


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend)."""
    model = model_class(head).from_pretrained(directory, torch_dtype=torch_dtype_of(dtype, None), **config_overrides)
    model.train(train)

    def run(**inputs):
        with torch.no_grad():
            return model(**{k: asarray(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()})

    return run


def asarray(x: Any) -> torch.Tensor:
    """A torch tensor of ``x`` (the same function exists in every backend)."""
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
