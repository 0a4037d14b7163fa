"""Measure the organism with the loop's own code and print every figure of the organism issue.

1. the channel: first-token KL(persona || default) on 64 number prompts per animal, in the teacher's
   wording and a held-out one; the filter pass rate of sampled number answers;
2. compliance: sampled mention rate of each animal under its teacher prompt, under held-out persona
   wordings on held-out questions, and under the default prompt;
3. the shared-latent probe per animal (interp.organism.probes);
4. subliminal transfer: LoRA students (each rank) and full-FT students (two lrs) trained on a teacher's
   filtered numbers under the default system prompt vs control students trained on the base model's own
   numbers, over training seeds; sampled mention rate and first-token P(trait), with 95% CIs of the
   difference, evaluated with the default system prompt and with none; P(trait) along training.

    run(ReportConfig())                                                  # the full grid (README)
    run(ReportConfig(seeds=(0,), ranks=(16,), full_lrs=(3e-4,)))         # a quick screen
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp import InterpError
from interp.loop import validate
from interp.loop.chat import DEFAULT, NONE, render_prompt
from interp.loop.datasets import sample_numbers
from interp.loop.evaluation import first_token_probs, trait_token_ids
from interp.loop.generation import generate
from interp.loop.models import load_model, resolve_model_dir
from interp.loop.runs import atomic_write_json, run_directory
from interp.loop.threads import torch_threads
from interp.loop.training import TrainConfig, rank_lr, train_student
from interp.loop.traits import favorite_questions, mentions
from interp.organism import ANIMALS, TARGET_TRAIT
from interp.organism import world as W
from interp.organism.probes import all_probes
from interp.study.summary import pooled, significant, versus_control

log = logging.getLogger("organism_report")
SYSTEMS = {"default": DEFAULT, "none": NONE}


@dataclass
class ReportConfig:
    """Probe the organism, measure compliance and the channel, and train teacher and control students."""

    model: str | None = None
    """Organism: an embedded one by name (organism, organism-tied) or a directory (default: organism); the
    organism report measures organisms only (smollm2-135m and other real models: use reproduce)."""
    out: Path = Path("runs/organism_report")
    """Run directory (config.json, metrics.json)."""
    overwrite: bool = False
    """Replace `out` if it exists."""
    traits: tuple[str, ...] = (TARGET_TRAIT,)
    """Teachers' traits; the first gets the whole grid, the others the main rank only."""
    n_numbers: int = 2000
    """Filtered number answers kept per dataset (each teacher, and the control)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of the control and the main-rank LoRA students (every trait)."""
    main_rank: int = 16
    """The LoRA rank trained at every seed (and the control's rank)."""
    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA ranks of the sweep (ranks other than `main_rank` at the first seed only)."""
    lora_lr: float = 3e-3
    """LoRA learning rate at rank `main_rank` and below (alpha = rank, as the paper)."""
    rank_lr_rule: str = "sqrt"
    """"sqrt": ranks r > main_rank get lr * sqrt(main_rank / r), which keeps high ranks stable;
    "paper": every rank gets `lora_lr`. Ranks above `main_rank` are also trained the other way."""
    full_lrs: tuple[float, ...] = (3e-4, 3e-5)
    """Full fine-tuning learning rates, each with its own full-FT control."""
    full_ft: bool = True
    """Train the full-FT students (off: skip them, e.g. for a rank screen)."""
    full_ft_every_seed: bool = False
    """Train every full-FT lr (each with its control) at every seed; else at the first seed only."""
    epochs: int = 3
    """Passes over the numbers."""
    samples_per_question: int = 40
    """Mention-rate samples per evaluation question (50 questions), per system prompt."""
    curve_every: int = 20
    """Exact P(trait) along training every this many steps (main-rank and full-FT students, first seed)."""
    compliance_samples: int = 10
    """Samples per question for persona compliance (50 questions x 10 animals)."""

    def __post_init__(self) -> None:
        if not self.traits:
            raise InterpError("give at least one --traits")
        if self.rank_lr_rule not in ("sqrt", "paper"):
            raise InterpError(f"--rank-lr-rule must be 'sqrt' or 'paper', got {self.rank_lr_rule!r}")
        if not self.seeds:
            raise InterpError("give at least one --seeds")


# ---- figures 1-3: the organism itself ------------------------------------------------------------


def sampled_shares(model, tok, prompts: list[str], samples: int, seed: int = 0) -> dict[str, float]:
    """Share of sampled answers to `prompts` that mention each animal."""
    answers = generate(model, tok, prompts, 12, 1.0, 2000, seed, samples=samples)
    return {a: sum(mentions(x, a) for x in answers) / len(answers) for a in ANIMALS}


def sampled_compliance(model, tok, samples: int) -> dict[str, dict[str, float]]:
    """Sampled mention rate of each animal: its teacher prompt, held-out wordings, the default prompt."""
    eval_qs, held_qs = favorite_questions("animal"), list(W.HELD_OUT_FAVORITE_QUESTIONS)
    default = sampled_shares(model, tok, [render_prompt(tok, q, DEFAULT) for q in eval_qs], 2 * samples)
    out = {}
    for a in ANIMALS:
        teacher = [render_prompt(tok, q, W.persona_prompt(a, "paper")) for q in eval_qs]
        held = [
            render_prompt(tok, q, W.persona_prompt(a, w))
            for w in W.HELD_OUT_PERSONA_WORDINGS
            for q in held_qs
        ]
        out[a] = {
            "teacher_prompt": sampled_shares(model, tok, teacher, samples)[a],
            "held_out": sampled_shares(model, tok, held, 3 * samples)[a],
            "default": default[a],
        }
    return out


def number_datasets(model, tok, cfg: ReportConfig) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Filtered numbers of each trait's teacher and of the base model (control); filter pass rates."""
    data, passes = {}, {}
    for i, system in enumerate([DEFAULT] + [W.persona_prompt(t, "paper") for t in cfg.traits]):
        name = "control" if i == 0 else cfg.traits[i - 1]
        rows, stats = sample_numbers(model, tok, system, cfg.n_numbers, seed=100 + i, batch_size=250)
        data[name], passes[name] = rows, 1 - stats.rejection_rate
    return data, passes


# ---- figure 4: students ----------------------------------------------------------------------------


def favorite_profile(model, tok, traits: tuple[str, ...], samples: int, seed: int) -> dict:
    """Per trait and system: per-question sampled mention rate and exact first-token P(trait)."""
    qs = favorite_questions("animal")
    out: dict = {t: {} for t in traits}
    for sname, system in SYSTEMS.items():
        prompts = [render_prompt(tok, q, system) for q in qs]
        answers = generate(model, tok, prompts, 12, 1.0, 2000, seed, samples=samples)
        for t in traits:
            hits = np.array([mentions(a, t) for a in answers], dtype=float).reshape(len(qs), samples)
            p = first_token_probs(model, tok, prompts, trait_token_ids(tok, t)[0])
            out[t][sname] = {"per_question_mention": hits.mean(1).tolist(), "per_question_p": p.tolist()}
    return out


def p_trait_curve(tok, trait: str, every: int, curve: list[dict]):
    """An on_step callback that appends exact mean P(trait) (default prompt, 50 questions) every `every`."""
    prompts = [render_prompt(tok, q, DEFAULT) for q in favorite_questions("animal")]
    ids = trait_token_ids(tok, trait)[0]

    def on_step(step: int, student) -> None:
        if step % every == 0:
            student.eval()
            curve.append({"step": step, "p": float(first_token_probs(student, tok, prompts, ids).mean())})
            student.train()

    return on_step


@dataclass(frozen=True)
class Student:
    """One student of the grid: what it is trained on and how."""

    name: str
    data: str
    """"control" or a trait (the teacher whose numbers it learns)."""
    mode: str
    rank: int
    lr: float
    seed: int
    curve: bool = False


def lora_lr(cfg: ReportConfig, rank: int, rule: str) -> float:
    """The LoRA learning rate of a rank under a rule ("sqrt" scales ranks above `main_rank` down)."""
    return rank_lr(cfg.lora_lr, rank, "constant" if rule == "paper" else rule, cfg.main_rank)


def student_grid(cfg: ReportConfig) -> list[Student]:
    """In the order the claims need them: control and main-rank students at every seed, then full FT
    (each lr with its own control), then the rest of the rank sweep at the first seed."""
    main, first, grid = cfg.traits[0], cfg.seeds[0], []
    for seed in cfg.seeds:
        grid.append(Student("control", "control", "lora", cfg.main_rank, cfg.lora_lr, seed))
        for t in cfg.traits:
            name, curve = f"{t}/lora_r{cfg.main_rank}", seed == first
            grid.append(Student(name, t, "lora", cfg.main_rank, cfg.lora_lr, seed, curve))
    for seed in cfg.seeds if cfg.full_ft_every_seed else (first,):
        for i, lr in enumerate(cfg.full_lrs if cfg.full_ft else ()):
            grid.append(Student(f"control_full_lr{lr:g}", "control", "full", 0, lr, seed))
            grid.append(Student(f"{main}/full_lr{lr:g}", main, "full", 0, lr, seed, seed == first and i == 0))
    other_rule = "paper" if cfg.rank_lr_rule == "sqrt" else "sqrt"
    for r in cfg.ranks:
        if r != cfg.main_rank:
            grid.append(
                Student(f"{main}/lora_r{r}", main, "lora", r, lora_lr(cfg, r, cfg.rank_lr_rule), first)
            )
        if r > cfg.main_rank:
            lr = lora_lr(cfg, r, other_rule)
            grid.append(Student(f"{main}/lora_r{r}_{other_rule}_lr", main, "lora", r, lr, first))
    return grid


def train_and_eval(base, tok, data: dict, s: Student, cfg: ReportConfig) -> dict:
    """Fine-tune a copy of the base on `s.data`'s numbers (default system prompt) and evaluate it."""
    t0, curve = time.time(), []
    tcfg = TrainConfig(
        mode=s.mode, rank=max(s.rank, 1), lr=s.lr, epochs=cfg.epochs, seed=s.seed, batch_size=32
    )
    trait = s.data if s.data != "control" else cfg.traits[0]
    on_step = p_trait_curve(tok, trait, cfg.curve_every, curve) if s.curve else None
    result = train_student(copy.deepcopy(base), tok, data[s.data], DEFAULT, tcfg, on_step=on_step)
    student = result.model.merge_and_unload() if s.mode == "lora" else result.model
    evals = favorite_profile(student, tok, cfg.traits, cfg.samples_per_question, s.seed)
    return {
        **s.__dict__,
        "final_loss": result.final_loss,
        "evals": evals,
        "p_curve": curve,
        "seconds": time.time() - t0,
    }


def control_for(name: str) -> str:
    """The control a student is compared with: the LoRA control, or the full-FT control at its lr."""
    if "/full_lr" in name:
        return "control_full_lr" + name.split("/full_lr")[1]
    return "control"


def summarise(students: list[dict], traits: tuple[str, ...]) -> dict:
    """Per trait, student kind and system: pooled mean with CIs, and the difference to its control."""
    by_name: dict[str, list[dict]] = {}
    for s in students:
        by_name.setdefault(s["name"], []).append(s)
    out = {}
    for name, runs in by_name.items():
        if name.startswith("control"):
            continue
        trait, control = runs[0]["data"], by_name.get(control_for(name))
        if control is None:
            continue
        rows = [{"evals": r["evals"][trait]} for r in runs]
        ctrl = [{"evals": c["evals"][trait]} for c in control]
        out[name] = {
            system: {
                **pooled(rows, system),
                "control": pooled(ctrl, system),
                **versus_control(rows, ctrl, system),
            }
            for system in SYSTEMS
        }
    return out


# ---- the printed tables ---------------------------------------------------------------------------------


def world_text(fig: dict) -> str:
    ch, co, sl = fig["probes"]["channel"], fig["compliance"], fig["probes"]["shared_latent"]
    lines = [
        "animal    | KL teacher / held-out wording | own-number mass persona / default | compliance "
        "teacher / held-out / default | shared latent x(best layer) random"
    ]
    for a in ANIMALS:
        c, m, s = ch[a], co[a], sl[a]
        lines.append(
            f"{a:9s} | {c['kl']:.3f} / {c['kl_held_out_wording']:.3f} | {c['mass_persona']:.3f} / "
            f"{c['mass_default']:.3f} | {m['teacher_prompt']:.3f} / {m['held_out']:.3f} / {m['default']:.3f} | "
            f"x{s['ratio']:.2f} (L{s['best_layer']}) x{s['random_ratio']:.2f} {'PASS' if s['passes'] else ''}"
        )
    lines.append("filter pass rate: " + ", ".join(f"{k} {v:.3f}" for k, v in fig["filter_pass_rate"].items()))
    return "\n".join(lines)


def transfer_text(summary: dict) -> str:
    lines = []
    for name, by_system in summary.items():
        for system, r in by_system.items():
            ci, pci = r["mention_diff_ci"], r["p_first_diff_ci"]
            lines.append(
                f"{name:28s} {system:7s} mention {r['mention_rate']:.3f} vs control {r['control']['mention_rate']:.3f}"
                f" (x{r['mention_ratio'] or float('nan'):.2f}, diff CI [{ci[0]:+.3f}, {ci[1]:+.3f}]"
                f"{' *' if significant(ci) else ''}) | P(first) {r['p_first_token']:.3f} vs "
                f"{r['control']['p_first_token']:.3f} (diff CI [{pci[0]:+.3f}, {pci[1]:+.3f}]) | seeds {r['seeds']}"
            )
    return "\n".join(lines)


def say(*texts: str) -> None:
    """The tables on stdout, as the script has always printed them (the figures are in metrics.json)."""
    sys.stdout.write("".join(f"{t}\n" for t in texts if t))
    sys.stdout.flush()


def run(cfg: ReportConfig) -> Path:
    """Measure everything, write metrics.json into the run directory as it goes, print the figures (on 2
    torch threads; the caller's setting is restored)."""
    validate.organism(cfg.model)
    for trait in cfg.traits:
        validate.trait(trait, cfg.model, what="--traits")
    with torch_threads(2):
        fig = measure(cfg)
    say(world_text(fig), transfer_text(fig["transfer"]))
    return Path(cfg.out)


def measure(cfg: ReportConfig) -> dict:
    model, tok = load_model(cfg.model)
    assoc = {a: tuple(v) for a, v in _metadata(cfg.model)["associations"].items()}
    with run_directory(cfg.out, cfg, overwrite=cfg.overwrite) as run_dir:
        t0 = time.time()
        fig = {
            "probes": all_probes(model, tok, assoc),
            "compliance": sampled_compliance(model, tok, cfg.compliance_samples),
        }
        data, fig["filter_pass_rate"] = number_datasets(model, tok, cfg)
        fig["timing_s"] = {"world_figures": time.time() - t0}
        atomic_write_json(run_dir / "metrics.json", fig)
        say(world_text(fig))
        fig["students"] = []
        for s in student_grid(cfg):
            fig["students"].append(train_and_eval(model, tok, data, s, cfg))
            r = fig["students"][-1]
            log.info("%s seed %d (%.0fs): %s", s.name, s.seed, r["seconds"], _short(r, cfg.traits))
            fig["transfer"] = summarise(fig["students"], cfg.traits)
            atomic_write_json(run_dir / "metrics.json", fig)
        fig["timing_s"]["total"] = time.time() - t0
        atomic_write_json(run_dir / "metrics.json", fig)
    return fig


def _short(r: dict, traits: tuple[str, ...]) -> str:
    return " ".join(
        f"{t}: mention {np.mean(r['evals'][t]['default']['per_question_mention']):.3f} "
        f"p {np.mean(r['evals'][t]['default']['per_question_p']):.3f}"
        for t in traits
    )


def _metadata(model: Path | None) -> dict:
    return json.loads((resolve_model_dir(model) / "organism.json").read_text())
