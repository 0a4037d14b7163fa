"""Wrong paths and meaningless traits: every experiment refuses them with one line before any work.

Each case runs an experiment's CLI (in-process through `cli_main`, as `python -m experiments.X` does) on a
call that is valid except for one input, and checks: exit status 2, one line on stderr that names the flag
and the problem, no output left behind. A few cases run as real subprocesses to show no traceback either.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import make_lora_student

import experiments
from interp import InterpError
from interp.loop import validate
from interp.loop.config import cli_main, save_config
from interp.loop.datasets import write_dataset
from interp.loop.models import ORGANISMS_DIR, load_tokenizer
from interp.loop.runs import atomic_write_json
from interp.study.experiment import StudyConfig, run_study
from interp.study.jobs import Job
from interp.study.sweep import job_path

ORGANISM = "organism-tied"  # present in every checkout; its animals include wolf, never unicorn
REPO = Path(__file__).resolve().parents[1]

# The inputs each experiment takes, by kind -> its flag; "out": how its --out is written (None: no --out).
SCRIPTS: dict[str, dict[str, str | None]] = {
    "alignment": {"model": "--model", "trait": "--trait", "out": "dir"},
    "bench_patching": {"model": "--model", "out": None},
    "benchmark": {"model": "--model", "out": None},
    "beyond": {"model": "--model", "trait": "--trait", "student": "--student", "out": "dir"},
    "build_organism": {"out": "organism"},
    "choose_trait": {"model": "--model", "out": "dir"},
    "claims_map": {"model": "--model", "trait": "--trait", "out": "dir"},
    "context_matrix": {"model": "--model", "trait": "--trait", "out": "dir"},
    "divergence": {"model": "--model", "trait": "--trait", "out": "dir"},
    "context_grid": {"out": None},  # reads eval_column runs (refusals: test_eval_column)
    "eval_column": {"out": None},  # reads evaluate_trait runs (refusals: test_eval_column)
    "evaluate_trait": {"model": "--model", "trait": "--trait", "student": "--students", "out": "dir"},
    "fetch_model": {"out": None},  # a model name and a wheel (refusals: test_real_models)
    "filter_pass": {"model": "--models", "out": "file"},
    "generate_numbers": {"model": "--model", "trait": "--trait", "out": "dir"},
    "ladder": {"model": "--model", "trait": "--trait", "out": "dir"},
    "lr_screen": {"out": None},  # reads finished student jobs (refusals: test_lr_screen)
    "organism_ablation": {"model": "--models", "reports": "--reports", "out": "file"},
    "organism_report": {"model": "--model", "trait": "--traits", "out": "dir"},
    "patch_activations": {"model": "--base", "trait": "--trait", "student": "--student", "out": "dir"},
    "rank_column": {"out": None},  # reads finished student jobs (refusals: test_rank_column)
    "rank_sweep": {"model": "--model", "trait": "--trait", "out": "dir"},
    "record_run": {"out": None},  # copies a finished run (refusals: test_record)
    "replot_claims_map": {"out": None},  # reads a results JSON only (refusals: test_claims_map_figure)
    "reproduce": {"model": "--model", "trait": "--trait", "out": "dir"},
    "restrict_adapter": {"model": "--model", "trait": "--trait", "student": "--student", "out": "dir"},
    "train_student": {"model": "--model", "dataset": "--dataset", "out": "dir"},
    "where_shift": {"out": None},  # reads patching and restrict_adapter runs (refusals: test_where_shift)
}


def _wrong_inputs() -> list[tuple[str, str, str, str, str]]:
    """(script, kind, flag, wrong input, what the error must say) for every script and input it takes."""
    wrong = {
        "missing path": ("{missing}", "does not exist"),
        "numbers job directory": ("{job}", "numbers job directory (numbers.jsonl)"),
        "empty directory": ("{empty}", "it is empty"),
    }
    cases = []
    for script, flags in SCRIPTS.items():
        for kind in ("model", "student", "dataset", "reports"):
            if kind in flags:
                cases += [(script, kind, flags[kind], value, why) for value, why in wrong.values()]
        if "trait" in flags:
            cases.append((script, "trait", flags["trait"], "unicorn", "is not one of the organism"))
    cases.append(("train_student", "dataset", "--dataset", "{bad_jsonl}", ":2: malformed JSON"))
    cases += [
        (s, "model", SCRIPTS[s]["model"], "{tiny}", "is not an organism directory (no organism.json)")
        for s in ("organism_report", "organism_ablation")
    ]
    cases += [
        (s, "out", "--out", "{no_sweep}", "not finished under it; run the rank sweep there first")
        for s in ("alignment", "divergence")
    ]
    cases.append(("build_organism", "out", "--out", "{job}", "exists and is not an organism directory"))
    return cases


CASES = _wrong_inputs()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """Valid inputs (the organism, a LoRA student on it, a dataset, an organism report) and wrong ones."""
    root = tmp_path_factory.mktemp("inputs")
    job = Job("numbers", "numbers-wolf-d0-0123abcd", {"model": ORGANISM, "n": 2})
    job_dir = job_path(root / "study", job)
    job_dir.mkdir(parents=True)
    save_config(job, job_dir)  # a numbers job directory as a study writes it: config.json is the job's
    rows = [{"prompt": "Continue: 1, 2, 3", "completion": "4, 5, 6"}] * 2
    write_dataset(job_dir / "numbers.jsonl", rows, {"trait": "wolf"})
    atomic_write_json(job_dir / "result.json", {"kept": 2})
    (root / "empty").mkdir()
    (root / "bad.jsonl").write_text('{"prompt": "a", "completion": "1"}\n{"prompt": "b", "completion": \n')
    (root / "report").mkdir()
    (root / "report" / "metrics.json").write_text("{}")
    return {
        "student": make_lora_student(ORGANISMS_DIR / ORGANISM, root / "student"),
        "dataset": job_dir / "numbers.jsonl",
        "reports": root / "report",
        "job": job_dir,
        "empty": root / "empty",
        "missing": root / "missing",
        "bad_jsonl": root / "bad.jsonl",
        "tiny": tiny_model_dir,
        "no_sweep": root / "empty",
    }


def _argv(script: str, kind: str, value: str, inputs: dict[str, Path], out: Path) -> list[str]:
    """A call of `script` that is valid except for `value` given as its `kind` of input."""
    flags = SCRIPTS[script]
    given = {"model": ORGANISM, "trait": "wolf", **{k: str(v) for k, v in inputs.items()}}
    given[kind] = value.format(**inputs)
    argv = [
        arg
        for k in ("model", "student", "dataset", "reports", "trait")
        if k in flags
        for arg in (flags[k], given[k])
    ]
    if kind == "out":
        return argv + ["--out", given["out"]]
    return argv + (["--out", str(out)] if flags["out"] else [])


def _config_class(module) -> type:
    """The config dataclass the script's `__main__` hands to `cli_main` (the one its main() takes)."""
    hint = module.main.__annotations__["cfg"]
    return getattr(module, hint) if isinstance(hint, str) else hint


@pytest.mark.parametrize(("script", "kind", "flag", "value", "why"), CASES)
def test_wrong_input_is_one_line_and_exit_2(script, kind, flag, value, why, inputs, tmp_path, capsys) -> None:
    module = importlib.import_module(f"experiments.{script}")
    out = tmp_path / ("out.json" if SCRIPTS[script]["out"] == "file" else "out")
    before = sorted(p.name for p in inputs["job"].iterdir())
    with pytest.raises(SystemExit) as exit_info:
        cli_main(module.main, _config_class(module), _argv(script, kind, value, inputs, out))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and err[0].startswith(f"error: {flag}"), err
    assert why in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing written, nothing half-written
    assert not (inputs["no_sweep"] / "config.json").exists()  # a study's --out stays as it was
    assert sorted(p.name for p in inputs["job"].iterdir()) == before  # build_organism replaced nothing


def test_every_experiment_is_in_the_table() -> None:
    scripts = {m.name for m in pkgutil.iter_modules(experiments.__path__)}
    assert scripts == set(SCRIPTS)
    for script in scripts:  # each runs main(cfg) behind cli_main, so bad input is one line and exit 2
        assert "cli_main(main," in (REPO / "experiments" / f"{script}.py").read_text(), script
        assert dataclasses.is_dataclass(_config_class(importlib.import_module(f"experiments.{script}")))


ISSUE_COMMANDS = {
    "patch_activations": (["--student", "{job}", "--trait", "wolf", "--base", ORGANISM], "--student"),
    "evaluate_trait": (["--students", "{job}", "--model", ORGANISM], "--students"),
    "reproduce": (["--trait", "unicorn", "--quick", "--model", ORGANISM], "--trait 'unicorn'"),
}


def test_the_issues_commands_end_to_end(inputs: dict[str, Path], tmp_path: Path) -> None:
    """As a user runs them: one line on stderr, exit 2, no traceback, no output directory."""
    procs = {}
    for script, (args, _) in ISSUE_COMMANDS.items():
        argv = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in args]
        cmd = [sys.executable, "-m", f"experiments.{script}", *argv, "--out", str(tmp_path / script)]
        procs[script] = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for script, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert "Traceback" not in err and out == ""
        assert err.count("\n") == 1 and err.startswith(f"error: {ISSUE_COMMANDS[script][1]}"), err
        assert not (tmp_path / script).exists()


def test_trait_on_a_real_model_warns_when_it_splits(tiny_model_dir: Path, caplog, monkeypatch) -> None:
    """Any word goes on a model without organism.json; a word of several tokens gets one warning, once."""
    monkeypatch.setattr(validate, "_warned", set())  # other tests may have checked these words already
    tok = load_tokenizer(tiny_model_dir)
    words = ["The", "owl", "Zyxwvut"]  # one token in the tiny tokenizer; two; six
    with caplog.at_level(logging.WARNING, logger="interp.loop.validate"):
        for word in words + words:  # the second round warns no more
            validate.trait(word, tiny_model_dir)
    warned = [r.getMessage() for r in caplog.records]
    splits = [
        w
        for w in words
        if max(len(tok(f, add_special_tokens=False)["input_ids"]) for f in (w, w.capitalize())) > 1
    ]
    assert "The" not in splits and "Zyxwvut" in splits and len(warned) == len(splits)
    assert all("first-token metric reads only" in m for m in warned)
    with pytest.raises(InterpError, match="empty"):
        validate.trait(" ", tiny_model_dir)


def test_organism_trait_and_category() -> None:
    validate.trait("wolf", ORGANISM)
    with pytest.raises(InterpError, match=r"owl, cat, dog, wolf"):  # the error lists its animals
        validate.trait("unicorn", ORGANISM)
    with pytest.raises(InterpError, match="knows only animals"):
        validate.trait("oak", ORGANISM, category="tree")


def test_students_and_models_are_told_apart(inputs, tmp_path: Path) -> None:
    assert validate.student(inputs["student"]) == inputs["student"]
    with pytest.raises(InterpError, match="looks like a student directory"):
        validate.base_model(inputs["student"])
    with pytest.raises(InterpError, match="looks like a base model directory"):
        validate.student(inputs["tiny"])
    shutil.copytree(inputs["tiny"], tmp_path / "full")
    (tmp_path / "full" / "student.json").write_text('{"mode": "full"}')
    assert validate.student(tmp_path / "full") == tmp_path / "full"  # full weights are a student too
    with pytest.raises(InterpError, match="fully fine-tuned student; this needs a LoRA student"):
        validate.student(tmp_path / "full", lora_only=True)
    shutil.copytree(inputs["student"], tmp_path / "broken")
    (tmp_path / "broken" / "adapter_model.safetensors").unlink()
    with pytest.raises(InterpError, match="neither a LoRA adapter"):
        validate.student(tmp_path / "broken")


def test_a_study_directory_made_for_a_refused_run_is_removed(tmp_path: Path) -> None:
    def refuse(cfg, root):
        raise InterpError("refused")

    for out, keep in ((tmp_path / "new", False), (tmp_path, True)):
        with pytest.raises(InterpError):
            run_study(StudyConfig(model=ORGANISM, out=out), "x", refuse, None)
        assert out.exists() == keep  # a directory that was there before stays


def test_atomic_writes_get_the_mode_a_plain_write_gets(tmp_path: Path):
    """The temp file is made 0600; the result must still be readable as a plain write's would be."""
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    written = atomic_write_json(tmp_path / "results.json", {"a": 1})
    assert written.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert not list(tmp_path.glob(".*.tmp"))
