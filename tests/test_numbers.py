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
