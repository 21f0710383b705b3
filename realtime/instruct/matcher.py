"""Free text → the animator's programs: nearest catalogue wording by MiniLM cosine similarity."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from realtime.instruct.catalogue import Instruction, intensity_from_words, reference_texts
from realtime.instruct.encoder import InstructionEncoder, InstructionError, validate


class InstructionNotUnderstood(InstructionError):
    pass


@dataclass(frozen=True)
class Match:
    programs: tuple[tuple[str, float], ...]
    similarity: float
    nearest_text: str


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "realtime-avatar"


_SPLIT = re.compile(r"\s*(?:,\s*and|\band\b|\bwhile\b|\bthen\b|,|;)\s*(?:you\s+)?")


class ProgramMatcher:
    def __init__(self, encoder: InstructionEncoder, references: list[Instruction] | None = None,
                 threshold: float = 0.55):
        self.encoder = encoder
        self.references = references or reference_texts()
        self.threshold = threshold
        self._matrix: torch.Tensor | None = None

    def setup(self) -> "ProgramMatcher":
        texts = [r.text for r in self.references]
        key = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]
        path = cache_dir() / f"instruction-matrix-{key}.pt"
        if path.is_file():
            self._matrix = torch.load(path)
        else:
            self.encoder.setup()
            pooled = [e.pooled for i in range(0, len(texts), 64)
                      for e in self.encoder.encode_batch(texts[i:i + 64])]
            self._matrix = torch.stack(pooled)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self._matrix, path)
        return self

    def _nearest(self, text: str) -> tuple[Instruction, float, list[str]]:
        scores = self._matrix @ self.encoder(text).pooled
        order = torch.argsort(scores, descending=True)
        best = self.references[int(order[0])]
        suggestions = list(dict.fromkeys(self.references[int(i)].text for i in order[:8]))[:3]
        return best, float(scores[order[0]]), suggestions

    def __call__(self, text: str) -> Match:
        validate(text)
        if self._matrix is None:
            self.setup()
        parts = [p for p in _SPLIT.split(text) if p and len(p.strip()) > 1]
        if len(parts) > 1:  # "look sad and nod": one program per clause when every clause is understood
            matches = [self._nearest(p) + (p,) for p in parts]
            known = [m for m in matches if m[1] >= self.threshold]
            if len(known) > 1 and len(known) + sum(intensity_from_words(m[3]) is not None
                                                   for m in matches if m not in known) == len(matches):
                programs: dict[str, float] = {}
                for ref, _, _, part in known:
                    programs.update(self._with_intensity(part, ref.programs, 0, ref.text).programs)
                return Match(tuple(programs.items()), min(m[1] for m in known),
                             " + ".join(m[0].text for m in known))
        best, score, suggestions = self._nearest(text)
        if score >= self.threshold:
            return self._with_intensity(text, best.programs, score, best.text)
        raise InstructionNotUnderstood(
            f"instruction not understood: {text!r} is not close to any known emotion or motion "
            f"(best similarity {score:.2f} < {self.threshold:.2f}); try e.g. " +
            ", ".join(f'"{s}"' for s in suggestions))

    @staticmethod
    def _with_intensity(text: str, programs, score: float, nearest: str) -> Match:
        level = intensity_from_words(text)
        if level is not None:
            programs = tuple((name, level) for name, _ in programs)
        return Match(tuple(programs), score, nearest)
