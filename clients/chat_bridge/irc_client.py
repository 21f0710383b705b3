"""An asyncio IRC client that stays in one channel: registration with IRCv3 capability negotiation (Twitch
tags), PING/PONG and idle keepalive, and reconnects with exponential backoff. It never dies on a bad line."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from .config import IrcConfig
from .irc import IrcFormatError, IrcMessage, IrcParseError, LineFramer, fold_nick, parse_line
from .ratelimit import Backoff

log = logging.getLogger(__name__)
TWITCH_CAPS = ("twitch.tv/tags", "twitch.tv/commands")
REGISTRATION_TIMEOUT_S = 30.0


class IrcNotConnected(RuntimeError):
    """A send while there is no registered connection."""


class _Reconnect(Exception):
    """Leave the current connection and start over (server ERROR, Twitch RECONNECT, ping timeout)."""


class IrcClient:
    def __init__(self, config: IrcConfig, password: str | None, on_message: Callable[[IrcMessage], None]):
        self.config, self.password, self.on_message = config, password, on_message
        self.nick = config.nick
        self.tags_enabled = False  # the server ACKed twitch.tv/tags (or message-tags)
        self.joined = asyncio.Event()
        self.connects = 0
        self.bad_lines = 0
        self._writer: asyncio.StreamWriter | None = None
        self._cap_pending = False
        self._nick_tries = 0

    async def run(self) -> None:
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        while True:
            try:
                await self._connection(backoff)
            except asyncio.CancelledError:
                self._quit("chat bridge stopped")
                raise
            except (OSError, asyncio.TimeoutError, _Reconnect, IrcNotConnected) as exc:  # SSLError is an OSError
                log.info("IRC %s:%s: %s", self.config.host, self.config.port, exc or type(exc).__name__)
            except Exception:  # whatever it was, the bridge must keep trying
                log.exception("IRC connection to %s:%s failed", self.config.host, self.config.port)
            finally:
                self.joined.clear()
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            await asyncio.sleep(backoff.next_delay())

    async def _connection(self, backoff: Backoff) -> None:
        cfg = self.config
        context = None
        if cfg.tls:
            context = ssl.create_default_context(cafile=cfg.tls_ca_file or None)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(cfg.host, cfg.port, ssl=context), REGISTRATION_TIMEOUT_S)
        self._writer, self.nick, self.tags_enabled = writer, cfg.nick, False
        self._cap_pending, self._nick_tries = cfg.request_twitch_caps, 0
        if cfg.request_twitch_caps:
            self._send("CAP", "REQ", " ".join(TWITCH_CAPS))
        if self.password:
            self._send("PASS", self.password)
        self._send("NICK", self.nick)
        self._send("USER", self.nick, "0", "*", self.nick)
        await writer.drain()
        framer = LineFramer()
        registered_by = asyncio.get_running_loop().time() + REGISTRATION_TIMEOUT_S
        pinged = False
        while True:
            idle = cfg.ping_timeout_s if pinged else cfg.idle_ping_s
            if not self.joined.is_set():
                idle = min(idle, max(0.1, registered_by - asyncio.get_running_loop().time()))
            try:
                data = await asyncio.wait_for(reader.read(4096), idle)
            except asyncio.TimeoutError:
                if not self.joined.is_set() and asyncio.get_running_loop().time() >= registered_by:
                    raise _Reconnect("registration timed out") from None
                if pinged:
                    raise _Reconnect("no answer to PING") from None
                self._send("PING", "keepalive")
                pinged = True
                continue
            if not data:
                raise _Reconnect("server closed the connection")
            pinged = False
            for raw in framer.feed(data):
                try:
                    message = parse_line(raw)
                except IrcParseError as exc:
                    self.bad_lines += 1
                    log.debug("ignored a bad IRC line: %s", exc)
                    continue
                try:
                    self._handle(message, backoff)
                except IrcFormatError as exc:  # e.g. a PONG to an over-long PING
                    log.debug("could not answer %s: %s", message.command, exc)
            await writer.drain()

    def _handle(self, message: IrcMessage, backoff: Backoff) -> None:
        cmd, params = message.command, message.params
        if cmd == "PING":
            self._send("PONG", *(params or ("pong",)))
        elif cmd == "CAP" and len(params) >= 3 and params[1] in ("ACK", "NAK"):
            if params[1] == "ACK":
                granted = set(params[-1].split())
                self.tags_enabled = bool(granted & {"twitch.tv/tags", "message-tags"})
            else:
                log.info("IRC server refused capabilities %s: chat badges unavailable, only --allow nicks",
                         params[-1])
            self._end_cap()
        elif cmd == "001":
            self.nick = params[0] if params else self.nick
            self._end_cap()
            self._send("JOIN", self.config.channel)
        elif cmd == "433" and not self.joined.is_set():  # nick in use during registration
            self._nick_tries += 1
            self.nick = f"{self.config.nick[:24]}_{self._nick_tries}"
            self._send("NICK", self.nick)
        elif cmd == "JOIN" and message.nick and fold_nick(message.nick) == fold_nick(self.nick):
            if params and fold_nick(params[0]) == fold_nick(self.config.channel):
                self.connects += 1
                backoff.reset()
                self.joined.set()
                log.info("joined %s on %s:%s (tags %s)", self.config.channel, self.config.host,
                         self.config.port, "on" if self.tags_enabled else "off")
        elif cmd == "KICK" and len(params) >= 2 and fold_nick(params[1]) == fold_nick(self.nick):
            self.joined.clear()
            self._send("JOIN", self.config.channel)
        elif cmd in ("ERROR", "RECONNECT"):
            raise _Reconnect(f"{cmd} {message.trailing}".strip())
        elif cmd in ("464", "465"):  # bad password / banned
            raise _Reconnect(f"refused by server: {message.trailing}")
        try:
            self.on_message(message)
        except Exception:  # a handler bug must not take the connection down
            log.exception("chat message handler failed on %r", message)

    def _quit(self, reason: str) -> None:
        with contextlib.suppress(IrcNotConnected, OSError):
            self._send("QUIT", reason)

    def _end_cap(self) -> None:
        if self._cap_pending:
            self._cap_pending = False
            self._send("CAP", "END")

    def _send(self, command: str, *params: str) -> None:
        if self._writer is None or self._writer.is_closing():
            raise IrcNotConnected("not connected to IRC")
        line = IrcMessage(command, params).to_line()
        self._writer.write(line.encode() + b"\r\n")

    async def privmsg(self, target: str, text: str) -> None:
        if not self.joined.is_set():
            raise IrcNotConnected("not in the channel")
        self._send("PRIVMSG", target, text)
        await self._writer.drain()
