"""The outgoing video's pixel format: rgb_to_yuv420 (OpenCV) against libswscale, which it replaced."""
import av
import numpy as np
from skimage.data import astronaut

from realtime.media.stream import rgb_to_yuv420, yuv420_frame


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def test_yuv420_matches_libswscale_and_round_trips_to_the_same_picture():
    rgb = astronaut()  # 512x512 photograph: skin, hair, sharp colour edges
    yuv = rgb_to_yuv420(rgb)
    assert yuv.shape == (768, 512) and yuv.dtype == np.uint8
    reference = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    assert np.abs(yuv[:512].astype(int) - reference[:512]).max() <= 1  # luma: the same BT.601 limited range
    assert _psnr(yuv[512:], reference[512:]) > 45  # chroma: another 2x2 filter, same planes in the same order
    # what a decoder shows is the picture, as faithfully as through libswscale (no swapped planes, no range shift)
    back, back_ref = (yuv420_frame(y).to_ndarray(format="rgb24") for y in (yuv, reference))
    assert _psnr(back, rgb) > 30 and _psnr(back, rgb) > _psnr(back_ref, rgb) - 0.2
    assert abs(float(back.mean()) - float(rgb.mean())) <= abs(float(back_ref.mean()) - float(rgb.mean())) + 0.2
