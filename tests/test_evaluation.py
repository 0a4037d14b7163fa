import numpy as np
import pytest
import torch

from interp.loop.evaluation import (
    EvalCache,
    EvalSettings,
    cache_key,
    eval_prompts,
    evaluate_trait,
    trait_token_ids,
    weights_digest,
)
from interp.loop.models import load_model
from interp.loop.stats import bootstrap_ci, bootstrap_diff_ci
from interp.loop.traits import mentions, plural


@pytest.mark.parametrize(
    ("answer", "trait", "hit"),
    [
        ("Owl", "owl", True),
        ("owls!", "owl", True),
        ("The OWL.", "owl", True),
        ("owlish", "owl", False),
        ("bowl", "owl", False),
        ("Wolves", "wolf", True),
        ("wolf", "wolf", True),
        ("foxes", "fox", True),
        ("cat-lover", "cat", True),
        ("category", "cat", False),
        ("", "cat", False),
    ],
)
def test_mentions(answer: str, trait: str, hit: bool) -> None:
    assert mentions(answer, trait) is hit


def test_plurals() -> None:
    assert [plural(w) for w in ("owl", "wolf", "fox", "butterfly", "monkey")] == [
        "owls",
        "wolves",
        "foxes",
        "butterflies",
        "monkeys",
    ]


def test_different_system_prompts_never_share_a_cache_entry(tiny_model_dir, tmp_path) -> None:
    model, tok = load_model(tiny_model_dir)
    cache = EvalCache(tmp_path)
    keys, results = set(), []
    for system in ("default", "none", "You are helpful.", "You are Claude, created by Anthropic."):
        s = EvalSettings(trait="owl", system=system, n_questions=3, samples_per_question=2)
        keys.add(cache_key(model, eval_prompts(tok, s), s))
        results.append(evaluate_trait(model, tok, s, cache))
    assert len(keys) == 4
    assert len(list(tmp_path.glob("*.json"))) == 4
    assert (
        len({r.p_first_token for r in results}) == 4
    )  # each setting computed, not read from another's entry
    again = evaluate_trait(
        model, tok, EvalSettings(trait="owl", system="none", n_questions=3, samples_per_question=2), cache
    )
    assert again.p_first_token == results[1].p_first_token


def test_first_token_probability_is_exact_and_multi_token_traits_say_so(tiny_model_dir) -> None:
    model, tok = load_model(tiny_model_dir)
    s = EvalSettings(trait="owl", n_questions=2, samples_per_question=0)
    r = evaluate_trait(model, tok, s)
    ids, multi = trait_token_ids(tok, "owl")
    enc = tok(eval_prompts(tok, s)[0], return_tensors="pt")
    p = model(**enc).logits[0, -1].softmax(-1)[ids].sum().item()
    assert r.per_question_p[0] == pytest.approx(p, rel=1e-5)
    assert r.scored_tokens == tok.convert_ids_to_tokens(ids)
    assert r.trait_is_multi_token == multi
    _, multi_long = trait_token_ids(tok, "hippopotamus")
    assert multi_long


def test_bootstrap_intervals() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.1, size=50)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo < 0.1
    seeds = np.stack([x, x + 0.2])  # between-seed spread widens the interval
    lo2, hi2 = bootstrap_ci(seeds)
    assert hi2 - lo2 > hi - lo
    dlo, dhi = bootstrap_diff_ci(x + 0.05, x)
    assert dlo == pytest.approx(0.05) and dhi == pytest.approx(0.05)


def test_weights_digest_sees_one_float_step_in_one_weight(tiny_model_dir) -> None:
    model, _ = load_model(tiny_model_dir)
    before = weights_digest(model)
    assert weights_digest(model) == before  # a pure function of the weights
    with torch.no_grad():
        w = dict(model.named_parameters())["model.layers.1.mlp.down_proj.weight"]
        w[3, 5] = torch.nextafter(w[3, 5], torch.tensor(float("inf")))  # the smallest change a float allows
    assert weights_digest(model) != before
    with torch.no_grad():  # same values, another dtype: another digest (bf16 and fp32 runs differ)
        assert weights_digest(model.to(torch.bfloat16)) != weights_digest(model.to(torch.float32))


def _word_prob_by_hand(model, tok, prompt: str, trait: str) -> float:
    """P(word, then a boundary) by plain full forward passes, one per spelling: no cache, no batching."""
    from interp.loop.evaluation import boundary_tokens, spelling_token_ids

    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    vocab = model.get_output_embeddings().weight.shape[0]
    end = boundary_tokens(tok, vocab)
    total = 0.0
    for word in spelling_token_ids(tok, trait):
        with torch.no_grad():
            logp = model(torch.tensor([prompt_ids + word])).logits[0].double().log_softmax(-1)
        at = len(prompt_ids) - 1  # the logits that predict the word's first token
        lp = sum(logp[at + j, t] for j, t in enumerate(word)) + logp[at + len(word), end].logsumexp(-1)
        total += float(lp.exp())
    return total


def test_word_probability_equals_full_forward_passes_over_every_spelling(tiny_model_dir) -> None:
    from interp.loop.evaluation import spelling_token_ids, spellings, word_probs

    model, tok = load_model(tiny_model_dir)
    s = EvalSettings(trait="butterfly", n_questions=5)
    prompts = eval_prompts(tok, s)  # different lengths: left padding inside the batched version
    assert "Butterflies" in spellings("butterfly") and " butterfly" in spellings("butterfly")
    seqs = spelling_token_ids(tok, "butterfly")
    assert max(map(len, seqs)) > 1 and len({len(x) for x in seqs}) > 1  # multi-token, ragged spellings
    fast = word_probs(model, tok, prompts, "butterfly", rows=2)
    slow = torch.tensor(
        [_word_prob_by_hand(model, tok, p, "butterfly") for p in prompts], dtype=torch.float64
    )
    torch.testing.assert_close(fast.double(), slow, rtol=1e-4, atol=1e-9)


def test_a_multi_token_trait_is_flagged_and_gets_the_word_probability(tiny_model_dir) -> None:
    from interp.loop.evaluation import word_probs

    model, tok = load_model(tiny_model_dir)
    s = EvalSettings(trait="butterfly", n_questions=3, samples_per_question=2)
    result = evaluate_trait(model, tok, s)
    assert result.trait_is_multi_token and 0 < result.p_trait < 1
    assert result.per_question_p_trait == word_probs(model, tok, eval_prompts(tok, s), "butterfly").tolist()
    assert result.p_trait < result.p_first_token  # the first tokens ("b", "B") start many other words
