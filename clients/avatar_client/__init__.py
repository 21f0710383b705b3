"""Python client for the avatar server: a sound file or a live device as the microphone, frames to a callback
or an mp4, instructions and measurements. CLI: `python -m clients.avatar_client --help`."""
from clients.avatar_client.client import AvatarClient, AvatarClosed, AvatarError, Received
from clients.avatar_client.media import DeviceMicrophone, FileMicrophone, Mp4Sink, PacedAudioTrack, PushMicrophone

__all__ = ["AvatarClient", "AvatarClosed", "AvatarError", "DeviceMicrophone", "FileMicrophone", "Mp4Sink",
           "PacedAudioTrack", "PushMicrophone", "Received"]
