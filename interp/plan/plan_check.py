"""A run's plan as a table, the device it is checked against, and the check that stops a run before it
loads a model that would not fit.

Each experiment builds its stages from `interp.plan.plan` and calls `gate(plan, cfg)` first: under
`--plan` it prints the table and stops; otherwise a stage that does not fit the device's memory is one
error that says what to change (unless `--ignore-plan`). The device's memory is `--device-memory-gb`,
else the free memory of the GPU (`torch.cuda.mem_get_info`), else the machine's available RAM for a CPU
run; its rate is `--device-tflops`, else a conservative figure for the device, printed with the plan.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interp import InterpError
from interp.loop.threads import torch_threads
from interp.plan.plan import GiB, Stage
from interp.plan.shapes import ModelShape

GPU_TFLOPS = {"H200": 300.0, "H100": 300.0, "A100": 100.0}
"""Sustained bf16 TFLOP/s assumed for a GPU by name: about 30% of its dense peak (989, 989, 312)."""
DEFAULT_TFLOPS = {"cpu": 0.1, "cuda": 100.0, "other GPU": 50.0}
"""Assumed where the GPU is not named above: "cuda" when this machine has no GPU to ask (an A100's 30%),
"other GPU" for a GPU it can name but does not know; a 2-core CPU sustains ~0.13-0.17 fp32."""


@dataclass
class PlanFlags:
    """Flags every experiment shares for its plan (a mixin of the experiment configs)."""

    plan: bool = False
    """Print each stage's memory (weights, gradients, optimizer states, activations, KV cache, peak) and
    estimated time from the model's config.json alone (no weights are read), then stop."""
    device_memory_gb: float | None = None
    """Device memory in GiB for the plan's fit check (default: the GPU's free memory from
    torch.cuda.mem_get_info; a CPU run's available RAM)."""
    device_tflops: float | None = None
    """Sustained TFLOP/s the plan's time estimates assume (default: a conservative figure for the device,
    printed with the plan)."""
    ignore_plan: bool = False
    """Run even when the plan says a stage does not fit the device's memory."""
    plan_prompt_tokens: int = 128
    """Tokens of the longest number prompt the plan assumes (Qwen2.5 writes one token per digit: a number
    prompt under the default system prompt is 85-120 tokens with such a tokenizer)."""


@dataclass(frozen=True)
class Device:
    """What a plan is checked against: memory in bytes (None: unknown) and a sustained FLOP rate."""

    kind: str
    memory: float | None
    memory_source: str
    tflops: float
    tflops_source: str
    bf16_factor: float | None = None
    """bf16 matmul rate / fp32 rate; None: read off the CPU (its flags, else a timed matmul), 1 on a GPU."""

    def low_precision_factor(self) -> tuple[float, str]:
        """How much slower bf16/fp16 matmuls run here than the stated fp32 rate, and why."""
        if self.bf16_factor is not None:
            return self.bf16_factor, "stated"
        return cpu_bf16_factor() if self.kind == "cpu" else (1.0, "a GPU: its rate is a bf16 rate")


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's flags name a native bf16 instruction set."""
    flags = {
        f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split()
    }
    return any(f in flags for f in NATIVE_BF16_FLAGS)


@functools.cache
def cpu_bf16_factor() -> tuple[float, str]:
    """bf16 / fp32 matmul rate on this CPU: 1 where its flags name native bf16; else timed once per process
    (a 512 x 512 matmul in each dtype on one thread; an AVX2 CPU without bf16 ran bf16 at about 1% of fp32)."""
    info = Path("/proc/cpuinfo")
    if info.exists() and native_bf16(info.read_text()):
        return 1.0, "native bf16 in the CPU flags"
    rates = {dt: _matmul_rate(dt) for dt in (torch.float32, torch.bfloat16)}
    factor = min(1.0, rates[torch.bfloat16] / rates[torch.float32])
    return factor, f"measured: bf16 matmuls at {factor:.3g}x fp32 (no native bf16 in the CPU flags)"


def _matmul_rate(dtype: torch.dtype, n: int = 512, reps: int = 3) -> float:
    """FLOP/s of one n x n matmul on one thread, best of `reps` (a second process on the other core, or
    a small matmul's overhead, would otherwise blur the ratio); the caller's thread count is restored."""
    with torch_threads(1):
        a = torch.randn(n, n).to(dtype)
        a @ a  # warm up
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / max(best, 1e-9)


def available_ram() -> float | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return 1024.0 * int(line.split()[1])
    except OSError:
        return None
    return None


def _gpu_rate(name: str) -> tuple[float, str]:
    for key, rate in GPU_TFLOPS.items():
        if key in name:
            return rate, f"default for an {key}: ~30% of its dense bf16 peak"
    return DEFAULT_TFLOPS["other GPU"], f"default for a GPU the plan does not know ({name})"


def detect_device(device: str, memory_gb: float | None = None, tflops: float | None = None) -> Device:
    """The device a run will use, its memory and its assumed rate (stated values win)."""
    kind = device.split(":")[0]
    visible = kind == "cuda" and torch.cuda.is_available()
    name = torch.cuda.get_device_name(torch.device(device)) if visible else kind
    if memory_gb is not None:
        memory, msrc = memory_gb * GiB, "stated: --device-memory-gb"
    elif visible:
        memory, msrc = float(torch.cuda.mem_get_info(torch.device(device))[0]), f"free on {name}"
    elif kind == "cpu":
        memory, msrc = available_ram(), "available RAM"
    else:
        memory, msrc = None, "unknown: no GPU here (--device-memory-gb gives it)"
    if tflops is not None:
        return Device(kind, memory, msrc, tflops, "stated: --device-tflops")
    if visible:
        return Device(kind, memory, msrc, *_gpu_rate(name))
    note = "~30% of an A100's bf16 peak" if kind == "cuda" else "fp32 matmuls on 2 cores"
    return Device(kind, memory, msrc, DEFAULT_TFLOPS.get(kind, DEFAULT_TFLOPS["cuda"]), f"default: {note}")


@dataclass(frozen=True)
class Plan:
    """Every stage of a run on one model and one device, and what the numbers assume."""

    title: str
    shape: ModelShape
    device: Device
    stages: tuple[Stage, ...]
    assumptions: str

    def fits(self, stage: Stage) -> bool | None:
        return None if self.device.memory is None else stage.memory.peak <= self.device.memory

    def misfits(self) -> list[Stage]:
        return [s for s in self.stages if self.fits(s) is False]

    def seconds(self, stage: Stage) -> float:
        """A stage's compute time; a bf16 or fp16 stage at the device's low-precision rate."""
        factor = self.device.low_precision_factor()[0] if stage.compute_dtype in LOW_PRECISION else 1.0
        return stage.runs * stage.flops / (self.device.tflops * factor * 1e12)

    def render(self) -> str:
        c, d = self.shape.params(), self.device
        memory = "unknown" if d.memory is None else f"{d.memory / GiB:.1f} GiB"
        head = [
            f"Plan: {self.title}",
            f"  model: {self.shape.describe()}; {_count(c.total)} parameters",
            f"  device: {d.kind}, {memory} ({d.memory_source}); {d.tflops:g} TFLOP/s sustained ({d.tflops_source})",
            f"  assumed: {self.assumptions}",
            *self._low_precision_line(),
            "",
            _row(["GiB per run", *COLUMNS]),
        ]
        rows = [_row(self._cells(s)) for s in self.stages]
        total = sum(self.seconds(s) for s in self.stages)
        tail = f"Total: {_duration(total)} of compute at {d.tflops:g} TFLOP/s on one device"
        return "\n".join(head + rows + ["", tail])

    def _low_precision_line(self) -> list[str]:
        if not any(s.compute_dtype in LOW_PRECISION for s in self.stages):
            return []
        factor, why = self.device.low_precision_factor()
        return [f"  bf16/fp16 stages priced at {factor:.3g}x the fp32 rate ({why})"]

    def _cells(self, s: Stage) -> list[str]:
        m, fit = s.memory, self.fits(s)
        gib = [_gib(getattr(m, f)) for f in MEMORY_COLUMNS]
        fits = "?" if fit is None else "yes" if fit else "NO"
        trainable = _count(s.trainable) if s.trainable else "-"
        return [s.name, _count(s.params), trainable, *gib, f"{m.peak / GiB:.1f}", fits, str(s.runs)] + [
            _duration(self.seconds(s))
        ]


LOW_PRECISION = ("bfloat16", "float16")
MEMORY_COLUMNS = ("weights", "gradients", "optimizer", "step", "activations", "logits", "casts", "kv_cache")
COLUMNS = ("params", "trainable", "weights", "grads", "optim", "step", "activ", "logits", "casts", "kv")
COLUMNS += ("peak", "fits", "runs", "time")
WIDTHS = (30, 8, 10, 8, 7, 7, 7, 7, 7, 7, 7, 8, 5, 6, 10)


def _row(cells: list[str]) -> str:
    return (
        cells[0].ljust(WIDTHS[0]) + "".join(c.rjust(w) for c, w in zip(cells[1:], WIDTHS[1:], strict=True))
    ).rstrip()


def _gib(x: float) -> str:
    return "-" if x == 0 else f"{x / GiB:.1f}" if x >= 0.05 * GiB else "<0.1"


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def advice(stage: Stage) -> str:
    """What to change so that `stage` fits, from what it holds most of."""
    m = stage.memory
    tips = []
    if stage.kind == "train-full":
        tips.append(
            "use LoRA instead of full fine-tuning (--mode lora), or --precision bf16-pure (8 bytes per weight "
            "instead of 16; updates below bf16's resolution are lost)"
        )
    if stage.kind.startswith("train") and m.activations + m.logits + m.casts > 0.2 * m.peak:
        tips.append("turn on --grad-checkpointing, or use a smaller --batch-size with --grad-accum")
    if stage.kind == "sample":
        tips.append("sample fewer rows per batch (--batch-size), or load the model in bfloat16")
    if stage.kind == "hooked":
        tips.append("patch fewer prompts, or load the models in bfloat16")
    return "; ".join(tips or ["use a device with more memory"])


def check_plan(plan: Plan, ignore: bool = False) -> None:
    """Raise one InterpError naming the first stage that does not fit and what to change (unless `ignore`)."""
    bad = plan.misfits()
    if not bad or ignore:
        return
    s, have = bad[0], plan.device.memory / GiB
    others = f" ({len(bad) - 1} more stage(s) do not fit either)" if len(bad) > 1 else ""
    raise InterpError(
        f"the plan does not fit: {s.name} needs {s.memory.peak / GiB:.1f} GiB at its peak, the device has "
        f"{have:.1f} GiB ({plan.device.memory_source}){others}. To fit: {advice(s)}. --plan prints the "
        "whole plan; --ignore-plan runs anyway"
    )


def gate(plan: Plan, flags: PlanFlags) -> str:
    """The plan's table; raises when a stage does not fit (not under --plan or --ignore-plan)."""
    if not flags.plan:
        check_plan(plan, flags.ignore_plan)
    return plan.render()
