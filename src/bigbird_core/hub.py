"""Where ``from_pretrained`` finds a checkpoint, and the transformers keywords it accepts, for every backend.

A local directory is read as it is. Anything else is a Hugging Face Hub id (``"google/bigbird-roberta-base"``),
resolved through ``huggingface_hub`` (imported only then) into its local cache, the same cache transformers
uses: offline (``local_files_only=True`` or ``HF_HUB_OFFLINE=1``) it reads what the cache holds; online it
downloads ``config.json`` and one weight format, the first that the repository has in the backend's order
of preference (an index and its shards, or one file).
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

from .config import BigBirdConfig
from .errors import CheckpointNotFoundError, InputError, fail

# keywords of transformers' from_pretrained that every backend accepts, with the meaning they have there
HUB_ARGS = ("revision", "cache_dir", "local_files_only", "token", "force_download", "subfolder")


def is_local(name_or_path: str | os.PathLike[str]) -> bool:
    return os.path.isdir(os.fspath(name_or_path))


def check_subfolder(subfolder: Any) -> str:
    """``subfolder`` when it is a relative path inside the checkpoint (no ``..``, not absolute); reads stay
    inside what the user named."""
    if not isinstance(subfolder, str):
        raise fail(InputError, "subfolder", "a relative path inside the checkpoint (a string)", subfolder)
    parts = subfolder.replace("\\", "/").split("/")
    if subfolder and (os.path.isabs(subfolder) or subfolder.startswith("~") or ".." in parts or "\0" in subfolder):
        raise fail(InputError, "subfolder", "a relative path inside the checkpoint (no '..', not absolute)",
                   repr(subfolder))  # fmt: skip
    return subfolder


def hub_offline(local_files_only: bool) -> bool:
    """Whether to read the local cache only: ``local_files_only``, or ``HF_HUB_OFFLINE`` as it is set now (read
    from the environment at each call: huggingface_hub reads it once, at import)."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if flag or local_files_only:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


PROBE_SECONDS = 3.0  # how long to wait for the Hub's host before reading the cache only


def hub_reachable(endpoint: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether the Hub's host accepts a connection within ``timeout`` seconds (True behind a proxy, which this
    probe cannot judge): without a network, huggingface_hub retries for about 25 s before giving up."""
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve(name_or_path: str | os.PathLike[str], weight_files: tuple[str, ...], *, revision: str | None = None,
            cache_dir: str | os.PathLike[str] | None = None, local_files_only: bool = False, token: Any = None,
            force_download: bool = False, subfolder: str = "") -> str:  # fmt: skip
    """The local directory holding ``name_or_path``'s checkpoint (see the module docstring).

    Args:
        weight_files: the backend's weight file names, most preferred first (``*.index.json`` names an index
            whose shards are fetched too).

    Raises:
        CheckpointNotFoundError (also an ``OSError``) saying which: not a directory, not in the cache while
        offline, the Hub unreachable, or not on the Hub; InputError for a ``subfolder`` outside the checkpoint.
    """
    path = os.fspath(name_or_path)
    if not isinstance(path, str) or not path:
        raise fail(InputError, "pretrained_model_name_or_path", "a directory or a Hub id", name_or_path)
    subfolder = check_subfolder(subfolder)
    if is_local(path):
        return os.path.join(path, subfolder) if subfolder else path
    if os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise CheckpointNotFoundError(f"{path}: not a checkpoint directory (and not a Hub id such as org/name)")
    try:
        import huggingface_hub as hub
        from huggingface_hub import constants as hub_constants
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise CheckpointNotFoundError(
            f"{path}: not a local directory; loading Hub ids needs huggingface_hub (pip install huggingface_hub)"
        ) from None
    from .checkpoint import read_index_file

    offline = hub_offline(local_files_only)
    unreachable = not offline and not hub_reachable(hub_constants.ENDPOINT)
    if unreachable:  # read the cache only, at once (as transformers falls back to it when offline)
        offline = True

    def fetch(name: str) -> str:
        return hub.hf_hub_download(path, name, subfolder=subfolder or None, revision=revision,
                                   cache_dir=cache_dir, local_files_only=offline, token=token,
                                   force_download=force_download and not offline)  # fmt: skip

    def why(name: str, exc: Exception) -> CheckpointNotFoundError:
        """What went wrong, in words: not cached while offline, no network, not on the Hub, no such file."""
        if isinstance(exc, hub_errors.LocalEntryNotFoundError):
            if offline and not unreachable:
                return CheckpointNotFoundError(
                    f"{path}: no {name} in the local Hugging Face cache (offline: local_files_only or "
                    "HF_HUB_OFFLINE; load it once online, or pass cache_dir=)")
            return CheckpointNotFoundError(
                f"{path}: cannot reach the Hub ({hub_constants.ENDPOINT}) and {name} is not in the local cache "
                "(no network? HF_HUB_OFFLINE=1 reads the cache only, at once)")
        if isinstance(exc, hub_errors.RevisionNotFoundError):
            return CheckpointNotFoundError(f"{path}: revision {revision!r} is not on the Hub")
        if isinstance(exc, hub_errors.RepositoryNotFoundError):
            return CheckpointNotFoundError(f"{path}: not on the Hub (no such repository, or a private one: "
                                           "pass token=)")  # fmt: skip
        if isinstance(exc, hub_errors.EntryNotFoundError):
            return CheckpointNotFoundError(f"{path}: the repository has no {name}")
        first = (str(exc).splitlines() or [""])[0]
        return CheckpointNotFoundError(f"{path}: {name} cannot be fetched ({type(exc).__name__}: {first})")

    try:
        config = fetch("config.json")
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's errors (cache, network, repository) reworded
        raise why("config.json", exc) from None
    folder = os.path.dirname(config)
    for name in weight_files:
        try:
            local = fetch(name)
        except (hub_errors.LocalEntryNotFoundError, hub_errors.EntryNotFoundError):
            continue
        except Exception as exc:  # noqa: BLE001
            raise why(name, exc) from None
        if name.endswith(".index.json"):
            for shard in sorted(read_index_file(local)):  # a regular file, validated, plain shard names
                try:
                    fetch(shard)
                except Exception as exc:  # noqa: BLE001
                    raise why(shard, exc) from None
        return folder
    raise CheckpointNotFoundError(f"{path}: the repository has none of the weight files {', '.join(weight_files)}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def shard_bytes(max_shard_size: int | str | None) -> int | None:
    """``max_shard_size`` as bytes: an int, or transformers' strings ("5GB" = 5 * 10**9, "5GiB" = 5 * 2**30)."""
    if max_shard_size is None:
        return None
    if isinstance(max_shard_size, int) and not isinstance(max_shard_size, bool) and max_shard_size > 0:
        return max_shard_size
    match = _SIZE.match(max_shard_size) if isinstance(max_shard_size, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise fail(InputError, "max_shard_size", 'a positive number of bytes or a size such as "5GB"',
                   repr(max_shard_size))  # fmt: skip
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])


def config_overrides(config: BigBirdConfig, overrides: dict[str, Any], accepted: tuple[str, ...]) -> BigBirdConfig:
    """``config`` with ``overrides`` applied (transformers: keywords naming config fields update the config);
    any other keyword is an error listing what is accepted."""
    fields = set(config.__dataclass_fields__) - {"extra"}
    unknown = sorted(k for k in overrides if k not in fields)
    if unknown:
        raise fail(InputError, unknown[0], "a keyword of from_pretrained (" + ", ".join(accepted)
                   + ") or a config field", "an unknown keyword")  # fmt: skip
    return config.replace(**overrides) if overrides else config


def stored_dtype(config: BigBirdConfig) -> str | None:
    """The parameter dtype config.json records (transformers writes ``dtype``, older versions ``torch_dtype``)."""
    value = config.extra.get("dtype", config.extra.get("torch_dtype"))
    return value if isinstance(value, str) else None


def load_pretrained(name_or_path: str | os.PathLike[str], head: str, *, prefer: tuple[str, ...],
                    config: Any = None, use_safetensors: bool | None = None, seed: int = 0,
                    add_pooling_layer: bool | None = None, ignore_mismatched_sizes: bool = False,
                    overrides: dict[str, Any], accepted: tuple[str, ...], **hub_args: Any):  # fmt: skip
    """What every backend's ``from_pretrained`` does before building its model: resolve the directory or
    Hub id, read config and weights (one version), apply ``config`` / keyword overrides, fit the weights
    to ``head`` in float32.

    Returns:
        ``(config, params, load_report, stored_dtype)``: ``stored_dtype`` is the dtype config.json records
        (or the weights' own), for ``dtype="auto"`` and for Flax, which keeps it.
    """
    from .checkpoint import SAFETENSORS, SAFETENSORS_INDEX, WEIGHT_FILES, read_checkpoint
    from .validate import as_config, model_config
    from .weights import match_state_dict

    if use_safetensors not in (None, True, False):
        raise fail(InputError, "use_safetensors", "True, False or None", use_safetensors)
    safe = (SAFETENSORS_INDEX, SAFETENSORS)
    allowed = (safe if use_safetensors else tuple(n for n in WEIGHT_FILES if n not in safe)
               if use_safetensors is False else None)  # fmt: skip
    order = tuple(dict.fromkeys(prefer + WEIGHT_FILES))
    order = tuple(n for n in order if allowed is None or n in allowed)
    directory = resolve(name_or_path, order, **hub_args)
    given = None if config is None else as_config(config)
    stored, state = read_checkpoint(directory, prefer=prefer, allowed=allowed, config=given)
    cfg = model_config(config_overrides(stored if given is None else given, overrides, accepted), head)
    dtype = stored_dtype(stored)
    if dtype is None and state:
        dtype = str(next(iter(state.values())).dtype)
    params, report = match_state_dict(cfg, head, state, seed=seed, add_pooling_layer=add_pooling_layer,
                                      dtype="float32", warn=True, ignore_mismatched_sizes=ignore_mismatched_sizes)  # fmt: skip
    return cfg, params, report, dtype
