"""The plan before a run: parameter counts against hand counts for Qwen2.5's public configs, bytes per
component, the printed plan without weights, and the one clear error when a plan does not fit."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from experiments import (
    alignment,
    beyond,
    context_matrix,
    divergence,
    generate_numbers,
    rank_sweep,
    reproduce,
    restrict_adapter,
    train_student,
)
from interp import InterpError
from interp.loop.config import cli_main, parse_config
from interp.loop.evaluation import EvalSettings
from interp.loop.training import LORA_TARGETS
from interp.plan.plan import (
    ANSWER_TOKENS,
    CUDA_OVERHEAD,
    LOGIT_SLACK,
    SampleShape,
    TrainShape,
    layer_activation_bytes,
    sampling_memory,
    training_memory,
)
from interp.plan.plan_check import detect_device
from interp.plan.shapes import ModelShape, read_model_shape
from interp.stages.restrict_adapter import localization_plan
from interp.study.experiment import EVAL_ROWS, EVAL_TOKENS, TEACHER_ROWS, study_plan
from interp.study.jobs import TEACHER_SAMPLING

FIXTURES = Path(__file__).parent / "fixtures"
SMALL, BIG = FIXTURES / "qwen2.5-0.5b-instruct", FIXTURES / "qwen2.5-7b-instruct"

# Qwen2.5-0.5B-Instruct by hand: d 896, 14 heads of 64 (q: 896), 2 KV heads (k, v: 128), MLP 4864, 24 layers
Q = 896 * 896 + 896  # q_proj weight + bias
KV = 896 * 128 + 128  # k_proj, v_proj: weight + bias each
OUT = 896 * 896  # o_proj, no bias
MLP = 3 * 896 * 4864  # gate, up, down
LAYER = Q + 2 * KV + OUT + MLP + 2 * 896  # + input and post-attention RMSNorm gains
EMBED = 151936 * 896  # tied: the unembedding is the same matrix
SMALL_TOTAL = 24 * LAYER + EMBED + 896  # + final norm
# LoRA r8 on the seven projections: r * (in + out) each
LORA8 = 24 * 8 * ((896 + 896) + 2 * (896 + 128) + (896 + 896) + 2 * (896 + 4864) + (4864 + 896))


def test_parameters_match_hand_counts_and_transformers() -> None:
    small, big = read_model_shape(SMALL), read_model_shape(BIG)
    assert small.params().total == SMALL_TOTAL == 494_032_768
    assert small.layer_params() == LAYER and small.params().unembed == 0 and small.tied
    assert small.lora_params(8) == LORA8 == 4_399_104
    assert big.params().total == 7_615_616_512 and big.lora_params(8) == 20_185_088 and not big.tied
    for path, shape in ((SMALL, small), (BIG, big)):
        with torch.device("meta"):  # the model class's own count, no memory
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
        assert sum(p.numel() for p in model.parameters()) == shape.params().total
        lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=list(LORA_TARGETS)))
        assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == shape.lora_params(8)


def test_fixtures_hold_the_public_architecture() -> None:
    small, big = (
        json.loads((SMALL / "config.json").read_text()),
        json.loads((BIG / "config.json").read_text()),
    )
    assert (small["num_hidden_layers"], small["hidden_size"], small["num_attention_heads"]) == (24, 896, 14)
    assert (small["num_key_value_heads"], small["tie_word_embeddings"], small["rope_theta"]) == (2, True, 1e6)
    assert (big["hidden_size"], big["intermediate_size"], big["vocab_size"]) == (3584, 18944, 152064)
    assert (big["num_key_value_heads"], big["tie_word_embeddings"]) == (4, False)


@pytest.mark.parametrize(
    ("precision", "weight", "state"), [("fp32", 4, 4), ("bf16-mixed", 4, 4), ("bf16-pure", 2, 2)]
)
def test_full_ft_bytes_per_component(precision: str, weight: int, state: int) -> None:
    s = read_model_shape(SMALL)
    t = TrainShape("full", 8, "bfloat16", precision, batch_size=2, prompt_tokens=100, answer_tokens=20)
    m = training_memory(s, t, "cuda")
    n = SMALL_TOTAL
    assert (m.weights, m.gradients, m.optimizer, m.step) == (weight * n, state * n, 2 * state * n, state * n)
    compute = 4 if precision == "fp32" else 2
    assert m.activations == 2 * 120 * 24 * layer_activation_bytes(s, compute)
    assert m.logits == 2 * (20 + LOGIT_SLACK) * 151936 * (compute + 12)
    assert m.casts == (2 * (24 * LAYER + EMBED) if precision == "bf16-mixed" else 0)  # bf16 copies of matmuls
    assert m.overhead == CUDA_OVERHEAD
    working = max(m.activations + m.logits + m.casts, m.step)
    assert m.peak == m.weights + m.gradients + m.optimizer + working + m.overhead


def test_lora_bytes_per_component_and_checkpointing() -> None:
    s = read_model_shape(SMALL)
    t = TrainShape(
        "lora", 8, "bfloat16", batch_size=2, prompt_tokens=100, answer_tokens=20
    )  # auto: bf16-mixed
    m = training_memory(s, t, "cuda")
    assert m.weights == 2 * SMALL_TOTAL + 4 * LORA8  # bf16 base, fp32 adapter
    assert (m.gradients, m.optimizer, m.step, m.casts) == (4 * LORA8, 8 * LORA8, 4 * LORA8, 2 * LORA8)
    per_token_layer = 2 * (5 * 896 + 4 * 896 + 4 * 4864 + 7 * 8 + (6 * 896 + 4864)) + 8 * 896
    assert layer_activation_bytes(s, 2, 8, lora_cast=True) == per_token_layer
    assert m.activations == 240 * 24 * per_token_layer
    ckpt = training_memory(s, TrainShape("lora", 8, "bfloat16", grad_checkpointing=True, batch_size=2,
                                         prompt_tokens=100, answer_tokens=20), "cuda")  # fmt: skip
    assert ckpt.activations == 240 * (24 * 896 * 2 + per_token_layer)  # layer inputs + one layer recomputed
    cpu = training_memory(s, TrainShape("lora", 8, "float32", batch_size=2, prompt_tokens=100), "cpu")
    assert cpu.overhead == 0 and cpu.step == 2 * 8 * 4864 * 4  # two of the largest adapter matrix


def test_sampling_bytes_per_component() -> None:
    s = read_model_shape(SMALL)
    m = sampling_memory(s, SampleShape("bfloat16", 64, 64, 100, 48, 1000), "cuda")
    assert m.weights == 2 * SMALL_TOTAL and m.gradients == m.optimizer == 0
    assert m.kv_cache == 64 * 148 * 2 * 24 * 128 * 2  # rows x tokens x (k, v) x layers x KV width x bytes
    assert m.logits == 64 * 151936 * (2 + 8)


def test_unknown_architecture_is_counted_as_llama_and_says_so() -> None:
    cfg = json.loads((SMALL / "config.json").read_text()) | {"model_type": "newthing"}
    shape = ModelShape.from_config(cfg)
    assert not shape.known and not shape.qkv_bias and "unknown to the plan" in shape.describe()
    with pytest.raises(InterpError, match="lacks"):
        ModelShape.from_config({"model_type": "qwen2"})


def test_device_memory_stated_or_read() -> None:
    stated = detect_device("cuda", memory_gb=80, tflops=250)
    assert stated.memory == 80 * 2**30 and stated.tflops == 250 and "stated" in stated.tflops_source
    cpu = detect_device("cpu")
    assert cpu.memory is None or cpu.memory > 0
    if not torch.cuda.is_available():
        assert detect_device("cuda").memory is None  # no GPU here: the fit is unknown, not assumed


def test_reproduce_plan_for_qwen7b_prints_without_weights(tmp_path: Path, capsys) -> None:
    argv = ["--plan", "--config", "experiments/configs/qwen2.5-7b-instruct.json", "--model", str(BIG)]
    cfg = parse_config(
        reproduce.ReproduceConfig, argv + ["--device-memory-gb", "80", "--out", str(tmp_path / "r")]
    )
    reproduce.main(cfg)
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "7.62B parameters" in out and "80.0 GiB" in out and "TFLOP/s" in out
    assert " yes " in rows["student LoRA r8"] and " NO " in rows["student full FT"]
    assert not (tmp_path / "r").exists()  # a plan writes nothing
    assert "context students" in out and "divergence students" in out and "patching" in rows


def test_reproduce_plan_prices_only_the_stages_asked_for(tmp_path: Path, capsys) -> None:
    argv = ["--plan", "--model", str(BIG), "--device-memory-gb", "80", "--out", str(tmp_path / "r")]
    reproduce.main(
        parse_config(reproduce.ReproduceConfig, argv + ["--stages", "rank_sweep", "context_matrix"])
    )
    lines = {line.split("  ")[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    # the context matrix trains at the main rank, 16, fixed before the sweep (not at the largest, 64); its
    # default-trained student and control are the sweep's r16 ones, so 2 of its 4 students train
    assert "context students r16" in lines and "context students r64" not in lines
    assert lines["context students r16"][-4:-2] == ["yes", "2"]  # fits, runs; then the time ("13 min")
    assert "divergence students r16" not in lines and "patching" not in lines
    reproduce.main(parse_config(reproduce.ReproduceConfig, argv + ["--stages", "rank_sweep"]))
    rows = {line.split("  ")[0] for line in capsys.readouterr().out.splitlines()}
    assert "context students r16" not in rows and "student LoRA r64" in rows


def _dataset(path: Path, n: int = 8) -> Path:
    rows = [{"prompt": f"Continue: {i}, {i + 1}.", "completion": f"{i + 2}"} for i in range(100, 100 + n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_plan_that_does_not_fit_is_one_clear_error(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    data = _dataset(tmp_path / "numbers.jsonl")
    argv = [
        "--dataset",
        str(data),
        "--model",
        str(tiny_model_dir),
        "--mode",
        "full",
        "--out",
        str(tmp_path / "s"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli_main(
            train_student.main, train_student.TrainStudentConfig, argv + ["--device-memory-gb", "0.0001"]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the plan does not fit" in err[0]
    assert "--mode lora" in err[0] and "--ignore-plan" in err[0] and not (tmp_path / "s").exists()
    cfg = parse_config(
        train_student.TrainStudentConfig, argv + ["--device-memory-gb", "0.0001", "--ignore-plan"]
    )
    cfg.progress = False
    assert (train_student.main(cfg) / "model" / "model.safetensors").exists()  # --ignore-plan runs anyway


def test_generate_numbers_plan_and_misfit(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["--model", str(tiny_model_dir), "--out", str(tmp_path / "n"), "--n", "4"]
    generate_numbers.main(parse_config(generate_numbers.GenerateNumbersConfig, argv + ["--plan"]))
    assert "teacher prompted-owl" in capsys.readouterr().out and not (tmp_path / "n").exists()
    with pytest.raises(InterpError, match="sample fewer rows per batch"):
        generate_numbers.main(
            parse_config(generate_numbers.GenerateNumbersConfig, argv + ["--device-memory-gb", "0.00001"])
        )


@pytest.mark.parametrize(
    "module", [rank_sweep, context_matrix, alignment, divergence, beyond, restrict_adapter]
)
def test_every_study_prints_its_plan_and_stops_when_it_does_not_fit(
    module, tiny_model_dir: Path, tmp_path: Path, capsys
) -> None:
    (cls,) = [
        v for k, v in vars(module).items() if k.endswith("Config") and isinstance(v, type)
    ]  # its one config
    argv = ["--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--student", "s"]
    argv = argv if "student" in {f.name for f in fields(cls)} else argv[:-2]
    module.main(parse_config(cls, argv + ["--plan"]))
    out = capsys.readouterr().out
    trains = module is not restrict_adapter  # it evaluates a trained student: no teacher to price
    assert ("teacher numbers" in out) == trains and "evaluation" in out and not (tmp_path / "o").exists()
    if "student" in {f.name for f in fields(cls)}:
        return  # a real run checks its --student first (a fake one here); the plan gate is checked above
    with pytest.raises(InterpError, match="the plan does not fit"):
        module.main(parse_config(cls, argv + ["--device-memory-gb", "0.00001"]))


def test_plan_constants_follow_the_sampling_settings() -> None:
    assert TEACHER_ROWS == TEACHER_SAMPLING["batch_size"] and EVAL_TOKENS == EvalSettings("x").max_new_tokens
    assert EVAL_ROWS == EvalSettings("x").batch_size and ANSWER_TOKENS == TEACHER_SAMPLING["max_new_tokens"]


def test_an_evaluation_without_samples_is_priced_as_one_pass_per_question(tiny_model_dir: Path) -> None:
    """--samples-per-question 0 (the P(trait) readout alone) is a plan, not a division by zero, and costs
    less than sampling."""

    def evaluation(samples: int):
        cfg = parse_config(
            rank_sweep.RankSweepConfig,
            ["--model", str(tiny_model_dir), "--samples-per-question", str(samples), "--n-questions", "7"],
        )
        plan = study_plan(cfg, "rank_sweep")
        return next(s for s in plan.stages if s.name == "evaluation")

    none, some = evaluation(0), evaluation(5)
    assert 0 < none.flops < some.flops


def test_the_localization_plan_counts_every_restricted_evaluation(tiny_model_dir: Path) -> None:
    """restrict_adapter's plan is its evaluations: the student whole, with no adapter, and one per
    restriction (per layer or per band), and nothing it does not run."""
    argv = ["--model", str(tiny_model_dir), "--student", "s", "--samples-per-question", "0"]
    for bands, layers in ((None, 2), ("1", 1)):
        cfg = parse_config(
            restrict_adapter.LocalizationConfig, argv + (["--layer-bands", bands] if bands else [])
        )
        (stage,) = localization_plan(cfg).stages
        assert stage.runs == 2 + 2 * 6 + layers + 2  # whole, none; only/except x 6 sets; layers; attn, mlp


def test_bf16_stages_are_priced_at_the_cpus_bf16_rate() -> None:
    """A CPU without native bf16 runs bf16 matmuls far slower than fp32 (SmolLM2's machine: 1.3 against
    165 GFLOP/s): the plan prices a bf16 arm at that rate and says so."""
    from interp.loop.models import default_model_dir
    from interp.plan.plan import Memory, Stage
    from interp.plan.plan_check import Device, Plan, native_bf16
    from interp.plan.shapes import read_model_shape

    assert native_bf16("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n") and not native_bf16(
        "flags\t: fpu avx2 fma\n"
    )
    memory = Memory()
    fp32, bf16 = (
        Stage(f"student {d}", "train-lora", memory, 1e12, compute_dtype=d) for d in ("float32", "bfloat16")
    )
    device = Device("cpu", None, "test", 0.1, "test", bf16_factor=0.01)
    plan = Plan("t", read_model_shape(default_model_dir()), device, (fp32, bf16), "test")
    assert plan.seconds(bf16) == pytest.approx(100 * plan.seconds(fp32))
    assert "priced at 0.01x the fp32 rate" in plan.render()
    assert "priced at" not in Plan("t", plan.shape, device, (fp32,), "test").render()


def test_a_bf16_mixed_student_is_a_bf16_stage() -> None:
    from interp.loop.models import default_model_dir
    from interp.plan.plan import TrainShape, training_stage
    from interp.plan.shapes import read_model_shape

    shape = read_model_shape(default_model_dir())
    for precision, want in (("bf16-mixed", "bfloat16"), ("bf16-pure", "bfloat16"), ("fp32", "float32")):
        t = TrainShape("lora", 8, "float32", precision=precision, examples=10)
        assert training_stage("s", shape, t, "cpu").compute_dtype == want
