"""The receiver jitter buffer replacement, on real aiortc peers over loopback: it takes effect on the pinned
aiortc, and if a receiver does not hold its buffer where expected the call still works on aiortc's own buffer."""
from __future__ import annotations

import asyncio
import logging

from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from realtime.media import jitter
from realtime.media.jitter import AudioPacketBuffer, replace_jitter_buffer


class CountingBuffer(AudioPacketBuffer):
    def __init__(self) -> None:
        super().__init__()
        self.packets = 0

    def add(self, packet):
        self.packets += 1
        return super().add(packet)


async def _call(buffer: CountingBuffer, frames: int = 10) -> tuple[bool, int]:
    """Sender: aiortc's silence track; receiver: replaces its buffer on "track", then reads `frames` frames."""
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    replaced: asyncio.Future = asyncio.get_running_loop().create_future()

    @receiver.on("track")
    def on_track(track) -> None:
        replaced.set_result((replace_jitter_buffer(receiver, track, buffer), track))

    try:
        sender.addTrack(AudioStreamTrack())
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        ok, track = await asyncio.wait_for(replaced, 30)
        received = 0
        for _ in range(frames):
            await asyncio.wait_for(track.recv(), 30)
            received += 1
        return ok, received
    finally:
        await sender.close()
        await receiver.close()


def test_replacement_takes_effect_on_the_pinned_aiortc():
    buffer = CountingBuffer()
    ok, received = asyncio.run(_call(buffer))
    assert ok and received == 10
    assert buffer.packets >= 10  # every frame the track delivered went through our buffer


def test_a_receiver_laid_out_differently_keeps_its_own_buffer_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(jitter, "_BUFFER_ATTRIBUTE", "_RTCRtpReceiver__some_future_name")
    buffer = CountingBuffer()
    with caplog.at_level(logging.WARNING, logger="realtime.media.jitter"):
        ok, received = asyncio.run(_call(buffer))
    assert not ok and received == 10  # the call works on aiortc's buffer
    assert buffer.packets == 0
    assert "could not replace the audio receiver's jitter buffer" in caplog.text


# --- loss ----------------------------------------------------------------------------------------------------
VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + b"key"  # frame tag (bit 0 clear) + start code
VP8_INTER = bytes([0x31, 0x02, 0x00]) + b"inter"


def _video_packet(seq: int, frame: int, data: bytes, last: bool):
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=frame * 3600, marker=last)
    packet._data = data
    return packet


def test_a_frame_whose_retransmission_never_comes_is_given_up_for_a_keyframe():
    from realtime.media.jitter import MarkerFrameBuffer, is_keyframe

    now = [0.0]
    buffer = MarkerFrameBuffer(max_wait_s=0.06, clock=lambda: now[0])
    assert is_keyframe(VP8_KEY) and not is_keyframe(VP8_INTER)
    assert buffer.add(_video_packet(0, 0, VP8_KEY, True))[1].data == VP8_KEY
    # frame 1 loses its second packet (seq 2) for good; frames 2 and 3 arrive whole behind it
    assert buffer.add(_video_packet(1, 1, VP8_INTER, False)) == (False, None)
    now[0] = 0.04
    assert buffer.add(_video_packet(3, 2, VP8_INTER, True)) == (False, None)  # waits for a retransmission
    now[0] = 0.11
    pli, frame = buffer.add(_video_packet(4, 3, VP8_INTER, True))  # waited too long: give up, ask for a keyframe
    assert pli and frame is None and buffer.frames_given_up == 1  # frames 2, 3 refer to the lost one: skipped
    now[0] = 0.15
    assert buffer.add(_video_packet(5, 4, VP8_INTER, True)) == (False, None)  # still no keyframe (asked 40 ms ago)
    now[0] = 0.27
    assert buffer.add(_video_packet(6, 5, VP8_INTER, True))[0]  # asked again: a request may be lost too
    pli, frame = buffer.add(_video_packet(7, 6, VP8_KEY, True))
    assert frame.data == VP8_KEY  # the keyframe: decoding goes on from here
    assert buffer.add(_video_packet(8, 7, VP8_INTER, True))[1].data == VP8_INTER


def test_a_retransmission_in_time_loses_nothing():
    from realtime.media.jitter import MarkerFrameBuffer

    now = [0.0]
    buffer = MarkerFrameBuffer(max_wait_s=0.06, clock=lambda: now[0])
    buffer.add(_video_packet(0, 0, VP8_KEY, True))
    buffer.add(_video_packet(1, 1, b"a", False))
    assert buffer.add(_video_packet(3, 2, b"c", True)) == (False, None)
    now[0] = 0.03
    assert buffer.add(_video_packet(2, 1, b"b", True))[1].data == b"ab"  # the NACKed packet came back
    assert buffer.add(_video_packet(4, 3, b"d", True))[1].data == b"c"  # frames behind it follow, in order
    assert buffer.frames_given_up == 0


def test_a_missing_packet_is_asked_for_again_while_its_frame_waits():
    """aiortc NACKs a gap once, when it shows; a lost NACK or retransmission is asked for again."""
    from realtime.media.jitter import RENACK_S, MarkerFrameBuffer

    now, asked = [0.0], []
    buffer = MarkerFrameBuffer(max_wait_s=0.1, clock=lambda: now[0])
    buffer.request_retransmission = lambda ssrc, seqs: asked.append((now[0], seqs))
    buffer.add(_video_packet(0, 0, VP8_KEY, True))
    buffer.add(_video_packet(1, 1, b"a", False))
    buffer.add(_video_packet(4, 2, b"d", True))  # seqs 2 and 3 lost
    now[0] = RENACK_S / 2
    buffer.add(_video_packet(5, 3, b"e", True))
    now[0] = RENACK_S * 1.5
    buffer.add(_video_packet(6, 4, b"f", True))
    assert [seqs for _, seqs in asked] == [[2, 3], [2, 3]] and asked[1][0] - asked[0][0] >= RENACK_S
    now[0] = RENACK_S * 2
    assert buffer.add(_video_packet(2, 1, b"b", False)) == (False, None)
    assert buffer.add(_video_packet(3, 1, b"c", True))[1].data == b"abc"
    assert buffer.frames_given_up == 0


def test_lost_audio_packets_are_concealed_with_the_voice_going_on():
    import numpy as np

    from realtime.media.conceal import LossConcealer
    from realtime.media.stream import audio_frame

    rate, n = 48_000, 960
    voice = (0.5 * np.sin(2 * np.pi * 180 * np.arange(rate) / rate)).astype(np.float32)
    concealer, out = LossConcealer(), []
    for i in range(40):
        if i in (10, 20, 21, 30, 31, 32, 33, 34, 35, 36):  # one, two, then seven packets (140 ms: a pause) lost
            continue
        for frame in concealer(audio_frame(voice[i * n:(i + 1) * n], rate, i * n)):
            out.append((frame.pts // n, frame.to_ndarray().reshape(-1) / 32767))
            frame.pts = None  # what resamplers do to the frames they are given
    index = [i for i, _ in out]
    assert index == [i for i in range(40) if not 30 <= i <= 36]  # short gaps filled in place, the pause not
    filled = dict(out)
    assert np.sqrt(np.mean(filled[10] ** 2)) > 0.25  # near the voice's 0.35 RMS, not silence
    assert np.abs(filled[10][:100] - voice[10 * n:10 * n + 100]).max() < 0.05  # it continues the waveform
    assert np.sqrt(np.mean(filled[21] ** 2)) < np.sqrt(np.mean(filled[20] ** 2))  # and fades as losses go on
    assert concealer.concealed_s == 3 * n / rate
