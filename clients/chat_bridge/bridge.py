"""The chat bridge: IRC chat commands → policy → the avatar server's `instruct`, with short replies in chat."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .avatar_link import AvatarLink, AvatarOffline, AvatarRefused
from .commands import ChatCommand, CommandParser
from .config import BridgeConfig
from .irc import IrcMessage, ctcp_payload, fold_nick
from .irc_client import IrcClient
from .permissions import AVATAR_COMMANDS, Policy, roles_of
from .ratelimit import Clock
from .replies import ChatReplies

log = logging.getLogger(__name__)


class NoSession(RuntimeError):
    """No avatar session to control (none live, or the configured one has ended)."""


@dataclass
class BridgeStats:
    received: int = 0  # chat commands seen
    applied: int = 0  # instructions the avatar server accepted
    refused: Counter = field(default_factory=Counter)  # by reason: permission, cooldown, global, …, offline
    dropped: int = 0  # commands dropped because the queue was full


@dataclass(frozen=True)
class ChatRequest:
    nick: str
    name: str  # display name for replies
    roles: frozenset[str]
    command: ChatCommand


class ChatBridge:
    def __init__(self, config: BridgeConfig, clock: Clock = time.monotonic):
        self.config = config.validate()
        self.clock = clock
        self.stats = BridgeStats()

    def setup(self) -> ChatBridge:
        """Builds the parts (needs a running event loop for the queues and events)."""
        cfg = self.config
        self.parser = CommandParser(cfg.commands)
        self.policy = Policy(cfg.permissions, cfg.limits, self.clock)
        self.avatar = AvatarLink(cfg.avatar, cfg.avatar.token())
        self.irc = IrcClient(cfg.irc, cfg.irc.password(), self.on_irc_message)
        self.replies = ChatReplies(cfg.replies, self.clock)
        self.queue: asyncio.Queue[ChatRequest] = asyncio.Queue(cfg.limits.queue_size)
        return self

    async def run(self) -> None:
        """Runs until cancelled: IRC and the avatar server reconnect independently."""
        tasks = [asyncio.create_task(coro, name=name) for name, coro in (
            ("irc", self.irc.run()), ("avatar", self.avatar.run()), ("worker", self._work()),
            ("replies", self.replies.run(self._say, self.irc.joined)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.avatar.close()

    async def _say(self, text: str) -> None:
        await self.irc.privmsg(self.config.irc.channel, text)

    def on_irc_message(self, message: IrcMessage) -> None:
        """Called for every IRC line; queues chat commands addressed to the bridge."""
        if message.command != "PRIVMSG" or len(message.params) < 2 or not message.nick:
            return
        if fold_nick(message.params[0]) != fold_nick(self.config.irc.channel):
            return  # private messages and other channels are not commands
        if fold_nick(message.nick) == fold_nick(self.irc.nick) or ctcp_payload(message.trailing) is not None:
            return
        command = self.parser.parse(message.trailing)
        if command is None:
            return
        self.stats.received += 1
        display = message.tags.get("display-name", "")
        # Twitch mentions work by login; the display name is used only when it is the login re-capitalised.
        name = display if fold_nick(display) == fold_nick(message.nick) else message.nick
        request = ChatRequest(message.nick, name, roles_of(message, self.policy.allow), command)
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            self.stats.dropped += 1

    async def _work(self) -> None:
        while True:
            request = await self.queue.get()
            try:
                reply = await self.handle(request)
            except Exception:  # a bug in one command must not stop the bridge
                log.exception("command %r failed", request.command)
                reply = "something went wrong"
            if reply:
                self.replies.say(f"@{request.name} {reply}")

    async def handle(self, request: ChatRequest) -> str | None:
        """Applies one chat command; returns the reply text (without the @name)."""
        cmd, p = request.command, self.config.commands.prefix
        if refusal := self.policy.permission(request.roles, cmd.name):
            self.stats.refused[refusal.reason] += 1
            return None if cmd.name == "help" else refusal.message
        if cmd.name == "help":
            return self.parser.help_text()
        if cmd.name == "emote" and not cmd.argument:
            return f"usage: {p}{cmd.word} <what the avatar should do>"
        if cmd.name == "say" and not cmd.argument:
            return f"usage: {p}{cmd.word} <what the avatar should say>"
        intensity: float | None = None
        if cmd.name == "intensity":
            intensity = _parse_intensity(cmd.argument)
            if intensity is None:
                return f"usage: {p}{cmd.word} <number from 0 to 1>"
        text = cmd.argument if cmd.name in ("emote", "say") else ""
        refusal = self.policy.admit(request.nick, request.roles, cmd.name, text)
        if refusal is not None:
            self.stats.refused[refusal.reason] += 1
            return refusal.message
        try:
            reply = await self._apply(cmd, intensity)
        except (AvatarOffline, AvatarRefused, NoSession) as exc:
            if cmd.name in AVATAR_COMMANDS:
                self.policy.refund(request.nick, request.roles)
            reason = {AvatarOffline: "offline", AvatarRefused: "server", NoSession: "no_session"}[type(exc)]
            self.stats.refused[reason] += 1
            return "avatar offline" if isinstance(exc, AvatarOffline) else f"{exc}"[:120]
        if cmd.name in AVATAR_COMMANDS:
            self.stats.applied += 1
        return reply

    async def _apply(self, cmd: ChatCommand, intensity: float | None) -> str:
        commands = self.config.commands
        session = await self.target_session()
        if cmd.name == "mood":
            current = session.get("instruction") or "none"
            level = session.get("intensity")
            return f"mood: {current}" + (f" (intensity {level:.2f})" if isinstance(level, (int, float)) else "")
        if cmd.name == "say":
            await self.avatar.say(str(session["session"]), cmd.argument)
            return f"saying: {cmd.argument}"
        if cmd.name == "emote":
            text, intensity = cmd.argument, None
        elif cmd.name == "intensity":
            text = session.get("instruction") or commands.reset_text
        elif cmd.name == "reset":
            text, intensity = commands.reset_text, commands.reset_intensity
        else:
            text, intensity = cmd.preset.text, cmd.preset.intensity
        answer = await self._instruct(session, text, intensity)
        done = answer.get("text", text)
        if cmd.name == "intensity":
            return f"intensity {intensity:.2f}"
        return "reset" if cmd.name == "reset" else f"ok: {done}"

    async def _instruct(self, session: dict[str, Any], text: str, intensity: float | None) -> dict[str, Any]:
        try:
            return await self.avatar.instruct(str(session["session"]), text, intensity)
        except AvatarRefused:
            # The session may have ended between the two requests: follow the newest one and try once more.
            fresh = await self.target_session()
            if fresh["session"] == session["session"]:
                raise
            return await self.avatar.instruct(str(fresh["session"]), text, intensity)

    async def target_session(self) -> dict[str, Any]:
        sessions = await self.avatar.sessions()
        wanted = self.config.avatar.session
        if wanted:
            for entry in sessions:
                if str(entry["session"]) == wanted:
                    return entry
            raise NoSession(f"session {wanted} is not live")
        if not sessions:
            raise NoSession("no live avatar session")
        return newest_session(sessions)


def newest_session(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """The most recently created session: by a creation time when the server reports one, else the last listed."""
    for key in ("created", "started", "created_at"):
        if all(isinstance(s.get(key), (int, float)) for s in sessions):
            return max(enumerate(sessions), key=lambda pair: (pair[1][key], pair[0]))[1]
    return sessions[-1]


def _parse_intensity(text: str) -> float | None:
    try:
        value = float(text.strip().rstrip("%")) / (100.0 if text.strip().endswith("%") else 1.0)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None
