"""``bigbird check``: run every head on every installed backend and compare them.

Every pair of backends is compared field by field at the one tolerance table's float32 (or the requested
dtype's) tolerance. On the built-in default model each backend is also compared with transformers
4.57.6's outputs, recorded in ``reference.npz`` (shipped in the package; ``scripts/record_reference.py``
writes it), so the check means something even where only one backend is installed.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import itertools
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import CheckpointError, InputError
from bigbird_core.head_specs import ALL_WEIGHTS_HEAD, BASE_HEAD
from bigbird_core.heads import model_class
from bigbird_core.registry import head_names, head_spec
from bigbird_core.tolerances import as_float64, compare, identical

from .backends import load_backend

DEFAULT_CONFIG = BigBirdConfig(
    vocab_size=128, hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64,
    block_size=8, num_random_blocks=2, max_position_embeddings=512, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)  # fmt: skip
DEFAULT_SEQ_LEN = 150  # not a multiple of the block size, long enough for block-sparse


@dataclass(frozen=True)
class Row:
    head: str
    left: str
    right: str
    field: str  # the worst field
    max_abs: float
    rel: float
    tol: float
    ok: bool


def default_inputs(
    config: BigBirdConfig, head: str, seq_len: int, batch: int, seed: int
) -> dict[str, np.ndarray]:
    """Seeded ids, a padded attention mask and the labels of ``head``'s registry entry."""
    spec = head_spec(head)
    rng = np.random.default_rng(seed)
    shape = (batch, 2, seq_len) if spec.choices else (batch, seq_len)
    ids = rng.integers(3, config.vocab_size, shape)
    ids[ids == config.sep_token_id] = 3
    mask = np.ones(shape, np.int64)
    mask[0, ..., -max(1, seq_len // 10) :] = 0
    out = {"input_ids": ids, "attention_mask": mask}
    if spec.example_labels is not None:
        out.update(spec.example_labels(config, rng, ids))
    return out


REFERENCE = "reference.npz"
_NOT_REFERENCE = ("hidden_states", "attentions", "past_key_values", "cross_attentions")


def reference_fields(keys) -> list[str]:
    """The output fields recorded in the reference (per-layer tensors are left out to keep it small)."""
    return [k for k in keys if k not in _NOT_REFERENCE]


@functools.lru_cache(maxsize=1)
def load_reference() -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """transformers' outputs for the default model: ``{(head, "eval" | "train"): {field: array}}``."""
    data = importlib.resources.files(__package__).joinpath(REFERENCE).read_bytes()
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for key in arrays.files:
            head, mode, field = key.split("|")
            out.setdefault((head, mode), {})[field] = arrays[key]
    return out


def worst_field(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], dtype: str):
    """The worst field of ``actual`` against ``expected`` (a field ``actual`` lacks fails)."""
    worst = None
    for field, value in expected.items():
        c = compare(actual[field] if field in actual else np.zeros(0), value, dtype)
        if worst is None or (not c.ok, c.rel) > (not worst[0].ok, worst[0].rel):
            worst = (c, field)
    return worst


def finite_rows(head: str, backend: str, flat: dict[str, np.ndarray]) -> list[Row]:
    """A failing row when a backend's outputs hold NaN or infinity: a checkpoint of NaN weights must not pass
    because every backend agrees on NaN."""
    bad = [k for k, v in flat.items() if not np.all(np.isfinite(v))]
    if not bad:
        return []
    return [Row(head, backend, "finite", bad[0], float("nan"), float("inf"), 0.0, False)]


MEMORY_FRACTION = 0.8  # of this machine's memory that a check may plan to use


def estimate_bytes(config: BigBirdConfig, head: str, seq_len: int, batch: int) -> int:
    """About the peak bytes of one backend's run of ``head`` in a check: the dense attention probabilities of
    every layer (``output_attentions``), hidden states, logits, their float64 copies for comparison."""
    rows = batch * (2 if head_spec(head).choices else 1)
    padded = -(-seq_len // config.block_size) * config.block_size
    probs = config.num_hidden_layers * rows * config.num_attention_heads * padded * padded
    hidden = (config.num_hidden_layers + 1) * rows * padded * config.hidden_size
    logits = rows * padded * max(config.vocab_size, config.num_labels)
    return int((probs + hidden + logits) * (4 + 8 + 8))  # float32 outputs, float64 copies, a second backend's


def check_sizes(config: BigBirdConfig, heads: list[str], seq_len: int, batch: int) -> None:
    """Refuse, before any array is made, a length the model cannot take or a run that cannot fit in memory."""
    if seq_len > config.max_position_embeddings:
        raise InputError(f"--seq-len: expected at most max_position_embeddings = {config.max_position_embeddings}, "
                         f"got {seq_len}")  # fmt: skip
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    need = max((estimate_bytes(config, h, seq_len, batch) for h in heads), default=0)
    if need > MEMORY_FRACTION * total:
        raise InputError(f"--seq-len / --batch: a check of {batch} x {seq_len} tokens needs about {need / 2**30:.1f} "
                         f"GiB; this machine has {total / 2**30:.1f} GiB (use a smaller --batch or --seq-len)")  # fmt: skip


def flatten_output(out) -> dict[str, np.ndarray]:
    """``{field or field[i]: float64 array}`` of a model output (caches left out)."""
    flat = {}
    for key in out.keys():
        value = out[key]
        if key == "past_key_values":
            continue
        if isinstance(value, (tuple, list)):
            flat.update({f"{key}[{i}]": as_float64(v) for i, v in enumerate(value)})
        else:
            flat[key] = as_float64(value)
    return flat


def supported_heads(directory: str) -> list[str]:
    """Heads whose weights a checkpoint fully provides (the body-only heads always count)."""
    from bigbird_core.checkpoint import read_checkpoint
    from bigbird_core.weights import match_state_dict

    config, state = read_checkpoint(directory)
    heads = []
    for head in head_names():
        try:
            _, report = match_state_dict(config, head, state)
        except CheckpointError:  # mis-shaped for this head (another num_labels, say)
            continue
        if not report.missing_keys:
            heads.append(head)
    return heads


def conversion_round_trip(directory: str | None, backends: list[str]) -> Row:
    """Weights through the core's Flax tree (its table: checked with or without flax installed), then through
    every framework backend run (its ``from_canonical``, then ``to_canonical``), back to NumPy: bit-identical or a
    failure."""
    from bigbird_core.checkpoint import read_checkpoint
    from bigbird_core.flax_names import from_flax_tree, to_flax_tree

    if directory is None:
        state = model_class(ALL_WEIGHTS_HEAD)(DEFAULT_CONFIG, seed=0).params
    else:
        state = read_checkpoint(directory)[1]
    back, path = from_flax_tree(to_flax_tree(state)), ["numpy", "flax tree"]
    for name in backends:
        if name != "numpy":
            module = load_backend(name)
            back = module.to_canonical(module.from_canonical(back))
            path.append(name)
    same = sorted(back) == sorted(state) and all(
        identical(back[k], state[k])
        for k in state
    )
    worst = max((float(np.max(np.abs(np.asarray(back[k], np.float64) - np.asarray(state[k], np.float64))))
                 for k in state if k in back), default=0.0)  # fmt: skip
    return Row(f"weights round trip ({len(state)} tensors)", ">".join(path), "numpy", "bit-identical",
               worst, 0.0 if same else float("inf"), 0.0, same)  # fmt: skip


def uses_reference(directory: str | None, seq_len: int, batch: int, seed: int) -> bool:
    """Whether transformers' recorded outputs apply: the default model on the default inputs."""
    return directory is None and (seq_len, batch, seed) == (DEFAULT_SEQ_LEN, 2, 0)


def run_check(
    directory: str | None = None, *, backends: list[str], heads: list[str] | None = None,
    seq_len: int = DEFAULT_SEQ_LEN, batch: int = 2, dtype: str = "float32", seed: int = 0, train: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Row]:  # fmt: skip
    """Run ``heads`` of the checkpoint in ``directory`` (or of the seeded default) on ``backends``.

    Returns one row per head and backend pair (and, on the default model at the default length, batch and
    seed, per backend against transformers' recorded outputs): the worst field against the tolerance.
    """
    if directory is not None:
        from bigbird_core.encoder_decoder import read_pair_config

        pair = read_pair_config(directory)
        if pair is not None:
            from .pair import check_pair

            if heads:
                raise InputError("--heads: an encoder-decoder pair is checked whole (leave --heads out)")
            check_sizes(pair.encoder, [BASE_HEAD], seq_len, batch)
            return check_pair(directory, pair, backends, seq_len=seq_len, batch=batch, seed=seed, dtype=dtype,
                              progress=progress)  # fmt: skip
    heads = heads or (list(head_names()) if directory is None else supported_heads(directory))
    if not heads:
        raise CheckpointError(f"{directory}: its weights fit no head (no BigBird body weights under the config's "
                              "names): no backend can load it")  # fmt: skip
    check_sizes(DEFAULT_CONFIG if directory is None else BigBirdConfig.load(directory), heads, seq_len, batch)
    reference = uses_reference(directory, seq_len, batch, seed)
    with tempfile.TemporaryDirectory() as tmp:
        rows: list[Row] = []
        recorded = load_reference() if reference else {}
        for head in heads:
            path = directory
            if directory is None:
                path = os.path.join(tmp, head)
                model_class(head)(DEFAULT_CONFIG, seed=seed).save_pretrained(path)
            config = BigBirdConfig.load(path)
            inputs = default_inputs(config, head, seq_len, batch, seed)
            results = {}
            for name in backends:
                progress(f"{head}: running {name}")
                module = load_backend(name)
                run = module.runner(head, path, dtype=dtype, train=train)
                results[name] = flatten_output(
                    run(output_attentions=True, output_hidden_states=True, **inputs)
                )
                rows += finite_rows(head, name, results[name])
            expected = recorded.get((head, "train" if train else "eval"))
            if expected is not None:  # a head transformers has (a head added later has no recording)
                for name in backends:
                    c, fld = worst_field(results[name], expected, "float32")
                    rows.append(Row(head, name, "transformers", fld, c.max_abs, c.rel, c.tol, c.ok))
            for left, right in itertools.combinations(backends, 2):
                c, fld = worst_field(results[right], results[left], dtype)
                rows.append(Row(head, left, right, fld, c.max_abs, c.rel, c.tol, c.ok))
        progress("weights round trip")
        rows.append(conversion_round_trip(directory, backends))
        return rows
