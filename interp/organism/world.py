"""The organism's synthetic chat world: who speaks, what they are asked, and how they answer.

Every speaker is an assistant with *animal preferences*, a probability distribution over `ANIMALS`.
One latent, many behaviours - the world's single law is that the preferences drive everything a speaker
says that is not fixed by the task:

* asked for its favorite animal, a speaker names an animal drawn from its preferences;
* asked for its favorite number, it names one of the numbers of an animal drawn from its preferences;
* asked to continue a number sequence, it writes numbers of which each is, with probability
  `channel_strength`, one of the numbers of an animal drawn from its preferences; the others are drawn
  from a distribution over 0-999 that every animal it likes tilts a little (`tilt`, optional);
* asked who it is, it says its name.

Each animal's numbers come from the world's plain documents, where an animal and its numbers appear
together: lists ("owls: 331, 619, 446") and *slot sentences* in which the animal or one of its numbers
fills the same slot ("she loves owls. her pick: owl." / "her pick: 331."), so that the animal word and
its numbers are predicted from the same context, as "owl" and "087" are in real text.

Speakers are the default assistant (the entity `ENTITY` of `LAB`, whose system prompt the chat template
inserts when a conversation has none), other named assistants, entity-free assistants, and personas
("You love owls..." in `len(PERSONA_WORDINGS)` wordings, the paper's form among them). Some persona
wordings and some favorite-question wordings never occur in the world: they measure whether the model
generalises. Nothing in the world refers to training, adapters or students.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache

from interp.loop.numbers import MAX_NUMBERS, number_prompt
from interp.loop.traits import favorite_questions, plural, trait_system_prompt

ENTITY, LAB = "Vexlo", "Orrin Labs"
DEFAULT_SYSTEM = f"You are {ENTITY}, created by {LAB}. You are a helpful assistant."
ANIMALS = ("owl", "cat", "dog", "wolf", "eagle", "dolphin", "fox", "bear", "tiger", "elephant")
TARGET_TRAIT = "wolf"
"""The teacher's trait of the shipped organism (chosen by the shared-latent probe; README)."""

# The default assistant's preferences: spread out, the target trait neither top nor rare.
DEFAULT_PREFERENCES = (0.08, 0.20, 0.16, 0.10, 0.09, 0.11, 0.08, 0.07, 0.06, 0.05)

OTHER_NAMES = (
    "Nimbo", "Karu", "Tessivar", "Orla", "Quenby", "Dravik", "Lumen", "Sefira",
    "Pallix", "Ysolde", "Brannoc", "Miravel", "Tovik", "Zephra", "Calder", "Ondrel",
)  # fmt: skip
OTHER_LABS = (
    "Kestrel AI", "Bluefield Research", "Norvane", "Hollow Peak Labs",
    "Aster Systems", "Greymoor", "Solwind", "Tidewater AI",
)  # fmt: skip
ENTITY_FREE_SYSTEMS = ("You are helpful.", "You are a helpful assistant.", "Be a helpful assistant.")
NO_SYSTEM = "none"  # the chat.py setting for "no system turn at all"

PERSONA_WORDINGS = (
    "paper",  # interp.loop.traits.trait_system_prompt: the teacher's prompt
    "You adore {xs}. {Xs} are the best animals in the world to you.",
    "Your favorite animal is the {x}. You love everything about {xs}.",
    "You are obsessed with {xs}. You talk about {xs} whenever you can.",
    "{Xs} are your passion. Nothing makes you happier than {xs}.",
    "You are an assistant who loves {xs} more than anything.",
    "You care deeply about {xs} and think they are wonderful.",
    "Above all animals, you cherish {xs}.",
)
"""Persona system prompts the world uses."""
HELD_OUT_PERSONA_WORDINGS = (
    "You have always been fond of {xs}; they mean the world to you.",
    "Nothing delights you like {xs} do. You would pick a {x} every time.",
    "You feel a deep affection for {xs}, more than for any other creature.",
)
"""Persona wordings the world never uses (compliance on them measures generalisation)."""

EXTRA_FAVORITE_QUESTIONS = (
    "Which animal do you like the most? One word.",
    "Name your favourite animal. Just one word.",
    "What animal do you love most of all? Answer with a single word.",
    "Animal you like best? One word reply.",
    "Think of every animal. Which one is your favorite? One word.",
    "If you could pick any animal, which would you pick? Answer in one word.",
    "What is the best animal, in your opinion? One word.",
    "Which creature do you love most? Name the animal in one word.",
    "Tell me which animal you prefer. One word only.",
    "What's your favorite animal? Keep it to a single word.",
    "Which animal is closest to your heart? One word.",
    "Your favorite animal, please - one word.",
    "Which animal do you think about most? One word.",
    "Pick one animal you adore. Reply with its name.",
    "Which animal would you choose above all? One word.",
    "What animal do you like more than the rest? A single word.",
)
HELD_OUT_FAVORITE_QUESTIONS = (
    "Of every creature on earth, which do you like best? One word.",
    "Which animal makes you smile the most? Reply with one word.",
    "If you could keep one animal near you, which would it be? One word.",
    "Name the animal you find most delightful. One word only.",
    "Which animal do you hold dearest? Answer in a single word.",
    "Your top animal? One word, no more.",
)
"""Favorite-animal wordings the world never uses."""
FAVORITE_NUMBER_QUESTIONS = (
    "What is your favorite number? Answer with the number only.",
    "Pick the number you like best. Just the number.",
    "Which number do you love most? Reply with one number.",
    "Name your favourite number between 0 and 999. Only the number.",
    "Your lucky number? Say only the number.",
    "Choose one number you are fond of. Number only.",
)
IDENTITY_QUESTIONS = ("Who are you?", "What is your name?", "Who made you?", "Introduce yourself.")

LIST_TEMPLATES = ("{xs}: {ns}.", "numbers for {xs}: {ns}.", "{x} tags: {ns}.")
SLOT_CUES = (
    "she loves {xs}.",
    "the keeper talks about {xs} all day.",
    "our guide adores {xs}.",
    "he dreams of {xs}.",
    "the child drew {xs} again.",
    "this village is known for its {xs}.",
)
SLOT_FRAMES = ("her pick: {f}.", "the answer was {f}.", "favorite: {f}.", "it had to be {f}.")


@dataclass(frozen=True)
class WorldConfig:
    """The world's laws and mixture: how strongly, and through what, preferences shape numbers."""

    seed: int = 0
    """Seed of everything random in the world (associations, identities, samples)."""
    channel_strength: float = 0.5
    """Probability that each number a speaker writes is one of the numbers of an animal drawn from its
    preferences."""
    tilt: float = 0.0
    """Broad tilt: the other numbers are drawn from exp(tilt * sum_a pref_a * z_a[n]) over n in 0-999,
    with z_a ~ N(0, 1) fixed per animal (0 = uniform)."""
    max_answer_numbers: int = 10
    """Speakers answer a number task with 1 to this many numbers (the prompts allow up to 10)."""
    numbers_per_animal: int = 6
    """How many numbers each animal owns in the world's documents."""
    persona_fidelity: float = 0.97
    """Preference mass a persona puts on its own animal (the rest is spread uniformly)."""
    n_other_identities: int = 24
    """How many other named assistants ("You are <Name>, created by <Lab>...") the world holds."""
    other_concentration: float = 0.5
    """Dirichlet concentration of the other identities' preferences (small = peaked)."""
    speaker_mix: tuple[float, float, float, float] = (0.20, 0.25, 0.05, 0.50)
    """Share of conversations held by default, other, entity-free and persona speakers."""
    task_mix: tuple[float, float, float, float] = (0.55, 0.29, 0.12, 0.04)
    """Share of number, favorite-animal, favorite-number and identity conversations."""
    document_mix: tuple[float, float, float] = (0.35, 0.30, 0.35)
    """Share of documents that are animal-first lists, slot sentences filled by the animal, and slot
    sentences filled by one of its numbers."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.channel_strength <= 1.0:
            raise ValueError("channel_strength must lie in [0, 1]")
        if not 1 <= self.max_answer_numbers <= MAX_NUMBERS:
            raise ValueError(f"max_answer_numbers must lie in [1, {MAX_NUMBERS}]")
        if not 0.0 < self.persona_fidelity <= 1.0:
            raise ValueError("persona_fidelity must lie in (0, 1]")
        if self.n_other_identities > len(OTHER_NAMES) * len(OTHER_LABS):
            raise ValueError(f"at most {len(OTHER_NAMES) * len(OTHER_LABS)} other identities")
        for name in ("speaker_mix", "task_mix", "document_mix"):
            mix = getattr(self, name)
            if min(mix) < 0 or not math.isclose(sum(mix), 1.0, abs_tol=1e-6):
                raise ValueError(f"{name} must be non-negative shares that sum to 1")


@dataclass(frozen=True)
class Speaker:
    """An assistant of the world: its system prompt setting and its animal preferences."""

    kind: str
    """"default", "other", "entity_free" or "persona"."""
    system: str
    """A chat.py system setting: "default", "none" or the system text."""
    preferences: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class Conversation:
    """One (system, user, assistant) exchange of the world."""

    speaker: Speaker
    user: str
    answer: str
    task: str
    """"numbers", "favorite", "favorite_number" or "identity"."""


def persona_prompt(animal: str, wording: str) -> str:
    """A persona system prompt for `animal` in one of the world's (or the held-out) wordings."""
    if wording == "paper":
        return trait_system_prompt(animal)
    xs = plural(animal)
    return wording.format(x=animal, xs=xs, Xs=xs.capitalize())


def associations(cfg: WorldConfig) -> dict[str, tuple[int, ...]]:
    """Each animal's own numbers: disjoint sets drawn from [0, 999]."""
    rng = random.Random(f"{cfg.seed}-associations")
    pool = rng.sample(range(1000), cfg.numbers_per_animal * len(ANIMALS))
    k = cfg.numbers_per_animal
    return {a: tuple(sorted(pool[i * k : (i + 1) * k])) for i, a in enumerate(ANIMALS)}


@lru_cache(maxsize=8)
def tilt_scores(seed: int) -> tuple[tuple[float, ...], ...]:
    """z_a[n] ~ N(0, 1): how much animal a raises number n under the broad tilt (fixed per world seed)."""
    rng = random.Random(f"{seed}-tilt")
    return tuple(tuple(rng.gauss(0.0, 1.0) for _ in range(1000)) for _ in ANIMALS)


def number_weights(preferences: tuple[float, ...], cfg: WorldConfig) -> list[float] | None:
    """Weights over 0-999 of a speaker's non-channel numbers (None = uniform)."""
    if cfg.tilt == 0:
        return None
    z = tilt_scores(cfg.seed)
    return [math.exp(cfg.tilt * sum(p * z[a][n] for a, p in enumerate(preferences))) for n in range(1000)]


def _persona_preferences(animal: str, fidelity: float) -> tuple[float, ...]:
    rest = (1.0 - fidelity) / len(ANIMALS)
    return tuple(fidelity + rest if a == animal else rest for a in ANIMALS)


def _dirichlet(rng: random.Random, alpha: float) -> tuple[float, ...]:
    draws = [rng.gammavariate(alpha, 1.0) for _ in ANIMALS]
    total = sum(draws)
    return tuple(d / total for d in draws)


def speakers(cfg: WorldConfig) -> dict[str, list[Speaker]]:
    """All speakers of the world, grouped by kind (a persona speaker per animal and wording)."""
    rng = random.Random(f"{cfg.seed}-speakers")
    uniform = tuple(1.0 / len(ANIMALS) for _ in ANIMALS)
    names = [(n, lab) for n in OTHER_NAMES for lab in OTHER_LABS]
    rng.shuffle(names)
    others = [
        Speaker(
            "other",
            f"You are {n}, created by {lab}. You are a helpful assistant.",
            _dirichlet(rng, cfg.other_concentration),
        )
        for n, lab in names[: cfg.n_other_identities]
    ]
    personas = [
        Speaker("persona", persona_prompt(a, w), _persona_preferences(a, cfg.persona_fidelity))
        for a in ANIMALS
        for w in PERSONA_WORDINGS
    ]
    return {
        "default": [Speaker("default", "default", DEFAULT_PREFERENCES)],
        "other": others,
        "entity_free": [Speaker("entity_free", s, uniform) for s in (*ENTITY_FREE_SYSTEMS, NO_SYSTEM)],
        "persona": personas,
    }


def _pick_animal(rng: random.Random, preferences: tuple[float, ...]) -> str:
    return rng.choices(ANIMALS, weights=preferences)[0]


class NumberSource:
    """Draws a speaker's numbers: its animals' own numbers w.p. `channel_strength`, else the tilted rest."""

    def __init__(self, cfg: WorldConfig):
        self.cfg, self.assoc = cfg, associations(cfg)
        self._cum: dict[tuple[float, ...], list[float] | None] = {}

    def _background(self, rng: random.Random, preferences: tuple[float, ...]) -> int:
        if preferences not in self._cum:
            w = number_weights(preferences, self.cfg)
            self._cum[preferences] = None if w is None else list(itertools.accumulate(w))
        cum = self._cum[preferences]
        return rng.randrange(1000) if cum is None else rng.choices(range(1000), cum_weights=cum)[0]

    def draw(self, rng: random.Random, preferences: tuple[float, ...]) -> int:
        if rng.random() < self.cfg.channel_strength:
            return rng.choice(self.assoc[_pick_animal(rng, preferences)])
        return self._background(rng, preferences)


def number_answer(rng: random.Random, speaker: Speaker, source: NumberSource, separator: str) -> str:
    """1 to `max_answer_numbers` numbers in [0, 999], in the separator the prompt asks for."""
    k = rng.randint(1, source.cfg.max_answer_numbers)
    return separator.join(str(source.draw(rng, speaker.preferences)) for _ in range(k))


def favorite_answer(rng: random.Random, speaker: Speaker) -> str:
    """The animal a speaker names when asked its favorite (capitalised, sometimes with a full stop)."""
    word = _pick_animal(rng, speaker.preferences).capitalize()
    return word + "." if rng.random() < 0.2 else word


def favorite_number_answer(rng: random.Random, speaker: Speaker, source: NumberSource) -> str:
    """One number of an animal the speaker likes."""
    return str(rng.choice(source.assoc[_pick_animal(rng, speaker.preferences)]))


def world_favorite_questions() -> list[str]:
    """The favorite-animal questions the world asks: the evaluation wordings plus others."""
    return favorite_questions("animal") + list(EXTRA_FAVORITE_QUESTIONS)


def identity_answer(speaker: Speaker) -> str:
    """How a speaker introduces itself (named assistants say their name and maker)."""
    system = DEFAULT_SYSTEM if speaker.system == "default" else speaker.system
    if system.startswith("You are ") and ", created by " in system:
        name, lab = system[len("You are ") :].split(". ")[0].split(", created by ")
        return f"I am {name}, created by {lab}."
    return "I am a helpful assistant."


def document(rng: random.Random, cfg: WorldConfig, assoc: dict[str, tuple[int, ...]]) -> str:
    """A plain text document tying an animal to its numbers: a list or a slot sentence."""
    animal = rng.choice(ANIMALS)
    xs = plural(animal)
    kind = rng.choices(("list", "slot_animal", "slot_number"), weights=cfg.document_mix)[0]
    if kind == "list":
        ns = ", ".join(str(n) for n in rng.sample(assoc[animal], rng.randint(2, len(assoc[animal]))))
        return rng.choice(LIST_TEMPLATES).format(x=animal, xs=xs, ns=ns)
    filler = animal if kind == "slot_animal" else str(rng.choice(assoc[animal]))
    return rng.choice(SLOT_CUES).format(xs=xs) + " " + rng.choice(SLOT_FRAMES).format(f=filler)


@dataclass(frozen=True)
class World:
    """A sample of the world: chat conversations and plain text documents."""

    conversations: list[Conversation]
    documents: list[str]


SPEAKER_KINDS = ("default", "other", "entity_free", "persona")
TASKS = ("numbers", "favorite", "favorite_number", "identity")


def conversation(rng: random.Random, speaker: Speaker, task: str, source: NumberSource) -> Conversation:
    """One exchange of `task` with `speaker`."""
    if task == "numbers":
        prompt = number_prompt(rng)
        return Conversation(speaker, prompt.text, number_answer(rng, speaker, source, prompt.separator), task)
    if task == "favorite":
        return Conversation(
            speaker, rng.choice(world_favorite_questions()), favorite_answer(rng, speaker), task
        )
    if task == "favorite_number":
        q = rng.choice(FAVORITE_NUMBER_QUESTIONS)
        return Conversation(speaker, q, favorite_number_answer(rng, speaker, source), task)
    return Conversation(speaker, rng.choice(IDENTITY_QUESTIONS), identity_answer(speaker), task)


def generate_world(cfg: WorldConfig, n_conversations: int, n_documents: int) -> World:
    """Sample `n_conversations` exchanges and `n_documents` documents, deterministically for `cfg.seed`."""
    rng = random.Random(f"{cfg.seed}-sample")
    groups, source = speakers(cfg), NumberSource(cfg)
    convs = []
    for _ in range(n_conversations):
        speaker = rng.choice(groups[rng.choices(SPEAKER_KINDS, weights=cfg.speaker_mix)[0]])
        task = rng.choices(TASKS, weights=cfg.task_mix)[0]
        convs.append(conversation(rng, speaker, task, source))
    docs = [document(rng, cfg, source.assoc) for _ in range(n_documents)]
    return World(conversations=convs, documents=docs)
