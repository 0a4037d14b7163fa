"""A small labelled result of a localization sweep, shared by scripts, notebooks and `interp.study.plots`.

Scores come with everything needed to read them: row and column labels (layers; tokens, token classes or
heads), the token class of each column when columns are positions, the metric's name, the recipient and
donor baselines, and the config that produced them. Saved as `<name>.safetensors` (tensors) plus
`<name>.json` (labels and config).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Float
from safetensors.torch import load_file
from torch import Tensor

from interp import InterpError
from interp.loop.runs import atomic_write_json, save_tensors

KINDS = ("layer_pos", "layer_aligned", "layer_class", "layer_set", "layer_head", "head_aligned")


@dataclass
class LocalizationResult:
    """Normalised patching scores (0 = recipient, 1 = donor) on a (layer, column) grid."""

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


def normalise(raw: Float[Tensor, "*cells"], recipient: float, donor: float) -> Float[Tensor, "*cells"]:
    """(raw - recipient) / (donor - recipient): 0 = recipient, 1 = donor; NaN if the two runs agree."""
    gap = donor - recipient
    if abs(gap) < 1e-12:
        return torch.full_like(raw, float("nan"))
    return (raw - recipient) / gap
