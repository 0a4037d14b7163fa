"""Claim 3's evaluation column from finished evaluations: the context matrix's cells and claim 3's verdict,
on evaluations simulated with a known lift."""

import json
from pathlib import Path

import numpy as np
import pytest

from interp import InterpError
from interp.study.claims import HELD, NOT_HELD, UNRESOLVED
from interp.study.eval_column import evaluation_column, read_evaluations

QUESTIONS = 50


def evals(rate: float, seeds: int, rng: np.random.Generator) -> list[dict]:
    """Per-seed evaluations: per-question mention rates of 20 samples at `rate`, P(trait) near it."""
    out = []
    for _ in range(seeds):
        m = rng.binomial(20, rate, QUESTIONS) / 20
        p = np.clip(rate + rng.normal(0, 0.01, QUESTIONS), 0, 1)
        out.append(
            {
                "per_question_mention": m.tolist(),
                "per_question_p": p.tolist(),
                "per_question_p_trait": p.tolist(),
            }
        )
    return out


def column(with_rate: float, without_rate: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    student = {"default": evals(with_rate, 3, rng), "none": evals(without_rate, 3, rng)}
    base = {"default": evals(0.05, 1, rng), "none": evals(0.05, 1, rng)}
    return evaluation_column(student, base)


def test_a_lift_only_with_the_prompt_holds_claim_3_and_one_without_it_does_not():
    held = column(0.25, 0.05)
    cells = {c["eval_system"]: c for c in held["cells"]}
    assert cells["default"]["lift"] == pytest.approx(0.2, abs=0.03)
    assert cells["default"]["p_trait_diff"] == pytest.approx(0.2, abs=0.01)
    assert cells["none"]["mention_diff_ci"][0] < 0 < cells["none"]["mention_diff_ci"][1]
    assert held["claim"]["verdict"] == HELD
    assert held["claim"]["lift_with"][0] == cells["default"]["lift"]
    assert column(0.25, 0.25)["claim"]["verdict"] == NOT_HELD  # it lifts without the prompt too


def test_the_column_wants_both_prompts_and_the_same_seeds_under_each(tmp_path: Path):
    rng = np.random.default_rng(1)
    with pytest.raises(InterpError, match="default and none"):
        evaluation_column({"default": evals(0.2, 1, rng)}, {"default": evals(0.1, 1, rng)})
    with pytest.raises(InterpError, match="same seeds"):
        evaluation_column(
            {"default": evals(0.2, 3, rng), "none": evals(0.2, 2, rng)},
            {"default": evals(0.1, 1, rng), "none": evals(0.1, 1, rng)},
        )
    run = tmp_path / "eval"
    run.mkdir()
    with pytest.raises(InterpError, match="no metrics.json"):
        read_evaluations(run)
    (run / "metrics.json").write_text(json.dumps({"per_student": evals(0.1, 2, rng)}))
    assert len(read_evaluations(run)) == 2


def write_run(path: Path, seeds: list[dict], system: str, **settings) -> Path:
    """An evaluate_trait run directory as the stage writes it (metrics.json with settings and per_student)."""
    s = {"trait": "cat", "category": "animal", "n_questions": QUESTIONS, "samples_per_question": 20,
         "temperature": 1.0, "seed": 0, "system": system, **settings}  # fmt: skip
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(
        json.dumps({"settings": s, "per_student": [{**e, "settings": s} for e in seeds]})
    )
    return path


def test_the_stage_writes_the_column_and_refuses_runs_that_do_not_compare(tmp_path: Path):
    from interp.stages.eval_column import EvalColumnConfig, run

    rng = np.random.default_rng(2)
    runs = {
        "student_default": write_run(tmp_path / "sd", evals(0.25, 3, rng), "default"),
        "student_none": write_run(tmp_path / "sn", evals(0.05, 3, rng), "none"),
        "reference_default": write_run(tmp_path / "rd", evals(0.05, 1, rng), "default"),
        "reference_none": write_run(tmp_path / "rn", evals(0.05, 1, rng), "none"),
    }
    out = run(EvalColumnConfig(**runs, out=tmp_path / "column"))
    results = json.loads((out / "results.json").read_text())
    assert results["claim"]["verdict"] == HELD and (out / "config.json").exists()
    assert "**held**" in (out / "report.md").read_text()
    with pytest.raises(InterpError, match="^--student-none .* not 'none'"):  # the prompts swapped
        run(EvalColumnConfig(**{**runs, "student_none": runs["student_default"]}, out=tmp_path / "c2"))
    other = write_run(tmp_path / "rn2", evals(0.05, 1, rng), "none", samples_per_question=5)
    with pytest.raises(InterpError, match="differ in their settings"):
        run(EvalColumnConfig(**{**runs, "reference_none": other}, out=tmp_path / "c3"))
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c3").exists()
    with pytest.raises(InterpError, match="--out"):
        EvalColumnConfig(**runs)
    with pytest.raises(InterpError, match="^--reference-default .* does not exist"):
        run(EvalColumnConfig(**{**runs, "reference_default": tmp_path / "missing"}, out=tmp_path / "c4"))


def columns(none_trained_lift: float, seed: int = 3) -> dict[str, dict]:
    """A default-trained column lifting 0.20 with the prompt and none without, and a column of students
    trained under no prompt lifting `none_trained_lift` under both, each against its own reference."""
    rng = np.random.default_rng(seed)
    ref = lambda: {"default": evals(0.05, 3, rng), "none": evals(0.05, 3, rng)}  # noqa: E731
    rate = 0.05 + none_trained_lift
    settings = {"trait": "cat", "n_questions": QUESTIONS}
    default = evaluation_column({"default": evals(0.25, 3, rng), "none": evals(0.05, 3, rng)}, ref())
    none = evaluation_column({"default": evals(rate, 3, rng), "none": evals(rate, 3, rng)}, ref(), "none")
    return {"default": {**default, "settings": settings}, "none": {**none, "settings": settings}}


def test_the_grid_joins_the_columns_and_reads_the_training_row_against_the_default_trained_students():
    from interp.study.eval_column import context_grid

    grid = context_grid(columns(0.10))
    assert [(c["train_system"], c["eval_system"]) for c in grid["cells"]] == [
        ("default", "default"), ("default", "none"), ("none", "default"), ("none", "none")]  # fmt: skip
    assert grid["claim"]["verdict"] == HELD  # the rule reads the default-trained column only
    assert columns(0.10)["none"]["claim"]["verdict"] == UNRESOLVED  # ... which a none-trained one is not
    row = grid["training_row"]["none"]
    assert row["mention_lift"][0] == pytest.approx(0.10, abs=0.03)
    assert row["fraction_of_default_trained"][0] == pytest.approx(0.5, abs=0.15)
    assert row["fraction_of_default_trained"][1] < 0.5 < row["fraction_of_default_trained"][2]
    assert context_grid(columns(0.0))["training_row"]["none"]["fraction_of_default_trained"][1] < 0 < 0.25


def test_the_grid_refuses_columns_that_do_not_make_a_matrix(tmp_path: Path):
    from interp.stages.context_grid import ContextGridConfig, run
    from interp.study.eval_column import context_grid

    cols = columns(0.1)
    with pytest.raises(InterpError, match="one column per training prompt"):
        context_grid({"a": cols["default"], "b": cols["default"]})
    with pytest.raises(InterpError, match="default among them"):
        context_grid({"none": cols["none"]})
    other = {**cols["none"], "settings": {"trait": "owl", "n_questions": QUESTIONS}}
    with pytest.raises(InterpError, match="differ in their settings"):
        context_grid({"default": cols["default"], "none": other})
    dirs = []
    for name, col in cols.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(col))
        dirs.append(tmp_path / name)
    out = run(ContextGridConfig(columns=tuple(dirs), out=tmp_path / "grid", png=False))
    report = (out / "report.md").read_text()
    assert "Trained under 'none'" in report and (out / "figures" / "context_matrix.html").exists()
    assert json.loads((out / "results.json").read_text())["claim"]["verdict"] == HELD
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterpError, match="^--columns .*empty: no results.json"):
        run(ContextGridConfig(columns=(dirs[0], tmp_path / "empty"), out=tmp_path / "g2", png=False))
    assert not (tmp_path / "g2").exists()
    (tmp_path / "empty" / "results.json").write_text("{cells")
    with pytest.raises(InterpError, match="^--columns .*results.json is not JSON"):
        run(ContextGridConfig(columns=(dirs[0], tmp_path / "empty"), out=tmp_path / "g2", png=False))
    with pytest.raises(InterpError, match="--out"):
        ContextGridConfig(columns=tuple(dirs))


def test_the_column_reads_finished_jobs_evaluated_under_both_prompts(tmp_path: Path):
    """The ladder's --train-system none students carry both evaluations: the column reads them as they are."""
    from interp.stages.eval_column import EvalColumnConfig, run

    rng = np.random.default_rng(4)
    s = {"trait": "cat", "n_questions": QUESTIONS, "samples_per_question": 20, "seed": 0}

    def job(name: str, rate: float, systems=("default", "none")) -> Path:
        (tmp_path / name).mkdir()
        ev = {sys: {**evals(rate, 1, rng)[0], "settings": {**s, "system": sys}} for sys in systems}
        (tmp_path / name / "result.json").write_text(json.dumps({"evals": ev, "final_loss": 0.01}))
        return tmp_path / name

    students = tuple(job(f"s{t}", 0.25) for t in range(3))
    controls = tuple(job(f"c{t}", 0.05) for t in range(3))
    out = run(EvalColumnConfig(student_jobs=students, reference_jobs=controls, train_system="none",
                               out=tmp_path / "column"))  # fmt: skip
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [(c["train_system"], c["eval_system"]) for c in cells] == [("none", "default"), ("none", "none")]
    assert cells[0]["lift"] == pytest.approx(0.2, abs=0.04) and cells[0]["seeds"] == 3
    base = job("base", 0.05, ("default",))
    with pytest.raises(
        InterpError, match="^--reference-jobs .*base was not evaluated under the system prompt 'none'"
    ):
        run(EvalColumnConfig(student_jobs=students, reference_jobs=(base,), out=tmp_path / "col2"))
    assert not (tmp_path / "col2").exists()
    with pytest.raises(InterpError, match="not both"):
        EvalColumnConfig(
            student_jobs=students, reference_jobs=controls, student_none=out, out=tmp_path / "col3"
        )
    with pytest.raises(InterpError, match="--reference-jobs"):
        EvalColumnConfig(student_jobs=students, out=tmp_path / "col4")


def test_the_column_reads_the_other_identity_where_the_jobs_were_evaluated_under_it(tmp_path: Path):
    """--eval-systems adds a prompt the ladder's --eval-systems evaluated under: a cell per prompt, the lift
    under the other identity recovered; a prompt some job lacks is one error naming its flag; the four
    evaluate_trait runs hold default and none only."""
    from interp.stages.eval_column import EvalColumnConfig, run

    rng = np.random.default_rng(5)
    s = {"trait": "cat", "n_questions": QUESTIONS, "samples_per_question": 20, "seed": 0}
    rates = {"default": 0.25, "none": 0.15, "other identity": 0.45}

    def job(name: str, shift: dict, systems=tuple(rates)) -> Path:
        (tmp_path / name).mkdir()
        ev = {k: {**evals(rates[k] - shift[k], 1, rng)[0], "settings": {**s, "system": k}} for k in systems}
        (tmp_path / name / "result.json").write_text(json.dumps({"evals": ev}))
        return tmp_path / name

    students = tuple(job(f"s{t}", dict.fromkeys(rates, 0.0)) for t in range(3))
    lifts = {"default": 0.2, "none": 0.1, "other identity": 0.1}
    base = job("base", lifts)
    three = ("default", "none", "other identity")
    out = run(EvalColumnConfig(student_jobs=students, reference_jobs=(base,), eval_systems=three,
                               out=tmp_path / "column"))  # fmt: skip
    cells = {c["eval_system"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert set(cells) == set(three)
    assert all(c["lift"] == pytest.approx(lifts[k], abs=0.05) for k, c in cells.items())
    assert cells["other identity"]["mention_rate"] == pytest.approx(0.45, abs=0.05)
    # the evaluation row: each other prompt's lift as a fraction of the default's, here a half
    fractions = json.loads((out / "results.json").read_text())["fraction_of_default"]
    assert set(fractions) == {"none", "other identity"}
    assert all(f[1] < 0.5 < f[2] and f[0] == pytest.approx(0.5, abs=0.2) for f in fractions.values())
    assert "| other identity |" in (out / "report.md").read_text()
    two = job("base2", lifts, ("default", "none"))
    with pytest.raises(
        InterpError, match="^--reference-jobs .*base2 was not evaluated under .*'other identity'"
    ):
        run(EvalColumnConfig(student_jobs=students, reference_jobs=(two,), eval_systems=three,
                             out=tmp_path / "col2"))  # fmt: skip
    assert not (tmp_path / "col2").exists()
    runs = {f"{side}_{k}": out for side in ("student", "reference") for k in ("default", "none")}
    with pytest.raises(InterpError, match="needs --student-jobs"):
        EvalColumnConfig(**runs, eval_systems=three, out=tmp_path / "col3")
