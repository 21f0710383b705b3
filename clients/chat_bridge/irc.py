"""IRC message framing: RFC 1459/2812 lines with IRCv3 message tags.

Pure functions and small value types, no I/O, so that parsing can be fuzzed and tested on recorded lines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 2812 allows 512 bytes per line including CRLF; IRCv3 tags may add up to 8191 more.
MAX_LINE_BYTES = 512
MAX_TAGGED_LINE_BYTES = 8191 + MAX_LINE_BYTES

_TAG_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPE = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
# mIRC formatting: bold, colour (with optional fg,bg digits), hex colour, reset, monospace, reverse, italic,
# strike, underline. Chat users paste these; they must not reach the avatar's instruction text.
_FORMATTING = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?"  # colour
                         r"|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"  # hex colour
                         r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class IrcParseError(ValueError):
    """A received line that is not an IRC message."""


class IrcFormatError(ValueError):
    """An outgoing message that cannot be written as one IRC line."""


def unescape_tag_value(value: str) -> str:
    """IRCv3 tag value unescaping: \\: \\s \\\\ \\r \\n; an unknown escape drops the backslash, a trailing
    backslash is dropped."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, None)
        if nxt is not None:
            out.append(_TAG_UNESCAPE.get(nxt, nxt))
    return "".join(out)


def escape_tag_value(value: str) -> str:
    return "".join(_TAG_ESCAPE.get(ch, ch) for ch in value)


@dataclass(frozen=True)
class Source:
    """The message prefix, `nick!user@host` or a server name."""

    nick: str
    user: str | None = None
    host: str | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        nick, _, rest = text.partition("!")
        if rest:
            user, _, host = rest.partition("@")
            return cls(nick, user, host or None)
        nick, _, host = text.partition("@")
        return cls(nick, None, host or None)

    def __str__(self) -> str:
        text = self.nick
        if self.user:
            text += "!" + self.user
        if self.host:
            text += "@" + self.host
        return text


@dataclass(frozen=True)
class IrcMessage:
    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    source: Source | None = None
    has_tags: bool = False  # the line carried an IRCv3 tag section (possibly empty)

    @property
    def nick(self) -> str | None:
        return self.source.nick if self.source else None

    @property
    def trailing(self) -> str:
        return self.params[-1] if self.params else ""

    def to_line(self) -> str:
        """The wire form without CRLF; raises IrcFormatError when a part cannot be framed."""
        parts: list[str] = []
        if self.tags:
            tag_text = ";".join(_format_tag(k, v) for k, v in self.tags.items())
            parts.append("@" + tag_text)
        if self.source:
            parts.append(":" + str(self.source))
        if not re.fullmatch(r"[A-Za-z]+|\d{3}", self.command):
            raise IrcFormatError(f"not an IRC command: {self.command!r}")
        parts.append(self.command)
        for i, param in enumerate(self.params):
            if any(ch in param for ch in "\r\n\0"):
                raise IrcFormatError(f"parameter {i} contains CR, LF or NUL: {param!r}")
            last = i == len(self.params) - 1
            if last and (param == "" or " " in param or param.startswith(":")):
                parts.append(":" + param)
            elif not last and (param == "" or " " in param or param.startswith(":")):
                raise IrcFormatError(f"only the last parameter may be empty, contain spaces or start with ':': "
                                     f"{param!r}")
            else:
                parts.append(param)
        line = " ".join(parts)
        limit = MAX_TAGGED_LINE_BYTES if self.tags else MAX_LINE_BYTES
        if len(line.encode()) + 2 > limit:
            raise IrcFormatError(f"line is {len(line.encode()) + 2} bytes, the limit is {limit}")
        return line


def _format_tag(key: str, value: str) -> str:
    if not key or any(ch in key for ch in "; =\r\n\0"):
        raise IrcFormatError(f"bad tag key {key!r}")
    return f"{key}={escape_tag_value(value)}" if value else key


def parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if key:
            tags[key] = unescape_tag_value(value)  # a repeated key: the last one wins (IRCv3)
    return tags


def parse_line(line: str | bytes) -> IrcMessage:
    """Parses one line (with or without CRLF). Raises IrcParseError, and nothing else, on any bad input."""
    if isinstance(line, (bytes, bytearray)):
        line = decode_line(bytes(line))
    if not isinstance(line, str):
        raise IrcParseError(f"expected str or bytes, got {type(line).__name__}")
    line = line.rstrip("\r\n")
    if "\0" in line or "\r" in line or "\n" in line:
        raise IrcParseError(f"line contains NUL, CR or LF: {line[:80]!r}")
    rest = line.lstrip(" ")
    tags: dict[str, str] = {}
    has_tags = False
    if rest.startswith("@"):
        tag_text, _, rest = rest[1:].partition(" ")
        tags, has_tags = parse_tags(tag_text), True
        rest = rest.lstrip(" ")
    source = None
    if rest.startswith(":"):
        source_text, _, rest = rest[1:].partition(" ")
        if not source_text:
            raise IrcParseError(f"empty source: {line[:80]!r}")
        source = Source.parse(source_text)
        rest = rest.lstrip(" ")
    command, _, rest = rest.partition(" ")
    if not command:
        raise IrcParseError(f"no command: {line[:80]!r}")
    if not (command.isascii() and (command.isalpha() or (command.isdigit() and len(command) == 3))):
        raise IrcParseError(f"bad command {command[:40]!r}")
    params: list[str] = []
    while rest:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return IrcMessage(command.upper(), tuple(params), tags, source, has_tags)


def decode_line(raw: bytes) -> str:
    """IRC has no declared encoding: UTF-8 first, Latin-1 for legacy clients (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class LineFramer:
    """Splits a byte stream into lines; a line longer than `max_bytes` is discarded rather than buffered forever."""

    def __init__(self, max_bytes: int = MAX_TAGGED_LINE_BYTES):
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._discarding = False
        self.discarded = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            if self._discarding or len(line) > self.max_bytes:
                self._discarding = False
                self.discarded += 1
                continue
            if line:
                lines.append(line)
        if len(self._buffer) > self.max_bytes:
            self._buffer.clear()
            self._discarding = True  # drop the rest of this over-long line up to its newline
        return lines


def strip_formatting(text: str) -> str:
    """Removes mIRC colour/bold codes and any other control characters."""
    return _CONTROL.sub("", _FORMATTING.sub("", text))


def ctcp_payload(text: str) -> str | None:
    """The inside of a CTCP message (`\\x01ACTION waves\\x01`), or None for ordinary text."""
    if text.startswith("\x01"):
        return text[1:].rstrip("\x01")
    return None


def safe_chat_text(text: str, max_bytes: int) -> str:
    """Text that is safe to send as a PRIVMSG body: one line, no controls, no leading '/' or '.'
    (Twitch would read those as chat commands), cut on a character boundary to `max_bytes` of UTF-8."""
    text = " ".join(strip_formatting(text.replace("\r", " ").replace("\n", " ")).split())
    text = text.lstrip("/.").lstrip()
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    cut = encoded[: max(0, max_bytes - 3)].decode("utf-8", errors="ignore")
    return cut.rstrip() + "..."


_RFC1459_FOLD = str.maketrans("[]\\~", "{}|^")


def fold_nick(nick: str) -> str:
    """Case-insensitive nick comparison key (rfc1459 casemapping, a superset of ascii)."""
    return nick.lower().translate(_RFC1459_FOLD)
