"""Free text → the animator's programs: nearest catalogue wording by MiniLM cosine similarity.

Intensity comes from the user's own words ("look a little annoyed" → angry 0.35), not from the matched
wording: the catalogue's intensity cues, else a word whose embedding sits near one side's cues ("hardly",
"immensely"; see `MatcherConfig.intensity_likeness`); "look sad and nod" is matched clause by clause when every
clause is understood. Negations are read from the words, since sentence embeddings barely tell "no smile" from
"smile": a negated program ("stop smiling", "no smile", "don't frown") is never added; a clause that only
negates asks for the relaxed neutral face.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from realtime.instruct.catalogue import (
    EMOTION_ADJECTIVES,
    EMOTION_NOUNS,
    HELD_OUT_WORDS,
    MODERATE_CUES,
    SLIGHT_CUES,
    STRONG_CUES,
    Instruction,
    Programs,
    intensity_from_words,
    reference_texts,
)
from realtime.instruct.directions import (
    EYE_WORDS,
    answered,
    counted,
    directed,
    directed_first,
    names_side,
    sideward_plain,
)
from realtime.instruct.encoder import InstructionEncoder, InstructionError, validate
from realtime.instruct.situations import SituationReader
from realtime.instruct.thesaurus import (
    base_forms,
    catalogue_words,
    intensity_reading,
    nearest_catalogue_words,
    unknown_words,
)
from realtime.vocab import EMOTIONS, MODERATE, SLIGHT, STRONG


class InstructionNotUnderstood(InstructionError):
    """Free text that is not close to any known emotion or motion."""


@dataclass(frozen=True)
class Match:
    programs: Programs
    similarity: float
    nearest_text: str


@dataclass
class MatcherConfig:
    # Cosine similarity of mean-pooled MiniLM embeddings. Tuned on this project's examples: accepted
    # instructions score >= 0.70 ("smile while nodding", per clause), off-topic text <= 0.50 ("turn off the
    # lights"; "compile the kernel" 0.26).
    threshold: float = 0.55
    suggestions: int = 3  # known instructions named when refusing
    # An intensity word no cue list names reads as slight (strong) when its embedding's cosine to the nearest
    # slight (strong) cue is at least `intensity_likeness` and `intensity_margin` above the nearest of the other
    # side. Calibrated leaving each cue out of its own list: 0.6 / 0.1 recognise 23 of the 32 cues from the others
    # and no word the catalogue uses to name a program ("serious" reads 0.76 strong: such words are never
    # candidates; the nearest among the rest, "broadly", reads 0.59).
    intensity_likeness: float = 0.6
    intensity_margin: float = 0.1
    # ... or, read first, when its thesaurus neighbourhood (or its adverb's) overlaps a cue's by `intensity_overlap`
    # and the other side's best by `intensity_margin` less (`thesaurus.intensity_reading`; "firmly" -> seriously
    # 0.39, "gravely" 0.29; unrelated adverbs 0.00-0.15: "quickly" 0.15, "kindly" 0.17)
    intensity_overlap: float = 0.25
    # Words the catalogue never uses are also tried as their nearest catalogue words by thesaurus neighbourhood
    # (`realtime.instruct.thesaurus`), when the text has at most `thesaurus_words` such words and each has a
    # reading: its best `thesaurus_tries` readings, of overlap >= `thesaurus_overlap` ("beam" -> smile 0.28,
    # "tip" -> tilt 0.17; unrelated words share 0.02-0.12, "joke" -> jolly 0.12). A reworded sentence scores its
    # MiniLM similarity less `thesaurus_floor` and less `thesaurus_cost` x (1 - overlap / the word's best
    # overlap): the word's closest neighbour wins ties ("ecstatic" -> overjoyed 0.54, not furious 0.32), and
    # the user's own words win over a rewording that matches little better. Chosen on the catalogue's held-out
    # wordings (`realtime.training.catalogue.heldout`, 400 drawn: exact 0.70 -> 0.97, refused 0.26 -> 0.00;
    # training wordings unchanged at 0.99) and on 40 lines of small talk (accepted 1 -> 3).
    thesaurus: bool = True
    thesaurus_words: int = 3
    thesaurus_tries: int = 2  # per word: a third reading misleads more than it finds ("livid" -> neutral)
    thesaurus_overlap: float = 0.15
    thesaurus_cost: float = 0.3
    thesaurus_floor: float = 0.05
    thesaurus_margin: float = 0.05  # more, when the user's own words already match ("purse your lips": a pout)
    # A text no wording is near may describe a situation to react to ("as if your team just lost"): read through
    # the emotions' appraisals (`realtime.instruct.situations`) before refusing it.
    situations: bool = True
    # Idioms (`realtime.instruct.idioms`) score their cosine less `idiom_cost`, so that where a plain wording is
    # about as near, the plain one wins ("make a grumpy face" took "make a pouty face" from pout). Chosen on the
    # catalogue's held-out wordings as the least cost that keeps them within half a point of their reading without
    # idioms (exact 0.966; cost 0.06: 0.956, 0.08: 0.962); `python -m benchmarks.idiom_wordings`, a blind set of
    # idiomatic instructions: followed 0.63 -> 0.84.
    idiom_cost: float = 0.08


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "realtime-avatar"


# Clause boundaries: ", and", "and", "while", "whilst", "then", "but", ",", ";" (a leading "you" dropped).
_CLAUSES = re.compile(r"\s*(?:,\s*and\b|\band\b|\bwhile\b|\bwhilst\b|\bthen\b|\bbut\b|,|;)\s*(?:you\s+)?")


class ProgramMatcher:
    def __init__(self, encoder: InstructionEncoder, catalogue: list[Instruction] | None = None,
                 config: MatcherConfig | None = None):
        self.encoder = encoder
        self.catalogue = catalogue or reference_texts(idioms=True)
        self.config = config or MatcherConfig()
        self._matrix: torch.Tensor | None = None  # (len(catalogue), 384) pooled, L2-normalised
        self._scores_matrix: np.ndarray | None = None  # the same, as numpy
        self._cues: dict[float, np.ndarray] | None = None  # SLIGHT / STRONG -> their cues' pooled embeddings
        # Words that name programs, and the cues' own words: never read as an intensity by likeness.
        # Idioms are read whole: their words ("hard", "nose") name nothing on their own.
        self._named = {w for i in self.catalogue if i.split != "idiom" for w in _words(i.text)} | _CUE_WORDS
        self._meanings = set(catalogue_words()) & self._named  # what an unknown word may be read as
        self.situations = SituationReader(encoder)
        idiom = np.array([i.split == "idiom" for i in self.catalogue])
        self._handicap = np.where(idiom, self.config.idiom_cost, 0.0).astype(np.float32)
        # an idiom of a side ("dart your eyes left") is no reading of a text that names none ("flutter your eyes")
        self._sided = idiom & np.array([names_side(i.text) for i in self.catalogue])

    def _cache_path(self) -> Path:
        content = {"texts": [i.text for i in self.catalogue], "model": "all-MiniLM-L6-v2",
                   "max_tokens": self.encoder.config.max_tokens}
        key = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
        return cache_dir() / f"instruction-matrix-{key}.pt"

    def setup(self) -> ProgramMatcher:
        """Pooled embeddings of every catalogue text, from the disk cache when this catalogue was seen before."""
        if self._matrix is not None:
            return self
        path = self._cache_path()
        try:
            matrix = torch.load(path, weights_only=True)
            if matrix.shape != (len(self.catalogue), self.encoder.dim):
                raise ValueError(f"cached matrix has shape {tuple(matrix.shape)}")
        except (OSError, ValueError, RuntimeError):  # absent, stale or unreadable: encode again
            texts = [i.text for i in self.catalogue]
            matrix = torch.stack([e.pooled for k in range(0, len(texts), 64)
                                  for e in self.encoder.encode_batch(texts[k:k + 64])])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
                    torch.save(matrix, tmp)
                os.replace(tmp.name, path)  # atomic: a concurrent start never reads half a file
            except OSError:
                pass  # a read-only cache only costs the next start the encoding again
        self._matrix = matrix
        self._scores_matrix = matrix.numpy()
        if self.config.thesaurus:
            nearest_catalogue_words("")  # loads the table now, not at a call's first unknown word
        if self.config.situations:
            self.situations.setup()
        return self

    def nearest(self, text: str, k: int = 1) -> list[tuple[Instruction, float]]:
        """The k catalogue entries closest to `text` or to its thesaurus rewordings, best first, with their cosine
        similarity (a rewording's less its cost)."""
        self.setup()
        # numpy, not torch: a few hundred dot products, where torch's thread pool costs milliseconds on busy cores
        scores = self._scores_matrix @ self.encoder(text).pooled.numpy() - self._handicap
        rewordings = self.rewordings(text)
        if rewordings:
            margin = self.config.thesaurus_margin if scores.max() >= self.config.threshold else 0.0
            embedded = self.encoder.encode_batch([r for r, _ in rewordings])
            for (_, cost), e in zip(rewordings, embedded):
                scores = np.maximum(scores, self._scores_matrix @ e.pooled.numpy() - self._handicap - cost - margin)
        if not names_side(text):
            scores = np.where(self._sided, -1.0, scores)
        top = np.argsort(-scores)[:k]
        return [(self.catalogue[int(i)], float(scores[i])) for i in top]

    def rewordings(self, text: str) -> list[tuple[str, float]]:
        """`text` with every word the catalogue never uses read as one of its nearest catalogue words by thesaurus,
        with the cost of that reading ("look aghast" -> "look flabbergasted", 0.05). None when a word has no such
        reading: the text is about something else ("hello everyone" would read "hello" as a smile)."""
        cfg = self.config
        unknown = unknown_words(text, self._named) if cfg.thesaurus else []
        if not unknown or len(unknown) > cfg.thesaurus_words:
            return []
        readings = []
        for word in unknown:
            near = [(c, s) for c, s in nearest_catalogue_words(word, self._meanings) if s >= cfg.thesaurus_overlap]
            as_cue = intensity_reading(word)
            if (as_cue is not None and as_cue[1] > (near[0][1] if near else 0.0)) or (
                    not near and self._intensity_by_likeness(f"a {word}" if f"a {word}" in text.lower() else word)):
                continue  # "enormously" (nearer "hugely" than "sad"), "a tad": an intensity, stays as written
            if not near:
                return []
            readings.append([(word, meaning, cfg.thesaurus_floor + cfg.thesaurus_cost * (1 - overlap / near[0][1]))
                             for meaning, overlap in near[:cfg.thesaurus_tries]]
                            # of two, one may stay as written ("gaze at the sky" -> "look at the sky"); with three
                            # that would be 27 sentences to encode
                            + ([(word, word, 0.0)] if len(unknown) == 2 else []))
        out = []
        for chosen in itertools.product(*readings):
            if all(word == meaning for word, meaning, _ in chosen):
                continue  # the text itself
            reworded = text.lower()
            for word, meaning, _ in chosen:
                reworded = re.sub(rf"\b{re.escape(word)}\b", meaning, reworded)
            out.append((reworded, sum(cost for _, _, cost in chosen)))
        return out

    def intensity(self, text: str) -> float | None:
        """The intensity the user's words name: a cue ("slightly", "very"), else a word like one side's cues."""
        level = intensity_from_words(text)
        return level if level is not None else self._intensity_by_likeness(text)

    def _intensity_by_likeness(self, text: str) -> float | None:
        said = _words(text)
        # not "sadly" (nod sadly) nor "happily": a program's own word, in any form, names no intensity
        words = [w for w in said if len(w) > 2 and not any(f in self._named for f in base_forms(w))]
        pairs = {f"a {w}" for a, w in zip(said, said[1:]) if a == "a"}  # "a tad": the article carries it
        candidates = words + [f"a {w}" for w in words if f"a {w}" in pairs]
        if not candidates:
            return None
        cfg, found = self.config, set()
        for word in words if cfg.thesaurus else []:  # first: "feebly" lists "faintly"; "enormous" -> "enormously"
            reading = intensity_reading(word)
            if reading and reading[1] >= cfg.intensity_overlap and reading[1] - reading[2] >= cfg.intensity_margin:
                found.add(SLIGHT if reading[0] == "slight" else STRONG)
        if found:
            return min(found)
        if self._cues is None:
            self._cues = {level: np.stack([e.pooled.numpy() for e in self.encoder.encode_batch(list(cues))])
                          for level, cues in ((SLIGHT, SLIGHT_CUES), (STRONG, STRONG_CUES))}
        for candidate in candidates:
            vector = self.encoder(candidate).pooled.numpy()
            slight, strong = (float((self._cues[level] @ vector).max()) for level in (SLIGHT, STRONG))
            best, other, level = (slight, strong, SLIGHT) if slight >= strong else (strong, slight, STRONG)
            if best >= self.config.intensity_likeness and best - other >= self.config.intensity_margin:
                found.add(level)
        return min(found) if found else None  # slight wins, as with the cues ("very slightly")

    def __call__(self, text: str) -> Match:
        validate(text)
        text = sideward_plain(text)
        match = self._match(text)
        refused = negated_programs(text)
        if not refused:
            return match
        kept = tuple((name, level) for name, level in match.programs if name not in refused)
        level = self.intensity(text) or MODERATE
        return Match(kept or (("neutral", level),), match.similarity, match.nearest_text)

    def _match(self, text: str) -> Match:
        clauses = _clauses(text)
        if len(clauses) > 1:
            combined = self._match_clauses(clauses)
            if combined is not None:
                return combined
        if negated_programs(text) and (_only_negates(text) or _oscillation(text)):  # "stop bobbing up and down"
            return Match((("neutral", self.intensity(text) or MODERATE),), 1.0, "(negation)")
        gesture = head_oscillation(text)
        if gesture is not None:
            return Match(((gesture, self.intensity(text) or STRONG),), 1.0, "(head oscillation)")
        candidates = self.nearest(text, k=64)  # deep enough for a directed candidate
        best, score = directed_first(text, candidates, self.config.threshold)
        if score >= self.config.threshold:
            level = self.intensity(text)
            return Match(_with_emotion(text, _adjusted(text, best.programs, level), level), score, best.text)
        situation = self.situations(text) if self.config.situations else None
        if situation is not None:
            return Match(((situation[0], self.intensity(text) or MODERATE),), situation[1], "(situation)")
        suggestions = list(dict.fromkeys(i.text for i, _ in candidates))[:self.config.suggestions]
        raise InstructionNotUnderstood(
            f"instruction not understood: {text!r} is not close to any known emotion or motion "
            f"(best similarity {score:.2f} < {self.config.threshold:.2f}); try e.g. "
            + ", ".join(f'"{s}"' for s in suggestions))

    def _match_clauses(self, clauses: list[str]) -> Match | None:
        """One program set per clause, when every clause is understood or only names an intensity
        ("look furious, but only a little"); None otherwise."""
        matched, intensity_only = [], []
        for clause in clauses:
            if negated_programs(clause) and (_only_negates(clause) or _oscillation(clause)):
                continue  # "no smile": removed from the result by the caller, asks for nothing itself
            gesture = head_oscillation(clause)
            if gesture is not None:
                matched.append((clause, Instruction(clause, ((gesture, STRONG),), "rule"), 1.0))
                continue
            best, score = directed_first(clause, self.nearest(clause, k=64), self.config.threshold)
            if score >= self.config.threshold:
                matched.append((clause, best, score))
            elif _names_only_intensity(clause):
                intensity_only.append(clause)
            else:
                return None
        if not matched or (len(matched) == 1 and not intensity_only and len(clauses) == 1):
            return None
        programs: dict[str, float] = {}
        for clause, best, _ in matched:
            level = self.intensity(clause)
            if level is None and intensity_only:
                level = self.intensity(intensity_only[0])
            programs.update(_with_emotion(clause, _adjusted(clause, best.programs, level), level))
        return Match(tuple(programs.items()), min(s for _, _, s in matched), " + ".join(b.text for _, b, _ in matched))


# Two directions joined ("up and down", "side to side"): one movement back and forth, never two clauses.
_OSCILLATION = re.compile(r"\b(?:up and down|down and up|side to side|left and right|right and left|back and forth"
                          r"|to and fro)\b", re.IGNORECASE)


def _clauses(text: str) -> list[str]:
    """The text split at clause boundaries, joined direction pairs ("up and down") kept whole."""
    guarded = _OSCILLATION.sub(lambda m: m.group(0).replace(" ", "_"), text)  # "up_and_down": no word "and"
    return [c.replace("_", " ") for c in _CLAUSES.split(guarded) if len(c.strip()) > 1]


def head_oscillation(text: str) -> str | None:
    """A head moved "up and down" is a nod, "side to side" a shake; sentence embeddings read "from side to side"
    as a tilt and "up and down" as a look down. None when the text names no such pair, moves the eyes, or says
    not to (see negated_programs)."""
    gesture = _oscillation(text)
    return None if gesture is None or _NEGATION_WORD.search(text.lower()) else gesture


def _oscillation(text: str) -> str | None:
    pair = _OSCILLATION.search(text)
    if pair is None or set(re.findall(r"[a-z]+", text.lower())) & EYE_WORDS:
        return None
    return "nod" if "up" in pair.group(0).lower() else "shake_head"


# A negation word, up to two words, then a program's word: "no smile", "stop smiling", "don't you dare frown".
_NEGATION = re.compile(r"\b(?:no|not|don't|dont|do not|never|stop|quit|without|less)\b(?:\s+[a-z']+){0,2}?\s+"
                       r"(smil|grin|laugh|happ|frown|scowl|ang|sad|nod|shak|blink|wink|pout)[a-z]*")
_NEGATION_WORD = re.compile(r"\b(?:no|not|don't|dont|do not|never|stop|quit|without)\b")
_NEGATED = {"smil": ("smile", "grin", "happy"), "grin": ("grin", "smile", "happy"), "laugh": ("happy", "smile", "grin"),
            "happ": ("happy", "smile", "grin"), "frown": ("frown", "angry"), "scowl": ("frown", "angry"),
            "ang": ("angry",), "sad": ("sad",), "nod": ("nod",), "shak": ("shake_head",), "blink": ("blink",),
            "wink": ("wink",), "pout": ("pout",)}
_NEGATION_ONLY = {"no", "not", "don't", "dont", "do", "never", "stop", "quit", "without", "less", "please", "any",
                  "more", "your", "you", "be", "look", "the", "a", "that", "so", "much", "all", "at"}


def negated_programs(text: str) -> set[str]:
    """The programs the text says not to do ("no smile" → smile, grin, happy; "stop moving your head up and
    down" → nod)."""
    refused = {p for stem in _NEGATION.findall(text.lower()) for p in _NEGATED[stem]}
    gesture = _oscillation(text) if _NEGATION_WORD.search(text.lower()) else None
    return refused | {gesture} if gesture else refused


def _only_negates(text: str) -> bool:
    """"no smile", "stop smiling please": nothing asked for besides the negation."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    return all(w in _NEGATION_ONLY or any(w.startswith(stem) for stem in _NEGATED) for w in words)


_FILLER = {"but", "only", "just", "not", "too", "much", "please", "do", "it", "that", "though", "and", "yet"}


def _names_only_intensity(clause: str) -> bool:
    """"but only a little", "very much so": an intensity with nothing else to match."""
    if intensity_from_words(clause) is None:
        return False
    return set(re.findall(r"[a-z']+", clause.lower())) <= _CUE_WORDS | _FILLER


_CUE_WORDS = {w for cues in (SLIGHT_CUES, MODERATE_CUES, STRONG_CUES) for cue in cues for w in cue.split()}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


# An emotion's own words ("furious", "sadly" by its base form) beside a motion: "a furious scowl", "nod sadly".
_EMOTION_WORDS = {w: emotion for emotion, words in (*EMOTION_ADJECTIVES.items(), *EMOTION_NOUNS.items())
                  for w in words if emotion != "neutral" and " " not in w and w not in HELD_OUT_WORDS}


def _with_emotion(text: str, programs: Programs, level: float | None) -> Programs:
    """A motion matched in a text that also names an emotion gets that emotion too; the nearest catalogue wording
    holds one of the two ("give me a furious scowl" is nearest to "scowl")."""
    if any(name in EMOTIONS for name, _ in programs):
        return programs
    named = [_EMOTION_WORDS[f] for w in _words(text) for f in base_forms(w) if f in _EMOTION_WORDS]
    if not named or named[0] in negated_programs(text):
        return programs
    return ((named[0], level or MODERATE), *programs)


def _adjusted(text: str, programs: Programs, level: float | None) -> Programs:
    """The user's own intensity (`level`, read from their words), direction, count and answer words win over the
    matched wording's."""
    if level is not None:
        programs = tuple((name, level) for name, _ in programs)
    return tuple((answered(text, counted(text, directed(text, name))), level) for name, level in programs)


def evaluate(matcher: ProgramMatcher, instructions: list[Instruction]) -> dict[str, float]:
    """Share of instructions matched to exactly their programs and intensities, to the right program names,
    and refused (as not understood)."""
    texts = [i.text for i in instructions]
    for k in range(0, len(texts), 64):  # batched encoding fills the cache much faster than one by one
        matcher.encoder.encode_batch(texts[k:k + 64])
    exact = names = refused = 0
    for ins in instructions:
        try:
            got = matcher(ins.text).programs
        except InstructionNotUnderstood:
            refused += 1
            continue
        exact += dict(got) == dict(ins.programs)
        names += {n for n, _ in got} == {n for n, _ in ins.programs}
    n = max(len(instructions), 1)
    return {"count": len(instructions), "exact": exact / n, "programs": names / n, "refused": refused / n}
