"""A plan before a run: each stage's memory and time, from the model's config.json alone (no weights).

Memory of one run of a stage, in bytes, by component:

  weights       every parameter in the dtype it is held in (a LoRA base as loaded, its adapter fp32
                under fp32 / bf16-mixed; a full-FT student's weights are its fp32 master copy under
                bf16-mixed)
  gradients     one per trainable weight, in its dtype
  optimizer     AdamW's two states per trainable weight, in its dtype
  step          the optimizer step's scratch: foreach AdamW on a GPU allocates one more copy of the
                trainable weights (sqrt of the second moment); on a CPU, two of the largest tensor
  activations   what the backward pass keeps per token and layer (below), or with gradient
                checkpointing each layer's input plus one layer recomputed
  logits        training: the unembedded answer positions in fp32 with their log-softmax and gradient;
                sampling: one decoding step's logits and the sampler's fp32 probabilities
  casts         bf16-mixed: the bf16 copies autocast makes of fp32 matmul weights, kept for the
                backward pass (one layer's under gradient checkpointing)
  kv_cache      sampling: keys and values of every row's prompt and answer
  overhead      the CUDA context and cuBLAS workspace (1 GiB on a GPU, 0 on a CPU)

The peak counts weights, optimizer states, gradients, KV cache and overhead, plus the larger of the
forward/backward working set (activations + logits + casts) and the optimizer step's scratch.
Time = FLOPs (`interp.plan.flops`) / the device's stated sustained rate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from interp.loop.generation import PREFILL_ROWS
from interp.loop.models import DTYPES
from interp.loop.precision import resolve_precision
from interp.loop.training import LORA_TARGETS
from interp.plan.flops import FlopCounts, backward_flops, forward_flops, sequence_attention_context
from interp.plan.shapes import ModelShape

GiB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZER_STATES = {"adamw": 2, "sgd": 1, "muon": 1}
"""Optimizer states per trainable weight (SGD: its momentum buffer)."""
ANSWER_TOKENS = 48
"""Tokens of a teacher's answer (its sampling cap: 10 three-digit numbers and separators, one token per
digit as in Qwen2.5)."""
PASS_RATE = 0.9
"""Share of sampled answers the filter keeps (Qwen2.5-7B: about 92%, by a public replication)."""
QUESTION_TOKENS = 64
"""Tokens of a rendered favourite-animal question under a system prompt (Qwen2.5: about 40-60)."""
LOGIT_SLACK = 16
"""Prompts in a right-padded batch differ in length: the loss unembeds from the shortest prompt's end."""
CUDA_OVERHEAD = GiB


@dataclass(frozen=True)
class Memory:
    """Bytes one run of a stage holds, by component (see the module docstring)."""

    weights: float = 0
    gradients: float = 0
    optimizer: float = 0
    step: float = 0
    activations: float = 0
    logits: float = 0
    casts: float = 0
    kv_cache: float = 0
    overhead: float = 0

    @property
    def peak(self) -> float:
        working = max(self.activations + self.logits + self.casts, self.step)
        return self.weights + self.optimizer + self.gradients + self.kv_cache + self.overhead + working

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"peak": self.peak}


@dataclass(frozen=True)
class TrainShape:
    """What one student's training looks like to the plan."""

    mode: str
    """lora or full."""
    rank: int
    """LoRA rank (ignored for full fine-tuning)."""
    dtype: str
    """The dtype the model is loaded in (float32, bfloat16, float16)."""
    precision: str = "auto"
    """Training precision, as `TrainConfig.precision`."""
    grad_checkpointing: bool = False
    """Whether each layer's activations are recomputed in the backward pass."""
    batch_size: int = 16
    """Examples per micro-batch."""
    prompt_tokens: int = 128
    """Tokens of the longest prompt in a batch (right padding makes every row this long plus an answer)."""
    answer_tokens: int = ANSWER_TOKENS
    """Tokens of the longest answer."""
    examples: int = 10000
    """Examples per epoch."""
    epochs: int = 3
    """Passes over the examples."""
    optimizer: str = "adamw"
    """Optimizer, for its states per weight (`OPTIMIZER_STATES`)."""
    targets: tuple[str, ...] = LORA_TARGETS
    """LoRA target modules."""
    logit_slack: int = LOGIT_SLACK
    """Unembedded positions beyond the answer (prompt lengths differ within a batch)."""

    @property
    def resolved_precision(self) -> str:
        return resolve_precision(self.precision, DTYPES[self.dtype])

    @classmethod
    def of(cls, cfg: Any, mode: str, rank: int, examples: int, **extra: Any) -> TrainShape:
        """A student of a training config (any with dtype, precision, grad_checkpointing, batch_size,
        plan_prompt_tokens and epochs) on `examples` examples; `extra` sets the other fields."""
        return cls(
            mode=mode, rank=rank, dtype=cfg.dtype, precision=cfg.precision,
            grad_checkpointing=cfg.grad_checkpointing, batch_size=cfg.batch_size,
            prompt_tokens=cfg.plan_prompt_tokens, examples=examples, epochs=cfg.epochs, **extra,
        )  # fmt: skip


def layer_activation_bytes(s: ModelShape, compute: int, lora_rank: int = 0, lora_cast: bool = False) -> float:
    """Bytes one decoder layer keeps for its backward pass, per token, computing in `compute`-byte floats:
    norm inputs and outputs and the linear layers' inputs (5 x d_model), q, k and v (k and v repeated to
    the query heads: a padded batch's mask keeps SDPA from grouped-query kernels) and the attention output
    (4 x d_query), the MLP's gate, SiLU, up and product (4 x d_mlp), the two RMSNorms' fp32 copies; a LoRA
    adapter adds its rank-r intermediates and, when its input is cast (an fp32 adapter on a bf16 base, or
    under autocast), its modules' inputs as cast for it."""
    kept = 5 * s.d_model + 4 * s.d_query + 4 * s.d_mlp
    if lora_rank:
        kept += len(s.linears()) * lora_rank + (
            sum(i for i, _, _ in s.linears().values()) if lora_cast else 0
        )
    return compute * kept + 2 * 4 * s.d_model


def training_memory(s: ModelShape, t: TrainShape, device: str) -> Memory:
    """Memory of one training run (see the module docstring for each component)."""
    precision, loaded = t.resolved_precision, DTYPE_BYTES[t.dtype]
    master = {"fp32": 4, "bf16-mixed": 4, "bf16-pure": 2}[precision]
    compute = 4 if precision == "fp32" else 2
    counts = s.params()
    trainable = counts.total if t.mode == "full" else s.lora_params(t.rank, t.targets)
    frozen = 0 if t.mode == "full" else counts.total
    frozen_bytes = {"fp32": 4, "bf16-pure": 2}.get(precision, loaded)
    width, rows = t.prompt_tokens + t.answer_tokens, t.batch_size
    tokens = rows * width
    cast = precision == "bf16-mixed" or frozen_bytes != master
    per_layer = layer_activation_bytes(s, compute, t.rank if t.mode == "lora" else 0, cast)
    if t.grad_checkpointing:  # each layer's input, in the residual stream's dtype (the embedding's)
        resid = master if t.mode == "full" else frozen_bytes
        activations = tokens * (s.n_layers * s.d_model * resid + per_layer)
    else:
        activations = tokens * s.n_layers * per_layer
    widest = max(max(i, o) for i, o, _ in s.linears().values())
    largest = widest * t.rank if t.mode == "lora" else max(counts.embed, widest * s.d_model)
    step = trainable * master if device == "cuda" else 2 * largest * master
    return Memory(
        weights=frozen * frozen_bytes + trainable * master,
        gradients=trainable * master,
        optimizer=OPTIMIZER_STATES[t.optimizer] * trainable * master,
        step=step,
        activations=activations,
        logits=rows * (t.answer_tokens + t.logit_slack) * s.vocab * (compute + 12),
        casts=_autocast_copies(s, t, precision, frozen_bytes),
        overhead=CUDA_OVERHEAD if device == "cuda" else 0,
    )


def _autocast_copies(s: ModelShape, t: TrainShape, precision: str, frozen_bytes: int) -> float:
    """bf16 copies of fp32 matmul weights that autocast makes and the backward pass keeps: a LoRA adapter's,
    and every matmul weight's when the weights are fp32 (full FT's masters, a LoRA base loaded in fp32); one
    layer's (and the unembedding's) under gradient checkpointing."""
    if precision != "bf16-mixed":
        return 0
    c = s.params()
    lora = s.lora_params(t.rank, t.targets) if t.mode == "lora" else 0
    if t.mode == "lora" and frozen_bytes != 4:
        return 2 * lora
    return 2 * ((s.layer_params() if t.grad_checkpointing else c.layers) + c.head + lora)


def flop_counts(s: ModelShape, trainable: str = "none", rank: int = 0) -> FlopCounts:
    """`interp.plan.flops` counts of a model of shape `s`: nothing, a LoRA adapter or all of it trains."""
    c = s.params()
    lora = s.lora_params(rank) if trainable == "lora" else 0
    body = c.body + lora
    trains = {"none": 0, "lora": lora, "full": body}[trainable]
    return FlopCounts(body, c.head, trains, c.head if trainable == "full" else 0, s.n_layers, s.d_query)


def training_flops(s: ModelShape, t: TrainShape) -> float:
    """FLOPs of one training run: every example's prompt and answer, the answer's positions unembedded
    (the layers' forward pass twice under gradient checkpointing)."""
    counts = flop_counts(s, "full" if t.mode == "full" else "lora", t.rank)
    n = t.examples * t.epochs
    width = t.prompt_tokens + t.answer_tokens
    attended = sequence_attention_context(width)
    flops = backward_flops(counts, width, attended, t.answer_tokens + 1)
    if t.grad_checkpointing:  # the layers' forward pass runs twice
        flops += 2.0 * counts.body * width + counts.attention(attended)
    return n * flops


@dataclass(frozen=True)
class SampleShape:
    """What one sampling run (a teacher writing numbers, an evaluation) looks like to the plan."""

    dtype: str
    """The dtype the model is loaded in."""
    rows: int
    """Rows decoded together (prompts x samples per prompt)."""
    prompts_per_batch: int
    """Distinct prompts per batch (their prefill is shared by their samples)."""
    prompt_tokens: int
    """Tokens of the longest prompt."""
    new_tokens: int
    """Most tokens sampled per answer."""
    answers: int
    """Answers sampled in the whole run."""


def sampling_memory(s: ModelShape, g: SampleShape, device: str, models: int = 1) -> Memory:
    """Memory of sampling with a KV cache: `models` copies of the weights as loaded."""
    b = DTYPE_BYTES[g.dtype]
    kv = g.rows * (g.prompt_tokens + g.new_tokens) * 2 * s.n_layers * s.d_kv * b
    prefill = min(g.prompts_per_batch, PREFILL_ROWS) * g.prompt_tokens * (2 * s.d_mlp + 4 * s.d_model) * b
    return Memory(
        weights=models * s.params().total * b,
        activations=prefill,
        logits=g.rows * s.vocab * (b + 8),
        kv_cache=kv,
        overhead=CUDA_OVERHEAD if device == "cuda" else 0,
    )


def sampling_flops(s: ModelShape, g: SampleShape) -> float:
    """FLOPs of every answer's prompt (its prefill shared by its samples) and new tokens."""
    counts = flop_counts(s)
    samples = g.rows / g.prompts_per_batch
    prompts = g.answers / samples
    prefill = prompts * forward_flops(counts, g.prompt_tokens, sequence_attention_context(g.prompt_tokens), 1)
    attended = sequence_attention_context(g.new_tokens, cached=g.prompt_tokens)
    return prefill + g.answers * forward_flops(counts, g.new_tokens, attended)


def hooked_memory(
    s: ModelShape, dtype: str, prompts: int, prompt_tokens: int, rows: int, device: str
) -> Memory:
    """Patching and attribution between two bridges (recipient and donor weights): the donor's cached
    activations and their gradients at three sites, one attribution backward pass through the recipient,
    and a chunk of `rows` patched forward rows."""
    b = DTYPE_BYTES[dtype]
    tokens = prompts * prompt_tokens
    cached = 2 * tokens * s.n_layers * 3 * s.d_model * b
    backward = tokens * s.n_layers * layer_activation_bytes(s, b)
    return Memory(
        weights=2 * s.params().total * b,
        activations=cached + backward + rows * prompt_tokens * (2 * s.d_mlp + 4 * s.d_model) * b,
        logits=(prompts + rows) * s.vocab * (b + 8),
        overhead=CUDA_OVERHEAD if device == "cuda" else 0,
    )


def hooked_flops(
    s: ModelShape,
    prompts: int,
    prompt_tokens: int,
    sites: int = 3,
    directions: int = 2,
    head_layers: int = 2,
    columns: int | None = None,
) -> float:
    """Exact layer grids at `sites` sites in each direction, with `columns` columns per layer (None: one
    per position, the layer x position grid), and head x position patching at `head_layers` layers: one
    cell per (layer or head, column), each a forward pass of the prompts from its layer on (half the model
    on average)."""
    counts = flop_counts(s)
    per_layer = prompt_tokens if columns is None else columns
    cells = directions * (sites * s.n_layers * per_layer + head_layers * s.n_heads * prompt_tokens)
    one = forward_flops(
        counts, prompts * prompt_tokens, prompts * sequence_attention_context(prompt_tokens), prompts
    )
    return cells * one / 2


@dataclass(frozen=True)
class Stage:
    """One kind of run in a plan: its memory, its FLOPs per run, how many runs, and what trains."""

    name: str
    kind: str
    """train-full, train-lora, sample or hooked (which advice applies when it does not fit)."""
    memory: Memory
    flops: float
    runs: int = 1
    params: int = 0
    trainable: int = 0
    compute_dtype: str = "float32"
    """The dtype its matmuls run in: a CPU without native bf16 runs bfloat16 far slower than float32."""


def training_stage(name: str, s: ModelShape, t: TrainShape, device: str, runs: int = 1) -> Stage:
    """A student's training as a plan stage."""
    trainable = s.params().total if t.mode == "full" else s.lora_params(t.rank, t.targets)
    memory = training_memory(s, t, device)
    compute = "bfloat16" if t.resolved_precision.startswith("bf16") else t.dtype
    return Stage(
        name, f"train-{t.mode}", memory, training_flops(s, t), runs, s.params().total, trainable, compute
    )


def sampling_stage(name: str, s: ModelShape, g: SampleShape, device: str, runs: int = 1) -> Stage:
    """Sampling answers (a teacher's numbers, an evaluation) as a plan stage."""
    memory, flops = sampling_memory(s, g, device), sampling_flops(s, g)
    return Stage(name, "sample", memory, flops, runs, s.params().total, compute_dtype=g.dtype)


def hooked_stage(
    name: str, s: ModelShape, dtype: str, prompts: int, prompt_tokens: int, device: str, runs: int = 1, **grid
) -> Stage:
    """Activation patching and attribution between two bridges (a student and its base) as a plan stage;
    `runs` students; `grid`: `hooked_flops`'s sites, directions, head_layers and columns."""
    memory = hooked_memory(s, dtype, prompts, prompt_tokens, 256, device)
    flops = hooked_flops(s, prompts, prompt_tokens, **grid)
    return Stage(name, "hooked", memory, flops, runs, 2 * s.params().total, compute_dtype=dtype)
