"""An instruction that describes a situation rather than a face ("react as if your team just lost") → an emotion.

Such wordings share few words with any catalogue wording, so the matcher's nearest wording falls below its
threshold and the instruction was refused. The emotions' appraisals (`realtime.instruct.appraisals`: the
situations that cause each one, written from appraisal theory, in no instruction's words) are what such a
wording is compared with instead: MiniLM cosine to each emotion's appraisals, the mean of its `top` best. It is
read only where the matcher refuses, so it never changes what the catalogue already matches.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from realtime.instruct.appraisals import APPRAISALS
from realtime.instruct.encoder import InstructionEncoder

# The framing a user puts around a situation; it carries no emotion, only dilutes the cosine.
_FRAMING = re.compile(r"^(?:please\s+)?(?:(?:(?:re)?act|behave|look|pretend|imagine|be|respond)\b)?\s*"
                      r"(?:(?:as|like)(?:\s+(?:if|though))?\b|that\b)?\s+", re.IGNORECASE)


@dataclass
class SituationConfig:
    # Chosen leaving each appraisal out of its own emotion's list (`benchmarks.situations`, before its validation
    # set was read): the mean of the best 2 cosines, accepted at >= 0.40 and 0.06 above the next emotion, reads
    # 31 % of held-out appraisals right and 11 % wrong (a refusal, which asks the user to reword, beats a wrong
    # face) and refuses every chat line of `benchmarks.matcher_wordings` (their best: 0.39).
    threshold: float = 0.40
    margin: float = 0.06
    top: int = 2


class SituationReader:
    def __init__(self, encoder: InstructionEncoder, config: SituationConfig | None = None):
        self.encoder = encoder
        self.config = config or SituationConfig()
        self.emotions = list(APPRAISALS)
        self._matrices: list[np.ndarray] | None = None  # per emotion: (appraisals, 384) pooled, L2-normalised

    def setup(self) -> SituationReader:
        if self._matrices is None:
            self._matrices = [np.stack([e.pooled.numpy() for e in self.encoder.encode_batch(list(APPRAISALS[name]))])
                              for name in self.emotions]
        return self

    def scores(self, text: str, leave_out: str | None = None) -> dict[str, float]:
        """Per emotion: the mean of the `top` best cosines of the text (its framing removed) to its appraisals."""
        self.setup()
        vector = self.encoder(_FRAMING.sub("", text.strip()) or text).pooled.numpy()
        out = {}
        for name, matrix in zip(self.emotions, self._matrices or []):
            cos = np.sort([float(c) for c, a in zip(matrix @ vector, APPRAISALS[name]) if a != leave_out])[::-1]
            out[name] = float(cos[: self.config.top].mean())
        return out

    def __call__(self, text: str, leave_out: str | None = None) -> tuple[str, float] | None:
        """(emotion, score) when the text reads as one emotion's situation, else None."""
        ranked = sorted(self.scores(text, leave_out).items(), key=lambda kv: -kv[1])
        (best, score), (_, second) = ranked[0], ranked[1]
        if score >= self.config.threshold and score - second >= self.config.margin:
            return best, score
        return None
