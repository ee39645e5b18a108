"""The ``FlaxBigBird*`` wrappers of transformers 4.x: params, a jitted apply of the head's linen module,
initialisation, checkpoints, shardings, the kernel choice, caches and generate.

Example:
    >>> import bigbird_flax as bb
    >>> model = bb.FlaxBigBirdForMaskedLM.from_pretrained("path/to/checkpoint")
    >>> logits = model(input_ids).logits
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core.cache import cache_mask, check_cache_head, check_fixed_cache
from bigbird_core.checkpoint import FLAX_MSGPACK, write_checkpoint
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import InputError, fail
from bigbird_core.flax_names import to_flax_tree
from bigbird_core.generation import generation, positions_from_mask
from bigbird_core.hub import HUB_ARGS, load_pretrained, shard_bytes
from bigbird_core.kernels import check_kernel
from bigbird_core.outputs import FlaxGenerateOutput
from bigbird_core.registry import head_spec, registered_class
from bigbird_core.sharding import mesh_axes
from bigbird_core.validate import check_cross_inputs, check_inputs, check_labels, model_config
from bigbird_core.weights import LoadReport, init_params, param_specs

from .convert import from_canonical, to_canonical
from .generation import generate as decode
from .heads import (
    HEAD_MODULES,
    FlaxBigBirdForCausalLMModule,
    FlaxBigBirdForMaskedLMModule,
    FlaxBigBirdForMultipleChoiceModule,
    FlaxBigBirdForPreTrainingModule,
    FlaxBigBirdForQuestionAnsweringModule,
    FlaxBigBirdForSequenceClassificationModule,
    FlaxBigBirdForTokenClassificationModule,
)
from .jitted import cache_room as _cache_room
from .jitted import jitted_apply as _jitted_apply
from .jitted import jitted_cached_apply as _jitted_cached_apply
from .model import FlaxBigBirdModule
from .pytrees import register_output

MODEL_CLASSES: dict[str, type] = {}  # head name -> wrapper class, filled as the classes are defined
DTYPES = {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _as_array(x: Any) -> Any:
    return x if x is None or isinstance(x, jax.Array) else jnp.asarray(np.asarray(x))


def _host(x: Any) -> Any:
    """An input as it was given, for the checks: JAX arrays as they are, anything else as a NumPy array, so that
    int64 ids past int32 are judged before JAX (without x64) would truncate them."""
    return x if x is None or isinstance(x, jax.Array) else np.asarray(x)


def _merge(base: dict, given: dict) -> dict:
    """``base`` with every entry of ``given`` (nested dicts merged)."""
    out = dict(base)
    for key, value in given.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class FlaxBigBirdPreTrainedModel:
    """Shared behaviour of the ``FlaxBigBird*`` classes: params, a jitted apply, checkpoints.

    Calling one validates the inputs (values too, when they are concrete), then applies its linen module
    under ``jax.jit``; in train mode ``dropout_rng`` drives dropout and ``indices_rng`` draws a fresh plan
    per step (without it, the config's train plan).
    """

    head: str = ""
    module_class: type[nn.Module] = FlaxBigBirdModule

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("head"):  # a head's wrapper: this backend's class of that registry entry
            MODEL_CLASSES[cls.head] = cls

    def __init__(self, config: BigBirdConfig, input_shape: tuple | None = None, seed: int = 0,
                 dtype: jnp.dtype = jnp.float32, _do_init: bool = True, gradient_checkpointing: bool = False,
                 add_pooling_layer: bool | None = None) -> None:  # fmt: skip
        self.config = model_config(config, self.head)
        self.dtype = dtype
        self.input_shape = input_shape or (1, 12 * self.config.block_size)
        self.add_pooling_layer = head_spec(self.head).pooler if add_pooling_layer is None else add_pooling_layer
        self.gradient_checkpointing = gradient_checkpointing
        self.block_sparse_kernel = "auto"
        self.load_report = LoadReport((), (), ())
        register_output(head_spec(self.head).output)  # a jitted apply returns it
        self._build_module()
        self._is_initialized = _do_init  # transformers' flag: False keeps the parameters outside the model
        self._params = self.init_weights(jax.random.PRNGKey(seed), self.input_shape) if _do_init else None

    def _build_module(self) -> None:
        self.module = self.module_class(self.config, self.dtype, self.add_pooling_layer, self.gradient_checkpointing,
                                        self.block_sparse_kernel)  # fmt: skip

    def set_block_sparse_kernel(self, name: str) -> str:
        """Choose this model's block-sparse kernel by the core's name (``bigbird_core.kernels``; the Flax backend
        runs "auto" and "gather"); returns the previous choice. The same method exists in torch."""
        previous, self.block_sparse_kernel = self.block_sparse_kernel, check_kernel(name, "flax")
        self._build_module()
        return previous

    # ----------------------------------------------------------------------------------- params
    @property
    def params(self) -> dict:
        """The parameter tree; with ``_do_init=False`` reading (or setting) it is a ``ValueError`` (our
        ``InputError``), as in transformers: the parameters live outside the model and go in as ``params=``."""
        if not self._is_initialized or self._params is None:
            raise InputError(
                "params: this model was built with _do_init=False; pass params= or call init_weights"
            )
        return self._params

    @params.setter
    def params(self, value: dict) -> None:
        if not self._is_initialized:
            raise InputError("params: this model was built with _do_init=False: keep the parameters outside it "
                             "and pass them as params=")  # fmt: skip
        self._params = value

    def _set_params(self, value: dict) -> None:
        """Make the model hold ``value`` (its loaders: ``from_pretrained``, the encoder-decoder pair)."""
        self._is_initialized, self._params = True, value

    def init_weights(
        self, rng: jax.Array, input_shape: tuple | None = None, params: dict | None = None
    ) -> dict:
        """Seeded parameters with transformers' initialisation (the core's, identical in every backend);
        ``params`` given: its missing entries are filled in.

        Traced (``jax.jit`` with ``out_shardings``, ``jax.eval_shape``), the parameters are drawn on the
        device with ``jax.random`` instead: the same distributions, not the host's values; nothing runs on
        the host, so a model can be initialised abstractly or straight into a sharding.
        """
        if isinstance(rng, jax.core.Tracer):
            return self._init_on_device(rng, params)
        seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
        fresh = init_params(self.config, self.head, seed=seed, add_pooling_layer=self.add_pooling_layer)
        if params is not None:
            fresh.update(to_canonical(params))
        return from_canonical(fresh)

    def _init_on_device(self, rng: jax.Array, params: dict | None) -> dict:
        """:meth:`init_weights` with ``jax.random`` (traceable): normal(0, initializer_range) weights and
        embeddings, zero biases, unit LayerNorm scales, the padding row zeroed."""
        c = self.config

        def draw(item, transpose: bool):
            i, spec = item
            shape = spec.shape[::-1] if transpose else spec.shape
            if spec.init == "normal":
                value = jax.random.normal(jax.random.fold_in(rng, i), shape, jnp.float32) * c.initializer_range
            else:
                value = jnp.full(shape, 1.0 if spec.init == "ones" else 0.0, jnp.float32)
            return value.at[c.pad_token_id].set(0.0) if spec.name.endswith("word_embeddings.weight") else value

        specs = param_specs(c, self.head, self.add_pooling_layer)
        tree = to_flax_tree({s.name: (i, s) for i, s in enumerate(specs)}, draw)
        if params is not None:  # given entries win
            tree = _merge(tree, params)
        return tree

    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True
        self._build_module()

    # transformers' keywords that from_pretrained accepts (besides config fields, which update the config)
    LOAD_ARGS = ("config", "dtype", "seed", "add_pooling_layer", *HUB_ARGS, "use_safetensors",
                 "ignore_mismatched_sizes", "from_pt", "_do_init", "gradient_checkpointing", "input_shape")  # fmt: skip
    main_input_name = "input_ids"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *, config: Any = None,
                        dtype: jnp.dtype = jnp.float32, seed: int = 0, add_pooling_layer: bool | None = None,
                        revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        local_files_only: bool = False, token: Any = None, force_download: bool = False,
                        subfolder: str = "", use_safetensors: bool | None = None,
                        ignore_mismatched_sizes: bool = False, from_pt: bool = False, _do_init: bool = True,
                        gradient_checkpointing: bool = False, input_shape: tuple | None = None,
                        **config_overrides: Any):  # fmt: skip
        """Load a checkpoint (``flax_model.msgpack``, safetensors or ``pytorch_model.bin``): a local directory
        or a Hugging Face Hub id through the local cache (keywords as the torch backend's).

        As transformers' Flax models: ``dtype`` is the computation dtype and the parameters keep the dtype
        they were saved in; ``from_pt`` prefers ``pytorch_model.bin`` (any format loads either way);
        ``_do_init=False`` returns ``(model, params)`` with the parameters kept outside the model.
        """
        prefer = ("pytorch_model.bin",) if from_pt else (FLAX_MSGPACK,)
        config, params, report, stored = load_pretrained(
            pretrained_model_name_or_path, cls.head, prefer=prefer, config=config, use_safetensors=use_safetensors,
            seed=seed, add_pooling_layer=add_pooling_layer, ignore_mismatched_sizes=ignore_mismatched_sizes,
            overrides=config_overrides, accepted=cls.LOAD_ARGS, revision=revision, cache_dir=cache_dir,
            local_files_only=local_files_only, token=token, force_download=force_download, subfolder=subfolder,
        )  # fmt: skip
        model = cls(config, input_shape=input_shape, dtype=dtype, _do_init=False,
                    gradient_checkpointing=gradient_checkpointing, add_pooling_layer=add_pooling_layer)  # fmt: skip
        model.load_report = report
        tree = from_canonical(params)
        if stored in ("bfloat16", "float16", "float64"):  # parameters keep their stored dtype
            tree = model._cast(tree, jnp.dtype(stored))
        if not _do_init:
            return model, tree
        model._set_params(tree)
        return model

    # ------------------------------------------------------------------------------- parameter trees
    @staticmethod
    def _cast(params: dict, dtype: jnp.dtype, mask: Any = None) -> dict:
        def cast(x, keep=True):
            return x.astype(dtype) if keep and jnp.issubdtype(x.dtype, jnp.floating) else x

        if mask is None:
            return jax.tree_util.tree_map(cast, params)
        return jax.tree_util.tree_map(cast, params, mask)

    def to_bf16(self, params: dict, mask: Any = None) -> dict:
        """``params`` with floating leaves cast to bfloat16 (``mask``: a same-shaped tree of bools, True to
        cast), as transformers' Flax models; returns a new tree."""
        return self._cast(params, jnp.bfloat16, mask)

    def to_fp16(self, params: dict, mask: Any = None) -> dict:
        return self._cast(params, jnp.float16, mask)

    def to_fp32(self, params: dict, mask: Any = None) -> dict:
        return self._cast(params, jnp.float32, mask)

    @property
    def params_shape_tree(self) -> dict:
        """The parameter tree as ``jax.ShapeDtypeStruct`` leaves (float32), from the core's weight table:
        no initialisation runs."""
        specs = {s.name: s.shape for s in param_specs(self.config, self.head, self.add_pooling_layer)}
        return to_flax_tree(specs, lambda shape, t: jax.ShapeDtypeStruct(shape[::-1] if t else shape, jnp.float32))

    def partition_specs(self, rules: dict[str, str], mesh: jax.sharding.Mesh) -> dict:
        """A ``PartitionSpec`` for every parameter, from the core's logical axes and ``rules`` (logical axis ->
        mesh axis; ``bigbird_core.weights.FSDP_RULES`` / ``TENSOR_RULES``, or your own): the tree of
        ``params``, for ``jax.jit(..., in_shardings=...)`` or ``jax.device_put``."""
        from jax.sharding import PartitionSpec

        axes = mesh_axes(self.config, self.head, rules, dict(mesh.shape), self.add_pooling_layer)
        return to_flax_tree(axes, lambda a, transpose: PartitionSpec(*(a[::-1] if transpose else a)))

    def shardings(self, rules: dict[str, str], mesh: jax.sharding.Mesh) -> dict:
        """:meth:`partition_specs` as ``NamedSharding`` objects on ``mesh``."""
        return jax.tree_util.tree_map(lambda spec: jax.sharding.NamedSharding(mesh, spec),
                                      self.partition_specs(rules, mesh),
                                      is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))  # fmt: skip

    @property
    def required_params(self) -> set[tuple[str, ...]]:
        """Every parameter's path in the Flax tree (what ``params`` must hold)."""
        leaves = jax.tree_util.tree_flatten_with_path(self.params_shape_tree)[0]
        return {tuple(k.key for k in path) for path, _ in leaves}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Canonical (transformers PyTorch) names to NumPy arrays."""
        return to_canonical(self.params)

    def save_pretrained(self, save_directory: str | os.PathLike[str], params: dict | None = None,
                        safe_serialization: bool = False, max_shard_size: int | str | None = None,
                        push_to_hub: bool = False) -> None:  # fmt: skip
        """Write ``config.json`` (with the parameters' ``dtype``) and ``flax_model.msgpack`` (or
        ``model.safetensors``, sharded by ``max_shard_size``) atomically; dtypes kept. Every weight file
        already in the folder is replaced; other files stay. ``push_to_hub``: see the torch backend."""
        if push_to_hub:
            raise fail(InputError, "push_to_hub", "False (save, then huggingface_hub.upload_folder(repo_id=..., "
                       "folder_path=...))", "True")  # fmt: skip
        state = to_canonical(params if params is not None else self.params)
        fmt = "safetensors" if safe_serialization else "flax"
        write_checkpoint(os.fspath(save_directory), self.config, state, "Flax" + self.head, fmt,
                         shard_bytes(max_shard_size))  # fmt: skip

    # ---------------------------------------------------------------------------------- forward
    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None,
                 params: dict | None = None, dropout_rng: jax.Array | None = None, indices_rng: jax.Array | None = None,
                 train: bool = False, output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                 return_dict: bool | None = None, past_key_values: dict | None = None, plan=None,
                 question_lengths=None, **labels):  # fmt: skip
        """The model on a batch (transformers' ``FlaxBigBird*.__call__``). Decoders: ``past_key_values`` is the
        fixed-size cache of :meth:`init_cache` (or of the previous call): ``attention_mask`` then covers its
        ``max_length`` positions and ``position_ids`` are the new tokens'; the output's ``past_key_values`` is
        the updated cache. ``encoder_hidden_states`` / ``encoder_attention_mask``: cross-attention inputs
        (``config.add_cross_attention``)."""
        c = self.config
        inputs = {k: _host(v) for k, v in dict(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
            question_lengths=question_lengths, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask).items() if v is not None}  # fmt: skip
        labels = {k: _host(v) for k, v in labels.items()}
        # the values are checked here, eagerly, where they are concrete (inside jit they are not)
        cross = {k: inputs.get(k) for k in ("encoder_hidden_states", "encoder_attention_mask")}
        model_inputs = {k: v for k, v in inputs.items() if k not in cross}
        past_len = 0
        if past_key_values is not None:
            ref = model_inputs.get("input_ids", model_inputs.get("inputs_embeds"))
            seq = ref.shape[1] if ref is not None else 0
            enc = inputs.get("encoder_hidden_states")
            max_length = _cache_room(c, self.head, past_key_values, ref.shape[0] if ref is not None else 0, seq,
                                     dtype=self.dtype, encoder_len=None if enc is None or enc.ndim != 3
                                     else enc.shape[1])  # fmt: skip
            past_len = max_length - seq
        shapes = check_inputs(c, self.head, past_len=past_len, **model_inputs)
        check_cross_inputs(c, shapes.flat_batch, **cross)
        labels = check_labels(c, self.head, shapes, labels)
        inputs = {k: _as_array(v) for k, v in inputs.items()}  # checked: now on the device
        labels = {k: _as_array(v) for k, v in labels.items()}
        rngs = {}
        if train and dropout_rng is not None:
            rngs["dropout"] = dropout_rng
        if train and indices_rng is not None:
            rngs["indices"] = indices_rng
        if train and "dropout" not in rngs and max(c.hidden_dropout_prob, c.attention_probs_dropout_prob,
                                                    c.effective_classifier_dropout) > 0:  # fmt: skip
            raise fail(InputError, "dropout_rng", "a PRNG key for train=True with dropout > 0", None)
        flags = dict(
            deterministic=not train,
            output_attentions=bool(c.output_attentions if output_attentions is None else output_attentions),
            output_hidden_states=bool(c.output_hidden_states if output_hidden_states is None else output_hidden_states),
        )  # fmt: skip
        params = self.params if params is None else params
        if past_key_values is not None:
            if plan is not None:
                raise fail(InputError, "plan", "None when decoding with a cache (decoders use full attention)", plan)
            out, cache = _jitted_cached_apply(self.module)(params, past_key_values, inputs, labels, rngs, **flags)
            out["past_key_values"] = cache
        elif plan is not None:  # a given plan is data the core merges on the host (a traced one: on the device)
            given = np.asarray(plan) if not isinstance(plan, jax.core.Tracer) else plan
            out = self.module.apply({"params": params}, **inputs, **labels, plan=given, rngs=rngs, **flags)
        else:
            out = _jitted_apply(self.module)(params, inputs, labels, rngs, **flags)
        return out if (c.use_return_dict if return_dict is None else return_dict) else out.to_tuple()

    def init_cache(self, batch_size: int, max_length: int) -> dict:
        """An empty fixed-size cache for decoding ``max_length`` positions (transformers' Flax ``init_cache``):
        per self-attention ``cached_key`` / ``cached_value`` ``(batch, max_length, heads, head_dim)`` and
        ``cache_index``; pass it as ``past_key_values`` with an attention mask of ``max_length`` positions."""
        check_fixed_cache(self.config, max_length, batch_size)
        batch_size, max_length = int(batch_size), int(max_length)  # NumPy integers as good as Python's
        check_cache_head(self.head)
        ids = jnp.ones((batch_size, max_length), jnp.int32)
        positions = jnp.broadcast_to(jnp.arange(max_length, dtype=jnp.int32)[None, :], ids.shape)
        shapes = jax.eval_shape(lambda: self.module.init(jax.random.PRNGKey(0), ids, jnp.ones_like(ids),
                                                         position_ids=positions))  # fmt: skip
        return jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes["cache"])


class FlaxBigBirdModel(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdModel``."""

    head = "BigBirdModel"
    module_class = FlaxBigBirdModule


class FlaxBigBirdForPreTraining(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForPreTraining``."""

    head = "BigBirdForPreTraining"
    module_class = FlaxBigBirdForPreTrainingModule


class FlaxBigBirdForMaskedLM(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForMaskedLM``."""

    head = "BigBirdForMaskedLM"
    module_class = FlaxBigBirdForMaskedLMModule


class FlaxBigBirdForCausalLM(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForCausalLM``, with the fixed-size cache (:meth:`init_cache`) and a jitted
    :meth:`generate`; with ``config.add_cross_attention`` every layer also attends to ``encoder_hidden_states``."""

    head = "BigBirdForCausalLM"
    module_class = FlaxBigBirdForCausalLMModule

    def prepare_inputs_for_generation(self, input_ids, max_length: int, attention_mask=None) -> dict:
        """transformers' Flax step 0: an empty cache of ``max_length``, the mask of every position it will hold,
        the prompt's positions (a left-padded prompt's follow its mask)."""
        batch, length = input_ids.shape
        mask = jnp.ones((batch, length), jnp.int32) if attention_mask is None else jnp.asarray(attention_mask)
        full = cache_mask(mask.astype(jnp.int32), max_length)
        return {"past_key_values": self.init_cache(batch, max_length), "attention_mask": full,
                "position_ids": positions_from_mask(mask)}  # fmt: skip

    def update_inputs_for_generation(self, model_outputs, model_kwargs: dict) -> dict:
        """The next step's inputs: the new cache, the next position."""
        model_kwargs["past_key_values"] = model_outputs.past_key_values
        model_kwargs["position_ids"] = model_kwargs["position_ids"][:, -1:] + 1
        return model_kwargs

    def generate(self, input_ids, attention_mask=None, *, max_length: int | None = None,
                 max_new_tokens: int | None = None, eos_token_id: Any = None, pad_token_id: int | None = None,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                 num_beams: int = 1, length_penalty: float = 1.0, early_stopping: bool | str = False,
                 encoder_hidden_states=None, encoder_attention_mask=None, prng_key: jax.Array | None = None,
                 params: dict | None = None) -> FlaxGenerateOutput:  # fmt: skip
        """Decode from ``input_ids`` in one jitted ``lax.while_loop`` over the fixed-size cache, with transformers'
        ``generate`` rules and defaults (greedy, sampling with ``temperature`` / ``top_k`` / ``top_p`` and
        ``prng_key``, beam search with ``num_beams`` / ``length_penalty`` / ``early_stopping``; ``max_length`` 20
        tokens in all by default, or ``max_new_tokens``). Greedy and beam search give the torch backend's tokens.

        Returns:
            ``FlaxGenerateOutput`` whose ``sequences`` ``(batch, max_length)`` hold the prompt and the generated
            tokens, finished sequences filled with ``pad_token_id`` (static shapes, as transformers' Flax).
        """
        ids = _host(input_ids)
        mask = _host(attention_mask)
        shapes = check_inputs(self.config, self.head, input_ids=ids, attention_mask=mask)
        check_cross_inputs(self.config, shapes.batch, _as_array(encoder_hidden_states),
                           _as_array(encoder_attention_mask))  # fmt: skip
        g = generation(self.config, int(ids.shape[1]), max_length=max_length, max_new_tokens=max_new_tokens,
                       eos_token_id=eos_token_id, pad_token_id=pad_token_id, do_sample=do_sample,
                       temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams,
                       length_penalty=length_penalty, early_stopping=early_stopping)  # fmt: skip
        ids, mask = _as_array(ids), _as_array(mask)  # checked on the host: now on the device
        sequences = decode(self, ids, mask, g, params=params, encoder_hidden_states=encoder_hidden_states,
                           encoder_attention_mask=encoder_attention_mask, prng_key=prng_key)  # fmt: skip
        return FlaxGenerateOutput(sequences=sequences)


class FlaxBigBirdForSequenceClassification(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForSequenceClassification``."""

    head = "BigBirdForSequenceClassification"
    module_class = FlaxBigBirdForSequenceClassificationModule


class FlaxBigBirdForMultipleChoice(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForMultipleChoice``: inputs ``(batch, num_choices, seq)``."""

    head = "BigBirdForMultipleChoice"
    module_class = FlaxBigBirdForMultipleChoiceModule


class FlaxBigBirdForTokenClassification(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForTokenClassification``."""

    head = "BigBirdForTokenClassification"
    module_class = FlaxBigBirdForTokenClassificationModule


class FlaxBigBirdForQuestionAnswering(FlaxBigBirdPreTrainedModel):
    """transformers 4.x ``FlaxBigBirdForQuestionAnswering``; ``question_lengths`` defaults to the first
    [SEP] + 1 (the core's QA rule)."""

    head = "BigBirdForQuestionAnswering"
    module_class = FlaxBigBirdForQuestionAnsweringModule


def model_class(head: str) -> type[FlaxBigBirdPreTrainedModel]:
    """This backend's wrapper of ``head``: its class, or a plain wrapper of its linen module (a head added with
    one module class, ``head = "<name>"``, in ``bigbird_flax.heads`` style)."""
    spec = head_spec(head)
    if spec.name not in MODEL_CLASSES and spec.name in HEAD_MODULES:
        type("Flax" + spec.name, (FlaxBigBirdPreTrainedModel,), {
            "head": spec.name, "module_class": HEAD_MODULES[spec.name], "__module__": __name__})  # fmt: skip
    return registered_class(MODEL_CLASSES, head, "Flax")


def asarray(x: Any) -> jnp.ndarray:
    """A JAX array of ``x`` (the same function exists in every backend)."""
    return jnp.asarray(np.asarray(x))


def runner(head: str, directory: str, *, dtype: str = "float32", train: bool = False, **config_overrides):
    """Load ``head`` from ``directory`` and return a function of NumPy inputs (same name in every backend).

    float64 runs inside ``jax.enable_x64`` for each call only: the process-wide setting is left alone.
    """
    x64 = dtype == "float64"
    with jax.enable_x64(x64):
        model = model_class(head).from_pretrained(directory, dtype=DTYPES[dtype], **config_overrides)
        if x64:
            model.params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), model.params)

    def run(**inputs):
        with jax.enable_x64(x64):
            return model(**{k: asarray(v) for k, v in inputs.items()}, train=train)

    return run
