"""A linear landmark rig over the motion space, and its inverse.

Expression axes move the 68 landmarks linearly (bases in units of the inter-ocular distance, IOD,
in the aligned 512x512 frame: x right, y down). Several bases are measured on the portrait itself:
`lips_close` closes exactly the portrait's own inner-lip gap, `frown` first removes the portrait's
own smile, blinks bring each upper lid down onto its lower lid. Head pose rotates an approximate
3-D head (an ellipsoid skull plus a nose ridge; `HeadModel`) about a pivot inside it and projects
orthographically; the same head model drives the renderer's dense warp, so rig landmarks and
rendered pixels agree.

Internally the rig works on "rig coefficients" (`RIG_NAMES`): the motion axes with three non-linear
conveniences made linear: `mouth_asym` splits into a right and a left corner raise, `smile` into a
smile (AU12, > 0) and `smile_relax` (< 0: the photograph's own smile undone, a relaxed mouth), and the
closures of a mouth at rest (pressed, relaxed, frowning) become `lips_rest`, which with `lips_close` closes
the lip gap at most once.
"""
from __future__ import annotations

import numpy as np

from realtime.vocab import DIM, HI, INDEX, LO

from .enrol import Portrait
from .head import HeadModel

POSE_NAMES = ("head_yaw", "head_pitch", "head_roll", "head_x", "head_y")
GAZE_NAMES = ("gaze_x", "gaze_y")
EXPRESSION_NAMES = tuple(n for n in INDEX if n not in POSE_NAMES + GAZE_NAMES and n != "mouth_asym")
RIG_NAMES = EXPRESSION_NAMES + ("mouth_asym_right", "mouth_asym_left", "smile_relax", "lips_rest")
RIG_INDEX = {n: i for i, n in enumerate(RIG_NAMES)}
RIG_LO = np.zeros(len(RIG_NAMES), np.float32)
RIG_HI = np.ones(len(RIG_NAMES), np.float32)

# landmark groups (iBUG 300-W 68-point order)
JAW = list(range(0, 17))
UPPER_LID = {"left": [37, 38], "right": [43, 44]}
LOWER_LID = {"left": [41, 40], "right": [47, 46]}  # below 37, 38 / 43, 44
INNER_UPPER = [61, 62, 63]
INNER_LOWER = [67, 66, 65]  # below 61, 62, 63
OUTER_UPPER = [50, 51, 52]
OUTER_LOWER = [58, 57, 56]  # below 50, 51, 52
EYE = {"left": list(range(36, 42)), "right": list(range(42, 48))}  # image-left / image-right eye
EYE_CORNERS = {"left": [36, 39], "right": [42, 45]}
MOUTH = list(range(48, 68))
# margins from corner to corner, (upper, lower): the per-column curves the eye and mouth remaps follow
LID_LINES = {side: ([c0, *UPPER_LID[side], c1], [c0, *LOWER_LID[side], c1])
             for side, (c0, c1) in EYE_CORNERS.items()}
INNER_LIP_LINES = ([60, *INNER_UPPER, 64], [60, *INNER_LOWER, 64])
# smile_relax moves the corners this many times the photographed smile's height (above NEUTRAL_LIFT): the
# photograph's corner texture (creases, cheek bulge) lags the landmarks a little even though the warp moves the
# cheek mass with the corners (warp.py), so the corners read level on the output pixels (dlib on the default
# portrait, talking) at about 1.6; without the cheek mass it took 2.3, which stretched the crease into a fold
RELAX_GAIN = 1.6
# a mouth that does not smile still rests with its corners a little above the inner-lip midline (a closed,
# relaxed mouth reads +0.03..0.05 IOD by dlib): only the lift above this is the photograph's smile to undo
NEUTRAL_LIFT = 0.04
# How much of the portrait's lip gap a full smile_relax and a full frown close (as lips_close does 1.0).
RELAX_CLOSES, FROWN_CLOSES = 0.7, 0.7
# points that expression moves least: pose is estimated from them first
RIGID_POINTS = [0, 16, 27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45]  # no lower jaw line: the cheek carries it


def motion_to_rig(motion: np.ndarray) -> np.ndarray:
    """(N, DIM) motion -> (N, len(RIG_NAMES)) rig coefficients."""
    motion = np.clip(np.asarray(motion, np.float32), LO, HI)
    out = np.zeros((len(motion), len(RIG_NAMES)), np.float32)
    for name in EXPRESSION_NAMES:
        out[:, RIG_INDEX[name]] = motion[:, INDEX[name]]
    smile = motion[:, INDEX["smile"]]
    out[:, RIG_INDEX["smile"]] = np.maximum(smile, 0)
    out[:, RIG_INDEX["smile_relax"]] = np.maximum(-smile, 0)
    closed = out[:, RIG_INDEX["lips_close"]]
    out[:, RIG_INDEX["lips_rest"]] = np.minimum(1.0 - closed, _expression_closure(
        motion[:, INDEX["lip_press"]], out[:, RIG_INDEX["smile_relax"]], motion[:, INDEX["frown"]]))
    asym = motion[:, INDEX["mouth_asym"]]
    out[:, RIG_INDEX["mouth_asym_right"]] = np.maximum(asym, 0)
    out[:, RIG_INDEX["mouth_asym_left"]] = np.maximum(-asym, 0)
    return out


def _expression_closure(press: np.ndarray, relax: np.ndarray, frown: np.ndarray) -> np.ndarray:
    """How far (0..1, the `lips_rest` coefficient) pressed lips, a relaxed smile and a frown close the portrait's
    lip gap: together, and with lips_close, at most once. Added each on its own they closed it 1.4 times over on
    a sad face, and the jaw of speech spent that overlap before the mouth opened at all (mouth opening while
    talking 0.30 -> 0.10 IOD at p90 by dlib). (Letting the jaw open through these closures as well was tried:
    dlib then read a disgusted face's raised upper lip as lowered.)"""
    return np.minimum(1.0, press + RELAX_CLOSES * relax + FROWN_CLOSES * frown)


def rig_to_motion(coeffs: np.ndarray, pose: np.ndarray) -> np.ndarray:
    coeffs = np.asarray(coeffs, np.float32)
    motion = np.zeros((len(coeffs), DIM), np.float32)
    for name in EXPRESSION_NAMES:
        motion[:, INDEX[name]] = coeffs[:, RIG_INDEX[name]]
    # a closure at rest beyond what the fitted press, relax and frown explain is the lips closing
    explained = _expression_closure(coeffs[:, RIG_INDEX["lip_press"]], coeffs[:, RIG_INDEX["smile_relax"]],
                                    coeffs[:, RIG_INDEX["frown"]])
    extra = np.maximum(coeffs[:, RIG_INDEX["lips_rest"]] - explained, 0)
    motion[:, INDEX["lips_close"]] = np.clip(coeffs[:, RIG_INDEX["lips_close"]] + extra, 0, 1)
    motion[:, INDEX["mouth_asym"]] = coeffs[:, RIG_INDEX["mouth_asym_right"]] - coeffs[:, RIG_INDEX["mouth_asym_left"]]
    motion[:, INDEX["smile"]] = coeffs[:, RIG_INDEX["smile"]] - coeffs[:, RIG_INDEX["smile_relax"]]
    for i, name in enumerate(POSE_NAMES):
        motion[:, INDEX[name]] = pose[:, i]
    return np.clip(motion, LO, HI)


def pose_of(motion: np.ndarray) -> np.ndarray:
    motion = np.clip(np.asarray(motion, np.float32), LO, HI)
    return motion[:, [INDEX[n] for n in POSE_NAMES]]


def build_bases(landmarks: np.ndarray, iod: float) -> np.ndarray:
    """(len(RIG_NAMES), 68, 2) landmark displacements in IOD units for coefficient 1."""
    lm = np.asarray(landmarks, np.float64) / iod
    bases = {name: np.zeros((68, 2)) for name in RIG_NAMES}

    def move(name: str, points, dx=0.0, dy=0.0) -> None:
        for p in np.atleast_1d(points):
            bases[name][p] += (dx, dy)

    def mirror(name: str, left, right, dx: float, dy: float) -> None:
        """dx > 0 moves both points outwards (away from the face midline)."""
        move(name, left, -dx, dy)
        move(name, right, dx, dy)

    # the portrait's own inner-lip gap (>= 0), per column pair
    gap = np.maximum(lm[INNER_LOWER, 1] - lm[INNER_UPPER, 1], 0.0)
    # the portrait's own smile: corners above the inner-lip midline
    midline = (lm[62, 1] + lm[66, 1]) / 2
    smile0 = float(np.clip(midline - (lm[48, 1] + lm[54, 1]) / 2 - NEUTRAL_LIFT, 0.0, 0.25))

    # --- jaw_open: jaw and lower lip drop, corners follow a little
    b = "jaw_open"
    for p, dy in zip(range(4, 13), (0.08, 0.18, 0.32, 0.44, 0.5, 0.44, 0.32, 0.18, 0.08)):
        move(b, p, dy=dy)
    for p, dy in zip([59, 58, 57, 56, 55], (0.32, 0.44, 0.46, 0.44, 0.32)):
        move(b, p, dy=dy)
    for p, dy in zip(INNER_LOWER, (0.44, 0.46, 0.44)):
        move(b, p, dy=dy)
    mirror(b, [48, 60], [54, 64], -0.04, 0.14)
    # --- lips_close: the inner lips meet (upper lip comes 40 % of the way)
    b = "lips_close"
    for up, lo, oup, olo, g in zip(INNER_UPPER, INNER_LOWER, OUTER_UPPER, OUTER_LOWER, gap):
        move(b, up, dy=0.4 * g)
        move(b, lo, dy=-0.6 * g)
        move(b, oup, dy=0.25 * g)
        move(b, olo, dy=-0.45 * g)
    move(b, [49, 53], dy=0.12 * gap.mean())
    move(b, [59, 55], dy=-0.25 * gap.mean())
    move(b, [7, 8, 9], dy=-0.35 * gap.mean())
    # --- lips_rest: the inner lips meet as lips_close's do, for closures of the mouth at rest (motion_to_rig)
    b = "lips_rest"
    for up, lo, g in zip(INNER_UPPER, INNER_LOWER, gap):
        move(b, up, dy=0.3 * g)
        move(b, lo, dy=-0.7 * g)
    # --- lip_press: thin, tightened lips (closure comes through lips_rest)
    b = "lip_press"  # each lip loses about a third of its thickness
    for outer, inner in zip([49, 50, 51, 52, 53], [61, 61, 62, 63, 63]):
        move(b, outer, dy=0.35 * max(lm[inner, 1] - lm[outer, 1], 0.0))
    for outer, inner in zip([59, 58, 57, 56, 55], [67, 67, 66, 65, 65]):
        move(b, outer, dy=-0.35 * max(lm[outer, 1] - lm[inner, 1], 0.0))
    mirror(b, [48, 60], [54, 64], -0.02, 0.0)
    # --- lip_funnel: rounded, slightly open lips
    b = "lip_funnel"
    mirror(b, [48, 60], [54, 64], -0.13, 0.0)
    mirror(b, [49, 59], [53, 55], -0.07, 0.0)
    mirror(b, [61, 67], [63, 65], -0.05, 0.0)
    move(b, OUTER_UPPER, dy=-0.05)
    move(b, OUTER_LOWER, dy=0.07)
    move(b, INNER_UPPER, dy=-0.03)
    move(b, INNER_LOWER, dy=0.07)
    # --- lip_pucker: narrow pout, lips come together
    b = "lip_pucker"
    mirror(b, [48, 60], [54, 64], -0.15, -0.01)
    mirror(b, [49, 59], [53, 55], -0.1, 0.0)
    mirror(b, [50, 58, 61, 67], [52, 56, 63, 65], -0.04, 0.0)
    for up, lo, g in zip(INNER_UPPER, INNER_LOWER, gap):
        move(b, up, dy=0.3 * g)
        move(b, lo, dy=-0.5 * g)
    move(b, OUTER_UPPER, dy=-0.02)
    move(b, OUTER_LOWER, dy=0.02)
    # --- lower_lip_tuck: the lower lip rises under the upper teeth
    b = "lower_lip_tuck"
    for lo, olo, g in zip(INNER_LOWER, OUTER_LOWER, gap):
        move(b, lo, dy=-(g + 0.02))
        move(b, olo, dy=-(0.3 * g + 0.06))
    move(b, [59, 55], dy=-0.03)
    move(b, [6, 7, 8, 9, 10], dy=-0.04)
    # --- mouth_stretch: corners out, lips thinner
    b = "mouth_stretch"
    mirror(b, [48, 60], [54, 64], 0.13, 0.01)
    mirror(b, [49, 59, 61, 67], [53, 55, 63, 65], 0.07, 0.0)
    mirror(b, [50, 58], [52, 56], 0.03, 0.0)
    move(b, OUTER_LOWER + INNER_LOWER, dy=0.02)
    # each lip point's place across the mouth: -1 at the image-left corner, 0 mid-mouth, +1 at the right corner
    # (outer lip points against the outer corners 48/54, inner ones against 60/64)
    across = {}
    for ids, (lc, rc) in ((range(48, 60), (48, 54)), (range(60, 68), (60, 64))):
        for p in ids:
            across[p] = float(np.clip((lm[p, 0] - (lm[lc, 0] + lm[rc, 0]) / 2)
                                      / max((lm[rc, 0] - lm[lc, 0]) / 2, 1e-3), -1, 1))
    # --- smile: corners up and out, the lips between lifted along a parabola (u^2) so the lip line bends into a
    # U (lifted in proportion to u, it drew a V: straight lines from the corners to the centre); cheeks and nose
    # wings follow
    b = "smile"
    for p, u in across.items():
        move(b, p, dx=0.1 * u, dy=-0.13 * u * u)
    mirror(b, [31], [35], 0.025, -0.02)
    mirror(b, [3, 4], [13, 12], 0.015, -0.015)
    # --- smile_relax: the photograph's own smile undone: corners down to the lip midline and in a
    # little, the lips and the cheeks beside the nose follow
    b = "smile_relax"
    for p, u in across.items():
        move(b, p, dx=-0.35 * smile0 * u, dy=RELAX_GAIN * smile0 * abs(u) ** 2)
    mirror(b, [31], [35], -0.1 * smile0, 0.1 * smile0)
    mirror(b, [3, 4], [13, 12], -0.06 * smile0, 0.06 * smile0)
    # a relaxed mouth rests (nearly) closed: that closure is lips_rest's (motion_to_rig, RELAX_CLOSES)
    # --- frown (AU15): corners pulled down from wherever they are; the lips bend into an arch together
    b = "frown"
    for p, u in across.items():
        move(b, p, dx=-0.02 * u, dy=0.15 * abs(u) ** 1.5)
    move(b, [5, 6, 10, 11], dy=0.02)
    # a sad mouth closes over the teeth: through lips_rest (FROWN_CLOSES)
    # --- upper_lip_raise: bares the upper teeth
    b = "upper_lip_raise"
    for p, dy in zip([49, 50, 51, 52, 53], (-0.08, -0.13, -0.14, -0.13, -0.08)):
        move(b, p, dy=dy)
    move(b, INNER_UPPER, dy=-0.14)
    move(b, [31, 32, 33, 34, 35], dy=-0.04)
    mirror(b, [48, 60], [54, 64], 0.0, -0.03)
    # --- mouth_asym: one corner up and out
    for b, corner, near, sign in (("mouth_asym_right", [54, 64], [53, 55, 63, 65], 1),
                                  ("mouth_asym_left", [48, 60], [49, 59, 61, 67], -1)):
        move(b, corner, dx=0.06 * sign, dy=-0.13)
        move(b, near, dx=0.03 * sign, dy=-0.06)
    # --- nose_wrinkle
    b = "nose_wrinkle"
    move(b, [31, 32, 33, 34, 35], dy=-0.07)
    mirror(b, [31], [35], 0.02, 0.0)
    move(b, [29, 30], dy=-0.04)
    move(b, [28], dy=-0.02)
    move(b, OUTER_UPPER + INNER_UPPER, dy=-0.03)  # the whole upper lip lifts with the nose
    move(b, [21, 22], dy=0.03)
    # --- cheek_raise: cheeks up, lower lids pushed up
    b = "cheek_raise"
    move(b, [1, 15], dy=-0.03)
    move(b, [2, 14], dy=-0.05)
    move(b, [3, 13], dy=-0.05)
    for side in ("left", "right"):
        up, lo = UPPER_LID[side], LOWER_LID[side]
        opening = lm[lo, 1] - lm[up, 1]
        for p, h in zip(lo, opening):
            move(b, p, dy=-0.3 * h)
    mirror(b, [48], [54], 0.0, -0.03)
    # --- brows
    b = "brow_inner_up"
    for p, dy in zip([17, 18, 19, 20, 21], (0.0, -0.03, -0.07, -0.12, -0.16)):
        move(b, [p, 43 - p], dy=dy)  # 21 <-> 22, 17 <-> 26
    mirror(b, [21], [22], -0.02, 0.0)
    b = "brow_outer_up"
    for p, dy in zip([17, 18, 19, 20, 21], (-0.15, -0.14, -0.1, -0.05, -0.01)):
        move(b, [p, 43 - p], dy=dy)
    b = "brow_down"
    for p, dy in zip([17, 18, 19, 20, 21], (0.03, 0.05, 0.07, 0.085, 0.095)):  # the inner ends most (corrugator)
        move(b, [p, 43 - p], dy=dy)
    mirror(b, [21], [22], -0.07, 0.0)
    mirror(b, [20], [23], -0.055, 0.0)
    mirror(b, [19], [24], -0.035, 0.0)
    mirror(b, [18], [25], -0.015, 0.0)
    # --- eyelids
    for b, side in (("blink_left", "left"), ("blink_right", "right")):
        for up, lo in zip(UPPER_LID[side], LOWER_LID[side]):
            d = lm[lo] - lm[up]
            bases[b][up] += 0.9 * d
            bases[b][lo] -= 0.1 * d
    for side in ("left", "right"):
        move("eye_wide", UPPER_LID[side], dy=-0.075)  # AU5: sclera shows above the iris, even behind glasses
        # and the lower lid drawn down a little, as in surprise (Ekman and Friesen): behind a spectacle frame's bar,
        # which hides the upper lid's rise, it is most of what opens the eye (Grace Hopper)
        move("eye_wide", LOWER_LID[side], dy=0.03)
        for up, lo in zip(UPPER_LID[side], LOWER_LID[side]):
            h = lm[lo, 1] - lm[up, 1]
            move("eye_squint", lo, dy=-0.35 * h)
            move("eye_squint", up, dy=0.12 * h)
    move("eye_wide", [18, 19, 20, 23, 24, 25], dy=-0.03)
    return np.stack([bases[n] for n in RIG_NAMES]).astype(np.float32)


class Rig:
    """Landmark rig of one enrolled portrait: motion (N, DIM) <-> landmarks (N, 68, 2) in crop pixels."""

    def __init__(self, portrait: Portrait, ridge: float = 1e-3):
        self.portrait = portrait
        self.iod = float(portrait.iod)
        self.rest = np.asarray(portrait.landmarks, np.float64)
        self.bases = build_bases(self.rest, self.iod)  # (K, 68, 2) IOD units
        self.head = HeadModel.from_landmarks(self.rest, self.iod, int(portrait.image.shape[0]), portrait.head)
        self.ridge = ridge

    # -- forward ---------------------------------------------------------------------------------
    def expression_displacement(self, coeffs: np.ndarray) -> np.ndarray:
        """(N, K) rig coefficients -> (N, 68, 2) landmark displacements in pixels, before pose."""
        return np.einsum("nk,kpc->npc", np.asarray(coeffs, np.float64), self.bases) * self.iod

    def landmarks(self, motion: np.ndarray) -> np.ndarray:
        motion = np.atleast_2d(np.asarray(motion, np.float32))
        if motion.shape[-1] != DIM:
            raise ValueError(f"motion must be (N, {DIM}), got {motion.shape}")
        expressed = self.rest[None] + self.expression_displacement(motion_to_rig(motion))
        return self.posed(expressed, pose_of(motion)).astype(np.float32)

    def posed(self, points: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Apply head pose (N, 5) to per-frame points (N, P, 2)."""
        out = np.empty_like(points, dtype=np.float64)
        for i in range(len(points)):
            out[i] = points[i] + self.head.displacement(points[i], pose[i:i + 1])[0]
        return out

    def unposed(self, points: np.ndarray, pose: np.ndarray, iterations: int = 12) -> np.ndarray:
        """Invert `posed` (fixed-point iteration on the smooth pose field)."""
        out = np.array(points, np.float64)
        for i in range(len(points)):
            guess = points[i].astype(np.float64).copy()
            for _ in range(iterations):
                guess = points[i] - self.head.displacement(guess, pose[i:i + 1])[0]
            out[i] = guess
        return out

    # -- inverse ---------------------------------------------------------------------------------
    def fit(self, landmarks: np.ndarray, iterations: int = 2) -> np.ndarray:
        """(N, 68, 2) landmarks in this portrait's aligned frame -> (N, DIM) motion.

        Pose first from the points expression barely moves, then a bounded, ridge-regularised
        least-squares fit of the expression coefficients in the un-posed frame; repeated once with
        the expression known so pose uses every landmark."""
        from scipy.optimize import least_squares, lsq_linear

        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
            raise ValueError(f"landmarks must be (N, 68, 2), got {landmarks.shape}")
        pose_lo = LO[[INDEX[n] for n in POSE_NAMES]].astype(np.float64)
        pose_hi = HI[[INDEX[n] for n in POSE_NAMES]].astype(np.float64)
        k = len(RIG_NAMES)
        design = self.bases.reshape(k, -1).T.astype(np.float64) * self.iod  # (136, K)
        lam = np.sqrt(self.ridge) * self.iod
        # relaxing the photographed smile moves the corners much as a frown does: prefer the frown, which
        # real footage shows far more often than a portrait's smile wiped off
        prior = np.diag(np.where(np.array(RIG_NAMES) == "smile_relax", 4.0, 1.0))
        coeffs = np.zeros((len(landmarks), k))
        poses = np.zeros((len(landmarks), 5))
        for n, observed in enumerate(landmarks):
            pose = np.zeros(5)
            expressed = self.rest.copy()
            for it in range(iterations):
                points = RIGID_POINTS if it == 0 else list(range(68))
                pose = least_squares(
                    lambda p, e, o: (e + self.head.displacement(e, p[None])[0] - o).ravel() / self.iod,
                    np.clip(pose, pose_lo, pose_hi), args=(expressed[points], observed[points]),
                    bounds=(pose_lo, pose_hi), x_scale=[10, 10, 10, 0.1, 0.1]).x
                flat = self.unposed(observed[None], pose[None])[0]
                target = (flat - self.rest).ravel()
                solution = lsq_linear(np.vstack([design, lam * prior]), np.concatenate([target, np.zeros(k)]),
                                      bounds=(RIG_LO, RIG_HI))
                coeffs[n] = solution.x
                expressed = self.rest + self.expression_displacement(solution.x[None])[0]
            poses[n] = pose
        return rig_to_motion(coeffs, poses)
