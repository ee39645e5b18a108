"""The PyTorch backend: ``BigBirdModel`` and the seven heads with transformers' API.

Example:
    >>> import torch, bigbird_torch as bb
    >>> model = bb.BigBirdForQuestionAnswering.from_pretrained("path/to/checkpoint").eval()
    >>> out = model(input_ids=torch.tensor(ids))
    >>> out.start_logits.shape
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import torch
from bigbird_core.cache import cache_length
from bigbird_core.checkpoint import write_checkpoint
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import InputError, fail
from bigbird_core.generation import generation
from bigbird_core.hub import HUB_ARGS, load_pretrained, shard_bytes
from bigbird_core.recipe import PreparedCall, finish_call, prepare_call
from bigbird_core.validate import LABEL_ARGS, model_config
from bigbird_core.weights import LoadReport, init_params
from torch import nn

from .attention import check_kernel
from .convert import to_numpy
from .generation import generate as decode
from .generation import seeded_generator
from .model import ACTIVATIONS, COMPILE_MODES, BigBirdBody, BigBirdIntermediate, BigBirdResidualOutput

# the core's recipe runs outside torch.compile graphs (NumPy planning; eager, as the decorator's graph break);
# torch.export (non-strict) traces through it, with the value checks skipped for fake tensors
_prepare_call = torch.compiler.disable(prepare_call)


class BigBirdPreTrainedModel(nn.Module):
    """Shared behaviour: construction from a config, checkpoints, gradient checkpointing."""

    head: str = ""
    default_pooler = True

    def __init__(
        self, config: BigBirdConfig, *, add_pooling_layer: bool | None = None, seed: int | None = None,
        _init: bool = True,
    ) -> None:  # fmt: skip
        nn.Module.__init__(self)
        self.config = config = model_config(config, self.head)
        self.add_pooling_layer = self.default_pooler if add_pooling_layer is None else add_pooling_layer
        self.load_report = LoadReport((), (), ())
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

    def save_pretrained(self, save_directory: str | os.PathLike[str], safe_serialization: bool = True,
                        max_shard_size: int | str | None = None, push_to_hub: bool = False) -> None:  # fmt: skip
        """Write ``config.json`` (with the parameters' ``dtype``) and ``model.safetensors`` (or
        ``pytorch_model.bin``) atomically; dtypes kept. Every weight file already in the folder (any format,
        any shard) is replaced; other files stay.

        ``max_shard_size`` (bytes, or a size such as ``"5GB"``) splits safetensors into shards with
        ``model.safetensors.index.json``. ``push_to_hub`` is not done here: save, then
        ``huggingface_hub.upload_folder(repo_id=..., folder_path=save_directory)``.
        """
        if push_to_hub:
            raise fail(InputError, "push_to_hub", "False (save, then huggingface_hub.upload_folder(repo_id=..., "
                       "folder_path=...))", "True")  # fmt: skip
        fmt = "safetensors" if safe_serialization else "torch-bin"
        write_checkpoint(os.fspath(save_directory), self.config, to_numpy(self.state_dict()), self.head, fmt,
                         shard_bytes(max_shard_size))  # fmt: skip

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
        return self if isinstance(self, BigBirdModel) else self.bert

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
        """Choose this model's block-sparse kernel (see ``bigbird_torch.attention.KERNELS``); returns the
        previous choice."""
        previous, self.body.block_sparse_kernel = self.body.block_sparse_kernel, check_kernel(name)
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
        labels = {k: args.pop(k) for k in LABEL_ARGS[self.head] if k in args}
        ref = args.get("input_ids") if args.get("input_ids") is not None else args.get("inputs_embeds")
        past_len, _ = cache_length(self.config, past, None if ref is None else ref.shape[0])
        prep = _prepare_call(self.config, self.head, dtype=self.dtype, training=self.training, labels=labels,
                            past_len=past_len, **args)  # fmt: skip
        body = BigBirdBody.forward(self.body, prep, past)
        logits, nsp = self._head(prep, body)
        return finish_call(prep, body, logits, nsp)

    def _head(self, prep: PreparedCall, body: dict[str, Any]) -> tuple[Any, Any]:
        """The head's logits (and next-sentence logits) from the body's outputs."""
        return None, None


_DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16, "half": torch.float16,
           "bfloat16": torch.bfloat16, "float64": torch.float64, "double": torch.float64}  # fmt: skip


def torch_dtype_of(dtype: Any, stored: str | None) -> torch.dtype:
    """The torch dtype ``from_pretrained`` loads into: given, named, ``"auto"`` (config.json's), or float32."""
    if dtype is None:
        return torch.float32
    if dtype == "auto":
        return _DTYPES.get(str(stored), torch.float32)
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype.replace("torch.", "") in _DTYPES:
        return _DTYPES[dtype.replace("torch.", "")]
    raise fail(InputError, "dtype", 'a floating torch dtype, its name or "auto"', repr(dtype))


class BigBirdModel(BigBirdPreTrainedModel, BigBirdBody):
    """The encoder with its pooler; parameters have no ``bert.`` prefix."""

    head = "BigBirdModel"

    def __init__(
        self,
        config: BigBirdConfig,
        add_pooling_layer: bool = True,
        *,
        seed: int | None = None,
        _init: bool = True,
    ) -> None:
        BigBirdPreTrainedModel.__init__(
            self, config, add_pooling_layer=add_pooling_layer, seed=seed, _init=_init
        )

    def _build(self) -> None:
        self._init_body(self.config, self.add_pooling_layer)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                plan=None):  # fmt: skip
        return self._forward(locals())


class BigBirdPredictionHeadTransform(nn.Module):
    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class BigBirdLMPredictionHead(nn.Module):
    """MLM logits; the decoder weight is the word embedding matrix unless ``tie_word_embeddings`` is off."""

    def __init__(self, config: BigBirdConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.transform = BigBirdPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self._words = [word_embeddings]  # a list, so the tied matrix is not registered twice
        if not config.tie_word_embeddings:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.decoder.weight if hasattr(self, "decoder") else self._words[0].weight
        return nn.functional.linear(self.transform(x), weight, self.bias)  # (batch, seq, vocab)


class BigBirdOnlyMLMHead(nn.Module):
    def __init__(self, config: BigBirdConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.predictions = BigBirdLMPredictionHead(config, word_embeddings)


class BigBirdPreTrainingHeads(BigBirdOnlyMLMHead):
    def __init__(self, config: BigBirdConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__(config, word_embeddings)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


class _WithBody(BigBirdPreTrainedModel):
    def _build(self) -> None:
        self.bert = BigBirdBody(self.config, self.add_pooling_layer)
        self._build_head()

    def _build_head(self) -> None:
        raise NotImplementedError


class BigBirdForPreTraining(_WithBody):
    head = "BigBirdForPreTraining"

    def _build_head(self) -> None:
        self.cls = BigBirdPreTrainingHeads(self.config, self.bert.embeddings.word_embeddings)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.cls.predictions(prep.cut(body["sequence_output"])), self.cls.seq_relationship(body["pooled"])


class BigBirdForMaskedLM(_WithBody):
    head = "BigBirdForMaskedLM"

    def _build_head(self) -> None:
        self.cls = BigBirdOnlyMLMHead(self.config, self.bert.embeddings.word_embeddings)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.cls.predictions(prep.cut(body["sequence_output"])), None


class BigBirdForCausalLM(_WithBody):
    """Causal LM. With ``config.is_decoder`` the attention is causal full attention, with a key/value cache
    (``use_cache``/``past_key_values``, ``bigbird_core.cache``) for incremental decoding and :meth:`generate`;
    with ``config.add_cross_attention`` every layer also attends to ``encoder_hidden_states``."""

    head = "BigBirdForCausalLM"

    def _build_head(self) -> None:
        self.cls = BigBirdOnlyMLMHead(self.config, self.bert.embeddings.word_embeddings)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.cls.predictions(prep.cut(body["sequence_output"])), None

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_length: int | None = None, max_new_tokens: int | None = None, eos_token_id: Any = None,
                 pad_token_id: int | None = None, do_sample: bool = False, temperature: float = 1.0, top_k: int = 50,
                 top_p: float = 1.0, num_beams: int = 1, length_penalty: float = 1.0,
                 early_stopping: bool | str = False, encoder_hidden_states: torch.Tensor | None = None,
                 encoder_attention_mask: torch.Tensor | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:  # fmt: skip
        """Decode from ``input_ids`` with transformers' ``generate`` rules and defaults: greedy, sampling
        (``do_sample`` with ``temperature``, ``top_k``, ``top_p``; ``seed`` or ``generator`` for reproducible draws)
        or beam search (``num_beams``, ``length_penalty``, ``early_stopping``), until ``max_length`` tokens in all
        (20 by default) or ``max_new_tokens`` new ones, or every sequence has ended (``eos_token_id``; finished
        sequences are filled with ``pad_token_id``). A left-padded prompt's positions follow its mask. With
        cross-attention, ``encoder_hidden_states`` / ``encoder_attention_mask`` are the encoder's.

        Returns:
            ``(batch, length)``: the prompt and the generated tokens.
        """
        g = generation(self.config, int(input_ids.shape[-1]), max_length=max_length, max_new_tokens=max_new_tokens,
                       eos_token_id=eos_token_id, pad_token_id=pad_token_id, do_sample=do_sample,
                       temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams,
                       length_penalty=length_penalty, early_stopping=early_stopping)  # fmt: skip
        if generator is None:
            generator = seeded_generator(seed, input_ids.device)
        return decode(self, input_ids, attention_mask, g, encoder_hidden_states=encoder_hidden_states,
                      encoder_attention_mask=encoder_attention_mask, generator=generator, use_cache=use_cache)


class BigBirdClassificationHead(nn.Module):
    """dropout, dense, activation, dropout, out_proj on the first token."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.effective_classifier_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x[:, 0])  # (batch, hidden)
        return self.out_proj(self.dropout(self.act(self.dense(x))))


class BigBirdForSequenceClassification(_WithBody):
    head = "BigBirdForSequenceClassification"

    def _build_head(self) -> None:
        self.classifier = BigBirdClassificationHead(self.config)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.classifier(body["sequence_output"]), None


class BigBirdForMultipleChoice(_WithBody):
    """Inputs ``(batch, num_choices, seq)``; logits ``(batch, num_choices)``."""

    head = "BigBirdForMultipleChoice"

    def _build_head(self) -> None:
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = nn.Linear(self.config.hidden_size, 1)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.classifier(self.dropout(body["pooled"])), None  # (batch * choices, 1)


class BigBirdForTokenClassification(_WithBody):
    head = "BigBirdForTokenClassification"

    def _build_head(self) -> None:
        self.dropout = nn.Dropout(self.config.effective_classifier_dropout)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.classifier(self.dropout(prep.cut(body["sequence_output"]))), None  # (batch, seq, labels)


class BigBirdForQuestionAnsweringHead(nn.Module):
    """dropout, intermediate, output (dense, dropout, LayerNorm with residual), qa_outputs."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.intermediate = BigBirdIntermediate(config)
        self.output = BigBirdResidualOutput(config, config.intermediate_size)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.output(self.intermediate(self.dropout(x)), x)
        return self.qa_outputs(h)  # (batch, seq, 2)


class BigBirdForQuestionAnswering(_WithBody):
    """Span extraction; ``question_lengths`` defaults to the first [SEP] + 1 (the core's QA rule)."""

    head = "BigBirdForQuestionAnswering"
    default_pooler = False

    def _build_head(self) -> None:
        self.qa_classifier = BigBirdForQuestionAnsweringHead(self.config)

    def forward(self, input_ids=None, attention_mask=None, question_lengths=None, token_type_ids=None,
                position_ids=None, head_mask=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def _head(self, prep, body):
        return self.qa_classifier(prep.cut(body["sequence_output"])), None  # (batch, seq, 2)


MODEL_CLASSES = {cls.head: cls for cls in (
    BigBirdModel, BigBirdForPreTraining, BigBirdForMaskedLM, BigBirdForCausalLM, BigBirdForSequenceClassification,
    BigBirdForMultipleChoice, BigBirdForTokenClassification, BigBirdForQuestionAnswering)}  # fmt: skip

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend)."""
    model = MODEL_CLASSES[head].from_pretrained(directory, torch_dtype=_DTYPES[dtype], **config_overrides)
    model.train(train)

    def run(**inputs):
        with torch.no_grad():
            return model(**{k: asarray(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()})

    return run


def asarray(x: Any) -> torch.Tensor:
    """A torch tensor of ``x`` (the same function exists in every backend)."""
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
