"""Real human speech recordings that exist offline, for evaluating a model trained on synthetic voices.

See realtime/training/corpus/README.md for where each set comes from and its licence. Missing sets are skipped:
`paths()` returns what is installed (possibly nothing), and `require()` says what to install.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

ALSA_DIR = Path("/usr/share/sounds/alsa")
KLETTRES_DIR = Path("/usr/share/klettres")


class HumanSpeechMissing(FileNotFoundError):
    """No real speech recording is installed on this machine."""


@dataclass(frozen=True)
class Recording:
    path: Path
    text: str  # what is said
    source: str  # "cmu-arctic", "alsa-utils" or "klettres"
    licence: str


def _pysptk_dir() -> Path | None:
    # find_spec locates the package without importing it (and its compiled extension).
    spec = importlib.util.find_spec("pysptk")
    return Path(spec.origin).parent / "example_audio_data" if spec and spec.origin else None


def recordings() -> list[Recording]:
    out: list[Recording] = []
    arctic = _pysptk_dir()
    if arctic and (arctic / "arctic_a0007.wav").is_file():
        out.append(Recording(arctic / "arctic_a0007.wav", "And you always want to see it in the superlative degree.",
                             "cmu-arctic", "CMU ARCTIC licence (free for any use, keep the notice)"))
    for wav in sorted(ALSA_DIR.glob("*.wav")):
        if wav.stem != "Noise":  # the one file that is not speech
            out.append(Recording(wav, wav.stem.replace("_", " "), "alsa-utils", "GPL-2"))
    for lang in ("en", "en_GB"):
        for ogg in sorted((KLETTRES_DIR / lang).glob("*/*.ogg")):
            out.append(Recording(ogg, ogg.stem, f"klettres-{lang}", "GPL-2+"))
    return out


def paths() -> list[Path]:
    """Every installed real-speech file (longest material first: read sentence, phrases, then words)."""
    return [r.path for r in recordings()]


def require() -> list[Recording]:
    found = recordings()
    if not found:
        raise HumanSpeechMissing("no real speech recordings found: install the Debian packages alsa-utils and "
                                 "klettres-data, and the PyPI package pysptk (see realtime/training/corpus/README.md)")
    return found
