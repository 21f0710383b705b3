"""Read any sound file into mono float32 at the model's rate."""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from realtime.vocab import MODEL_RATE


class AudioError(ValueError):
    """The audio input cannot be used (missing, unreadable, empty)."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(S,) or (S, C) → (S,) float32 by averaging channels."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, rate: int, target: int = MODEL_RATE) -> np.ndarray:
    """Polyphase resampling (anti-aliased); exact for integer-ratio rates such as 48k/22.05k/8k → 16k."""
    if rate == target:
        return np.asarray(samples, dtype=np.float32)
    g = gcd(int(rate), int(target))
    return resample_poly(samples, target // g, int(rate) // g).astype(np.float32)


def load_audio(path: str | Path, target: int = MODEL_RATE) -> np.ndarray:
    """Any rate, mono or multichannel, any format libsndfile or ffmpeg reads → mono float32 at `target` Hz."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        import soundfile

        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception:  # formats libsndfile lacks (mp3, m4a, …): fall back to ffmpeg through PyAV
        samples, rate = _decode_with_av(path)
    samples = to_mono(samples)
    if samples.size == 0:
        raise AudioError(f"{path}: the audio is empty")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: the audio contains NaN or infinite samples")
    return resample(samples, rate, target)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate
