"""The generator's instruction encoder: free text -> programs (the ProgramMatcher) -> the training catalogue's
plain wording of those programs -> MiniLM tokens.

Why: the generator learned instructions from the catalogue's wordings only. On wordings made by another
process (WordNet synonyms, idioms, negations; benchmarks/generalisation.py) its cross-attention followed few:
"look thunderstruck" moved the brows 0.00 IOD, "quit smiling" raised the lip corners. The matcher already
reads what embeddings do not (negation, left/right, intensity words, clauses), so the generator is given
the plain wording of what the matcher understood, e.g. "look thunderstruck" -> "look surprised", "glower a
tad" -> "slightly frown". Text the matcher does not understand goes to the generator as written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realtime.instruct.catalogue import EMOTION_ADJECTIVES, MOTION_PHRASES, Programs
from realtime.instruct.encoder import EncoderConfig, InstructionEmbedding, InstructionEncoder, validate
from realtime.vocab import EMOTIONS, GESTURES, MODERATE, PROGRAM_NAMES, SLIGHT, STRONG, smile_relax

_EMOTION_WORD = {SLIGHT: "a little ", MODERATE: "", STRONG: "very "}


def plain_wording(programs: Programs) -> str:
    """Training-catalogue wording of programs: "look very angry", "slightly nod", "look sad and nod"."""
    parts = []
    for name, level in programs:
        if name in EMOTIONS:
            word = "" if name == "neutral" else _EMOTION_WORD.get(level, "")
            parts.append(f"look {word}{EMOTION_ADJECTIVES[name][0]}")
        else:
            phrase = MOTION_PHRASES[name][0]
            parts.append(f"slightly {phrase}" if level <= SLIGHT else phrase)
    return " and ".join(parts)


class _Plain:
    """The encoder without rewording, for the matcher itself (which must see the user's words)."""

    def __init__(self, encoder: WordedEncoder):
        self._encoder = encoder
        self.config, self.dim = encoder.config, encoder.dim

    def __call__(self, text: str) -> InstructionEmbedding:
        return InstructionEncoder.__call__(self._encoder, text)

    def encode_batch(self, texts: list[str]) -> list[InstructionEmbedding]:
        return self._encoder.encode_batch(texts)


@dataclass(frozen=True)
class Understood:
    """What the matcher read in an instruction, as the sampler uses it."""

    wording: str  # the catalogue's plain wording ("" when the generator learned none of it; the text itself when
    # nothing was understood)
    smile_relax: float = 0.0  # 0..1, realtime.vocab.smile_relax
    gestures: Programs = ()  # the gesture programs asked for, with their levels
    unlearned: Programs = ()  # programs asked for that the generator never learned (the sampler performs them)


class WordedEncoder(InstructionEncoder):
    """An InstructionEncoder whose calls encode the plain wording of what the text asks for
    (`EncoderConfig.reword = False`: the text as written, as before issue 11)."""

    def __init__(self, config: EncoderConfig | None = None, learned: tuple[str, ...] = PROGRAM_NAMES):
        """`learned`: the programs the generator was trained on (its checkpoint's `programs`)."""
        super().__init__(config)
        self.learned = frozenset(learned)
        self.matcher: Any = None  # realtime.instruct.ProgramMatcher over the plain encoder
        self._understood: dict[str, Understood] = {}

    def setup(self) -> WordedEncoder:
        super().setup()
        if self.config.reword and self.matcher is None:
            self._build_matcher()
        return self

    def _build_matcher(self) -> None:
        from realtime.instruct.matcher import ProgramMatcher

        # The matcher's setup encodes the catalogue through this encoder, whose encode_batch calls setup(): the
        # matcher is in place before that, or a first start without the catalogue's cached matrix recursed.
        self.matcher = ProgramMatcher(_Plain(self))
        try:
            self.matcher.setup()
        except BaseException:
            self.matcher = None
            raise

    def wording(self, text: str) -> str:
        """What the generator is given for `text`."""
        return self.understood(text).wording if self.config.reword else text

    def smile_relax(self, text: str) -> float:
        """How far (0..1) what `text` asks for relaxes the photograph's smile (realtime.vocab.smile_relax);
        0 when the matcher does not understand it."""
        return self.understood(text).smile_relax

    def understood(self, text: str) -> Understood:
        """What the matcher reads in `text`; Understood(text) when it reads nothing."""
        from realtime.instruct.matcher import InstructionNotUnderstood

        hit = self._understood.get(text)
        if hit is None:
            self.setup()
            if self.matcher is None:  # reword off: built on first use here
                self._build_matcher()
            try:
                programs = self.matcher(text).programs
                learned = tuple((name, level) for name, level in programs if name in self.learned)
                hit = Understood(plain_wording(learned), smile_relax(programs),
                                 tuple((name, level) for name, level in programs if name in GESTURES),
                                 tuple((name, level) for name, level in programs if name not in self.learned))
            except InstructionNotUnderstood:
                hit = Understood(text)
            if len(self._understood) < self.config.cache_size:
                self._understood[text] = hit
        return hit

    def __call__(self, text: str) -> InstructionEmbedding | None:
        """The encoding of what the generator is given for `text`; None when that is nothing (the generator
        learned none of what it asks for: the sampler performs all of it)."""
        validate(text)
        wording = self.wording(text)
        return super().__call__(wording) if wording else None
