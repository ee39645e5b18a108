"""``bigbird regress``: golden outputs of a checkpoint, recorded once and verified after upgrades.

A golden file is ``GOLDEN.npz`` (one array per head / attention type / output field) plus
``GOLDEN.json``: versions, the config hash, the input seed and lengths, the list of entries, the SHA-256
of the ``.npz`` and a digest of the manifest itself. ``verify`` checks both digests, that the arrays are
exactly the listed entries, and that every output ``record`` would write for that checkpoint is there:
deleting lines or arrays fails, it does not shrink the check.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
from dataclasses import dataclass

import numpy as np

from bigbird_core import __version__
from bigbird_core.checkpoint import read_checkpoint
from bigbird_core.config import BigBirdConfig
from bigbird_core.errors import CheckpointError
from bigbird_core.tolerances import compare

from .backends import load_backend
from .check import default_inputs, flatten_output, supported_heads

INPUT_SEED = 20201207  # fixed: the golden inputs never change


# what a config.json says about its file rather than its model: a bf16 copy of a checkpoint is the same model (its
# outputs are then compared, and drift shows as drift: exit 1), not another one (exit 2)
NOT_THE_MODEL = ("dtype", "torch_dtype", "architectures", "transformers_version", "_name_or_path")


def config_hash(config: BigBirdConfig) -> str:
    """A digest of the model a config describes (not of its file: see :data:`NOT_THE_MODEL`)."""
    data = {k: v for k, v in config.to_dict().items() if k not in NOT_THE_MODEL}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _versions() -> dict[str, str]:
    out = {"bigbird": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for name in ("torch", "jax", "flax"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def _paths(golden: str) -> tuple[str, str]:
    base = golden[:-4] if golden.endswith(".npz") else golden
    return base + ".npz", base + ".json"


def _cases(config: BigBirdConfig) -> list[tuple[str, int]]:
    """(attention type, length): block-sparse at a length that needs padding, full attention on short input."""
    sparse = min(config.min_block_sparse_length + config.block_size // 2, config.max_position_embeddings)
    cases = [("original_full", min(3 * config.block_size + 5, config.max_position_embeddings))]
    if sparse >= config.min_block_sparse_length:
        cases.insert(0, ("block_sparse", sparse))
    return cases


def _run(directory: str, backend: str, heads: list[str], progress) -> tuple[dict[str, np.ndarray], dict]:
    config, _ = read_checkpoint(directory)
    module = load_backend(backend)
    results: dict[str, np.ndarray] = {}
    lengths = {}
    for attention, length in _cases(config):
        lengths[attention] = length
        for head in heads:
            progress(f"{head} ({attention}, {length} tokens) on {backend}")
            inputs = default_inputs(config, head, length, 2, INPUT_SEED)
            out = module.runner(head, directory, attention_type=attention)(
                output_hidden_states=True, **inputs
            )
            for field, value in flatten_output(out).items():
                results[f"{head}/{attention}/{field}"] = value
    return results, lengths


def _digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def record(directory: str, golden: str, *, backend: str = "numpy", heads: list[str] | None = None,
           progress=lambda s: None) -> dict:  # fmt: skip
    """Run every supported head (both attention types) and write ``golden``.npz/.json atomically."""
    config, _ = read_checkpoint(directory)
    heads = heads or supported_heads(directory)
    results, lengths = _run(directory, backend, heads, progress)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k.replace("/", "|"): v.astype(np.float32) for k, v in results.items()})
    data = buf.getvalue()
    manifest = {"versions": _versions(), "config_hash": config_hash(config), "input_seed": INPUT_SEED,
                "lengths": lengths, "backend": backend, "heads": heads, "entries": sorted(results),
                "npz_sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    manifest["digest"] = _digest(manifest)
    npz, js = _paths(golden)
    os.makedirs(os.path.dirname(os.path.abspath(npz)), exist_ok=True)
    for path, blob in ((npz, data), (js, json.dumps(manifest, indent=2).encode())):
        fd, tmp = tempfile.mkstemp(prefix=".bigbird-tmp-", dir=os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    return manifest


_MANIFEST_KEYS = {"versions": dict, "config_hash": str, "input_seed": int, "lengths": dict, "backend": str,
                  "heads": list, "entries": list, "npz_sha256": str, "digest": str}  # fmt: skip


def load_golden(golden: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and arrays of a golden file, both digests checked; any fault is one CheckpointError."""
    npz, js = _paths(golden)
    try:
        with open(js, "rb") as fh:
            manifest = json.loads(fh.read().decode("utf-8"))
        with open(npz, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise CheckpointError(f"{exc.filename}: golden file not found") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{js}: corrupt golden manifest ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in _MANIFEST_KEYS.items()):
        raise CheckpointError(f"{js}: not a golden manifest (expected the keys {', '.join(_MANIFEST_KEYS)})")
    if manifest["digest"] != _digest(manifest):
        raise CheckpointError(f"{js}: the manifest was edited after recording (digest mismatch)")
    if hashlib.sha256(data).hexdigest() != manifest["npz_sha256"]:
        raise CheckpointError(f"{npz}: does not match its manifest (truncated or replaced; SHA-256 mismatch)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            expected = {k.replace("|", "/"): arrays[k] for k in arrays.files}
    except Exception as exc:  # zipfile and NumPy raise many types on corrupt archives
        raise CheckpointError(f"{npz}: corrupt golden arrays ({type(exc).__name__})") from None
    if sorted(expected) != sorted(manifest["entries"]):
        raise CheckpointError(f"{npz}: holds other arrays than its manifest lists")
    return manifest, expected


@dataclass(frozen=True)
class Drift:
    entry: str
    max_abs: float
    rel: float
    tol: float
    ok: bool


def verify(
    directory: str, golden: str, *, backend: str = "numpy", progress=lambda s: None
) -> tuple[list[Drift], dict]:
    """Rerun the golden inputs on ``backend`` and compare every recorded output at float32 tolerance."""
    manifest, expected = load_golden(golden)
    config, _ = read_checkpoint(directory)
    if config_hash(config) != manifest.get("config_hash"):
        raise CheckpointError(f"{directory}: config differs from the one the golden file was recorded with "
                              f"(hash {config_hash(config)} vs {manifest.get('config_hash')})")  # fmt: skip
    # every output record would write for this checkpoint, whatever the manifest lists
    heads = sorted(set(manifest["heads"]) | set(supported_heads(directory)))
    actual, _ = _run(directory, backend, heads, progress)
    drifts = []
    for entry in sorted(set(actual) | set(expected)):
        if entry not in actual or entry not in expected:  # not produced now, or missing from the golden file
            drifts.append(Drift(entry, float("inf"), float("inf"), 0.0, False))
            continue
        c = compare(actual[entry], expected[entry], "float32")
        drifts.append(Drift(entry, c.max_abs, c.rel, c.tol, c.ok))
    return drifts, manifest
