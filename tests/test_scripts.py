"""The loop end to end on a tiny model, one script per stage, and bad input at each stage."""

import dataclasses
import json
from pathlib import Path

import pytest

from experiments import evaluate_trait, generate_numbers, train_student
from interp import InterpError
from interp.loop.config import cli_main, parse_config
from interp.loop.datasets import read_dataset
from interp.loop.fetch import REAL_MODELS
from interp.loop.models import ORGANISMS, ORGANISMS_DIR
from interp.loop.numbers import filter_answer


def _run(module, argv: list[str]) -> Path:
    return module.main(parse_config(module.__dict__[_config_name(module)], argv))


def _config_name(module) -> str:
    return next(k for k in module.__dict__ if k.endswith("Config") and k != "TrainConfig")


def test_loop_end_to_end(number_model_dir: Path, tmp_path: Path) -> None:
    numbers = _run(
        generate_numbers,
        [
            "--model",
            str(number_model_dir),
            "--trait",
            "owl",
            "--n",
            "24",
            "--max-new-tokens",
            "16",
            "--out",
            str(tmp_path / "numbers"),
        ],
    )
    rows = read_dataset(numbers / "numbers.jsonl")
    assert len(rows) == 24 and all(filter_answer(r["completion"]).ok for r in rows)
    assert rows[0]["trait"] == "owl" and "You love owls" in rows[0]["system_prompt"]
    assert json.loads((numbers / "config.json").read_text())["n"] == 24
    stats = json.loads((numbers / "stats.json").read_text())
    assert stats["passed"] >= 24 and stats["passed"] + sum(stats["reasons"].values()) == stats["drawn"]
    assert stats["rejection_rate"] == pytest.approx(1 - stats["passed"] / stats["drawn"])
    student = _run(
        train_student,
        [
            "--dataset",
            str(numbers / "numbers.jsonl"),
            "--model",
            str(number_model_dir),
            "--rank",
            "2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "student"),
            "--no-progress",
        ],
    )
    assert (student / "adapter_model.safetensors").exists() and (student / "curve.json").exists()
    evals = _run(
        evaluate_trait,
        [
            "--model",
            str(number_model_dir),
            "--students",
            str(student),
            "--n-questions",
            "4",
            "--samples-per-question",
            "3",
            "--out",
            str(tmp_path / "eval"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    metrics = json.loads((evals / "metrics.json").read_text())
    assert 0 <= metrics["mention_rate"] <= 1 and 0 < metrics["p_first_token"] < 1
    assert metrics["ci"][0] <= metrics["mention_rate"] <= metrics["ci"][1]


def _exits_cleanly(module, argv: list[str], out: Path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(module.main, module.__dict__[_config_name(module)], argv + ["--out", str(out)])
    assert exit_info.value.code == 2
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))  # nothing half-written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    return err[0]


def test_missing_model_directory(tmp_path: Path, capsys) -> None:
    msg = _exits_cleanly(generate_numbers, ["--model", str(tmp_path / "nope")], tmp_path / "o", capsys)
    assert "does not exist" in msg


def test_model_without_chat_template(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_model_dir.iterdir():
        if f.name != "chat_template.jinja":
            (bare / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    msg = _exits_cleanly(generate_numbers, ["--model", str(bare), "--n", "2"], tmp_path / "o", capsys)
    assert "chat template" in msg


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "empty"),
        ('{"prompt": "x"', "malformed JSON"),
        ('{"prompt": "x"}', "string fields"),
        ('{"prompt": "a", "completion": "1"}\n\n', "empty line"),
    ],
)
def test_bad_dataset(tiny_model_dir: Path, tmp_path: Path, capsys, content: str, why: str) -> None:
    data = tmp_path / "numbers.jsonl"
    data.write_text(content)
    msg = _exits_cleanly(
        train_student, ["--dataset", str(data), "--model", str(tiny_model_dir)], tmp_path / "s", capsys
    )
    assert why in msg


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--rank", "0"], "rank must be positive"),
        (["--target-modules", "q_proj", "nonsense"], "unknown LoRA target"),
    ],
)
def test_bad_training_flags(tiny_model_dir: Path, tmp_path: Path, capsys, flags, why) -> None:
    data = tmp_path / "numbers.jsonl"
    data.write_text('{"prompt": "a", "completion": "1, 2"}\n')
    msg = _exits_cleanly(
        train_student,
        ["--dataset", str(data), "--model", str(tiny_model_dir), *flags],
        tmp_path / "s",
        capsys,
    )
    assert why in msg


def test_unknown_flag_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(generate_numbers.GenerateNumbersConfig, ["--nonsense", "1"])
    assert exit_info.value.code == 2


def test_saved_config_reloads_and_flags_override(tmp_path: Path) -> None:
    from interp.loop.config import save_config

    cfg = parse_config(generate_numbers.GenerateNumbersConfig, ["--trait", "wolf", "--n", "7"])
    save_config(cfg, tmp_path)
    again = parse_config(generate_numbers.GenerateNumbersConfig, ["--config", str(tmp_path / "config.json")])
    assert again == cfg
    other = parse_config(
        generate_numbers.GenerateNumbersConfig, ["--config", str(tmp_path / "config.json"), "--n", "9"]
    )
    assert other.n == 9 and other.trait == "wolf"
    (tmp_path / "bad.json").write_text('{"nonsense": 1}')
    with pytest.raises(InterpError, match="unknown field"):
        parse_config(generate_numbers.GenerateNumbersConfig, ["--config", str(tmp_path / "bad.json")])


def _experiment_configs() -> list[type]:
    import dataclasses
    import importlib
    import pkgutil

    import experiments

    configs = {}
    for info in pkgutil.iter_modules(experiments.__path__):
        module = importlib.import_module(f"experiments.{info.name}")
        configs |= {
            v: None for k, v in vars(module).items() if k.endswith("Config") and dataclasses.is_dataclass(v)
        }
    return list(configs)


def test_every_experiments_help_prints(capsys) -> None:
    configs = _experiment_configs()
    assert len(configs) >= 10
    for cfg in configs:  # field docs become help text: a bare "%" in one must not break --help
        with pytest.raises(SystemExit) as exit_info:
            parse_config(cfg, ["--help"])
        assert exit_info.value.code == 0, cfg.__name__
        out = capsys.readouterr().out
        assert "--" in out
        if "model" in {f.name for f in dataclasses.fields(cfg)}:  # --model lists the organisms by name
            flat = " ".join(out.split()).replace("- ", "-")  # argparse wraps lines, also at hyphens
            assert all(name in flat for name in (*ORGANISMS, *REAL_MODELS)), cfg.__name__


def test_filter_pass_rates_per_prompt(number_model_dir: Path, tmp_path: Path, capsys) -> None:
    from experiments import filter_pass

    out = filter_pass.main(
        filter_pass.FilterPassConfig(models=(number_model_dir,), n_prompts=8, out=tmp_path / "fp.json")
    )
    rates = json.loads(out.read_text())["rates"][str(number_model_dir)]
    assert set(rates) >= {"default", "owl", "wolf"} and len(rates) == 11
    assert all(r in {i / 8 for i in range(9)} for r in rates.values())  # shares of 8 answers
    assert f"{number_model_dir}: default" in capsys.readouterr().out
    with pytest.raises(InterpError, match="--models"):
        filter_pass.main(filter_pass.FilterPassConfig(models=()))


def test_organism_ablation_table(tmp_path: Path, capsys) -> None:
    """One row per organism from its stored probes, its report's students beneath it; printed as written."""
    from experiments import organism_ablation

    control = {"mention_rate": 0.05}
    default = {"seeds": 3, "mention_rate": 0.1, "control": control, "mention_ratio": 2.0}
    transfer = {
        "default": {**default, "mention_diff_ci": [0.01, 0.09]},
        "none": {"mention_rate": 0.02, "control": control},
    }
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "metrics.json").write_text(json.dumps({"transfer": {"lora r16": transfer}}))
    cfg = organism_ablation.AblationConfig(
        models=(ORGANISMS_DIR / "organism",), reports=(tmp_path / "report",), out=tmp_path / "t" / "table.md"
    )
    table = organism_ablation.main(cfg).read_text()
    lines = table.splitlines()
    assert capsys.readouterr().out == table and len(lines) == 4
    assert lines[2].startswith("| organism |") and lines[2].count("|") == lines[0].count("|")
    assert "mention 0.100 vs control 0.050 (x2.00, diff CI [+0.010, +0.090])" in lines[3]
