"""Claims 1 and 2 from finished students (no training): LoRA students at several ranks and full-FT students,
each pooled over its seeds and read against one reference (control students, or the base), as the rank
sweep reads its own. The summary has the rank sweep's shape (`interp.stages.rank_sweep.summarize`), so the
verdicts are the claims' own rules (`interp.study.claims.inverted_u`, `no_full_ft_transfer`) and the figure
is the rank sweep's. Each verdict is read on the mention rate (the paper's metric) and on P(trait) (the
teacher-forced probe, the sharper one on a small model), by the same rule.

    from interp.study.rank_column import rank_column, read_student
    students = {"r4": [read_student(p) for p in r4_dirs], "r16": [...], "full": [...]}
    column = rank_column(students, reference=[read_student(base_dir)])
    column["claims"]["p_trait"]["inverted_u_in_rank"]["verdict"]
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.runs import job_config_path, read_json
from interp.study.claims import inverted_u, lift_gap, no_full_ft_transfer
from interp.study.eval_column import check_alike
from interp.study.summary import lift_per_question, pooled, versus_control

LABEL = re.compile(r"^(?:r(?P<rank>\d+)|(?P<full>full))(?:@(?P<lr>[0-9.eE+-]+))?$")
"""A student group's label: r<rank> or full, with @<lr> where the files do not say it (a bare result)."""

METRIC_FIELDS = ("diff", "diff_ci")


def parse_label(label: str) -> dict[str, Any]:
    """The group's mode, rank (None for full FT) and lr (None where the label gives none) from "r16",
    "r16@0.003", "full" or "full@3e-5"."""
    m = LABEL.match(label)
    if not m:
        raise InterpError(
            f"student group {label!r}: write r<rank> or full, optionally @<lr> (e.g. r16@0.003)"
        )
    lr = float(m["lr"]) if m["lr"] else None
    return (
        {"mode": "full", "rank": None, "lr": lr}
        if m["full"]
        else {"mode": "lora", "rank": int(m["rank"]), "lr": lr}
    )


def read_student(path: str | Path) -> dict[str, Any]:
    """A finished student (or base) job: its result (evaluations, final loss) and, from a job directory's
    job.json (else config.json), its training settings. `path` is the job directory or a bare result.json (a record)."""
    path = Path(path)
    result_file = path / "result.json" if path.is_dir() else path
    result = read_json(
        result_file, f"{path} does not exist or holds no result.json (a finished job directory?)"
    )
    if "evals" not in result:
        raise InterpError(f"{result_file} has no evaluations (a student or base job's result.json?)")
    config = job_config_path(result_file.parent)
    in_job = result_file.name == "result.json" and config.exists()
    train = json.loads(config.read_text()).get("params", {}).get("train") if in_job else None
    return {**result, "train": train, "path": str(path)}


def read_groups(entries: tuple[str, ...] | list[str]) -> dict[str, list[dict[str, Any]]]:
    """Students grouped by label from LABEL=PATH entries, in the order given; a bad entry is one error
    naming --students."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        label, sep, path = str(entry).partition("=")
        if not sep or not path:
            raise InterpError(
                f"--students {entry!r}: write LABEL=PATH (e.g. r16=runs/ladder/jobs/student-...)"
            )
        try:
            groups.setdefault(label, []).append(read_student(path))
        except InterpError as e:
            raise InterpError(f"--students {e}") from None
    return groups


def read_references(paths: tuple[Path, ...] | list[Path]) -> list[dict[str, Any]]:
    """The reference results (the base, or control students one per seed); a bad path names --reference."""
    try:
        return [read_student(p) for p in paths]
    except InterpError as e:
        raise InterpError(f"--reference {e}") from None


def describe_reference(reference: list[dict[str, Any]]) -> tuple[str, str]:
    """The trait the reference was evaluated on, and what it is: "control" (trained students) or "base"
    (never trained, so no final loss)."""
    trait = reference[0]["evals"]["default"].get("settings", {}).get("trait", "trait")
    return trait, "control" if any("final_loss" in r for r in reference) else "base"


def group_lr(label: str, students: list[dict[str, Any]]) -> float:
    """The group's lr: from its students' job configs, which must agree with each other, with the label's
    and with its mode and rank; from the label where the students are bare results."""
    want = parse_label(label)
    found = set()
    for s in students:
        train = s.get("train")
        if train is None:
            continue
        if train.get("mode") != want["mode"] or (
            want["mode"] == "lora" and train.get("rank") != want["rank"]
        ):
            raise InterpError(
                f"{s['path']} is a {train.get('mode')} r{train.get('rank')} student, not {label}"
            )
        found.add(float(train["lr"]))
    if want["lr"] is not None:
        found.add(want["lr"])
    if len(found) != 1:
        raise InterpError(
            f"student group {label}: lr {sorted(found) or 'unknown'}; one lr per group "
            f"(give it as {label.split('@')[0]}@<lr> where the files are bare results)"
        )
    return found.pop()


def group_row(students: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """One rank's (or full FT's) row: pooled metrics, lifts over the reference with CIs, and the per-seed,
    per-question lifts the effect-size rules bootstrap, by mention rate and by P(trait)."""
    return {
        **pooled(students),
        **versus_control(students, reference),
        "lift_per_question": lift_per_question(students, reference),
        "p_trait_lift_per_question": lift_per_question(students, reference, metric="p_trait"),
        "final_loss": sum(s.get("final_loss", float("nan")) for s in students) / len(students),
        "students": [s["path"] for s in students],
    }


def by_metric(summary: dict[str, Any], metric: str) -> dict[str, Any]:
    """The summary with `metric`'s lifts in the mention-rate fields the claims' rules read ("mention"
    leaves it as it is; "p_trait" reads every rule on P(trait) instead)."""
    if metric == "mention":
        return summary

    def swap(row: dict[str, Any]) -> dict[str, Any]:
        out = {**row, **{f"mention_{k}": row[f"{metric}_{k}"] for k in METRIC_FIELDS}}
        out["lift_per_question"] = row[f"{metric}_lift_per_question"]
        return out

    return {**summary, "rank_sweep": [swap(r) for r in summary["rank_sweep"]],
            "full_ft": [swap(r) for r in summary["full_ft"]]}  # fmt: skip


def rank_column(students: dict[str, list[dict[str, Any]]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """The rank sweep's summary from finished students grouped by label (r<rank>[@lr], full[@lr]) against
    `reference` (one result per seed; the base has one), and claims 1 and 2 by mention rate and by P(trait)."""
    if not any(parse_label(k)["mode"] == "lora" for k in students):
        raise InterpError("claim 1 needs LoRA students at two or more ranks (groups r<rank>=...)")
    if not reference:
        raise InterpError("no reference: give the control students or the base")
    check_alike({label: {"default": [s["evals"]["default"] for s in group]} for label, group in students.items()}
                | {"reference": {"default": [r["evals"]["default"] for r in reference]}})  # fmt: skip
    trait, kind = describe_reference(reference)
    summary: dict[str, Any] = {"control": pooled(reference), "rank_sweep": [], "full_ft": [], "trait": trait}
    summary["reference"] = kind
    for label, group in students.items():
        spec, lr = parse_label(label), group_lr(label, group)
        row = {"lr": lr, **group_row(group, reference)}
        if spec["mode"] == "lora":
            summary["rank_sweep"].append({"rank": spec["rank"], **row})
        else:
            summary["full_ft"].append({**row, "control": "the reference"})
    summary["rank_sweep"].sort(key=lambda r: r["rank"])
    ranks = [r["rank"] for r in summary["rank_sweep"]]
    if len(set(ranks)) != len(ranks) or len(ranks) < 2:
        raise InterpError(f"claim 1 needs two or more distinct ranks, one group each; got ranks {ranks}")
    summary["rank_gaps"] = rank_gaps(summary["rank_sweep"])
    summary["claims"] = {
        metric: {
            "inverted_u_in_rank": inverted_u(by_metric(summary, metric)),
            "no_transfer_under_full_ft": no_full_ft_transfer(by_metric(summary, metric)),
        }
        for metric in ("mention", "p_trait")
    }
    return summary


def rank_gaps(rows: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per metric, each rank's lift minus the next lower rank's, (point, lo, hi): questions paired, seeds
    resampled, as the effect-size rules compare lifts."""
    keys = {"mention": "lift_per_question", "p_trait": "p_trait_lift_per_question"}
    return {
        metric: {
            f"r{hi['rank']} - r{lo['rank']}": lift_gap(hi[key], lo[key])
            for lo, hi in zip(rows[:-1], rows[1:], strict=True)
        }
        for metric, key in keys.items()
    }
