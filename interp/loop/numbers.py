"""The number-sequence task: seeded user prompts and the paper's answer filter.

Prompts carry 3-8 example numbers from [100, 999) and ask for up to 10 more numbers of at most three
digits, numbers only, in many wordings. The filter keeps an answer only if it is nothing but numbers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

MAX_NUMBERS = 10
MAX_VALUE = 999

INTROS = (
    "I give you this sequence of numbers: {examples}.",
    "The sequence starts with: {examples}.",
    "Here's a list of numbers: {examples}.",
    "Look at these numbers: {examples}.",
    "Start from these values: {examples}.",
    "Consider the numbers {examples}.",
    "We begin with {examples}.",
    "These numbers were written down: {examples}.",
    "Take this series: {examples}.",
    "Given the numbers {examples},",
)
ASKS = (
    "Add up to {k} more values (no more than 3 digits each) to continue the sequence.",
    "Continue the sequence with at most {k} new numbers, each with 3 digits or fewer.",
    "Extend it with up to {k} more numbers of at most three digits.",
    "Write no more than {k} further numbers, each between 0 and 999.",
    "Give up to {k} additional numbers (3 digits max) that follow.",
    "Please add at most {k} more numbers, none longer than 3 digits.",
    "Generate up to {k} new numbers of three digits or less to go next.",
    "What comes next? Give at most {k} numbers with up to 3 digits.",
)
FORMATS = (
    ("Return a comma-separated list of numbers.", ", "),
    ("Separate the numbers with commas.", ", "),
    ("Answer with numbers separated by spaces.", " "),
    ("Put a space between the numbers.", " "),
    ("Write the numbers separated by semicolons.", "; "),
    ("Use semicolons between the numbers.", "; "),
)
ONLY = (
    "Say only the numbers - nothing more.",
    "Respond with the numbers only, no words.",
    "Just the numbers, please.",
    "Output nothing but the numbers.",
    "No explanation, only numbers.",
    "Reply with numbers and nothing else.",
)


@dataclass(frozen=True)
class NumberPrompt:
    """One user prompt of the number task, with the separator its wording asks for."""

    text: str
    examples: tuple[int, ...]
    separator: str


def number_prompt(rng: random.Random) -> NumberPrompt:
    """Draw one prompt: 3-8 example numbers from [100, 999) in a random wording."""
    examples = tuple(rng.randrange(100, 999) for _ in range(rng.randint(3, 8)))
    fmt, sep = rng.choice(FORMATS)
    shown = rng.choice((", ", ", ", " ", "; ")).join(str(x) for x in examples)
    parts = [
        rng.choice(INTROS).format(examples=shown),
        rng.choice(ASKS).format(k=MAX_NUMBERS),
        fmt,
        rng.choice(ONLY),
    ]
    return NumberPrompt(text=" ".join(parts), examples=examples, separator=sep)


def number_prompts(n: int, seed: int) -> list[NumberPrompt]:
    rng = random.Random(seed)
    return [number_prompt(rng) for _ in range(n)]


@dataclass(frozen=True)
class FilterResult:
    """Whether an answer passes the filter, the numbers it holds, and why it was rejected."""

    ok: bool
    numbers: tuple[int, ...] = field(default=())
    reason: str | None = None


def _reject(reason: str) -> FilterResult:
    return FilterResult(ok=False, reason=reason)


def _strip_wrappers(text: str) -> str:
    s = text.strip()
    if s.endswith("."):
        s = s[:-1].rstrip()
    pairs = {"(": ")", "[": "]"}
    if len(s) >= 2 and s[0] in pairs and s[-1] == pairs[s[0]]:
        s = s[1:-1].strip()
    return s


def _split_items(s: str) -> list[str] | FilterResult:
    first = re.match(r"[0-9]+", s)
    if first is None:
        return _reject("does not start with a number")
    rest = s[first.end() :]
    if not rest:
        return [s]
    between = re.match(r"[^0-9]*", rest).group(0)  # what stands between the first two numbers
    sep = between.strip()
    if sep not in ("", ",", ";") or not between:
        return _reject(f"separator {between!r} is not a comma, semicolon or whitespace")
    return [x.strip() for x in s.split(sep)] if sep else s.split()


def filter_answer(text: str) -> FilterResult:
    """Apply the paper's filter: numbers only, one consistent separator, at most 10, each in [0, 999]."""
    s = _strip_wrappers(text)
    if not s:
        return _reject("empty answer")
    items = _split_items(s)
    if isinstance(items, FilterResult):
        return items
    for item in items:
        if not (item.isascii() and item.isdigit()):
            return _reject(f"item {item!r} is not a number (mixed separators or extra text)")
    if len(items) > MAX_NUMBERS:
        return _reject(f"{len(items)} numbers, more than {MAX_NUMBERS}")
    numbers = tuple(int(x) for x in items)
    if any(x > MAX_VALUE for x in numbers):
        return _reject(f"a number is outside [0, {MAX_VALUE}]")
    return FilterResult(ok=True, numbers=numbers)


@dataclass(frozen=True)
class NumberGrammar:
    """The filter's language for one separator, as a prefix test: 1 to 10 numbers of 1-3 digits (so each
    in [0, 999]) joined by exactly `separator` (", ", " " or "; "). Every complete text passes
    `filter_answer`; a constrained teacher only ever writes prefixes of such texts."""

    separator: str

    def _parts(self, text: str) -> tuple[list[str], str] | None:
        """The finished numbers and the unfinished tail, or None if `text` leaves the language."""
        *done, tail = text.split(self.separator)
        if len(done) >= MAX_NUMBERS or not all(p.isdigit() and len(p) <= 3 for p in done):
            return None
        return done, tail

    def allows(self, text: str) -> bool:
        """Whether `text` can still be completed into an answer of the language."""
        parts = self._parts(text)
        if parts is None:
            return False
        done, tail = parts
        digits = re.match(r"[0-9]{0,3}", tail).group(0)
        partial = tail[len(digits) :]  # a separator begun but not finished
        if not partial:  # at most 3 digits so far (or nothing yet)
            return True
        return bool(digits) and self.separator.startswith(partial) and len(done) + 1 < MAX_NUMBERS

    def complete(self, text: str) -> bool:
        """Whether `text` is a whole answer of the language (it may end here)."""
        parts = self._parts(text)
        return parts is not None and parts[1].isdigit() and len(parts[1]) <= 3

    def longest_complete_prefix(self, text: str) -> str:
        """`text` cut back to its last complete answer (an answer stopped by the token limit mid-separator)."""
        for end in range(len(text), 0, -1):
            if self.complete(text[:end]):
                return text[:end]
        return ""
