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


def _frames(count: int) -> list:
    from fractions import Fraction

    rgb = astronaut()
    frames = []
    for i in range(count):  # the face slides: every frame has motion to encode
        frame = yuv420_frame(rgb_to_yuv420(np.roll(rgb, 2 * i, axis=1)), pts=i * 3600)
        frame.time_base = Fraction(1, 90000)
        frames.append(frame)
    return frames


def test_the_realtime_vp8_encoder_opens_libvpx_with_its_settings_and_keeps_aiortcs_bitrate_control():
    from realtime.media.vp8 import RealtimeVp8Encoder, Vp8Settings

    encoder = RealtimeVp8Encoder()
    frames = _frames(6)
    payloads, _ = encoder.encode(frames[0])
    opened = encoder.codec
    options = encoder.opened_with
    assert payloads and options["noise-sensitivity"] == "0" and options["cpu-used"] == "-12"
    assert options["deadline"] == "realtime" and opened.bit_rate == encoder.target_bitrate
    encoder.encode(frames[1])
    assert encoder.codec is opened  # not reopened frame by frame (aiortc's own check agrees with ours)
    encoder.target_bitrate = 1_200_000  # what the receiver's bandwidth estimate does
    encoder.encode(frames[2])
    assert encoder.codec is not opened and encoder.codec.bit_rate == 1_200_000
    assert encoder.opened_with["noise-sensitivity"] == "0" and encoder.opened_with is not options
    with np.testing.assert_raises(AssertionError):
        Vp8Settings(cpu_used=-20)


def _sent_psnr(encoder, frames) -> float:
    """Mean Y PSNR of what a receiver decodes from the encoder's RTP payloads (after its first two frames)."""
    from aiortc.codecs.vpx import vp8_depayload

    decoder, shown = av.CodecContext.create("libvpx", "r"), []
    for frame in frames:
        payloads, _ = encoder.encode(frame)
        data = b"".join(vp8_depayload(p) for p in payloads)
        shown += [d.to_ndarray(format="yuv420p") for d in decoder.decode(av.Packet(data))]
    assert len(shown) == len(frames)
    return float(np.mean([_psnr(s[:512], f.to_ndarray()[:512]) for s, f in zip(shown[2:], frames[2:])]))


def test_the_realtime_vp8_pictures_are_at_least_as_faithful_as_aiortcs():
    from aiortc.codecs.vpx import Vp8Encoder

    from realtime.media.vp8 import RealtimeVp8Encoder

    frames = _frames(40)  # past the rate control's start-up
    aiortcs, ours = _sent_psnr(Vp8Encoder(), frames), _sent_psnr(RealtimeVp8Encoder(), frames)
    assert ours > 35 and ours >= aiortcs - 0.5, (ours, aiortcs)


def test_an_aiortc_sender_sends_vp8_through_the_realtime_encoder():
    import asyncio

    from aiortc import RTCPeerConnection, VideoStreamTrack

    from realtime.media.vp8 import RealtimeVp8Encoder, use_realtime_vp8

    class Portrait(VideoStreamTrack):
        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(astronaut(), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    async def call() -> tuple[object, np.ndarray]:
        assert use_realtime_vp8() and use_realtime_vp8()  # idempotent
        sender, receiver = RTCPeerConnection(), RTCPeerConnection()
        got: asyncio.Future = asyncio.get_running_loop().create_future()
        receiver.on("track", lambda track: got.set_result(track))
        try:
            rtp_sender = sender.addTrack(Portrait())
            await sender.setLocalDescription(await sender.createOffer())
            await receiver.setRemoteDescription(sender.localDescription)
            await receiver.setLocalDescription(await receiver.createAnswer())
            await sender.setRemoteDescription(receiver.localDescription)
            track = await asyncio.wait_for(got, 30)
            for _ in range(5):
                frame = await asyncio.wait_for(track.recv(), 30)
            return rtp_sender._RTCRtpSender__encoder, frame.to_ndarray(format="rgb24")
        finally:
            await sender.close()
            await receiver.close()

    encoder, picture = asyncio.run(call())
    assert isinstance(encoder, RealtimeVp8Encoder)
    assert _psnr(picture, astronaut()) > 25  # a real picture came through
