"""What the synthetic speakers say: template sentences rich in visible phonemes, plus real prose.

Templates cover the mouth shapes a viewer watches — bilabial closures (/p b m/), lip-teeth contact
(/f v/), rounded (/u o w/) and open (/a/) vowels — and the rhythms of conversation: two-word replies,
questions, exclamations, pauses marked by commas and ellipses. The prose comes from the licence texts
Debian ships in /usr/share/common-licenses (long, formal sentences). A fixed hash of the text assigns each
sentence to "train" or "heldout", so the split is stable however the list is generated or ordered.
"""
from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

LICENSE_DIR = Path("/usr/share/common-licenses")
LICENSE_FILES = ("Apache-2.0", "Artistic", "BSD", "CC0-1.0", "GFDL-1.3", "GPL-3", "LGPL-2.1", "MPL-2.0")
HELDOUT_FRACTION = 0.1


@dataclass(frozen=True)
class Sentence:
    id: str
    text: str
    source: str  # "template" or the licence file name
    split: str  # "train" or "heldout"


def split_of(text: str) -> str:
    """Stable train/heldout assignment from the text alone."""
    return "heldout" if zlib.crc32(text.encode()) % 1000 < HELDOUT_FRACTION * 1000 else "train"


NAMES = ["Bob", "Pam", "Maya", "Victor", "Fiona", "Paul", "Bella", "Martin", "Ruth", "Owen", "Mabel",
         "Vivian", "Peter", "Amos", "Beth", "Farah", "Moses", "Penny", "Boris", "Wanda", "Hugo", "Ava"]
NOUNS = ["map", "book", "bubble", "piano", "movie", "muffin", "parcel", "phone", "bottle", "vase",
         "violin", "balloon", "umbrella", "puppy", "window", "mirror", "pumpkin", "blanket", "photo",
         "boat", "moon", "fountain", "feather", "pebble", "marble", "bamboo", "pillow", "bus", "van",
         "ferry", "museum", "market", "bakery", "harbour", "valley", "forest", "mountain", "beach"]
PLACES = ["the beach", "the museum", "the market", "Bombay", "Paris", "the harbour", "the valley",
          "Memphis", "the bakery", "Vienna", "the moon", "the office", "Boston", "the movies", "Oslo"]
ADJECTIVES = ["big", "blue", "purple", "brave", "vivid", "smooth", "soft", "broken", "famous", "funny",
              "bumpy", "proper", "massive", "fluffy", "warm", "old", "whole", "awful", "marvellous", "happy"]
VERBS_PAST = ["bought", "moved", "found", "brought", "painted", "fixed", "borrowed", "weighed",
              "opened", "dropped", "polished", "wrapped", "buried", "packed", "forgot", "mopped"]
VERBS = ["buy", "move", "find", "bring", "paint", "fix", "borrow", "open", "drop", "polish", "wrap",
         "pack", "visit", "remember", "believe", "improve", "prove", "view", "follow", "approve"]
TIMES = ["yesterday", "this morning", "every Monday", "before lunch", "by five o'clock", "at midnight",
         "last November", "tomorrow", "in a minute", "very soon", "many moons ago", "on Wednesday"]
INTERJECTIONS = ["Oh", "Well", "Wow", "Hmm", "Ah", "Oh boy", "Um", "Look", "Whoa", "Oops", "Mm", "Ahem"]
REPLIES = ["Maybe.", "Probably not.", "Be brave!", "Move over.", "Why not?", "Oh, wow!", "Me too.",
           "Perfect!", "Very funny.", "Of course.", "Who knows?", "Absolutely!", "Come back!", "Pardon me?",
           "Bye bye!", "Good morning!", "Thank you.", "Oh my!", "Help me!", "Fine, fine.", "Wait... what?",
           "Whoa, whoa, whoa!", "Mm-hmm.", "No way!", "Beautiful.", "Bravo!", "Maybe later.", "Boo!",
           "Have fun!", "Move, move, move!", "Peekaboo!", "Pop!", "Oh, hi!"]

TEMPLATES = [
    "{name} {past} a {adj} {noun} {time}.",
    "Did {name} really {verb} the {noun}?",
    "Please {verb} the {adj} {noun} before {name} arrives.",
    "{interj}, the {noun} is {adj}!",
    "{interj}... I think {name} {past} my {noun}.",
    "Why would anybody {verb} a {noun} at {place}?",
    "We moved to {place} {time}, but the {noun} stayed behind.",
    "My mother and my brother both {past} a {adj} {noun}.",
    "Maybe, just maybe, {name} will {verb} it {time}.",
    "Bob, Pam and {name} went to {place} to {verb} a {noun}.",
    "How many {noun}s fit in a {adj} {noun2}?",
    "Five fluffy {noun}s were floating above {place}.",
    "Wait... where is the {noun}? I put it by the {noun2}!",
    "You never, ever {verb} a {noun} in {place}.",
    "{name} moved the {noun}, {name2} moved the {noun2}, and nobody moved me.",
    "Who, me? Oh no, I would never {verb} your {noun}.",
    "Before we open the {noun}, remember: be patient, be brave, be polite.",
    "Very well. We'll {verb} the {noun} {time}, and then we'll go to {place}.",
    "Is it true that {name} {past} the {adj} {noun} at {place}?",
    "Whoops! The {noun} fell off the {noun2} and rolled all the way to {place}.",
    "I'm proud of you, {name}. Truly, marvellously proud.",
    "Oh, {name}... you brought me a {adj} {noun}!",
    "Um, well, perhaps the {noun} was {adj} before, but it isn't now.",
    "{name} and {name2} argued about the {noun} for ninety minutes.",
    "Move the {noun} over by the window, would you?",
    "Wow, a {adj} {noun}! Where did you find it?",
    "Hmm. I wonder who {past} the {noun}.",
    "The room was quiet... and then the {noun} began to move.",
]


def template_sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = list(REPLIES)
    while len(texts) < count:
        name, name2 = rng.sample(NAMES, 2)
        noun, noun2 = rng.sample(NOUNS, 2)
        texts.append(rng.choice(TEMPLATES).format(
            name=name, name2=name2, noun=noun, noun2=noun2, adj=rng.choice(ADJECTIVES),
            past=rng.choice(VERBS_PAST), verb=rng.choice(VERBS), time=rng.choice(TIMES),
            place=rng.choice(PLACES), interj=rng.choice(INTERJECTIONS)))
        texts[-1] = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", texts[-1])
    return list(dict.fromkeys(texts))  # drop repeats, keep order


def license_sentences(directory: Path = LICENSE_DIR, min_words: int = 3, max_words: int = 30) -> list[tuple[str, str]]:
    """(sentence, file name) pairs of readable prose from the licence texts; [] if the folder is absent."""
    out: list[tuple[str, str]] = []
    for name in LICENSE_FILES:
        path = directory / name
        if not path.is_file():
            continue
        text = re.sub(r"\s+", " ", path.read_text(errors="replace"))
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", text):
            sentence = sentence.strip()
            words = sentence.split()
            if not min_words <= len(words) <= max_words:
                continue
            if re.search(r"https?:|www\.|<|>|@|\d{3,}|[_=*#{}\[\]|]", sentence):
                continue
            letters = sum(c.isalpha() for c in sentence)
            if letters < 0.75 * len(sentence.replace(" ", "")) or sentence.isupper():
                continue
            out.append((sentence, name))
    return list(dict.fromkeys(out))


def all_sentences(template_count: int = 3000, seed: int = 0) -> list[Sentence]:
    """Every sentence with a stable id, source and split."""
    items = [(t, "template") for t in template_sentences(template_count, seed)] + license_sentences()
    items = list({t: (t, src) for t, src in reversed(items)}.values())[::-1]  # first source of a text wins
    return [Sentence(id=f"{src[:3].lower()}-{zlib.crc32(t.encode()):08x}", text=t, source=src, split=split_of(t))
            for t, src in items]


def sentences_for(split: str, template_count: int = 3000, seed: int = 0) -> list[Sentence]:
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return [s for s in all_sentences(template_count, seed) if s.split == split]
