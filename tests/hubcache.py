"""A local Hugging Face cache in huggingface_hub's own layout, and a word-level tokenizer, for tests that
load Hub ids offline (no test downloads)."""

from __future__ import annotations

import hashlib
import os


def hub_cache(root: str, repo: str, folders: dict[str, str]) -> str:
    """Put ``repo`` into the cache at ``root`` at the given revisions ({ref: folder}), laid out as
    huggingface_hub writes it: blobs by content hash, snapshots of relative symlinks, refs naming commits."""
    base = os.path.join(root, "models--" + repo.replace("/", "--"))
    for ref, folder in folders.items():
        commit = hashlib.sha1(f"{repo}@{ref}".encode()).hexdigest()
        os.makedirs(os.path.join(base, "refs"), exist_ok=True)
        with open(os.path.join(base, "refs", ref), "w") as fh:
            fh.write(commit)
        snap = os.path.join(base, "snapshots", commit)
        os.makedirs(snap, exist_ok=True)
        os.makedirs(os.path.join(base, "blobs"), exist_ok=True)
        for where, _, names in os.walk(folder):
            for name in names:
                with open(os.path.join(where, name), "rb") as fh:
                    data = fh.read()
                blob = os.path.join(base, "blobs", hashlib.sha256(data).hexdigest())
                with open(blob, "wb") as fh:
                    fh.write(data)
                link = os.path.join(snap, os.path.relpath(os.path.join(where, name), folder))
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
    return root


SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4: pad, unk, cls (bos), sep (eos), mask


def word_tokenizer(words: list[str]):
    """A lower-casing word-level fast tokenizer built with the `tokenizers` library, BigBird's special tokens
    and pair template (``[CLS] question [SEP] context [SEP]``)."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(SPECIAL + sorted(set(words) - set(SPECIAL)))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")  # fmt: skip
