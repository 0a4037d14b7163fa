"""A full-FT student keeps its model in model/, so its run's config.json stays the run's config; a student
saved before model/ existed (the model's files beside student.json) loads the same way."""

import json
import shutil
from pathlib import Path

import torch
from tiny import make_full_student

from experiments import train_student
from interp.loop import validate
from interp.loop.config import parse_config
from interp.loop.models import load_model, load_student, resolve_model_dir, student_weights_dir
from interp.mech.hooked import load_hooked


def _logits(model, tok) -> torch.Tensor:
    ids = tok("Continue: 3, 4, 5.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def test_a_full_ft_run_keeps_its_own_config_and_loads_wherever_a_model_does(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "numbers.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"Go: {i}.", "completion": f"{i + 1}"}) + "\n" for i in range(4))
    )
    argv = ["--dataset", str(data), "--model", str(tiny_model_dir), "--mode", "full", "--lr", "1e-3"]
    argv += ["--epochs", "1", "--no-progress", "--out", str(tmp_path / "student")]
    run = train_student.main(parse_config(train_student.TrainStudentConfig, argv))
    own = json.loads((run / "config.json").read_text())
    assert own["mode"] == "full" and own["dataset"] == str(data)  # the run's config, not the model's
    again = parse_config(train_student.TrainStudentConfig, ["--config", str(run / "config.json")])
    assert again.mode == "full" and again.lr == 1e-3
    assert json.loads((run / "model" / "config.json").read_text())["model_type"] == "qwen2"
    assert validate.student(run) == run and validate.base_model(run) == run / "model"
    assert resolve_model_dir(run) == student_weights_dir(run) == run / "model"
    hooked = load_hooked(run)
    assert hooked.kind == "full_ft" and hooked.source == str(run)
    assert not torch.equal(_logits(*load_student(run)), _logits(*load_model(tiny_model_dir)))  # trained


def test_a_full_ft_student_saved_before_model_dir_loads_the_same(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    old = make_full_student(tiny_model_dir, tmp_path / "old")  # the model's files beside student.json
    new = tmp_path / "new"
    (new / "model").mkdir(parents=True)
    for f in old.iterdir():
        shutil.copy2(f, new / ("" if f.name == "student.json" else "model") / f.name)
    assert student_weights_dir(old) == old and student_weights_dir(new) == new / "model"
    for s in (old, new):
        assert validate.student(s) == s and load_hooked(s).kind == "full_ft"
    torch.testing.assert_close(_logits(*load_student(old)), _logits(*load_student(new)), rtol=0, atol=0)
