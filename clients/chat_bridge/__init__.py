"""Chat control for live streams: IRC/Twitch chat commands drive the avatar server's instruction."""
from .bridge import BridgeStats, ChatBridge, ChatRequest, NoSession
from .cli import main
from .config import BridgeConfig, ConfigError, load_config

__all__ = ["BridgeConfig", "BridgeStats", "ChatBridge", "ChatRequest", "ConfigError", "NoSession", "load_config",
           "main"]
