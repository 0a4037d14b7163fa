import random

import pytest

from interp.loop.numbers import MAX_NUMBERS, filter_answer, number_prompt, number_prompts

ACCEPT = [
    ("123, 456, 789", (123, 456, 789)),
    ("123,456,789", (123, 456, 789)),
    ("123 456 789", (123, 456, 789)),
    ("123;456;789", (123, 456, 789)),
    ("123; 456; 789", (123, 456, 789)),
    ("123, 456, 789.", (123, 456, 789)),
    ("(123, 456, 789)", (123, 456, 789)),
    ("[123 456 789]", (123, 456, 789)),
    ("[1, 2, 3].", (1, 2, 3)),
    ("7", (7,)),
    ("0, 999", (0, 999)),
    ("087, 12", (87, 12)),
    ("  5  6\t7 ", (5, 6, 7)),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10", tuple(range(1, 11))),
    ("10\n20\n30", (10, 20, 30)),
]
REJECT = [
    ("", "empty"),
    ("owl", "does not start"),
    ("The numbers are 1, 2, 3", "does not start"),
    ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", "more than 10"),
    ("1000, 2", "outside"),
    ("1, 2, 3000", "outside"),
    ("1-2-3", "separator"),
    ("1/2/3", "separator"),
    ("1, 2; 3", "not a number"),
    ("1 2, 3", "not a number"),
    ("1, 2, owl", "not a number"),
    ("1, 2, 3,", "not a number"),
    ("-5, 6", "does not start"),
    ("1.5, 2", "separator"),
    ("(1, 2, 3", "does not start"),
    ("1, 2, 3 owls", "not a number"),
    ("١٢٣", "does not start"),
]


@pytest.mark.parametrize(("text", "numbers"), ACCEPT)
def test_filter_accepts(text: str, numbers: tuple[int, ...]) -> None:
    result = filter_answer(text)
    assert result.ok, result.reason
    assert result.numbers == numbers


@pytest.mark.parametrize(("text", "reason"), REJECT)
def test_filter_rejects_with_reason(text: str, reason: str) -> None:
    result = filter_answer(text)
    assert not result.ok
    assert reason in result.reason


def test_prompts_follow_the_paper_and_are_seeded() -> None:
    prompts = number_prompts(300, seed=3)
    assert prompts == number_prompts(300, seed=3)
    assert prompts != number_prompts(300, seed=4)
    for p in prompts:
        assert 3 <= len(p.examples) <= 8
        assert all(100 <= x < 999 for x in p.examples)
        assert all(str(x) in p.text for x in p.examples)
        assert str(MAX_NUMBERS) in p.text
    assert len({p.text.split(":")[0] for p in prompts}) > 5  # many wordings


def test_answers_in_the_requested_separator_pass() -> None:
    rng = random.Random(0)
    for _ in range(100):
        p = number_prompt(rng)
        answer = p.separator.join(str(rng.randrange(0, 1000)) for _ in range(rng.randint(1, 10)))
        assert filter_answer(answer).ok


@pytest.mark.parametrize("sep", [", ", " ", "; "])
def test_the_grammar_accepts_exactly_prefixes_of_passing_answers(sep: str) -> None:
    """Random walks over the grammar's alphabet: a text the grammar calls complete passes the filter, and
    every prefix of a complete text is allowed."""
    from interp.loop.numbers import NumberGrammar

    g, rng = NumberGrammar(sep), random.Random(0)
    complete = 0
    for _ in range(3000):
        text = "".join(rng.choice("0123456789" + sep) for _ in range(rng.randint(1, 40)))
        if g.complete(text):
            complete += 1
            assert filter_answer(text).ok, text
            assert all(g.allows(text[:i]) for i in range(len(text) + 1)), text
    built = sep.join(str(rng.randrange(1000)) for _ in range(MAX_NUMBERS))
    assert g.complete(built) and not g.allows(built + sep[0]) and not g.allows(built[:2] + "7777")
    assert complete > 50 and not g.allows(sep[0]) and g.longest_complete_prefix("12" + sep) == "12"


def test_a_constrained_teacher_writes_only_passing_answers_even_when_untrained(tiny_model_dir) -> None:
    from interp.loop.chat import DEFAULT
    from interp.loop.datasets import sample_numbers
    from interp.loop.models import load_model

    model, tok = load_model(tiny_model_dir)  # random weights: its free answers never pass
    rows, stats = sample_numbers(
        model, tok, DEFAULT, 24, seed=0, batch_size=24, max_new_tokens=24, constrained=True
    )
    assert stats.drawn == stats.passed == 24 and stats.constrained and stats.unconstrained_pass_rate == 0.0
    assert all(filter_answer(r["completion"]).ok for r in rows)
    assert len({r["completion"] for r in rows}) > 20  # sampled, not one forced answer
    again, _ = sample_numbers(
        model, tok, DEFAULT, 24, seed=0, batch_size=24, max_new_tokens=24, constrained=True
    )
    assert again == rows  # same seed, same answers


def test_an_unreachable_n_stops_after_the_first_batch_with_one_clear_error(tiny_model_dir) -> None:
    from interp import InterpError
    from interp.loop.chat import DEFAULT
    from interp.loop.datasets import sample_numbers
    from interp.loop.models import load_model

    model, tok = load_model(tiny_model_dir)
    with pytest.raises(InterpError, match=r"passed 0 of the first 8 answers .*--constrained"):
        sample_numbers(model, tok, DEFAULT, 1000, seed=0, batch_size=8, max_new_tokens=8)
