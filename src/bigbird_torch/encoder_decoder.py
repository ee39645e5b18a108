"""A BigBird encoder (block-sparse on long inputs) with a BigBird decoder (cross-attention): transformers'
``EncoderDecoderModel`` with BigBird on both sides, its checkpoints and ``generate``. Layout and rules:
``bigbird_core.encoder_decoder``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import torch
from bigbird_core import outputs as O
from bigbird_core.checkpoint import write_checkpoint
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
from torch import nn

from .convert import to_canonical
from .heads import BigBirdForCausalLM, BigBirdModel, torch_dtype_of


class BigBirdEncoderDecoderModel(nn.Module):
    """``encoder`` (a ``BigBirdModel``), ``decoder`` (a ``BigBirdForCausalLM`` with cross-attention) and, when the
    widths differ, ``enc_to_dec_proj``; parameter names are transformers' ``EncoderDecoderModel``'s.

    Example:
        >>> model = BigBirdEncoderDecoderModel.from_pretrained("path/to/bigbird2bigbird")
        >>> ids = model.generate(input_ids, attention_mask=mask, num_beams=4, max_length=64)
    """

    main_input_name = "input_ids"

    def __init__(self, config: EncoderDecoderConfig, *, seed: int | None = 0, _init: bool = True) -> None:
        super().__init__()
        if not isinstance(config, EncoderDecoderConfig):
            raise fail(InputError, "config", "a bigbird_core.encoder_decoder.EncoderDecoderConfig", config)
        self.config = config
        self.encoder = BigBirdModel(config.encoder, _init=False)
        self.decoder = BigBirdForCausalLM(config.decoder, _init=False)
        self.enc_to_dec_proj = (nn.Linear(config.encoder.hidden_size, config.decoder.hidden_size)
                                if config.projection else None)  # fmt: skip
        self.load_report = LoadReport((), (), ())
        if _init and not next(self.parameters()).is_meta:
            self._load(*split_state(config, init_encoder_decoder(config, seed or 0), seed=seed or 0)[:3])

    def _load(self, encoder: dict, decoder: dict, projection: dict) -> None:
        as_torch = lambda params: {k: torch.from_numpy(np.require(v, requirements=["C", "W"]))  # noqa: E731
                                   for k, v in params.items()}  # fmt: skip
        self.encoder.load_state_dict(as_torch(encoder), strict=True, assign=True)
        self.decoder.load_state_dict(as_torch(decoder), strict=True, assign=True)
        if self.enc_to_dec_proj is not None:
            self.enc_to_dec_proj.load_state_dict({k.removeprefix(PROJECTION + "."): v
                                                  for k, v in as_torch(projection).items()}, assign=True)  # fmt: skip

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], *, dtype: Any = None,
                        seed: int = 0, device_map: Any = None, **hub_args: Any) -> BigBirdEncoderDecoderModel:  # fmt: skip
        """Load transformers' ``EncoderDecoderModel`` checkpoint of two BigBirds (a directory or a Hub id;
        ``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``force_download``, ``subfolder``)."""
        config, enc, dec, proj, report = load_encoder_decoder(pretrained_model_name_or_path, prefer=(), seed=seed,
                                                              **hub_args)  # fmt: skip
        with torch.device("meta"):
            model = cls(config, _init=False)
        model._load(enc, dec, proj)
        model.load_report = report
        target = torch_dtype_of(dtype, None)
        if target != torch.float32:
            model.to(target)
        if device_map is not None:
            model.to(device_map)
        return model.eval()

    def save_pretrained(self, save_directory: str | os.PathLike[str], safe_serialization: bool = True) -> None:
        """transformers' layout (``encoder.*``, ``decoder.*``), written atomically."""
        state = to_canonical(self.state_dict())  # bit-exact, bfloat16 included
        write_checkpoint(os.fspath(save_directory), self.config, state, "EncoderDecoderModel",
                         "safetensors" if safe_serialization else "torch-bin")  # fmt: skip

    def encoder_states(self, encoder_outputs: Any) -> torch.Tensor:
        """The encoder's last hidden state in the decoder's width (what cross-attention reads)."""
        states = encoder_outputs[0]
        return states if self.enc_to_dec_proj is None else self.enc_to_dec_proj(states)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                encoder_outputs=None, past_key_values=None, inputs_embeds=None, labels=None, use_cache=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):  # fmt: skip
        """transformers' ``EncoderDecoderModel.forward``: the encoder (unless ``encoder_outputs`` are given), the
        decoder on ``decoder_input_ids`` (from ``labels`` shifted right when not given, masked where they are padding); the loss is the
        cross-entropy of the logits against ``labels`` (-100 ignored)."""
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds, output_attentions=output_attentions,
                                           output_hidden_states=output_hidden_states)  # fmt: skip
        decoder_input_ids, decoder_attention_mask = decoder_inputs(self.config, labels, decoder_input_ids,
                                                                   decoder_attention_mask)  # fmt: skip
        out = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                           encoder_hidden_states=self.encoder_states(encoder_outputs),
                           encoder_attention_mask=attention_mask, past_key_values=past_key_values, use_cache=use_cache,
                           output_attentions=output_attentions, output_hidden_states=output_hidden_states)  # fmt: skip
        loss = None if labels is None else cross_entropy(out.logits.float(), labels)
        result = O.Seq2SeqLMOutput(loss=loss, logits=out.logits, past_key_values=out.past_key_values,
                                   decoder_hidden_states=out.hidden_states, decoder_attentions=out.attentions,
                                   cross_attentions=out.cross_attentions,
                                   encoder_last_hidden_state=encoder_outputs[0],
                                   encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
                                   encoder_attentions=getattr(encoder_outputs, "attentions", None))  # fmt: skip
        if return_dict is False:
            return result.to_tuple()
        return result

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any):
        """Encode ``input_ids`` once, then decode from the start token with the decoder's :meth:`generate`
        (every argument of it; the pair's ``eos_token_id`` / ``pad_token_id`` by default)."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        states = self.encoder_states(self.encoder(input_ids=input_ids, attention_mask=mask))
        start = torch.full((input_ids.shape[0], 1), self.config.start_token, dtype=input_ids.dtype,
                           device=input_ids.device)  # fmt: skip
        return self.decoder.generate(start, encoder_hidden_states=states, encoder_attention_mask=mask,
                                     **generate_defaults(self.config, kwargs))  # fmt: skip

    def can_generate(self) -> bool:
        return True
