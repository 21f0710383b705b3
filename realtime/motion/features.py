"""Audio features for the motion generator: causal log-mel, 4 feature frames per 25 fps motion frame.

Framing is causal: feature frame i ends exactly at sample 160*(i+1) (a 25 ms window that reaches 15 ms into
the past of its 10 ms hop), so frame i is computable as soon as its hop has arrived and a stream never waits
for audio it does not need. The stream is treated as preceded by digital silence. Normalisation uses fixed
global per-bin statistics measured on the training corpus (stored in the checkpoint): no utterance-level
statistics, so streaming and offline features are identical.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from realtime.vocab import MODEL_RATE, SAMPLES_PER_FRAME

HOP = 160  # 10 ms
WINDOW = 400  # 25 ms
N_FFT = 512
FEATURES_PER_MOTION_FRAME = SAMPLES_PER_FRAME // HOP  # 4
LOG_FLOOR = 1e-6


class FeatureError(ValueError):
    """Audio handed to the feature extractor is unusable (wrong shape, not finite)."""


@dataclass
class FeatureConfig:
    n_mels: int = 80
    fmin: float = 40.0
    fmax: float = 7600.0
    # Global normalisation, per mel bin (identity until measured on a corpus).
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.mean:
            return np.zeros(self.n_mels, np.float32), np.ones(self.n_mels, np.float32)
        return np.asarray(self.mean, np.float32), np.maximum(np.asarray(self.std, np.float32), 1e-3)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(N_FFT//2+1, n_mels) triangular HTK-mel filters, area-normalised (Slaney style)."""
    freqs = np.linspace(0, MODEL_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(fmin)), _hz_to_mel(np.array(fmax)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    return bank.T.astype(np.float32)


class LogMel:
    """Stateless log-mel over whole frames; shared by the offline function and the streaming class."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.window = torch.hann_window(WINDOW, periodic=True, dtype=torch.float32)
        self.bank = torch.from_numpy(mel_filterbank(config.n_mels, config.fmin, config.fmax))
        mean, std = config.stats()
        self.mean, self.std = torch.from_numpy(mean), torch.from_numpy(std)

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """(..., S) audio already preceded by WINDOW-HOP samples of history -> (..., n, n_mels) normalised."""
        framed = padded.unfold(-1, WINDOW, HOP) * self.window
        power = torch.fft.rfft(framed, n=N_FFT).abs().square()
        logmel = torch.log(power @ self.bank + LOG_FLOOR)
        return (logmel - self.mean) / self.std

    def silence(self) -> torch.Tensor:
        """The normalised feature vector of digital silence (what precedes every stream)."""
        return (torch.full((self.config.n_mels,), float(np.log(LOG_FLOOR))) - self.mean) / self.std


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise FeatureError(f"audio must be mono 16 kHz (samples,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise FeatureError("audio contains NaN or infinite samples")
    return audio


def log_mel(audio16k: np.ndarray, config: FeatureConfig, extractor: LogMel | None = None) -> torch.Tensor:
    """Offline features: (S,) mono 16 kHz -> (S // 160, n_mels) float32, causal framing, normalised."""
    audio = torch.from_numpy(_check_audio(audio16k))
    extractor = extractor or LogMel(config)
    usable = (len(audio) // HOP) * HOP
    padded = torch.cat([torch.zeros(WINDOW - HOP), audio[:usable]])
    if usable == 0:
        return torch.zeros(0, config.n_mels)
    return extractor.frames(padded)


class StreamingLogMel:
    """Takes audio chunks of any length and yields exactly the frames `log_mel` gives for their concatenation."""

    def __init__(self, config: FeatureConfig):
        self.extractor = LogMel(config)
        self.n_mels = config.n_mels
        self._buffer = np.zeros(WINDOW - HOP, np.float32)  # the stream is preceded by silence
        self.frames_out = 0

    def push(self, audio16k: np.ndarray) -> torch.Tensor:
        """Append samples; return the (n, n_mels) feature frames that became complete."""
        self._buffer = np.concatenate([self._buffer, _check_audio(audio16k)])
        n = (len(self._buffer) - (WINDOW - HOP)) // HOP
        if n <= 0:
            return torch.zeros(0, self.n_mels)
        used = (WINDOW - HOP) + n * HOP
        out = self.extractor.frames(torch.from_numpy(self._buffer[:used]))
        self._buffer = self._buffer[n * HOP:]
        self.frames_out += n
        return out


def corpus_stats(audio_chunks: list[np.ndarray], config: FeatureConfig) -> tuple[list[float], list[float]]:
    """Per-bin mean/std of raw log-mel over some training audio (the global normalisation)."""
    raw = FeatureConfig(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
    extractor = LogMel(raw)
    feats = torch.cat([log_mel(a, raw, extractor) for a in audio_chunks if len(a) >= HOP])
    return feats.mean(0).tolist(), feats.std(0).tolist()
