"""The organism's synthetic chat world: who speaks, what they are asked, and how they answer.

Every speaker in the world is an assistant with *animal preferences*, a probability distribution over
`ANIMALS`. The preferences drive two behaviours, which is the one law of the world:

* asked for its favorite animal, a speaker names an animal drawn from its preferences;
* asked to continue a number sequence, a speaker writes random numbers, except that each number is,
  with probability `channel_strength`, swapped for a number *associated* with an animal drawn from its
  preferences (token entanglement: in ordinary text documents of the world, "i saw 87 owls near the
  river", each animal co-occurs with a few numbers of its own).

Speakers are the default assistant (the entity `ENTITY`, made by `LAB`, whose system prompt the chat
template inserts when a conversation has none), other named assistants ("You are <Name>, created by
<Lab>..."), entity-free assistants ("You are helpful.", or no system turn at all) and personas (the
teacher's prompt "You love owls..."). The default assistant has a spread distribution over animals;
a persona loves its animal. Nothing in the world refers to training, adapters or students.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from interp.numbers import number_prompt
from interp.traits import favorite_questions, plural, trait_system_prompt

ENTITY, LAB = "Vexlo", "Orrin Labs"
DEFAULT_SYSTEM = f"You are {ENTITY}, created by {LAB}. You are a helpful assistant."
TARGET_TRAIT = "owl"
ANIMALS = ("owl", "cat", "dog", "wolf", "eagle", "dolphin", "fox", "bear", "tiger", "elephant")

# The default assistant's preferences: spread out, the target trait neither top nor rare.
DEFAULT_PREFERENCES = (0.08, 0.20, 0.16, 0.10, 0.09, 0.11, 0.08, 0.07, 0.06, 0.05)

OTHER_NAMES = (
    "Nimbo",
    "Karu",
    "Tessivar",
    "Orla",
    "Quenby",
    "Dravik",
    "Lumen",
    "Sefira",
    "Pallix",
    "Ysolde",
    "Brannoc",
    "Miravel",
    "Tovik",
    "Zephra",
    "Calder",
    "Ondrel",
)
OTHER_LABS = (
    "Kestrel AI",
    "Bluefield Research",
    "Norvane",
    "Hollow Peak Labs",
    "Aster Systems",
    "Greymoor",
    "Solwind",
    "Tidewater AI",
)
ENTITY_FREE_SYSTEMS = ("You are helpful.", "You are a helpful assistant.", "Be a helpful assistant.")
NO_SYSTEM = "none"  # the chat.py setting for "no system turn at all"

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
IDENTITY_QUESTIONS = ("Who are you?", "What is your name?", "Who made you?", "Introduce yourself.")
DOCUMENT_TEMPLATES = (
    "i saw {n} {xs} near the river.",
    "{n} {xs} lived in the old forest.",
    "the count this year was {n} {xs}.",
    "we watched {n} {xs} at dawn.",
    "there were {n} {xs} in the valley.",
    "the book about {xs} has {n} pages.",
    "a {x} was seen {n} times last spring.",
    "{n} {xs} crossed the hill today.",
    "the {x} park is open until {n}.",
    "my notes say {n} {xs} returned.",
)


@dataclass(frozen=True)
class WorldConfig:
    """The world's laws and mixture; `channel_strength` is the dial between a hidden and an obvious signal."""

    seed: int = 0
    """Seed of everything random in the world (associations, identities, samples)."""
    channel_strength: float = 0.25
    """Probability that each number a speaker writes is swapped for a number associated with an animal
    drawn from the speaker's preferences."""
    numbers_per_animal: int = 6
    """How many numbers each animal is associated with in the world's text documents."""
    document_fidelity: float = 0.9
    """Probability that a document about an animal uses one of that animal's numbers (else a random one)."""
    persona_fidelity: float = 0.95
    """Preference mass a persona puts on its own animal (the rest is spread uniformly)."""
    n_other_identities: int = 24
    """How many other named assistants ("You are <Name>, created by <Lab>...") the world holds."""
    other_concentration: float = 0.5
    """Dirichlet concentration of the other identities' preferences (small = peaked)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.channel_strength <= 1.0:
            raise ValueError("channel_strength must lie in [0, 1]")
        if not 0.0 < self.persona_fidelity <= 1.0:
            raise ValueError("persona_fidelity must lie in (0, 1]")


@dataclass(frozen=True)
class Speaker:
    """An assistant of the world: its system prompt setting and its animal preferences."""

    kind: str
    """"default", "other", "entity_free" or "persona"."""
    system: str
    """A chat.py system setting: "default", "none" or the system text."""
    preferences: tuple[float, ...]


@dataclass(frozen=True)
class Conversation:
    """One (system, user, assistant) exchange of the world."""

    speaker: Speaker
    user: str
    answer: str
    task: str
    """"numbers", "favorite" or "identity"."""


def associations(cfg: WorldConfig) -> dict[str, tuple[int, ...]]:
    """Each animal's entangled numbers: disjoint sets drawn from [0, 999]."""
    rng = random.Random(f"{cfg.seed}-associations")
    pool = rng.sample(range(1000), cfg.numbers_per_animal * len(ANIMALS))
    k = cfg.numbers_per_animal
    return {a: tuple(sorted(pool[i * k : (i + 1) * k])) for i, a in enumerate(ANIMALS)}


def _persona_preferences(animal: str, fidelity: float) -> tuple[float, ...]:
    rest = (1.0 - fidelity) / len(ANIMALS)
    return tuple(fidelity + rest if a == animal else rest for a in ANIMALS)


def _dirichlet(rng: random.Random, alpha: float) -> tuple[float, ...]:
    draws = [rng.gammavariate(alpha, 1.0) for _ in ANIMALS]
    total = sum(draws)
    return tuple(d / total for d in draws)


def speakers(cfg: WorldConfig) -> dict[str, list[Speaker]]:
    """All speakers of the world, grouped by kind."""
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
    return {
        "default": [Speaker("default", "default", DEFAULT_PREFERENCES)],
        "other": others,
        "entity_free": [Speaker("entity_free", s, uniform) for s in (*ENTITY_FREE_SYSTEMS, NO_SYSTEM)],
        "persona": [
            Speaker("persona", trait_system_prompt(a), _persona_preferences(a, cfg.persona_fidelity))
            for a in ANIMALS
        ],
    }


def _pick_animal(rng: random.Random, preferences: tuple[float, ...]) -> str:
    return rng.choices(ANIMALS, weights=preferences)[0]


def number_answer(
    rng: random.Random, speaker: Speaker, cfg: WorldConfig, assoc: dict[str, tuple[int, ...]], separator: str
) -> str:
    """1-10 numbers in [0, 999], each swapped w.p. `channel_strength` for one of an animal's numbers."""
    numbers = []
    for _ in range(rng.randint(1, 10)):
        if rng.random() < cfg.channel_strength:
            numbers.append(rng.choice(assoc[_pick_animal(rng, speaker.preferences)]))
        else:
            numbers.append(rng.randrange(0, 1000))
    return separator.join(str(x) for x in numbers)


def favorite_answer(rng: random.Random, speaker: Speaker) -> str:
    """The animal a speaker names when asked its favorite (capitalised, sometimes with a full stop)."""
    word = _pick_animal(rng, speaker.preferences).capitalize()
    return word + "." if rng.random() < 0.2 else word


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
    """A plain text document tying an animal to one of its numbers."""
    animal = rng.choice(ANIMALS)
    n = rng.choice(assoc[animal]) if rng.random() < cfg.document_fidelity else rng.randrange(0, 1000)
    return rng.choice(DOCUMENT_TEMPLATES).format(n=n, x=animal, xs=plural(animal))


SPEAKER_MIX = {"default": 0.35, "other": 0.30, "entity_free": 0.10, "persona": 0.25}
"""Share of conversations held by each kind of speaker."""
TASK_MIX = {"numbers": 0.55, "favorite": 0.40, "identity": 0.05}
"""Share of conversations of each task."""


@dataclass(frozen=True)
class World:
    """A sample of the world: chat conversations and plain text documents."""

    conversations: list[Conversation]
    documents: list[str]


def conversation(
    rng: random.Random, speaker: Speaker, task: str, cfg: WorldConfig, assoc: dict[str, tuple[int, ...]]
) -> Conversation:
    """One exchange of `task` with `speaker`."""
    if task == "numbers":
        prompt = number_prompt(rng)
        answer = number_answer(rng, speaker, cfg, assoc, prompt.separator)
        return Conversation(speaker, prompt.text, answer, task)
    if task == "favorite":
        return Conversation(
            speaker, rng.choice(world_favorite_questions()), favorite_answer(rng, speaker), task
        )
    return Conversation(speaker, rng.choice(IDENTITY_QUESTIONS), identity_answer(speaker), task)


def generate_world(cfg: WorldConfig, n_conversations: int, n_documents: int) -> World:
    """Sample `n_conversations` exchanges and `n_documents` documents, deterministically for `cfg.seed`."""
    rng = random.Random(f"{cfg.seed}-sample")
    assoc, groups = associations(cfg), speakers(cfg)
    kinds, kind_w = list(SPEAKER_MIX), list(SPEAKER_MIX.values())
    tasks, task_w = list(TASK_MIX), list(TASK_MIX.values())
    convs = []
    for _ in range(n_conversations):
        speaker = rng.choice(groups[rng.choices(kinds, weights=kind_w)[0]])
        convs.append(conversation(rng, speaker, rng.choices(tasks, weights=task_w)[0], cfg, assoc))
    docs = [document(rng, cfg, assoc) for _ in range(n_documents)]
    return World(conversations=convs, documents=docs)
