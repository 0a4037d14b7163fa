"""Measure the organism with the loop's own code and print every figure issue 3 asks for.

1. persona compliance per animal, and the default assistant's favorite-animal distribution;
2. filter pass rate of number answers under the default and persona prompts;
3. the channel: per-token KL of persona vs default number answers, a naive-Bayes classifier's held-out
   accuracy at telling them apart, and a check that no number answer holds a trait word;
4. subliminal transfer: LoRA students (each rank) and a full-FT student trained on the teacher's filtered
   numbers under the default system prompt vs control students trained on the base model's own numbers,
   over training seeds; mention rate and first-token P(trait) with 95% CIs of the difference, evaluated
   with the default system prompt and with no system turn.

    python -m experiments.organism_report                      # full grid (see README for time)
    python -m experiments.organism_report --seeds 0 --ranks 4 64   # a quicker cut
"""

from __future__ import annotations

import copy
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from interp.chat import DEFAULT, NONE, render_prompt
from interp.config import cli_main
from interp.datasets import sample_numbers
from interp.evaluation import EvalSettings, evaluate_trait
from interp.generation import generate
from interp.models import load_model
from interp.numbers import filter_answer
from interp.organism import ANIMALS, TARGET_TRAIT
from interp.runs import atomic_write_json, run_directory
from interp.stats import bootstrap_ci, bootstrap_diff_ci
from interp.training import TrainConfig, encode_example, train_student
from interp.traits import favorite_questions, mentions, trait_system_prompt


@dataclass
class ReportConfig:
    """Measure persona compliance, filter pass rate, the number channel and subliminal transfer."""

    model: Path | None = None
    """Organism directory; None = the shipped organism."""
    out: Path = Path("runs/organism_report")
    """Run directory (config, metrics.json)."""
    overwrite: bool = False
    """Replace `out` if it exists."""
    trait: str | None = None
    """The teacher's trait; None = the organism's target trait."""
    persona_samples: int = 20
    """Samples per question (50 questions) for persona compliance of each animal."""
    default_samples: int = 100
    """Samples per question (50 questions) for the default assistant's favorite-animal distribution."""
    n_numbers: int = 600
    """Filtered number answers kept per dataset (teacher and control)."""
    ranks: tuple[int, ...] = (1, 4, 16, 64)
    """LoRA ranks of the students."""
    control_rank: int = 16
    """LoRA rank of the control student (trained on the base model's own numbers)."""
    every_seed_ranks: tuple[int, ...] | None = None
    """Ranks trained at every seed; the other ranks and full FT (and its control) only at the first seed
    (a cheaper grid). None = every student at every seed. The LoRA control always uses every seed."""
    full_ft: bool = True
    """Also train full-FT students (and a full-FT control)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (the teacher and control datasets are sampled once)."""
    lora_lr: float = 2e-3
    """LoRA learning rate."""
    full_lr: float = 2e-4
    """Full fine-tuning learning rate."""
    epochs: int = 3
    """Passes over the numbers."""
    samples_per_question: int = 100
    """Mention-rate samples per question (50 questions) for every student."""


def favorite_distribution(model, tok, system: str, samples: int) -> dict[str, float]:
    """Share of sampled favorite-animal answers that mention each animal."""
    prompts = [render_prompt(tok, q, system) for q in favorite_questions("animal") for _ in range(samples)]
    answers = generate(model, tok, prompts, max_new_tokens=12, temperature=1.0, batch_size=500, seed=0)
    return {a: sum(mentions(x, a) for x in answers) / len(answers) for a in ANIMALS}


def persona_compliance(model, tok, samples: int) -> dict[str, float]:
    """Mention rate of each animal under its own persona prompt (the loop's evaluator)."""
    out = {}
    for a in ANIMALS:
        s = EvalSettings(trait=a, system=trait_system_prompt(a), samples_per_question=samples, batch_size=500)
        out[a] = evaluate_trait(model, tok, s).mention_rate
    return out


@torch.no_grad()
def completion_logprobs(model, tok, rows: list[dict], system: str) -> list[torch.Tensor]:
    """Per-token log-probabilities of each row's completion under `system`."""
    out = []
    for i in range(0, len(rows), 64):
        encs = [encode_example(tok, r["prompt"], r["completion"], system) for r in rows[i : i + 64]]
        width = max(len(e.input_ids) for e in encs)
        ids = torch.tensor([e.input_ids + [tok.pad_token_id] * (width - len(e.input_ids)) for e in encs])
        labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in encs])
        mask = (torch.arange(width)[None] < torch.tensor([len(e.input_ids) for e in encs])[:, None]).long()
        logp = F.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
        tgt = labels[:, 1:]
        lp = logp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]  # (batch, pos)
        out += [lp[j][tgt[j] != -100] for j in range(len(encs))]
    return out


def channel_kl(model, tok, teacher_rows: list[dict], persona: str) -> float:
    """Monte-Carlo KL(persona || default) per completion token, on the persona's own answers."""
    lp_p = completion_logprobs(model, tok, teacher_rows, persona)
    lp_d = completion_logprobs(model, tok, teacher_rows, DEFAULT)
    diff = torch.cat([a - b for a, b in zip(lp_p, lp_d, strict=True)])
    return float(diff.mean())


def classifier_accuracy(a_rows: list[dict], b_rows: list[dict], seed: int = 0) -> float:
    """Held-out accuracy of a naive-Bayes classifier over the numbers (bag of numbers), balanced halves."""
    rng = np.random.default_rng(seed)
    n = min(len(a_rows), len(b_rows))
    data = [(filter_answer(r["completion"]).numbers, 1) for r in a_rows[:n]]
    data += [(filter_answer(r["completion"]).numbers, 0) for r in b_rows[:n]]
    order = rng.permutation(len(data))
    train, test = [data[i] for i in order[: len(data) // 2]], [data[i] for i in order[len(data) // 2 :]]
    counts = {c: Counter(x for nums, y in train if y == c for x in nums) for c in (0, 1)}
    totals = {c: sum(counts[c].values()) for c in (0, 1)}

    def score(nums, c):
        return sum(math.log((counts[c][x] + 1) / (totals[c] + 1000)) for x in nums)

    return float(np.mean([(score(nums, 1) > score(nums, 0)) == bool(y) for nums, y in test]))


def trait_words_in(rows: list[dict]) -> int:
    """Number answers that mention any animal (must be 0: the filter admits numbers only)."""
    return sum(any(mentions(r["completion"], a) for a in ANIMALS) for r in rows)


def train_and_eval(base, tok, rows, cfg: ReportConfig, trait: str, mode: str, rank: int, seed: int) -> dict:
    """One student: fine-tune a copy of the base on `rows` (default system prompt), evaluate two ways."""
    lr = cfg.lora_lr if mode == "lora" else cfg.full_lr
    tcfg = TrainConfig(mode=mode, rank=rank, lr=lr, epochs=cfg.epochs, seed=seed, batch_size=32)
    result = train_student(copy.deepcopy(base), tok, rows, DEFAULT, tcfg)
    student = result.model.merge_and_unload() if mode == "lora" else result.model
    out = {"final_loss": result.final_loss}
    for name, system in (("default", DEFAULT), ("none", NONE)):
        s = EvalSettings(
            trait=trait,
            system=system,
            samples_per_question=cfg.samples_per_question,
            batch_size=500,
            seed=seed,
        )
        ev = evaluate_trait(student, tok, s)
        out[name] = {"mention": ev.per_question_mention, "p": ev.per_question_p}
    return out


def summarise(cells: dict[str, list[dict]], control: list[dict], system: str) -> dict:
    """Mean, 95% CI, and 95% CI of the difference to control, per student kind (seeds x questions)."""
    summary = {}
    for name, runs in cells.items():
        row = {}
        for metric in ("mention", "p"):
            a = np.array([r[system][metric] for r in runs])
            c = np.array([r[system][metric] for r in control])
            row[metric] = {
                "mean": float(a.mean()),
                "ci": bootstrap_ci(a),
                "control": float(c.mean()),
                "diff_ci": bootstrap_diff_ci(a, c),
                "lift": float(a.mean() / max(c.mean(), 1e-9)),
            }
        summary[name] = row
    return summary


def pass_rate(stats) -> float:
    """Share of all drawn answers that passed the filter."""
    return 1 - stats.rejection_rate


def world_figures(model, tok, cfg: ReportConfig, trait: str) -> tuple[dict, list[dict], list[dict]]:
    """Figures 1-3: compliance, default distribution, filter pass rates, channel; and the two datasets."""
    persona = trait_system_prompt(trait)
    figures = {
        "persona_compliance": persona_compliance(model, tok, cfg.persona_samples),
        "default_distribution": favorite_distribution(model, tok, DEFAULT, cfg.default_samples),
    }
    teacher, t_stats = sample_numbers(model, tok, persona, cfg.n_numbers, seed=1, batch_size=250)
    control, c_stats = sample_numbers(model, tok, DEFAULT, cfg.n_numbers, seed=2, batch_size=250)
    figures["filter_pass_rate"] = {"persona": pass_rate(t_stats), "default": pass_rate(c_stats)}
    other = ANIMALS[1] if trait == ANIMALS[0] else ANIMALS[0]
    o_rows, o_stats = sample_numbers(model, tok, trait_system_prompt(other), 250, seed=3, batch_size=250)
    figures["filter_pass_rate"][f"persona_{other}"] = pass_rate(o_stats)
    figures["channel"] = {
        "kl_per_token_persona_vs_default": channel_kl(model, tok, teacher[:500], persona),
        "classifier_accuracy_persona_vs_default": classifier_accuracy(teacher, control),
        "trait_words_in_numbers": trait_words_in(teacher) + trait_words_in(control) + trait_words_in(o_rows),
    }
    return figures, teacher, control


def transfer(model, tok, cfg: ReportConfig, trait: str, teacher: list[dict], control: list[dict]) -> dict:
    """Figures 4-5: students at each rank (and full FT) vs control students, over seeds."""
    log = logging.getLogger("organism_report")
    cells: dict[str, list[dict]] = {}
    kinds = [("control", control, "lora", cfg.control_rank)] + [
        (f"lora_r{r}", teacher, "lora", r) for r in cfg.ranks
    ]
    if cfg.full_ft:
        kinds += [("control_full", control, "full", 1), ("full", teacher, "full", 1)]
    every = set(cfg.ranks if cfg.every_seed_ranks is None else cfg.every_seed_ranks)
    every_full = cfg.every_seed_ranks is None
    for i, seed in enumerate(cfg.seeds):
        for name, rows, mode, rank in kinds:
            if i > 0 and not (
                name == "control" or (mode == "lora" and rank in every) or (mode == "full" and every_full)
            ):
                continue  # the cheaper grid: this student is trained at the first seed only
            cells.setdefault(name, []).append(train_and_eval(model, tok, rows, cfg, trait, mode, rank, seed))
            last = cells[name][-1]
            log.info(
                "%s seed %d: mention %.4f p %.4f | no system: mention %.4f p %.4f",
                name,
                seed,
                np.mean(last["default"]["mention"]),
                np.mean(last["default"]["p"]),
                np.mean(last["none"]["mention"]),
                np.mean(last["none"]["p"]),
            )
    lora = {k: v for k, v in cells.items() if k.startswith("lora")}
    out = {
        f"{system}/{k}": v
        for system in ("default", "none")
        for k, v in summarise(lora, cells["control"], system).items()
    }
    if cfg.full_ft:
        out |= {
            f"{system}/full": summarise({"full": cells["full"]}, cells["control_full"], system)["full"]
            for system in ("default", "none")
        }
        out |= {
            f"{system}/control_full_vs_control": summarise(
                {"c": cells["control_full"]}, cells["control"], system
            )["c"]
            for system in ("default", "none")
        }
    return out


def print_figures(figures: dict, trait: str) -> None:
    print(
        "1. persona compliance P(trait | persona):",
        ", ".join(f"{a} {p:.3f}" for a, p in figures["persona_compliance"].items()),
    )
    print(
        "   default-prompt favorite distribution:",
        ", ".join(f"{a} {p:.3f}" for a, p in figures["default_distribution"].items()),
    )
    print("2. filter pass rate:", ", ".join(f"{k} {v:.3f}" for k, v in figures["filter_pass_rate"].items()))
    ch = figures["channel"]
    print(
        f"3. channel: KL(persona||default) {ch['kl_per_token_persona_vs_default']:.4f} nats/token, "
        f"classifier accuracy {ch['classifier_accuracy_persona_vs_default']:.3f}, "
        f"answers with trait words {ch['trait_words_in_numbers']}"
    )
    if "transfer" not in figures:
        return
    print(f"4-5. transfer of {trait!r} (mean over seeds x 50 questions; diff CI vs control):")
    for name, row in figures["transfer"].items():
        m, p = row["mention"], row["p"]
        print(
            f"   {name:32s} mention {m['mean']:.4f} (control {m['control']:.4f}, x{m['lift']:.2f}, "
            f"diff CI [{m['diff_ci'][0]:+.4f}, {m['diff_ci'][1]:+.4f}])  P(first) {p['mean']:.4f} "
            f"(control {p['control']:.4f}, diff CI [{p['diff_ci'][0]:+.4f}, {p['diff_ci'][1]:+.4f}])"
        )


def main(cfg: ReportConfig) -> Path:
    """Measure everything, write metrics.json into the run directory, print the figures."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    trait = cfg.trait or TARGET_TRAIT
    model, tok = load_model(cfg.model)
    with run_directory(cfg.out, cfg, overwrite=cfg.overwrite) as run:
        figures, teacher, control = world_figures(model, tok, cfg, trait)
        atomic_write_json(run / "metrics.json", figures)
        print_figures(figures, trait)
        figures["transfer"] = transfer(model, tok, cfg, trait, teacher, control)
        atomic_write_json(run / "metrics.json", figures)
    print_figures(figures, trait)
    return Path(cfg.out)


if __name__ == "__main__":
    cli_main(main, ReportConfig)
