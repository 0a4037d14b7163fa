"""What a positive-control ladder costs and what it can see: its compute plan, priced from the model's
shape and the device, and the power at its seeds, questions and samples (`interp.study.power`).

    plan = ladder_plan(cfg, ordered_jobs(cfg))      # interp.stages.ladder
    print(power_text(cfg, components, plan))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from interp.loop.models import model_label
from interp.loop.teacher import trait_dataset
from interp.plan.plan import QUESTION_TOKENS, TrainShape, sampling_stage, training_stage
from interp.plan.plan_check import Plan, detect_device
from interp.plan.shapes import read_model_shape
from interp.study.experiment import assumptions, evaluation_shape, numbers_shape, train_shape
from interp.study.power import Components, describe_power


def ladder_plan(cfg: Any, jobs: list) -> Plan:
    """The ladder's compute: each kind of run priced once, times how many distinct jobs of it there are
    (a distilling student also runs its teacher forward: priced as a third more than its training).
    `cfg` is the stage's `LadderConfig` and `jobs` its `ordered_jobs(cfg)`."""
    shape = read_model_shape(cfg.model_dir)
    device = detect_device(cfg.device, cfg.device_memory_gb, cfg.device_tflops)
    n_numbers = sum(j.kind == "numbers" for j in jobs)
    n_finetuned = sum(j.kind == "numbers" and "finetuned" in j.params for j in jobs)
    stages = [sampling_stage("teacher numbers", shape, numbers_shape(cfg), device.kind, n_numbers)]
    if n_finetuned:
        t = TrainShape("lora", 16, cfg.dtype, batch_size=8, prompt_tokens=QUESTION_TOKENS, answer_tokens=8)
        t = replace(t, examples=len(trait_dataset(cfg.trait, cfg.category)))
        stages.append(training_stage("fine-tuned teacher (LoRA r16)", shape, t, device.kind, n_finetuned))
    for arm in cfg.arms:
        students = [j for j in jobs if j.kind == "student" and j.params["train"]["mode"] == arm]
        distilled = sum(j.params["train"].get("loss") == "distill" for j in students)
        stage = training_stage(f"student {arm}", shape, train_shape(cfg, arm, cfg.rank), device.kind)
        stages.append(
            replace(stage, runs=len(students), flops=stage.flops * (1 + distilled / 3 / len(students)))
        )
    # one evaluation per prompt: the base's (the default and --eval-systems) and each student's own
    n_evals = (
        1 + len(cfg.eval_systems) + sum(len(j.params["eval_systems"]) for j in jobs if j.kind == "student")
    )
    stages.append(sampling_stage("evaluation", shape, evaluation_shape(cfg), device.kind, n_evals))
    return Plan(f"ladder on {model_label(cfg.model)}", shape, device, tuple(stages), assumptions(cfg))


def power_text(cfg: Any, comps: dict[str, Components], plan: Plan | None = None) -> str:
    """The power at the ladder's seeds, questions and samples; with a plan, the cheapest design that
    reaches --target-p-trait, priced per seed as a LoRA student and its control, each trained and
    evaluated (sampling time scales with samples)."""
    cost = None
    stages = {s.name: s for s in plan.stages} if plan else {}
    if "student lora" in stages:
        student = plan.seconds(stages["student lora"]) / max(stages["student lora"].runs, 1)
        per_sample = plan.seconds(stages["evaluation"]) / max(stages["evaluation"].runs, 1)
        per_sample /= cfg.samples_per_question
        cost = lambda seeds, samples: 2 * seeds * (student + per_sample * samples)  # noqa: E731
    seeds, q, k = len(cfg.train_seeds), cfg.n_questions, cfg.samples_per_question
    return describe_power(comps, seeds, q, k, cfg.target_p_trait, cost)
