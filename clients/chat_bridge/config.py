"""Chat bridge configuration: dataclasses, loaded from a TOML file (stdlib tomllib) and overridden by CLI flags."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

from realtime.vocab import MAX_INSTRUCTION_CHARS  # the avatar server refuses longer instructions

ROLES = ("broadcaster", "moderator", "vip", "subscriber", "allowed", "viewer")
COMMANDS = ("emote", "say", "intensity", "reset", "preset", "mood", "help")


class ConfigError(ValueError):
    """A configuration file or flag that cannot be used, with the offending key in the message."""


@dataclass
class IrcConfig:
    host: str = ""  # Twitch: irc.chat.twitch.tv, port 6697 with tls = true
    port: int = 6667
    tls: bool = False
    tls_ca_file: str = ""  # extra CA bundle (a self-hosted server's certificate); empty = system CAs
    nick: str = ""
    password_env: str = ""  # name of the environment variable holding the server password (Twitch: "oauth:…")
    channel: str = ""
    request_twitch_caps: bool = True
    idle_ping_s: float = 120.0  # send our own PING after this long without traffic
    ping_timeout_s: float = 30.0  # …and reconnect if nothing arrives this long after it
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    def password(self) -> str | None:
        return _env_secret(self.password_env, "irc.password_env")


@dataclass
class AvatarConfig:
    server: str = "ws://127.0.0.1:8080/ws"
    token_env: str = ""  # name of the environment variable holding the server's --token
    session: str = ""  # a fixed session id; empty = follow the newest session
    request_timeout_s: float = 5.0
    connect_wait_s: float = 1.0  # how long a chat command waits for a reconnect before "avatar offline"
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0

    def token(self) -> str | None:
        return _env_secret(self.token_env, "avatar.token_env")


@dataclass
class Preset:
    text: str
    intensity: float | None = None


@dataclass
class CommandConfig:
    prefix: str = "!"
    aliases: dict[str, str] = field(default_factory=lambda: {"e": "emote", "calm": "reset", "commands": "help"})
    presets: dict[str, Preset] = field(default_factory=dict)
    reset_text: str = ""  # "" = no instruction: the model's own, unconditioned behaviour
    reset_intensity: float | None = None


@dataclass
class PermissionConfig:
    """Which roles may use which command. `allow` lists nicks that get the `allowed` role."""

    emote: list[str] = field(default_factory=lambda: ["broadcaster", "moderator", "vip", "subscriber", "allowed"])
    say: list[str] = field(default_factory=lambda: ["broadcaster", "moderator", "vip", "allowed"])  # speech
    intensity: list[str] = field(default_factory=lambda: ["broadcaster", "moderator", "vip", "allowed"])
    reset: list[str] = field(default_factory=lambda: ["broadcaster", "moderator", "allowed"])
    preset: list[str] = field(default_factory=lambda: ["broadcaster", "moderator", "vip", "subscriber", "allowed"])
    mood: list[str] = field(default_factory=lambda: ["viewer"])
    help: list[str] = field(default_factory=lambda: ["viewer"])
    allow: list[str] = field(default_factory=list)

    def roles_for(self, command: str) -> list[str]:
        return getattr(self, command)


@dataclass
class LimitConfig:
    user_cooldown_s: float = 15.0
    cooldown_exempt: list[str] = field(default_factory=lambda: ["broadcaster", "moderator"])
    global_limit: int = 6  # avatar-changing commands per window, all users together
    global_window_s: float = 30.0
    max_length: int = 120  # characters of instruction text
    deny_words: list[str] = field(default_factory=list)
    queue_size: int = 50  # chat commands waiting for the avatar; more are dropped


@dataclass
class ReplyConfig:
    """Outgoing chat messages. Twitch allows 20 per 30 s to a normal user (100 to moderators)."""

    enabled: bool = True
    limit: int = 20
    window_s: float = 30.0
    burst: int = 5
    max_pending: int = 10  # replies waiting for the rate limit; the oldest are dropped beyond this
    max_age_s: float = 60.0  # a reply that waited this long (chat disconnected) is no longer worth sending
    max_bytes: int = 400


@dataclass
class BridgeConfig:
    irc: IrcConfig = field(default_factory=IrcConfig)
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    permissions: PermissionConfig = field(default_factory=PermissionConfig)
    limits: LimitConfig = field(default_factory=LimitConfig)
    replies: ReplyConfig = field(default_factory=ReplyConfig)

    def validate(self) -> BridgeConfig:
        irc, cmd, lim, rep = self.irc, self.commands, self.limits, self.replies
        if not irc.nick or any(ch in irc.nick for ch in " ,*?!@#:\r\n\0"):
            raise ConfigError(f"irc.nick must be a plain IRC nick, got {irc.nick!r}")
        if not irc.channel.startswith(("#", "&")) or any(ch in irc.channel for ch in " ,\x07\r\n\0"):
            raise ConfigError(f"irc.channel must look like '#name', got {irc.channel!r}")
        if not 0 < irc.port < 65536:
            raise ConfigError(f"irc.port must be 1-65535, got {irc.port}")
        if not self.avatar.server.startswith(("ws://", "wss://")):
            raise ConfigError(f"avatar.server must be a ws:// or wss:// URL, got {self.avatar.server!r}")
        if not cmd.prefix or " " in cmd.prefix:
            raise ConfigError(f"commands.prefix must be non-empty without spaces, got {cmd.prefix!r}")
        for alias, target in cmd.aliases.items():
            if target not in COMMANDS or target == "preset":
                raise ConfigError(f"commands.aliases.{alias} points to unknown command {target!r}; one of "
                                  f"{', '.join(c for c in COMMANDS if c != 'preset')}")
        for name, preset in cmd.presets.items():
            if name in COMMANDS or name in cmd.aliases:
                raise ConfigError(f"preset {name!r} hides the command or alias of the same name")
            if not preset.text.strip() or len(preset.text) > MAX_INSTRUCTION_CHARS:
                raise ConfigError(f"presets.{name}.text must be 1-{MAX_INSTRUCTION_CHARS} characters")
            _check_intensity(preset.intensity, f"presets.{name}.intensity")
        _check_intensity(cmd.reset_intensity, "commands.reset_intensity")
        for command in COMMANDS:
            unknown = set(self.permissions.roles_for(command)) - set(ROLES)
            if unknown:
                raise ConfigError(f"permissions.{command} has unknown roles {sorted(unknown)}; "
                                  f"roles are {', '.join(ROLES)}")
        if unknown := set(lim.cooldown_exempt) - set(ROLES):
            raise ConfigError(f"limits.cooldown_exempt has unknown roles {sorted(unknown)}")
        if not 1 <= lim.max_length <= MAX_INSTRUCTION_CHARS:
            raise ConfigError(f"limits.max_length must be 1-{MAX_INSTRUCTION_CHARS}, got {lim.max_length}")
        if lim.global_limit < 1 or lim.global_window_s <= 0 or lim.user_cooldown_s < 0 or lim.queue_size < 1:
            raise ConfigError("limits: global_limit and queue_size must be >= 1, global_window_s > 0, "
                              "user_cooldown_s >= 0")
        if (not 1 <= rep.burst <= rep.limit or rep.window_s <= 0 or rep.max_pending < 1 or rep.max_age_s <= 0
                or not 40 <= rep.max_bytes <= 450):
            raise ConfigError("replies: need 1 <= burst <= limit, window_s > 0, max_pending >= 1, max_age_s > 0, "
                              "40 <= max_bytes <= 450")
        return self


def _check_intensity(value: float | None, key: str) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key} must be between 0 and 1, got {value}")


def _env_secret(var: str, key: str) -> str | None:
    if not var:
        return None
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"{key} names environment variable {var!r}, which is not set")
    return value


def load_config(path: str | Path, base: BridgeConfig | None = None) -> BridgeConfig:
    """Reads a TOML file over `base` (default: built-in defaults). Unknown keys and wrong types are errors."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return config_from_dict(data, base)


def config_from_dict(data: dict[str, Any], base: BridgeConfig | None = None) -> BridgeConfig:
    config = dataclasses.replace(base) if base else BridgeConfig()
    data = dict(data)
    presets = data.pop("presets", None)
    for section, values in data.items():
        if section not in {f.name for f in dataclasses.fields(BridgeConfig)}:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        current = getattr(config, section)
        setattr(config, section, _merge(current, values, section))
    if presets is not None:
        if not isinstance(presets, dict):
            raise ConfigError("[presets] must be a table of name = \"text\" or name = { text = …, intensity = … }")
        config.commands = dataclasses.replace(config.commands, presets={**config.commands.presets, **{
            _preset_name(name): _preset(name, value) for name, value in presets.items()}})
    return config


def _merge(current: Any, values: dict[str, Any], section: str) -> Any:
    hints = get_type_hints(type(current))
    updates: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key {section}.{key}; known keys: {', '.join(hints)}")
        updates[key] = _coerce(value, hints[key], f"{section}.{key}")
    return dataclasses.replace(current, **updates)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    text = str(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint == (float | None):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif text.startswith("list[str]"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif text.startswith("dict[str, str]"):
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    else:
        raise ConfigError(f"{key} cannot be set here (presets go in their own [presets] table)")
    if not ok:
        name = getattr(hint, "__name__", None) if isinstance(hint, type) else None
        raise ConfigError(f"{key} must be {name or text}, got {type(value).__name__} {value!r}")
    return value


def _preset_name(name: str) -> str:
    if not name or any(ch.isspace() for ch in name):
        raise ConfigError(f"preset name must be one word, got {name!r}")
    return name.lower()


def _preset(name: str, value: Any) -> Preset:
    if isinstance(value, str):
        return Preset(value)
    if isinstance(value, dict) and set(value) <= {"text", "intensity"} and isinstance(value.get("text"), str):
        intensity = value.get("intensity")
        if intensity is not None and (isinstance(intensity, bool) or not isinstance(intensity, (int, float))):
            raise ConfigError(f"presets.{name}.intensity must be a number")
        return Preset(value["text"], None if intensity is None else float(intensity))
    raise ConfigError(f"presets.{name} must be a string or {{ text = \"…\", intensity = 0.5 }}, got {value!r}")
