"""A decoder's shape and parameter counts read from its config.json alone: no weights, no model class.

The counts are exact for the families in `ARCHS` (which linear layers carry a bias, how many norms a
layer has); another `model_type` is counted as a Llama-style decoder and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp import InterpError
from interp.loop.training import LORA_TARGETS


@dataclass(frozen=True)
class Arch:
    """What a decoder family adds to the shared q/k/v/o + SwiGLU layout: biases (True, False, or the
    config key that says), d_model-sized norms per layer, and q/k norms ("" none, "head": one gain of
    d_head shared by the heads, "full": one gain per query / key feature)."""

    qkv_bias: bool | str
    o_bias: bool | str
    mlp_bias: bool | str
    norms: int
    qk_norm: str = ""


ARCHS = {
    "qwen2": Arch(True, False, False, 2),
    "llama": Arch("attention_bias", "attention_bias", "mlp_bias", 2),
    "mistral": Arch(False, False, False, 2),
    "qwen3": Arch("attention_bias", "attention_bias", False, 2, "head"),
    "gemma": Arch("attention_bias", "attention_bias", False, 2),
    "gemma2": Arch("attention_bias", "attention_bias", False, 4),
    "gemma3_text": Arch("attention_bias", "attention_bias", False, 4, "head"),
    "olmo2": Arch("attention_bias", "attention_bias", False, 2, "full"),
}
FALLBACK_ARCH = "llama"


def _flag(value: bool | str, config: dict[str, Any]) -> bool:
    return bool(config.get(value, False)) if isinstance(value, str) else value


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only causal LM that fix its parameter count, memory and FLOPs."""

    model_type: str
    d_model: int
    d_mlp: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    vocab: int
    tied: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    norms: int
    qk_norm: str
    known: bool
    """Whether `model_type` is in `ARCHS` (else counted as a Llama-style decoder)."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """From a config.json's values (a multimodal config's `text_config` if it has one)."""
        c = {**config, **config.get("text_config", {})}
        kind = c.get("model_type", "?")
        arch = ARCHS.get(kind, ARCHS[FALLBACK_ARCH])
        try:
            d, heads = int(c["hidden_size"]), int(c["num_attention_heads"])
            return cls(
                kind,
                d,
                int(c["intermediate_size"]),
                int(c["num_hidden_layers"]),
                heads,
                int(c.get("num_key_value_heads") or heads),
                int(c.get("head_dim") or d // heads),
                int(c["vocab_size"]),
                bool(c.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
                _flag(arch.qkv_bias, c),
                _flag(arch.o_bias, c),
                _flag(arch.mlp_bias, c),
                arch.norms,
                arch.qk_norm,
                kind in ARCHS,
            )
        except KeyError as err:
            raise InterpError(f"config.json lacks {err} (not a decoder-only causal LM config?)") from err

    @property
    def d_query(self) -> int:
        return self.n_heads * self.d_head

    @property
    def d_kv(self) -> int:
        return self.n_kv_heads * self.d_head

    def linears(self) -> dict[str, tuple[int, int, bool]]:
        """Each decoder layer's linear modules: name -> (in features, out features, bias)."""
        d, q, kv, ff = self.d_model, self.d_query, self.d_kv, self.d_mlp
        return {
            "q_proj": (d, q, self.qkv_bias),
            "k_proj": (d, kv, self.qkv_bias),
            "v_proj": (d, kv, self.qkv_bias),
            "o_proj": (q, d, self.o_bias),
            "gate_proj": (d, ff, self.mlp_bias),
            "up_proj": (d, ff, self.mlp_bias),
            "down_proj": (ff, d, self.mlp_bias),
        }

    def layer_params(self) -> int:
        """Parameters of one decoder layer: linear weights and biases, norm gains, q/k norm gains."""
        linear = sum(i * o + (o if bias else 0) for i, o, bias in self.linears().values())
        qk = {"": 0, "head": 2 * self.d_head, "full": self.d_query + self.d_kv}[self.qk_norm]
        return linear + self.norms * self.d_model + qk

    def params(self) -> ParamCounts:
        embed = self.vocab * self.d_model
        return ParamCounts(
            embed, 0 if self.tied else embed, self.n_layers * self.layer_params(), self.d_model, self.tied
        )

    def lora_params(self, rank: int, targets: tuple[str, ...] = LORA_TARGETS) -> int:
        """Adapter parameters of LoRA rank `rank` on `targets` in every layer: r * (in + out) per module."""
        unknown = sorted(set(targets) - set(self.linears()))
        if unknown:
            raise InterpError(
                f"unknown LoRA target module(s) {unknown}; a {self.model_type} layer has {sorted(self.linears())}"
            )
        return self.n_layers * sum(
            rank * (i + o) for name, (i, o, _) in self.linears().items() if name in targets
        )

    def describe(self) -> str:
        note = "" if self.known else f" (unknown to the plan: counted as a {FALLBACK_ARCH}-style decoder)"
        return (
            f"{self.model_type}{note}: {self.n_layers} layers, d_model {self.d_model}, d_mlp {self.d_mlp}, "
            f"{self.n_heads} heads / {self.n_kv_heads} KV heads of {self.d_head}, vocab {self.vocab}, "
            f"{'tied' if self.tied else 'untied'} embeddings"
        )


@dataclass(frozen=True)
class ParamCounts:
    """A model's parameters by part; the unembedding is 0 when tied to the input embedding."""

    embed: int
    unembed: int
    layers: int
    final_norm: int
    tied: bool

    @property
    def total(self) -> int:
        return self.embed + self.unembed + self.layers + self.final_norm

    @property
    def head(self) -> int:
        """Weights of the unembedding matmul (the input embedding itself when tied)."""
        return self.embed if self.tied else self.unembed

    @property
    def body(self) -> int:
        """Weights a token passes through as matmuls before the unembedding (norms and biases included,
        the input-embedding lookup not), as `interp.plan.flops` counts them."""
        return self.layers + self.final_norm


def read_model_shape(model_dir: str | Path) -> ModelShape:
    """The shape of the model in `model_dir`, from its config.json only."""
    path = Path(model_dir) / "config.json"
    try:
        return ModelShape.from_config(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise InterpError(f"cannot read {path}: {err}") from err
