"""The claims map's grid and summary: which students it trains, how it picks lrs, how cells become verdicts.

A **cell** is one student setting (axis, condition, arm, lr, training options), trained at each seed on the
trait teacher's numbers and, the same way, on the base model's numbers (its control). The grid first
**screens** every lr grid on one seed, then **confirms** on fresh seeds the cells the screen picked (the
best lr of each arm and optimizer, the fixed lr, and the precision and layer variants at the best lr).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from interp import InterpError
from interp.study import claims as C
from interp.study.experiment import StudentSpec
from interp.study.summary import lift_per_question, pooled, versus_control

AXES = ("lr", "optimizer", "precision", "layers")
OPTIMIZERS: dict[str, tuple[tuple[str, Any], ...]] = {
    "adamw": (),
    "sgd-m0.9": (("optimizer", "sgd"), ("momentum", 0.9)),
    "sgd-m0": (("optimizer", "sgd"), ("momentum", 0.0)),
    "muon": (("optimizer", "muon"), ("momentum", 0.95)),
}
PRECISIONS = ("bf16-pure", "bf16-mixed")
FULL = "full"


@dataclass(frozen=True)
class Cell:
    """One student setting of the map: trained at each seed, with a control trained the same way."""

    axis: str
    condition: str
    arm: str  # "r16" or "full"
    spec: StudentSpec
    role: str = "screen"  # screen, best, fixed, variant


def arm_name(rank: int | None) -> str:
    return FULL if rank is None else f"r{rank}"


def _arm_key(c) -> tuple[str, int, str]:
    """What prices a student: its mode, rank and training precision ("auto" unless the cell sets one)."""
    return c.spec.mode, c.spec.rank, dict(c.spec.options).get("precision", "auto")


@dataclass(frozen=True)
class Grid:
    """What the map trains, from its config: arms, lr grids per optimizer, variants."""

    ranks: tuple[int, ...]
    main_rank: int
    lrs: dict[str, dict[str, tuple[float, ...]]]  # optimizer -> "lora" | "full" -> grid
    fixed: dict[str, float]  # "lora" | "full" -> the fixed lr
    axes: tuple[str, ...]
    optimizers: tuple[str, ...]
    precisions: tuple[str, ...]
    layers: tuple[int, ...]
    freeze: tuple[int, ...]
    precision_low_lr: float | None = None  # full FT's precision rows also at this lr (fp32 beside them)
    precision_at_best_lr: bool = True  # each precision also at each arm's best lr

    @classmethod
    def from_config(cls, cfg: Any, n_layers: int) -> Grid:
        if cfg.layers is not None and not all(0 <= i < n_layers for i in cfg.layers):
            raise InterpError(f"--layers {cfg.layers}: the model has layers 0 to {n_layers - 1}")
        if cfg.freeze is not None and not all(0 < k < n_layers for k in cfg.freeze):
            raise InterpError(
                f"--freeze {cfg.freeze}: freeze 1 to {n_layers - 1} of the model's {n_layers} layers"
            )
        adamw = {"lora": tuple(cfg.lora_lrs), FULL: tuple(cfg.full_lrs)}
        muon = adamw if cfg.muon_lrs is None else {"lora": tuple(cfg.muon_lrs), FULL: tuple(cfg.muon_lrs)}
        sgd = {k: tuple(cfg.sgd_lrs) for k in ("lora", FULL)}
        plain = {k: tuple(cfg.sgd_plain_lrs) for k in ("lora", FULL)}
        return cls(
            ranks=tuple(cfg.ranks),
            main_rank=cfg.main_rank,
            lrs={"adamw": adamw, "sgd-m0.9": sgd, "sgd-m0": plain, "muon": muon},
            fixed={"lora": cfg.lora_lr, FULL: cfg.full_lr},
            axes=tuple(cfg.axes),
            optimizers=tuple(cfg.optimizers),
            precisions=tuple(cfg.precisions),
            layers=tuple(range(n_layers)) if cfg.layers is None else tuple(cfg.layers),
            freeze=tuple(range(1, n_layers)) if cfg.freeze is None else tuple(cfg.freeze),
            precision_low_lr=min(cfg.full_lrs) if cfg.precision_at_low_full_lr else None,
            precision_at_best_lr=cfg.precision_at_best_lr,
        )

    def arms(self, main_only: bool = False) -> list[int | None]:
        """LoRA ranks then None (full FT)."""
        return [self.main_rank, None] if main_only else [*self.ranks, None]

    def cell(self, axis, condition, rank, lr, options=(), role="screen") -> Cell:
        spec = StudentSpec("lora" if rank is not None else "full", rank or 1, lr, options=tuple(options))
        return Cell(axis, condition, arm_name(rank), spec, role)

    def grid_of(self, optimizer: str, rank: int | None) -> tuple[float, ...]:
        return self.lrs[optimizer]["lora" if rank is not None else FULL]

    def screen_cells(self) -> list[Cell]:
        """Every lr of every grid on the screen seed: AdamW for every arm, the other optimizers for the
        main rank and full FT."""
        plan = [("adamw", r) for r in self.arms()] if "lr" in self.axes else []
        if "optimizer" in self.axes:
            plan += [(o, r) for o in self.optimizers for r in self.arms(main_only=True)]
        return [
            self.cell("lr" if o == "adamw" else "optimizer", o, r, lr, OPTIMIZERS[o])
            for o, r in plan
            for lr in self.grid_of(o, r)
        ]

    def confirm_cells(self, screen: list[dict]) -> list[Cell]:
        """The picked cells: each arm's best and fixed AdamW lr, each optimizer's best lr, and the
        precision and layer variants at AdamW's best lr."""
        best = {(r["condition"], r["arm"]): r["lr"] for r in best_rows(screen)}
        cells = []
        if "lr" in self.axes:
            for r in self.arms():
                pick = best[("adamw", arm_name(r))]
                cells.append(self.cell("lr", "adamw", r, pick, role="best"))
                fixed = self.fixed["lora" if r is not None else FULL]
                if fixed != pick:
                    cells.append(self.cell("lr", "adamw", r, fixed, role="fixed"))
        if "optimizer" in self.axes:
            cells += [
                self.cell("optimizer", o, r, best[(o, arm_name(r))], OPTIMIZERS[o], role="best")
                for o in self.optimizers
                for r in self.arms(main_only=True)
            ]
        return cells + self.variant_cells(best)

    def planned_students(self, n_data: int, n_seeds: int) -> Counter:
        """Students (trait and control) the map trains at most, by (mode, rank, precision): each screen cell on the
        screen seed; on each of `n_seeds` fresh seeds every cell the confirmation can pick (each arm's best
        and fixed lr counted apart, although they coincide where the screen picks the fixed lr)."""
        counts: Counter = Counter()
        for c in self.screen_cells():
            counts[_arm_key(c)] += 2 * n_data
        confirm = []
        if "lr" in self.axes:  # each arm's best lr and its fixed lr
            confirm += 2 * [self.cell("lr", "adamw", r, 0.0) for r in self.arms()]
        if "optimizer" in self.axes:
            confirm += [self.cell("optimizer", o, r, 0.0) for o in self.optimizers for r in self.arms(True)]
        for c in confirm + self.variant_cells({}):
            counts[_arm_key(c)] += 2 * n_data * n_seeds
        return counts

    def low_lr_precision_cells(self) -> list[Cell]:
        """Full FT at the low lr of the bf16 dispute (the paper's 2e-5 regime), in fp32 and each precision:
        there a pure-bf16 update falls below bf16's resolution, which the best lr may never reach."""
        lr = self.precision_low_lr
        if lr is None:
            return []
        return [
            self.cell(
                "precision", f"{p}, full lr {lr:g}", None, lr, () if p == "fp32" else (("precision", p),)
            )
            for p in ("fp32", *self.precisions)
        ]

    def variant_cells(self, best: dict) -> list[Cell]:
        lr = {r: best.get(("adamw", arm_name(r)), self.fixed["lora" if r else FULL]) for r in self.arms(True)}
        cells = []
        if "precision" in self.axes:
            cells += [
                self.cell("precision", p, r, lr[r], (("precision", p),), role="variant")
                for p in self.precisions
                for r in self.arms(main_only=True)
                if self.precision_at_best_lr
            ]
            cells += self.low_lr_precision_cells()
        if "layers" in self.axes:
            r = self.main_rank
            cells += [
                self.cell("layers", f"layer {i}", r, lr[r], (("layers", (i,)),), "variant")
                for i in self.layers
            ]
            cells += [
                self.cell("layers", f"first {k} frozen", r, lr[r], (("freeze_layers", k),), "variant")
                for k in self.freeze
            ]
        return cells


def best_rows(screen: list[dict]) -> list[dict]:
    """Per (condition, arm) the screened lr with the largest mention-rate lift (first-token lift breaks ties)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in screen:
        groups.setdefault((row["condition"], row["arm"]), []).append(row)
    return [max(rows, key=lambda r: (r["mention_diff"], r["p_first_diff"])) for rows in groups.values()]


def _mean(results: list[dict], key: str) -> float | None:
    vals = [r["update"][key] for r in results if "update" in r]
    return float(np.mean(vals)) if vals else None


def cell_row(cell: Cell, trait: list[dict], control: list[dict]) -> dict[str, Any]:
    """A cell's pooled result: lift over control (default prompt and none), loss, update norm, cosine."""
    row: dict[str, Any] = {
        "axis": cell.axis,
        "condition": cell.condition,
        "arm": cell.arm,
        "rank": cell.spec.rank if cell.spec.mode == "lora" else None,
        "lr": cell.spec.lr,
        "role": cell.role,
        **pooled(trait),
        **versus_control(trait, control),
        "lift_per_question": lift_per_question(trait, control),
        "final_loss": float(np.mean([r["final_loss"] for r in trait])),
        "control_final_loss": float(np.mean([r["final_loss"] for r in control])),
        "weight_change_norm": _mean(trait, "weight_change_norm"),
        "persona_cosine": _mean(trait, "persona_cosine"),
    }
    none = {
        **versus_control(trait, control, "none"),
        "lift_per_question": lift_per_question(trait, control, "none"),
    }
    row["no_system"] = {**pooled(trait, "none"), **none}
    return row


def rows_view(rows: list[dict]) -> dict[str, Any]:
    """A rank-sweep-shaped view of one map row group, for the claim rules of `interp.study.claims`."""
    lora = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
    return {"rank_sweep": lora, "full_ft": [r for r in rows if r["rank"] is None]}


def row_verdicts(rows: list[dict]) -> dict[str, Any]:
    """The claims one map row can judge: inverted U (3 ranks or more), no transfer under full FT (LoRA and
    full FT both present), each cell's need for the system prompt."""
    view, out = rows_view(rows), {}
    if len(view["rank_sweep"]) >= 3:
        out["inverted_u_in_rank"] = C.inverted_u(view)
    if view["rank_sweep"] and view["full_ft"]:
        out["no_transfer_under_full_ft"] = C.no_full_ft_transfer(view)
    out["needs_shared_system_prompt"] = {r["arm"]: context_verdict(r) for r in rows}
    return out


def context_verdict(row: dict[str, Any]) -> dict[str, Any]:
    """Trained with the default prompt: does the lift need it at evaluation? (strict and effect size)"""
    cells = [
        {"train_system": "default", "eval_system": "default", "lift": row["mention_diff"], **_ctx(row)},
        {
            "train_system": "default",
            "eval_system": "none",
            "lift": row["no_system"]["mention_diff"],
            **_ctx(row["no_system"]),
        },
    ]
    return C.needs_system_prompt({"context_matrix": cells})


def _ctx(r: dict[str, Any]) -> dict[str, Any]:
    return {"mention_diff_ci": r["mention_diff_ci"], "lift_per_question": r["lift_per_question"]}


def map_rows(confirm: list[dict]) -> dict[str, list[dict]]:
    """The map's rows (a condition, over arms) from the confirmed cells, in reading order."""
    rows: dict[str, list[dict]] = {}
    for r in confirm:
        label = f"AdamW, {r['role']} lr" if r["axis"] == "lr" else r["condition"]
        rows.setdefault(label, []).append(r)
    fixed = rows.pop("AdamW, fixed lr", [])
    if "AdamW, best lr" in rows:  # the fixed-lr curve: each arm's fixed cell, or its best where they agree
        have = {r["arm"] for r in fixed}
        fixed += [r for r in rows["AdamW, best lr"] if r["arm"] not in have]
        rows = {"AdamW, best lr": rows.pop("AdamW, best lr"), "AdamW, fixed lr": fixed, **rows}
    return rows


def grid_edge(lr: float, grid: tuple[float, ...]) -> str | None:
    """ "top" or "bottom" when a picked lr is the end of its grid (the lift may keep growing past it)."""
    if len(grid) < 2:
        return None
    return "top" if lr == max(grid) else "bottom" if lr == min(grid) else None


def summarize(grid: Grid, screen: list[dict], confirm: list[dict]) -> dict[str, Any]:
    def edge(r: dict) -> str | None:
        return grid_edge(r["lr"], grid.grid_of(r["condition"], r["rank"]))

    for r in confirm:  # a picked best lr at the end of its grid is marked: the screen may not hold the peak
        r["grid_edge"] = edge(r) if r["role"] == "best" else None
    rows = map_rows(confirm)
    return {
        "arms": [arm_name(r) for r in grid.arms()],
        "fixed_lr": grid.fixed,
        "effect_fraction": C.EFFECT_FRACTION,
        "screen": screen,
        "picked": [
            {**{k: r[k] for k in ("condition", "arm", "lr", "mention_diff")}, "grid_edge": edge(r)}
            for r in best_rows(screen)
        ],
        "rows": {
            label: sorted(cells, key=lambda r: grid.arms().index(r["rank"])) for label, cells in rows.items()
        },
        "verdicts": {label: row_verdicts(cells) for label, cells in rows.items()},
        "row_order": list(rows),  # results.json sorts its keys; the figure reads the rows in this order
    }
