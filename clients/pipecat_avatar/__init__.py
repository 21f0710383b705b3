"""This project's avatar as a Pipecat service (`pip install -e '.[pipecat]'`): see service.py."""
from clients.pipecat_avatar.service import AvatarVideoService

__all__ = ["AvatarVideoService"]
