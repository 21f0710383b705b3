"""Receiver jitter buffers that hand media over sooner than aiortc's, and the one place that installs them.

aiortc's buffer only knows a frame is complete when the first packet of the *next* frame arrives, which holds
every frame back one packet interval (20 ms of audio, 40 ms of video at 25 fps) plus its prefetch. It has no
option for that, but the "track" event fires before any packet arrives, so the receiver's buffer can still be
replaced (`replace_jitter_buffer`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

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


# How long an incomplete video frame waits for a retransmission (NACK) before it is given up for a keyframe,
# how often its missing packets are asked for again meanwhile (aiortc NACKs a gap only when it first shows, so a
# lost NACK or a lost retransmission would wait for the next gap), and how often a keyframe is asked for while
# none has come (the request itself may be lost). A keyframe is tens of packets: at a few % loss it is itself
# rarely whole at first, so giving a frame up costs several frames; asking again is much cheaper.
MAX_WAIT_S = 0.1
RENACK_S = 0.02
KEYFRAME_REQUEST_S = 0.1


def is_keyframe(data: bytes) -> bool:
    """A whole VP8 key frame (frame tag bit 0 clear, then the start code 9d 01 2a), or H.264 with an IDR
    slice or a sequence parameter set (Annex B start codes, as aiortc depayloads it)."""
    if len(data) >= 6 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a":
        return True
    if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        return any(part and part[0] & 0x1F in (5, 7) for part in data.split(b"\x00\x00\x01")[1:])
    return False


class MarkerFrameBuffer(JitterBuffer):
    """A video frame goes to the decoder as soon as its last packet is in: the sender marks each frame's last
    packet (the RTP marker bit); with every packet from the frame's first to that one present, it is complete.

    Loss: a frame with a packet missing waits up to `max_wait_s` for its retransmission (aiortc NACKs the gap;
    `request_retransmission`, set by `replace_jitter_buffer`, asks again every `RENACK_S`); then it is
    dropped, a keyframe is requested (PLI, repeated while none comes) and frames are skipped up to that
    keyframe, since they could only decode to a broken picture. Recovery takes at most about max_wait_s + one
    frame instead of waiting for the next loss to re-send the NACK, or for the buffer to overflow."""

    def __init__(self, capacity: int = 512, max_wait_s: float = MAX_WAIT_S, clock=time.monotonic) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.max_wait_s, self._clock = max_wait_s, clock
        self._stuck_since: float | None = None
        self._need_keyframe = False
        self._asked_at = float("-inf")
        self.frames_given_up = 0
        self.request_retransmission: Callable[[int, list[int]], None] | None = None  # (ssrc, sequence numbers)
        self._renacked_at = float("-inf")

    def add(self, packet) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)  # ordering, loss and overflow handling stay aiortc's
        if frame is None and self._origin is not None:
            frame = self._complete_frame()
        now = self._clock()
        if frame is None and self._blocked_by_head(packet):
            self._stuck_since = self._stuck_since if self._stuck_since is not None else now
            if self._skippable_head() or now - self._stuck_since > self.max_wait_s:
                self._drop_head(packet)
                self._need_keyframe, self._stuck_since = True, None
                frame = self._complete_frame()
            elif self.request_retransmission is not None and now - self._renacked_at >= RENACK_S:
                missing = self._missing_before(packet)
                if missing:
                    self.request_retransmission(packet.ssrc, missing)
                    self._renacked_at = now
        elif frame is not None:
            self._stuck_since = None
        while frame is not None and self._need_keyframe:
            if is_keyframe(frame.data):
                self._need_keyframe = False
            else:  # it refers to a picture the decoder never got: skip it, and see what waits behind it
                frame = self._complete_frame()
        if self._need_keyframe and now - self._asked_at >= KEYFRAME_REQUEST_S:
            pli, self._asked_at = True, now
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

    def _missing_before(self, newest) -> list[int]:
        """Sequence numbers not yet in between the head of the buffer and the newest packet."""
        missing: list[int] = []
        if self._origin is None:
            return missing
        for count in range(self.capacity):
            seq = uint16_add(self._origin, count)
            if seq == newest.sequence_number:
                break
            if self._packets[seq % self.capacity] is None:
                missing.append(seq)
        return missing

    def _skippable_head(self) -> bool:
        """Waiting for a keyframe, the head is a frame that is not one: no use waiting for its retransmission.
        (A keyframe's packets are many, so it is often incomplete for a moment: that one is waited for.)"""
        head = self._packets[self._origin % self.capacity]
        return self._need_keyframe and head is not None and not is_keyframe(head._data)

    def _blocked_by_head(self, newest) -> bool:
        """A newer frame's packet is in while the head frame cannot complete yet (a packet is missing)."""
        head = self._packets[self._origin % self.capacity]
        return head is None or head.timestamp != newest.timestamp

    def _drop_head(self, newest) -> None:
        """Removes the head frame (and any gap before it), never past the newest packet."""
        head_ts = None
        for _ in range(self.capacity):
            if self._origin == newest.sequence_number and head_ts is not None:
                break
            packet = self._packets[self._origin % self.capacity]
            if packet is not None:
                if head_ts is None:
                    head_ts = packet.timestamp
                elif packet.timestamp != head_ts:
                    break
                if packet is newest:
                    break
            self.remove(1)
        self.frames_given_up += 1


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
            if isinstance(buffer, MarkerFrameBuffer):
                def nack(ssrc: int, seqs: list[int], receiver=receiver, sending: set = set()) -> None:  # noqa: B006
                    # `sending` holds each request until it is sent: the loop keeps only weak references
                    task = asyncio.ensure_future(receiver._send_rtcp_nack(ssrc, seqs))
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                buffer.request_retransmission = nack
            return True
        break
    log.warning("aiortc %s: could not replace the %s receiver's jitter buffer; it keeps aiortc's own, which "
                "holds every frame back one packet interval", aiortc.__version__, getattr(track, "kind", "?"))
    return False


def install_fast_buffer(pc, track) -> JitterBuffer:
    """The buffer for `track`'s kind (video: `MarkerFrameBuffer`, audio: `AudioPacketBuffer`), put in place of
    aiortc's (see `replace_jitter_buffer`); call from the "track" event. aiortc's own audio buffer waits for four
    packets, which would hold a voice ~90 ms behind its face."""
    buffer: JitterBuffer = MarkerFrameBuffer() if track.kind == "video" else AudioPacketBuffer()
    replace_jitter_buffer(pc, track, buffer)
    return buffer
