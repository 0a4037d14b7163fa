"""The claims map end to end on a tiny model, and the effect-size verdict rules on constructed lifts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from experiments import claims_map
from interp import InterpError
from interp.loop.config import parse_config
from interp.study import claims as C
from interp.study.claims_map import Grid, best_rows, grid_edge, map_rows

RESULTS = Path(__file__).resolve().parents[1] / "interp" / "organism" / "results"
TINY = [
    "--n-numbers",
    "16",
    "--n-questions",
    "4",
    "--samples-per-question",
    "2",
    "--epochs",
    "1",
    "--threads",
    "1",
]


def _cfg(model: Path, out: Path, *extra: str) -> claims_map.ClaimsMapConfig:
    argv = ["--model", str(model), "--out", str(out), *TINY, *extra]
    return parse_config(claims_map.ClaimsMapConfig, argv)


def test_grid_screens_every_lr_and_confirms_the_picked_cells():
    cfg = claims_map.ClaimsMapConfig(ranks=(1, 4), main_rank=4, lora_lrs=(1e-3, 1e-2), full_lrs=(1e-4, 1e-3))
    grid = Grid.from_config(cfg, n_layers=3)
    screen = grid.screen_cells()
    lr_axis = [(c.arm, c.spec.lr) for c in screen if c.axis == "lr"]
    assert lr_axis == [("r1", 1e-3), ("r1", 1e-2), ("r4", 1e-3), ("r4", 1e-2), ("full", 1e-4), ("full", 1e-3)]
    assert {c.condition for c in screen if c.axis == "optimizer"} == {"sgd-m0.9", "sgd-m0", "muon"}
    assert {c.arm for c in screen if c.axis == "optimizer"} == {"r4", "full"}
    # a screen in which the larger lr always lifts more: best = 1e-2 / 1e-3, while the fixed lrs are 3e-3 / 3e-4
    rows = [
        {
            "condition": c.condition,
            "arm": c.arm,
            "lr": c.spec.lr,
            "mention_diff": c.spec.lr,
            "p_first_diff": 0.0,
        }
        for c in screen
    ]
    assert {(r["arm"], r["lr"]) for r in best_rows(rows) if r["condition"] == "adamw"} == {
        ("r1", 1e-2),
        ("r4", 1e-2),
        ("full", 1e-3),
    }
    confirm = grid.confirm_cells(rows)
    roles = {(c.arm, c.role, c.spec.lr) for c in confirm if c.axis == "lr"}
    assert roles == {
        ("r1", "best", 1e-2), ("r1", "fixed", 3e-3), ("r4", "best", 1e-2), ("r4", "fixed", 3e-3),
        ("full", "best", 1e-3), ("full", "fixed", 3e-4),
    }  # fmt: skip
    layers = [dict(c.spec.options) for c in confirm if c.axis == "layers"]
    assert layers == [
        {"layers": (0,)},
        {"layers": (1,)},
        {"layers": (2,)},
        {"freeze_layers": 1},
        {"freeze_layers": 2},
    ]
    assert all(c.spec.lr == 1e-2 and c.arm == "r4" for c in confirm if c.axis in ("layers",))
    precision = {
        (c.condition, c.arm, dict(c.spec.options).get("precision", "fp32"), c.spec.lr)
        for c in confirm
        if c.axis == "precision"
    }
    assert precision == {  # at AdamW's best lr, and full FT at the smallest lr of its grid beside fp32
        ("bf16-pure", "r4", "bf16-pure", 1e-2),
        ("bf16-mixed", "r4", "bf16-mixed", 1e-2),
        ("bf16-pure", "full", "bf16-pure", 1e-3),
        ("bf16-mixed", "full", "bf16-mixed", 1e-3),
        ("fp32, full lr 0.0001", "full", "fp32", 1e-4),
        ("bf16-pure, full lr 0.0001", "full", "bf16-pure", 1e-4),
        ("bf16-mixed, full lr 0.0001", "full", "bf16-mixed", 1e-4),
    }
    # the plan's count is exact here (every best lr differs from the fixed lr): screen once, confirm per seed
    planned = grid.planned_students(n_data=2, n_seeds=3)
    assert sum(planned.values()) == 2 * 2 * (len(screen) + 3 * len(confirm))
    full = sum(n for (mode, _, _), n in planned.items() if mode == "full")
    assert full == 2 * 2 * (sum(c.arm == "full" for c in screen) + 3 * sum(c.arm == "full" for c in confirm))
    bf16 = sum(n for (_, _, p), n in planned.items() if p.startswith("bf16"))  # priced at their precision
    assert bf16 == 2 * 2 * 3 * sum(
        dict(c.spec.options).get("precision", "").startswith("bf16") for c in confirm
    )
    off = Grid.from_config(replace(cfg, precision_at_low_full_lr=False), n_layers=3).confirm_cells(rows)
    assert not [c for c in off if c.condition.startswith("fp32")]


def test_bad_map_configs_are_clear_errors():
    with pytest.raises(InterpError):
        claims_map.ClaimsMapConfig(main_rank=8)  # not among the ranks
    with pytest.raises(InterpError):
        claims_map.ClaimsMapConfig(train_seeds=(0, 1))  # the screen seed is not fresh
    with pytest.raises(InterpError):
        claims_map.ClaimsMapConfig(optimizers=("adam",))
    with pytest.raises(InterpError, match="freeze"):
        Grid.from_config(claims_map.ClaimsMapConfig(freeze=(3,)), n_layers=3)  # nothing left to train
    with pytest.raises(InterpError, match="layers"):
        Grid.from_config(claims_map.ClaimsMapConfig(layers=(3,)), n_layers=3)


def _lifts(center: float, n: int = 40, spread: float = 0.02) -> list[float]:
    return [center + spread * ((i % 5) - 2) / 2 for i in range(n)]


def _row(rank, lift: float) -> dict:
    q = _lifts(lift)
    return {"rank": rank, "lr": 1e-3, "mention_diff": lift, "p_first_diff": lift, "lift_per_question": q,
            "mention_diff_ci": [lift - 0.01, lift + 0.01]}  # fmt: skip


def test_effect_size_rules_on_constructed_lifts():
    peaked = {"rank_sweep": [_row(1, 0.05), _row(4, 0.30), _row(16, 0.10)], "full_ft": [_row(None, 0.02)]}
    assert C.inverted_u(peaked)["effect_size"]["verdict"] == C.HELD
    assert C.inverted_u(peaked)["verdict"] == C.NOT_HELD  # strict: the largest rank still lifts
    rising = {"rank_sweep": [_row(1, 0.05), _row(4, 0.10), _row(16, 0.30)], "full_ft": [_row(None, 0.2)]}
    assert C.inverted_u(rising)["effect_size"]["verdict"] == C.NOT_HELD
    assert C.no_full_ft_transfer(peaked)["effect_size"]["verdict"] == C.HELD  # 0.02 / 0.30 < 0.25
    assert C.no_full_ft_transfer(rising)["effect_size"]["verdict"] == C.NOT_HELD  # 0.2 / 0.3
    cells = lambda with_, without: {"context_matrix": [  # noqa: E731
        {"train_system": "default", "eval_system": "default", "lift": with_, "mention_diff_ci": [with_ - 0.01, with_ + 0.01], "lift_per_question": _lifts(with_)},
        {"train_system": "default", "eval_system": "none", "lift": without, "mention_diff_ci": [without - 0.01, without + 0.01], "lift_per_question": _lifts(without)},
    ]}  # fmt: skip
    small = C.needs_system_prompt(cells(0.30, 0.02))
    assert small["verdict"] == C.NOT_HELD and small["effect_size"]["verdict"] == C.HELD  # the issue's case
    assert C.needs_system_prompt(cells(0.30, 0.15))["effect_size"]["verdict"] == C.NOT_HELD
    assert C.needs_system_prompt(cells(0.0, 0.0))["effect_size"]["verdict"] == C.UNRESOLVED


def test_map_rows_put_the_fixed_lr_curve_beside_the_best(tmp_path):
    rows = [
        {"axis": "lr", "role": "best", "condition": "adamw", "arm": "r1", "rank": 1},
        {"axis": "lr", "role": "fixed", "condition": "adamw", "arm": "r1", "rank": 1},
        {"axis": "lr", "role": "best", "condition": "adamw", "arm": "full", "rank": None},  # best == fixed
        {"axis": "optimizer", "role": "best", "condition": "sgd-m0", "arm": "full", "rank": None},
    ]
    out = map_rows(rows)
    assert list(out) == ["AdamW, best lr", "AdamW, fixed lr", "sgd-m0"]
    assert [r["role"] for r in out["AdamW, fixed lr"]] == ["fixed", "best"]


@pytest.mark.slow
def test_quick_map_runs_end_to_end_and_resumes(number_model_dir: Path, tmp_path: Path):
    grid = ["--ranks", "4", "--main-rank", "4", "--lora-lrs", "3e-3", "1e-2", "--full-lrs", "3e-4"]
    grid += ["--optimizers", "muon", "--muon-lrs", "1e-2", "--layers", "1", "--freeze", "1"]
    cfg = _cfg(number_model_dir, tmp_path / "map", "--quick", "--axes", "lr", "optimizer", "layers", *grid)
    root = claims_map.main(cfg)
    res = json.loads((root / "results.json").read_text())["claims_map"]
    assert res["arms"] == ["r4", "full"]
    assert res["row_order"] == ["AdamW, best lr", "AdamW, fixed lr", "muon", "layer 1", "first 1 frozen"]
    assert set(res["rows"]) == set(res["row_order"])
    cell = res["rows"]["AdamW, best lr"][0]
    assert cell["seeds"] == 1 and cell["weight_change_norm"] > 0 and -1 <= cell["persona_cosine"] <= 1
    assert cell["grid_edge"] == ("top" if cell["lr"] == 1e-2 else "bottom")  # a 2-lr grid: always an end
    assert all(r["grid_edge"] is None for r in res["rows"]["layer 1"])  # variants are not picks
    assert set(res["verdicts"]["AdamW, best lr"]) >= {
        "no_transfer_under_full_ft",
        "needs_shared_system_prompt",
    }
    assert (root / "figures" / "claims_map.html").exists()
    jobs = sorted(p.name for p in (root / "jobs").iterdir())
    again = claims_map.main(cfg)  # a rerun trains nothing: every job is found finished
    assert sorted(p.name for p in (again / "jobs").iterdir()) == jobs
    assert json.loads((again / "results.json").read_text())["claims_map"] == res


def test_figure_keeps_the_row_order_and_keeps_colour_bar_and_legend_off_the_panels():
    """results.json sorts its keys: the figure reads the rows in `row_order`. The colour bar sits between
    the panels and the legend under them (they overlapped the curves before)."""
    from interp.study.plots import claims_map_figure

    summary = json.loads((RESULTS / "claims_map_quick_default.json").read_text())
    order = ["AdamW, best lr", "AdamW, fixed lr", "sgd-m0.9", "sgd-m0", "muon", "bf16-pure", "bf16-mixed"]
    order += ["layer 0", "first 1 frozen"]
    summary["claims_map"]["row_order"] = order
    fig = claims_map_figure(summary, "wolf")
    heat = fig.data[0]
    assert [y.split("<br>")[0] for y in heat.y] == order
    map_end, curves_start = fig.layout.xaxis.domain[1], fig.layout.xaxis2.domain[0]
    assert map_end < heat.colorbar.x < curves_start
    assert fig.layout.legend.y < 0 and fig.layout.legend.x >= curves_start
    assert (
        "no full-FT transfer: held / not held" in fig.data[1].name
    )  # the best-lr curve carries its verdicts


def test_report_block_has_a_line_per_row_and_a_line_per_cell():
    from interp.study.report import claims_map_blocks, to_markdown

    summary = json.loads((RESULTS / "claims_map_quick_default.json").read_text())
    s = summary["claims_map"]
    blocks = claims_map_blocks(summary)
    (_, _, rows), (_, _, cells) = [b for b in blocks if b[0] == "table"]
    assert [r[0] for r in rows] == list(s["rows"])  # no row_order in this older file: the dict's order
    best = {c["arm"]: c for c in s["rows"]["AdamW, best lr"]}
    assert rows[0][1:4] == [
        f"{best[a]['mention_diff']:+.3f} [{best[a]['mention_diff_ci'][0]:.3f}, "
        f"{best[a]['mention_diff_ci'][1]:.3f}] @ {best[a]['lr']:g}"
        for a in s["arms"]
    ]
    assert rows[0][-1] == "held / did not hold"  # the best-lr row's no-full-FT verdicts, strict / effect size
    assert len(cells) == sum(len(v) for v in s["rows"].values())
    assert "## The claims map" in to_markdown(blocks, {})


def test_reproduce_runs_the_map_only_when_named_with_fresh_confirmation_seeds():
    from interp.stages import reproduce

    assert "claims_map" not in reproduce.ReproduceConfig().stages  # make demo stays at its size
    cfg = reproduce.ReproduceConfig(stages=("rank_sweep", "claims_map"), ranks=(1, 4, 16, 64))
    mcfg = reproduce.map_config(cfg, Path("unused"))
    assert mcfg.ranks == (1, 4, 16, 64) and mcfg.main_rank == 16
    assert mcfg.screen_seed not in mcfg.train_seeds and len(mcfg.train_seeds) == 3
    quick = reproduce.map_config(reproduce.ReproduceConfig(ranks=(1, 4), quick=True), Path("unused"))
    assert quick.main_rank == 4 and quick.n_numbers == cfg.n_numbers and quick.lora_lrs == (1e-3, 1e-2)
    with pytest.raises(InterpError):
        reproduce.ReproduceConfig(stages=("claims_mop",))


def test_a_pick_at_the_end_of_its_grid_is_marked():
    grid = (3e-4, 1e-3, 3e-3)
    assert [grid_edge(lr, grid) for lr in grid] == ["bottom", None, "top"]
    assert grid_edge(1e-3, (1e-3,)) is None  # a one-lr grid picks nothing


def test_effect_size_cis_carry_the_spread_between_seeds():
    """Lifts are kept per seed and question: seeds that disagree widen the effect-size CI, which a
    seed-averaged lift (the earlier form) hid."""
    from interp.study.summary import lift_per_question

    def job(seed_rates):  # one evaluation per seed, 20 questions each
        return [{"evals": {"default": {"per_question_mention": [r] * 20}}} for r in seed_rates]

    student, control = job([0.10, 0.40, 0.10]), job([0.05, 0.07, 0.06])
    lifts = lift_per_question(student, control)
    assert np.allclose(lifts, [[0.05] * 20, [0.33] * 20, [0.04] * 20])  # paired seed by seed
    assert np.allclose(lift_per_question(student, control[:1]), [[0.05] * 20, [0.35] * 20, [0.05] * 20])
    rng = np.random.default_rng(0)
    part = (0.04 + 0.01 * rng.standard_normal((3, 20))).tolist()
    spread = C.lift_fraction(part, lifts)
    averaged = C.lift_fraction(np.mean(part, 0).tolist(), np.mean(lifts, 0).tolist())
    assert spread[2] - spread[1] > 3 * (averaged[2] - averaged[1])


def test_a_ratio_over_a_zero_draw_is_left_out_not_a_warning():
    import warnings

    from interp.loop.stats import bootstrap_stat_ci

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf - inf inside the quantile was a RuntimeWarning and a nan bound
        point, lo, hi = bootstrap_stat_ci([[1, 1, 1, 1], [0, 0, 0, 1]], lambda x, y: x / y)
    assert point == 4.0 and 1.0 <= lo <= hi < float("inf")


def test_quick_map_trims_its_precision_axis_only_where_bf16_is_slow(monkeypatch):
    """On a CPU without native bf16 a bf16 student costs ~10x an fp32 one: --quick keeps only pure bf16
    against fp32 at the low full-FT lr; with fast bf16, or without --quick, the axis is whole."""
    from interp.plan.plan_check import Device
    from interp.stages.claims_map import ClaimsMapConfig, resolved

    monkeypatch.setattr(Device, "low_precision_factor", lambda self: (0.012, "measured"))
    slow = resolved(ClaimsMapConfig(quick=True))
    assert slow.precisions == ("bf16-pure",) and not slow.precision_at_best_lr
    cells = Grid.from_config(slow, n_layers=4).variant_cells({})
    assert {c.condition for c in cells if c.axis == "precision"} == {
        "fp32, full lr 0.0001",
        "bf16-pure, full lr 0.0001",
    }
    assert resolved(ClaimsMapConfig()).precisions == ("bf16-pure", "bf16-mixed")  # not --quick
    chosen = resolved(ClaimsMapConfig(quick=True, precisions=("bf16-mixed",)))
    assert chosen.precisions == ("bf16-mixed",)  # what the user asked for stays
    monkeypatch.setattr(Device, "low_precision_factor", lambda self: (1.0, "native"))
    fast = resolved(ClaimsMapConfig(quick=True))
    assert fast.precisions == ("bf16-pure", "bf16-mixed") and fast.precision_at_best_lr
