"""A video jitter buffer that hands a frame to the decoder as soon as its last packet is in.

aiortc's receiver only knows a video frame is complete when the first packet of the next frame arrives, which
holds every frame back one frame interval (40 ms at 25 fps). The sender marks each frame's last packet (the
RTP marker bit); with every packet from the frame's first to that one present, the frame is complete.
"""
from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame


class MarkerFrameBuffer(JitterBuffer):
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


def release_frames_on_marker(pc, track) -> bool:
    """Give the receiver of `track` a MarkerFrameBuffer; call from the "track" event, before packets flow."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track and hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
            receiver._RTCRtpReceiver__jitter_buffer = MarkerFrameBuffer()
            return True
    return False
