"""On-disk corpus format: three flat memory-mapped arrays plus one JSON index.

    corpus/
      index.json     items (offsets, instruction, programs, segments, meta) and the unique instruction texts
      audio.pcm16    every item's 16 kHz mono audio, int16, concatenated
      motion.f32     every item's motion, float32 (frames, DIM), concatenated
      visemes.i8     every item's per-frame viseme class, int8, concatenated

The trainer samples random windows many times: `Corpus.window` slices the memory maps, so a corpus of
hours costs page cache, not process memory, and a reader opens in milliseconds. Audio is stored as int16
(half the bytes of float32; quantisation noise at -96 dBFS is far below any augmentation noise).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.vocab import DIM, FPS, MODEL_RATE, NAMES, SAMPLES_PER_FRAME

FORMAT_VERSION = 1
INDEX_FILE, AUDIO_FILE, MOTION_FILE, VISEME_FILE = "index.json", "audio.pcm16", "motion.f32", "visemes.i8"

Program = tuple[str, float]
Segment = tuple[int, str, list[Program]]


class CorpusError(ValueError):
    """A corpus item or a corpus folder is malformed."""


@dataclass
class CorpusItem:
    """One utterance: audio, its frame-aligned teacher motion and visemes, and the instruction(s) in force.

    `instruction`/`programs` hold from frame 0; `segments` is empty unless the instruction changes inside
    the item, in which case it lists every (start_frame, text, programs), the first starting at 0.
    """

    audio: np.ndarray  # (S,) float32, 16 kHz mono
    motion: np.ndarray  # (T, DIM) float32, 25 fps, T == S // 640
    visemes: np.ndarray  # (T,) int8
    instruction: str = ""
    programs: list[Program] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.audio = np.asarray(self.audio, dtype=np.float32)
        self.motion = np.asarray(self.motion, dtype=np.float32)
        self.visemes = np.asarray(self.visemes, dtype=np.int8)
        self.programs = [(str(n), float(i)) for n, i in self.programs]
        self.segments = [(int(s), str(t), [(str(n), float(i)) for n, i in p]) for s, t, p in self.segments]
        self.validate()

    @property
    def frames(self) -> int:
        return len(self.motion)

    def validate(self) -> None:
        if self.audio.ndim != 1:
            raise CorpusError(f"audio must be mono (S,), got shape {self.audio.shape}")
        if self.motion.ndim != 2 or self.motion.shape[1] != DIM:
            raise CorpusError(f"motion must be (frames, {DIM}), got {self.motion.shape}")
        if len(self.motion) != len(self.audio) // SAMPLES_PER_FRAME:
            raise CorpusError(f"motion has {len(self.motion)} frames but {len(self.audio)} samples make "
                              f"{len(self.audio) // SAMPLES_PER_FRAME} frames of {SAMPLES_PER_FRAME}")
        if self.visemes.shape != (len(self.motion),):
            raise CorpusError(f"visemes must be ({len(self.motion)},), got {self.visemes.shape}")
        if not (np.isfinite(self.audio).all() and np.isfinite(self.motion).all()):
            raise CorpusError("audio or motion contains NaN or infinite values")
        starts = [s for s, _, _ in self.segments]
        if self.segments and (starts[0] != 0 or starts != sorted(starts) or starts[-1] >= max(self.frames, 1)):
            raise CorpusError(f"segment starts must begin at 0, increase and lie inside the item: {starts}")

    def instruction_at(self, frame: int) -> tuple[str, list[Program]]:
        """The instruction text and programs in force at `frame`."""
        current = (self.instruction, self.programs)
        for start, text, programs in self.segments:
            if start <= frame:
                current = (text, programs)
        return current


class CorpusWriter:
    """Appends items to a new corpus folder; the index is written on `close()` (or leaving a `with`)."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = Path(path)
        if (self.path / INDEX_FILE).exists() and not overwrite:
            raise CorpusError(f"{self.path} already holds a corpus (pass overwrite=True to replace it)")
        self.path.mkdir(parents=True, exist_ok=True)
        self._audio = open(self.path / AUDIO_FILE, "wb")
        self._motion = open(self.path / MOTION_FILE, "wb")
        self._visemes = open(self.path / VISEME_FILE, "wb")
        self._entries: list[dict[str, Any]] = []
        self._samples = 0
        self._frames = 0

    def __len__(self) -> int:
        return len(self._entries)

    def write(self, item: CorpusItem) -> None:
        item.validate()
        pcm = np.round(np.clip(item.audio, -1.0, 1.0) * 32767.0).astype("<i2")
        self._audio.write(pcm.tobytes())
        self._motion.write(item.motion.astype("<f4").tobytes())
        self._visemes.write(item.visemes.astype(np.int8).tobytes())
        self._entries.append({
            "audio_offset": self._samples, "samples": len(item.audio),
            "frame_offset": self._frames, "frames": item.frames,
            "instruction": item.instruction, "programs": [list(p) for p in item.programs],
            "segments": [[s, t, [list(p) for p in ps]] for s, t, ps in item.segments],
            "meta": item.meta,
        })
        self._samples += len(item.audio)
        self._frames += item.frames

    def close(self) -> Path:
        for f in (self._audio, self._motion, self._visemes):
            f.close()
        texts = {e["instruction"] for e in self._entries}
        texts |= {s[1] for e in self._entries for s in e["segments"]}
        index = {
            "version": FORMAT_VERSION, "sample_rate": MODEL_RATE, "fps": FPS, "names": list(NAMES),
            "items": self._entries, "instructions": sorted(texts),
        }
        tmp = self.path / (INDEX_FILE + ".tmp")
        tmp.write_text(json.dumps(index, separators=(",", ":")))
        os.replace(tmp, self.path / INDEX_FILE)  # the index appears last: a reader never sees half a corpus
        return self.path

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Corpus(Sequence[CorpusItem]):
    """Read-only view of a corpus folder; items and windows are sliced from memory maps opened lazily
    (so a Corpus pickles cheaply into data-loader workers)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / INDEX_FILE
        if not index_path.is_file():
            raise CorpusError(f"no corpus at {self.path} (missing {INDEX_FILE})")
        index = json.loads(index_path.read_text())
        if index.get("version") != FORMAT_VERSION:
            raise CorpusError(f"{self.path}: format version {index.get('version')}, expected {FORMAT_VERSION}")
        if tuple(index["names"]) != NAMES:
            raise CorpusError(f"{self.path}: motion axes differ from this version's motion space; rebuild it")
        self.entries: list[dict[str, Any]] = index["items"]
        self.instructions: list[str] = index["instructions"]
        self.frames = np.array([e["frames"] for e in self.entries], dtype=np.int64)
        self._maps: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}

    def _map(self, name: str) -> np.ndarray:
        if self._maps is None:
            n_frames = int(self.frames.sum())
            self._maps = {
                "audio": _memmap(self.path / AUDIO_FILE, "<i2", (-1,)),
                "motion": _memmap(self.path / MOTION_FILE, "<f4", (n_frames, DIM)),
                "visemes": _memmap(self.path / VISEME_FILE, np.int8, (n_frames,)),
            }
        return self._maps[name]

    @property
    def audio_array(self) -> np.ndarray:
        """All items' audio, (sum S,) int16 (divide by 32767 for float), memory-mapped."""
        return self._map("audio")

    @property
    def motion_array(self) -> np.ndarray:
        """All frames of all items, (sum T, DIM), memory-mapped (for statistics)."""
        return self._map("motion")

    @property
    def viseme_array(self) -> np.ndarray:
        return self._map("visemes")

    @property
    def hours(self) -> float:
        return sum(e["samples"] for e in self.entries) / MODEL_RATE / 3600

    def window(self, i: int, start: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames [start, start+frames) of item i: (audio (frames*640,) float32, motion, visemes)."""
        e = self.entries[i]
        if start < 0 or start + frames > e["frames"]:
            raise CorpusError(f"window {start}+{frames} outside item {i} of {e['frames']} frames")
        a0 = e["audio_offset"] + start * SAMPLES_PER_FRAME
        audio = self._map("audio")[a0:a0 + frames * SAMPLES_PER_FRAME].astype(np.float32) / 32767.0
        f0 = e["frame_offset"] + start
        return audio, np.array(self._map("motion")[f0:f0 + frames]), np.array(self._map("visemes")[f0:f0 + frames])

    def __getitem__(self, i: int) -> CorpusItem:  # type: ignore[override]
        if isinstance(i, slice):
            raise TypeError("Corpus indexes one item at a time; iterate or use range()")
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a corpus of {len(self)}")
        e = self.entries[i % len(self)]
        a0, f0 = e["audio_offset"], e["frame_offset"]
        audio = self._map("audio")[a0:a0 + e["samples"]].astype(np.float32) / 32767.0
        return CorpusItem(
            audio=audio,
            motion=np.array(self._map("motion")[f0:f0 + e["frames"]]),
            visemes=np.array(self._map("visemes")[f0:f0 + e["frames"]]),
            instruction=e["instruction"], programs=[tuple(p) for p in e["programs"]],
            segments=[(s, t, [tuple(p) for p in ps]) for s, t, ps in e["segments"]], meta=e["meta"],
        )


def _memmap(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    if path.stat().st_size == 0:  # numpy refuses to map an empty file
        return np.zeros((0,) + shape[1:], dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=None if shape == (-1,) else shape)
