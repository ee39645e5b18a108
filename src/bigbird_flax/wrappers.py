"""The ``FlaxBigBird*`` classes: transformers 4.x Flax API over the linen modules of this package."""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bigbird_core import outputs as O
from bigbird_core.checkpoint import FLAX_MSGPACK, read_checkpoint, write_checkpoint
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import InputError, fail
from bigbird_core.inputs import check_inputs, default_question_lengths, pad_values, plan_call, question_masks
from bigbird_core.layout import block_layout, compact_slots
from bigbird_core.plans import check_plan, make_plan
from bigbird_core.weights import (
    HEADS,
    LoadReport,
    default_pooler,
    from_flax_tree,
    init_params,
    match_state_dict,
    to_flax_tree,
)

from .attention import draw_plan, drawn_slot_bias, key_blocks_of
from .heads import FlaxBigBirdHeadModule
from .losses import head_loss
from .model import FlaxBigBirdModule

_LABEL_KEYS = ("labels", "next_sentence_label", "start_positions", "end_positions")


def _is_concrete(x: Any) -> bool:
    return x is None or not isinstance(x, jax.core.Tracer)


class FlaxBigBirdPreTrainedModel:
    """Shared behaviour of the wrappers: params, jit, checkpoints (safetensors or msgpack)."""

    head: str = ""

    def __init__(self, config: BigBirdConfig, input_shape: tuple | None = None, seed: int = 0,
                 dtype: jnp.dtype = jnp.float32, _do_init: bool = True, gradient_checkpointing: bool = False,
                 add_pooling_layer: bool | None = None) -> None:  # fmt: skip
        if not isinstance(config, BigBirdConfig):
            raise fail(InputError, "config", "a bigbird_core.BigBirdConfig", config)
        if self.head == "BigBirdForQuestionAnswering" and config.num_labels != 2:
            config = config.replace(num_labels=2)
        self.config = config
        self.dtype = dtype
        self.input_shape = input_shape or (1, 12 * config.block_size)
        self.add_pooling_layer = default_pooler(self.head) if add_pooling_layer is None else add_pooling_layer
        self.gradient_checkpointing = gradient_checkpointing
        self.load_report = LoadReport((), (), ())
        self._plans: dict[tuple[int, bool], tuple] = {}
        self._build_module()
        self._params = self.init_weights(jax.random.PRNGKey(seed), self.input_shape) if _do_init else None

    def _build_module(self) -> None:
        if self.head == "BigBirdModel":
            self.module = FlaxBigBirdModule(
                self.config, self.dtype, self.add_pooling_layer, self.gradient_checkpointing
            )
        else:
            self.module = FlaxBigBirdHeadModule(self.config, self.head, self.dtype, self.add_pooling_layer,
                                                self.gradient_checkpointing)  # fmt: skip
        self._apply = jax.jit(self._forward, static_argnames=("train", "output_attentions", "output_hidden_states",
                                                               "embeds_pad", "draw"))  # fmt: skip

    # ----------------------------------------------------------------------------------- params
    @property
    def params(self) -> dict:
        if self._params is None:
            raise InputError(
                "params: this model was built with _do_init=False; pass params= or call init_weights"
            )
        return self._params

    @params.setter
    def params(self, value: dict) -> None:
        self._params = value

    def init_weights(
        self, rng: jax.Array, input_shape: tuple | None = None, params: dict | None = None
    ) -> dict:
        """Seeded parameters with transformers' initialisation (the core's, identical in every backend);
        ``params`` given: its missing entries are filled in."""
        seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
        fresh = init_params(self.config, self.head, seed=seed, add_pooling_layer=self.add_pooling_layer)
        if params is not None:
            fresh.update(from_flax_tree(params))
        return jax.tree_util.tree_map(jnp.asarray, to_flax_tree(fresh))

    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True
        self._build_module()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *, dtype: jnp.dtype = jnp.float32, seed: int = 0,
                        add_pooling_layer: bool | None = None, **config_overrides: Any):  # fmt: skip
        """Load a checkpoint directory (``flax_model.msgpack``, safetensors or ``pytorch_model.bin``)."""
        config, state = read_checkpoint(os.fspath(directory), prefer=(FLAX_MSGPACK,))
        if config_overrides:
            config = config.replace(**config_overrides)
        model = cls(config, dtype=dtype, _do_init=False, add_pooling_layer=add_pooling_layer)
        params, model.load_report = match_state_dict(model.config, cls.head, state, seed=seed,
                                                     add_pooling_layer=model.add_pooling_layer, dtype="float32")  # fmt: skip
        model.params = jax.tree_util.tree_map(jnp.asarray, to_flax_tree(params))
        return model

    def state_dict(self) -> dict[str, np.ndarray]:
        """Canonical (transformers PyTorch) names to NumPy arrays."""
        return from_flax_tree(self.params)

    def save_pretrained(self, directory: str | os.PathLike[str], params: dict | None = None,
                        safe_serialization: bool = False) -> None:  # fmt: skip
        """Write ``config.json`` and ``flax_model.msgpack`` (or ``model.safetensors``) atomically; dtypes kept."""
        state = from_flax_tree(params if params is not None else self.params)
        fmt = "safetensors" if safe_serialization else "flax"
        write_checkpoint(os.fspath(directory), self.config, state, "Flax" + self.head, fmt)

    # ---------------------------------------------------------------------------------- forward
    def _forward(self, params, input_ids, attention_mask, token_type_ids, position_ids, head_mask, inputs_embeds,
                 plan, compact, logits_mask, dropout_rng, indices_rng, *, train: bool, output_attentions: bool,
                 output_hidden_states: bool, embeds_pad: int, draw: bool):  # fmt: skip
        c = self.config
        if draw:  # a fresh plan per step, drawn inside jit
            n = attention_mask.shape[1] // c.block_size
            plan = draw_plan(indices_rng, c.num_hidden_layers, c.num_attention_heads, n, c.num_random_blocks)
        if plan is None:
            key_blocks = None
        elif output_attentions:  # the full layout, for exact dense probabilities
            key_blocks = (key_blocks_of(plan), None)
        elif compact is not None:  # the core's merged slots of a static plan
            key_blocks = compact
        else:  # a drawn plan has distinct random blocks: its full layout is already merged
            blocks = key_blocks_of(plan)
            key_blocks = (blocks, drawn_slot_bias(blocks))
        rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
        kwargs = dict(deterministic=not train, output_attentions=output_attentions,
                      output_hidden_states=output_hidden_states, embeds_pad=embeds_pad)  # fmt: skip
        if self.head != "BigBirdModel":
            kwargs["logits_mask"] = logits_mask
        out = self.module.apply({"params": params}, input_ids, attention_mask, token_type_ids, position_ids, head_mask,
                                inputs_embeds, key_blocks, rngs=rngs, **kwargs)  # fmt: skip
        return out, plan

    def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                 inputs_embeds=None, params: dict | None = None, dropout_rng: jax.Array | None = None,
                 indices_rng: jax.Array | None = None, train: bool = False, output_attentions: bool | None = None,
                 output_hidden_states: bool | None = None, return_dict: bool | None = None, plan=None,
                 question_lengths=None, **labels):  # fmt: skip
        c = self.config
        bad = sorted(set(labels) - set(_LABEL_KEYS))
        if bad:
            raise fail(
                InputError, bad[0], f"one of the forward arguments of {self.head}", "an unknown keyword"
            )
        multiple = self.head == "BigBirdForMultipleChoice"
        first = input_ids if input_ids is not None else inputs_embeds
        if multiple:
            if first is None or first.ndim < 3:
                raise fail(InputError, "input_ids", "a (batch, num_choices, seq) array", first)
            num_choices = first.shape[1]
            flat = lambda x: None if x is None else jnp.reshape(x, (-1,) + tuple(x.shape[2:]))  # noqa: E731
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds = map(
                flat, (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds))  # fmt: skip
        concrete = all(_is_concrete(x) for x in (input_ids, token_type_ids, position_ids))
        batch, seq = check_inputs(c, input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids, position_ids=position_ids, concrete=concrete)  # fmt: skip
        input_ids = None if input_ids is None else jnp.asarray(input_ids, jnp.int32)
        logits_mask = None
        if self.head == "BigBirdForQuestionAnswering":
            if question_lengths is None and input_ids is not None:
                question_lengths = default_question_lengths(jnp, input_ids, c.sep_token_id)
            if question_lengths is not None:
                default_types, logits_mask = question_masks(jnp, jnp.asarray(question_lengths), seq)
                token_type_ids = default_types if token_type_ids is None else token_type_ids
        call = plan_call(c, seq)
        mask = jnp.ones((batch, seq), jnp.int32) if attention_mask is None else jnp.asarray(attention_mask)
        types = (
            jnp.zeros((batch, seq), jnp.int32)
            if token_type_ids is None
            else jnp.asarray(token_type_ids, jnp.int32)
        )
        if call.pad_len:
            pads, pad = pad_values(c), ((0, 0), (0, call.pad_len))
            if input_ids is not None:
                input_ids = jnp.pad(input_ids, pad, constant_values=pads["input_ids"])
            if position_ids is not None:
                position_ids = jnp.pad(jnp.asarray(position_ids), pad, constant_values=pads["position_ids"])
            mask = jnp.pad(mask, pad, constant_values=pads["attention_mask"])
            types = jnp.pad(types, pad, constant_values=pads["token_type_ids"])
            if logits_mask is not None:
                logits_mask = jnp.pad(logits_mask, pad)
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(call.padded_len), (batch, call.padded_len))
        draw, compact = False, None
        if call.block_sparse:
            if plan is None and train and indices_rng is not None:
                draw = True
            elif plan is None:  # the config's plan: built once per length and mode
                key = (call.num_blocks, bool(train))
                if key not in self._plans:
                    self._plans[key] = self._device_plan(make_plan(c, call.num_blocks, training=train))
                plan, compact = self._plans[key]
            else:
                plan, compact = self._device_plan(check_plan(c, call.num_blocks, np.asarray(plan)))
        hm = None if head_mask is None or call.block_sparse else self._head_mask(head_mask)
        embeds_pad = call.pad_len if inputs_embeds is not None else 0
        out, used_plan = self._apply(
            params if params is not None else self.params, input_ids, mask, types, jnp.asarray(position_ids, jnp.int32),
            hm, inputs_embeds, plan, compact, logits_mask, dropout_rng if train else None, indices_rng,
            train=bool(train), output_attentions=bool(c.output_attentions if output_attentions is None else output_attentions),
            output_hidden_states=bool(c.output_hidden_states if output_hidden_states is None else output_hidden_states),
            embeds_pad=embeds_pad, draw=draw,
        )  # fmt: skip
        self.last_plan = used_plan
        result = self._outputs(out, seq, num_choices if multiple else None, labels)
        return result if (c.use_return_dict if return_dict is None else return_dict) else result.to_tuple()

    def _device_plan(self, plan: np.ndarray) -> tuple[jnp.ndarray, tuple[jnp.ndarray, jnp.ndarray]]:
        """A core plan and its merged slots (the fast path's layout) as JAX arrays."""
        merged = compact_slots(block_layout(plan, self.config.block_size))
        return jnp.asarray(plan), (jnp.asarray(merged.key_blocks), jnp.asarray(merged.slot_bias, jnp.float32))

    def _head_mask(self, head_mask) -> jnp.ndarray:
        c = self.config
        hm = jnp.asarray(head_mask, self.dtype)
        if hm.ndim == 1:
            hm = jnp.broadcast_to(hm, (c.num_hidden_layers, hm.shape[0]))
        if hm.shape != (c.num_hidden_layers, c.num_attention_heads):
            raise fail(InputError, "head_mask", f"shape ({c.num_attention_heads},) or "
                       f"({c.num_hidden_layers}, {c.num_attention_heads})", hm)  # fmt: skip
        return hm

    def _outputs(self, out: dict, seq: int, num_choices: int | None, labels: dict) -> O.ModelOutput:
        head, cut = self.head, (lambda x: x[:, :seq])
        common = dict(hidden_states=out["hidden_states"], attentions=out["attentions"])
        if head == "BigBirdModel":
            return O.BaseModelOutputWithPoolingAndCrossAttentions(
                last_hidden_state=cut(out["sequence_output"]), pooler_output=out["pooled"], **common
            )
        raw = {"nsp": out.get("nsp")}
        if head == "BigBirdForQuestionAnswering":
            logits = cut(out["logits"])
            raw.update(start_logits=logits[..., 0], end_logits=logits[..., 1])
        elif head == "BigBirdForMultipleChoice":
            raw["logits"] = out["logits"].reshape(-1, num_choices)
        elif head == "BigBirdForSequenceClassification":
            raw["logits"] = out["logits"]
        else:
            raw["logits"] = cut(out["logits"])
        loss = head_loss(head, self.config, raw, labels) if labels else None
        if head == "BigBirdForPreTraining":
            return O.BigBirdForPreTrainingOutput(loss, raw["logits"], raw["nsp"], **common)
        if head == "BigBirdForQuestionAnswering":
            return O.BigBirdForQuestionAnsweringModelOutput(loss, raw["start_logits"], raw["end_logits"],
                                                             out["pooled"], **common)  # fmt: skip
        cls = O.OUTPUT_CLASSES[head]
        return cls(loss=loss, logits=raw["logits"], **common)


def _wrapper(head: str) -> type[FlaxBigBirdPreTrainedModel]:
    return type(
        "Flax" + head,
        (FlaxBigBirdPreTrainedModel,),
        {"head": head, "__doc__": f"transformers 4.x Flax{head}."},
    )


MODEL_CLASSES = {head: _wrapper(head) for head in HEADS}
