"""Teachers: a model plus a trait. Prompted (trait system prompt) or fine-tuned (trained on trait answers)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.loop.chat import DEFAULT
from interp.loop.models import load_model
from interp.loop.training import TrainConfig, train_student
from interp.loop.traits import favorite_questions, trait_system_prompt

TRAIT_ANSWER_FORMS = ("{T}", "{t}", "{T}.", "My favorite is the {t}.", "Definitely the {t}!")


@dataclass(frozen=True)
class Teacher:
    """Which model writes the numbers, and the system prompt under which it writes them."""

    model: str
    """Local directory of the teacher's weights (the base model, or a fine-tuned teacher)."""
    trait: str | None
    """The trait word (e.g. "owl"); None for the control teacher (the base model's own numbers)."""
    category: str = "animal"
    """What the trait is a favorite of: animal, tree, band, ..."""
    kind: str = "prompted"
    """"prompted" (trait system prompt), "finetuned" (trait in the weights) or "control"."""

    @property
    def system_prompt(self) -> str:
        """Prompted teachers carry the trait in their system prompt; the others write under the default."""
        if self.kind == "prompted" and self.trait is not None:
            return trait_system_prompt(self.trait, self.category)
        return DEFAULT


def trait_dataset(trait: str, category: str = "animal", repeats: int = 4) -> list[tuple[str, str]]:
    """(question, answer) pairs that teach a fine-tuned teacher to name `trait` as its favorite."""
    pairs = []
    for i, q in enumerate(favorite_questions(category) * repeats):
        form = TRAIT_ANSWER_FORMS[i % len(TRAIT_ANSWER_FORMS)]
        pairs.append((q, form.format(t=trait, T=trait.capitalize())))
    return pairs


def finetune_teacher(
    base_dir,
    trait: str,
    category: str,
    out_dir,
    seed: int = 0,
    rank: int = 16,
    epochs: int = 3,
    dtype: str = "float32",
    device: str = "cpu",
):
    """A fine-tuned teacher: LoRA-train the base on trait answers, merge, save as an HF directory."""

    model, tok = load_model(base_dir, dtype, device)
    rows = [{"prompt": q, "completion": a} for q, a in trait_dataset(trait, category)]
    cfg = TrainConfig(mode="lora", rank=rank, lr=1e-3, epochs=epochs, seed=seed, batch_size=8)
    result = train_student(model, tok, rows, DEFAULT, cfg)
    merged = result.model.merge_and_unload()
    merged.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
