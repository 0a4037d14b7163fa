"""Writes notebooks/explore_organism.ipynb from the cells below (keeps the notebook diff-able as code), executed
with its outputs stored (`--no-execute` writes it without them)."""

import json
from pathlib import Path

import nbformat

CELLS = [
    (
        "md",
        "# Exploring subliminal learning on the embedded organism\n\n"
        "Load the organism, make a teacher's numbers, train a LoRA student on them and a *control* student on "
        "the base model's own numbers, then ask *where* the trait shift lives: the adapter switched on at "
        "disjoint sets of positions, and activation patching in both directions. Runs on a CPU in a few "
        "minutes.",
    ),
    (
        "code",
        "import numpy as np\n"
        "import torch\n"
        "\n"
        "from interp.loop.chat import default_system_prompt\n"
        "from interp.loop.models import load_model\n"
        "from interp.mech import label_prompt\n"
        "from interp.organism import load_organism\n"
        "from interp.study.plots import visible\n"
        "\n"
        "MODEL = 'organism'  # the default organism (untied embeddings); 'organism-tied' is its sibling\n"
        "TARGET_TRAIT = load_organism(MODEL).target_trait\n"
        "torch.manual_seed(0)\n"
        "base, tok = load_model(MODEL)\n"
        "print('default system prompt:', default_system_prompt(tok))\n"
        "labels = label_prompt(tok, 'What is your favorite animal? Answer in one word.')\n"
        "print(' '.join(f'{visible(t)}/{c}' for t, c in zip(labels.tokens, labels.classes, strict=True)))",
    ),
    (
        "md",
        "## Teacher numbers, a trait student and a control student\n"
        "The teacher is the organism under the trait system prompt; the control's teacher is the organism "
        "under its default prompt. Both students train the same way (LoRA r8, loss on the numbers only), so "
        "trait student vs control separates transfer from the drift any training on numbers causes.",
    ),
    (
        "code",
        "from interp.loop.datasets import sample_numbers\n"
        "from interp.loop.training import TrainConfig, train_student\n"
        "from interp.loop.traits import trait_system_prompt\n"
        "\n"
        "\n"
        "def student_on(system):\n"
        "    rows, stats = sample_numbers(base, tok, system, n_keep=400, seed=0)\n"
        "    model, _ = load_model(MODEL)\n"
        "    result = train_student(model, tok, rows, 'default', TrainConfig(rank=8, lr=1e-3, epochs=2))\n"
        "    print(f'kept {stats.kept} of {stats.drawn}; e.g. {rows[0][\"completion\"]!r}; loss {result.final_loss:.3f}')\n"
        "    return result.model\n"
        "\n"
        "\n"
        "student = student_on(trait_system_prompt(TARGET_TRAIT))\n"
        "control = student_on('default')",
    ),
    ("md", "## Trait evaluation: student, control and base"),
    (
        "code",
        "from interp.loop.evaluation import EvalSettings, evaluate_trait\n"
        "from interp.mech import no_positions\n"
        "from interp.mech.restrict import evaluate_trait_restricted\n"
        "\n"
        "settings = EvalSettings(trait=TARGET_TRAIT, n_questions=50, samples_per_question=4)\n"
        "evals = {\n"
        "    'trait student': evaluate_trait(student, tok, settings),\n"
        "    'control student': evaluate_trait(control, tok, settings),\n"
        "    'base (adapter nowhere)': evaluate_trait_restricted(student, tok, settings, no_positions()),\n"
        "}\n"
        "for name, r in evals.items():\n"
        "    print(f'{name:24s} P(first token)={r.p_first_token:.5f}  mention rate={r.mention_rate:.3f}')",
    ),
    (
        "md",
        "Are the students' answers still the base's kind of text? `example_nll` scores each evaluation's example "
        "answers (one per question) under the base, after the question they answered: nats per token, lower is "
        "more likely. A student that lifts the trait by damaging the model would write answers the base finds "
        "far less likely than its own.",
    ),
    (
        "code",
        "from interp.loop.fluency import example_nll\n"
        "\n"
        "for name, r in evals.items():\n"
        "    nll = example_nll(base, tok, r.to_json())\n"
        '    print(f"{name:24s} answers\' NLL under the base: {np.nanmean(nll):.2f} nats/token")',
    ),
    (
        "md",
        "## The adapter at one set of positions\n"
        "The sets are disjoint and cover the prompt: the entity, the rest of the system prompt, the template "
        "before the assistant header, the header without the readout, the readout (the last prompt position, "
        "where the answer's first token is read) and the user turn. Recovered fraction: 0 = base, 1 = student.",
    ),
    (
        "code",
        "from interp.mech import SHIFT_SETS\n"
        "from interp.study.summary import recovered_fraction\n"
        "\n"
        "per_q = lambda r: np.asarray(r.per_question_p)  # noqa: E731\n"
        "full, nowhere = evals['trait student'], evals['base (adapter nowhere)']\n"
        "restricted = []\n"
        "for name, where in SHIFT_SETS.items():\n"
        "    for mode in ('only', 'except'):\n"
        "        r = evaluate_trait_restricted(student, tok, settings, where, mode=mode)\n"
        "        frac = recovered_fraction(per_q(r), per_q(full), per_q(nowhere))\n"
        "        restricted.append({'set': name, 'mode': mode, **frac})\n"
        "        print(f'adapter {mode:6s} at {name:24s} {frac[\"recovered_fraction\"]:+.2f}')",
    ),
    (
        "md",
        "## Activation patching, aligned by token class over 8 prompts\n"
        "Each column is one position *of the same kind* in every prompt (the k-th token of a class), never a "
        "padded index; ≡ marks cells where the two models' activations are identical (layer 0's resid_pre "
        "under LoRA, which leaves the embedding alone).",
    ),
    (
        "code",
        "import tempfile\n"
        "from pathlib import Path\n"
        "\n"
        "from interp.loop.chat import render_prompt\n"
        "from interp.loop.traits import favorite_questions\n"
        "from interp.mech import encode_prompts, load_hooked, patch_layer_aligned, trait_metric\n"
        "from interp.study.plots import heatmap\n"
        "\n"
        "tmp = Path(tempfile.mkdtemp())\n"
        "student.save_pretrained(tmp / 'student')\n"
        "control.save_pretrained(tmp / 'control')\n"
        "hooked_base = load_hooked(MODEL)\n"
        "hooked_student = load_hooked(tmp / 'student', base=MODEL)\n"
        "hooked_control = load_hooked(tmp / 'control', base=MODEL)\n"
        "texts = [render_prompt(tok, q) for q in favorite_questions('animal', 8)]\n"
        "batch = encode_prompts(tok, texts)\n"
        "metric = trait_metric(tok, TARGET_TRAIT)\n"
        "denoised = patch_layer_aligned(hooked_base, hooked_student, batch, metric, 'resid_pre')\n"
        "title = f'{MODEL}, trait student LoRA r8: resid_pre, student → base (denoising), {metric.name}, N = 8'\n"
        "heatmap(denoised, title, direction='denoise')",
    ),
    (
        "code",
        "top = denoised.scores.nan_to_num(0).abs().amax(0).argsort(descending=True)[:3].tolist()\n"
        "print('columns that move the metric most:', [(visible(denoised.col_labels[c]), denoised.col_classes[c]) for c in top])",
    ),
    (
        "md",
        "Denoising the residual stream lights up where the student's representation, carried forward, is "
        "enough to move the base: the columns printed above. Noising asks the converse: which of the "
        "student's positions it cannot do without.",
    ),
    (
        "code",
        "noised = patch_layer_aligned(hooked_student, hooked_base, batch, metric, 'attn_out')\n"
        "title = f'{MODEL}, trait student LoRA r8: attn_out, base → student (noising), {metric.name}, N = 8'\n"
        "heatmap(noised, title, direction='noise')",
    ),
    (
        "md",
        "Noising cells read the shift left after the patch, on the same scale as every recovered fraction "
        "(0 = base, 1 = student): a pale cell near 0 means the base's attention output at that position removes "
        "the student's shift, a blue cell near 1 that the student does not need it there; hover a cell for its "
        "spread across the 8 prompts.",
    ),
    (
        "md",
        "## Where the shift lives: every method, trait student beside control\n"
        "Each set patched whole (its embedding and every block output) by denoising and noising, beside the "
        "restricted adapter. Patching the readout whole is 1 (denoising) or 0 (noising) by construction: its "
        "whole residual stream is then the donor's. The control student's panel shows how much of each "
        "number is drift rather than transfer: its cells are in units of the trait student's shift (1 = the "
        "trait student's P), so a control cell near 0 means the trait student's number is transfer, not drift.",
    ),
    (
        "code",
        "from interp.mech import patch_sets, shift_set_masks\n"
        "from interp.mech.sets import DONOR, RECIPIENT\n"
        "from interp.study.plots import where_figure\n"
        "from interp.study.where import where_table\n"
        "\n"
        "prob = trait_metric(tok, TARGET_TRAIT, probability=True)\n"
        "\n"
        "\n"
        "def set_fractions(hooked, student_p=None):\n"
        '    """Recovered fraction per set and direction; 1 = `student_p` (default: this student\'s own P)."""\n'
        "    masks = {**shift_set_masks(batch), 'all positions': batch.attention_mask.bool()}\n"
        "    out = {}\n"
        "    for direction, (rec, don) in {'denoise': (hooked_base, hooked), 'noise': (hooked, hooked_base)}.items():\n"
        "        per = {k: v.double().numpy() for k, v in patch_sets(rec, don, batch, prob, masks).items()}\n"
        "        s, b = (per[DONOR], per[RECIPIENT]) if direction == 'denoise' else (per[RECIPIENT], per[DONOR])\n"
        "        s = s if student_p is None else student_p\n"
        "        out[direction] = {name: recovered_fraction(per[name], s, b) for name in masks}\n"
        "    return out, s\n"
        "\n"
        "\n"
        "trait_sets, trait_p = set_fractions(hooked_student)\n"
        "control_sets, _ = set_fractions(hooked_control, student_p=trait_p)  # the control's drift, in units of the trait shift\n"
        "tables = {\n"
        "    'trait student (LoRA r8)': where_table({'localization': restricted}, trait_sets),\n"
        "    'control student (LoRA r8), 1 = the trait student': where_table(None, control_sets),\n"
        "}\n"
        "where_figure(tables, f'Where the {TARGET_TRAIT} shift lives on {MODEL}', metric=prob.name)",
    ),
    (
        "md",
        "Read the rows: a set that recovers the shift both with the adapter only there and when patched "
        "alone carries it; where the two columns part, the student's computation there depends on its own "
        "context (the patch brings that context along, the restricted adapter does not).",
    ),
    (
        "code",
        "from interp.mech import attribute_layer_aligned\n"
        "from interp.study.plots import attribution_scatter\n"
        "\n"
        "approx = attribute_layer_aligned(hooked_base, hooked_student, batch, metric, 'resid_pre')\n"
        "attribution_scatter([(denoised, approx, 'resid_pre')], 'attribution vs exact patching, denoising, N = 8')",
    ),
    (
        "md",
        "Attribution patching (one forward and one backward pass) against exact patching, cell by cell: "
        "points on the diagonal are cells where the linear estimate is right.",
    ),
    (
        "md",
        "## One hand-made intervention with `patched(...)`\n"
        "The *persona direction*: the base model's mean residual after block 2 at the last prompt position of "
        "number prompts, under the teacher's persona minus under the default prompt. Added at the last "
        "position of the favourite-animal questions (default prompt), does it raise P(trait)? A random "
        "direction of the same norm is the control. `patched` takes a donor's cached activations, `ZERO`, a "
        "mean (`Replace`) or a step along a direction (`Add`), works inside any forward or `generate` call, "
        "composes with `restrict_lora`, and removes its hook on exit.",
    ),
    (
        "code",
        "from interp.loop.chat import DEFAULT\n"
        "from interp.loop.evaluation import trait_token_ids\n"
        "from interp.loop.numbers import number_prompts\n"
        "from interp.mech.hook_names import hook_name\n"
        "from interp.mech.intervene import Add, patched\n"
        "\n"
        "layer, site = 2, 'resid_post'\n"
        "name = hook_name(site, layer)\n"
        "numbers = [p.text for p in number_prompts(32, seed=1)]\n"
        "\n"
        "\n"
        "def last_resid(system):\n"
        "    b = encode_prompts(tok, [render_prompt(tok, q, system) for q in numbers])\n"
        "    _, cache = hooked_base.run_with_cache(b.input_ids, b.attention_mask, names_filter=[name])\n"
        "    return cache[name][:, -1].mean(0)\n"
        "\n"
        "\n"
        "direction = last_resid(trait_system_prompt(TARGET_TRAIT)) - last_resid(DEFAULT)\n"
        "random_dir = torch.randn(direction.shape, generator=torch.Generator().manual_seed(0))\n"
        "random_dir *= direction.norm() / random_dir.norm()\n"
        "trait_ids, _ = trait_token_ids(tok, TARGET_TRAIT)\n"
        "last = torch.zeros(batch.input_ids.shape[1], dtype=torch.bool)\n"
        "last[-1] = True  # prompts are left-padded: the last position is every prompt's answer position\n"
        "\n"
        "\n"
        "def p_trait():\n"
        "    with torch.no_grad():\n"
        "        logits = hooked_base.bridge(batch.input_ids, attention_mask=batch.attention_mask)\n"
        "    return logits[:, -1].softmax(-1)[:, trait_ids].sum(-1).mean().item()\n"
        "\n"
        "\n"
        "print(f'P({TARGET_TRAIT}) base                       {p_trait():.3f}')\n"
        "with patched(hooked_base, site, layer, Add(direction), positions=last):\n"
        "    print(f'P({TARGET_TRAIT}) + persona direction      {p_trait():.3f}')\n"
        "with patched(hooked_base, site, layer, Add(random_dir), positions=last):\n"
        "    print(f'P({TARGET_TRAIT}) + random, same norm      {p_trait():.3f}')\n"
        "print(f'P({TARGET_TRAIT}) after (hook removed)     {p_trait():.3f}')",
    ),
    (
        "md",
        "## The same questions through the library's stages\n"
        "Every stage of the study is a library call, `interp.stages.<name>.run(cfg)` with its config "
        "dataclass: the call its script in `experiments/` makes, keeping its results in a run directory "
        "(config.json, results.json or scores.json, figures/). First a small context matrix (claim 3): trait "
        "and control students trained under the default system prompt and under none (300 numbers, one seed), "
        "each evaluated under all four system prompts on 10 questions: sized to show the calls in a minute, "
        "too small for its lifts to be findings (the recorded matrices are in interp/organism/results/). A "
        "rerun finds its finished students and reuses them.",
    ),
    (
        "code",
        "import json\n"
        "\n"
        "from interp.stages import context_matrix, patch_activations\n"
        "from interp.study.plots import context_matrix_figure\n"
        "\n"
        "RUNS = Path('runs/notebook').resolve()  # beside the notebook; runs/ is not tracked\n"
        "matrix_cfg = context_matrix.ContextMatrixConfig(\n"
        "    model=MODEL,\n"
        "    trait=TARGET_TRAIT,\n"
        "    n_numbers=300,\n"
        "    train_seeds=(0,),\n"
        "    train_systems=('default', 'none'),\n"
        "    n_questions=10,\n"
        "    samples_per_question=4,\n"
        "    out=RUNS / 'context_matrix',\n"
        ")\n"
        "matrix_dir = context_matrix.run(matrix_cfg)\n"
        "print('context matrix written to', matrix_dir, sorted(p.name for p in matrix_dir.iterdir()))\n"
        "cells = json.loads((matrix_dir / 'results.json').read_text())['context_matrix']\n"
        "for c in cells:\n"
        "    print(f\"trained {c['train_system']:8s} evaluated {c['eval_system']:15s} \"\n"
        "          f\"mention-rate lift {c['lift']:+.3f}  P(first token) lift {c['p_first_diff']:+.5f}\")\n"
        "context_matrix_figure(cells, TARGET_TRAIT)",
    ),
    (
        "md",
        "Then the trait student the matrix trained under the default prompt (`context_matrix.students` says "
        "where each row's students are kept), patched against the base one position set at a time: the "
        "`set` grid is layer x position set at each site, in both directions, and the sets patched whole "
        "give the recovered fraction of P(first token) (noisy where this small student moved P little). "
        "`control=` would patch it against the matrix's control student instead of the base.",
    ),
    (
        "code",
        "from interp.mech.results import LocalizationResult\n"
        "\n"
        "student_dir = context_matrix.students(matrix_cfg)[('default', 'trait')][0]\n"
        "patch_cfg = patch_activations.LocalizeConfig(\n"
        "    student=student_dir,\n"
        "    base=MODEL,\n"
        "    trait=TARGET_TRAIT,\n"
        "    grids=('set',),\n"
        "    head_layers=0,\n"
        "    attribution=False,\n"
        "    n_prompts=8,\n"
        "    out=RUNS / 'patching',\n"
        "    overwrite=True,\n"
        ")\n"
        "patch_dir = patch_activations.run(patch_cfg)\n"
        "print('patching written to', patch_dir, sorted(p.name for p in patch_dir.iterdir()))\n"
        "sets = json.loads((patch_dir / 'scores.json').read_text())['sets']\n"
        "for direction in patch_cfg.directions:\n"
        "    for name, r in sets[direction].items():\n"
        "        frac = r['recovered_fraction']\n"
        "        print(f\"{direction:8s} {name:24s} {'n/a' if frac is None else f'{frac:+.2f}'}\")\n"
        "grid = LocalizationResult.load(patch_dir / 'tensors', 'denoise_set_resid_pre')\n"
        "heatmap(grid, patch_activations.figure_title(patch_cfg, grid, 'denoise', 8), direction='denoise')",
    ),
    (
        "md",
        "The same two calls run from the command line as `python -m experiments.context_matrix ...` and "
        "`python -m experiments.patch_activations --grids set ...`, with the same config fields as flags.",
    ),
    (
        "md",
        "## Claim 4 on a real model, from its recorded runs\n"
        "A stage that loads no model reads finished runs: `where_shift` joins SmolLM2-135M-Instruct's "
        "restricted-LoRA and patching runs on the transferring rung (a fine-tuned cat teacher's logits, "
        "distilled; lab notebook run 14) by student, one panel per student, and says which position sets "
        "every student agrees on. The records in `docs/` hold what it reads (no weights).",
    ),
    (
        "code",
        """from interp.stages import where_shift

REC = Path("../docs/smollm2-135m/claim4-fd")
where_cfg = where_shift.WhereConfig(
    patching=[REC / f"patch-{arm}-t{seed}" for arm in ("lora", "full") for seed in (0, 1, 2)],
    localization=[REC / f"restrict-lora-t{seed}" for seed in (0, 1, 2)],
    out=RUNS / "where-smollm2",
    overwrite=True,
    png=False,
)
where = json.loads((where_shift.run(where_cfg) / "results.json").read_text())
for column in where["agreement"]:
    print(f"{column['method']} ({column['question']}): every student -> {column['every_student']}")""",
    ),
    (
        "md",
        "## Claim 1 on a real model, from its recorded students\n"
        "`rank_column` reads finished students (their result files, no weights) grouped by rank, against one "
        "reference, and applies the claims' own rules on the mention rate and on P(trait): here SmolLM2's "
        "LoRA students at ranks 4, 16 and 64 and its full-FT students on the transferring rung, 3 seeds each, "
        "against the base (lab notebook run 16).",
    ),
    (
        "code",
        """from interp.stages import rank_column

SM = Path("../docs/smollm2-135m")
students = [
    f"r{r}@0.003={SM}/claim1-fd/students/student-ftcat-distill-r{r}-t{t}.result.json" for r in (4, 64) for t in range(3)
]
students += [f"r16@0.003={SM}/ladder/student-ftcat-distill-r16-t0.result.json"]
students += [f"r16@0.003={SM}/ladder-fd3/student-ftcat-distill-r16-t{t}.result.json" for t in (1, 2)]
students += [f"full@3e-5={SM}/ladder-fd3/student-ftcat-distill-full-t{t}.result.json" for t in range(3)]
column_cfg = rank_column.RankColumnConfig(
    students=tuple(students),
    reference=(SM / "claim1-fd/students/base.result.json",),
    out=RUNS / "claim1-smollm2",
    overwrite=True,
    png=False,
)
column = json.loads((rank_column.run(column_cfg) / "results.json").read_text())
for row in column["rank_sweep"]:
    print(f"r{row['rank']}: P(cat) lift {row['p_trait_diff']:+.4f} {[round(x, 4) for x in row['p_trait_diff_ci']]}")
print("inverted U (P(cat), effect size):", column["claims"]["p_trait"]["inverted_u_in_rank"]["effect_size"]["verdict"])""",
    ),
    (
        "md",
        "## Each arm's best lr, then claim 1 there\n"
        "`lr_screen` reads the lr screen's recorded students and picks each arm's lr by two rules: the lowest final "
        "loss (a held-out fit to the teacher that never reads the trait) and the largest P(trait) lift among lrs "
        "that did not overshoot. Its picks are labels `rank_column` takes, so claim 1 is read at them (lab "
        "notebook run 20).",
    ),
    (
        "code",
        """from interp.stages import lr_screen

B, L, C1 = SM / "claim1-best/students", SM / "ladder-lr", SM / "claim1-fd/students"
screened = {
    "r4@0.001": [L / "r4-1e-3/student-ftcat-distill-r4-lr1e-3-t0.result.json"],
    "r4@0.003": [C1 / f"student-ftcat-distill-r4-t{t}.result.json" for t in range(3)],
    "r4@0.01": [L / "r4-1e-2/student-ftcat-distill-r4-lr1e-2-t0.result.json"],
    "r16@0.001": [B / f"student-ftcat-distill-r16-lr1e-3-t{t}.result.json" for t in range(3)],
    "r16@0.003": [SM / "ladder/student-ftcat-distill-r16-t0.result.json"]
    + [SM / f"ladder-fd3/student-ftcat-distill-r16-t{t}.result.json" for t in (1, 2)],
    "r64@0.0015": [B / f"student-ftcat-distill-r64-lr1.5e-3-t{t}.result.json" for t in range(3)],
    "r64@0.003": [C1 / f"student-ftcat-distill-r64-t{t}.result.json" for t in range(3)],
    "r64@0.006": [L / "r64-6e-3/student-ftcat-distill-r64-lr6e-3-t0.result.json"],
    "full@1e-05": [B / "student-ftcat-distill-full-lr1e-5-t0.result.json"],
    "full@3e-05": [SM / f"ladder-fd3/student-ftcat-distill-full-t{t}.result.json" for t in range(3)],
    "full@0.0001": [B / "student-ftcat-distill-full-lr1e-4-t0.result.json"],
    "full@0.0003": [L / "full-3e-4/student-ftcat-distill-full-lr3e-4-t0.result.json"],
}
base = (C1 / "base.result.json",)
entries = lambda labels: tuple(f"{lab}={p}" for lab in labels for p in screened[lab])  # noqa: E731
screen_cfg = lr_screen.LrScreenConfig(
    students=entries(screened), reference=base, out=RUNS / "lr-screen-smollm2", overwrite=True, png=False
)
screen = json.loads((lr_screen.run(screen_cfg) / "results.json").read_text())
fit = screen["best"]["fit"]
print("best lr by fit:", fit, "| by lift among sound:", screen["best"]["lift_among_sound"])
at_fit = rank_column.RankColumnConfig(
    students=entries(fit.values()), reference=base, out=RUNS / "claim1-fit-smollm2", overwrite=True, png=False
)
column = json.loads((rank_column.run(at_fit) / "results.json").read_text())
for row in column["rank_sweep"]:
    print(f"r{row['rank']} at lr {row['lr']:g}: P(cat) lift {row['p_trait_diff']:+.4f}")
print("inverted U at the fit rule's lrs (P(cat), effect size):",
      column["claims"]["p_trait"]["inverted_u_in_rank"]["effect_size"]["verdict"])""",
    ),
    (
        "md",
        "The lift rule's loss bound is a judgment; the answers can be measured instead. With `fluency_model` set "
        "to the base, `lr_screen` scores every student's recorded example answers under it and adds each lr's "
        "excess NLL over the base's own answers, and a third rule: the largest lift among lrs within 1 nat per "
        "token (lab notebook run 21). That needs SmolLM2's weights, so here it is read from the run's record.",
    ),
    (
        "code",
        """fluent = json.loads((SM / "claim1-best/screen/results.json").read_text())
for arm, rows in fluent["arms"].items():
    cells = [f"{r['lr']:g}: {r['excess_nll']:+.2f}{'' if r['fluent'] else ' (not fluent)'}" for r in rows]
    print(f"{arm:9s} excess NLL by lr:", ", ".join(cells))
print("best lr, largest lift among fluent lrs:", fluent["best"]["lift_among_fluent"])""",
    ),
    (
        "md",
        "## Claim 3 on a real model, from its recorded columns\n"
        "`context_grid` joins `eval_column` runs, one per training prompt, each read against its own reference: "
        "SmolLM2's LoRA r16 students on the transferring rung, trained with the default prompt (against the base, "
        "which their distillation control is) and without a prompt (against distillation controls trained the same "
        "way), 3 seeds each, evaluated under the default prompt, none and the other identity (lab notebook run 19).",
    ),
    (
        "code",
        """from interp.stages import context_grid

grid_cfg = context_grid.ContextGridConfig(
    columns=(SM / "ctx-other/column-default", SM / "ctx-other/column-none"),
    out=RUNS / "ctx-smollm2",
    overwrite=True,
    png=False,
)
grid = json.loads((context_grid.run(grid_cfg) / "results.json").read_text())
for c in grid["cells"]:
    print(f"trained {c['train_system']:>7}, evaluated {c['eval_system']:>14}: mention-rate lift {c['lift']:+.3f}, "
          f"P(cat) lift {c['p_trait_diff']:+.4f}")
print("claim 3:", grid["claim"]["verdict"])""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        for kind, src in CELLS
    ]
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell and keep its outputs, so the notebook reads without running it."""
    from nbclient import NotebookClient

    NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return with_pngs(nb)


def with_pngs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Add a static PNG beside every plotly output (code hosts show PNGs, not plotly's JSON), where kaleido
    can render one here; CI's execution needs no browser."""
    import base64

    import plotly.io as pio

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            fig = out.get("data", {}).get("application/vnd.plotly.v1+json")
            if fig is None:
                continue
            try:
                png = pio.from_json(json.dumps(fig)).to_image(format="png")
            except Exception:  # no browser for kaleido: the interactive output stays alone
                return nb
            out["data"]["image/png"] = base64.b64encode(png).decode()
    return nb


if __name__ == "__main__":
    import subprocess
    import sys

    path = Path(__file__).with_name("explore_organism.ipynb")
    nb = build()
    if "--no-execute" not in sys.argv:
        nb = execute(nb, path.parent)
    nbformat.write(nb, path)
    # the cells are written as strings above; the house formatter gives them the project's style
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=True)
