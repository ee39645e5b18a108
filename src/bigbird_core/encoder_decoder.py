"""A BigBird encoder paired with a BigBird decoder: transformers' ``EncoderDecoderModel`` layout, once for every
backend.

config.json: ``model_type`` "encoder-decoder", the two BigBird configs under ``encoder`` and ``decoder`` (the
decoder with ``is_decoder`` and ``add_cross_attention``), ``decoder_start_token_id``, ``pad_token_id``,
``eos_token_id``. Weights: the encoder's ``BigBirdModel`` names under ``encoder.``, the decoder's
``BigBirdForCausalLM`` names under ``decoder.``, and ``enc_to_dec_proj`` (a Linear from the encoder's width to the
decoder's) when the widths differ. The encoder runs block-sparse on long inputs; the decoder is causal full
attention with cross-attention to the encoder's last hidden state.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import BigBirdConfig
from .errors import CheckpointError, CheckpointMismatchError, ConfigError, InputError, fail
from .head_specs import BASE_HEAD, DECODER_HEAD
from .params import linear_params
from .validate import IGNORE_INDEX
from .weights import LoadReport, match_state_dict

ENCODER_HEAD = BASE_HEAD  # the pair runs the body alone as its encoder and the causal LM as its decoder
PROJECTION = "enc_to_dec_proj"


@dataclass(frozen=True)
class EncoderDecoderConfig:
    """transformers' ``EncoderDecoderConfig`` with BigBird on both sides.

    Attributes:
        encoder, decoder: the two configs (the decoder's ``is_decoder`` and ``add_cross_attention`` are set).
        decoder_start_token_id: the first decoder token of generation; None: the decoder's ``bos_token_id``.
        pad_token_id, eos_token_id: generation's (None: the decoder's).
    """

    encoder: BigBirdConfig
    decoder: BigBirdConfig
    decoder_start_token_id: int | None = None
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, BigBirdConfig) or not isinstance(self.decoder, BigBirdConfig):
            raise fail(ConfigError, "encoder / decoder", "two BigBirdConfig objects", (self.encoder, self.decoder))
        if self.encoder.is_decoder:
            raise fail(ConfigError, "encoder.is_decoder", "False (the encoder attends both ways)", True)
        if not (self.decoder.is_decoder and self.decoder.add_cross_attention):
            raise fail(ConfigError, "decoder", "a config with is_decoder and add_cross_attention True (use "
                       "EncoderDecoderConfig.from_encoder_decoder_configs)", "a config without them")  # fmt: skip
        for name in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 0 <= value < self.decoder.vocab_size):  # fmt: skip
                raise fail(ConfigError, name, f"a token id in [0, {self.decoder.vocab_size}) or None", repr(value))

    @classmethod
    def from_encoder_decoder_configs(cls, encoder: BigBirdConfig, decoder: BigBirdConfig,
                                     **kwargs: Any) -> EncoderDecoderConfig:  # fmt: skip
        """transformers' constructor: the decoder becomes a decoder with cross-attention."""
        return cls(encoder, decoder.replace(is_decoder=True, add_cross_attention=True), **kwargs)

    @property
    def projection(self) -> bool:
        """Whether the encoder's states are projected to the decoder's width (``enc_to_dec_proj``)."""
        return self.encoder.hidden_size != self.decoder.hidden_size

    @property
    def start_token(self) -> int:
        start = self.decoder_start_token_id
        start = self.decoder.bos_token_id if start is None else start
        if start is None:
            raise fail(InputError, "decoder_start_token_id", "a token id in the config", None)
        return start

    def replace(self, **changes: Any) -> EncoderDecoderConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(encoder=self.encoder.to_dict(), decoder=self.decoder.to_dict(), model_type="encoder-decoder",
                   is_encoder_decoder=True, decoder_start_token_id=self.decoder_start_token_id,
                   pad_token_id=self.pad_token_id, eos_token_id=self.eos_token_id)  # fmt: skip
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderDecoderConfig:
        """The pair of a ``config.json`` dict: both sides BigBird configs (one level deep: a pair inside a pair, or
        anything nested deeper, is refused with a ConfigError, never a RecursionError)."""
        if not isinstance(data, dict) or data.get("model_type") != "encoder-decoder":
            raise fail(ConfigError, "config", 'an encoder-decoder config (model_type "encoder-decoder")',
                       repr(data.get("model_type")) if isinstance(data, dict) else data)  # fmt: skip
        parts = {}
        for side in ("encoder", "decoder"):
            part = data.get(side)
            if not isinstance(part, dict) or part.get("model_type", "big_bird") not in ("big_bird", None):
                raise fail(ConfigError, f"config.{side}", "a BigBird config (model_type big_bird)",
                           repr(part.get("model_type")) if isinstance(part, dict) else part)  # fmt: skip
            parts[side] = BigBirdConfig.from_dict(part)
        known = ("encoder", "decoder", "decoder_start_token_id", "pad_token_id", "eos_token_id")
        return cls(parts["encoder"], parts["decoder"], data.get("decoder_start_token_id"), data.get("pad_token_id"),
                   data.get("eos_token_id"), {k: v for k, v in data.items() if k not in known})  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")


def split_state(config: EncoderDecoderConfig, state: dict[str, np.ndarray], *, seed: int = 0,
                warn: bool = False) -> tuple[dict, dict, dict, LoadReport]:  # fmt: skip
    """Fit a pair's ``{name: array}`` to its two models: ``(encoder params, decoder params, projection params,
    report)``; each side as its own model loads it (tied decoder weights, missing entries initialised)."""
    sides = {}
    missing, unexpected, mismatched = [], [], []
    for prefix, cfg, head, offset in (("encoder.", config.encoder, ENCODER_HEAD, 0),
                                      ("decoder.", config.decoder, DECODER_HEAD, 1)):  # fmt: skip
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        params, report = match_state_dict(cfg, head, part, seed=seed + offset, dtype="float32", warn=warn)
        sides[prefix] = params
        missing += [prefix + k for k in report.missing_keys]
        unexpected += [prefix + k for k in report.unexpected_keys]
        mismatched += [(prefix + k[0],) + tuple(k[1:]) for k in report.mismatched_keys]
    projection = {}
    if config.projection:
        rng = np.random.default_rng(seed + 2)
        for spec in linear_params(PROJECTION, config.decoder.hidden_size, config.encoder.hidden_size):
            if spec.name in state:
                value = np.asarray(state[spec.name])
                if value.dtype.kind != "f" and str(value.dtype) != "bfloat16":
                    raise CheckpointError(f"weights: {spec.name} is stored as {value.dtype}, expected floating point")
                if tuple(value.shape) != spec.shape:
                    raise CheckpointMismatchError(f"weights: the checkpoint does not fit the pair: mis-shaped "
                                                  f"{spec.name}: checkpoint {tuple(value.shape)}, config expects "
                                                  f"{spec.shape}")  # fmt: skip
                projection[spec.name] = value.astype(np.float32)
                continue
            missing.append(spec.name)
            projection[spec.name] = (rng.standard_normal(spec.shape).astype(np.float32) * np.float32(
                config.decoder.initializer_range) if spec.init == "normal" else np.zeros(spec.shape, np.float32))  # fmt: skip
    known = ("encoder.", "decoder.", PROJECTION + ".")
    unexpected += [k for k in state if not k.startswith(known)]
    return sides["encoder."], sides["decoder."], projection, LoadReport(tuple(missing), tuple(unexpected),
                                                                         tuple(mismatched))  # fmt: skip


def init_encoder_decoder(config: EncoderDecoderConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random parameters of the pair, transformers' initialisation, under their stored names."""
    from .weights import init_params

    state = {"encoder." + k: v for k, v in init_params(config.encoder, ENCODER_HEAD, seed=seed).items()}
    state.update({"decoder." + k: v for k, v in init_params(config.decoder, DECODER_HEAD, seed=seed + 1).items()})
    return state


def load_encoder_decoder(name_or_path: str | os.PathLike[str], *, prefer: tuple[str, ...], seed: int = 0,
                         **hub_args: Any) -> tuple[EncoderDecoderConfig, dict, dict, dict, LoadReport]:  # fmt: skip
    """Read a pair's checkpoint (a directory or a Hub id): ``(config, encoder, decoder, projection, report)``."""
    from .checkpoint import CONFIG, WEIGHT_FILES, _read_weights
    from .files import read_consistently
    from .hub import resolve

    directory = resolve(name_or_path, tuple(dict.fromkeys(prefer + WEIGHT_FILES)), **hub_args)

    def read(d):  # the config and the weights of one version of the directory
        if not d.exists(CONFIG):
            raise CheckpointError(f"{d.path}: no {CONFIG} (not a checkpoint directory)")
        with d.open(CONFIG) as fh:
            try:
                data = json.loads(fh.read().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"config: {d.where(CONFIG)} is not valid JSON ({exc})") from None
            except RecursionError:
                raise ConfigError(f"config: {d.where(CONFIG)} is nested too deeply to be a config") from None
        return EncoderDecoderConfig.from_dict(data), _read_weights(d, prefer, None)

    config, state = read_consistently(os.fspath(directory), read)
    enc, dec, proj, report = split_state(config, state, seed=seed, warn=True)
    return config, enc, dec, proj, report


def read_pair_config(directory: str | os.PathLike[str]) -> EncoderDecoderConfig | None:
    """The pair config of a checkpoint directory whose ``config.json`` is an encoder-decoder's, else None."""
    from .checkpoint import CONFIG
    from .files import OpenDirectory

    with OpenDirectory(os.fspath(directory)) as d:
        if not d.exists(CONFIG):
            return None
        with d.open(CONFIG) as fh:
            raw = fh.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None  # the BigBird reader says what is wrong with it
    if not isinstance(data, dict) or data.get("model_type") != "encoder-decoder":
        return None
    return EncoderDecoderConfig.from_dict(data)


def generation_tokens(config: EncoderDecoderConfig) -> dict[str, Any]:
    """transformers' generation defaults of a pair: the pair's ids, else the decoder's (eos, pad), and the start
    token (``decoder_start_token_id``, else the decoder's ``bos_token_id``)."""
    eos = config.decoder.eos_token_id if config.eos_token_id is None else config.eos_token_id
    pad = config.decoder.pad_token_id if config.pad_token_id is None else config.pad_token_id
    return {"eos_token_id": eos, "pad_token_id": pad, "start": config.start_token}


def check_pair_labels(config: EncoderDecoderConfig, labels: Any) -> None:
    """A pair's ``labels``: integer ids ``(batch, length)`` in ``[0, decoder vocab)`` or ``IGNORE_INDEX`` (a label
    equal to the vocabulary size gave a finite loss in torch and NaN in Flax)."""
    from .validate import check_class_ids

    shape = tuple(getattr(labels, "shape", ()))
    if len(shape) != 2 or 0 in shape:
        raise fail(InputError, "labels", "an integer array (batch, length) of decoder token ids", labels)
    check_class_ids("labels", labels, (shape,), config.decoder.vocab_size)


def decoder_inputs(config: EncoderDecoderConfig, labels: Any, decoder_input_ids: Any,
                   decoder_attention_mask: Any) -> tuple[Any, Any]:  # fmt: skip
    """The decoder's inputs and mask of a forward call (transformers' ``EncoderDecoderModel``): as given, or from
    ``labels``: the start token, then the labels but the last, ignored labels (``IGNORE_INDEX``) as padding, masked where the
    input is the padding id."""
    if labels is not None:
        check_pair_labels(config, labels)
    if decoder_input_ids is not None or labels is None:
        if decoder_input_ids is None:
            raise fail(InputError, "decoder_input_ids", "the decoder's input ids (or labels)", None)
        return decoder_input_ids, decoder_attention_mask
    from .arrays import namespace

    xp = namespace(labels)
    pad = generation_tokens(config)["pad_token_id"]
    start = xp.full_like(labels[:, :1], config.start_token)
    shifted = xp.concat([start, labels[:, :-1]], axis=1)
    ids = xp.where(shifted == IGNORE_INDEX, xp.full_like(shifted, pad), shifted)
    mask = xp.astype(ids != pad, labels.dtype) if decoder_attention_mask is None else decoder_attention_mask
    return ids, mask


def generate_defaults(config: EncoderDecoderConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``generate``'s keywords with the pair's end and padding ids where the caller gave none."""
    tokens = generation_tokens(config)
    return {**kwargs, **{name: tokens[name] for name in ("eos_token_id", "pad_token_id") if kwargs.get(name) is None}}
