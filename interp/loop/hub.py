"""Models by their hub name ("org/name"): resolved through huggingface_hub's cache first, then downloaded
where the network allows, as transformers, TransformerLens and peft do.

Only what a load needs comes down (configs, tokenizer files, safetensors weights: never a pickled `.bin`),
and nothing here changes a process-wide setting: offline mode is read from the environment at call time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from interp import InterpError

HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt"]
"""What a model directory needs: configs, tokenizer, chat template, safetensors weights."""
TRUE = {"1", "on", "yes", "true"}


def is_hub_name(path: str | Path | None) -> bool:
    """Whether `path` reads as "org/name" and is no local path."""
    return path is not None and bool(HUB_NAME.match(str(path))) and not Path(path).exists()


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def offline() -> bool:
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE", "") or "").lower() in TRUE
    return env or bool(constants.HF_HUB_OFFLINE)


def hub_model_dir(name: str) -> Path:
    """The local snapshot of hub model `name`: from the cache, else downloaded (unless offline); one clear
    error that names the cache and the command that fills it where neither works."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache()
    try:
        return Path(snapshot_download(name, cache_dir=cache, local_files_only=True, allow_patterns=FILES))
    except LocalEntryNotFoundError:
        pass
    how = f"fetch it where the network allows with `hf download {name}` (into {cache}), or pass a local directory"
    if offline():
        raise InterpError(f"model {name!r} is not in the hub cache {cache} and HF_HUB_OFFLINE is set: {how}")
    try:
        return Path(snapshot_download(name, cache_dir=cache, allow_patterns=FILES))
    except Exception as err:  # no network, no such repository, a gated one: one message, its cause kept
        raise InterpError(
            f"model {name!r} is not in the hub cache {cache} and could not be downloaded "
            f"({type(err).__name__}): {how}"
        ) from err
