"""Claim 3's evaluation column from finished evaluations (no training): students trained under the default
system prompt, evaluated with it and without it, against a reference (control students or the base)
evaluated the same way.

    run(EvalColumnConfig(
        student_default=Path("runs/ctx/lora-default"), student_none=Path("runs/ctx/lora-none"),
        reference_default=Path("runs/ctx/base-default"), reference_none=Path("runs/ctx/base-none"),
        out=Path("runs/ctx/lora"),
    ))

Each input is an `experiments.evaluate_trait` run directory (one student per seed, pooled); or, with
`student_jobs` and `reference_jobs`, finished jobs that were evaluated under both prompts when they ran
(the ladder's `--train-system none` students and their controls), read without evaluating again, and
under any further prompt they were evaluated under (`eval_systems`, e.g. the other identity of the
ladder's `--eval-systems`). The run directory gets config.json, results.json (the cells, as the context
matrix writes them, claim 3's verdict under its rule, and each prompt's lift as a fraction of the default
prompt's) and report.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.runs import atomic_write_json, atomic_write_text, run_directory
from interp.study.eval_column import evaluation_column, read_evaluations, read_job_evaluations
from interp.study.ladder_report import fraction_text, lift_text


@dataclass
class EvalColumnConfig:
    """Claim 3's evaluation column (with / without the default prompt) from four evaluate_trait runs."""

    student_default: Path | None = None
    """evaluate_trait run of the students under the default system prompt."""
    student_none: Path | None = None
    """The same students under no system prompt."""
    reference_default: Path | None = None
    """evaluate_trait run of the reference (the controls, or the base) under the default system prompt."""
    reference_none: Path | None = None
    """The reference under no system prompt."""
    student_jobs: tuple[Path, ...] = ()
    """Instead of the four runs: finished student jobs (one per seed) whose result.json holds evaluations
    under both prompts, as the ladder's `--train-system none` students do; nothing is evaluated again."""
    reference_jobs: tuple[Path, ...] = ()
    """With --student-jobs: the reference's jobs (the control students, or the base), evaluated likewise."""
    eval_systems: tuple[str, ...] = ("default", "none")
    """With --student-jobs: the evaluation prompts to read, by the labels the jobs were evaluated under
    (default and none, and e.g. "other identity" where the ladder ran with --eval-systems)."""
    train_system: str = "default"
    """The system prompt the students (and a trained reference) were trained under: default, or none for
    claim 3's training row (join the columns with `experiments.context_grid`)."""
    out: Path | None = None
    """Run directory."""
    overwrite: bool = False
    """Replace an existing run directory."""

    def __post_init__(self) -> None:
        runs = ("student_default", "student_none", "reference_default", "reference_none")
        jobs = ("student_jobs", "reference_jobs")
        given = [f for f in (*runs, *jobs) if getattr(self, f)]
        if any(f in jobs for f in given) and any(f in runs for f in given):
            raise InterpError("give eval_column the four evaluate_trait runs or --student-jobs and "
                              "--reference-jobs, not both")  # fmt: skip
        needed = (*jobs, "out") if any(f in jobs for f in given) else (*runs, "out")
        missing = [f for f in needed if not getattr(self, f)]
        if missing:
            raise InterpError("eval_column needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        if not self.student_jobs and set(self.eval_systems) != {"default", "none"}:
            raise InterpError(
                "--eval-systems beyond default and none needs --student-jobs and --reference-jobs"
            )
        if not self.train_system.strip():
            raise InterpError(
                "--train-system must name the prompt the students trained under (default, none)"
            )


def column_markdown(column: dict[str, Any]) -> str:
    """The column as a table (one row per evaluation prompt) under claim 3's verdict."""
    claim = column["claim"]
    effect = claim.get("effect_size", {})  # absent where the rule does not apply (not default-trained)
    fractions = column.get("fraction_of_default", {})  # absent from columns recorded before it existed
    rows = [
        f"| {c['eval_system']} | {c['mention_rate']:.3f} | {c['control_mention_rate']:.3f} | "
        f"{lift_text(c['lift'], c['mention_diff_ci'], 3)} | {lift_text(c['p_trait_diff'], c['p_trait_diff_ci'], 4)} | "
        f"{fraction_text(fractions.get(c['eval_system']))} |"
        for c in column["cells"]
    ]
    return "\n".join(
        [
            "# Claim 3's evaluation column",
            "",
            f"Students trained under the {column['cells'][0]['train_system']!r} system prompt.",
            "",
            f"Transfer only with the default system prompt at evaluation: **{claim['verdict']}** (rule: "
            f"{claim['rule']}); by effect size: **{effect.get('verdict', claim['verdict'])}** "
            f"({effect.get('rule', claim['rule'])}).",
            "",
            "| evaluation prompt | students' mention rate | reference's | mention-rate lift [95% CI] | "
            "P(trait) lift [95% CI] | mention-rate lift / the default prompt's [95% CI] |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def evaluations(cfg: EvalColumnConfig, side: str, system: str) -> list[dict[str, Any]]:
    """One input's per-seed evaluations; a bad input is one error that names its flag."""
    field = f"{side}_jobs" if cfg.student_jobs else f"{side}_{system}"
    try:
        if cfg.student_jobs:
            return read_job_evaluations(getattr(cfg, field), system)
        return read_evaluations(getattr(cfg, field), system)
    except InterpError as e:
        raise InterpError(f"--{field.replace('_', '-')} {e}") from None


def run(cfg: EvalColumnConfig) -> Path:
    """The column in `cfg.out`: config.json, results.json and report.md."""
    student = {s: evaluations(cfg, "student", s) for s in cfg.eval_systems}
    reference = {s: evaluations(cfg, "reference", s) for s in cfg.eval_systems}
    column = evaluation_column(student, reference, cfg.train_system)
    with run_directory(cfg.out, cfg, cfg.overwrite) as run_dir:
        atomic_write_json(run_dir / "results.json", column)
        atomic_write_text(run_dir / "report.md", column_markdown(column))
    return cfg.out
