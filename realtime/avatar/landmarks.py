"""Face detection and 68-point landmarks behind one small interface.

`LandmarkDetector` is the only thing the rest of the package depends on, so a detector with a
licence that suits a deployment can replace dlib. `DlibLandmarkDetector` uses dlib's HOG frontal
face detector and its 68-point shape predictor from the `face-recognition-models` package.

Licence note: dlib's 68-point shape predictor was trained on the iBUG 300-W data set, whose terms
restrict commercial use. Swap in another `LandmarkDetector` for commercial deployments.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class LandmarkModelMissing(RuntimeError):
    """The dlib model files could not be found on disk."""


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    score: float  # detector confidence; only comparable within one detector
    landmarks: np.ndarray  # (68, 2) float32, x/y pixels, iBUG 300-W order


class LandmarkDetector(Protocol):
    def __call__(self, image: np.ndarray) -> list[Face]:
        """RGB uint8 (H, W, 3) -> every face found, in no particular order."""
        ...


def dlib_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> Path:
    """Locate a `.dat` from face-recognition-models without importing it (its import needs
    pkg_resources, which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkModelMissing("package face-recognition-models is not installed "
                                   "(pip install face-recognition-models)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    raise LandmarkModelMissing(f"{name} not found under {list(spec.submodule_search_locations)}")


class DlibLandmarkDetector:
    """HOG frontal face detector + 68-point shape predictor (dlib). ~90 ms per 512x512 image on one core.

    The 68-point model's training data (iBUG 300-W) restricts commercial use; see the module docstring.
    Each instance holds its own dlib objects; use one instance per thread.
    """

    def __init__(self, upsample: int = 1, predictor_path: str | Path | None = None):
        import dlib

        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path or dlib_model_path()))
        self._rectangle = dlib.rectangle

    def __call__(self, image: np.ndarray) -> list[Face]:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got shape {image.shape}")
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        return [self._face(image, rect, float(score)) for rect, score in zip(rects, scores)]

    def landmarks_in_box(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """68 landmarks for a face already located (e.g. tracked from the previous frame)."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        return self._shape(image, self._rectangle(*[int(round(v)) for v in box]))

    def _face(self, image: np.ndarray, rect, score: float) -> Face:
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        return Face(box=box, score=score, landmarks=self._shape(image, rect))

    def _shape(self, image: np.ndarray, rect) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
