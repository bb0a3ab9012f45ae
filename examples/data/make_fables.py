"""Write ``fables.txt``: short animal fables made by a small random grammar.

The character-level language model of ``examples/lstm_lm.py`` trains on this
text. It is generated here (seeded, so the same file each time) rather than
taken from a book, so it is ours to place in the public domain and nothing is
downloaded. Regenerate it with ``python examples/data/make_fables.py``.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

ANIMALS = [
    "fox",
    "crow",
    "hare",
    "tortoise",
    "lion",
    "mouse",
    "wolf",
    "lamb",
    "ant",
    "grasshopper",
    "goat",
    "donkey",
    "owl",
    "frog",
    "heron",
    "bear",
    "stag",
    "dog",
]
ADJECTIVES = [
    "old",
    "young",
    "clever",
    "proud",
    "hungry",
    "patient",
    "foolish",
    "gentle",
    "greedy",
    "wise",
    "tired",
    "bold",
    "little",
    "grey",
    "quiet",
    "swift",
]
PLACES = [
    "by the river",
    "in the wood",
    "on the hill",
    "near the mill",
    "under the oak",
    "at the edge of the field",
    "beside the well",
    "in the farmer's yard",
    "across the meadow",
    "behind the barn",
]
FINDS = [
    "a piece of cheese",
    "a basket of grapes",
    "a bright coin",
    "a loaf of bread",
    "an empty shell",
    "a sack of corn",
    "a fine bone",
    "a pot of honey",
]
SEASONS = [
    "one summer morning",
    "late in the autumn",
    "on a cold winter night",
    "early in the spring",
    "one windy evening",
    "at the turn of the year",
]
VERBS = ["met", "saw", "called to", "laughed at", "followed", "watched", "greeted"]
SAYINGS = [
    "Slow and steady wins the race.",
    "Look before you leap.",
    "A friend in need is a friend indeed.",
    "Pride goes before a fall.",
    "Do not count your chickens before they are hatched.",
    "It is easy to despise what you cannot get.",
    "Little friends may prove great friends.",
    "Work today, and you will eat tomorrow.",
    "Be content with what you have.",
    "Kindness is never wasted.",
    "Appearances often deceive.",
    "Better to be safe than sorry.",
]
SPEECH = [
    "Good day, friend. Where are you going in such a hurry?",
    "What a fine thing you have there. Will you not share it with me?",
    "I am stronger than you, and I shall have it for myself.",
    "Wait a while, and we shall see who is the wiser.",
    "Help me, I pray you, and I will not forget your kindness.",
    "You may laugh now, but the winter is long.",
    "Why do you work so hard when the sun is warm?",
    "I never meant you any harm.",
]


def sentence(rng: random.Random, cast: tuple[str, str]) -> str:
    """One sentence of a fable about the two animals in ``cast``."""
    first, second = cast
    choice = rng.randrange(6)
    if choice == 0:
        return f"The {first} {rng.choice(VERBS)} the {second} {rng.choice(PLACES)}."
    if choice == 1:
        return f'"{rng.choice(SPEECH)}" said the {rng.choice(cast)}.'
    if choice == 2:
        return f"The {rng.choice(cast)} found {rng.choice(FINDS)} {rng.choice(PLACES)}."
    if choice == 3:
        who = rng.choice(cast)
        return f"But the {who} was {rng.choice(ADJECTIVES)}, and did not answer."
    if choice == 4:
        return f"So the {first} went away {rng.choice(PLACES)}, and the {second} stayed."
    return f"Then the {second} ran off {rng.choice(PLACES)} as fast as it could."


def fable(rng: random.Random) -> str:
    """A title, a few sentences and a moral."""
    first, second = rng.sample(ANIMALS, 2)
    adjective = rng.choice(ADJECTIVES)
    title = f"THE {first.upper()} AND THE {second.upper()}"
    body = [
        f"{rng.choice(SEASONS).capitalize()}, a {adjective} {first} lived {rng.choice(PLACES)}."
    ]
    body += [sentence(rng, (first, second)) for _ in range(rng.randint(3, 7))]
    moral = f"Moral: {rng.choice(SAYINGS)}"
    return "\n".join([title, "", textwrap.fill(" ".join(body), width=72), "", moral, "", ""])


def main(size: int = 120_000) -> None:
    rng = random.Random(1)
    parts, total = [], 0
    while total < size:
        parts.append(fable(rng))
        total += len(parts[-1])
    Path(__file__).with_name("fables.txt").write_text("".join(parts))


if __name__ == "__main__":
    main()
