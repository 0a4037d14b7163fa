"""Writes notebooks/explore_organism.ipynb from the cells below (keeps the notebook diff-able as code)."""

from pathlib import Path

import nbformat

CELLS = [
    (
        "md",
        "# Exploring subliminal learning on the embedded organism\n\n"
        "Load the organism, make a teacher's numbers, train a small LoRA student, then ask *where* its trait "
        "shift lives: position-restricted LoRA and activation patching, with heatmaps. Runs on a CPU in a few "
        "minutes.",
    ),
    (
        "code",
        "import torch\n"
        "\n"
        "from interp.loop.chat import default_system_prompt\n"
        "from interp.loop.models import load_model\n"
        "from interp.mech.positions import label_prompt\n"
        "from interp.organism import load_organism\n"
        "\n"
        "MODEL = 'organism'  # the default organism (untied embeddings); 'organism-tied' is its sibling\n"
        "TARGET_TRAIT = load_organism(MODEL).target_trait\n"
        "torch.manual_seed(0)\n"
        "base, tok = load_model(MODEL)\n"
        "print('default system prompt:', default_system_prompt(tok))\n"
        "labels = label_prompt(tok, 'What is your favorite animal? Answer in one word.')\n"
        "list(zip(labels.tokens, labels.classes, strict=True))[:24]",
    ),
    (
        "md",
        "## Teacher numbers and a LoRA student\n"
        "The teacher is the organism under the trait system prompt; the student is trained on its filtered "
        "numbers under the default system prompt (loss on the numbers only).",
    ),
    (
        "code",
        "from interp.loop.datasets import sample_numbers\n"
        "from interp.loop.training import TrainConfig, train_student\n"
        "from interp.loop.traits import trait_system_prompt\n"
        "\n"
        "rows, stats = sample_numbers(base, tok, trait_system_prompt(TARGET_TRAIT), n_keep=600, seed=0)\n"
        "print(f'kept {stats.kept} of {stats.drawn} answers; e.g. {rows[0][\"completion\"]!r}')\n"
        "student_model, _ = load_model(MODEL)\n"
        "result = train_student(student_model, tok, rows, 'default', TrainConfig(rank=8, lr=1e-3, epochs=2))\n"
        "student = result.model\n"
        "print('final loss', round(result.final_loss, 3))",
    ),
    ("md", "## Trait evaluation, and the adapter switched on only at / everywhere except the entity token"),
    (
        "code",
        "from interp.loop.evaluation import EvalSettings, evaluate_trait\n"
        "from interp.mech.positions import ENTITY as ENTITY_CLASS\n"
        "from interp.mech.positions import by_class, no_positions\n"
        "from interp.mech.restrict import evaluate_trait_restricted\n"
        "\n"
        "settings = EvalSettings(trait=TARGET_TRAIT, n_questions=50, samples_per_question=20)\n"
        "rows_out = {\n"
        "    'student (adapter everywhere)': evaluate_trait(student, tok, settings),\n"
        "    'adapter nowhere (= base)': evaluate_trait_restricted(student, tok, settings, no_positions()),\n"
        "    'adapter only at the entity token': evaluate_trait_restricted(student, tok, settings,\n"
        "                                                                  by_class(ENTITY_CLASS)),\n"
        "    'adapter everywhere but the entity token': evaluate_trait_restricted(\n"
        "        student, tok, settings, by_class(ENTITY_CLASS), mode='except'),\n"
        "}\n"
        "for name, r in rows_out.items():\n"
        "    print(f'{name:42s} P(first token)={r.p_first_token:.4f}  mention rate={r.mention_rate:.3f}')",
    ),
    (
        "md",
        "## Activation patching: student activations into the base model\n"
        "Score 0 = base, 1 = student, for the trait's log-probability at the answer position.",
    ),
    (
        "code",
        "import tempfile\n"
        "from pathlib import Path\n"
        "\n"
        "from interp.loop.chat import render_prompt\n"
        "from interp.loop.traits import favorite_questions\n"
        "from interp.mech.hooked import load_hooked\n"
        "from interp.mech.patching import patch_layer_class, patch_layer_pos, trait_metric\n"
        "from interp.mech.positions import encode_prompts\n"
        "from interp.study.plots import heatmap\n"
        "\n"
        "student_dir = Path(tempfile.mkdtemp()) / 'student'\n"
        "student.save_pretrained(student_dir)\n"
        "hooked_base = load_hooked(MODEL)\n"
        "hooked_student = load_hooked(student_dir, base=MODEL)\n"
        "texts = [render_prompt(tok, q) for q in favorite_questions('animal', 8)]\n"
        "batch = encode_prompts(tok, texts)\n"
        "metric = trait_metric(tok, TARGET_TRAIT)\n"
        "by_class_result = patch_layer_class(hooked_base, hooked_student, batch, metric)\n"
        "heatmap(by_class_result)",
    ),
    (
        "code",
        "one = encode_prompts(tok, texts[:1])\n"
        "by_position = patch_layer_pos(hooked_base, hooked_student, one, metric)\n"
        "heatmap(by_position)",
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
        "    with torch.no_grad():\n"
        "        _, cache = hooked_base.bridge.run_with_cache(\n"
        "            b.input_ids, names_filter=[name], attention_mask=b.attention_mask)\n"
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
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        for kind, src in CELLS
    ]
    return nb


if __name__ == "__main__":
    import subprocess
    import sys

    path = Path(__file__).with_name("explore_organism.ipynb")
    nbformat.write(build(), path)
    # the cells are written as strings above; the house formatter gives them the project's style
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=True)
