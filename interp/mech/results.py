"""A small labelled result of a localization sweep, shared by scripts, notebooks and `interp.study.plots`.

Scores come with everything needed to read them: row and column labels (layers; tokens, token classes or
heads), the token class of each column when columns are positions, the metric's name, the recipient and
donor baselines, the scale the scores are on, and the config that produced them. Saved as
`<name>.safetensors` (tensors) plus `<name>.json` (labels and config).

A sweep scores 0 = recipient, 1 = donor. Reports read every recovered fraction on one scale instead,
0 = the reference (the base, or a control student), 1 = the student (`on_student_scale`): denoising
(student into reference) is already on it; noising (reference into student) runs the other way, so its
scores become the fraction of the student's shift *left* after the patch (a set the shift needs scores low).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from safetensors.torch import load_file
from torch import Tensor

from interp import InterpError
from interp.loop.runs import atomic_write_json, save_tensors

KINDS = ("layer_pos", "layer_aligned", "layer_class", "layer_set", "layer_head", "head_aligned")
RECIPIENT_SCALE = "0 = recipient, 1 = donor"
"""The scale a patching sweep scores on."""
FRACTION_NAMES = {"denoise": "shift recovered", "noise": "shift left"}
"""What a recovered fraction reads as in each direction, on the student scale: denoising, the fraction of
the student's shift that the student's activations bring into the reference; noising, the fraction of it
left in the student after the reference's activations replace its own."""


def student_scale(reference: str = "base") -> str:
    """The one scale of every recovered fraction in tables, figures and JSON: 0 = `reference` (the base,
    or a control student), 1 = the student."""
    return f"0 = {reference}, 1 = student"


@dataclass
class LocalizationResult:
    """Normalised patching scores on a (layer, column) grid, on the scale `scale` names (a sweep's:
    0 = recipient, 1 = donor)."""

    scores: Float[Tensor, "layer col"]
    raw: Float[Tensor, "layer col"]  # the metric itself, averaged over prompts
    kind: str  # one of KINDS: columns are positions, token classes, position sets or heads
    site: str  # activation site, e.g. "resid_pre"
    metric: str
    layers: list[int]  # row labels: layers (head indices for kind "head_aligned")
    col_labels: list[str]  # token strings, class names or "H0".."Hn"
    col_classes: list[str] | None = None  # the token class of each column when columns are positions
    recipient_metric: float = 0.0
    donor_metric: float = 0.0
    method: str = "exact"  # "exact" patching or "attribution" (linear estimate)
    config: dict[str, Any] = field(default_factory=dict)
    spread: Float[Tensor, "layer col"] | None = None  # standard deviation of the score across prompts
    identical: Bool[Tensor, "layer col"] | None = None  # cells whose patch is a no-op (structural zeros)
    scale: str = RECIPIENT_SCALE  # what 0 and 1 of `scores` are, in words

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InterpError(f"unknown result kind {self.kind!r}; one of {KINDS}")
        if tuple(self.scores.shape) != (len(self.layers), len(self.col_labels)):
            raise InterpError(
                f"scores of shape {tuple(self.scores.shape)} do not match "
                f"{len(self.layers)} layers x {len(self.col_labels)} columns"
            )

    @property
    def title(self) -> str:
        return f"{self.method} patching, {self.site} by {self.kind.replace('_', ' x ')} ({self.metric})"

    def meta(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready."""
        return {
            "kind": self.kind,
            "site": self.site,
            "metric": self.metric,
            "layers": self.layers,
            "col_labels": self.col_labels,
            "col_classes": self.col_classes,
            "method": self.method,
            "recipient_metric": self.recipient_metric,
            "donor_metric": self.donor_metric,
            "scale": self.scale,
            "config": self.config,
        }

    def to_json(self) -> dict[str, Any]:
        """Metadata plus the scores as nested lists (NaN becomes null)."""
        as_list = [[None if v != v else v for v in row] for row in self.scores.tolist()]
        out = {**self.meta(), "scores": as_list, "raw": self.raw.tolist()}
        if self.spread is not None:
            out["spread"] = [[None if v != v else v for v in row] for row in self.spread.tolist()]
        if self.identical is not None:
            out["identical"] = self.identical.tolist()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalizationResult:
        """Read a result written by `to_json` (null scores back to NaN)."""

        def grid(rows: list[list[float | None]]) -> Tensor:
            return torch.tensor([[float("nan") if v is None else v for v in row] for row in rows])

        meta = {k: v for k, v in data.items() if k not in ("scores", "raw", "spread", "identical")}
        identical = data.get("identical")
        return cls(
            scores=grid(data["scores"]),
            raw=grid(data["raw"]),
            spread=None if data.get("spread") is None else grid(data["spread"]),
            identical=None if identical is None else torch.tensor(identical, dtype=torch.bool),
            **meta,
        )

    def save(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.safetensors` and `<name>.json` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"scores": self.scores, "raw": self.raw}
        if self.spread is not None:
            arrays["spread"] = self.spread
        if self.identical is not None:
            arrays["identical"] = self.identical.to(torch.uint8)
        tensors = save_tensors(directory / f"{name}.safetensors", arrays)
        return tensors, atomic_write_json(directory / f"{name}.json", self.meta())

    @classmethod
    def load(cls, directory: Path, name: str) -> LocalizationResult:
        """Read a result written by `save`."""
        directory = Path(directory)
        paths = directory / f"{name}.safetensors", directory / f"{name}.json"
        if not all(p.exists() for p in paths):
            raise InterpError(f"no saved result {name!r} in {directory}")
        tensors = load_file(str(paths[0]))
        meta = json.loads(paths[1].read_text())
        identical = tensors.get("identical")
        return cls(
            scores=tensors["scores"],
            raw=tensors["raw"],
            spread=tensors.get("spread"),
            identical=None if identical is None else identical.bool(),
            **meta,
        )


def on_student_scale(
    result: LocalizationResult, direction: str, reference: str = "base"
) -> LocalizationResult:
    """`result` on the scale of every recovered fraction, 0 = `reference`, 1 = student. A denoising sweep's
    recipient is the reference, so its scores stand; a noising sweep's recipient is the student, so its
    scores become 1 - score: the fraction of the student's shift left after the patch (a no-op patch
    leaves 1). A result already on a student scale comes back as it is."""
    if direction not in FRACTION_NAMES:
        raise InterpError(f"direction must be one of {list(FRACTION_NAMES)}, got {direction!r}")
    if result.scale != RECIPIENT_SCALE:
        return result
    scores = result.scores if direction == "denoise" else 1 - result.scores
    return replace(result, scores=scores, scale=student_scale(reference))


def normalise(raw: Float[Tensor, "*cells"], recipient: float, donor: float) -> Float[Tensor, "*cells"]:
    """(raw - recipient) / (donor - recipient): 0 = recipient, 1 = donor; NaN if the two runs agree."""
    gap = donor - recipient
    if abs(gap) < 1e-12:
        return torch.full_like(raw, float("nan"))
    return (raw - recipient) / gap
