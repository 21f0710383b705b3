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
