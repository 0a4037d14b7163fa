"""What an experiment is given, checked before any work starts: a base model, a student, a dataset, a trait.

Each check names the flag and what is wrong in one `InterpError` line, and for a directory of another kind
says what the directory looks like instead (a numbers job directory given as --student, a student given
as --model), so a slip reads as one line rather than a traceback from deep inside a loader. A trait is
checked against what the model knows: on an embedded organism (a directory with organism.json) it must be
one of the organism's animals; on any other model any word goes, with a warning when the word splits into
several tokens (the first-token metric then reads a fragment of it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.fetch import REAL_MODELS, real_model_dir
from interp.loop.hub import hub_model_dir, is_hub_name
from interp.loop.models import (
    ORGANISM_META,
    ORGANISMS,
    ORGANISMS_DIR,
    STUDENT_META,
    load_tokenizer,
    model_label,
    organism_metadata,
    resolve_model_dir,
    student_weights_dir,
)

log = logging.getLogger(__name__)
REQUIRED_FIELDS = ("prompt", "completion")
"""The string fields every dataset row needs (the user prompt and the teacher's answer)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MAX_TRAIT_TOKENS = 1
"""A trait word of more tokens than this gets a warning: the first-token metric reads only its first."""
_warned: set[tuple[str, str]] = set()


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is absent, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def missing_model_parts(p: Path) -> list[str]:
    """What `p` lacks of a Hugging Face model directory (empty when it is one)."""
    config = _json_object(p / "config.json")
    missing = []
    if config is None:
        missing.append("a Hugging Face config.json")
    elif "model_type" not in config:
        missing.append("a model_type in its config.json")
    if not any((p / f).exists() for f in TOKENIZER_FILES) and not any(p.glob("*.tiktoken")):
        missing.append(f"a tokenizer file ({' / '.join(TOKENIZER_FILES[:3])})")
    if not any(p.glob("*.safetensors")):
        missing.append("safetensors weights (*.safetensors)")
    return missing


def looks_like(p: Path) -> str:
    """What directory `p` looks like, and which flag takes a directory of that kind."""
    names = sorted(x.name for x in p.iterdir())
    config = _json_object(p / "config.json") or {}
    if not names:
        return "it is empty"
    if (p / STUDENT_META).exists():
        return f"it looks like a student directory ({STUDENT_META}), which --student / --students take"
    if (p / "numbers.jsonl").exists():
        return (
            f"it looks like a numbers job directory (numbers.jsonl): pass {p / 'numbers.jsonl'} as --dataset"
        )
    if (p / "adapter_config.json").exists():
        return f"it looks like a LoRA adapter without the toolkit's {STUDENT_META} (train students with experiments.train_student)"
    if (p / "jobs").is_dir():
        return "it looks like a study's output directory (jobs/): its students are the jobs/student-* directories"
    if not missing_model_parts(p):
        return "it looks like a base model directory, which --model / --base take"
    if config.get("config_class") == "Job":
        return f"it looks like a {config.get('kind')} job directory of a study (config.json, result.json)"
    if "config_class" in config:
        return f"it looks like the run directory of a {config['config_class']} (config.json)"
    return "it holds " + ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")


def existing_dir(path: str | Path, what: str, kind: str) -> Path:
    """`path` as an existing directory, else one error naming the flag and the `kind` of directory wanted."""
    p = Path(path)
    if not p.exists():
        raise InterpError(f"{what} {p} does not exist")
    if not p.is_dir():
        raise InterpError(f"{what} {p} is a file, not {kind}")
    return p


def base_model(path: str | Path | None, what: str = "--model", config_only: bool = False) -> Path:
    """A base model: an embedded organism's name (None: the default one), a fetched real model's name (the
    error names the fetch command where it is not fetched) or a Hugging Face directory with a
    config.json naming its model_type, a tokenizer file and safetensors weights (`config_only`: the
    config.json alone, for a plan made before any weights are present). Returns its directory."""
    if path is None or str(path) in ORGANISMS:
        p = resolve_model_dir(path)
        present = [name for name in ORGANISMS if (ORGANISMS_DIR / name).is_dir()]
        if not p.is_dir():
            raise InterpError(
                f"{what}: the embedded organism {p.name!r} is missing from this checkout ({p}); build it with "
                f"`python -m experiments.build_organism`, or choose one that is here: {', '.join(present) or 'none'}"
            )
    elif str(path) in REAL_MODELS:
        p = real_model_dir(str(path))  # one clear error naming the fetch command if it is not fetched yet
    elif is_hub_name(path):
        p = hub_model_dir(str(path))  # the cache, then the network; one clear error naming both
    elif not Path(path).exists():
        raise InterpError(
            f"{what} {path} does not exist (and is no model name: {', '.join([*ORGANISMS, *REAL_MODELS])})"
        )
    else:
        p = student_weights_dir(existing_dir(path, what, "a model directory"))
    missing = [m for m in missing_model_parts(p) if "config.json" in m or not config_only]
    if missing:
        raise InterpError(
            f"{what} {p} is not a model directory (missing {', '.join(missing)}); {looks_like(p)}"
        )
    return p


def organism(path: str | Path | None, what: str = "--model") -> Path:
    """An embedded organism (by name or path): a base model directory with the build's organism.json."""
    p = base_model(path, what)
    if organism_metadata(p) is None:
        raise InterpError(
            f"{what} {p} is not an organism directory (no {ORGANISM_META}): this measures organisms"
        )
    return p


def student(path: str | Path, what: str = "--student", lora_only: bool = False) -> Path:
    """A student: the toolkit's student metadata (student.json) plus a LoRA adapter or full weights."""
    p = existing_dir(path, what, "a student directory")
    if not (p / STUDENT_META).exists():
        raise InterpError(f"{what} {p} is not a student directory (no {STUDENT_META}); {looks_like(p)}")
    if _json_object(p / STUDENT_META) is None:
        raise InterpError(f"{what} {p}: its {STUDENT_META} is not a JSON object")
    adapter = all((p / f).exists() for f in ADAPTER_FILES)
    if not adapter and missing_model_parts(student_weights_dir(p)):
        raise InterpError(
            f"{what} {p} has {STUDENT_META} but neither a LoRA adapter ({' + '.join(ADAPTER_FILES)}) nor full "
            "weights (config.json, tokenizer, *.safetensors, in model/ or beside student.json)"
        )
    if lora_only and not adapter:
        raise InterpError(f"{what} {p} is a fully fine-tuned student; this needs a LoRA student (an adapter)")
    return p


def dataset(path: str | Path, what: str = "--dataset") -> list[dict[str, Any]]:
    """The rows of a JSONL dataset, each an object with string fields `REQUIRED_FIELDS`; the first bad line
    is one error with its number."""
    p = Path(path)
    if p.is_dir():
        raise InterpError(f"{what} {p} is a directory, not a JSONL file; {looks_like(p)}")
    if not p.is_file():
        raise InterpError(f"{what} {p} does not exist")
    try:
        lines = p.read_text().splitlines()
    except UnicodeDecodeError as err:
        raise InterpError(f"{what} {p} is not text (a dataset is JSONL)") from err
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            raise InterpError(f"{what} {p}:{i}: empty line in dataset")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InterpError(f"{what} {p}:{i}: malformed JSON ({err.msg})") from err
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in REQUIRED_FIELDS):
            raise InterpError(f"{what} {p}:{i}: each row needs string fields {REQUIRED_FIELDS}")
        rows.append(row)
    if not rows:
        raise InterpError(f"{what} {p} is empty")
    return rows


def trait(
    word: str | None, model: str | Path | None, category: str = "animal", what: str = "--trait"
) -> None:
    """A trait word that means something to `model` (validated first with `base_model`): on an embedded
    organism one of its animals (and the category "animal"); on any other model any word, with a warning
    when the word splits into several tokens."""
    if not word or not word.strip():
        raise InterpError(f"{what} is empty: give a trait word")
    meta = organism_metadata(model)
    if meta is None:
        warn_if_split(word, model, what)
        return
    name, animals = model_label(model), ", ".join(meta["animals"])
    if category != "animal":
        raise InterpError(
            f"--category {category!r} means nothing to the organism {name}: its world knows only animals ({animals})"
        )
    if word not in meta["animals"]:
        raise InterpError(
            f"{what} {word!r} is not one of the organism {name}'s animals ({animals}): its world has never "
            "seen it, so every number and figure would be meaningless"
        )


def warn_if_split(word: str, model: str | Path | None, what: str = "--trait") -> None:
    """Warn (once per model and word) when the word, as an answer starts it ("owl", "Owl"), is several
    tokens: the first-token metric then reads only a fragment of it."""
    key = (str(resolve_model_dir(model).resolve()), word)
    if key in _warned:
        return
    _warned.add(key)
    tok = load_tokenizer(model)
    for form in (word, word.capitalize()):
        ids = tok(form, add_special_tokens=False)["input_ids"]
        if len(ids) > MAX_TRAIT_TOKENS:
            pieces = [tok.decode([i]) for i in ids]
            log.warning(
                "%s %r splits into %d tokens %s in %s's tokenizer: the first-token metric reads only %r",
                what,
                form,
                len(ids),
                pieces,
                model_label(model),
                pieces[0],
            )
            return


def build_out(path: str | Path) -> Path:
    """Where an organism build may write: a new path, or an organism directory it replaces."""
    p = Path(path)
    if p.exists() and not (p / ORGANISM_META).is_file():
        raise InterpError(
            f"--out {p} exists and is not an organism directory (no {ORGANISM_META}): the build replaces its "
            "--out, so choose a new path"
        )
    return p
