"""The PyTorch heads: ``BigBirdModel`` and the seven heads with transformers' API (their modules and
``head_logits``; the wrapper behaviour is ``bigbird_torch.pretrained``'s).

Example:
    >>> import torch, bigbird_torch as bb
    >>> model = bb.BigBirdForQuestionAnswering.from_pretrained("path/to/checkpoint").eval()
    >>> out = model(input_ids=torch.tensor(ids))
    >>> out.start_logits.shape
"""

from __future__ import annotations

from typing import Any

import torch
from bigbird_core.config import BigBirdConfig
from bigbird_core.generation import generation
from bigbird_core.validate import check_cross_inputs, check_inputs
from torch import nn

from .generation import generate as decode
from .generation import seeded_generator
from .model import BigBirdBody, BigBirdIntermediate, BigBirdResidualOutput, act, as_tensor
from .pretrained import MODEL_CLASSES, BigBirdPreTrainedModel, asarray, model_class, runner, torch_dtype_of

__all__ = ["MODEL_CLASSES", "BigBirdPreTrainedModel", "asarray", "model_class", "runner", "torch_dtype_of"]

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
        self.act = act(config.hidden_act)
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


class BigBirdHeadModel(BigBirdPreTrainedModel):
    """A head over the body under ``bert``: subclasses build their layers in ``_build_head`` and compute
    ``head_logits``."""

    def _build(self) -> None:
        self.bert = BigBirdBody(self.config, self.add_pooling_layer)
        self._build_head()

    def _build_head(self) -> None:
        raise NotImplementedError


class BigBirdForPreTraining(BigBirdHeadModel):
    head = "BigBirdForPreTraining"

    def _build_head(self) -> None:
        self.cls = BigBirdPreTrainingHeads(self.config, self.bert.embeddings.word_embeddings)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return self.cls.predictions(prep.cut(body.sequence_output)), self.cls.seq_relationship(body.pooled)


class BigBirdForMaskedLM(BigBirdHeadModel):
    head = "BigBirdForMaskedLM"

    def _build_head(self) -> None:
        self.cls = BigBirdOnlyMLMHead(self.config, self.bert.embeddings.word_embeddings)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self.cls.predictions(prep.cut(body.sequence_output)),)


class BigBirdForCausalLM(BigBirdHeadModel):
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

    def head_logits(self, prep, body):
        return (self.cls.predictions(prep.cut(body.sequence_output)),)

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
        input_ids, attention_mask = as_tensor(input_ids), as_tensor(attention_mask)
        encoder_hidden_states, encoder_attention_mask = as_tensor(encoder_hidden_states), as_tensor(
            encoder_attention_mask)  # fmt: skip
        shapes = check_inputs(self.config, self.head, input_ids=input_ids, attention_mask=attention_mask)
        check_cross_inputs(self.config, shapes.batch, encoder_hidden_states, encoder_attention_mask)
        g = generation(self.config, int(input_ids.shape[-1]), max_length=max_length, max_new_tokens=max_new_tokens,
                       eos_token_id=eos_token_id, pad_token_id=pad_token_id, do_sample=do_sample,
                       temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams,
                       length_penalty=length_penalty, early_stopping=early_stopping)  # fmt: skip
        generator = seeded_generator(seed, input_ids.device, generator)
        return decode(self, input_ids, attention_mask, g, encoder_hidden_states=encoder_hidden_states,
                      encoder_attention_mask=encoder_attention_mask, generator=generator, use_cache=use_cache)


class BigBirdClassificationHead(nn.Module):
    """dropout, dense, activation, dropout, out_proj on the first token."""

    def __init__(self, config: BigBirdConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.effective_classifier_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.act = act(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x[:, 0])  # (batch, hidden)
        return self.out_proj(self.dropout(self.act(self.dense(x))))


class BigBirdForSequenceClassification(BigBirdHeadModel):
    head = "BigBirdForSequenceClassification"

    def _build_head(self) -> None:
        self.classifier = BigBirdClassificationHead(self.config)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self.classifier(body.sequence_output),)


class BigBirdForMultipleChoice(BigBirdHeadModel):
    """Inputs ``(batch, num_choices, seq)``; logits ``(batch, num_choices)``."""

    head = "BigBirdForMultipleChoice"

    def _build_head(self) -> None:
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = nn.Linear(self.config.hidden_size, 1)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self.classifier(self.dropout(body.pooled)),)  # (batch * choices, 1)


class BigBirdForTokenClassification(BigBirdHeadModel):
    head = "BigBirdForTokenClassification"

    def _build_head(self) -> None:
        self.dropout = nn.Dropout(self.config.effective_classifier_dropout)
        self.classifier = nn.Linear(self.config.hidden_size, self.config.num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self.classifier(self.dropout(prep.cut(body.sequence_output))),)  # (batch, seq, labels)


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


class BigBirdForQuestionAnswering(BigBirdHeadModel):
    """Span extraction; ``question_lengths`` defaults to the first [SEP] + 1 (the core's QA rule)."""

    head = "BigBirdForQuestionAnswering"

    def _build_head(self) -> None:
        self.qa_classifier = BigBirdForQuestionAnsweringHead(self.config)

    def forward(self, input_ids=None, attention_mask=None, question_lengths=None, token_type_ids=None,
                position_ids=None, head_mask=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, plan=None):  # fmt: skip
        return self._forward(locals())

    def head_logits(self, prep, body):
        return (self.qa_classifier(prep.cut(body.sequence_output)),)  # (batch, seq, 2)
