"""The head as the pose warp sees it: an ellipsoid skull plus a nose ridge in the aligned frame, turned
about a pivot inside it (yaw, pitch) or about the chin (roll), and projected orthographically."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .enrol import eye_centres

# the head weight falls to 0 over this many pixels per pixel of the outline's height above the chin: a roll of
# 10 degrees moves the crown 0.17 px per px, a smoothstep's steepest fall over such a band is 1.5 / 0.6 per px:
# 0.17 * 2.5 < 1, the background beside the hair does not fold (it starts to beside the cheeks at 15 degrees,
# where a band of 0.4 IOD folded at 10 already)
BAND_PER_PX = 0.6


@dataclass(eq=False)
class HeadModel:
    """Head geometry in the aligned frame, in pixels: the pose pivot, a depth surface and a weight
    map that is 1 on the head (face and hair) and falls smoothly to 0 on the static background,
    close under the jaw so collars and shoulders stay put."""

    centre: tuple[float, float]  # pivot (x, y)
    skull_radii: tuple[float, float]  # depth ellipsoid semi-axes (x, y)
    depth: float  # ellipsoid depth at its centre
    nose: tuple[float, float]  # nose tip
    nose_height: float  # extra depth of the nose tip
    nose_sigma: float
    iod: float
    weight: np.ndarray  # (H, W) float32 in [0, 1]
    neck: float = 0.0  # y of the roll pivot (the chin): a tilted head leaves the collar where it is

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, iod: float, size: int = 512,
                       head: np.ndarray | None = None) -> HeadModel:
        """`head`: the face and hair as segmented from the portrait (`segment_head`); None: a cranium ellipse
        stands in for the hair."""
        from scipy.ndimage import distance_transform_edt, gaussian_filter

        lm = np.asarray(landmarks, np.float64)
        left, right = eye_centres(lm)
        eyes = (left + right) / 2
        chin = lm[8]
        face_half_width = (lm[16, 0] - lm[0, 0]) / 2
        top = eyes[1] - 2.05 * iod
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
        if head is None:
            cy, ry, rx = eyes[1] - 0.45 * iod, 1.65 * iod, max(1.7 * iod, 1.5 * face_half_width)
            head = ((xx - eyes[0]) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        mask = face_mask(lm, size) | head
        # the weight falls to 0 over a band as wide as the nearest outline point is high above the chin (the roll
        # pivot): a turn of a few degrees moves the crown further than a fixed 0.4 IOD, and a band narrower than
        # that displacement folds the background over itself (a seam torn along the hair). Under the jaw it stays
        # 0.4 IOD, so the collar stays put; at most 1.2 IOD, so the frame's far corners do; smoothed, or it would
        # jump where the nearest outline point changes from the hair to the jaw
        distance, (near_y, _) = distance_transform_edt(~mask, return_indices=True)
        width = gaussian_filter(np.clip(BAND_PER_PX * (chin[1] - near_y), 0.4 * iod, 1.2 * iod), 0.5 * iod)
        t = np.clip(distance / width, 0.0, 1.0)
        weight = (1.0 - t * t * (3 - 2 * t)).astype(np.float32)
        return cls(centre=(float(eyes[0]), float((top + chin[1]) / 2)),
                   skull_radii=(float(1.15 * face_half_width), float((chin[1] - top) / 2)),
                   depth=float(1.1 * iod), nose=(float(lm[30, 0]), float(lm[30, 1])),
                   nose_height=float(0.3 * iod), nose_sigma=float(0.28 * iod), iod=float(iod), weight=weight,
                   neck=float(chin[1]))

    def depth_at(self, xy: np.ndarray) -> np.ndarray:
        """Height of the head surface above the pivot plane at image points (..., 2)."""
        xy = np.asarray(xy, np.float64)
        u = (xy[..., 0] - self.centre[0]) / self.skull_radii[0]
        v = (xy[..., 1] - self.centre[1]) / self.skull_radii[1]
        skull = self.depth * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))
        d2 = (xy[..., 0] - self.nose[0]) ** 2 + ((xy[..., 1] - self.nose[1]) * 0.6) ** 2
        return skull + self.nose_height * np.exp(-d2 / (2 * self.nose_sigma ** 2))

    def weight_at(self, xy: np.ndarray) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        xy = np.asarray(xy, np.float64)
        flat = xy.reshape(-1, 2)
        values = map_coordinates(self.weight, [flat[:, 1], flat[:, 0]], order=1, mode="nearest")
        return values.reshape(xy.shape[:-1])

    def displacement(self, xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Forward displacement of image points (P, 2) under pose rows (N, 5) -> (N, P, 2)."""
        xy = np.asarray(xy, np.float64)
        z = self.depth_at(xy)
        w = self.weight_at(xy)
        rel = np.stack([xy[:, 0] - self.centre[0], xy[:, 1] - self.centre[1], z], axis=-1)  # (P, 3)
        rot, offset = self.rotation(np.asarray(pose, np.float64)[:, :3])
        moved = (np.einsum("nij,pj->npi", rot, rel) + offset[:, None])[..., :2] - rel[None, :, :2]
        shift = np.asarray(pose, np.float64)[:, None, 3:5] * self.iod
        return w[None, :, None] * (moved + shift)

    def rotation(self, angles_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) yaw, pitch, roll -> rotation (N, 3, 3) and offset (N, 3) of points relative to the pivot:
        yaw and pitch turn about the pivot inside the head, roll about the chin (the neck)."""
        angles = np.asarray(angles_deg, np.float64)
        rot = rotation_matrices(angles)
        roll = rotation_matrices(np.stack([np.zeros(len(angles)), np.zeros(len(angles)), angles[:, 2]], 1))
        neck = np.array([0.0, self.neck - self.centre[1], 0.0])
        return rot, neck - roll @ neck


def face_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the hull of the jaw line and the brows, grown by 4 %."""
    from skimage.draw import polygon

    lm = np.asarray(landmarks, np.float64)
    hull = lm[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 26, 25, 24, 19, 18, 17]]
    centre = hull.mean(0)
    hull = centre + (hull - centre) * 1.04
    mask = np.zeros((size, size), bool)
    rr, cc = polygon(hull[:, 1], hull[:, 0], (size, size))
    mask[rr, cc] = True
    return mask


def segment_head(image: np.ndarray, landmarks: np.ndarray, iod: float) -> np.ndarray | None:
    """(H, W) bool: face and hair above the chin as they are in the aligned portrait (RGB), segmented by GrabCut
    from the face outward within 2.3 IOD of the brow line's centre; None when the result is not a plausible head
    (then a cranium ellipse stands in). A fixed ellipse moved the background around the hair with a turning head
    and left hair outside it behind (a cut through the hair). Once per enrolment (0.4-1.3 s CPU; the portrait
    cache keeps it): at half resolution GrabCut took the dark flag beside Grace Hopper's navy cap for hair."""
    import cv2

    size = image.shape[0]
    lm = np.asarray(landmarks, np.float64)
    left, right = eye_centres(lm)
    face = face_mask(lm, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = float((left[0] + right[0]) / 2), float((left[1] + right[1]) / 2) - 0.45 * iod
    # not the neck under the jaw (its skin joined the face, and the collar moved with it) nor below the chin
    jaw = lm[0:17]
    under = (xx > jaw[0, 0]) & (xx < jaw[16, 0]) & (yy > np.interp(xx, jaw[:, 0], jaw[:, 1]))
    reach = (np.hypot(xx - cx, yy - cy) <= 2.3 * iod) & (yy < lm[8, 1]) & ~under
    core = ((xx - cx) / (1.2 * iod)) ** 2 + ((yy - cy) / (1.3 * iod)) ** 2 <= 1.0
    labels = np.full((size, size), cv2.GC_BGD, np.uint8)
    labels[reach] = cv2.GC_PR_FGD
    labels[core | face] = cv2.GC_FGD
    bgr = np.ascontiguousarray(image[..., 2::-1])
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's colour models start from k-means: the same portrait, the same outline
    cv2.grabCut(bgr, labels, None, *models, 5, cv2.GC_INIT_WITH_MASK)
    head = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))  # no specks, strands or slits of ~0.1 IOD
    head = cv2.morphologyEx(cv2.morphologyEx(head, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    count, parts = cv2.connectedComponents(head)
    if count > 2:  # keep the piece that holds the face
        keep = np.bincount(parts[face & (head > 0)].ravel(), minlength=count)
        keep[0] = 0
        head = (parts == int(np.argmax(keep))).astype(np.uint8)
    ring = reach & ~(core | face)  # what GrabCut decided: some of it is hair, not all
    if not 0.02 * ring.sum() <= (ring & (head > 0)).sum() <= 0.9 * ring.sum():
        return None
    return head > 0


def rotation_matrices(angles_deg: np.ndarray) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees -> (N, 3, 3), x right, y down, z towards the camera.
    + yaw turns the face towards image right, + pitch tips the chin down, + roll is clockwise."""
    yaw, pitch, roll = np.deg2rad(np.asarray(angles_deg, np.float64)).T
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    # each elementary rotation filled in place (once per rendered frame: nested np.stack cost more than the math)
    r_yaw, r_pitch, r_roll = (np.zeros((len(yaw), 3, 3)) for _ in range(3))
    r_yaw[:, 0, 0], r_yaw[:, 0, 2], r_yaw[:, 1, 1], r_yaw[:, 2, 0], r_yaw[:, 2, 2] = cy, sy, 1.0, -sy, cy
    r_pitch[:, 0, 0], r_pitch[:, 1, 1], r_pitch[:, 1, 2], r_pitch[:, 2, 1], r_pitch[:, 2, 2] = 1.0, cp, sp, -sp, cp
    r_roll[:, 0, 0], r_roll[:, 0, 1], r_roll[:, 1, 0], r_roll[:, 1, 1], r_roll[:, 2, 2] = cr, -sr, sr, cr, 1.0
    return r_roll @ r_pitch @ r_yaw
