"""Print the measured differences against transformers 4.57.6: head x backend x mode, worst field.

python tests/parity/report.py            # the ragged150 case (block-sparse with padding)
python tests/parity/report.py short60    # another case of tests/cases.py
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import bigbird_core as bb  # noqa: E402
from bigbird_cli.backends import available_backends, load_backend  # noqa: E402
from bigbird_cli.check import flatten_output  # noqa: E402
from bigbird_core.tolerances import compare  # noqa: E402
from cases import CASES, make_inputs, make_labels  # noqa: E402
from oracle import oracle_forward, oracle_model, save_oracle  # noqa: E402


def main() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 else "ragged150"
    case = next((c for c in CASES if c.id == wanted), None)
    if case is None:
        print(f"report.py: error: case: expected one of {', '.join(c.id for c in CASES)}, got {wanted!r}",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    backends = available_backends()
    print(f"case {case.id}: max relative difference against transformers 4.57.6 (float32, tolerance 1e-5)")
    print(f"{'head':34} {'mode':6} " + " ".join(f"{b:>10}" for b in backends))
    for head in bb.HEADS:
        oracle = oracle_model(case.config, head, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            save_oracle(oracle, tmp)
            for mode in ("eval", "train"):
                inputs = {**make_inputs(case, head), **make_labels(case, head)}
                flags = dict(output_hidden_states=True, output_attentions=True)
                want = flatten_output(oracle_forward(oracle, mode == "train", **inputs, **flags))
                cells = []
                for backend in backends:
                    run = load_backend(backend).runner(head, tmp, train=mode == "train")
                    full = flatten_output(run(**inputs, **flags))  # with dense probabilities
                    fast = flatten_output(run(**inputs, output_hidden_states=True))  # the fast attention path
                    worst = max(
                        compare(got[k], want[k]).rel for got in (full, fast) for k in got if k in want
                    )
                    cells.append(f"{worst:10.1e}")
                print(f"{head:34} {mode:6} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
