"""Parity of the decoders with cross-attention, per head and backend, against transformers 4.57.6 on the same
weights: its Flax class, and its PyTorch class with the decoder layer patched to its Flax twin
(``tests/oracle.py``). Prints the table of the closing note of issue 12 (tests/test_decoder.py asserts it).

    python scripts/decoder_parity.py     # from the repository root, test dependencies installed (a minute)
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import jax.numpy as jnp  # noqa: E402
import transformers  # noqa: E402

import torch  # noqa: E402
from bigbird_core.tolerances import compare  # noqa: E402
from oracle import decoder_layers_as_in_flax, hf_config  # noqa: E402
from test_decoder import DECODER, HEADS, call, inputs, load, main_output, valid  # noqa: E402


def main() -> int:
    for head in HEADS:
        torch.manual_seed(0)
        directory = tempfile.mkdtemp()
        getattr(transformers, head)(hf_config(DECODER)).eval().save_pretrained(directory)
        x = inputs()
        flax_oracle = getattr(transformers, "Flax" + head).from_pretrained(directory, from_pt=True)
        expected = [flax_oracle(**{k: jnp.asarray(v) for k, v in x.items()}, output_attentions=True)]
        with decoder_layers_as_in_flax(), torch.no_grad():
            pt = getattr(transformers, head).from_pretrained(directory).eval()
            expected.append(pt(**{k: torch.as_tensor(v) for k, v in x.items()}, output_attentions=True,
                               use_cache=False))  # fmt: skip
        mask = x["attention_mask"]
        for backend in ("numpy", "torch", "flax"):
            for train in (False, True):
                out = call(backend, load(backend, head, directory), train=train, output_attentions=True,
                           use_cache=False, **x)  # fmt: skip
                rel = [compare(valid(main_output(head, out), mask), valid(main_output(head, e), mask)).rel
                       for e in expected]  # fmt: skip
                cross = max(compare(valid(np.swapaxes(np.asarray(a), 1, 2), mask),
                                    valid(np.swapaxes(np.asarray(b), 1, 2), mask)).rel
                            for a, b in zip(out.cross_attentions, expected[0].cross_attentions, strict=True))  # fmt: skip
                print(f"{head:20} {backend:6} {'train' if train else 'eval ':5}  vs transformers Flax {rel[0]:.1e}  "
                      f"vs transformers PyTorch (patched) {rel[1]:.1e}  cross_attentions {cross:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
