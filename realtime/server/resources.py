"""What every session shares, loaded once per server: the assembled parts (`realtime.assembly`), warmed up so
that the first caller does not pay for torch's first calls."""
from __future__ import annotations

from realtime.assembly import AssemblyError, AvatarParts
from realtime.config import AvatarConfig
from realtime.server.config import ServerConfig

ResourceError = AssemblyError  # the server cannot start: no generator checkpoint, no face in the portrait, …


class AvatarResources(AvatarParts):
    @classmethod
    def load(cls, config: AvatarConfig | ServerConfig) -> AvatarResources:
        resources = super().load(AvatarConfig.of(config))
        resources.warm_up()
        return resources
