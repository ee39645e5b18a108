"""transformers' own tools on our torch models: pipelines, Trainer (gradient checkpointing, checkpoints,
resume, save_model), PEFT LoRA. Each against transformers' BigBird on the same weights where it has one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from hubcache import SPECIAL, word_tokenizer  # noqa: E402

WORDS = "the a cat dog sat on mat what where is who ran park in big small red blue green house".split()
CFG = BigBirdConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32, num_attention_heads=2,
                    intermediate_size=64, num_hidden_layers=2, max_position_embeddings=256, block_size=8,
                    num_random_blocks=2, pad_token_id=0, bos_token_id=2, eos_token_id=3, sep_token_id=3,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer built with the `tokenizers` library ([CLS] a [SEP] b [SEP], as BigBird's)."""
    return word_tokenizer(WORDS)


def pair(head: str, tmp_path, **config):
    """Ours and transformers' model of ``head`` on the same weights."""
    ours = bt.MODEL_CLASSES[head](CFG.replace(**config), seed=0).eval()
    ours.save_pretrained(tmp_path / head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(transformers, head).from_pretrained(tmp_path / head).eval()
    return ours, theirs


def same_answers(a, b) -> None:
    """Pipeline results equal: every string and integer exactly, every score to 1e-5."""
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same_answers(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same_answers(a[k], b[k])
    elif isinstance(a, float | np.floating):
        assert abs(float(a) - float(b)) <= 1e-5, (a, b)
    else:
        assert a == b


@pytest.mark.parametrize(
    "task, head, inputs",
    [
        ("question-answering", "BigBirdForQuestionAnswering",
         dict(question="where is the cat", context="the cat sat on the mat in the big park")),
        ("fill-mask", "BigBirdForMaskedLM", ("the cat [MASK] on the mat",)),
        ("text-classification", "BigBirdForSequenceClassification", ("the dog ran in the park",)),
        ("token-classification", "BigBirdForTokenClassification", ("the red cat sat on a green mat",)),
    ],
)  # fmt: skip
def test_pipelines_give_transformers_answers(task, head, inputs, tokenizer, tmp_path):
    ours, theirs = pair(head, tmp_path, num_labels=3 if "Classification" in head else 2)
    args = inputs if isinstance(inputs, tuple) else ()
    kwargs = inputs if isinstance(inputs, dict) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = transformers.pipeline(task, model=ours, tokenizer=tokenizer)(*args, **kwargs)
        want = transformers.pipeline(task, model=theirs, tokenizer=tokenizer)(*args, **kwargs)
    same_answers(got, want)


def test_outputs_behave_like_model_outputs():
    out = bt.BigBirdForMaskedLM(CFG, seed=0).eval()(input_ids=torch.tensor([[2, 5, 6, 3]]))
    assert out.keys() == ["logits"] and out.values()[0] is out.logits and out.items()[0][0] == "logits"
    out["logits"] = out.logits * 2  # a field: the attribute changes
    out["input_ids"] = torch.tensor([1])  # a new key, after the fields (what fill-mask does)
    assert torch.equal(out[0], out.logits) and out.keys() == ["logits", "input_ids"]
    assert out.get("loss") is None and out.get("input_ids") is not None and len(out.to_tuple()) == 2
    with pytest.raises(TypeError, match="field names"):
        out[0] = 1


def test_model_attributes_tools_read():
    model = bt.BigBirdForSequenceClassification(CFG.replace(num_labels=3), seed=0)
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"} and model.config.label2id["LABEL_2"] == 2
    assert model.config._commit_hash is None and model.main_input_name == "input_ids"
    assert not model.can_generate() and bt.BigBirdForCausalLM(CFG.replace(is_decoder=True), seed=0).can_generate()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())


def _mlm_data(tokenizer, n=8):
    texts = ["the cat sat on the mat", "a dog ran in the park", "where is the big red house", "who sat on the mat"]
    enc = tokenizer([texts[i % 4] for i in range(n)], padding="max_length", max_length=16)
    return [{"input_ids": ids, "attention_mask": m, "labels": ids} for ids, m in
            zip(enc["input_ids"], enc["attention_mask"], strict=True)]  # fmt: skip


def test_trainer_with_gradient_checkpointing_saves_what_both_libraries_load(tokenizer, tmp_path):
    from bigbird_torch.integrations import BigBirdTrainerCallback

    model = bt.BigBirdForMaskedLM(CFG, seed=0)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, max_steps=4, save_steps=2,
        gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}, report_to=[],
        use_cpu=True, logging_steps=1, learning_rate=1e-2, save_safetensors=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = transformers.Trainer(model=model, args=args, train_dataset=_mlm_data(tokenizer),
                                       callbacks=[BigBirdTrainerCallback()])  # fmt: skip
        trainer.train()
        trainer.save_model()
    assert model.is_gradient_checkpointing
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 4 and losses[-1] < losses[0]  # it trained
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    with torch.no_grad():
        want = model.eval()(input_ids=ids).logits
    for folder in (tmp_path / "run", tmp_path / "run" / "checkpoint-4"):
        assert (folder / "config.json").exists()
        ours = bt.BigBirdForMaskedLM.from_pretrained(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = transformers.BigBirdForMaskedLM.from_pretrained(folder).eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(input_ids=ids).logits, want)
            torch.testing.assert_close(theirs(input_ids=ids).logits, want, atol=1e-5, rtol=1e-5)
    # resume from the step-2 checkpoint runs to the end
    args.max_steps = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = transformers.Trainer(model=bt.BigBirdForMaskedLM(CFG, seed=0), args=args,
                                     train_dataset=_mlm_data(tokenizer), callbacks=[BigBirdTrainerCallback()])  # fmt: skip
        again.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    assert again.state.global_step == 4


def test_peft_lora_trains_saves_and_merges(tmp_path):
    peft = pytest.importorskip("peft")
    model = bt.BigBirdForSequenceClassification(CFG, seed=0)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                                      modules_to_save=["classifier"], task_type="SEQ_CLS"))  # fmt: skip
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 10, 11, 12, 3]])
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.train()
    for _ in range(3):
        loss = lora(input_ids=ids, labels=torch.tensor([0, 1])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    lora.eval()
    with torch.no_grad():
        want = lora(input_ids=ids).logits
    lora.save_pretrained(tmp_path / "adapter")
    reloaded = peft.PeftModel.from_pretrained(bt.BigBirdForSequenceClassification(CFG, seed=0), tmp_path / "adapter")
    merged = reloaded.merge_and_unload().eval()
    assert isinstance(merged, bt.BigBirdForSequenceClassification)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, want, atol=1e-5, rtol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    with torch.no_grad():
        again = bt.BigBirdForSequenceClassification.from_pretrained(tmp_path / "merged")(input_ids=ids).logits
    torch.testing.assert_close(again, want, atol=1e-5, rtol=1e-5)
