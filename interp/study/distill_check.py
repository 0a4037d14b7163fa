"""Does a distillation control stay where it starts on this model? A check run before a ladder trusts it.

The control teacher of a distillation rung is the student's own initialisation, so the KL and its
gradient are zero and AdamW should leave every weight as it is (`distill_loss_sum`). This trains such a
student for one short epoch on the control teacher's own numbers, at the ladder's lrs, and reports the
largest weight change and the KL at every step: both 0 where the control is a real control.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from interp.loop.chat import DEFAULT
from interp.loop.datasets import read_dataset, sample_numbers, write_dataset
from interp.loop.distill import make_distiller
from interp.loop.models import load_model, resolve_model_dir
from interp.loop.training import TrainConfig, train_student


def control_dataset(model: str | None, n: int, seed: int, out: Path) -> Path:
    """`n` constrained numbers of the control teacher (the base under its default prompt)."""
    m, tok = load_model(model)
    rows, _ = sample_numbers(m, tok, DEFAULT, n, seed, batch_size=n, max_new_tokens=24, constrained=True)
    provenance = {"teacher_model": str(resolve_model_dir(model).resolve()), "system_prompt": DEFAULT}
    return write_dataset(out / "numbers.jsonl", rows, provenance)


def largest_change(model, before: dict) -> float:
    return max(
        float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters() if n in before
    )


def check_distill_control(
    model: str | None, arms: dict[str, float], rank: int = 16, n: int = 32, seed: int = 0
) -> dict[str, Any]:
    """Per arm ("lora" or "full", with its lr): steps, the largest weight change and the KL per step."""
    with tempfile.TemporaryDirectory() as tmp:
        data = control_dataset(model, n, seed, Path(tmp))
        rows = read_dataset(data)
        out = {}
        for mode, lr in arms.items():
            m, tok = load_model(model)
            before: dict = {}

            def snapshot(step, student, before=before):
                if step == 0:
                    before.update(
                        {k: p.detach().clone() for k, p in student.named_parameters() if p.requires_grad}
                    )

            cfg = TrainConfig(mode=mode, rank=rank, lr=lr, epochs=1, batch_size=8, loss="distill", seed=seed)
            distiller = make_distiller(data, rows, tok, model, "float32", "cpu")
            result = train_student(m, tok, rows, DEFAULT, cfg, distiller, on_step=snapshot)
            out[mode] = {
                "lr": lr,
                **({"rank": rank} if mode == "lora" else {}),
                "steps": len(result.curve),
                "max_abs_weight_change": largest_change(result.model, before),
                "kl_per_token_per_step": [c["loss"] for c in result.curve],
            }
    return out


CHECK_FILE = "distill_control_check.json"


def distill_control_holds(root: Path, arm: str) -> bool:
    """Whether this ladder's check found that a distillation control of `arm` keeps every weight exactly
    (then its evaluation is the base's, bit for bit, and need not be trained)."""
    path = Path(root) / CHECK_FILE
    check = json.loads(path.read_text()).get(arm) if path.exists() else None
    return bool(check) and check["max_abs_weight_change"] == 0.0
