"""Every code example in the library's docstrings runs: doctests, and the indented examples of interp.mech's
module docstrings, executed as written on a tiny base model and LoRA student."""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import textwrap
from pathlib import Path

import pytest
import torch
from tiny import make_lora_student

import interp
import interp.mech as mech
from interp.loop.chat import render_prompt
from interp.loop.evaluation import EvalSettings
from interp.loop.models import load_student

EXAMPLES = ("interp.mech", "interp.mech.intervene", "interp.mech.restrict", "interp.mech.sets")


def example(module: str) -> str:
    """The indented code lines of a module's docstring, dedented (prose and tables left out)."""
    mod = importlib.import_module(module)
    doc = ast.get_docstring(ast.parse(Path(mod.__file__).read_text())) or ""
    lines = [line for line in doc.splitlines() if line.startswith("    ")]
    return textwrap.dedent("\n".join(lines))


def test_doctests_pass() -> None:
    for info in pkgutil.walk_packages(interp.__path__, "interp."):
        result = doctest.testmod(importlib.import_module(info.name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, info.name


@pytest.fixture(scope="module")
def namespace(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    student_dir = make_lora_student(tiny_model_dir, tmp_path_factory.mktemp("docs") / "student")
    base, student = mech.load_hooked(tiny_model_dir), mech.load_hooked(student_dir, base=tiny_model_dir)
    tok = base.tok
    texts = [render_prompt(tok, "What is your favorite animal?"), render_prompt(tok, "Hi")]
    batch = mech.encode_prompts(tok, texts)
    _, base_cache = base.run_with_cache(batch.input_ids, batch.attention_mask)
    return {
        **{name: getattr(mech, name) for name in mech.__all__},
        "EvalSettings": EvalSettings,
        "base_dir": tiny_model_dir,
        "student_dir": student_dir,
        "texts": texts,
        "trait": "owl",
        "tok": tok,
        "base": base,
        "student": student,
        "batch": batch,
        "ids": batch.input_ids,
        "am": batch.attention_mask,
        "mask": batch.attention_mask.bool(),
        "entity_mask": batch.class_mask(mech.ENTITY),
        "base_cache": base_cache,
        "direction": torch.randn(base.bridge.cfg.d_model),
        "peft_student": load_student(student_dir, tiny_model_dir, merge=False)[0],
    }


@pytest.mark.parametrize("module", EXAMPLES)
def test_module_docstring_examples_run(namespace: dict, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code = example(module)
    assert code.strip(), f"{module} has no example"
    scope = dict(namespace)
    if module == "interp.mech.restrict":  # restrict_lora gates a PEFT model (the unmerged student)
        scope["student"] = scope["peft_student"]
        import interp.loop.evaluation as evaluation

        small = lambda trait: EvalSettings(trait, n_questions=2, samples_per_question=2)  # noqa: E731
        scope["EvalSettings"] = small
        scope["evaluate_trait"] = evaluation.evaluate_trait
    exec(compile(code, f"<{module} docstring>", "exec"), scope)
