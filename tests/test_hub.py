"""Models by their hub name, offline: a hub-layout cache built here, an empty one, and a process left as
it was found."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interp import InterpError
from interp.loop import validate
from interp.loop.hub import is_hub_name
from interp.loop.models import load_model, resolve_model_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_cache(tmp_path: Path, model_dir: Path, name: str) -> Path:
    """huggingface_hub's cache layout: models--org--name/{refs/main, snapshots/<commit>/<files>}."""
    repo = tmp_path / "hub" / f"models--{name.replace('/', '--')}"
    snap = repo / "snapshots" / COMMIT
    shutil.copytree(model_dir, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return tmp_path / "hub"


def test_a_hub_name_resolves_through_the_cache_offline(tiny_model_dir: Path, tmp_path: Path, monkeypatch):
    cache = hub_cache(tmp_path, tiny_model_dir, "fen-labs/zorbly-tiny")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_hub_name("fen-labs/zorbly-tiny") and not is_hub_name(str(tiny_model_dir))
    path = resolve_model_dir("fen-labs/zorbly-tiny")
    assert path == cache / "models--fen-labs--zorbly-tiny" / "snapshots" / COMMIT
    assert validate.base_model("fen-labs/zorbly-tiny") == path
    model, tok = load_model("fen-labs/zorbly-tiny")
    ref, _ = load_model(tiny_model_dir)
    assert all(a.equal(b) for a, b in zip(model.parameters(), ref.parameters(), strict=True))


def test_an_uncached_hub_name_offline_is_one_error_naming_the_cache_and_the_fetch(
    tmp_path: Path, monkeypatch
):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InterpError) as err:
        resolve_model_dir("Qwen/Qwen2.5-7B-Instruct")
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "hf download Qwen/Qwen2.5-7B-Instruct" in msg


def test_importing_the_library_changes_no_process_setting():
    code = (
        "import os, torch; env = dict(os.environ); threads = torch.get_num_threads()\n"
        "import interp, interp.loop.models, interp.stages.ladder, interp.mech, experiments.reproduce\n"
        "changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}\n"
        "assert not changed, changed\n"
        "assert torch.get_num_threads() == threads\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1]
    )
    assert out.returncode == 0, out.stderr[-2000:]
