"""Training batches: segments of audio features with (prefix | window) motion examples cut from a corpus.

A batch is a few audio segments; the audio encoder runs once per segment (with its full left receptive
field, as in streaming) and several (prefix | window) denoising examples are cut from each segment.
Instruction texts are embedded once per run (`minilm_embedder`) and indexed by the batches.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from realtime.motion.features import FEATURES_PER_MOTION_FRAME, HOP, WINDOW, LogMel
from realtime.motion.model import GeneratorConfig
from realtime.training.corpus.format import Corpus
from realtime.training.generator.config import TrainConfig, TrainError
from realtime.vocab import SAMPLES_PER_FRAME, SCALE

TextEmbedder = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]



def instruction_at(entry: dict, frame: int) -> str:
    text = entry["instruction"]
    for start, seg_text, _ in entry.get("segments", []):
        if start <= frame:
            text = seg_text
    return text


def minilm_embedder() -> TextEmbedder:
    """Token states of every instruction text from the project's InstructionEncoder (offline MiniLM)."""
    from realtime.instruct.encoder import InstructionEncoder

    encoder = InstructionEncoder()
    encoder.setup()

    def embed(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embs = [e for i in range(0, len(texts), 64) for e in encoder.encode_batch(texts[i:i + 64])]
        length = max(len(e.mask) for e in embs)
        tokens = torch.zeros(len(texts), length, embs[0].tokens.shape[-1])
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(embs):
            tokens[i, : len(e.mask)] = torch.as_tensor(e.tokens, dtype=torch.float32)
            mask[i, : len(e.mask)] = torch.as_tensor(e.mask, dtype=torch.bool)
        return tokens, mask

    return embed


class WindowSampler:
    """Draws training batches from a corpus: segments of audio features + windows of motion."""

    def __init__(self, corpus: Corpus, items: list[int], model_cfg: GeneratorConfig, past: int, future: int,
                 config: TrainConfig, text_index: dict[str, int], rng: np.random.Generator):
        self.corpus, self.cfg, self.tc = corpus, model_cfg, config
        self.past, self.future = past, future
        self.text_index, self.rng = text_index, rng
        self.extractor = LogMel(model_cfg.features)
        self.scale = torch.from_numpy(SCALE)
        P, L = model_cfg.prefix, config.segment_frames
        # A segment start s0 may lie up to P frames before the item (missing prefix), windows must fit inside.
        frames = corpus.frames[items]
        usable = frames - L + P + 1
        self.items = np.asarray(items)[usable > 0]
        if len(self.items) == 0:
            raise TrainError(f"no corpus item is long enough for a {L}-frame segment")
        self.weights = (usable[usable > 0] / usable[usable > 0].sum()).astype(np.float64)

    def _audio(self, entry: dict, i: int, first: int, last: int) -> np.ndarray:
        """Samples for feature frames of motion frames [first, last) with causal framing; zeros outside."""
        a0 = first * SAMPLES_PER_FRAME - (WINDOW - HOP)
        a1 = last * SAMPLES_PER_FRAME
        out = np.zeros(a1 - a0, np.float32)
        lo, hi = max(a0, 0), min(a1, entry["samples"])
        if hi > lo:
            base = entry["audio_offset"]
            out[lo - a0: hi - a0] = self.corpus.audio_array[base + lo: base + hi].astype(np.float32) / 32767.0
        return out

    def _spec_augment(self, feats: torch.Tensor) -> None:
        """Zero (= the corpus mean) random mel bands and short stretches of frames, in place."""
        n, frames, bins = feats.shape
        for b in range(n):
            for _ in range(self.tc.freq_masks):
                w = int(self.rng.integers(0, self.tc.freq_mask_bins + 1))
                f0 = int(self.rng.integers(0, bins - w + 1))
                feats[b, :, f0:f0 + w] = 0.0
            for _ in range(self.tc.time_masks):
                w = int(self.rng.integers(0, self.tc.time_mask_frames + 1))
                t0 = int(self.rng.integers(0, frames - w + 1))
                feats[b, t0:t0 + w] = 0.0

    def batch(self) -> dict[str, torch.Tensor]:
        P, W, L, K = self.cfg.prefix, self.cfg.window, self.tc.segment_frames, self.tc.windows_per_segment
        S = self.tc.segments
        audio, motion, motion_valid, visemes, texts, win_start = [], [], [], [], [], []
        for i in self.rng.choice(self.items, size=S, p=self.weights):
            e = self.corpus.entries[i]
            T = e["frames"]
            at_start = self.rng.random() < self.tc.p_stream_start
            switch = e["segments"][1][0] if len(e.get("segments") or []) > 1 else None
            at_switch = switch is not None and not at_start and self.rng.random() < self.tc.p_switch
            if at_start:
                s0 = -P
            elif at_switch:  # the change lies inside the segment, after the prefix of its first window
                s0 = int(np.clip(switch - P - self.rng.integers(0, L - P - W + 1), -P, T - L))
            else:
                s0 = int(self.rng.integers(-P, T - L + 1))
            gain = 10 ** (self.rng.uniform(*self.tc.gain_db) / 20)
            audio.append(self._audio(e, i, s0 - self.past, s0 + L + self.future) * gain)
            f0, f1 = max(s0, 0), s0 + L
            m = np.zeros((L, self.cfg.motion_dim), np.float32)
            v = np.full(L, -100, np.int64)  # ignore_index
            base = e["frame_offset"]
            m[f0 - s0:] = self.corpus.motion_array[base + f0: base + f1]
            v[f0 - s0:] = self.corpus.viseme_array[base + f0: base + f1]
            valid = np.zeros(L, bool)
            valid[f0 - s0:] = True
            motion.append(m), visemes.append(v), motion_valid.append(valid)
            # Window starts u (segment-relative, prefix first): the window itself lies inside the item.
            lo = max(0, -s0 - P)
            starts = self.rng.integers(lo, L - P - W + 1, size=K)
            if at_start:
                starts[0] = 0  # the very first chunk of a stream: an empty prefix
            elif at_switch:  # the first chunks after the change
                starts[0] = int(np.clip(switch - s0 - P + self.rng.integers(0, 2 * W + 1), lo, L - P - W))
            win_start.append(starts)
            texts.append([self.text_index.get(instruction_at(e, s0 + u + P), -1) for u in starts])
        audio_t = torch.from_numpy(np.stack(audio))
        feats = self.extractor.frames(audio_t)
        assert feats.shape[1] == FEATURES_PER_MOTION_FRAME * (self.past + L + self.future)
        self._spec_augment(feats)
        return {
            "feats": feats,
            "motion": torch.from_numpy(np.stack(motion)) / self.scale,
            "motion_valid": torch.from_numpy(np.stack(motion_valid)),
            "visemes": torch.from_numpy(np.stack(visemes)),
            "win_start": torch.from_numpy(np.stack(win_start)),
            "text": torch.tensor(texts, dtype=torch.long),
        }
