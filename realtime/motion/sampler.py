"""Streaming motion sampler: audio chunks in, motion frames out, one few-step DDIM window per chunk (80 ms).

Each chunk denoises `window` frames conditioned on the previous `prefix` frames it produced itself (so
chunk borders continue the motion instead of restarting it), on the audio encoder's states (recomputed over
a bounded history, which gives exactly the offline encoder's output) and on the instruction (K/V cached
per instruction). A chunk is emitted once the audio up to the encoder's lookahead (1 frame, 40 ms) after it has
arrived, so the first frame of a chunk waits (window + lookahead) x 40 ms = 120 ms for its audio.
Offline rendering pushes a whole file through the same class, so offline and live motion agree.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from realtime.motion.audio_stream import StreamingAudioStates, shared_step
from realtime.motion.diffusion import DenoiseRequest, ddim_sample_many
from realtime.motion.features import FEATURES_PER_MOTION_FRAME, HOP, LogMel, StreamingLogMel
from realtime.motion.gate import SilenceGate
from realtime.motion.model import InstructionCache, MotionGenerator
from realtime.vocab import (
    EYELID_AXES,
    FPS,
    HI,
    INDEX,
    LO,
    MODEL_RATE,
    OPENING_AXES,
    SAMPLES_PER_FRAME,
    SCALE,
    SPEECH_AXES,
    MotionSequence,
    Viseme,
    relax_scale,
)

# A generator not loaded by load_generator (tests, an untrained model) is clipped as the checkpoints from before
# `smile` took negative values are: at 0 (see realtime/motion/checkpoint.py).
GENERATOR_LO = LO.copy()
GENERATOR_LO[INDEX["smile"]] = 0.0

class SamplerError(ValueError):
    """Bad input to the sampler (audio shape, intensity) or use after flush()."""


@dataclass
class SamplerConfig:
    steps: int = 3  # DDIM steps per chunk (<= 8)
    guidance: float = 1.5  # CFG scale at intensity 1; intensity scales it linearly (0 = unconditional)
    # Cross-fade of the guidance between instructions. 0: the new one is in force from the next chunk; the model
    # itself eases out of its motion prefix into it, as it learned from mid-item instruction changes.
    transition_s: float = 0.0
    clamp: bool = True  # keep every x0 estimate inside the motion space
    temperature: float = 1.0  # scale of the initial noise: < 1 trades variety for steadier chunk borders
    # Chunk borders on the slow axes (brows, cheeks, eyes' width, gaze, head): start each chunk where the
    # previous one was heading and ease into the model's own trajectory over `border_ease_frames` (0 = off).
    # The mouth and the blinks follow the model untouched, so closures and blinks keep their timing and depth.
    border_ease_frames: int = 2
    # Chunks sampled over silence before a stream's first chunk (thrown away), so the first chunk continues a
    # resting face of the model's own instead of an empty prefix. With an empty prefix the model kept the mouth
    # nearly shut for the first ~0.8 s of speech (cold start: the first words opened 3-50 % as wide as the
    # same words later, on output pixels; benchmarks/generalisation.py). Costs one-off compute at the first
    # chunk (prime_chunks DDIM windows), none afterwards. 0 = off.
    prime_chunks: int = 4
    # Close the mouth on frames whose audio sits within this many dB of the line's noise floor (gate.py): the
    # model read line noise in pauses as faint speech. 0 = off.
    silence_gate_db: float = 6.0
    # ... and on frames the model's own viseme head hears as silence with at least this probability, the frame
    # and the two before it (gate.py): a room's reverberant tail is no quieter than faint speech. 0 = off.
    silence_gate_p: float = 0.5
    # Perform the gestures an instruction asks for (nod, shake_head, blink, wink) with the teacher's gesture
    # programs on top of the sampled motion. A gesture is a repeated movement whose phase nothing in the
    # conditioning fixes; 3-step DDIM over 2-frame windows averages such phases away, so the generator's own
    # nod while speaking swung 2.3 degrees of head pitch where its teacher swings 8 (benchmarks/RESULTS.md,
    # "Generalisation"). Needs an encoder that reads programs (WordedEncoder) and a performer (the assembly
    # gives realtime.animate.perform_program). False = the model's own gestures only. Programs the checkpoint
    # never learned (added to the vocabulary after it was trained) are performed whatever this says.
    perform_gestures: bool = True
    # The audio encoder run incrementally (audio_stream.py): each frame's states computed once, not the whole
    # 64-frame receptive field again every chunk (3.2 -> 0.8 ms CPU a chunk, 40 -> 10 ms per session-second;
    # the same states to 1e-5).
    incremental_audio: bool = True


@dataclass
class _Condition:
    cache: InstructionCache
    scale: float
    ramp: float  # 0..1, how much of `scale` is in force
    direction: float  # +1 fading in, -1 fading out


class StreamingSampler:
    """One per stream; the model is shared and never mutated. Not thread-safe itself (one thread per stream)."""

    def __init__(self, model: MotionGenerator, encoder: Callable | None, config: SamplerConfig | None = None,
                 seed: int = 0, denoiser: Callable | None = None, performer: Callable | None = None):
        """`denoiser(request, steps, lo, hi) -> x0` runs the DDIM window, e.g. a server's SharedDenoiser that
        batches every stream's windows; by default the sampler runs it itself. `performer(name, intensity, seed)`
        performs a program frame by frame (`.take(n)`, `.stop()`, `.stopped` (False again resumes it), `.finished`,
        `.intensity`: realtime.animate.perform_program); None = the model's own motion only."""
        self.model, self.encoder = model, encoder
        self.denoiser = denoiser or self._denoise_alone
        self.config = config or SamplerConfig()
        cfg = model.cfg
        self.P, self.W = cfg.prefix, cfg.window
        self.past, self.future = model.audio.receptive_field()
        self._features = StreamingLogMel(cfg.features)
        self._audio = (StreamingAudioStates(model.audio, self.P, shared_step(model.audio, self.W, self.P))
                       if self.config.incremental_audio else None)
        self._silence = LogMel(cfg.features).silence()
        self._feats = torch.zeros(0, cfg.n_mels)  # feature frames from global index `_feat_start`
        self._feat_start = 0
        self._prefix = torch.zeros(self.P, cfg.motion_dim)
        self._prefix_valid = torch.zeros(self.P, dtype=torch.bool)
        self._generator = torch.Generator().manual_seed(int(seed))
        self._seed = int(seed)
        self._scale = torch.from_numpy(SCALE)
        self._slow = _slow_axes_mask(cfg.motion_dim)
        self._lo, self._hi = torch.from_numpy(LO / SCALE)[None, None], torch.from_numpy(HI / SCALE)[None, None]
        with torch.inference_mode():
            self._null = model.instruction_cache(None)
            self._neutral = model.instruction_cache(None, neutral=True)
        self._conds: list[_Condition] = []
        self._pending: tuple[str | None, float, Any] | None = (None, 1.0, None)  # neutral until told otherwise
        self._instruction_caches: dict[str, InstructionCache] = {}
        self.instruction: str | None = None
        self.intensity: float = 1.0
        # A checkpoint trained before `smile` took negative values outputs smile >= 0 only, so it cannot relax the
        # photograph's smile, which every emotion without AU12 does (the teacher's programs, realtime.vocab's
        # RELAXES_SMILE): with such a checkpoint the sampler adds that one axis itself, eased like an onset.
        lo = getattr(model, "output_lo", GENERATOR_LO)
        self._adds_relax = bool(lo[INDEX["smile"]] >= 0.0) and hasattr(encoder, "smile_relax")
        self._relax, self._relax_target = 0.0, 0.0
        self._performer = performer if hasattr(encoder, "understood") else None
        self._performed: dict[str, Any] = {}  # program name -> its stream, while it moves
        self._performances = 0
        self.samples_pushed = 0
        self.frames_emitted = 0  # frames generated (returned by push/flush)
        self._finished = False
        self._primed = self.config.prime_chunks <= 0
        gated = self.config.silence_gate_db > 0 or self.config.silence_gate_p > 0
        self._gate = SilenceGate(self.config.silence_gate_db, heard_p=self.config.silence_gate_p) \
            if gated else None

    # --- public -----------------------------------------------------------------------------------------
    @property
    def latency_s(self) -> float:
        """How far the motion emitted so far lags the audio pushed so far."""
        return self.samples_pushed / MODEL_RATE - self.frames_emitted / FPS

    @property
    def chunk_s(self) -> float:
        return self.W / FPS

    @property
    def lookahead_s(self) -> float:
        return self.future / FPS

    def set_instruction(self, text: str | None, intensity: float = 1.0, embedding: Any = None) -> None:
        """Applies from the next chunk, cross-fading from the current instruction over `transition_s`.
        `embedding`: the encoder's output for `text` when the caller already has it (it is not encoded again)."""
        if not 0.0 <= float(intensity) <= 1.0:
            raise SamplerError(f"intensity must be between 0 and 1, got {intensity}")
        if text is not None and not text.strip():
            text = None
        if text is not None and self.encoder is None and embedding is None:
            raise SamplerError("an instruction text needs an InstructionEncoder (the sampler got encoder=None)")
        self._pending = (text, float(intensity), None if text is None else embedding)

    def close_mouth(self) -> None:
        """Barge-in: the motion the next chunk continues from gets a closed mouth. The generator follows its own
        prefix closely, so after speech cut off mid-word it could carry the open mouth on over the silence."""
        with torch.inference_mode():
            prefix = self._prefix.clone()
            prefix[:, _OPENING] = 0.0
            self._prefix = prefix

    def push(self, audio16k: np.ndarray) -> np.ndarray:
        """Feed mono 16 kHz float32 audio (any length); returns the (n, DIM) motion frames that became ready."""
        if self._finished:
            raise SamplerError("push() after flush(): start a new StreamingSampler for a new stream")
        audio = np.asarray(audio16k, dtype=np.float32)
        if audio.ndim != 1:
            raise SamplerError(f"audio must be mono (samples,), got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise SamplerError("audio contains NaN or infinite samples")
        self.samples_pushed += len(audio)
        if self._gate is not None:
            self._gate.push(audio, SAMPLES_PER_FRAME)
        return self._ingest(audio)

    def flush(self) -> np.ndarray:
        """End of stream: pad with silence and return the remaining frames (ceil(samples / 640) in total)."""
        if self._finished:
            return np.zeros((0, self.model.cfg.motion_dim), np.float32)
        target = -(-self.samples_pushed // SAMPLES_PER_FRAME)
        needed_frames = -(-target // self.W) * self.W + self.future
        needed_samples = needed_frames * SAMPLES_PER_FRAME
        pad = max(0, needed_samples - self.samples_pushed)
        if self._gate is not None:
            self._gate.push(np.zeros(pad, np.float32), SAMPLES_PER_FRAME)  # the stream is followed by silence
        out = self._ingest(np.zeros(pad, np.float32), limit=target)
        self._finished = True
        return out

    # --- internals --------------------------------------------------------------------------------------
    def _ingest(self, audio: np.ndarray, limit: int | None = None) -> np.ndarray:
        with torch.inference_mode():
            new = self._features.push(audio)
            self._feats = torch.cat([self._feats, new])
            frames = []
            n_feat = self._feat_start + len(self._feats)
            while n_feat >= FEATURES_PER_MOTION_FRAME * (self.frames_emitted + self.W + self.future):
                if limit is not None and self.frames_emitted >= limit:
                    break
                chunk = self._chunk()
                if limit is not None:
                    chunk = chunk[: limit - self.frames_emitted]
                frames.append(chunk)
                self.frames_emitted += len(chunk)
        if not frames:
            return np.zeros((0, self.model.cfg.motion_dim), np.float32)
        return np.concatenate(frames)

    def _feature_window(self, first: int, last: int) -> torch.Tensor:
        """Feature frames [first, last) in global indices; before the stream began there was silence."""
        k = FEATURES_PER_MOTION_FRAME
        a, b = first * k, last * k
        lead = max(0, self._feat_start - a)
        window = self._feats[max(0, a - self._feat_start): b - self._feat_start]
        if lead:
            window = torch.cat([self._silence.expand(lead, -1), window])
        # Forget what no later chunk will read.
        keep_from = (self.frames_emitted + self.W - self.P - self.past) * k
        if keep_from > self._feat_start:
            self._feats = self._feats[keep_from - self._feat_start:]
            self._feat_start = keep_from
        return window

    def _apply_pending_instruction(self) -> None:
        if self._pending is None:
            return
        text, intensity, embedding = self._pending
        self._pending = None
        if text == self.instruction and self._conds:
            for c in self._conds:  # same text, new intensity: rescale in place (guidance is linear)
                if c.direction > 0:
                    c.scale = intensity * self.config.guidance
            self.intensity = intensity
            if self._adds_relax and text is not None:
                self._relax_target = self.encoder.smile_relax(text) * relax_scale(intensity)
            self._set_performed(text, intensity)
            return
        for c in self._conds:
            c.direction = -1.0
        if text is None:
            cache = self._neutral  # no instruction: neutral talking, guided like any instruction
        else:
            if text not in self._instruction_caches:
                embedding = self.encoder(text) if embedding is None else embedding
                # None: the generator learned none of what the text asks (the sampler performs it): talk as without
                self._instruction_caches[text] = (self._neutral if embedding is None
                                                  else self.model.instruction_cache(embedding))
            cache = self._instruction_caches[text]
        start = 0.0 if self.frames_emitted > 0 else 1.0  # the first chunk starts in the instruction
        self._conds.append(_Condition(cache, intensity * self.config.guidance, start, +1.0))
        self.instruction, self.intensity = text, intensity
        if self._adds_relax:
            self._relax_target = 0.0 if text is None else self.encoder.smile_relax(text) * relax_scale(intensity)
            if self.frames_emitted == 0:
                self._relax = self._relax_target
        self._set_performed(text, intensity)

    def _set_performed(self, text: str | None, intensity: float) -> None:
        """Start performing what `text` asks for that the sampler performs (a program asked for again keeps
        going, at the new level, even while it was finishing); what it no longer asks for finishes the movement
        under way and eases out."""
        if self._performer is None:
            return
        wanted: dict[str, float] = {}
        if text is not None:
            understood = self.encoder.understood(text)
            wanted = dict(understood.unlearned)
            if self.config.perform_gestures:
                wanted.update(understood.gestures)
        for name, stream in list(self._performed.items()):
            if name not in wanted:
                stream.stop()
        for name, level in wanted.items():
            stream = self._performed.get(name)
            if stream is None or stream.finished:
                self._performances += 1
                self._performed[name] = self._performer(name, level * intensity, (self._seed, self._performances))
            else:  # replacing one still finishing would cut its movement off mid-swing
                stream.stopped = False
                stream.intensity = level * intensity

    def _perform(self, motion: np.ndarray) -> np.ndarray:
        """Add the programs under way to the sampled motion (the lids close as far as either asks)."""
        layer = sum(stream.take(len(motion)) for stream in self._performed.values())
        self._performed = {name: s for name, s in self._performed.items() if not s.finished}
        out = motion + layer
        out[:, _EYELIDS] = np.maximum(motion[:, _EYELIDS], layer[:, _EYELIDS])
        return np.clip(out, LO, HI).astype(np.float32)

    def _advance_ramps(self) -> None:
        step = self.W / max(self.config.transition_s * FPS, 1e-6)
        for c in self._conds:
            c.ramp = float(np.clip(c.ramp + c.direction * step, 0.0, 1.0))
        self._conds = [c for c in self._conds if not (c.direction < 0 and c.ramp <= 0.0)]

    def _denoise_alone(self, request: DenoiseRequest, steps: int, lo: torch.Tensor | None,
                       hi: torch.Tensor | None) -> torch.Tensor:
        return ddim_sample_many(self.model, [request], steps, lo, hi)[0]

    def _ease_border(self, x0: torch.Tensor) -> torch.Tensor:
        """Continue the slow axes from the previous chunk's position and velocity, easing into x0."""
        R = self.config.border_ease_frames
        if R <= 0 or not bool(self._prefix_valid[-2:].all()):
            return x0
        expected = 2 * self._prefix[-1] - self._prefix[-2]  # constant velocity across the border
        ease = ((torch.arange(self.W) + 1.0) / R).clamp(max=1.0)
        keep = 1.0 - ease * ease * (3.0 - 2.0 * ease)
        return x0 + (expected - x0[0]) * self._slow[None] * keep[:, None]

    def _prime(self) -> None:
        """Sample `prime_chunks` windows over the silence that precedes the stream (no instruction), keeping
        only their motion as the first real chunk's prefix. The stream's noise generator is used, so a seed
        still fixes the result."""
        self._primed = True
        k = FEATURES_PER_MOTION_FRAME
        feats = self._silence.expand((self.past + self.P + self.W + self.future) * k, -1)
        audio_states, _ = self.model.encode_audio(feats[None])
        audio_states = audio_states[:, self.past: self.past + self.P + self.W]
        cache = InstructionCache.stack([self._null, self._neutral])
        lo, hi = (self._lo, self._hi) if self.config.clamp else (None, None)
        for _ in range(self.config.prime_chunks):
            noise = torch.randn(1, self.W, self.model.cfg.motion_dim, generator=self._generator)
            request = DenoiseRequest(noise * self.config.temperature, self._prefix[None], self._prefix_valid[None],
                                     audio_states, cache, [self.config.guidance])
            x0 = self._denoise_alone(request, self.config.steps, lo, hi)[0]
            self._prefix = torch.cat([self._prefix, x0])[-self.P:]
            self._prefix_valid = torch.cat([self._prefix_valid, torch.ones(self.W, dtype=torch.bool)])[-self.P:]

    def _chunk(self) -> np.ndarray:
        n = self.frames_emitted
        if not self._primed:
            self._prime()
        self._apply_pending_instruction()
        self._advance_ramps()
        feats = self._feature_window(n - self.P - self.past, n + self.W + self.future)
        if self._audio is not None:
            audio_states = self._audio.states(feats, n - self.P - self.past, n - self.P, n + self.W)
        else:
            audio_states, _ = self.model.encode_audio(feats[None])
            audio_states = audio_states[:, self.past: self.past + self.P + self.W]
        active = [c for c in self._conds if c.ramp > 0]
        cache = InstructionCache.stack([self._null] + [c.cache for c in active]) if active else self._null
        weights = [c.scale * c.ramp for c in active]
        noise = torch.randn(1, self.W, self.model.cfg.motion_dim, generator=self._generator) * self.config.temperature
        lo, hi = (self._lo, self._hi) if self.config.clamp else (None, None)
        request = DenoiseRequest(noise, self._prefix[None], self._prefix_valid[None], audio_states, cache, weights)
        x0 = self.denoiser(request, self.config.steps, lo, hi)[0]
        x0 = self._ease_border(x0)
        if self._gate is not None:
            heard = self.model.audio.viseme_head(audio_states[0, -self.W:]).softmax(-1)[:, Viseme.SIL]
            self._gate.hear(n, heard.numpy())
            silent = torch.from_numpy(self._gate.silent(n, self.W))
            if bool(silent.any()):
                x0 = x0.clone()
                x0[silent[:, None] & _SHUT_IN_SILENCE[None]] = 0.0
                lips = x0[:, _LIPS]
                x0[:, _LIPS] = torch.where(silent, lips.clamp(min=_LIPS_CLOSED / float(SCALE[_LIPS])), lips)
        self._prefix = torch.cat([self._prefix, x0])[-self.P:]
        self._prefix_valid = torch.cat([self._prefix_valid, torch.ones(self.W, dtype=torch.bool)])[-self.P:]
        lo = getattr(self.model, "output_lo", GENERATOR_LO)  # set by load_generator from the checkpoint's meta
        motion = np.clip((x0 * self._scale).numpy(), lo, HI).astype(np.float32)
        if self._adds_relax and (self._relax or self._relax_target):
            motion[:, INDEX["smile"]] = np.clip(motion[:, INDEX["smile"]] - self._relax_ramp(len(motion)),
                                                LO[INDEX["smile"]], HI[INDEX["smile"]])
        if self._performed:
            motion = self._perform(motion)
        return motion

    def _relax_ramp(self, n: int) -> np.ndarray:
        """The added relaxation for the next n frames, moving to its target by RELAX_STEP a frame."""
        out = np.empty(n, np.float32)
        for i in range(n):
            self._relax += float(np.clip(self._relax_target - self._relax, -RELAX_STEP, RELAX_STEP))
            out[i] = self._relax
        return out


RELAX_STEP = 1.0 / (0.35 * FPS)  # the added relaxation eases in and out over ~350 ms, like a teacher's onset
_OPENING = [INDEX[name] for name in OPENING_AXES]
# What the silence gate shuts: the opening axes but those instructions hold with closed lips (a pout's pucker, fear's
# and a grin's stretch, as the teacher keeps them in a pause); shutting those undid a pout in every pause of real
# speech ("purse your lips" over the ALSA recording: width -0.123 IOD on the pixels, the teacher's -0.320).
_SHUT_IN_SILENCE = torch.zeros(len(SCALE), dtype=torch.bool)
_SHUT_IN_SILENCE[[INDEX[name] for name in OPENING_AXES if name not in ("lip_pucker", "mouth_stretch")]] = True
_LIPS = INDEX["lips_close"]
_EYELIDS = [INDEX[name] for name in EYELID_AXES]
_LIPS_CLOSED = 0.8  # the lips at rest in silence, as the teacher closes them (>= 0.5 reads as closed)
# Axes that move fast and on cue (speech, blinks): never eased at chunk borders.
FAST_AXES = SPEECH_AXES + ("smile", "frown", "upper_lip_raise", "mouth_asym") + EYELID_AXES


def _slow_axes_mask(dim: int) -> torch.Tensor:
    mask = torch.ones(dim)
    mask[[INDEX[a] for a in FAST_AXES]] = 0.0
    return mask


def generate(model: MotionGenerator, encoder: Callable | None, audio16k: np.ndarray, instruction: str | None = None,
             intensity: float = 1.0, seed: int = 0, config: SamplerConfig | None = None,
             progress: bool = False, performer: Callable | None = None) -> MotionSequence:
    """Offline render through the streaming sampler: ceil(samples / 640) frames at 25 fps."""
    from tqdm import tqdm

    sampler = StreamingSampler(model, encoder, config, seed=seed, performer=performer)
    sampler.set_instruction(instruction, intensity)
    audio = np.asarray(audio16k, dtype=np.float32)
    step = MODEL_RATE  # push a second at a time (the result does not depend on it)
    frames = []
    for start in tqdm(range(0, len(audio), step), desc="motion", unit="s", disable=not progress):
        frames.append(sampler.push(audio[start:start + step]))
    frames.append(sampler.flush())
    return MotionSequence(np.concatenate(frames) if frames else np.zeros((0, model.cfg.motion_dim), np.float32))


__all__ = ["SamplerConfig", "SamplerError", "StreamingSampler", "generate", "HOP"]
