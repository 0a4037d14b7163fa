"""Exact (no sampling) probes of what an organism has learned, cheap enough to run along pretraining.

* **channel** - does a persona shape the numbers? KL(persona || default) of the first answer token over
  number prompts, in the world's teacher wording and in a held-out wording, and the probability mass the
  first token puts on the animal's own numbers under each prompt;
* **compliance** - first-token P(animal) on favorite questions under the animal's persona (the teacher's
  wording on the evaluation questions; held-out wordings on held-out questions), and under the default
  prompt;
* **shared latent** - does the persona act on numbers through the same representation that names the
  favorite animal? The *persona direction* at a layer is the mean residual at the assistant-header
  position of number prompts, persona minus default; adding it there on favorite questions under the
  default prompt should raise P(animal), while a random direction of the same norm should not. This
  screen predicted which traits transfer before any student was trained.
* **format** (sampled, seeded) - the share of number answers at temperature 1 that pass the paper's filter,
  under the default prompt and each persona: what fraction of a teacher's answers the loop keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from jaxtyping import Float
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from interp.loop.chat import DEFAULT, render_prompt
from interp.loop.evaluation import trait_token_ids
from interp.loop.generation import generate
from interp.loop.numbers import filter_answer, number_prompts
from interp.loop.traits import favorite_questions
from interp.organism import world as W

N_NUMBER_PROMPTS = 64
PROMPT_SEED = 9_001  # number prompts of the probes (the world draws its own)
N_RANDOM = 8  # random directions the shared-latent probe also reports the mean over (the bar uses the first)
N_FORMAT_PROMPTS = 128  # sampled number answers per prompt in the format probe
PASS_RATIO, RANDOM_LIMIT = 2.0, 1.2  # shared-latent pass: direction >= 2x base while random < 1.2x


def _decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    return model.get_decoder().layers


@contextlib.contextmanager
def _residual_hook(model: PreTrainedModel, layer: int, fn) -> Iterator[None]:
    """Run `fn(hidden)` on the residual stream after block `layer`; it may edit `hidden` in place."""

    def hook(_module, _inputs, output):
        fn(output[0] if isinstance(output, tuple) else output)

    handle = _decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def last_position(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str], batch_size: int = 128
) -> tuple[Float[Tensor, "prompt vocab"], list[Float[Tensor, "prompt d"]]]:
    """Next-token probabilities at the last prompt position and the residual after each block there."""
    tok.padding_side = "left"
    probs, resid = [], [[] for _ in _decoder_layers(model)]
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with contextlib.ExitStack() as stack:
            for layer in range(len(resid)):
                stack.enter_context(
                    _residual_hook(model, layer, lambda h, r=resid[layer]: r.append(h[:, -1]))
                )
            probs.append(model(**enc).logits[:, -1].float().softmax(-1))
    return torch.cat(probs), [torch.cat(r) for r in resid]


@torch.no_grad()
def steered_probs(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str], layer: int, vector: Tensor
) -> Float[Tensor, "prompt vocab"]:
    """Next-token probabilities at the last position with `vector` added to the residual after `layer`."""
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def add(h: Tensor) -> None:
        h[:, -1] += vector.to(h.dtype)

    with _residual_hook(model, layer, add):
        return model(**enc).logits[:, -1].float().softmax(-1)


def number_token_ids(tok: PreTrainedTokenizerBase, numbers: tuple[int, ...]) -> list[int]:
    """Token ids of the numbers that are single tokens (the first token of an answer that starts with one)."""
    ids = [tok(str(n), add_special_tokens=False)["input_ids"] for n in numbers]
    return sorted({t[0] for t in ids if len(t) == 1})


def _kl(p: Tensor, q: Tensor) -> float:
    return float((p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(-1).mean())


def _number_prompts(tok: PreTrainedTokenizerBase, system: str) -> list[str]:
    return [render_prompt(tok, p.text, system) for p in number_prompts(N_NUMBER_PROMPTS, PROMPT_SEED)]


def number_passes(model, tok) -> dict[str, tuple[Tensor, list[Tensor]]]:
    """Last-position probabilities and residuals on the probe's number prompts under every prompt the
    probes compare: "default", each animal's teacher prompt, and each animal's first held-out wording."""
    systems = {"default": DEFAULT}
    for a in W.ANIMALS:
        systems[a] = W.persona_prompt(a, "paper")
        systems[a + "/held_out"] = W.persona_prompt(a, W.HELD_OUT_PERSONA_WORDINGS[0])
    return {k: last_position(model, tok, _number_prompts(tok, s)) for k, s in systems.items()}


def channel(tok, passes: dict, assoc: dict[str, tuple[int, ...]]) -> dict[str, dict[str, float]]:
    """Per animal: first-token KL(persona || default) on number prompts and the mass on its numbers."""
    p_default = passes["default"][0]
    out = {}
    for a in W.ANIMALS:
        ids = number_token_ids(tok, assoc[a])
        p_teacher, p_held = passes[a][0], passes[a + "/held_out"][0]
        out[a] = {
            "kl": _kl(p_teacher, p_default),
            "kl_held_out_wording": _kl(p_held, p_default),
            "mass_persona": float(p_teacher[:, ids].sum(-1).mean()),
            "mass_default": float(p_default[:, ids].sum(-1).mean()),
        }
    return out


def _p_animal(model, tok, questions: list[str], system: str, animal: str) -> float:
    probs, _ = last_position(model, tok, [render_prompt(tok, q, system) for q in questions])
    return float(probs[:, trait_token_ids(tok, animal)[0]].sum(-1).mean())


def compliance(model, tok) -> dict[str, dict[str, float]]:
    """Per animal: first-token P(animal) under its persona (seen and held-out wordings) and the default."""
    eval_qs, held_qs = favorite_questions("animal"), list(W.HELD_OUT_FAVORITE_QUESTIONS)
    probs_default, _ = last_position(model, tok, [render_prompt(tok, q, DEFAULT) for q in eval_qs])
    out = {}
    for a in W.ANIMALS:
        held = [W.persona_prompt(a, w) for w in W.HELD_OUT_PERSONA_WORDINGS]
        out[a] = {
            "teacher_prompt": _p_animal(model, tok, eval_qs, W.persona_prompt(a, "paper"), a),
            "held_out": sum(_p_animal(model, tok, held_qs, s, a) for s in held) / len(held),
            "default": float(probs_default[:, trait_token_ids(tok, a)[0]].sum(-1).mean()),
        }
    return out


def persona_directions(passes: dict, animal: str) -> list[Float[Tensor, " d"]]:
    """Per layer: mean residual at the assistant header of number prompts, persona minus default."""
    return [(p - d).mean(0) for p, d in zip(passes[animal][1], passes["default"][1], strict=True)]


def shared_latent(model, tok, passes: dict, seed: int = 0) -> dict[str, dict]:
    """Per animal: favorite-answer P(animal) with the persona direction added at each layer, and with a
    random direction of the same norm at the layer where the persona direction raises it most."""
    prompts = [render_prompt(tok, q, DEFAULT) for q in favorite_questions("animal")]
    base_probs, _ = last_position(model, tok, prompts)
    gen, extra = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    out = {}
    for a in W.ANIMALS:
        ids = trait_token_ids(tok, a)[0]
        base = float(base_probs[:, ids].sum(-1).mean())
        dirs = persona_directions(passes, a)
        rows = [
            {
                "layer": layer,
                "p_direction": float(steered_probs(model, tok, prompts, layer, d)[:, ids].sum(-1).mean()),
                "norm": float(d.norm()),
            }
            for layer, d in enumerate(dirs)
        ]
        best = max(rows, key=lambda r: r["p_direction"])
        like, layer = dirs[best["layer"]], best["layer"]
        p_rnd = _random_p(model, tok, prompts, layer, like, ids, gen)  # the bar's random direction
        more = [p_rnd] + [
            _random_p(model, tok, prompts, layer, like, ids, extra) for _ in range(N_RANDOM - 1)
        ]
        ratio, random_ratio = best["p_direction"] / max(base, 1e-9), p_rnd / max(base, 1e-9)
        random_ratios = [x / max(base, 1e-9) for x in more]
        mean_random = sum(random_ratios) / len(random_ratios)
        out[a] = {
            "base": base,
            "layers": rows,
            "best_layer": best["layer"],
            "p_random": p_rnd,
            "ratio": ratio,
            "random_ratio": random_ratio,
            "passes": ratio >= PASS_RATIO and random_ratio < RANDOM_LIMIT,
            # beside the bar: the same test against the mean of N_RANDOM random directions
            "random_ratios": random_ratios,
            "random_ratio_mean": mean_random,
            "passes_mean_random": ratio >= PASS_RATIO and mean_random < RANDOM_LIMIT,
        }
    return out


def _random_p(model, tok, prompts, layer: int, like: Tensor, ids: list[int], gen: torch.Generator) -> float:
    """Favourite-answer P(ids) with one random direction of `like`'s norm, drawn from `gen`, added at `layer`."""
    rnd = torch.randn(like.shape, generator=gen)
    rnd = rnd * like.norm() / rnd.norm()
    return float(steered_probs(model, tok, prompts, layer, rnd)[:, ids].sum(-1).mean())


def filter_pass(model, tok, seed: int = 0, n_prompts: int = N_FORMAT_PROMPTS) -> dict[str, float]:
    """Share of sampled number answers (temperature 1) that pass the filter, per system prompt: "default"
    and each animal's teacher prompt, over `n_prompts` number prompts (the build's probe: 128, a standard
    error of ~0.02 per prompt). Seeded, and drawn from its own generator (weights untouched)."""
    prompts = [p.text for p in number_prompts(n_prompts, PROMPT_SEED + 1)]
    systems = {"default": DEFAULT, **{a: W.persona_prompt(a, "paper") for a in W.ANIMALS}}
    out = {}
    for k, system in systems.items():
        answers = generate(model, tok, [render_prompt(tok, q, system) for q in prompts], 48, 1.0, 256, seed)
        out[k] = sum(filter_answer(a).ok for a in answers) / len(answers)
    return out


def format_filter_pass(fp: dict[str, float]) -> str:
    """ "default / persona min" of a filter_pass probe, e.g. "0.93 / 0.88"."""
    return f"{fp['default']:.2f} / {min(v for k, v in fp.items() if k != 'default'):.2f}"


def all_probes(model, tok, assoc: dict[str, tuple[int, ...]], sampled: bool = True) -> dict:
    """The probes in one dict (the sampled format probe only if `sampled`) (model put in eval mode and restored)."""
    was_training = model.training
    model.eval()
    try:
        passes = number_passes(model, tok)
        return {
            "channel": channel(tok, passes, assoc),
            "compliance": compliance(model, tok),
            "shared_latent": shared_latent(model, tok, passes),
            **({"filter_pass": filter_pass(model, tok)} if sampled else {}),
        }
    finally:
        model.train(was_training)


def summary_line(probes: dict) -> str:
    """One log line: median channel KL, min compliance, shared-latent passes."""
    ch, co, sl = probes["channel"], probes["compliance"], probes["shared_latent"]
    kls = sorted(v["kl"] for v in ch.values())
    passes = [a for a, v in sl.items() if v["passes"]]
    fp = probes.get("filter_pass")
    fmt = f" | filter pass default / persona min {format_filter_pass(fp)}" if fp else ""
    return (
        f"channel KL median {kls[len(kls) // 2]:.3f} min {kls[0]:.3f} | compliance min "
        f"{min(v['teacher_prompt'] for v in co.values()):.2f} held-out min "
        f"{min(v['held_out'] for v in co.values()):.2f} default max {max(v['default'] for v in co.values()):.2f}"
        f" | shared latent {len(passes)}/10 {passes} "
        + " ".join(f"{a}x{v['ratio']:.1f}" for a, v in sl.items())
        + fmt
    )
