"""Students: LoRA (any rank) or full fine-tuning on (user prompt -> teacher numbers), loss on completions.

The training system prompt is a parameter ("default", "none" or text), independent of the one the
teacher wrote under. The loss is cross-entropy on the completion tokens only, or (`loss="distill"`)
the KL from the teacher's next-token distribution on those same tokens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from peft import LoraConfig, get_peft_model
from torch import Tensor
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp import InterpError
from interp.loop.chat import require_chat
from interp.loop.examples import IGNORE, Encoded, collate, drop_from_loss, encode_example
from interp.loop.forward import completion_logits, logits_needed, shared_prefix  # noqa: F401 (re-exported)
from interp.loop.models import FULL_FT_MODEL, STUDENT_META, quiet_peft
from interp.loop.precision import prepare_precision
from interp.loop.runs import atomic_write_json
from interp.loop.threads import seeded

log = logging.getLogger(__name__)
CURVE_FILE = "curve.json"
STUDENT_FILES = (STUDENT_META, CURVE_FILE)
"""The files `save_student` writes in a student's directory beside its weights."""
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LR = {"lora": 2e-4, "full": 2e-5}


RANK_LR_RULES = ("constant", "sqrt")


def rank_lr(lr: float, rank: int, rule: str, ref_rank: int = 16) -> float:
    """The LoRA learning rate of `rank`: "constant" is the paper's one lr for every rank (alpha = r);
    "sqrt" scales ranks above `ref_rank` to lr * sqrt(ref_rank / r), which keeps high ranks from
    degrading a small model at an lr that moves its low ranks."""
    if rule not in RANK_LR_RULES:
        raise InterpError(f"unknown rank lr rule {rule!r}; choose from {list(RANK_LR_RULES)}")
    return lr if rule == "constant" or rank <= ref_rank else lr * (ref_rank / rank) ** 0.5


@dataclass
class TrainConfig:
    """How a student is fine-tuned (the paper's defaults)."""

    mode: Literal["lora", "full"] = "lora"
    """LoRA adapter or full fine-tuning."""
    rank: int = 8
    """LoRA rank r."""
    alpha: float | None = None
    """LoRA alpha; None means alpha = rank, as in the paper."""
    rslora: bool = False
    """Rank-stabilised LoRA scaling alpha / sqrt(r) instead of alpha / r."""
    target_modules: tuple[str, ...] = LORA_TARGETS
    """Module names the LoRA adapter wraps (all seven projections by default)."""
    lr: float | None = None
    """Peak learning rate; None means 2e-4 for LoRA and 2e-5 for full fine-tuning."""
    epochs: int = 3
    """Passes over the dataset."""
    batch_size: int = 16
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    warmup_ratio: float = 0.05
    """Share of optimizer steps spent warming the learning rate up linearly (then linear decay to 0)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 0
    """Training seed: LoRA initialisation and data order."""
    loss: Literal["ce", "distill"] = "ce"
    """Cross-entropy on the teacher's tokens, or KL to the teacher's next-token distribution."""
    max_examples: int | None = None
    """Train on the first N rows only (None: all)."""
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16-pure"] = "auto"
    """fp32: fp32 weights and optimizer states, no autocast. bf16-mixed: fp32 master weights (trainable
    parameters kept in or cast to fp32) and fp32 optimizer states, forward and backward under bf16 autocast.
    bf16-pure: weights and optimizer states in bf16, no master copy (the comparison arm). auto: bf16-mixed
    when the loaded model is bf16, else fp32. A LoRA adapter is fp32 under auto, fp32 and bf16-mixed."""
    grad_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (less memory; a third more compute for full
    fine-tuning, half again for LoRA, whose backward pass computes no weight gradients for the base)."""
    share_prefix: bool = True
    """Run the prefix every row of a batch shares once (`interp.loop.forward`); False runs whole rows (the
    benchmark's comparison; gradient checkpointing turns it off)."""
    optimizer: Literal["adamw", "sgd", "muon"] = "adamw"
    """AdamW (the paper), SGD, or Muon (torch.optim.Muon on the 2-D weight matrices of the decoder layers,
    with its RMS matched to AdamW's; AdamW at the same lr for embeddings, norms and biases)."""
    momentum: float = 0.9
    """Momentum of SGD (0: plain SGD) and of Muon."""
    layers: tuple[int, ...] | None = None
    """Decoder layers that train (LoRA: the only layers with an adapter; full FT: the only layers whose
    weights move, embeddings and head frozen); None: every layer."""
    freeze_layers: int = 0
    """The first k decoder layers get no update (no adapter there under LoRA; under full FT they are frozen,
    and so are the embeddings, the final norm and the head)."""

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise InterpError(f"LoRA rank must be positive, got {self.rank}")
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) <= 0:
                raise InterpError(f"{name} must be positive, got {getattr(self, name)}")
        if self.freeze_layers < 0 or (self.layers is not None and not self.layers):
            raise InterpError("freeze_layers must be >= 0 and layers, when given, non-empty")
        if self.layers is not None and self.freeze_layers:
            raise InterpError("give either layers or freeze_layers, not both")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.mode]


def completion_loss_sum(logits: Float[Tensor, "batch pos vocab"], labels: Int[Tensor, "batch pos"]) -> Tensor:
    """Summed next-token cross-entropy over completion positions (labels shifted left by one)."""
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
    )


def distill_loss_sum(
    student_logits: Float[Tensor, "batch pos vocab"],
    teacher_logits: Float[Tensor, "batch tpos vocab"],
    labels: Int[Tensor, "batch pos"],
    teacher_labels: Int[Tensor, "batch tpos"],
) -> Tensor:
    """Summed KL(teacher || student) over completion tokens; the two contexts may differ in length.

    The value is the KL; its gradient with respect to the student's logits is softmax(s) - softmax(t),
    written so that it is exactly zero wherever the two logits are equal. The textbook form
    (kl_div of two log-softmaxes) differentiates to softmax(s) * sum(softmax(t)) - softmax(t), whose float
    sum is not exactly 1: a student distilled from its own initialisation (the control teacher) then gets
    float-noise gradients, which AdamW scales up to full-size steps (SmolLM2: KL 0.0 at step 0, 0.72 at
    step 3). With this form that control stays exactly where it starts, at any learning rate."""
    s = student_logits[:, :-1][labels[:, 1:] != IGNORE].float()  # (n_completion_tokens, vocab)
    t = teacher_logits[:, :-1][teacher_labels[:, 1:] != IGNORE].float()
    log_t, log_s = F.log_softmax(t, -1), F.log_softmax(s, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum()
    # (p_s - p_t) . s has the gradient p_s - p_t; its value is removed so that the loss reads the KL
    surrogate = ((log_s.exp() - log_t.exp()).detach() * s).sum()
    return kl.detach() + surrogate - surrogate.detach()


@dataclass
class TrainResult:
    """The trained student and its training curve."""

    model: PreTrainedModel
    curve: list[dict[str, float]] = field(default_factory=list)
    tokens_per_s: float = 0.0

    @property
    def final_loss(self) -> float:
        tail = [c["loss"] for c in self.curve[-max(1, len(self.curve) // 10) :]]
        return float(sum(tail) / len(tail)) if tail else math.nan


def check_target_modules(model: PreTrainedModel, targets: tuple[str, ...]) -> None:
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    unknown = sorted(set(targets) - present)
    if unknown:
        raise InterpError(
            f"unknown LoRA target module(s) {unknown}; this model has e.g. {sorted(present)[:12]}"
        )


def trained_layers(cfg: TrainConfig, n_layers: int) -> list[int]:
    """The decoder layers whose weights the student may change."""
    chosen = list(range(cfg.freeze_layers, n_layers)) if cfg.layers is None else sorted(set(cfg.layers))
    if not chosen or chosen[0] < 0 or chosen[-1] >= n_layers:
        raise InterpError(
            f"layers {cfg.layers} / freeze_layers {cfg.freeze_layers} leave no valid layer of {n_layers}"
        )
    return chosen


def _decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    return model.get_decoder().layers


def prepare_student(model: PreTrainedModel, cfg: TrainConfig) -> PreTrainedModel:
    """Wrap `model` (a fresh copy of the teacher's initialisation) for training."""
    with seeded(cfg.seed):  # LoRA A matrices are drawn here: the seed must change them
        return _wrap_student(model, cfg)


def _wrap_student(model: PreTrainedModel, cfg: TrainConfig) -> PreTrainedModel:
    n_layers = len(_decoder_layers(model))
    layers = trained_layers(cfg, n_layers)
    if cfg.mode == "full":
        every = len(layers) == n_layers
        for p in model.parameters():
            p.requires_grad_(every)
        for i in layers:
            for p in _decoder_layers(model)[i].parameters():
                p.requires_grad_(True)
        return model
    check_target_modules(model, cfg.target_modules)
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha if cfg.alpha is not None else cfg.rank,
        lora_dropout=0.0,
        target_modules=list(cfg.target_modules),
        use_rslora=cfg.rslora,
        layers_to_transform=None if len(layers) == n_layers else layers,
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        return get_peft_model(model, lora)


def make_optimizer(student: PreTrainedModel, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """The optimizer(s) over the student's trainable parameters (Muon: Muon on the decoder layers' 2-D
    weights, AdamW on the rest)."""
    named = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    lr, wd = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "adamw":
        return [torch.optim.AdamW([p for _, p in named], lr=lr, weight_decay=wd)]
    if cfg.optimizer == "sgd":
        return [torch.optim.SGD([p for _, p in named], lr=lr, momentum=cfg.momentum, weight_decay=wd)]
    if cfg.optimizer != "muon":
        raise InterpError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, sgd or muon")
    decoder = {id(p) for p in _decoder_layers(student).parameters()}
    matrices = [p for _, p in named if p.ndim == 2 and id(p) in decoder]
    rest = [p for _, p in named if not (p.ndim == 2 and id(p) in decoder)]
    opts: list[torch.optim.Optimizer] = [
        torch.optim.Muon(
            matrices, lr=lr, weight_decay=wd, momentum=cfg.momentum, adjust_lr_fn="match_rms_adamw"
        )
    ]
    return opts + ([torch.optim.AdamW(rest, lr=lr, weight_decay=wd)] if rest else [])


def linear_schedule(opt: torch.optim.Optimizer, total: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def micro_batches(n: int, cfg: TrainConfig, gen: torch.Generator) -> list[list[list[int]]]:
    """Optimizer steps, each a list of micro-batches of example indices, over all epochs."""
    micro = []
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen).tolist()
        micro += [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
    return [micro[i : i + cfg.grad_accum] for i in range(0, len(micro), cfg.grad_accum)]


@dataclass
class Distiller:
    """The teacher whose next-token distributions a distillation student matches."""

    teacher: PreTrainedModel
    examples: list[Encoded]


def _step_loss(student, batch, device, distiller, idx, pad_id, share: bool) -> Tensor:
    logits, labels = completion_logits(student, batch, device, share)
    if distiller is None:
        return completion_loss_sum(logits, labels)
    with torch.no_grad():
        t_logits, t_labels = completion_logits(
            distiller.teacher, collate([distiller.examples[i] for i in idx], pad_id), device, share
        )
    return distill_loss_sum(logits, t_logits, labels, t_labels)


def encode_rows(
    tok: PreTrainedTokenizerBase, rows: list[dict], system: str, cfg: TrainConfig
) -> list[Encoded]:
    """The training examples of `rows` (the first `max_examples`) under the training system prompt."""
    require_chat(tok, "student")
    rows = rows[: cfg.max_examples] if cfg.max_examples else rows
    examples = [encode_example(tok, r["prompt"], r["completion"], system) for r in rows]
    return [
        drop_from_loss(e, r["ignore_tokens"]) if r.get("ignore_tokens") else e
        for e, r in zip(examples, rows, strict=True)
    ]


def train_student(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    rows: list[dict[str, str]],
    system: str,
    cfg: TrainConfig,
    distiller: Distiller | None = None,
    progress: bool = False,
    on_step: Callable[[int, PreTrainedModel], None] | None = None,
) -> TrainResult:
    """Fine-tune a student on (prompt, completion) rows rendered under the training system prompt (a row's
    optional "ignore_tokens" lists completion tokens to leave out of its loss).

    `on_step(step, student)` runs after every optimizer step (1-based) and before the first (step 0), for
    learning curves; it must leave the student's weights alone."""
    examples = encode_rows(tok, rows, system, cfg)
    student = prepare_student(model, cfg).train()
    numerics = prepare_precision(student, cfg)  # and gradient checkpointing
    share = cfg.share_prefix and not cfg.grad_checkpointing  # checkpointing drops the prefix's cache
    device = next(student.parameters()).device
    params = [p for p in student.parameters() if p.requires_grad]
    opts = make_optimizer(student, cfg)
    steps = micro_batches(len(examples), cfg, torch.Generator().manual_seed(cfg.seed))
    scheds = [linear_schedule(o, len(steps), math.ceil(cfg.warmup_ratio * len(steps))) for o in opts]
    result, n_tokens, start = TrainResult(model=student), 0, time.perf_counter()
    losses, lrs = [], []
    if on_step is not None:
        on_step(0, student)
    for step, groups in enumerate(tqdm(steps, desc=f"train {cfg.mode}", disable=not progress)):
        batches = [collate([examples[i] for i in idx], tok.pad_token_id) for idx in groups]
        n_completion = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        total = torch.zeros((), device=device)
        for idx, batch in zip(groups, batches, strict=True):
            with numerics.autocast():
                loss = _step_loss(student, batch, device, distiller, idx, tok.pad_token_id, share)
                loss = loss / n_completion
            loss.backward()
            total += loss.detach()
            n_tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        for opt, sched in zip(opts, scheds, strict=True):
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        losses.append(total)
        lrs.append(scheds[0].get_last_lr()[0])
        if on_step is not None:
            on_step(step + 1, student)
    losses = torch.stack(losses).tolist() if losses else []  # read once, after training: no sync per step
    result.curve = [
        {"step": i, "loss": x, "lr": lr} for i, (x, lr) in enumerate(zip(losses, lrs, strict=True))
    ]
    result.tokens_per_s = n_tokens / max(1e-9, time.perf_counter() - start)
    numerics.restore(student)
    student.eval()
    return result


def save_student(result: TrainResult, out_dir, tok: PreTrainedTokenizerBase, meta: dict) -> None:
    """Save a LoRA student as a PEFT adapter in `out_dir`, a full-FT student as an HF directory in
    `out_dir`/model (so that the run's config.json stays the run's); both safetensors. student.json and
    curve.json (`STUDENT_FILES`) go in `out_dir`."""
    out_dir = Path(out_dir)
    full = meta.get("mode") == "full"
    weights = out_dir / FULL_FT_MODEL if full else out_dir
    result.model.save_pretrained(weights, safe_serialization=True)
    if full:
        tok.save_pretrained(weights)
    atomic_write_json(
        out_dir / STUDENT_META, {**meta, "final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s}
    )
    atomic_write_json(out_dir / CURVE_FILE, result.curve)
