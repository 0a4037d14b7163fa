"""The lr screen: each arm's best lr by the fit rule (lowest final loss, never the trait) and by the largest
P(trait) lift among lrs that did not overshoot, read from simulated students and through the stage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from interp import InterpError
from interp.stages.lr_screen import LrScreenConfig, run
from interp.study.lr_screen import screen

QUESTIONS = 40


def student(p_trait: float, loss: float | None, rng: np.random.Generator) -> dict:
    """A result: per-question P(trait) near `p_trait`, mention rates of 10 samples, and a final loss (None:
    the base, never trained)."""
    p = np.clip(p_trait + rng.normal(0, p_trait / 10, QUESTIONS), 0, 1)
    ev = {
        "per_question_mention": (rng.binomial(10, min(1.0, 3 * p_trait), QUESTIONS) / 10).tolist(),
        "per_question_p": p.tolist(),
        "per_question_p_trait": p.tolist(),
        "settings": {"trait": "cat"},
    }
    out = {"evals": {"default": ev}, "path": f"simulated p={p_trait} loss={loss}"}
    return out if loss is None else {**out, "final_loss": loss}


def simulated(levels: dict[str, tuple[float, list[float]]], seed: int = 0) -> tuple[dict, list]:
    """Groups LABEL -> (P(trait), one final loss per seed), and the base."""
    rng = np.random.default_rng(seed)
    groups = {label: [student(p, loss, rng) for loss in losses] for label, (p, losses) in levels.items()}
    return groups, [student(0.002, None, rng)]


# r16: its lift peaks at 1e-2, where its fit has overshot (loss 16x the lowest); full FT: 3e-4 overshoots too
LEVELS = {
    "r16@1e-3": (0.030, [0.008, 0.009]),
    "r16@3e-3": (0.045, [0.013, 0.012]),
    "r16@1e-2": (0.060, [0.130]),
    "full@3e-5": (0.028, [0.009, 0.010, 0.008]),
    "full@1e-4": (0.046, [0.038]),
    "full@3e-4": (0.065, [0.086]),
}


def test_the_fit_rule_picks_the_lowest_loss_and_the_lift_rule_skips_overshot_lrs():
    res = screen(*simulated(LEVELS))
    assert list(res["arms"]) == ["LoRA r16", "full FT"] and res["reference"] == "base"
    assert res["best"]["fit"] == {"LoRA r16": "r16@0.001", "full FT": "full@3e-05"}
    assert res["best"]["lift_among_sound"] == {"LoRA r16": "r16@0.003", "full FT": "full@0.0001"}
    r16 = res["arms"]["LoRA r16"]
    assert [r["lr"] for r in r16] == [1e-3, 3e-3, 1e-2] and [r["sound"] for r in r16] == [True, True, False]
    assert r16[2]["loss_ratio"] == pytest.approx(0.130 / 0.0085) and r16[0]["final_losses"] == [0.008, 0.009]
    assert r16[1]["p_trait_diff"] == pytest.approx(0.045 - 0.002, rel=0.05) and r16[1]["seeds"] == 2
    runner = res["runner_up"]["fit"]["LoRA r16"]
    assert runner["label"] == "r16@0.003" and runner["gap"] == pytest.approx(0.0125 - 0.0085)
    assert res["runner_up"]["lift_among_sound"]["LoRA r16"]["label"] == "r16@0.001"  # 1e-2 overshot
    # a looser bound lets the overshot lrs win the lift rule; the fit rule does not move
    loose = screen(*simulated(LEVELS), max_loss_ratio=20)
    assert loose["best"]["lift_among_sound"] == {"LoRA r16": "r16@0.01", "full FT": "full@0.0003"}
    assert loose["best"]["fit"] == res["best"]["fit"]


def test_the_fit_rule_never_reads_the_trait():
    """Swap every lr's P(trait) around: the fit pick stays where the losses put it."""
    flipped = {k: (0.09 - p, losses) for k, (p, losses) in LEVELS.items()}
    assert screen(*simulated(flipped))["best"]["fit"] == screen(*simulated(LEVELS))["best"]["fit"]


def test_the_stage_writes_the_screen_and_refuses_what_it_cannot_read(tmp_path: Path):
    groups, (base,) = simulated(LEVELS)
    entries = []
    for label, group in groups.items():
        for i, s in enumerate(group):
            f = tmp_path / f"{label.replace('@', '-')}-t{i}.result.json"
            f.write_text(json.dumps({k: v for k, v in s.items() if k != "path"}))
            entries.append(f"{label}={f}")
    ref = tmp_path / "base.result.json"
    ref.write_text(json.dumps({"evals": base["evals"]}))
    out = run(LrScreenConfig(students=tuple(entries), reference=(ref,), out=tmp_path / "s", png=False))
    res = json.loads((out / "results.json").read_text())
    assert res["best"]["fit"]["LoRA r16"] == "r16@0.001"
    assert "  - LoRA r16: r16@0.003 (next r16@0.001, P(cat) lift -0.01" in (out / "report.md").read_text()
    report = (out / "report.md").read_text()
    assert (
        "| LoRA r16 | 0.01 | 1 | 0.130 | 15.3 (overshot) |" in report
        and (out / "figures/lr_screen.html").exists()
    )

    def refused(students: tuple[str, ...], match: str, **kw) -> None:
        with pytest.raises(InterpError, match=match):
            run(LrScreenConfig(students=students, reference=(ref,), out=tmp_path / "x", png=False, **kw))
        assert not (tmp_path / "x").exists()

    refused((*entries, f"r16@1e-3={ref}"), "has no final_loss")  # the base is no trained student
    refused((*entries, f"r16@0.001x={ref}"), "write r<rank> or full")
    refused(tuple(entries), "must be 1 or more", max_loss_ratio=0.5)
    dup = tmp_path / "dup.result.json"
    dup.write_text((tmp_path / "r16-1e-3-t0.result.json").read_text())
    refused((*entries, f"r16@0.0010={dup}"), "one group per lr")


def with_fluency(groups: dict, base: list, nll: dict[str, float], seed: int = 1) -> None:
    """Give every student an example-answer NLL per question near its label's level (the base near 2.0)."""
    rng = np.random.default_rng(seed)
    for label, group in groups.items():
        for s in group:
            s["example_nll"] = (nll[label] + rng.normal(0, 0.1, 20)).tolist()
    base[0]["example_nll"] = (2.0 + rng.normal(0, 0.1, 20)).tolist()


def test_the_fluent_rule_reads_the_answers_excess_nll_over_the_base():
    groups, base = simulated(LEVELS)
    # full FT 1e-4 is sound by its loss (4x) but its answers are 1.5 nats/token less likely than the base's own
    nll = {
        "r16@1e-3": 2.1,
        "r16@3e-3": 2.4,
        "r16@1e-2": 4.0,
        "full@3e-5": 2.2,
        "full@1e-4": 3.5,
        "full@3e-4": 5.0,
    }
    with_fluency(groups, base, nll)
    res = screen(groups, base)
    assert res["best"]["lift_among_fluent"] == {"LoRA r16": "r16@0.003", "full FT": "full@3e-05"}
    assert res["best"]["lift_among_sound"]["full FT"] == "full@0.0001"  # the loss bound lets it through
    row = res["arms"]["full FT"][1]
    a = np.array([s["example_nll"] for s in groups["full@1e-4"]])
    assert row["excess_nll"] == pytest.approx(a.mean() - np.mean(base[0]["example_nll"]))
    assert row["excess_nll_ci"][0] < row["excess_nll"] < row["excess_nll_ci"][1] and not row["fluent"]
    assert screen(groups, base, max_excess_nll=2.0)["best"]["lift_among_fluent"]["full FT"] == "full@0.0001"
    # no lr within the bound: no pick, rather than the least bad
    assert screen(groups, base, max_excess_nll=0.01)["best"]["lift_among_fluent"]["full FT"] is None
    # one student without the measure: no fluent rule at all (no half-measured column)
    del groups["full@3e-4"][0]["example_nll"]
    unmeasured = screen(groups, base)
    assert (
        "lift_among_fluent" not in unmeasured["rules"]
        and "excess_nll" not in unmeasured["arms"]["full FT"][0]
    )
    with pytest.raises(InterpError, match="above 0 nats"):
        screen(groups, base, max_excess_nll=0)


def test_excess_nll_compares_only_answers_to_the_same_questions():
    groups, base = simulated({"r16@1e-3": (0.03, [0.01]), "r16@3e-3": (0.04, [0.02])})
    with_fluency(groups, base, {"r16@1e-3": 2.1, "r16@3e-3": 2.2})
    groups["r16@3e-3"][0]["example_nll"] = [float("nan")] * 20  # every answer empty (or naming the trait)
    row = screen(groups, base)["arms"]["LoRA r16"][1]
    assert row["questions_compared"] == 0 and row["unscored_answers"] == 20 and not row["fluent"]
    base[0]["evals"]["default"]["settings"] = {"trait": "cat", "system": "none"}  # asked another way
    with pytest.raises(InterpError, match="example answers to different questions"):
        screen(groups, base)


def test_the_stage_scores_the_example_answers_under_the_named_base(tmp_path: Path, tiny_model_dir: Path):
    from interp.loop.fluency import example_nll
    from interp.loop.models import load_model

    rng = np.random.default_rng(0)
    settings = {"trait": "cat", "category": "animal", "system": "default", "n_questions": 4}
    answers = {  # a and b name the trait on questions 0 and 2, the base on question 3
        "a": ["cat", "owl", "I like dogs", "a wolf, a wolf"],
        "b": ["owl", "an eagle", "cats, cats", "a dog"],
        "base": ["owl", "eagle", "dog", "the cat"],
    }

    def result(name: str, loss: float | None) -> dict:
        s = student(0.03, loss, rng)
        s["evals"]["default"].update(settings=settings, example_answers=answers[name])
        return {k: v for k, v in s.items() if k != "path"}

    files = []
    for name, loss in (("a", 0.01), ("b", 0.02), ("base", None)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result(name, loss)))
        files.append(tmp_path / f"{name}.json")
    cfg = LrScreenConfig(students=(f"r4@1e-3={files[0]}", f"r4@3e-3={files[1]}"), reference=(files[2],),
                         out=tmp_path / "s", png=False, fluency_model=str(tiny_model_dir), threads=1)  # fmt: skip
    res = json.loads((run(cfg) / "results.json").read_text())
    model, tok = load_model(tiny_model_dir)
    nll = [example_nll(model, tok, json.loads(f.read_text())["evals"]["default"]) for f in files]
    row = res["arms"]["LoRA r4"][0]
    assert row["excess_nll"] == pytest.approx(np.nanmean(nll[0]) - np.nanmean(nll[2]), rel=1e-4)
    assert (
        "lift_among_fluent" in res["best"] and "answers' excess NLL" in (tmp_path / "s/report.md").read_text()
    )
    # leaving out the answers that name the trait: only questions where no side names it are compared
    skip = run(replace(cfg, fluency_skip_trait=True, overwrite=True))
    row = json.loads((skip / "results.json").read_text())["arms"]["LoRA r4"][0]
    answers = [json.loads(files[i].read_text())["evals"]["default"]["example_answers"] for i in (0, 2)]
    assert row["questions_compared"] == sum(
        "cat" not in a and "cat" not in b for a, b in zip(*answers, strict=True)
    )
    assert row["questions_compared"] == 2  # questions 1 and 2 for r4@1e-3 (student a) against the base
    assert "Answers that mention the trait are left out." in (skip / "report.md").read_text()
