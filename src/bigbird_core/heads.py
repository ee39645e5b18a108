"""The NumPy backend: ``BigBirdModel`` and the seven heads, with transformers' names and call signatures.

Inference-only reference: ``.train()`` switches the random-block plan to training's, but dropout is not
implemented here (train mode requires every dropout probability to be 0).

Example:
    >>> from bigbird_core import BigBirdConfig, BigBirdForMaskedLM
    >>> model = BigBirdForMaskedLM(BigBirdConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
    ...                                          intermediate_size=128, vocab_size=100))
    >>> model(input_ids=np.ones((1, 10), np.int64)).logits.shape
    (1, 10, 100)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .cache import cache_length
from .checkpoint import write_checkpoint
from .config import BigBirdConfig
from .errors import ConfigError, InputError, fail
from .hub import HUB_ARGS, load_pretrained, shard_bytes
from .model import run_body
from .numerics import act, layer_norm, linear
from .recipe import BodyOutput, PreparedCall, finish_call, prepare_call
from .registry import head_spec, registered_class
from .validate import model_config
from .weights import LoadReport, init_params, match_state_dict

MODEL_CLASSES: dict[str, type] = {}  # head name -> class, filled as the classes are defined


class BigBirdPreTrainedModel:
    """Shared behaviour of the NumPy models: parameters, modes, checkpoints."""

    head: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("head"):  # a head's class: the backend's model class of that registry entry
            MODEL_CLASSES[cls.head] = cls

    def __init__(self, config: BigBirdConfig, params: dict[str, np.ndarray] | None = None, *,
                 add_pooling_layer: bool | None = None, seed: int = 0, dtype: str = "float32") -> None:  # fmt: skip
        self.config = config = model_config(config, self.head)
        self.add_pooling_layer = head_spec(self.head).pooler if add_pooling_layer is None else add_pooling_layer
        if params is None:
            params = init_params(
                config, self.head, seed=seed, dtype=dtype, add_pooling_layer=self.add_pooling_layer
            )
            self.load_report = LoadReport((), (), ())
        else:
            params, self.load_report = match_state_dict(config, self.head, params, seed=seed,
                                                        add_pooling_layer=self.add_pooling_layer, warn=True)  # fmt: skip
        self.params = params
        self.training = False

    # ------------------------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> BigBirdPreTrainedModel:
        self.training = bool(mode)
        return self

    def eval(self) -> BigBirdPreTrainedModel:
        return self.train(False)

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.params.values())).dtype

    def astype(self, dtype: str) -> BigBirdPreTrainedModel:
        """Cast every parameter to ``dtype`` (float32 or float64) in place; returns self."""
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise fail(InputError, "dtype", "float32 or float64 for the NumPy backend", str(dtype))
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    # ------------------------------------------------------------------------------- checkpoints
    LOAD_ARGS = ("config", "dtype", "seed", "add_pooling_layer", *HUB_ARGS, "use_safetensors",
                 "ignore_mismatched_sizes")  # fmt: skip

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *, config: Any = None,
                        dtype: str | None = None, add_pooling_layer: bool | None = None, seed: int = 0,
                        revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        local_files_only: bool = False, token: Any = None, force_download: bool = False,
                        subfolder: str = "", use_safetensors: bool | None = None,
                        ignore_mismatched_sizes: bool = False, **config_overrides: Any):  # fmt: skip
        """Load a checkpoint (safetensors, sharded, or pytorch_model.bin): a local directory or a Hugging
        Face Hub id through the local cache, keywords as the torch backend's; float32 unless ``dtype``.

        Keys of another head load into the shared body; the rest is initialised from ``seed`` and listed
        in ``model.load_report``.
        """
        config, params, report, _ = load_pretrained(
            pretrained_model_name_or_path, cls.head, prefer=(), config=config, use_safetensors=use_safetensors,
            seed=seed, add_pooling_layer=add_pooling_layer, ignore_mismatched_sizes=ignore_mismatched_sizes,
            overrides=config_overrides, accepted=cls.LOAD_ARGS, revision=revision, cache_dir=cache_dir,
            local_files_only=local_files_only, token=token, force_download=force_download, subfolder=subfolder,
        )  # fmt: skip
        model = cls(config, params, add_pooling_layer=add_pooling_layer, seed=seed)
        model.load_report = report
        return model.astype(dtype) if dtype is not None else model

    def save_pretrained(self, save_directory: str | os.PathLike[str], max_shard_size: int | str | None = None,
                        ) -> None:  # fmt: skip
        """Write ``config.json`` (with the parameters' ``dtype``) and ``model.safetensors`` atomically."""
        write_checkpoint(os.fspath(save_directory), self.config, self.params, self.head, "safetensors",
                         shard_bytes(max_shard_size))  # fmt: skip

    # ---------------------------------------------------------------------------------- helpers
    @property
    def prefix(self) -> str:
        return head_spec(self.head).body_prefix

    def _forward(self, args: dict[str, Any]) -> Any:
        """One forward call: the core's recipe, the NumPy body and head, the core's head rules."""
        args.pop("self", None)
        args.pop("__class__", None)
        if self.training:
            c = self.config
            if max(c.hidden_dropout_prob, c.attention_probs_dropout_prob, c.effective_classifier_dropout) > 0:
                raise ConfigError(
                    "dropout: the NumPy reference has no dropout; train mode needs hidden_dropout_prob, "
                    "attention_probs_dropout_prob and classifier_dropout set to 0"
                )
        labels = {k: args.pop(k) for k in head_spec(self.head).labels if k in args}
        past = args.pop("past_key_values", None)
        flags = ("output_attentions", "output_hidden_states", "return_dict", "use_cache")
        arrays = {k: None if v is None or k == "plan" else np.asarray(v) for k, v in args.items()
                  if k not in flags}  # fmt: skip
        arrays["plan"] = args.get("plan")
        batch = None if arrays.get("input_ids") is None else arrays["input_ids"].shape[0]
        enc = arrays.get("encoder_hidden_states")
        past_len, _ = cache_length(self.config, past, batch, dtype=self.dtype,
                                   encoder_len=None if enc is None or enc.ndim != 3 else enc.shape[1])  # fmt: skip
        prep = prepare_call(self.config, self.head, dtype=self.dtype, training=self.training,
                            labels={k: None if v is None else np.asarray(v) for k, v in labels.items()},
                            past_len=past_len, **{k: args.get(k) for k in flags}, **arrays)  # fmt: skip
        body = run_body(self.params, self.prefix, prep, self.add_pooling_layer, past)
        return finish_call(prep, body, *self.head_logits(prep, body))

    def __call__(self, **inputs: Any) -> Any:
        """The forward call with the keywords of the head's transformers class (the built-in heads spell
        them out); labels are the head's registry entry's."""
        return self._forward(inputs)

    def head_logits(self, prep: PreparedCall, body: BodyOutput) -> tuple[Any, ...]:
        """The head's outputs from the body's (see ``HeadSpec.fields``): ``(logits,)`` for most heads."""
        return ()

    def _p(self, name: str) -> np.ndarray:
        return self.params[name]

    def _mlm_logits(self, x: np.ndarray) -> np.ndarray:
        c, t = self.config, "cls.predictions.transform."
        h = act(c.hidden_act)(linear(x, self._p(t + "dense.weight"), self._p(t + "dense.bias")))
        h = layer_norm(h, self._p(t + "LayerNorm.weight"), self._p(t + "LayerNorm.bias"), c.layer_norm_eps)
        decoder = self.params.get(
            "cls.predictions.decoder.weight", self._p("bert.embeddings.word_embeddings.weight")
        )
        return linear(h, decoder, self._p("cls.predictions.bias"))  # (batch, seq, vocab)


class BigBirdModel(BigBirdPreTrainedModel):
    head = "BigBirdModel"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                 use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                 plan=None):  # fmt: skip
        return self._forward(locals())


class BigBirdForPreTraining(BigBirdPreTrainedModel):
    head = "BigBirdForPreTraining"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                 output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        nsp = linear(body.pooled, self._p("cls.seq_relationship.weight"), self._p("cls.seq_relationship.bias"))
        return self._mlm_logits(prep.cut(body.sequence_output)), nsp


class _WithLabels(BigBirdPreTrainedModel):
    """The forward signature of the heads whose only label argument is ``labels``."""

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())


class BigBirdForMaskedLM(_WithLabels):
    head = "BigBirdForMaskedLM"

    def head_logits(self, prep, body):
        return (self._mlm_logits(prep.cut(body.sequence_output)),)


class BigBirdForCausalLM(BigBirdPreTrainedModel):
    """Causal LM head. With ``config.is_decoder`` the attention is causal (full attention), with a growing
    key/value cache (``bigbird_core.cache``) and, with ``config.add_cross_attention``, cross-attention to
    ``encoder_hidden_states``."""

    head = "BigBirdForCausalLM"

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                 labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                 plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self._mlm_logits(prep.cut(body.sequence_output)),)


class BigBirdForSequenceClassification(_WithLabels):
    head = "BigBirdForSequenceClassification"

    def head_logits(self, prep, body):
        x = body.sequence_output[:, 0]  # (batch, hidden): the first token
        x = act(self.config.hidden_act)(linear(x, self._p("classifier.dense.weight"),
                                                       self._p("classifier.dense.bias")))  # fmt: skip
        return (linear(x, self._p("classifier.out_proj.weight"), self._p("classifier.out_proj.bias")),)


class BigBirdForMultipleChoice(_WithLabels):
    """Inputs are ``(batch, num_choices, seq)``; logits ``(batch, num_choices)``."""

    head = "BigBirdForMultipleChoice"

    def head_logits(self, prep, body):
        return (linear(body.pooled, self._p("classifier.weight"), self._p("classifier.bias")),)


class BigBirdForTokenClassification(_WithLabels):
    head = "BigBirdForTokenClassification"

    def head_logits(self, prep, body):
        x = prep.cut(body.sequence_output)
        return (linear(x, self._p("classifier.weight"), self._p("classifier.bias")),)  # (batch, seq, labels)


class BigBirdForQuestionAnswering(BigBirdPreTrainedModel):
    """Span extraction. ``question_lengths`` defaults to the position of the first [SEP] + 1; the logits
    of question tokens (except position 0) get ``1e6`` subtracted."""

    head = "BigBirdForQuestionAnswering"

    def __call__(self, input_ids=None, attention_mask=None, question_lengths=None, token_type_ids=None,
                 position_ids=None, head_mask=None, inputs_embeds=None, start_positions=None, end_positions=None,
                 output_attentions=None, output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        c, q = self.config, "qa_classifier."
        x = prep.cut(body.sequence_output)
        h = act(c.hidden_act)(linear(x, self._p(q + "intermediate.dense.weight"),
                                             self._p(q + "intermediate.dense.bias")))  # fmt: skip
        h = linear(h, self._p(q + "output.dense.weight"), self._p(q + "output.dense.bias"))
        h = layer_norm(h + x, self._p(q + "output.LayerNorm.weight"), self._p(q + "output.LayerNorm.bias"),
                       c.layer_norm_eps)  # fmt: skip
        return (linear(h, self._p(q + "qa_outputs.weight"), self._p(q + "qa_outputs.bias")),)  # (batch, seq, 2)


def model_class(head: str) -> type[BigBirdPreTrainedModel]:
    """This backend's class of ``head`` (a registered head whose class is defined)."""
    return registered_class(MODEL_CLASSES, head, "NumPy")


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend)."""
    model = model_class(head).from_pretrained(directory, dtype=dtype, **config_overrides).train(train)
    return lambda **inputs: model(**inputs)
