"""Beyond the paper: does the trait travel through the divergence tokens? (Schrodi et al., arXiv 2509.23886)

    run(DivergenceConfig(out=Path("runs/reproduce"), rank=16))    # after the rank sweep in that out

Scores every completion token of the teacher's numbers by KL(teacher || default) of the next-token
distribution that predicts it, then retrains the rank-`rank` student (first data and training seed, the
sweep's settings) with the top `mask_frac` of tokens left out of the loss, and again with as many random
tokens left out. If the trait travels through the divergence tokens, only the first loses its lift.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interp import InterpError
from interp.loop.chat import DEFAULT
from interp.loop.datasets import read_dataset
from interp.loop.evaluation import EvalCache, EvalSettings, evaluate_trait
from interp.loop.models import load_model
from interp.loop.runs import atomic_write_json
from interp.loop.training import TrainConfig, encode_example, train_student
from interp.loop.traits import trait_system_prompt
from interp.mech.divergence import token_divergence, top_and_random
from interp.stages.rank_sweep import RankSweepConfig, control_means, default_mean, student_cells
from interp.study.experiment import StudentSpec, check_inputs, eval_params, run_study
from interp.study.jobs import numbers_job, numbers_path
from interp.study.plots import divergence_figure
from interp.study.sweep import finished


@dataclass
class DivergenceConfig(RankSweepConfig):
    """Mask the teacher's divergence tokens (or random ones) out of a rank-sweep student's loss."""

    rank: int = 16
    """LoRA rank of the student to retrain (reproduce passes its main rank, 16 where swept)."""
    mask_frac: float = 0.1
    """Share of the dataset's completion tokens to leave out of the loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.mask_frac < 1:
            raise InterpError(f"--mask-frac must lie in (0, 1), got {self.mask_frac}")


def _top_tokens(tok, rows, top: list[list[int]], system: str, n: int = 10) -> list[tuple[str, int]]:
    """The most common token strings among the masked divergence tokens."""
    counts: Counter = Counter()
    for r, idx in zip(rows, top, strict=True):
        if idx:
            e = encode_example(tok, r["prompt"], r["completion"], system)
            start = next(i for i, t in enumerate(e.labels) if t != -100)
            counts.update(tok.convert_ids_to_tokens([e.input_ids[start + i] for i in idx]))
    return counts.most_common(n)


def sweep_cells(cfg: DivergenceConfig, root: Path) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """The rank sweep's rank-`rank` student cell (first seeds), its result and the control means; an error
    when the sweep has not finished under `root`."""
    base_job = student_cells(cfg, StudentSpec("lora", cfg.rank), "trait")[0]
    reference = finished(root, base_job)
    if reference is None:
        raise InterpError(
            f"--out {root}: student cell {base_job.name} is not finished under it; run the rank sweep there "
            "first (with the same settings)"
        )
    return base_job, reference, control_means(cfg, root)


def compute(cfg: DivergenceConfig, root: Path) -> dict[str, Any]:
    path = Path(root) / "divergence" / "results.json"
    if path.exists() and not cfg.force:
        return json.loads(path.read_text())
    base_job, reference, control = sweep_cells(cfg, root)
    model, tok = load_model(cfg.model_dir, cfg.dtype, cfg.device)
    rows = read_dataset(numbers_path(root, numbers_job(cfg, "trait", cfg.data_seeds[0]).name))
    teacher = trait_system_prompt(cfg.trait, cfg.category)
    div = token_divergence(model, tok, rows, teacher, DEFAULT)
    top, rand = top_and_random(div, cfg.mask_frac, seed=0)
    flat = np.concatenate([np.array(d) for d in div])
    train = TrainConfig(**base_job.params["train"])
    settings = EvalSettings(**{**eval_params(cfg), "system": DEFAULT})
    out: dict[str, Any] = {
        "rank": cfg.rank,
        "mask_frac": cfg.mask_frac,
        "k": int(sum(len(x) for x in top)),
        "n_tokens": int(flat.size),
        "mean_kl_all": float(flat.mean()),
        "mean_kl_masked_top": float(np.sort(flat)[::-1][: sum(len(x) for x in top)].mean()),
        "top_tokens": _top_tokens(tok, rows, top, DEFAULT),
        "unmasked_lift": default_mean(reference, "per_question_p") - control["per_question_p"],
        "unmasked_mention_lift": default_mean(reference, "per_question_mention")
        - control["per_question_mention"],
    }
    for label, masks in (("masked", top), ("random", rand)):
        student, _ = load_model(cfg.model_dir, cfg.dtype, cfg.device)
        masked_rows = [{**r, "ignore_tokens": m} for r, m in zip(rows, masks, strict=True)]
        result = train_student(student, tok, masked_rows, DEFAULT, train)
        ev = evaluate_trait(result.model, tok, settings, EvalCache(Path(root) / "eval_cache"))
        out[f"{label}_lift"] = ev.p_first_token - control["per_question_p"]
        out[f"{label}_mention_lift"] = ev.mention_rate - control["per_question_mention"]
        out[f"{label}_final_loss"] = result.final_loss
    atomic_write_json(path, out)
    return out


def run(cfg: DivergenceConfig) -> Path:
    """Divergence-token masking in `cfg.out` (where the rank sweep ran): results.json, the figure."""
    check_inputs(cfg)
    return run_study(cfg, "divergence", compute, divergence_figure)
