"""The time base every stage shares: motion frames at 25 fps, model audio at 16 kHz, WebRTC clocks."""
from __future__ import annotations

FPS = 25  # motion and video frames per second
MODEL_RATE = 16_000  # Hz: the generator's audio, corpora, features
SAMPLES_PER_FRAME = MODEL_RATE // FPS  # 640 model samples per motion frame
WEBRTC_AUDIO_RATE = 48_000  # Hz: Opus over WebRTC, the playout's voice and the clients' audio
VIDEO_CLOCK = 90_000  # Hz: the RTP clock of video timestamps
AUDIO_PTIME_S = 0.02  # one WebRTC audio packet

assert MODEL_RATE % FPS == 0 and VIDEO_CLOCK % FPS == 0, "frames must hold a whole number of samples/ticks"
