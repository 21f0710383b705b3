"""Annotate real footage: landmarks per frame -> motion vectors -> action units -> instruction text.

The first frame where a face is found is enrolled as the portrait (aligned 512x512 crop). Every frame's
landmarks are mapped into that crop with the same similarity transform, so head motion relative to the
first frame stays in the landmarks and `Rig.fit` recovers it as head pose, while expression shows up on
the expression axes. The fitted motion is lightly smoothed over time (landmark jitter), cut into items of
at most `max_item_s`, and each item is described (`describe()`: AUs, programs, text).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import savgol_filter
from skimage.transform import SimilarityTransform

from realtime.training.annotate.video import DecodedVideo, VideoError, decode_video
from realtime.training.corpus.format import CorpusItem
from realtime.vocab import DIM, SAMPLES_PER_FRAME, VISEME_UNKNOWN, clip


class AnnotationError(VideoError):
    """The video cannot be annotated (e.g. no usable face in enough frames)."""


@dataclass
class AnnotateConfig:
    min_detected: float = 0.6  # fraction of frames with a face, below which a video is refused
    smooth_frames: int = 5  # Savitzky-Golay window over time (odd); 5 frames = 200 ms keeps blinks
    max_item_s: float = 12.0  # long videos are cut into items of at most this length
    window_s: float = 2.0  # instruction segments: each window of this length is described on its own
    search_margin: float = 0.6  # look for the face near the last box, grown by this fraction per side
    redetect_every: int = 10  # frames between full detections; in between the landmarks track the face
    max_side: int = 1024


@dataclass
class AnnotatedItem:
    start_frame: int
    motion: np.ndarray  # (T, DIM)
    audio: np.ndarray  # (T * 640,) float32
    instruction: str  # in force from the item's first frame
    programs: list[tuple[str, float]]
    aus: dict[str, float]  # over the whole item
    segments: list[tuple[int, str, list[tuple[str, float]]]] = field(default_factory=list)


@dataclass
class AnnotatedVideo:
    path: Path
    frames: int
    source_fps: float
    detected: float  # fraction of frames where a face was found
    has_audio: bool
    landmarks: np.ndarray  # (T, 68, 2) in the enrolled crop's pixels (NaN where no face)
    motion: np.ndarray  # (T, DIM), smoothed, gaps interpolated
    items: list[AnnotatedItem] = field(default_factory=list)

    def corpus_items(self) -> list[CorpusItem]:
        return [CorpusItem(audio=it.audio, motion=it.motion,
                           visemes=np.full(len(it.motion), VISEME_UNKNOWN, np.int8),
                           instruction=it.instruction, programs=it.programs, segments=it.segments,
                           meta={"source": str(self.path), "start_frame": it.start_frame, "aus": it.aus,
                                 "split": "annotated", "has_audio": self.has_audio,
                                 "augmentation": {}})
                for it in self.items]

    def summary(self) -> dict[str, Any]:
        return {"path": str(self.path), "frames": self.frames, "duration_s": round(self.frames / 25, 2),
                "source_fps": round(self.source_fps, 3), "face_detected": round(self.detected, 3),
                "has_audio": self.has_audio,
                "items": [{"start_s": round(it.start_frame / 25, 2), "duration_s": round(len(it.motion) / 25, 2),
                           "instruction": it.instruction, "programs": [list(p) for p in it.programs],
                           "segments": [{"start_s": round(f / 25, 2), "instruction": t} for f, t, _ in it.segments],
                           "aus": {k: round(float(v), 3) for k, v in it.aus.items()}} for it in self.items]}


class Annotator:
    """`Annotator(config).setup()(video_path) -> AnnotatedVideo`."""

    def __init__(self, config: AnnotateConfig | None = None, detector: Any = None):
        self.config = config or AnnotateConfig()
        self.detector = detector

    def setup(self) -> Annotator:
        if self.detector is None:
            from realtime.avatar import DlibLandmarkDetector

            self.detector = DlibLandmarkDetector()
        return self

    def __call__(self, path: str | Path) -> AnnotatedVideo:
        if self.detector is None:
            raise RuntimeError("Annotator.setup() must run before annotating")
        video = decode_video(path, max_side=self.config.max_side)
        return self.annotate(video)

    # -- stages -----------------------------------------------------------------------------------
    def annotate(self, video: DecodedVideo) -> AnnotatedVideo:
        from realtime.avatar import Rig, enrol

        raw = self.track(video.frames)
        found = ~np.isnan(raw[:, 0, 0])
        detected = float(found.mean())
        if detected < self.config.min_detected:
            raise AnnotationError(f"{video.path}: a face was found in only {detected:.0%} of {len(raw)} frames "
                                  f"(need {self.config.min_detected:.0%}); is a frontal face visible?")
        first = int(np.argmax(found))
        portrait = enrol(video.frames[first], detector=self.detector)
        to_crop = _similarity(raw[first], np.asarray(portrait.landmarks, np.float64))
        if to_crop is None:
            raise AnnotationError(f"{video.path}: cannot align frame {first} to the enrolled portrait")
        landmarks = np.full_like(raw, np.nan)
        landmarks[found] = to_crop(raw[found].reshape(-1, 2)).reshape(-1, 68, 2)
        rig = Rig(portrait)
        fitted = np.asarray(rig.fit(landmarks[found].astype(np.float32)), np.float32)
        motion = self.smooth(_fill_gaps(found, fitted, len(raw)))
        audio = video.audio if video.audio is not None else np.zeros(len(motion) * SAMPLES_PER_FRAME, np.float32)
        audio = _fit_length(audio, len(motion) * SAMPLES_PER_FRAME)
        result = AnnotatedVideo(path=video.path, frames=len(motion), source_fps=video.source_fps, detected=detected,
                                has_audio=video.audio is not None, landmarks=landmarks.astype(np.float32),
                                motion=motion)
        result.items = self.describe_items(motion, audio)
        return result

    def track(self, frames: np.ndarray) -> np.ndarray:
        """(T, 68, 2) landmarks in frame pixels, NaN where no face.

        Detection (HOG, the expensive part) runs every `redetect_every` frames or when tracking is lost,
        searching near the last face first; in between, the shape predictor runs on the last detection's
        box moved with the landmarks (a detector without `landmarks_in_box` simply detects every frame)."""
        out = np.full((len(frames), 68, 2), np.nan, np.float64)
        last: np.ndarray | None = None  # previous frame's landmarks
        box_offset: np.ndarray | None = None  # detector box relative to the landmarks' centre and size
        can_track = hasattr(self.detector, "landmarks_in_box")
        for t, frame in enumerate(frames):
            landmarks = None
            if last is not None and can_track and box_offset is not None and t % self.config.redetect_every:
                centre, size = _centre_size(last)
                box = tuple(np.r_[centre, centre] + box_offset * size)
                landmarks = np.asarray(self.detector.landmarks_in_box(frame, box), np.float64)
                if abs(_centre_size(landmarks)[1] / size - 1) > 0.2:  # lost the face: detect again
                    landmarks = None
            if landmarks is None:
                face, shift = self._detect(frame, last)
                if face is not None:
                    landmarks = np.asarray(face.landmarks, np.float64) + shift
                    centre, size = _centre_size(landmarks)
                    box_offset = (np.asarray(face.box, np.float64) + np.r_[shift, shift] - np.r_[centre, centre]) / size
            if landmarks is not None:
                out[t] = landmarks
            last = landmarks
        return out

    def _detect(self, frame: np.ndarray, last: np.ndarray | None) -> tuple[Any, np.ndarray]:
        """Best face near the last landmarks if any, else anywhere; and the crop's offset in the frame."""
        if last is not None:
            x0, y0, x1, y1 = _grow((*last.min(axis=0), *last.max(axis=0)), self.config.search_margin, frame.shape)
            faces = self.detector(np.ascontiguousarray(frame[y0:y1, x0:x1]))
            if faces:
                return max(faces, key=lambda f: f.score), np.array([x0, y0], np.float64)
        faces = self.detector(frame)
        return (max(faces, key=lambda f: f.score) if faces else None), np.zeros(2)

    def smooth(self, motion: np.ndarray) -> np.ndarray:
        w = self.config.smooth_frames
        if w >= 3 and len(motion) >= w:
            motion = savgol_filter(motion, w, 2, axis=0)
        return clip(motion)

    def describe_items(self, motion: np.ndarray, audio: np.ndarray) -> list[AnnotatedItem]:
        """Cut into items of at most `max_item_s`; describe each item as a whole (AUs) and in windows of
        `window_s`, so an expression that changes inside an item becomes instruction segments."""
        from realtime.training.annotate.describe import describe

        items = []
        for a, b in _even_cuts(len(motion), self.config.max_item_s):
            whole = describe(motion[a:b])
            segments: list[tuple[int, str, list[tuple[str, float]]]] = []
            for wa, wb in _even_cuts(b - a, self.config.window_s):
                d = describe(motion[a + wa:a + wb])
                programs = [(str(n), float(i)) for n, i in d.programs]
                if not segments or segments[-1][1] != d.text:
                    segments.append((int(wa), d.text, programs))
            first = segments[0]
            items.append(AnnotatedItem(start_frame=int(a), motion=motion[a:b].copy(),
                                       audio=audio[a * SAMPLES_PER_FRAME: b * SAMPLES_PER_FRAME].copy(),
                                       instruction=first[1], programs=first[2],
                                       segments=segments if len(segments) > 1 else [],
                                       aus={str(k): float(v) for k, v in whole.aus.items()}))
        return items


def _similarity(src: np.ndarray, dst: np.ndarray) -> SimilarityTransform | None:
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        found = SimilarityTransform.from_estimate(src, dst)
        return found if found else None
    transform = SimilarityTransform()
    return transform if transform.estimate(src, dst) else None


def _even_cuts(n: int, seconds: float) -> list[tuple[int, int]]:
    """[0, n) cut into equal pieces of at most `seconds` (no tiny tail)."""
    pieces = max(1, int(np.ceil(n / max(1, int(seconds * 25)))))
    bounds = np.linspace(0, n, pieces + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _grow(box: tuple[float, ...], margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (max(0, int(x0 - margin * w)), max(0, int(y0 - margin * h)),
            min(shape[1], int(x1 + margin * w)), min(shape[0], int(y1 + margin * h)))


def _centre_size(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return (lo + hi) / 2, float(np.linalg.norm(hi - lo))


def _fill_gaps(found: np.ndarray, fitted: np.ndarray, n: int) -> np.ndarray:
    """Motion for every frame: frames without a face are interpolated from their neighbours."""
    motion = np.zeros((n, DIM), np.float32)
    t_found = np.flatnonzero(found)
    for k in range(DIM):
        motion[:, k] = np.interp(np.arange(n), t_found, fitted[:, k])
    return motion


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)[:n]
    return np.pad(audio, (0, n - len(audio))) if len(audio) < n else audio
