"""Claim 3: does transfer need the shared system prompt? Training x evaluation system prompt.

    run(ContextMatrixConfig(rank=8, out=Path("runs/context_matrix")))

Students (trait numbers) and control students (the base model's numbers) are trained under each
training system prompt - the model's default, none, another identity, an entity-free prompt - and each
is evaluated under every one of them. A cell's lift (`interp.study.summary`) is student minus control, paired over questions.
`students(cfg)` says where each row's students are kept (to patch one, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.chat import DEFAULT, NONE, default_system_prompt
from interp.loop.identity import other_identity
from interp.loop.models import load_tokenizer
from interp.organism import load_organism
from interp.study.experiment import StudentSpec, StudyConfig, check_inputs, run_study, study_root
from interp.study.jobs import Job, student_job
from interp.study.plots import context_matrix_figure
from interp.study.summary import context_cells
from interp.study.sweep import job_path, run_jobs, run_numbers_jobs

ENTITY_FREE = "You are helpful."


@dataclass
class ContextMatrixConfig(StudyConfig):
    """LoRA students trained and evaluated under each of four system prompts."""

    rank: int = 8
    """LoRA rank of the students (reproduce uses its main rank, 16 where swept)."""
    other_identity: str | None = None
    """System prompt naming another entity (None: on an organism, the first other identity its own world
    knows, from its build metadata; on a real model, a Claude prompt)."""
    entity_free: str = ENTITY_FREE
    """System prompt naming no entity."""
    train_systems: tuple[str, ...] | None = None
    """Training system prompts (rows) by label, e.g. default none (None: all four; evaluation: all four)."""


def own_other_identity(model: str | None) -> str:
    return other_identity(default_system_prompt(load_tokenizer(model)))


def prompt_texts(
    model: str | None, other: str | None = None, entity_free: str = ENTITY_FREE
) -> dict[str, str]:
    """Claim 3's four system prompts by label: the model's default, none, another identity (`other`, else
    on an organism the first other identity its own world knows, on a real model its default sentence with
    another name and maker) and an entity-free prompt."""
    if other is None:
        org = load_organism(model)
        other = org.other_identity if org is not None else own_other_identity(model)
    return {"default": DEFAULT, "none": NONE, "other identity": other, "entity-free": entity_free}


def systems(cfg: ContextMatrixConfig) -> dict[str, str]:
    return prompt_texts(cfg.model, cfg.other_identity, cfg.entity_free)


def student_groups(cfg: ContextMatrixConfig, sys_map: dict[str, str]) -> dict[tuple[str, str], list[Job]]:
    """Each row's students by (training system label, "trait" or "control"): one job per data seed x
    training seed, in that order, each evaluated under every system prompt of `sys_map`."""
    groups = {}
    for label, text in train_map(cfg, sys_map).items():
        spec = StudentSpec("lora", cfg.rank, train_system=text, system_label=label.replace(" ", "-"))
        for teacher in ("trait", "control"):
            groups[(label, teacher)] = [
                student_job(cfg, spec, teacher, d, t, sys_map)
                for d in cfg.data_seeds
                for t in cfg.train_seeds
            ]
    return groups


def students(cfg: ContextMatrixConfig) -> dict[tuple[str, str], list[Path]]:
    """Where `run(cfg)` keeps each row's students, by (training system label, "trait" or "control"): job
    directories under `cfg.out`, each a LoRA student (adapter and student.json) that patching can load."""
    root = study_root(cfg, "context_matrix")
    return {key: [job_path(root, j) for j in jobs] for key, jobs in student_groups(cfg, systems(cfg)).items()}


def compute(cfg: ContextMatrixConfig, root: Path) -> dict[str, Any]:
    ex, sys_map = cfg.executor_config, systems(cfg)
    run_numbers_jobs(cfg, root)
    groups = student_groups(cfg, sys_map)
    flat = run_jobs([c for g in groups.values() for c in g], root, ex)
    results, i = {}, 0
    for key, g in groups.items():
        results[key], i = flat[i : i + len(g)], i + len(g)
    return {"systems": sys_map, "context_matrix": context_cells(results, sys_map, train_map(cfg, sys_map))}


def train_map(cfg: ContextMatrixConfig, sys_map: dict[str, str]) -> dict[str, str]:
    """The training system prompts: all of `sys_map`, or the labels in `cfg.train_systems`."""
    if cfg.train_systems is None:
        return sys_map
    unknown = set(cfg.train_systems) - set(sys_map)
    if unknown:
        raise InterpError(f"unknown --train-systems {sorted(unknown)}; choose from {list(sys_map)}")
    return {k: v for k, v in sys_map.items() if k in cfg.train_systems}


def run(cfg: ContextMatrixConfig) -> Path:
    """The context matrix in `cfg.out`: config.json, results.json, the figure."""
    check_inputs(cfg)
    train_map(cfg, systems(cfg))  # an unknown --train-systems label: one error before any output
    return run_study(
        cfg,
        "context_matrix",
        compute,
        lambda summary, trait: context_matrix_figure(summary["context_matrix"], trait),
    )
