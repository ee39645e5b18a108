"""``BigBirdConfig``: every field of transformers' BigBirdConfig, with the same defaults.

Reads and writes a transformers ``config.json``; keys we do not model are kept in ``extra`` and written
back unchanged, so a round trip through this class loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from .activations import ACTIVATIONS as ACTIVATION_KINDS
from .errors import ConfigError, fail

ACTIVATIONS = tuple(ACTIVATION_KINDS)  # the hidden_act names (bigbird_core.activations)


def sparse_blocks_needed(num_random_blocks: int) -> int:
    """Block-sparse attention needs more than this many blocks: the two global blocks, the three-block window
    and the random blocks of both ends (``5 + 2r``)."""
    return 5 + 2 * num_random_blocks


ATTENTION_TYPES = ("block_sparse", "original_full")
RANDOM_PLANS = ("transformers", "google", "seeded")
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


_JSON_TYPES = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
}
_JSON_NAMES = {"bool": "a JSON boolean (true or false)", "int": "an integer", "float": "a number",
               "str": "a string", "None": "null"}  # fmt: skip


def _as_written(value: Any) -> str:
    """A value as it is written in config.json (``"768"`` with its quotes)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


@dataclass(frozen=True)
class BigBirdConfig:
    """Hyper-parameters of a BigBird model (frozen; use :meth:`replace` to derive a variant).

    Example:
        >>> cfg = BigBirdConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
        >>> cfg.head_dim
        16
    """

    vocab_size: int = 50358  # rows of the word embedding and of the MLM decoder
    hidden_size: int = 768  # model width
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # width of the feed-forward layer
    hidden_act: str = "gelu_new"  # activation of the feed-forward, MLM transform and classifier heads
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1  # full attention only; block-sparse has no attention dropout
    max_position_embeddings: int = 4096  # longest input; rows of the position embedding
    type_vocab_size: int = 2
    initializer_range: float = 0.02  # std of the normal initialisation
    layer_norm_eps: float = 1e-12
    use_cache: bool = True  # causal LM: return a key/value cache
    pad_token_id: int = 0  # pads input ids and given position ids up to a multiple of block_size
    bos_token_id: int = 1
    eos_token_id: int = 2
    sep_token_id: int = 66  # QA: the question ends at the first [SEP]
    attention_type: str = "block_sparse"  # or "original_full"
    use_bias: bool = True  # bias of the query/key/value projections only
    rescale_embeddings: bool = False  # multiply word embeddings by sqrt(hidden_size)
    block_size: int = 64  # tokens per attention block
    num_random_blocks: int = 3  # random key blocks per middle query block
    classifier_dropout: float | None = None  # sequence/token classifiers; None means hidden_dropout_prob
    num_labels: int = 2
    problem_type: str | None = None  # sequence classification loss; None infers it from the labels
    is_decoder: bool = False  # causal self-attention (BigBirdForCausalLM)
    add_cross_attention: bool = False  # decoders: cross-attention to an encoder's hidden states in every layer
    tie_word_embeddings: bool = True  # the MLM decoder weight is the word embedding matrix
    chunk_size_feed_forward: int = 0  # accepted for compatibility; has no numerical effect
    output_attentions: bool = False
    output_hidden_states: bool = False
    use_return_dict: bool = True
    # Our own choice of random-block plan (see bigbird_core.plans): "transformers" reproduces
    # transformers 4.57.6 (zeros in eval, a seeded per-layer plan in train), "google" the original
    # planner fixed at construction, "seeded" a fresh plan drawn from plan_seed.
    random_plan: str = "transformers"
    plan_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # unknown config.json keys

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------------------------------- derived
    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def min_block_sparse_length(self) -> int:
        """Shortest input (unpadded, as transformers judges it) that runs block-sparse: more than
        ``5 + 2r`` blocks' worth of tokens (704 with the defaults); shorter calls use full attention."""
        return sparse_blocks_needed(self.num_random_blocks) * self.block_size + 1

    @property
    def effective_classifier_dropout(self) -> float:
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    # transformers' tools (pipelines, Trainer, PEFT) read these from a model's config
    @property
    def id2label(self) -> dict[int, str]:
        """Label names by class index (config.json's ``id2label``, else ``LABEL_i``)."""
        return {int(k): v for k, v in self.to_dict()["id2label"].items()}

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @property
    def model_type(self) -> str:
        return "big_bird"

    @property
    def _commit_hash(self) -> str | None:
        """The Hub revision a checkpoint came from (transformers' pipelines pass it on); ``None`` here."""
        return self.extra.get("_commit_hash")

    @property
    def name_or_path(self) -> str:
        return str(self.extra.get("_name_or_path", ""))

    @property
    def return_dict(self) -> bool:
        return self.use_return_dict

    def problem_type_for(self, integer_labels: bool) -> str:
        """transformers' rule for the sequence-classification loss: the configured ``problem_type``, else
        regression for one label, single-label for integer labels, multi-label otherwise."""
        if self.problem_type is not None:
            return self.problem_type
        if self.num_labels == 1:
            return "regression"
        return "single_label_classification" if integer_labels else "multi_label_classification"

    def replace(self, **changes: Any) -> BigBirdConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field that cannot work."""
        self._check_types()
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size", "block_size",
                    "num_labels")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(ConfigError, name, "a positive integer", value)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size: expected a multiple of num_attention_heads ({self.num_attention_heads}), "
                f"got {self.hidden_size}"
            )
        r = self.num_random_blocks
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise fail(ConfigError, "num_random_blocks", "a non-negative integer", r)
        if self.attention_type not in ATTENTION_TYPES:
            raise fail(ConfigError, "attention_type", f"one of {ATTENTION_TYPES}", repr(self.attention_type))
        if self.hidden_act not in ACTIVATIONS:
            raise fail(ConfigError, "hidden_act", f"one of {ACTIVATIONS}", repr(self.hidden_act))
        if self.random_plan not in RANDOM_PLANS:
            raise fail(ConfigError, "random_plan", f"one of {RANDOM_PLANS}", repr(self.random_plan))
        if self.problem_type not in PROBLEM_TYPES:
            raise fail(ConfigError, "problem_type", f"one of {PROBLEM_TYPES}", repr(self.problem_type))
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is None and name == "classifier_dropout":
                continue
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise fail(ConfigError, name, "a probability in [0, 1)", value)
        if not 0 < self.layer_norm_eps < math.inf:
            raise fail(ConfigError, "layer_norm_eps", "a positive finite number", self.layer_norm_eps)
        if not 0 <= self.initializer_range < math.inf:
            raise fail(ConfigError, "initializer_range", "a non-negative finite number", self.initializer_range)
        if not 0 <= self.plan_seed < 2**32:
            raise fail(ConfigError, "plan_seed", "an integer in [0, 2**32)", self.plan_seed)
        for name in ("id2label", "label2id"):  # transformers' label maps, kept in extra
            value = self.extra.get(name)
            if value is not None and not isinstance(value, dict):
                raise fail(ConfigError, name, "a mapping (class index -> label name, or the reverse)", repr(value))
        labels = self.extra.get("id2label")
        if isinstance(labels, dict) and not all(str(k).lstrip("-").isdigit() and int(k) >= 0 for k in labels):
            raise fail(ConfigError, "id2label", "class indices (non-negative integers) as keys",
                       repr(sorted(map(str, labels))[:4]))  # fmt: skip
        for name in ("pad_token_id", "sep_token_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise fail(ConfigError, name, f"a token id in [0, {self.vocab_size})", value)
        if self.pad_token_id >= self.max_position_embeddings:
            # given position ids are padded with pad_token_id, which must be a valid position
            raise fail(ConfigError, "pad_token_id", f"< max_position_embeddings ({self.max_position_embeddings})",
                       self.pad_token_id)  # fmt: skip
        if self.add_cross_attention and not self.is_decoder:  # transformers refuses it too (BigBirdLayer)
            raise fail(ConfigError, "add_cross_attention", "False unless is_decoder is True (cross-attention is "
                       "for decoders)", True)  # fmt: skip

    def _check_types(self) -> None:
        """Every field of its JSON type: booleans for flags, numbers for floats, integers for sizes, strings
        for names (a string ``"768"`` or ``"false"`` is refused, shown as written)."""
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value, kinds = getattr(self, f.name), str(f.type).replace(" ", "").split("|")
            ok = ("None" in kinds and value is None) or any(_JSON_TYPES[k](value) for k in kinds if k in _JSON_TYPES)
            if not ok:
                expected = " or ".join(_JSON_NAMES[k] for k in kinds if k in _JSON_NAMES)
                raise ConfigError(f"{f.name}: expected {expected}, got {_as_written(value)}")

    # ------------------------------------------------------------------------------------ config.json
    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` content, transformers' key names, unknown keys preserved."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in ("extra", "num_labels", "use_return_dict"):
                continue
            out[f.name] = getattr(self, f.name)
        out["return_dict"] = self.use_return_dict
        labels = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
        old = self.extra.get("id2label")
        if isinstance(old, dict) and len(old) == self.num_labels:
            labels = {str(k): v for k, v in old.items()}
        out["id2label"] = labels
        out["label2id"] = {v: int(k) for k, v in labels.items()}
        out["model_type"] = "big_bird"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BigBirdConfig:
        """Build from a ``config.json`` dict; keys that are not fields go to ``extra`` (see :func:`_init`)."""
        if not isinstance(data, dict):
            raise fail(ConfigError, "config", "a JSON object", data)
        return cls(**{str(k): v for k, v in data.items()})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json`` to ``path`` (a file path)."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    @classmethod
    def from_json_bytes(cls, raw: bytes, path: str = "config.json") -> BigBirdConfig:
        """Build from the bytes of a ``config.json`` (UTF-8 JSON object; every field of its JSON type)."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config: {path} is not UTF-8 text (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config: {path} is not valid JSON ({exc})") from None
        except RecursionError:
            raise ConfigError(f"config: {path} is nested too deeply to be a config") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BigBirdConfig:
        """Read a ``config.json`` file, or ``config.json`` inside a directory."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise ConfigError(f"config: no config.json at {path}") from None
        except OSError as exc:
            raise ConfigError(f"config: cannot read {path} ({exc.strerror})") from None
        return cls.from_json_bytes(raw, path)


_generated_init = BigBirdConfig.__init__


def _init(self: BigBirdConfig, *args: Any, **kwargs: Any) -> None:
    """``BigBirdConfig(**kwargs)`` as transformers' ``PretrainedConfig(**kwargs)``: every field by name, and any
    other keyword (``return_dict``, ``id2label``, ``architectures``, ``torch_dtype``, ...) kept in ``extra`` and
    written back to config.json, so ``BigBirdConfig(**transformers_config.to_dict())`` works. ``return_dict`` is
    ``use_return_dict``; ``id2label`` sets ``num_labels`` unless it is given; another ``model_type`` is refused."""
    names = {f.name for f in dataclasses.fields(BigBirdConfig)}
    unknown = {k: kwargs.pop(k) for k in list(kwargs) if k not in names}
    kind = unknown.pop("model_type", "big_bird")
    if kind == "encoder-decoder":
        raise ConfigError("config: model_type 'encoder-decoder' is a pair of BigBirds: load it with "
                          "BigBirdEncoderDecoderModel (bigbird info and bigbird check take pairs too)")
    if kind not in ("big_bird", None):
        raise fail(ConfigError, "config.model_type", '"big_bird"', repr(kind))
    if "return_dict" in unknown and "use_return_dict" not in kwargs:
        kwargs["use_return_dict"] = unknown.pop("return_dict")
    labels = unknown.get("id2label", kwargs.get("extra", {}).get("id2label"))
    if "num_labels" not in kwargs and isinstance(labels, dict) and labels:
        kwargs["num_labels"] = len(labels)
    if unknown:
        kwargs["extra"] = {**kwargs.get("extra", {}), **unknown}
    _generated_init(self, *args, **kwargs)


BigBirdConfig.__init__ = _init  # type: ignore[method-assign]
