"""Portrait enrolment, rig and renderer, checked on real pixels: dlib re-reads the rendered frames."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from realtime.avatar import (
    DlibLandmarkDetector,
    FaceTooSmallError,
    ImageReadError,
    MotionShapeError,
    NoFaceError,
    PortraitCache,
    RenderConfig,
    Renderer,
    Rig,
    contact_sheet,
    enrol,
)
from realtime.avatar.enrol import EnrolmentError
from realtime.avatar.head import segment_head
from realtime.vocab import DIM, INDEX, vector


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return PortraitCache(tmp_path_factory.mktemp("avatar-cache"))


@pytest.fixture(scope="module")
def portrait(cache):
    return enrol(None, cache=cache)


@pytest.fixture(scope="module")
def renderer(portrait):
    return Renderer(portrait, RenderConfig(device="cpu")).setup()


@pytest.fixture(scope="module")
def detector():
    return DlibLandmarkDetector()


def _landmarks(detector, frame) -> np.ndarray:
    faces = detector(np.asarray(frame))
    assert faces, "dlib lost the face in a rendered frame"
    return max(faces, key=lambda f: f.score).landmarks.astype(np.float64)


def _lip_gap(lm: np.ndarray, iod: float) -> float:
    return float((lm[[65, 66, 67], 1] - lm[[63, 62, 61], 1]).mean() / iod)


def _eye_aspect(lm: np.ndarray) -> float:
    def one(p):
        vertical = np.linalg.norm(lm[p[1]] - lm[p[5]]) + np.linalg.norm(lm[p[2]] - lm[p[4]])
        return vertical / (2 * np.linalg.norm(lm[p[0]] - lm[p[3]]))
    return float((one(range(36, 42)) + one(range(42, 48))) / 2)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# -- enrolment ---------------------------------------------------------------------------------------
def test_missing_file_is_an_image_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist"):
        enrol(tmp_path / "nobody.png", cache=False)


def test_text_file_is_an_image_read_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image at all")
    with pytest.raises(ImageReadError, match="not an image"):
        enrol(path, cache=False)


@pytest.mark.parametrize("image", [np.full((256, 256, 3), 128, np.uint8), skimage.data.coffee()],
                         ids=["grey", "coffee"])
def test_image_without_a_face(image):
    with pytest.raises(NoFaceError, match="no face"):
        enrol(image, cache=False)


def test_tiny_face_is_refused():
    small = Image.fromarray(skimage.data.astronaut()).resize((256, 256), Image.LANCZOS)
    with pytest.raises(FaceTooSmallError, match="80 px"):
        enrol(small, cache=False)


def test_errors_share_one_base_class():
    assert issubclass(NoFaceError, EnrolmentError) and issubclass(EnrolmentError, ValueError)


def test_astronaut_enrols_the_real_face(portrait):
    assert portrait.image.shape == (512, 512, 3) and portrait.image.dtype == np.uint8
    assert portrait.landmarks.shape == (68, 2)
    assert 80 < portrait.iod < 96  # aligned to ~88 px between the eyes
    left, right = portrait.eye_centres
    assert abs(left[1] - right[1]) < 3  # eyes level
    assert abs(portrait.landmarks[30, 0] - 256) < 20  # centred on her nose, not the false face lower left
    # the source's false face sits at (126, 335)-(215, 425): a crop around it would have no smile and teeth;
    # in the real crop the mouth is below the nose and both are in the middle third
    assert 150 < portrait.landmarks[30, 1] < 330 and portrait.landmarks[57, 1] > portrait.landmarks[30, 1]


def test_enrolment_is_cached_in_memory_and_on_disk(portrait, cache):
    assert (cache.folder / f"{portrait.key}.npz").is_file()
    assert enrol(None, cache=cache) is portrait  # memory hit
    fresh = PortraitCache(cache.folder)
    again = enrol(skimage.data.astronaut(), cache=fresh)  # disk hit, same content key
    assert again.key == portrait.key
    np.testing.assert_array_equal(again.image, portrait.image)
    np.testing.assert_allclose(again.landmarks, portrait.landmarks)
    assert again.head is not None and (again.head == portrait.head).all()  # the segmented head outline
    assert (segment_head(portrait.image, portrait.landmarks, portrait.iod) == portrait.head).all()  # deterministic


# -- rig ---------------------------------------------------------------------------------------------
def test_rig_lips_close_meets_and_fit_round_trips(portrait):
    rig = Rig(portrait)
    closed = rig.landmarks(vector(lips_close=1.0))[0]
    np.testing.assert_allclose(closed[[61, 62, 63], 1], closed[[67, 66, 65], 1], atol=0.05)
    rng = np.random.default_rng(0)
    axes = ["jaw_open", "smile", "frown", "blink_left", "blink_right", "brow_inner_up", "brow_outer_up",
            "brow_down", "lips_close", "head_yaw", "head_pitch", "head_roll", "head_x", "head_y"]
    motion = np.zeros((6, DIM), np.float32)
    for row in motion:
        for name in rng.choice(axes, 4, replace=False):
            lo, hi = (-12, 12) if name.startswith("head_") and name[-1] not in "xy" else \
                     (-0.2, 0.2) if name in ("head_x", "head_y") else (0.0, 0.8)
            row[INDEX[name]] = rng.uniform(lo, hi)
    fitted = rig.fit(rig.landmarks(motion))
    for name in axes:
        i = INDEX[name]
        tol = 1.0 if name in ("head_yaw", "head_pitch", "head_roll") else 0.08
        assert np.abs(fitted[:, i] - motion[:, i]).max() < tol, name
    assert np.abs(rig.landmarks(fitted) - rig.landmarks(motion)).max() < 1.0  # pixels


def test_a_smile_bends_the_lip_line_into_a_u_not_a_v(portrait):
    """Lifting the lips between the corners in proportion to their distance from the centre drew a smile as two
    straight lines meeting mid-mouth (a V); along a parabola the line curves, flat in the middle."""
    rig = Rig(portrait)
    rest, smile = rig.landmarks(vector())[0], rig.landmarks(vector(smile=1.0))[0]
    lift = rest[:, 1] - smile[:, 1]  # pixels up
    for corner, between in ((60, 61), (64, 63), (48, 49), (54, 53)):
        assert lift[corner] > 0
        share = (rest[between, 0] - rest[62, 0]) / (rest[corner, 0] - rest[62, 0])  # 0 mid-mouth .. 1 the corner
        assert lift[between] < 0.75 * share * lift[corner], (between, lift[between], share, lift[corner])


def test_closures_of_a_mouth_at_rest_close_the_lips_once_and_the_jaw_still_opens_them(portrait):
    """A relaxed smile, a frown and pressed lips each close the portrait's lip gap; added on their own they closed
    it 1.4 times over on a sad face, and a talking sad face barely opened its mouth. Together they meet, no more."""
    rig = Rig(portrait)

    def opening(**axes: float) -> float:
        lm = rig.landmarks(vector(**axes))[0]
        return float(np.mean(lm[[67, 66, 65], 1] - lm[[61, 62, 63], 1]) / rig.iod)

    assert abs(opening(smile=-1.0, frown=1.0, lip_press=0.7)) <= 0.01  # closed, not crossed
    talking_relaxed = opening(jaw_open=0.4, smile=-1.0, frown=1.0, lip_press=0.7)
    assert talking_relaxed >= 0.9 * opening(jaw_open=0.4, lips_close=1.0)  # the jaw opens it as from closed lips


# -- renderer ----------------------------------------------------------------------------------------
def test_neutral_frame_reproduces_the_portrait(renderer, portrait):
    frames = renderer(np.zeros((2, DIM), np.float32))
    assert frames.dtype.is_floating_point is False and tuple(frames.shape) == (2, 512, 512, 3)
    assert _psnr(frames[0].numpy(), portrait.image) >= 35


def test_bad_motion_is_refused(renderer):
    with pytest.raises(MotionShapeError):
        renderer(np.zeros((2, DIM + 1), np.float32))
    with pytest.raises(MotionShapeError):
        renderer(np.full((1, DIM), np.nan, np.float32))


def _teeth_pixels(frame: np.ndarray, lm: np.ndarray) -> int:
    """Bright, unsaturated pixels inside the outer lip contour: visible teeth (ivory, not a pink lip highlight)."""
    from skimage.draw import polygon

    rr, cc = polygon(lm[48:60, 1], lm[48:60, 0], frame.shape[:2])
    px = frame[rr, cc].astype(int)
    return int(((px.mean(1) > 175) & (px[:, 0] - px[:, 1] < 18) & (px[:, 0] - px[:, 2] < 45)).sum())


def test_mouth_closes_and_opens_on_rendered_pixels(renderer, portrait, detector):
    motion = np.stack([vector(), vector(lips_close=1), vector(lips_close=1, smile=0.6), vector(jaw_open=1)])
    frames = renderer(motion).numpy()
    found = [_landmarks(detector, f) for f in frames]
    rest, closed, _, opened = (_lip_gap(lm, portrait.iod) for lm in found)
    assert rest > 0.08  # she smiles with parted lips
    assert closed < min(0.05, 0.3 * rest)
    assert opened > rest + 0.2
    # no teeth left between closed lips, smiling or not (dlib reads a closed smile as slightly open)
    rig_landmarks = Rig(portrait).landmarks(motion)
    teeth = [_teeth_pixels(f, lm) for f, lm in zip(frames, rig_landmarks)]
    assert teeth[0] > 100 and teeth[1] < 5 and teeth[2] < 5
    # the opened mouth shows a dark cavity, not stretched teeth
    lm = found[3].astype(int)
    cx, top, bottom = lm[62, 0], lm[62, 1], lm[66, 1]
    inner = frames[3][top + (bottom - top) // 3: bottom - (bottom - top) // 4, cx - 5: cx + 5]
    assert inner.mean() < 90


def test_blink_closes_the_eyes(renderer, detector):
    frames = renderer(np.stack([vector(), vector(blink_left=1, blink_right=1)])).numpy()
    open_, shut = (_eye_aspect(_landmarks(detector, f)) for f in frames)
    assert open_ > 0.2 and shut < 0.6 * open_


def test_frown_lowers_the_mouth_corners(renderer, portrait, detector):
    frames = renderer(np.stack([vector(), vector(frown=1)])).numpy()
    rest, frown = (_landmarks(detector, f) for f in frames)
    drop = ((frown[[48, 54], 1] - frown[[51, 57], 1].mean()) - (rest[[48, 54], 1] - rest[[51, 57], 1].mean())).mean()
    assert drop / portrait.iod > 0.08


def test_head_yaw_moves_the_nose_tip(renderer, portrait, detector):
    frames = renderer(np.stack([vector(), vector(head_yaw=15), vector(head_yaw=-15)])).numpy()
    rest, right, left = (_landmarks(detector, f)[30, 0] for f in frames)
    assert (right - rest) / portrait.iod > 0.1 and (rest - left) / portrait.iod > 0.1
    background = slice(0, 40)  # far corner of the frame stays static
    assert np.array_equal(frames[1][background, background], portrait.image[background, background])


def test_renderer_is_deterministic_and_thread_safe(portrait):
    motion = np.stack([vector(jaw_open=0.6, smile=0.4, head_yaw=6, blink_left=0.5, gaze_x=0.5),
                       vector(lips_close=1, frown=0.5, head_roll=-8)])
    first = Renderer(portrait, RenderConfig(device="cpu")).setup()
    a = first(motion)
    with ThreadPoolExecutor(2) as pool:
        b, c = pool.map(lambda _: Renderer(portrait, RenderConfig(device="cpu")).setup()(motion), range(2))
    assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(a.numpy(), c.numpy())
    assert np.array_equal(a.numpy(), first(motion).numpy())


def test_contact_sheet_lays_out_labelled_tiles():
    frames = np.zeros((5, 20, 30, 3), np.uint8)
    sheet = contact_sheet(frames, [f"f{i}" for i in range(5)], cols=3)
    assert sheet.size == (90, 2 * (20 + 16))
    assert np.asarray(sheet)[20:36].min() < 255  # labels were drawn


def test_closed_mouth_portrait_opens_onto_synthesized_teeth(renderer, portrait):
    closed = renderer(vector(lips_close=1, frown=0.5)).numpy()[0]
    shut = enrol(closed, cache=False)  # a portrait whose lips are closed: no teeth to carry
    other = Renderer(shut, RenderConfig(device="cpu")).setup()
    assert not other.shows_teeth and renderer.shows_teeth
    frames = other(np.stack([vector(), vector(jaw_open=0.6)])).numpy()
    assert _psnr(frames[0], shut.image) >= 35
    lm = Rig(shut).landmarks(vector(jaw_open=0.6))[0]
    from skimage.draw import polygon

    rr, cc = polygon(lm[60:68, 1], lm[60:68, 0])
    inside = frames[1][rr, cc].astype(int)
    assert (inside.max(1) < 70).mean() > 0.2  # a dark cavity
    # and a row of teeth below the upper lip: bright and pale (ivory at the skin's warmth, R-G about 19 here)
    assert ((inside.mean(1) > 150) & (inside.max(1) - inside.min(1) < 0.3 * inside.max(1))).sum() > 30


def test_coarse_positions_are_enlarged_exactly_as_bilinear_align_corners():
    """The CPU renderer's per-pixel source positions (OpenCV warpAffine) equal torch's bilinear interpolation with
    aligned corners, which the CUDA path uses, at every field step the renderer takes."""
    import torch.nn.functional as F

    from realtime.avatar.warp import upsample_positions

    rng = np.random.default_rng(3)
    for step in (2, 4, 8):
        coarse = (rng.random((23, 31, 2)) * 500).astype(np.float32)
        shape = (22 * step + 1 - 3, 30 * step + 1)  # cut short at the bottom, as at the frame's edge
        fine = upsample_positions(coarse, step, shape)
        reference = F.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], size=(22 * step + 1, 30 * step + 1),
                                  mode="bilinear", align_corners=True)[0].permute(1, 2, 0).numpy()[:shape[0]]
        assert fine.shape == (*shape, 2)
        assert np.abs(fine - reference).max() < 1e-3
    with pytest.raises(AssertionError, match="field_step"):
        RenderConfig(field_step=3)


def test_an_iris_moved_less_than_a_quarter_pixel_is_not_repainted_but_a_real_glance_is(renderer):
    """Skipping the iris paint for the generator's tiny gaze values (a tenth of a pixel) changes the picture by
    no more than that shift; a glance moves the iris by pixels, painted exactly as without the limit."""
    exact = Renderer(renderer.portrait, RenderConfig(device="cpu", iris_min_shift=0.0)).setup()
    motion = np.stack([vector(), vector(gaze_x=0.02, gaze_y=0.02), vector(gaze_x=0.6)])
    still, tiny, glance = (renderer(m[None]).numpy()[0] for m in motion)  # one frame at a time, as served
    _, tiny_painted, glance_painted = (exact(m[None]).numpy()[0] for m in motion)
    assert not np.array_equal(tiny, tiny_painted)  # the paint was skipped ...
    mse = np.mean((tiny.astype(float) - tiny_painted) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 55  # ... and that is invisible
    assert np.array_equal(glance, glance_painted)  # above the limit: painted as before
    assert (np.abs(glance.astype(int) - still).max(-1) > 20).sum() > 30  # the iris moved by whole pixels
