"""A BigBird encoder with a BigBird decoder in Flax: transformers' ``FlaxEncoderDecoderModel`` parameter tree
(``encoder``, ``decoder``, ``enc_to_dec_proj``), its checkpoints and PyTorch's, and a jitted ``generate``.
Layout and rules: ``bigbird_core.encoder_decoder``."""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from bigbird_core import outputs as O
from bigbird_core.checkpoint import FLAX_MSGPACK, write_checkpoint
from bigbird_core.encoder_decoder import (
    PROJECTION,
    EncoderDecoderConfig,
    decoder_inputs,
    generate_defaults,
    init_encoder_decoder,
    load_encoder_decoder,
    split_state,
)
from bigbird_core.errors import InputError, fail
from bigbird_core.rules import cross_entropy
from bigbird_core.weights import LoadReport

from .convert import from_canonical, to_canonical
from .pretrained import FlaxBigBirdForCausalLM, FlaxBigBirdModel


class FlaxBigBirdEncoderDecoderModel:
    """``encoder`` (a ``FlaxBigBirdModel``) and ``decoder`` (a ``FlaxBigBirdForCausalLM`` with cross-attention)
    over one parameter tree ``{"encoder", "decoder"[, "enc_to_dec_proj"]}``.

    Example:
        >>> model = FlaxBigBirdEncoderDecoderModel.from_pretrained("path/to/bigbird2bigbird")
        >>> model.generate(input_ids, attention_mask=mask, num_beams=4, max_length=64).sequences
    """

    def __init__(self, config: EncoderDecoderConfig, seed: int = 0, dtype: jnp.dtype = jnp.float32,
                 _do_init: bool = True) -> None:  # fmt: skip
        if not isinstance(config, EncoderDecoderConfig):
            raise fail(InputError, "config", "a bigbird_core.encoder_decoder.EncoderDecoderConfig", config)
        self.config = config
        self.encoder = FlaxBigBirdModel(config.encoder, dtype=dtype, _do_init=False)
        self.decoder = FlaxBigBirdForCausalLM(config.decoder, dtype=dtype, _do_init=False)
        self.projection = None
        self.load_report = LoadReport((), (), ())
        if _do_init:
            self._set(*split_state(config, init_encoder_decoder(config, seed), seed=seed)[:3])

    def _set(self, encoder: dict, decoder: dict, projection: dict) -> None:
        self.encoder._set_params(from_canonical(encoder))
        self.decoder._set_params(from_canonical(decoder))
        self.projection = from_canonical(projection).get(PROJECTION) if projection else None

    @property
    def params(self) -> dict:
        tree = {"encoder": self.encoder.params, "decoder": self.decoder.params}
        if self.projection is not None:
            tree[PROJECTION] = self.projection
        return tree

    @params.setter
    def params(self, tree: dict) -> None:
        self.encoder._set_params(tree["encoder"])
        self.decoder._set_params(tree["decoder"])
        self.projection = tree.get(PROJECTION)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *, dtype: jnp.dtype = jnp.float32,
                        seed: int = 0, from_pt: bool = False, **hub_args: Any) -> FlaxBigBirdEncoderDecoderModel:  # fmt: skip
        """Load transformers' (Flax or PyTorch) encoder-decoder checkpoint of two BigBirds: a directory or a Hub
        id (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``force_download``, ``subfolder``)."""
        prefer = ("pytorch_model.bin",) if from_pt else (FLAX_MSGPACK,)
        config, enc, dec, proj, report = load_encoder_decoder(pretrained_model_name_or_path, prefer=prefer, seed=seed,
                                                              **hub_args)  # fmt: skip
        model = cls(config, dtype=dtype, _do_init=False)
        model._set(enc, dec, proj)
        model.load_report = report
        return model

    def save_pretrained(self, save_directory: str | os.PathLike[str], params: dict | None = None,
                        safe_serialization: bool = False) -> None:  # fmt: skip
        """``config.json`` and ``flax_model.msgpack`` (or safetensors) in transformers' layout, atomically."""
        write_checkpoint(os.fspath(save_directory), self.config, to_canonical(params or self.params),
                         "FlaxEncoderDecoderModel", "safetensors" if safe_serialization else "flax")  # fmt: skip

    # ---------------------------------------------------------------------------------- forward
    def encode(self, input_ids, attention_mask=None, params: dict | None = None, train: bool = False,
               output_attentions: bool | None = None, output_hidden_states: bool | None = None, **kwargs: Any):  # fmt: skip
        """The encoder's outputs (block-sparse on long inputs)."""
        params = params or self.params
        return self.encoder(input_ids, attention_mask, params=params["encoder"], train=train,
                            output_attentions=output_attentions, output_hidden_states=output_hidden_states, **kwargs)  # fmt: skip

    def encoder_states(self, encoder_outputs: Any, params: dict | None = None) -> jax.Array:
        """The encoder's last hidden state in the decoder's width (what cross-attention reads)."""
        states = encoder_outputs[0]
        proj = (params or self.params).get(PROJECTION)
        return states if proj is None else states @ proj["kernel"] + proj["bias"]

    def decode(self, decoder_input_ids, encoder_outputs, encoder_attention_mask=None, decoder_attention_mask=None,
               decoder_position_ids=None, past_key_values: dict | None = None, params: dict | None = None,
               train: bool = False, **kwargs: Any):  # fmt: skip
        """The decoder on ``decoder_input_ids`` over the encoder's outputs (``past_key_values``: the cache of
        :meth:`init_cache`, with a mask of its ``max_length`` positions and the new tokens' positions)."""
        params = params or self.params
        return self.decoder(decoder_input_ids, decoder_attention_mask, position_ids=decoder_position_ids,
                            encoder_hidden_states=self.encoder_states(encoder_outputs, params),
                            encoder_attention_mask=encoder_attention_mask, params=params["decoder"], train=train,
                            past_key_values=past_key_values, **kwargs)  # fmt: skip

    def init_cache(self, batch_size: int, max_length: int) -> dict:
        """The decoder's empty fixed-size cache (``past_key_values`` of :meth:`decode`)."""
        return self.decoder.init_cache(batch_size, max_length)

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 decoder_position_ids=None, labels=None, encoder_outputs=None, params: dict | None = None,
                 train: bool = False, dropout_rng: jax.Array | None = None, output_attentions: bool | None = None,
                 output_hidden_states: bool | None = None, return_dict: bool | None = None):  # fmt: skip
        """Encoder, then decoder (transformers' ``FlaxEncoderDecoderModel.__call__``); with ``labels`` and no
        ``decoder_input_ids``, the labels shifted right (masked where padding) and the cross-entropy loss."""
        params = params or self.params
        flags = dict(output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        if encoder_outputs is None:
            encoder_outputs = self.encode(input_ids, attention_mask, params, train, dropout_rng=dropout_rng, **flags)
        decoder_input_ids, decoder_attention_mask = decoder_inputs(
            self.config, None if labels is None else jnp.asarray(labels), decoder_input_ids, decoder_attention_mask)  # fmt: skip
        out = self.decode(decoder_input_ids, encoder_outputs, attention_mask, decoder_attention_mask,
                          decoder_position_ids, params=params, train=train, dropout_rng=dropout_rng, **flags)  # fmt: skip
        loss = None if labels is None else cross_entropy(out.logits.astype(jnp.float32), jnp.asarray(labels))
        result = O.Seq2SeqLMOutput(loss=loss, logits=out.logits, decoder_hidden_states=out.hidden_states,
                                   decoder_attentions=out.attentions, cross_attentions=out.cross_attentions,
                                   encoder_last_hidden_state=encoder_outputs[0],
                                   encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
                                   encoder_attentions=getattr(encoder_outputs, "attentions", None))  # fmt: skip
        return result.to_tuple() if return_dict is False else result

    def generate(self, input_ids, attention_mask=None, params: dict | None = None, **kwargs: Any) -> O.FlaxGenerateOutput:
        """Encode once, then decode from the start token with the decoder's jitted :meth:`generate` (every
        argument of it; the pair's ``eos_token_id`` / ``pad_token_id`` by default)."""
        params = params or self.params
        ids = jnp.asarray(input_ids)
        mask = jnp.ones_like(ids) if attention_mask is None else jnp.asarray(attention_mask)
        states = self.encoder_states(self.encode(ids, mask, params), params)
        start = jnp.full((ids.shape[0], 1), self.config.start_token, ids.dtype)
        return self.decoder.generate(start, encoder_hidden_states=states, encoder_attention_mask=mask,
                                     params=params["decoder"], **generate_defaults(self.config, kwargs))  # fmt: skip
