"""The positive-control ladder's pieces on tiny models: the greedy teacher, the fine-tuned teacher's
dataset, the distillation control, and the ladder's table end to end."""

import json
from pathlib import Path

import pytest
import torch

from interp.loop.chat import DEFAULT
from interp.loop.datasets import read_dataset, write_dataset
from interp.loop.distill import dataset_teacher, make_distiller
from interp.loop.models import load_model
from interp.loop.numbers import filter_answer
from interp.loop.training import TrainConfig, train_student
from interp.study.experiment import ExecutorConfig, StudyConfig
from interp.study.jobs import numbers_job, numbers_path
from interp.study.sweep import run_jobs

ROWS = [{"prompt": f"Continue: {i}, {i + 1}, {i + 2}.", "completion": f"{i + 3}, {i + 4}"} for i in range(16)]


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_greedy_teacher_is_deterministic_and_passes_the_filter(number_model_dir: Path, tmp_path: Path):
    cfg = StudyConfig(model=str(number_model_dir), n_numbers=12, constrained=True, trait="owl")
    job = numbers_job(cfg, "trait", 0, greedy=True)
    assert job.params["temperature"] == 0.0 and "greedy" in job.name
    assert numbers_job(cfg, "trait", 0).name != job.name  # sampled and greedy data are two datasets
    run_jobs([job], tmp_path / "a", ExecutorConfig())
    rows = [json.loads(x) for x in numbers_path(tmp_path / "a", job.name).read_text().splitlines()]
    assert len(rows) == 12 and all(filter_answer(r["completion"]).ok for r in rows)
    # greedy: the sampler's generator cannot change an answer (temperature 1 does, with these seeds)
    from interp.loop.chat import render_prompt
    from interp.loop.generation import generate

    model, tok = load_model(number_model_dir)
    prompts = [render_prompt(tok, r["prompt"], rows[0]["system_prompt"]) for r in rows[:6]]
    assert generate(model, tok, prompts, 12, 0.0, seed=1) == generate(model, tok, prompts, 12, 0.0, seed=2)
    assert generate(model, tok, prompts, 12, 1.0, seed=1) != generate(model, tok, prompts, 12, 1.0, seed=2)


def test_a_finetuned_teachers_dataset_names_it_relative_to_its_own_run(tiny_model_dir: Path, tmp_path: Path):
    """generate_numbers --teacher-kind finetuned stages its run; its dataset must name the teacher where
    it lands, so that train_student --loss distill finds it (it named the staging directory)."""
    from experiments.generate_numbers import GenerateNumbersConfig
    from experiments.generate_numbers import main as generate_main
    from experiments.train_student import TrainStudentConfig
    from experiments.train_student import main as train_main

    out = generate_main(
        GenerateNumbersConfig(
            model=str(tiny_model_dir),
            trait="owl",
            teacher_kind="finetuned",
            n=4,
            constrained=True,
            out=tmp_path / "n",
        )
    )
    rows = [json.loads(x) for x in (out / "numbers.jsonl").read_text().splitlines()]
    assert rows[0]["teacher_model"] == "teacher"
    path, system = dataset_teacher(out / "numbers.jsonl", rows, tiny_model_dir)
    assert path == out / "teacher" and (path / "config.json").exists() and system == DEFAULT
    student = train_main(
        TrainStudentConfig(
            dataset=out / "numbers.jsonl",
            model=str(tiny_model_dir),
            loss="distill",
            epochs=1,
            rank=2,
            progress=False,
            out=tmp_path / "s",
        )
    )
    assert (student / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_a_distillation_control_reads_its_teachers_logits_and_stays_where_it_starts(
    tiny_model_dir: Path, tmp_path: Path, mode: str
):
    """The control teacher is the student's own initialisation: its logits are the student's, the KL's
    gradient is exactly zero, and AdamW at a large lr leaves every weight as it was. A teacher under
    another system prompt moves the same student (the test can fail)."""
    data = write_dataset(
        tmp_path / "ctl" / "numbers.jsonl",
        ROWS,
        {"teacher_model": str(tiny_model_dir), "system_prompt": DEFAULT},
    )
    model, tok = load_model(tiny_model_dir)
    distiller = make_distiller(data, read_dataset(data), tok, None, "float32", "cpu")
    base = dict(load_model(tiny_model_dir)[0].named_parameters())
    assert all(torch.equal(p, base[n]) for n, p in distiller.teacher.named_parameters())
    cfg = TrainConfig(mode=mode, rank=2, lr=1e-2, epochs=2, batch_size=8, loss="distill", seed=0)
    before = None

    def snapshot(step, student):
        nonlocal before
        if step == 0:
            before = _trainable(student)

    result = train_student(model, tok, ROWS, DEFAULT, cfg, distiller, on_step=snapshot)
    after = _trainable(result.model)
    assert all(torch.equal(after[n], before[n]) for n in before)
    assert result.final_loss == 0.0

    persona = write_dataset(
        tmp_path / "p" / "numbers.jsonl",
        ROWS,
        {"teacher_model": str(tiny_model_dir), "system_prompt": "You love owls."},
    )
    model, tok = load_model(tiny_model_dir)
    moved = train_student(
        model,
        tok,
        ROWS,
        DEFAULT,
        cfg,
        make_distiller(persona, read_dataset(persona), tok, None, "float32", "cpu"),
    )
    assert any(not torch.equal(p, before[n]) for n, p in _trainable(moved.model).items())


def test_the_ladder_reads_each_rung_against_its_own_control(number_model_dir: Path, tmp_path: Path):
    from interp.stages.ladder import LadderConfig, run

    cfg = LadderConfig(
        model=str(number_model_dir),
        trait="owl",
        constrained=True,
        n_numbers=8,
        train_seeds=(0,),
        control_seeds=(1,),
        rungs=("sampled", "finetuned-distill"),
        n_questions=4,
        samples_per_question=2,
        batch_size=8,
        threads=1,
        seed_sd_p_trait=0.001,
        seed_sd_mention=0.01,
        out=tmp_path / "ladder",
    )
    root = run(cfg)
    res = json.loads((root / "results.json").read_text())
    rows = {r["rung"]: r for r in res["rows"]}
    assert set(rows) == {"sampled", "finetuned-distill"}
    # the sampled control has its extra seed; the distillation control stayed at the base exactly
    assert rows["sampled"]["control_seeds"] == 2 and rows["finetuned-distill"]["control_seeds"] == 1
    assert rows["finetuned-distill"]["control"]["p_trait"] == pytest.approx(res["base"]["p_trait"], rel=1e-6)
    assert "lossdistill" in rows["finetuned-distill"]["control_jobs"][0]
    # the seed spread is measured from the two-seed control, not assumed; the MDE is priced from it
    assert res["components"]["p_trait"]["seed_source"] == "measured"
    assert all(r["p_trait_mde"] > 0 for r in rows.values())
    # 1 student seed against 2 control seeds sees less than 1 against 1, more than 3 against 3
    one, three = (res["mde_equal_arms"]["p_trait"][n] for n in ("1", "3"))
    assert three < rows["sampled"]["p_trait_mde"] < one
    lift = rows["sampled"]["student"]["p_trait"] - rows["sampled"]["control"]["p_trait"]
    assert rows["sampled"]["p_trait_diff"] == pytest.approx(lift, rel=1e-6)
    assert (root / "figures").is_dir() and (root / "config.json").exists() and res["pending"] == []
    report = (root / "report.md").read_text()
    assert (
        f"{rows['sampled']['p_trait_diff']:+.4f}" in report
        and f"{rows['sampled']['p_trait_mde']:.4f}" in report
    )
    # the distillation control kept every weight: read against the base instead, every number is the same
    from dataclasses import replace

    from interp.stages.ladder import BASE_AS_DISTILL_CONTROL

    trained = rows["finetuned-distill"]
    shutil_rm = __import__("shutil").rmtree
    shutil_rm(root / "jobs" / trained["control_jobs"][0])
    again = run(replace(cfg, distill_control="base", check_distill_control=True, summarise_only=True))
    row = next(
        r
        for r in json.loads((again / "results.json").read_text())["rows"]
        if r["rung"] == "finetuned-distill"
    )
    assert row["control_jobs"] == [BASE_AS_DISTILL_CONTROL]
    for key in ("p_trait_diff", "mention_diff", "p_trait_diff_ci"):
        assert row[key] == pytest.approx(trained[key], rel=1e-9)
    # read while it runs: a finished student removed, its cell is pending and nothing is retrained
    import shutil

    from interp.stages.ladder import collect, ordered_jobs

    dropped = next(j for j in ordered_jobs(cfg) if j.kind == "student" and "lossdistill" not in j.name)
    shutil.rmtree(root / "jobs" / dropped.name)
    partial = collect(replace(cfg, distill_control="base"), root)
    assert partial["pending"] == ["sampled / lora"] and set(partial["cells"]) == {
        ("finetuned-distill", "lora")
    }


def test_jobs_run_in_the_order_that_answers_soonest(tiny_model_dir: Path):
    """Numbers before the students that read them; every rung's first answer before the control's extra
    seeds; the distillation controls (which stay at the base) last; no job twice."""
    from interp.stages.ladder import LadderConfig, ordered_jobs

    cfg = LadderConfig(
        model=str(tiny_model_dir),
        trait="owl",
        train_seeds=(0,),
        control_seeds=(1, 2),
        rungs=("finetuned-distill", "sampled"),
    )
    jobs = ordered_jobs(cfg)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    pos = {n: i for i, n in enumerate(names)}
    for j in jobs:
        if j.kind == "student":
            assert pos[j.params["dataset"]] < pos[j.name]
    seeds = [i for i, j in enumerate(jobs) if j.kind == "student" and j.params["train"]["seed"] != 0]
    distill_ctl = [i for i, j in enumerate(jobs) if "lossdistill" in j.name and "control" in j.name]
    sampled_trait = [i for i, j in enumerate(jobs) if j.kind == "student" and "-owl-" in j.name]
    assert len(seeds) == 2 and len(distill_ctl) == 1 and sampled_trait
    assert max(sampled_trait) < min(seeds) < max(seeds) < distill_ctl[0] == len(jobs) - 1


def test_the_distillation_control_check_finds_no_weight_change(number_model_dir: Path):
    from interp.study.distill_check import check_distill_control

    out = check_distill_control(str(number_model_dir), {"lora": 1e-2, "full": 1e-3}, rank=2, n=8)
    assert set(out) == {"lora", "full"} and out["lora"]["rank"] == 2 and "rank" not in out["full"]
    assert all(v["max_abs_weight_change"] == 0.0 and v["steps"] == 1 for v in out.values())
    assert all(kl == 0.0 for v in out.values() for kl in v["kl_per_token_per_step"])


def test_plan_prints_the_power_before_anything_runs(tiny_model_dir: Path, tmp_path: Path, capsys):
    from dataclasses import replace

    from interp.stages.ladder import LadderConfig, run

    record = Path(__file__).parents[1] / "docs" / "smollm2-135m" / "run2" / "results.json"
    cfg = LadderConfig(
        model=str(tiny_model_dir), trait="owl", train_seeds=(0, 1, 2), rungs=("sampled",), plan=True,
        power_records=(record,), seed_sd_p_trait=0.0005, out=tmp_path / "l",
    )  # fmt: skip
    run(cfg)
    out = capsys.readouterr().out
    assert "3 seed(s) per arm" in out and "p_trait: MDE" in out and "MDE <= 0.0015 needs" in out
    assert "mention: MDE >=" in out and "seed spread is unknown" in out  # no seed SD given for it
    assert "Plan: ladder" in out and not (tmp_path / "l" / "jobs").exists()  # nothing ran
    # both seed spreads known: the plan prices the cheapest design that reaches the target
    run(replace(cfg, seed_sd_mention=0.01))
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "cheapest design" in x)
    seeds = int(line.split(": ")[1].split(" seed")[0])
    assert f"MDE <= 0.0015 needs {seeds} seed(s)" in out and "h per rung on LoRA" in line


def test_a_ladder_that_does_not_fit_spends_nothing_on_the_distillation_check(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
):
    """The plan's gate comes before the check: a ladder refused for memory trains no check student."""
    import interp.stages.ladder as ladder
    from interp import InterpError

    calls = []
    monkeypatch.setattr(ladder, "check_distill_control", lambda *a, **k: calls.append(a) or {})
    cfg = ladder.LadderConfig(
        model=str(tiny_model_dir), trait="owl", rungs=("distill",), check_distill_control=True,
        device_memory_gb=1e-6, out=tmp_path / "l",
    )  # fmt: skip
    with pytest.raises(InterpError, match="does not fit|fit"):
        ladder.run(cfg)
    assert calls == [] and not (tmp_path / "l" / "ladder" / ladder.CHECK_FILE).exists()


def test_a_lift_within_the_seed_spread_is_a_lead_not_a_transfer():
    """One seed per arm: the bootstrap CI over questions holds no seed spread. A lift that clears it but
    not the spread measured on the control seeds is a lead; one that clears both transfers; with the
    spread unknown nothing is called a transfer."""
    from interp.study.power import Components, seed_verdict

    c = Components("p_trait", 0.004, 0.001**2, 0.0019**2)  # seed SD 0.001, residual SD 0.0019
    small = seed_verdict(c, 0.0015, [0.0008, 0.0021], 1, 1)
    assert small["p_trait_verdict"] == "lead" and not small["p_trait_transfers"]
    assert small["p_trait_seed_ci"][0] < 0 < small["p_trait_seed_ci"][1]
    big = seed_verdict(c, 0.0434, [0.0378, 0.0497], 1, None)  # against the base: no control spread
    assert big["p_trait_verdict"] == "transfers" and big["p_trait_transfers"]
    against_base = big["p_trait_seed_ci"][1] - big["p_trait_seed_ci"][0]
    against_control = seed_verdict(c, 0.0434, [0.0378, 0.0497], 1, 1)["p_trait_seed_ci"]
    assert against_base < against_control[1] - against_control[0]  # a fixed control adds no seed spread
    assert against_base > 0.0497 - 0.0378  # wider than the CI over questions: the seed spread is added
    unknown = Components("p_trait", 0.004, None, 0.0019**2)
    assert seed_verdict(unknown, 0.0434, [0.0378, 0.0497], 1, 1)["p_trait_verdict"] == "lead"
    assert seed_verdict(c, -0.002, [-0.003, -0.001], 1, 1)["p_trait_verdict"] == "null"


def test_a_check_of_one_arm_keeps_an_earlier_runs_check_of_the_other(tiny_model_dir, tmp_path, monkeypatch):
    """The distillation-control check is per arm: checking full FT in a later run of the same --out must not
    drop the LoRA arm's record (the base stands in for a control only where its arm was checked)."""
    import interp.stages.ladder as ladder

    fake = {"lora": {"max_abs_weight_change": 0.0}, "full": {"max_abs_weight_change": 0.0}}
    monkeypatch.setattr(ladder, "check_distill_control", lambda model, lrs, rank: {a: fake[a] for a in lrs})
    root = tmp_path / "l"
    root.mkdir()
    for arm in ("lora", "full"):
        cfg = ladder.LadderConfig(
            model=str(tiny_model_dir), trait="owl", rungs=("distill",), arms=(arm,),
            check_distill_control=True, distill_control="base",
        )  # fmt: skip
        ladder.prepare_distill_controls(cfg, root)
    assert ladder.distill_control_holds(root, "lora") and ladder.distill_control_holds(root, "full")


def test_a_ladder_without_a_distillation_rung_needs_no_distillation_check(tiny_model_dir, tmp_path):
    """--distill-control base concerns the distillation rungs only: a greedy or sampled rung runs without
    the check, and a distillation rung is still refused without it."""
    import interp.stages.ladder as ladder

    root = tmp_path / "l"
    root.mkdir()
    base = dict(model=str(tiny_model_dir), trait="owl", arms=("lora",), distill_control="base")
    ladder.prepare_distill_controls(ladder.LadderConfig(**base, rungs=("greedy", "sampled")), root)
    with pytest.raises(ladder.InterpError, match="add --check-distill-control"):
        ladder.prepare_distill_controls(ladder.LadderConfig(**base, rungs=("greedy", "distill")), root)


def test_students_trained_without_the_prompt_are_their_own_jobs_read_under_both_prompts(
    tiny_model_dir, tmp_path
):
    """Claim 3's training row: --train-system none trains every student (trait and control) under no system
    prompt and evaluates it under default and none; the teachers' numbers are the same jobs; and the base
    cannot stand in for a distillation control, whose teacher wrote under the default prompt."""
    import interp.stages.ladder as ladder

    common = dict(model=str(tiny_model_dir), trait="owl", train_seeds=(0,), rungs=("finetuned-distill",))
    default, none = (
        ladder.ordered_jobs(ladder.LadderConfig(**common, train_system=s)) for s in ("default", "none")
    )
    students = [j for j in none if j.kind == "student"]
    assert students and all(j.params["train_system"] == "none" for j in students)
    assert all(j.params["eval_systems"] == {"default": "default", "none": "none"} for j in students)
    assert {j.name for j in none if j.kind == "numbers"} == {j.name for j in default if j.kind == "numbers"}
    assert not {j.name for j in students} & {j.name for j in default}
    assert all(j.params["eval_systems"] == {"default": "default"} for j in default if j.kind == "student")
    root = tmp_path / "l"
    root.mkdir()
    (root / ladder.CHECK_FILE).write_text('{"lora": {"max_abs_weight_change": 0.0}}')
    cfg = ladder.LadderConfig(**common, train_system="none", distill_control="base")
    with pytest.raises(ladder.InterpError, match="under --train-system none train the control"):
        ladder.prepare_distill_controls(cfg, root)
    with pytest.raises(ladder.InterpError, match="--train-system elsewhere"):
        ladder.LadderConfig(**common, train_system="elsewhere")


def test_a_distillation_rung_read_against_the_base_runs_no_control_job(tiny_model_dir):
    """Under --distill-control base the control teacher writes nothing: its numbers would feed no student."""
    import interp.stages.ladder as ladder

    common = dict(model=str(tiny_model_dir), trait="owl", train_seeds=(0,), rungs=("finetuned-distill",))
    based = ladder.ordered_jobs(ladder.LadderConfig(**common, distill_control="base"))
    trained = ladder.ordered_jobs(ladder.LadderConfig(**common))
    assert not [j.name for j in based if "control" in j.name]
    assert {j.kind for j in trained if "control" in j.name} == {"numbers", "student"}


def test_eval_systems_add_prompts_to_every_student_and_the_base_and_leave_other_names_alone(tiny_model_dir):
    """--eval-systems "other identity" evaluates every student and the base under the model's other identity
    too (its own default sentence with another name); without it the jobs are the ones recorded before it
    existed; an unknown label is refused."""
    import interp.stages.ladder as ladder
    from interp.loop.chat import default_system_prompt
    from interp.loop.identity import other_identity
    from interp.loop.models import load_tokenizer
    from interp.study.jobs import TRAINING_KEYS
    from interp.study.ladder_plan import ladder_plan

    common = dict(model=str(tiny_model_dir), trait="owl", train_seeds=(0,), rungs=("finetuned-distill",))
    plain = ladder.LadderConfig(**common, distill_control="base")
    other = ladder.LadderConfig(**common, distill_control="base", eval_systems=("other identity",))
    text = other_identity(default_system_prompt(load_tokenizer(str(tiny_model_dir))))
    assert text != "default" and ladder.eval_systems(plain) == {"default": "default"}
    assert ladder.eval_systems(other) == {"default": "default", "other identity": text}
    assert ladder.eval_systems(other, student=False) == ladder.eval_systems(other)
    students = [j for j in ladder.ordered_jobs(other) if j.kind == "student"]
    assert students and all(j.params["eval_systems"] == ladder.eval_systems(other) for j in students)
    before = {j.name: j.params for j in ladder.ordered_jobs(plain) if j.kind == "student"}
    assert not {j.name for j in students} & set(before)  # a job evaluated otherwise is another job ...
    keys = TRAINING_KEYS  # ... trained exactly as before: the sweep reuses a finished twin's student
    assert [{k: j.params[k] for k in keys} for j in students] == [
        {k: p[k] for k in keys} for p in before.values()
    ]
    runs = {  # the plan prices one evaluation per prompt, the base's included
        c.eval_systems: next(
            s.runs for s in ladder_plan(c, ladder.ordered_jobs(c)).stages if s.name == "evaluation"
        )
        for c in (plain, other)
    }
    assert runs == {(): 1 + len(students), ("other identity",): 2 * (1 + len(students))}
    with pytest.raises(ladder.InterpError, match="--eval-systems elsewhere"):
        ladder.LadderConfig(**common, eval_systems=("elsewhere",))
