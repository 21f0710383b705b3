"""Enrol a portrait: find the best face, align it to a 512x512 head-and-shoulders crop, cache it.

The crop puts the eyes level at a fixed height with a fixed inter-ocular distance (IOD), so every
portrait shares one frame: the rig's bases and the renderer's warps are defined in it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .landmarks import DlibLandmarkDetector, Face, LandmarkDetector

SIZE = 512
TARGET_IOD = 88.0  # px between eye centres in the crop: face ~40 % of the width, hair and shoulders show
EYE_Y = 212.0  # px from the top to the eye line
MIN_FACE_PX = 80  # detector box width below which detail is too poor to animate
CACHE_VERSION = 2  # 2: the segmented head outline


class EnrolmentError(ValueError):
    """The image cannot be enrolled as a portrait."""


class ImageReadError(EnrolmentError):
    """The file is missing, unreadable or not an image."""


class NoFaceError(EnrolmentError):
    """No face was detected."""


class FaceTooSmallError(EnrolmentError):
    """A face was found but it is too small to animate."""


@dataclass
class Portrait:
    image: np.ndarray  # (512, 512, 3) uint8, aligned crop
    landmarks: np.ndarray  # (68, 2) float32 in crop pixels
    iod: float  # inter-ocular distance in crop pixels
    key: str  # sha256 of the source pixels (cache key)
    head: np.ndarray | None = None  # (512, 512) bool: face and hair as segmented (head.segment_head); None: not found

    @property
    def eye_centres(self) -> np.ndarray:
        return eye_centres(self.landmarks)


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(2, 2): image-left eye centre, image-right eye centre."""
    lm = np.asarray(landmarks, np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])


def load_image(image: Any) -> np.ndarray:
    """A path, PIL image or array -> RGB uint8 (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    if image is None:
        import skimage.data

        return skimage.data.astronaut()
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise ImageReadError(f"portrait image {path} does not exist")
        if not path.is_file():
            raise ImageReadError(f"portrait image {path} is not a file")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.convert("RGB")
        except UnidentifiedImageError as exc:
            raise ImageReadError(f"{path} is not an image file PIL can read") from exc
        except OSError as exc:
            raise ImageReadError(f"cannot read image {path}: {exc}") from exc
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageReadError(f"expected an RGB image (H, W, 3), got an array of shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def content_key(pixels: np.ndarray, detector_name: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{pixels.shape}|{detector_name}|v{CACHE_VERSION}".encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def best_face(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.score)


def align(pixels: np.ndarray, landmarks: np.ndarray):
    """Similarity transform (eyes level, fixed IOD, centred) and the warped 512x512 crop."""
    from skimage.transform import SimilarityTransform, warp

    left, right = eye_centres(landmarks)
    src = np.stack([left, right])
    dst = np.array([[SIZE / 2 - TARGET_IOD / 2, EYE_Y], [SIZE / 2 + TARGET_IOD / 2, EYE_Y]])
    to_crop = SimilarityTransform.from_estimate(src, dst) if hasattr(SimilarityTransform, "from_estimate") else None
    if to_crop is None:
        to_crop = SimilarityTransform()
        to_crop.estimate(src, dst)
    crop = warp(pixels, to_crop.inverse, output_shape=(SIZE, SIZE), order=3, mode="edge", preserve_range=True)
    return to_crop, np.clip(np.rint(crop), 0, 255).astype(np.uint8)


def enrol_uncached(pixels: np.ndarray, detector: LandmarkDetector, key: str) -> Portrait:
    faces = detector(pixels)
    if not faces:
        if max(pixels.shape[:2]) <= 2048 and _has_small_face(pixels, detector):
            raise FaceTooSmallError(f"the face is smaller than {MIN_FACE_PX} px; use a larger or closer-cropped photo")
        raise NoFaceError(f"no face found in the {pixels.shape[1]}x{pixels.shape[0]} image; "
                          "use a photo with one clearly visible, roughly frontal face")
    face = best_face(faces)
    width = face.box[2] - face.box[0]
    if width < MIN_FACE_PX:
        raise FaceTooSmallError(f"the face is {width} px wide, smaller than {MIN_FACE_PX} px; "
                                "use a larger or closer-cropped photo")
    to_crop, crop = align(pixels, face.landmarks)
    moved = to_crop(np.asarray(face.landmarks, np.float64)).astype(np.float32)
    again = detector(crop)
    if again:
        # re-detection on the crop is sharper than the transformed points; keep the face nearest to ours
        nearest = min(again, key=lambda f: float(np.abs(f.landmarks - moved).mean()))
        if float(np.abs(nearest.landmarks - moved).mean()) < 0.25 * TARGET_IOD:
            moved = np.asarray(nearest.landmarks, np.float32)
    from .head import segment_head  # head.py builds on this module

    left, right = eye_centres(moved)
    iod = float(np.linalg.norm(right - left))
    return Portrait(image=crop, landmarks=moved, iod=iod, key=key, head=segment_head(crop, moved, iod))


def _has_small_face(pixels: np.ndarray, detector: LandmarkDetector) -> bool:
    from PIL import Image

    h, w = pixels.shape[:2]
    bigger = np.asarray(Image.fromarray(pixels).resize((w * 2, h * 2), Image.BICUBIC))
    return bool(detector(bigger))


class PortraitCache:
    """Enrolled portraits keyed by image content: in memory (LRU) and on disk (npz)."""

    def __init__(self, folder: str | Path | None = None, capacity: int = 8):
        self.folder = Path(folder) if folder else default_cache_folder()
        self.capacity = capacity
        self._memory: OrderedDict[str, Portrait] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Portrait | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        path = self.folder / f"{key}.npz"
        try:
            with np.load(path) as data:
                head = data["head"]
                portrait = Portrait(image=data["image"], landmarks=data["landmarks"], iod=float(data["iod"]), key=key,
                                    head=head if head.size else None)
        except (OSError, KeyError, ValueError):
            return None
        self._remember(portrait)
        return portrait

    def put(self, portrait: Portrait) -> None:
        self._remember(portrait)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f"{portrait.key}.{os.getpid()}.{threading.get_ident()}.tmp.npz"
            head = np.zeros((0, 0), bool) if portrait.head is None else portrait.head
            np.savez_compressed(tmp, image=portrait.image, landmarks=portrait.landmarks, iod=portrait.iod, head=head)
            os.replace(tmp, self.folder / f"{portrait.key}.npz")
        except OSError:
            pass  # a read-only cache folder only costs re-enrolment time

    def _remember(self, portrait: Portrait) -> None:
        with self._lock:
            self._memory[portrait.key] = portrait
            self._memory.move_to_end(portrait.key)
            while len(self._memory) > self.capacity:
                self._memory.popitem(last=False)


def default_cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realtime-avatar"


_shared_cache: dict[str, PortraitCache] = {}  # one cache per folder, created on first use
_shared_lock = threading.Lock()


def shared_cache() -> PortraitCache:
    folder = default_cache_folder()
    with _shared_lock:
        cache = _shared_cache.get(str(folder))
        if cache is None:
            cache = _shared_cache[str(folder)] = PortraitCache(folder)
        return cache


def enrol(image: Any = None, detector: LandmarkDetector | None = None,
          cache: PortraitCache | None | bool = True) -> Portrait:
    """Enrol a portrait from a path, PIL image or RGB array (None: skimage's astronaut).

    `cache=True` uses the shared cache under $XDG_CACHE_HOME/realtime-avatar, a `PortraitCache` uses
    that one, `False`/`None` disables caching. Raises an `EnrolmentError` subclass on bad input.
    """
    pixels = load_image(image)
    detector_name = type(detector).__name__ if detector is not None else DlibLandmarkDetector.__name__
    key = content_key(pixels, detector_name)
    store = shared_cache() if cache is True else (cache or None)
    if store is not None:
        hit = store.get(key)
        if hit is not None:
            return hit
    portrait = enrol_uncached(pixels, detector or DlibLandmarkDetector(), key)
    if store is not None:
        store.put(portrait)
    return portrait
