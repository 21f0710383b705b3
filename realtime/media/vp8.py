"""The server's VP8 encoder: aiortc's, with libvpx set for rendered frames in real time.

aiortc opens libvpx with its temporal denoiser on (`noise-sensitivity` 4) and speed `cpu-used` -6. The avatar's
frames are rendered, not filmed: there is no sensor noise to remove, and the denoiser smears the moving mouth.
Measured on 250 generator-driven 512x512 frames, one thread (`benchmarks/RESULTS.md`, per-session cost cut):
aiortc's 2.7 ms per frame at 500 kbps (4.1 at 1.5 Mbps), Y PSNR 43.5 dB (45.0); these settings 1.95 ms (1.9),
44.7 dB (48.5), the same bitrate. Everything else (CBR, no lag, bitrate following the receiver's estimate,
keyframes on request, packetisation) stays aiortc's.
"""
from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass

import aiortc
import av
from aiortc import rtcrtpsender
from aiortc.codecs import vpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Vp8Settings:
    cpu_used: int = -12  # libvpx speed in real-time mode: -16 (fastest) .. -4; aiortc uses -6
    noise_sensitivity: int = 0  # libvpx's temporal denoiser: 0 = off (aiortc: 4)

    def __post_init__(self):
        assert -16 <= self.cpu_used <= 16, f"cpu_used must be in -16..16, got {self.cpu_used}"
        assert 0 <= self.noise_sensitivity <= 6, f"noise_sensitivity must be in 0..6, got {self.noise_sensitivity}"


class RealtimeVp8Encoder(vpx.Vp8Encoder):
    """aiortc's Vp8Encoder whose libvpx context is opened with `settings`. aiortc (re)opens its context inside
    `encode` when there is none, the frame size changed or the target bitrate moved by over 10 %; this opens it
    first under the same conditions, so aiortc finds it current and keeps it."""

    settings = Vp8Settings()
    opened_with: dict[str, str] = {}  # the libvpx options of the current context (pyav consumes its own copy)

    def encode(self, frame: av.VideoFrame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        codec = self.codec
        if codec is None or (frame.width, frame.height) != (codec.width, codec.height) \
                or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > 0.1:
            self.codec = self.open(frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    def open(self, width: int, height: int):
        """libvpx as aiortc 1.x configures it (CBR at the target bitrate, no lag, keyframes only on request), with
        this class's speed and denoiser."""
        bitrate = self.target_bitrate
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.bit_rate, codec.pix_fmt = width, height, bitrate, "yuv420p"
        codec.gop_size, codec.qmin, codec.qmax = 3000, 2, 56
        codec.options = self.opened_with = {
            "bufsize": str(bitrate), "deadline": "realtime", "lag-in-frames": "0",
            "minrate": str(bitrate), "maxrate": str(bitrate),  # CBR
            "overshoot-pct": "15", "partitions": "0", "static-thresh": "1", "undershoot-pct": "100",
            "cpu-used": str(self.settings.cpu_used), "noise-sensitivity": str(self.settings.noise_sensitivity),
        }
        codec.thread_count = vpx.number_of_threads(width * height, multiprocessing.cpu_count())
        return codec


_aiortc_get_encoder = getattr(rtcrtpsender, "get_encoder", None)


def _get_encoder(codec):
    if codec.mimeType.lower() == "video/vp8":
        return RealtimeVp8Encoder()
    return _aiortc_get_encoder(codec)


def use_realtime_vp8() -> bool:
    """Make every aiortc sender of this process that sends VP8 use `RealtimeVp8Encoder` (idempotent). aiortc's
    sender builds its encoder through `rtcrtpsender.get_encoder` at its first frame (checked on the pinned
    aiortc); if another aiortc has no such function, its own encoder stays and a warning says so."""
    if rtcrtpsender.__dict__.get("get_encoder") is _get_encoder:
        return True
    if _aiortc_get_encoder is None or rtcrtpsender.__dict__.get("get_encoder") is not _aiortc_get_encoder:
        log.warning("aiortc %s: could not install the real-time VP8 encoder; aiortc's own encodes (more CPU)",
                    aiortc.__version__)
        return False
    rtcrtpsender.get_encoder = _get_encoder
    return True
