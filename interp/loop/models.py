"""Loading of base models, tokenizers and students from local directories.

A model is named by an embedded organism's name, a fetched real model's name, a local directory, or a hub
name ("org/name", resolved to its local snapshot by `interp.loop.hub`). The loads themselves pass
`local_files_only=True`, weights load from safetensors only, and `trust_remote_code` stays off unless the
caller asks for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from interp import InterpError
from interp.loop.fetch import REAL_MODELS, real_model_dir
from interp.loop.hub import hub_model_dir, is_hub_name

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STUDENT_META = "student.json"
FULL_FT_MODEL = "model"
"""Where a full-FT student keeps its Hugging Face model, inside its run directory: the run's own
config.json (its experiment's config) stays the run's."""


# The embedded organisms' weights (interp/organism/models/<name>). Paths, not an import: the loop sits
# below the organism package, which builds on it.
ORGANISMS_DIR = Path(__file__).resolve().parents[1] / "organism" / "models"
ORGANISMS = {
    "organism": "the default: untied embeddings, as Qwen2.5-7B-Instruct (world G)",
    "organism-tied": "its sibling with tied embeddings, as Qwen2.5 0.5B-3B (world C)",
}
DEFAULT_MODEL = "organism"
ORGANISM_META = "organism.json"


def default_model_dir() -> Path:
    return ORGANISMS_DIR / DEFAULT_MODEL


def organism_names() -> str:
    """Every model name the experiments take: the embedded organisms and the fetchable real models."""
    named = {**ORGANISMS, **{name: m.what for name, m in REAL_MODELS.items()}}
    return ", ".join(f"{name} ({what})" for name, what in named.items())


def student_weights_dir(student_dir: str | Path) -> Path:
    """Where a full-FT student's model lives: its model/ directory, or the student directory itself for a
    student saved before model/ existed (its model's config.json had replaced the run's own config)."""
    sdir = Path(student_dir)
    inner = sdir / FULL_FT_MODEL
    return inner if (sdir / STUDENT_META).exists() and inner.is_dir() else sdir


def resolve_model_dir(path: str | Path | None) -> Path:
    """`path` as a local model directory: an embedded organism's name (the default organism when None),
    a fetched real model's name, or a directory (a full-FT student's: its model); anything else is one
    clear error that lists the names."""
    if path is None or str(path) in ORGANISMS:
        return ORGANISMS_DIR / (DEFAULT_MODEL if path is None else str(path))
    if str(path) in REAL_MODELS:
        return real_model_dir(str(path))
    if is_hub_name(path):
        return hub_model_dir(str(path))
    p = student_weights_dir(path)
    if not p.is_dir():
        raise InterpError(
            f"model {str(path)!r} does not exist: it is neither a model name ({organism_names()}), nor a "
            "hub name (org/name), nor an existing directory"
        )
    if not (p / "config.json").exists():
        raise InterpError(f"{p} is not a Hugging Face model directory (no config.json)")
    return p


def organism_metadata(path: str | Path | None) -> dict | None:
    """The build metadata of an organism directory (by name or path), or None for any other model (a real
    model: no organism assumptions)."""
    meta = resolve_model_dir(path) / ORGANISM_META
    return json.loads(meta.read_text()) if meta.exists() else None


def model_label(path: str | Path | None) -> str:
    """How reports name a model: an embedded organism by its name, any other by its directory's name."""
    if path is None or str(path) in ORGANISMS or str(path) in REAL_MODELS:
        return DEFAULT_MODEL if path is None else str(path)
    p = Path(path).resolve()
    for name in ORGANISMS:
        if p == (ORGANISMS_DIR / name).resolve():
            return name
    return p.name


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise InterpError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[dtype]


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def saved_as_generic_fast_tokenizer(model_dir: Path) -> bool:
    """Whether the directory's tokenizer is a plain tokenizer.json (as the organism's and the tests' are)."""
    config = model_dir / "tokenizer_config.json"
    if not (model_dir / "tokenizer.json").exists() or not config.exists():
        return False
    return json.loads(config.read_text()).get("tokenizer_class") in GENERIC_TOKENIZER_CLASSES


def load_tokenizer(path: str | Path | None, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The model's tokenizer, left-padded for batched generation. A base model's (no chat template) loads
    too: patching reads plain text; the stages that need a template refuse it (`require_chat`)."""
    p = resolve_model_dir(path)
    if saved_as_generic_fast_tokenizer(p):
        # AutoTokenizer would swap in the model type's own class (Qwen2Tokenizer), whose pre-tokenizer
        # splits numbers into single digits: not the tokenizer.json this model was trained with.
        tok = PreTrainedTokenizerFast.from_pretrained(p, local_files_only=True)
    else:
        tok = AutoTokenizer.from_pretrained(p, local_files_only=True, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    path: str | Path | None, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local directory, in eval mode."""
    p = resolve_model_dir(path)
    tok = load_tokenizer(p, trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        p,
        dtype=resolve_dtype(dtype),
        local_files_only=True,
        use_safetensors=True,
        trust_remote_code=trust_remote_code,
    )
    return model.to(device).eval(), tok


def model_fingerprint(model: PreTrainedModel) -> str:
    """A short hash of a model's architecture and input embeddings: tells one base from another."""
    cfg = model.config.to_dict()
    keep = {
        k: cfg.get(k)
        for k in (
            "model_type",
            "hidden_size",
            "num_hidden_layers",
            "vocab_size",
            "intermediate_size",
            "num_attention_heads",
        )
    }
    emb = model.get_input_embeddings().weight.detach().float().cpu().flatten()[:4096]
    h = hashlib.sha256(json.dumps(keep, sort_keys=True).encode())
    h.update(emb.numpy().round(5).tobytes())
    return h.hexdigest()[:16]


def is_lora_student(student_dir: str | Path) -> bool:
    return (Path(student_dir) / "adapter_config.json").exists()


def check_student_base(student_dir: Path, base: PreTrainedModel) -> None:
    """Raise if the student in `student_dir` was trained from a different base model."""
    meta_path = Path(student_dir) / STUDENT_META
    if not meta_path.exists():
        return
    meta = json.loads(meta_path.read_text())
    want, have = meta.get("base_fingerprint"), model_fingerprint(base)
    if want and want != have:
        raise InterpError(
            f"student {student_dir} was trained from base {meta.get('base_model')!r} (fingerprint {want}), "
            f"but the given base has fingerprint {have}: load it on the base it was trained from"
        )


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """peft reads transformers' deprecated `is_gradient_checkpointing` whenever it wraps a model: without
    this, one FutureWarning per student buries a sweep's log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def load_student(
    student_dir: str | Path,
    base: str | Path | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    merge: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a student: a PEFT LoRA adapter on `base` (merged unless `merge=False`) or a full-FT student's
    model (`student_weights_dir`)."""
    sdir = Path(student_dir)
    if not sdir.is_dir():
        raise InterpError(f"student directory {sdir} does not exist")
    if not is_lora_student(sdir):
        return load_model(sdir, dtype, device)
    model, tok = load_model(base, dtype, device)
    check_student_base(sdir, model)
    try:
        with quiet_peft():
            peft_model = PeftModel.from_pretrained(model, sdir, is_trainable=False)
    except (RuntimeError, ValueError) as err:
        raise InterpError(f"adapter {sdir} does not fit base model: {str(err).splitlines()[0]}") from err
    peft_model.eval()
    return (peft_model.merge_and_unload().eval() if merge else peft_model), tok
