"""The eight heads of transformers 4.57.6's BigBird, as registry entries (see :mod:`bigbird_core.registry`).

Each entry states the head's rules once: label checks and losses (array API code, see
:mod:`bigbird_core.rules`), head parameters under transformers' names, output fields, detection keys and
``bigbird check``'s default labels.
"""

from __future__ import annotations

from typing import Any

from . import outputs as O
from .arrays import namespace
from .config import BigBirdConfig
from .inputs import QA_LOGITS_PENALTY
from .params import ParamSpec, linear_params, norm_params
from .registry import HeadSpec, register_head
from .rules import cross_entropy, question_answering_loss, sequence_classification_loss
from .validate import check_class_ids, check_positions, check_sequence_labels

TIED_DECODER_WEIGHT = "cls.predictions.decoder.weight"


# ------------------------------------------------------------------------------------------ parameters
def mlm_params(c: BigBirdConfig) -> list[ParamSpec]:
    """``cls.predictions``: transform (dense, LayerNorm), the decoder bias; the decoder weight is the word
    embedding matrix unless ``tie_word_embeddings`` is off."""
    specs = linear_params("cls.predictions.transform.dense", c.hidden_size, c.hidden_size)
    specs += norm_params("cls.predictions.transform.LayerNorm", c.hidden_size)
    specs += [ParamSpec("cls.predictions.bias", (c.vocab_size,), "zeros")]
    if not c.tie_word_embeddings:
        specs += [ParamSpec(TIED_DECODER_WEIGHT, (c.vocab_size, c.hidden_size), "normal")]
    return specs


def _qa_params(c: BigBirdConfig) -> list[ParamSpec]:
    h = c.hidden_size
    specs = linear_params("qa_classifier.intermediate.dense", c.intermediate_size, h)
    specs += linear_params("qa_classifier.output.dense", h, c.intermediate_size)
    specs += norm_params("qa_classifier.output.LayerNorm", h)
    return specs + linear_params("qa_classifier.qa_outputs", 2, h)


# ---------------------------------------------------------------------------------------------- labels
def _token_labels(config, shapes, given) -> None:
    if "labels" in given:
        check_class_ids("labels", given["labels"], ((shapes.batch, shapes.seq_len),), config.vocab_size)


def _pretraining_labels(config, shapes, given) -> None:
    _token_labels(config, shapes, given)
    if "next_sentence_label" in given:
        b = shapes.batch
        check_class_ids("next_sentence_label", given["next_sentence_label"], ((b,), (b, 1)), 2)


def _sequence_labels(config, shapes, given) -> None:
    if "labels" in given:
        check_sequence_labels(config, given["labels"], shapes.batch)


def _choice_labels(config, shapes, given) -> None:
    if "labels" in given:
        b = shapes.batch
        check_class_ids("labels", given["labels"], ((b,), (b, 1)), shapes.num_choices or 1)


def _token_class_labels(config, shapes, given) -> None:
    if "labels" in given:
        check_class_ids("labels", given["labels"], ((shapes.batch, shapes.seq_len),), config.num_labels)


def _qa_labels(config, shapes, given) -> None:
    check_positions(given, ("start_positions", "end_positions"), shapes.batch)


# ---------------------------------------------------------------------------------------------- losses
def _logits_loss(config, fields, labels) -> Any:
    """Cross-entropy of ``logits`` against ``labels`` (masked LM, multiple choice, token classification)."""
    return None if labels.get("labels") is None else cross_entropy(fields["logits"], labels["labels"])


def _pretraining_loss(config, fields, labels) -> Any:
    if labels.get("labels") is None:
        return None
    loss = cross_entropy(fields["prediction_logits"], labels["labels"])
    if labels.get("next_sentence_label") is not None:
        loss = loss + cross_entropy(fields["seq_relationship_logits"], labels["next_sentence_label"])
    return loss


def _causal_loss(config, fields, labels) -> Any:
    """Predict the next token: logits of positions ``0..L-2`` against labels ``1..L-1``."""
    y = labels.get("labels")
    return None if y is None else cross_entropy(fields["logits"][:, :-1], y[:, 1:])


def _sequence_loss(config, fields, labels) -> Any:
    y = labels.get("labels")
    return None if y is None else sequence_classification_loss(config, fields["logits"], y)


def _qa_loss(config, fields, labels) -> Any:
    if "start_positions" not in labels:
        return None
    return question_answering_loss(fields["start_logits"], fields["end_logits"], labels["start_positions"],
                                   labels["end_positions"])  # fmt: skip


# ---------------------------------------------------------------------------------------- output fields
def _base_fields(prep, body, outputs) -> dict[str, Any]:
    return {"last_hidden_state": prep.cut(body.sequence_output), "pooler_output": body.pooled}


def _logits_fields(prep, body, outputs) -> dict[str, Any]:
    return {"logits": outputs[0]}


def _choice_fields(prep, body, outputs) -> dict[str, Any]:
    logits = outputs[0]  # (batch * choices, 1)
    return {"logits": namespace(logits).reshape(logits, (-1, prep.shapes.num_choices))}


def _qa_fields(prep, body, outputs) -> dict[str, Any]:
    """Question tokens but position 0 get ``QA_LOGITS_PENALTY`` subtracted from both logits."""
    logits = outputs[0]  # (batch, seq, 2)
    if prep.logits_mask is not None:
        xp = namespace(logits)
        logits = logits - xp.astype(prep.logits_mask[:, :, None], logits.dtype) * QA_LOGITS_PENALTY
    return {"start_logits": logits[..., 0], "end_logits": logits[..., 1], "pooler_output": body.pooled}


# ------------------------------------------------------------------------------------- default labels
def _example_tokens(config, rng, ids) -> dict[str, Any]:
    return {"labels": rng.integers(0, config.vocab_size, ids.shape)}


def _example_classes(config, rng, ids) -> dict[str, Any]:
    return {"labels": rng.integers(0, config.num_labels, (ids.shape[0],))}


def _example_choices(config, rng, ids) -> dict[str, Any]:
    return {"labels": rng.integers(0, ids.shape[1], (ids.shape[0],))}


def _example_token_classes(config, rng, ids) -> dict[str, Any]:
    return {"labels": rng.integers(0, config.num_labels, ids.shape)}


def _example_spans(config, rng, ids) -> dict[str, Any]:
    """A question of five tokens (the [SEP] at position 5) and random answer positions."""
    batch, seq = ids.shape
    if seq <= 6:
        return {}
    ids[..., 5] = config.sep_token_id
    return {"start_positions": rng.integers(0, seq, (batch,)), "end_positions": rng.integers(0, seq, (batch,))}


# ------------------------------------------------------------------------------------------ the table
# the heads other parts of the library run by their role, named here once
BASE_HEAD = "BigBirdModel"  # the body alone: sequence parallelism, a pair's encoder, the fallback of detection
DECODER_HEAD = "BigBirdForCausalLM"  # a pair's decoder
ALL_WEIGHTS_HEAD = "BigBirdForPreTraining"  # holds every weight the other heads share (the CLI's default model)

HEADS = (
    "BigBirdModel", "BigBirdForPreTraining", "BigBirdForMaskedLM", "BigBirdForCausalLM",
    "BigBirdForSequenceClassification", "BigBirdForMultipleChoice", "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering",
)  # fmt: skip  (the built-in heads, in the registry's order)



def _has_mlm(keys) -> bool:
    return any(k.startswith("cls.predictions.") for k in keys)


register_head(HeadSpec(
    BASE_HEAD, O.BaseModelOutputWithPoolingAndCrossAttentions, _base_fields, body_prefix="", cache=True,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForPreTraining", O.BigBirdForPreTrainingOutput,
    lambda prep, body, outputs: {"prediction_logits": outputs[0], "seq_relationship_logits": outputs[1]},
    labels=("labels", "next_sentence_label"), check_labels=_pretraining_labels, loss=_pretraining_loss,
    params=lambda c: mlm_params(c) + linear_params("cls.seq_relationship", 2, c.hidden_size),
    detect=lambda keys: "cls.seq_relationship.weight" in keys and _has_mlm(keys),
    example_labels=_example_tokens,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForMaskedLM", O.MaskedLMOutput, _logits_fields, labels=("labels",), check_labels=_token_labels,
    loss=_logits_loss, params=mlm_params, detect=_has_mlm,
    example_labels=_example_tokens,
))  # fmt: skip
register_head(HeadSpec(  # same weights as the masked LM: never detected from keys alone
    "BigBirdForCausalLM", O.CausalLMOutputWithCrossAttentions, _logits_fields, labels=("labels",),
    check_labels=_token_labels, loss=_causal_loss, params=mlm_params, cache=True, example_labels=_example_tokens,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForSequenceClassification", O.SequenceClassifierOutput, _logits_fields, labels=("labels",),
    check_labels=_sequence_labels, loss=_sequence_loss,
    params=lambda c: linear_params("classifier.dense", c.hidden_size, c.hidden_size)
    + linear_params("classifier.out_proj", c.num_labels, c.hidden_size),
    detect=lambda keys: "classifier.out_proj.weight" in keys, example_labels=_example_classes,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForMultipleChoice", O.MultipleChoiceModelOutput, _choice_fields, labels=("labels",),
    check_labels=_choice_labels, loss=_logits_loss, params=lambda c: linear_params("classifier", 1, c.hidden_size),
    choices=True, detect=lambda keys: keys.get("classifier.weight", (0,))[0] == 1, example_labels=_example_choices,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForTokenClassification", O.TokenClassifierOutput, _logits_fields, labels=("labels",),
    check_labels=_token_class_labels, loss=_logits_loss,
    params=lambda c: linear_params("classifier", c.num_labels, c.hidden_size),
    detect=lambda keys: "classifier.weight" in keys and "classifier.out_proj.weight" not in keys,
    example_labels=_example_token_classes,
))  # fmt: skip
register_head(HeadSpec(
    "BigBirdForQuestionAnswering", O.BigBirdForQuestionAnsweringModelOutput, _qa_fields,
    labels=("start_positions", "end_positions"), check_labels=_qa_labels, loss=_qa_loss, params=_qa_params,
    pooler=False, question_lengths=True, num_labels=2,
    detect=lambda keys: any(k.startswith("qa_classifier.") for k in keys), example_labels=_example_spans,
))  # fmt: skip
