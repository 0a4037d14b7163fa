"""Claims 1 and 2 from finished students (`interp.study.rank_column`, `interp.stages.rank_column`): the
claims' rules on students simulated with known lifts, read on each metric, and bad inputs refused with one
error that names the flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interp import InterpError
from interp.stages.rank_column import RankColumnConfig, run
from interp.study.claims import HELD, NOT_HELD
from interp.study.rank_column import rank_column

QUESTIONS = 50
BASE = (0.05, 0.002)


def student(mention: float, p_trait: float, rng: np.random.Generator, loss: float = 0.01) -> dict:
    """A job result: one evaluation under the default prompt, per-question mention rates of 20 samples at
    `mention` and P(trait) near `p_trait`."""
    m = rng.binomial(20, mention, QUESTIONS) / 20
    p = np.clip(p_trait + rng.normal(0, p_trait / 10, QUESTIONS), 0, 1)
    per_question = {
        "per_question_mention": m.tolist(),
        "per_question_p": p.tolist(),
        "per_question_p_trait": p.tolist(),
        "settings": {"trait": "owl", "n_questions": QUESTIONS},
    }
    return {"evals": {"default": per_question}, "final_loss": loss, "path": "simulated"}


def groups(levels: dict[str, tuple[float, float]], seeds: int = 3, seed: int = 0) -> tuple[dict, list]:
    rng = np.random.default_rng(seed)
    students = {label: [student(*lv, rng) for _ in range(seeds)] for label, lv in levels.items()}
    return students, [student(*BASE, rng)]


def test_a_peak_at_the_middle_rank_holds_claim_1_and_a_rise_does_not():
    peak = rank_column(*groups({"r4@1e-3": (0.10, 0.01), "r16@1e-3": (0.40, 0.04), "r64@1e-3": (0.12, 0.01)}))
    claim = peak["claims"]["mention"]["inverted_u_in_rank"]
    assert [r["rank"] for r in peak["rank_sweep"]] == [4, 16, 64]
    assert claim["effect_size"]["verdict"] == HELD and claim["effect_size"]["peak_rank"] == 16
    assert peak["claims"]["p_trait"]["inverted_u_in_rank"]["effect_size"]["verdict"] == HELD
    assert peak["rank_sweep"][1]["p_trait_diff"] == pytest.approx(0.04 - BASE[1], rel=0.1)
    gap = peak["rank_gaps"]["p_trait"]["r64 - r16"]
    assert gap[0] == pytest.approx(0.01 - 0.04, rel=0.1) and gap[2] < 0 and list(peak["rank_gaps"]["mention"]) == [
        "r16 - r4", "r64 - r16"]  # fmt: skip
    rise = rank_column(*groups({"r4@1e-3": (0.10, 0.01), "r16@1e-3": (0.25, 0.02), "r64@1e-3": (0.40, 0.04)}))
    assert rise["claims"]["mention"]["inverted_u_in_rank"]["effect_size"]["verdict"] == NOT_HELD


def test_each_metric_is_read_by_the_same_rule_on_its_own_lifts():
    """Mention rate peaking at r16 while P(trait) rises with rank: the two readings must differ."""
    col = rank_column(*groups({"r4@1e-3": (0.10, 0.01), "r16@1e-3": (0.40, 0.02), "r64@1e-3": (0.10, 0.04)}))
    assert col["claims"]["mention"]["inverted_u_in_rank"]["effect_size"]["verdict"] == HELD
    assert col["claims"]["p_trait"]["inverted_u_in_rank"]["effect_size"]["verdict"] == NOT_HELD
    lifts = np.array(col["rank_sweep"][2]["p_trait_lift_per_question"])
    assert lifts.shape == (3, QUESTIONS) and lifts.mean() == pytest.approx(
        col["rank_sweep"][2]["p_trait_diff"]
    )


def test_full_ft_far_below_lora_holds_claim_2_by_effect_size():
    levels = {"r4@1e-3": (0.30, 0.03), "r16@1e-3": (0.40, 0.04), "full@2e-5": (0.06, 0.0025)}
    col = rank_column(*groups(levels))
    assert col["full_ft"][0]["lr"] == 2e-5
    assert col["claims"]["p_trait"]["no_transfer_under_full_ft"]["effect_size"]["verdict"] == HELD
    near = rank_column(*groups({**levels, "full@2e-5": (0.35, 0.035)}))
    assert near["claims"]["p_trait"]["no_transfer_under_full_ft"]["effect_size"]["verdict"] == NOT_HELD


def test_the_figure_names_its_reference_the_base_or_the_control():
    """A reference that was never trained (no final loss) is the base; the figure's band says which, and the
    full-FT panel draws it across the panel even at one lr."""
    from interp.stages.rank_column import PANELS
    from interp.study.plots.figures import rank_sweep_figure

    students, controls = groups({"r4@1e-3": (0.10, 0.01), "r16@1e-3": (0.40, 0.04), "full@2e-5": (0.1, 0.01)})
    base = [{"evals": controls[0]["evals"], "path": "simulated"}]
    for reference, name in ((controls, "control"), (base, "base")):
        res = rank_column(students, reference)
        assert res["reference"] == name
        fig = rank_sweep_figure(res, "owl", PANELS, reference=res["reference"])
        legend = {t.name for t in fig.data}
        assert {name, f"{name} 95% CI"} <= legend and not {"control", "base"} - {name} & legend
        # the P(trait) row's full-FT panel is the figure's fourth subplot
        full_panel = [(s.type, s.y0) for s in fig.layout.shapes if s.xref == "x4 domain"]
        ref = res["control"]
        assert full_panel == [("rect", ref["p_trait_ci"][0]), ("line", ref["p_trait"])]


def job_dir(root: Path, name: str, result: dict, train: dict | None) -> Path:
    """A finished job directory as a study writes it: result.json, and config.json with its training."""
    d = root / name
    d.mkdir()
    (d / "result.json").write_text(json.dumps({k: v for k, v in result.items() if k != "path"}))
    if train is not None:
        (d / "config.json").write_text(json.dumps({"config_class": "Job", "params": {"train": train}}))
    return d


def test_the_stage_reads_lr_from_job_configs_and_refuses_what_does_not_add_up(tmp_path: Path):
    students, (base,) = groups({"r4": (0.1, 0.01), "r16": (0.4, 0.04)}, seeds=2)
    entries = []
    for label, group in students.items():
        for i, s in enumerate(group):
            train = {"mode": "lora", "rank": int(label[1:]), "lr": 3e-3, "seed": i}
            entries.append(f"{label}={job_dir(tmp_path, f'{label}-t{i}', s, train)}")
    ref = job_dir(tmp_path, "base", base, None)
    out = run(RankColumnConfig(students=tuple(entries), reference=(ref,), out=tmp_path / "c", png=False))
    res = json.loads((out / "results.json").read_text())
    assert [(r["rank"], r["lr"], r["seeds"]) for r in res["rank_sweep"]] == [(4, 3e-3, 2), (16, 3e-3, 2)]
    assert res["trait"] == "owl" and "1. inverted U in rank" in (out / "report.md").read_text()

    bare = tmp_path / "r16-t0.result.json"  # a record: the result without its job's config
    bare.write_text((tmp_path / "r16-t0" / "result.json").read_text())

    def refused(students: tuple[str, ...], match: str) -> None:
        with pytest.raises(InterpError, match=match):
            run(RankColumnConfig(students=students, reference=(ref,), out=tmp_path / "x", png=False))
        assert not (tmp_path / "x").exists()

    refused((*entries[:2], f"r16={bare}", f"r16={bare}"), "lr unknown")  # a bare result needs @lr
    refused((*entries[:2], f"r16@1e-3={tmp_path / 'r16-t0'}"), r"lr \[0.001, 0.003\]")  # label vs config
    refused((*entries[:2], f"r8={tmp_path / 'r16-t0'}"), "is a lora r16 student, not r8")
    refused(tuple(entries[:2]), "two or more distinct ranks")
    refused((*entries, f"r64={tmp_path / 'nowhere'}"), "--students .*nowhere does not exist")
    refused((*entries, "r64"), "--students 'r64': write LABEL=PATH")
    (tmp_path / "broken.result.json").write_text("{not json")
    refused(
        (*entries, f"r64@1e-3={tmp_path / 'broken.result.json'}"),
        "--students .*broken.result.json is not JSON",
    )
    refused((*entries, f"rank64={bare}"), "write r<rank> or full")
    with pytest.raises(InterpError, match="--reference"):
        run(RankColumnConfig(students=tuple(entries), reference=(tmp_path / "nowhere",), out=tmp_path / "x"))
