"""The test oracle: transformers 4.57.6's BigBird, random-initialised and saved to a directory.

Only tests import this module; the library never imports transformers.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from bigbird_core import BigBirdConfig  # noqa: E402

HF_CLASSES = {
    "BigBirdModel": "BigBirdModel",
    "BigBirdForPreTraining": "BigBirdForPreTraining",
    "BigBirdForMaskedLM": "BigBirdForMaskedLM",
    "BigBirdForCausalLM": "BigBirdForCausalLM",
    "BigBirdForSequenceClassification": "BigBirdForSequenceClassification",
    "BigBirdForMultipleChoice": "BigBirdForMultipleChoice",
    "BigBirdForTokenClassification": "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering": "BigBirdForQuestionAnswering",
}


def hf_config(config: BigBirdConfig):
    data = config.to_dict()
    for ours in ("random_plan", "plan_seed"):
        data.pop(ours, None)
    return transformers.BigBirdConfig(**data)


def oracle_model(config: BigBirdConfig, head: str, seed: int, dtype=torch.float32):
    """A seeded random transformers model of ``head`` (eval mode)."""
    torch.manual_seed(seed)
    model = getattr(transformers, HF_CLASSES[head])(hf_config(config))
    return model.to(dtype).eval()


def save_oracle(model, directory: str, safe: bool = True) -> str:
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=safe)
    return directory


def oracle_forward(model, train: bool, **inputs):
    """Run the oracle on a fresh attention type (transformers mutates it on short inputs)."""
    body = getattr(model, "bert", model)
    body.set_attention_type(model.config.attention_type)
    model.train(train)
    state = np.random.get_state()
    try:
        with torch.no_grad():
            return model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, return_dict=True)
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def decoder_layers_as_in_flax():
    """transformers 4.57.6's PyTorch decoder layer with cross-attention as its Flax layer computes it.

    ``BigBirdLayer.forward`` (PyTorch) hands ``encoder_hidden_states`` to the *self*-attention, whose module then
    attends to the encoder instead of the decoder's own prefix (``is_cross_attention = encoder_hidden_states is
    not None``), and calls the cross-attention without ``encoder_attention_mask``. ``FlaxBigBirdLayer`` runs causal
    self-attention, then cross-attention with the encoder's mask (the BERT design, and what our backends do).
    Inside this context the PyTorch layer does the same with its own modules, so its ``generate`` can be the
    oracle of an encoder-decoder's decoding (see ``test_the_pytorch_oracle_is_patched_only_where_it_differs``).
    """
    from transformers.models.big_bird import modeling_big_bird as m

    original = m.BigBirdLayer.forward

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, band_mask=None, from_mask=None, to_mask=None, blocked_encoder_mask=None,
                past_key_values=None, output_attentions=False, cache_position=None, **kwargs):  # fmt: skip
        out = self.attention(hidden_states, attention_mask=attention_mask, head_mask=head_mask,
                             output_attentions=output_attentions, band_mask=band_mask, from_mask=from_mask,
                             to_mask=to_mask, from_blocked_mask=blocked_encoder_mask,
                             to_blocked_mask=blocked_encoder_mask)  # fmt: skip
        attention_output, outputs = out[0], out[1:]
        if encoder_hidden_states is not None:
            cross = self.crossattention(attention_output, head_mask=head_mask,
                                        encoder_hidden_states=encoder_hidden_states,
                                        encoder_attention_mask=encoder_attention_mask,
                                        output_attentions=output_attentions)  # fmt: skip
            attention_output, outputs = cross[0], outputs + cross[1:]
        return (self.feed_forward_chunk(attention_output),) + outputs

    m.BigBirdLayer.forward = forward
    try:
        yield
    finally:
        m.BigBirdLayer.forward = original
