"""Every Python example in README.md runs as written: offline, with the Hub ids it names resolved from a
local Hugging Face cache holding tiny seeded models and a word-level tokenizer under those names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("flax")
pytest.importorskip("transformers")
from hubcache import SPECIAL, hub_cache, word_tokenizer  # noqa: E402

README = os.path.join(os.path.dirname(__file__), "..", "README.md")
TEXT = open(README, encoding="utf-8").read()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
REPOS = {"google/bigbird-base-trivia-itc": "BigBirdForQuestionAnswering",
         "google/bigbird-roberta-base": "BigBirdForPreTraining"}  # fmt: skip


def test_the_readme_has_examples_and_names_only_repos_the_cache_holds():
    assert len(BLOCKS) >= 5
    named = set(re.findall(r'"(google/[\w.-]+)"', "".join(BLOCKS)))
    assert named and named <= set(REPOS)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    import bigbird_torch as bt
    from bigbird_core import BigBirdConfig

    tmp = tmp_path_factory.mktemp("readme")
    tokenizer = word_tokenizer(re.findall(r"[a-z]+", TEXT.lower()))
    vocab = len(tokenizer)
    config = BigBirdConfig(vocab_size=vocab, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                           num_hidden_layers=2, max_position_embeddings=512, block_size=8, num_random_blocks=2,
                           pad_token_id=0, bos_token_id=2, eos_token_id=3, sep_token_id=3)  # fmt: skip
    assert tokenizer.convert_tokens_to_ids(SPECIAL[3]) == config.sep_token_id
    root = str(tmp / "hub")
    for repo, head in REPOS.items():
        folder = tmp / repo.replace("/", "--")
        bt.MODEL_CLASSES[head](config, seed=0).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        hub_cache(root, repo, {"main": str(folder)})
    return root


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, cache, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": cache, "TRANSFORMERS_VERBOSITY": "error"}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, f"README example {index}:\n{BLOCKS[index]}\n{run.stderr[-3000:]}"
