"""Receiver jitter buffers that hand media over sooner than aiortc's, and the one place that installs them.

aiortc's buffer only knows a frame is complete when the first packet of the *next* frame arrives, which holds
every frame back one packet interval (20 ms of audio, 40 ms of video at 25 fps) plus its prefetch. It has no
option for that, but the "track" event fires before any packet arrives, so the receiver's buffer can still be
replaced (`replace_jitter_buffer`).
"""
from __future__ import annotations

import logging

import aiortc
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.utils import uint16_add, uint16_gt

log = logging.getLogger(__name__)
# Where aiortc's RTCRtpReceiver keeps its jitter buffer (a name-mangled private attribute).
_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class AudioPacketBuffer(JitterBuffer):
    """Every audio RTP packet is a whole frame: each is handed over on arrival. A packet older than one already
    handed over is dropped (its time has been filled with silence), a gap (lost packets) is skipped. Latency
    first: what is late is late."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._next: int | None = None

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is not None and seq != self._next and not uint16_gt(seq, self._next):
            return False, None  # a late or duplicate packet
        self._next = uint16_add(seq, 1)
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


class MarkerFrameBuffer(JitterBuffer):
    """A video frame goes to the decoder as soon as its last packet is in: the sender marks each frame's last
    packet (the RTP marker bit); with every packet from the frame's first to that one present, it is complete."""

    def __init__(self, capacity: int = 512) -> None:
        super().__init__(capacity=capacity, is_video=True)

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)  # ordering, loss and overflow handling stay aiortc's
        if frame is None and self._origin is not None:
            frame = self._complete_frame()
        return pli, frame

    def _complete_frame(self) -> JitterFrame | None:
        """The frame at the head of the buffer if its packets run unbroken up to a marked one."""
        packets = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packets[0].timestamp)
        return None


def replace_jitter_buffer(pc, track, buffer: JitterBuffer) -> bool:
    """Give the receiver of `track` on `pc` this buffer; call from the "track" event, before packets flow.

    The receiver keeps its buffer in a private attribute (aiortc is pinned to the version this was checked on).
    Returns whether the buffer is in place; if another aiortc lays its receiver out differently, the receiver
    keeps aiortc's own buffer (correct, one packet interval slower) and a warning says so."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is not track:
            continue
        if not isinstance(getattr(receiver, _BUFFER_ATTRIBUTE, None), JitterBuffer):
            break
        setattr(receiver, _BUFFER_ATTRIBUTE, buffer)
        if getattr(receiver, _BUFFER_ATTRIBUTE) is buffer:
            return True
        break
    log.warning("aiortc %s: could not replace the %s receiver's jitter buffer; it keeps aiortc's own, which "
                "holds every frame back one packet interval", aiortc.__version__, getattr(track, "kind", "?"))
    return False
