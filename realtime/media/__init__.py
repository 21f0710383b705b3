"""Audio and video file I/O shared by the offline renderer, the server and the clients."""
from realtime.media.audio import AudioError, load_audio, resample, to_mono
from realtime.media.video import VideoWriter, write_video

__all__ = ["AudioError", "load_audio", "resample", "to_mono", "VideoWriter", "write_video"]
