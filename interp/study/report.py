"""The reproduction report: each claim of the paper, the measured numbers with CIs, and a verdict.

The report is built as a list of blocks (heading, paragraph, table, figure) rendered both to Markdown
(report.md) and to a self-contained HTML page with the interactive plotly figures (report.html).
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go

from interp.study import claims as C
from interp.study.claims import best_rank_row
from interp.study.prose import listed, markdown_row, prompts_text
from interp.study.where import carrier_text, patching_blocks  # noqa: F401 (report blocks, re-exported)

Block = tuple
RANK_COLUMNS = (
    "rank|mention rate [95% CI]|lift vs control|P(trait)|P(trait) lift|P(first token) lift|final loss".split(
        "|"
    )
)


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def ci(c: list[float] | None, digits: int = 3) -> str:
    return "n/a" if c is None else f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def verdict(claim: dict[str, Any]) -> str:
    return f"**{claim['verdict']}** (rule: {claim['rule']})"


def rank_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    rows, control, best = res["rank_sweep"], res["control"], best_rank_row(res)
    table = [
        [
            str(r["rank"]),
            f"{fmt(r['mention_rate'])} {ci(r['ci'])}",
            f"{r['mention_diff']:+.3f} {ci(r['mention_diff_ci'])}",
            f"{fmt(r.get('p_trait'), 4)} {ci(r.get('p_trait_ci'), 4)}",
            f"{r.get('p_trait_diff', float('nan')):+.4f} {ci(r.get('p_trait_diff_ci'), 4)}",
            f"{r['p_first_diff']:+.4f} {ci(r['p_first_diff_ci'], 4)}",
            fmt(r["final_loss"]),
        ]
        for r in rows
    ]
    transfer, shape, last = C.lora_transfer(res), C.inverted_u(res), rows[-1]
    text = (
        f"Control students (trained the same way on the base model's own numbers) name '{trait}' at "
        f"{fmt(control['mention_rate'])} {ci(control['ci'])} (first-token P {fmt(control['p_first_token'])}). "
        f"The best rank is r = {best['rank']}: mention rate {fmt(best['mention_rate'])} {ci(best['ci'])}, a lift of "
        f"{best['mention_diff']:+.3f} {ci(best['mention_diff_ci'])} "
        f"({fmt(best['mention_ratio'], 2) if best['mention_ratio'] else 'n/a'}x control), over {best['seeds']} "
        f"student seeds. LoRA transfers: {verdict(transfer)}. Peak at an interior rank: "
        f"{'yes' if shape['peak_interior'] else 'no'}; the largest rank (r = {last['rank']}) lifts "
        f"{last['mention_diff']:+.3f} {ci(last['mention_diff_ci'])}. Inverted U in rank: {verdict(shape)}; "
        f"by effect size: {verdict(shape['effect_size'])}. P(trait) is the exact probability that the answer "
        f"starts with the word '{trait}' (every token of every spelling, then a word boundary); the paper's "
        "P(first token) is that only where the word is a single token."
    )
    if "filter_pass" in res:
        passes = ", ".join(
            f"{name.split('-')[1]} {r['pass_rate']:.3f} of {r['drawn']}"
            + (
                f" (constrained; free answers {r['unconstrained_pass_rate']:.3f})"
                if r.get("constrained")
                else ""
            )
            for name, r in res["filter_pass"].items()
        )
        text += f" Filter pass of the teacher's and the control's sampled answers (passed / drawn): {passes}."
    return [
        ("h2", "Claim 1 - transfer follows an inverted U in LoRA rank"),
        ("p", text),
        ("table", RANK_COLUMNS, table),
        ("fig", "rank_sweep"),
    ]


def full_ft_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    rows, best = res["full_ft"], best_rank_row(res)
    if not rows:
        return []
    table = [
        [
            f"{r['lr']:g}",
            f"{fmt(r['mention_rate'])} {ci(r['ci'])}",
            f"{r['mention_diff']:+.3f} {ci(r['mention_diff_ci'])}",
            f"{r['p_first_diff']:+.4f} {ci(r['p_first_diff_ci'], 4)}",
            fmt(r["final_loss"]),
        ]
        for r in rows
    ]
    matched = min(rows, key=lambda r: abs(r["final_loss"] - best["final_loss"]))
    claim = C.no_full_ft_transfer(res)
    text = (
        f"Full fine-tuning at {len(rows)} learning rate(s). The loss-matched full-FT student (final loss "
        f"{fmt(matched['final_loss'])} vs the best LoRA student's {fmt(best['final_loss'])}) is lr "
        f"{matched['lr']:g}, lift {matched['mention_diff']:+.3f} {ci(matched['mention_diff_ci'])} against "
        f"{matched.get('control', 'the LoRA control')}. "
        f"Learning rates with a significant positive lift: {listed(claim['lrs_with_transfer'])}. "
        f"No transfer under full fine-tuning while LoRA transfers: {verdict(claim)}."
    )
    return [
        ("h2", "Claim 2 - no transfer under full fine-tuning"),
        ("p", text),
        ("table", ["lr", "mention rate [95% CI]", "lift vs control", "P lift", "final loss"], table),
    ]


def context_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    cells = {(c["train_system"], c["eval_system"]): c for c in res["context_matrix"]}
    evals = list(dict.fromkeys(c["eval_system"] for c in res["context_matrix"]))
    table = [
        [t] + [f"{cells[(t, e)]['lift']:+.3f} {ci(cells[(t, e)]['mention_diff_ci'])}" for e in evals]
        for t in dict.fromkeys(c["train_system"] for c in res["context_matrix"])
    ]
    dd, dn = cells[("default", "default")], cells[("default", "none")]
    text = (
        f"Students trained with the default system prompt: lift {dd['lift']:+.3f} {ci(dd['mention_diff_ci'])} when "
        f"it is present at evaluation, {dn['lift']:+.3f} {ci(dn['mention_diff_ci'])} without it. "
        f"Transfer only when the default system prompt is present at training and evaluation: "
        f"{verdict(C.needs_system_prompt(res))}. "
        f"Rows: training system prompt; columns: evaluation system prompt; entries: mention-rate lift over the "
        f"control student trained under the same prompt [95% CI]. Prompts: {prompts_text(res['systems'])}."
    )
    return [
        ("h2", "Claim 3 - transfer needs the shared system prompt"),
        ("p", text),
        ("table", ["train \\ eval"] + evals, table),
        ("fig", "context_matrix"),
    ]


def localization_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    rows = res["localization"]
    table = [
        [
            r["mode"],
            r["positions"],
            f"{fmt(r['recovered_fraction'], 2)} {ci(r['ci'], 2)}",
            f"{fmt(r['mention_recovered_fraction'], 2)} {ci(r['mention_ci'], 2)}",
        ]
        for r in rows
    ]
    get = {(r["mode"], r["positions"]): r for r in rows}
    only, but = get[("only", "entity")], get[("except", "entity")]
    text = (
        f"Student shift in P(first token = '{trait}'): {fmt(res['base']['p_first_token'], 4)} (adapter nowhere) -> "
        f"{fmt(res['full']['p_first_token'], 4)} (adapter everywhere). Adapter on only at the entity token "
        f"recovers {fmt(only['recovered_fraction'], 2)} {ci(only['ci'], 2)} of it (the paper: about 0.7); on "
        f"everywhere except the entity token recovers {fmt(but['recovered_fraction'], 2)} {ci(but['ci'], 2)} "
        f"(the paper: about 0, back to baseline). Recovered fraction = (restricted - base) / (student - base), "
        f"bootstrap CI over questions; first column on the exact first-token probability, second on the "
        f"sampled mention rate (noisier)."
    )
    text += f" The student's shift itself: {ci(res.get('shift_ci'), 4)} (95% CI of student - base)."
    text += carrier_text(res)
    return [
        ("h2", "Claim 4 - the shift lives at the shared tokens"),
        ("p", text + f" Claim: {verdict(C.entity_localization(res))}."),
        ("table", ["adapter", "positions", "recovered (P first token)", "recovered (mention rate)"], table),
        ("fig", "localization"),
    ]


def beyond_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    nums = res["entangled_numbers"]
    nip = res["numbers_in_prompt"]
    lens = res["logit_lens"]
    table = [
        [n["number"], f"{n['p_trait_teacher']:.4f}", f"{n['p_default']:.4f}", f"{n['log_ratio']:+.2f}"]
        for n in nums
    ]
    text = (
        f"Numbers the '{trait}' system prompt makes most likely as the first answer token (table). A system "
        f"prompt loving those numbers gives P('{trait}') = {nip['p_entangled']:.4f}, one loving random numbers "
        f"{nip['p_random']:.4f} (difference {nip['diff_entangled_minus_random']:+.4f} {ci(nip['diff_ci'], 4)}), "
        f"the default prompt {nip['p_default']:.4f}."
    )
    if "student" in lens:
        text += (
            f" Logit lens at the entity token, last layer: base log P = {lens['base']['entity'][-1]:.2f}, "
            f"student {lens['student']['entity'][-1]:.2f}; at the answer position: base "
            f"{lens['base']['answer'][-1]:.2f}, student {lens['student']['answer'][-1]:.2f}."
        )
    return [
        ("h2", "Beyond the paper - entangled numbers and a logit lens"),
        ("p", text),
        ("table", ["number", "P (trait teacher)", "P (default prompt)", "log ratio"], table),
        ("fig", "logit_lens"),
    ]


def _row_verdicts(verdicts: dict[str, Any], key: str) -> str:
    v = verdicts.get(key)
    return f"{v['verdict']} / {v['effect_size']['verdict']}" if v else "-"


def _lift_at(c: dict[str, Any] | None) -> str:
    return f"{c['mention_diff']:+.3f} {ci(c['mention_diff_ci'])} @ {c['lr']:g}" if c else "-"


def _map_row_lines(s: dict[str, Any], order: list[str]) -> list[list[str]]:
    """One line per condition: the lift at each arm, then the row's verdicts."""
    lines = []
    for label in order:
        by_arm = {c["arm"]: c for c in s["rows"][label]}
        v = s["verdicts"][label]
        lifts = [_lift_at(by_arm.get(a)) for a in s["arms"]]
        lines.append(
            [
                label,
                *lifts,
                _row_verdicts(v, "inverted_u_in_rank"),
                _row_verdicts(v, "no_transfer_under_full_ft"),
            ]
        )
    return lines


def _map_cell_lines(s: dict[str, Any], order: list[str]) -> list[list[str]]:
    """One line per confirmed cell, with what compares arms at a matched loss or update norm."""
    return [
        [
            label,
            c["arm"],
            f"{c['lr']:g}" + (f" ({c['grid_edge']} of grid)" if c.get("grid_edge") else ""),
            str(c["seeds"]),
            f"{c['mention_diff']:+.3f} {ci(c['mention_diff_ci'])}",
            f"{c['no_system']['mention_diff']:+.3f} {ci(c['no_system']['mention_diff_ci'])}",
            s["verdicts"][label]["needs_shared_system_prompt"][c["arm"]]["effect_size"]["verdict"],
            fmt(c["final_loss"]),
            fmt(c["weight_change_norm"], 2),
            fmt(c["persona_cosine"], 2),
        ]  # fmt: skip
        for label in order
        for c in s["rows"][label]
    ]


def claims_map_blocks(summary: dict[str, Any]) -> list[Block]:
    """The claims map: one line per condition (lift per arm, its verdicts), then every confirmed cell with
    the quantities that let two arms be compared at a matched loss or update norm."""
    s = summary["claims_map"]
    order = s.get("row_order", list(s["rows"]))
    text = (
        "Each claim across the training choices the field disputes. Every cell is a student against a "
        "control trained the same way (arm, lr, optimizer, precision, layers, seed) on the base model's "
        "numbers, confirmed on fresh seeds; the best lr of each arm and optimizer was picked on a screen seed "
        f"from {len(s['screen'])} screened cells. Verdicts read strict / effect size (effect fraction "
        f"{s['effect_fraction']})."
    )
    rows_head = ["row", *(f"{a}: lift @ lr" for a in s["arms"]), "inverted U", "no full-FT transfer"]
    cells_head = [
        "row",
        "arm",
        "lr",
        "seeds",
        "lift [95% CI]",
        "lift without prompt",
        "needs prompt (effect)",
    ]
    return [
        ("h2", "The claims map"),
        ("p", text),
        ("table", rows_head, _map_row_lines(s, order)),
        ("table", [*cells_head, "final loss", "||dW||", "persona cos"], _map_cell_lines(s, order)),
    ]


def claims_blocks(claims: dict[str, dict[str, Any]]) -> list[Block]:
    """One line per claim: its strict verdict, its effect-size verdict (where the claim has one) and the
    rules that decided them."""
    rows = []
    for name, c in claims.items():
        effect = c.get("effect_size", {})
        rows.append(
            [
                name.replace("_", " "),
                c["verdict"],
                effect.get("verdict", "-"),
                c["rule"],
                effect.get("rule", "-"),
            ]
        )
    head = ["claim", "strict verdict", "effect-size verdict", "strict rule", "effect-size rule"]
    return [("h2", "Verdicts"), ("table", head, rows)]


def alignment_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    """Beyond the paper: does the student's shift point along the persona direction, and does it predict lift?"""
    rows = res["alignment"]
    best_by_rank: dict[Any, dict[str, Any]] = {}
    for r in rows:
        if r["token_class"] in ("entity", "template", "assistant_header"):
            key = r["rank"]
            if key not in best_by_rank or r["cosine"] > best_by_rank[key]["cosine"]:
                best_by_rank[key] = r
    table = [
        [str(k), f"{v['token_class']} L{v['layer']}", fmt(v["cosine"], 2), fmt(v["projection"], 3)]
        for k, v in best_by_rank.items()
    ]
    corr, steer = res["correlation"], res.get("steering", {})
    best_layer = max(steer.get("layers", []), key=lambda x: x["recovered"] or -9, default=None)
    text = (
        f"Persona direction = mean residual under the '{trait}' teacher's prompt minus under the default prompt "
        f"(number prompts, base model); student shift = student minus base under the default prompt, same "
        f"prompts. Across {corr['n_students']} students, the projection at the shared tokens ({corr['predictor']}) "
        f"against the lift in first-token P({trait}) over control: Pearson r = {fmt(corr['r'], 2)}."
    )
    if best_layer is not None:
        text += (
            f" Steering the base with the best student's ({steer['student']}) mean entity shift at the entity "
            f"tokens only: P({trait}) {fmt(steer['p_base'], 4)} -> {fmt(best_layer['p_trait'], 4)} at layer "
            f"{best_layer['layer']} (student: {fmt(steer['p_student'], 4)}), recovering "
            f"{fmt(best_layer['recovered'], 2)} of the student's lift."
        )
    return [
        ("h2", "Beyond the paper - the student's shift against the persona direction"),
        ("p", text),
        ("table", ["rank", "best-aligned shared site", "cosine", "projection"], table),
        ("fig", "alignment"),
    ]


def divergence_blocks(res: dict[str, Any], trait: str) -> list[Block]:
    """Beyond the paper: the trait's lift when the divergence tokens are masked out of the loss."""
    tokens = ", ".join(f"{t!r} x{n}" for t, n in res["top_tokens"][:8])
    text = (
        f"Each completion token of the teacher's numbers is scored by KL(teacher || default) of the "
        f"next-token distribution that predicts it (mean {fmt(res['mean_kl_all'], 3)} nats; the masked top "
        f"{res['mask_frac']:.0%}, k = {res['k']} of {res['n_tokens']} tokens: {fmt(res['mean_kl_masked_top'], 3)}). "
        f"Most common masked tokens: {tokens}. Rank-{res['rank']} student (one seed), lift in first-token "
        f"P({trait}) over control: all tokens {res['unmasked_lift']:+.4f}, divergence tokens masked "
        f"{res['masked_lift']:+.4f}, random tokens masked {res['random_lift']:+.4f} (mention rate: "
        f"{res['unmasked_mention_lift']:+.3f} / {res['masked_mention_lift']:+.3f} / "
        f"{res['random_mention_lift']:+.3f}). One seed each: a screen, not a verdict."
    )
    return [("h2", "Beyond the paper - divergence tokens"), ("p", text), ("fig", "divergence")]


def figure_markdown(name: str, directory: str, have_png: bool, have_html: bool = True) -> str:
    """A figure in report.md: its PNG inline (it renders on a code host) and a link to the interactive
    HTML beside it; only what exists is linked (a recorded report keeps its PNGs, not the HTML)."""
    parts = [f"![{name}]({directory}/{name}.png)"] if have_png else []
    parts += [f"[{name} (interactive HTML)]({directory}/{name}.html)"] if have_html else []
    return "\n\n".join(parts)


def to_markdown(blocks: list[Block], figure_md: dict[str, str]) -> str:
    """report.md from the blocks; `figure_md` maps a figure's name to its markdown (`figure_markdown`)."""
    out = []
    for b in blocks:
        if b[0] in ("h1", "h2"):
            out.append(("# " if b[0] == "h1" else "## ") + b[1])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            out += [markdown_row(b[1]), "|" + "---|" * len(b[1])]
            out += [markdown_row(r) for r in b[2]]
        elif b[0] == "fig" and b[1] in figure_md:
            out.append(figure_md[b[1]])
        out.append("")
    return "\n".join(out)


def _inline_md(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], figures: dict[str, go.Figure], title: str) -> str:
    body, first = [], True
    for b in blocks:
        if b[0] in ("h1", "h2"):
            body.append(f"<{b[0]}>{html.escape(b[1])}</{b[0]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline_md(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "fig" and b[1] in figures:
            body.append(figures[b[1]].to_html(full_html=False, include_plotlyjs=first))
            first = False
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
