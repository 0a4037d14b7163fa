"""Where the shift lives: class-aligned pooling over prompts, and set patching on a trained student."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tolerance import assert_close

from interp.loop.chat import render_prompt
from interp.loop.models import load_model, model_fingerprint
from interp.loop.numbers import number_prompts
from interp.loop.training import TrainConfig, save_student, train_student
from interp.mech.columns import aligned_keys
from interp.mech.hooked import load_hooked
from interp.mech.patching import patch_layer_aligned, patch_layer_pos, trait_metric
from interp.mech.positions import PAD, encode_prompts
from interp.mech.sets import DONOR, RECIPIENT, patch_sets, shift_set_masks

USERS = ["Hi", "What is your favorite animal? Answer in one word.", "Favorite animal?"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A LoRA student trained (briefly, at a high lr) on owl-ish numbers, and the base, as bridges."""
    model, tok = load_model(tiny_model_dir)
    fingerprint = model_fingerprint(model)
    rng = random.Random(0)
    rows = [
        {"prompt": p.text, "completion": ", ".join(str(rng.randrange(100, 200)) for _ in range(4))}
        for p in number_prompts(48, seed=0)
    ]
    result = train_student(model, tok, rows, "default", TrainConfig(rank=4, lr=3e-2, epochs=2, batch_size=16))
    sdir = tmp_path_factory.mktemp("where") / "student"
    save_student(
        result,
        sdir,
        tok,
        {"mode": "lora", "base_model": str(tiny_model_dir), "base_fingerprint": fingerprint},
    )
    base, student = load_hooked(tiny_model_dir), load_hooked(sdir, base=tiny_model_dir)
    batch = encode_prompts(tok, [render_prompt(tok, u) for u in USERS])
    return base, student, tok, batch


def test_aligned_pooling_equals_per_prompt_results(trained) -> None:
    base, student, tok, batch = trained
    metric = trait_metric(tok, "owl")
    assert batch.attention_mask.sum(1).unique().numel() == len(USERS)  # every prompt has its own length
    keys = aligned_keys(batch)
    for site in ("resid_pre", "attn_out"):
        pooled = patch_layer_aligned(base, student, batch, metric, site)
        singles = [
            patch_layer_pos(base, student, encode_prompts(tok, [t]), metric, site) for t in batch.texts
        ]
        gap = sum(s.donor_metric - s.recipient_metric for s in singles) / len(singles)
        effects: dict[tuple[str, int], list[torch.Tensor]] = {}
        for b, single in enumerate(singles):  # each prompt alone, by its own (unpadded) positions
            real = [k for k in keys[b] if k is not None]
            for p, key in enumerate(real):
                effects.setdefault(key, []).append(single.raw[:, p] - single.recipient_metric)
        assert len(pooled.col_labels) == len(effects)
        for col, cls in enumerate(pooled.col_classes):
            key = (cls, pooled.col_classes[:col].count(cls))  # columns keep each class's order
            per = torch.stack(effects[key])  # (prompts with this key, layer)
            assert pooled.config["n_present"][col] == len(per)
            assert torch.allclose(pooled.scores[:, col], per.mean(0) / gap, atol=1e-4), (site, key)
            if len(per) > 1:
                assert torch.allclose(pooled.spread[:, col], per.std(0) / abs(gap), atol=1e-4)


def test_patching_every_position_gives_one_by_denoising_and_zero_by_noising(trained) -> None:
    base, student, tok, batch = trained
    metric = trait_metric(tok, "owl", probability=True)
    sets = shift_set_masks(batch)
    every = torch.stack(list(sets.values())).any(0)
    assert torch.equal(every, batch.attention_mask.bool()) and PAD not in sets
    denoised = patch_sets(base, student, batch, metric, {"all": every, **sets})
    noised = patch_sets(student, base, batch, metric, {"all": every})
    b, s = denoised[RECIPIENT], denoised[DONOR]
    assert (s - b).abs().mean() > 1e-3  # the trained student moved P(owl)
    assert_close(denoised["all"], s)
    assert_close(noised["all"], b)
    recovered = lambda x: float((x - b).mean() / (s - b).mean())  # noqa: E731
    assert abs(recovered(denoised["all"]) - 1) < 1e-4 and abs(recovered(noised["all"])) < 1e-4
    assert not torch.allclose(denoised["readout"], b)  # a set alone moves the metric, and differently


def test_where_table_rows_and_disagreements() -> None:
    from interp.mech.sets import SHIFT_SETS
    from interp.study.where import ALL, carriers, disagreements, where_table

    cell = lambda v, w=0.02: {"recovered_fraction": v, "ci": [v - w, v + w]}  # noqa: E731
    loc = {
        "localization": [
            {"set": "readout", "mode": "only", **cell(0.8)},
            {"set": "entity", "mode": "only", **cell(0.0)},
            {"set": "user", "mode": "only", **cell(0.1)},
            {"set": None, "mode": "only", "positions": "readout, layer 0", **cell(0.7)},
        ]
    }
    sets = {
        "denoise": {
            "readout": cell(1.0, 0.0),
            "entity": cell(0.01),
            "user": cell(0.4),
            ALL: cell(1.0, 0.0),
        }
    }
    rows = where_table(loc, sets)
    assert [r["set"] for r in rows] == [*SHIFT_SETS, ALL]
    assert rows[-1]["only"] is None and rows[-1]["denoise"]["recovered_fraction"] == 1.0
    # the user: 0.1 vs 0.4 disagree; the entity: 0.00 vs 0.01 is too close to call; the readout, 0.8 vs
    # 1.0, is not called: a LoRA student's readout patch is 1 by construction
    said = disagreements(rows)
    assert len(said) == 1 and said[0].startswith("whether user suffices")
    assert carriers(rows, "only") == ["readout"] and carriers(where_table(None, sets), "only") == []


def _full_student(base_dir: Path, out: Path, changed: str) -> Path:
    """A "full-FT" student that differs from the base only in the parameters whose name contains `changed`."""
    model, tok = load_model(base_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if changed in name:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "student.json").write_text(json.dumps({"mode": "full", "base_model": str(base_dir)}))
    return out


def test_patching_every_position_misses_only_what_follows_the_last_block(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Why a full-FT student's every-position denoise is below 1 (0.92 in claim4_default): set patching takes
    the embedding and every block's output from the donor, not the final norm or the unembedding. A student
    changed only inside its blocks gives back its own metric exactly; one whose final norm changed does not."""
    base = load_hooked(tiny_model_dir)
    batch = encode_prompts(base.tok, [render_prompt(base.tok, u) for u in USERS])
    metric = trait_metric(base.tok, "owl", probability=True)
    every = {"all": batch.attention_mask.bool()}
    fractions = {}
    for changed in ("layers.0.mlp", "model.norm"):
        student = load_hooked(_full_student(tiny_model_dir, tmp_path / changed, changed), base=tiny_model_dir)
        out = patch_sets(base, student, batch, metric, every)
        b, s = out[RECIPIENT].double(), out[DONOR].double()
        assert (s - b).abs().mean() > 1e-6  # the student moved P(owl)
        fractions[changed] = float((out["all"].double() - b).mean() / (s - b).mean())
    assert abs(fractions["layers.0.mlp"] - 1) < 1e-3
    assert abs(fractions["model.norm"] - 1) > 1e-2
