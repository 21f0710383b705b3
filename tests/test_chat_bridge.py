"""Chat bridge: IRC framing (recorded Twitch lines, fuzz), permissions and rate limits, config, and end to end
against a real IRC server (Debian's ngircd on loopback) and the real avatar server."""
from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from clients.chat_bridge import BridgeConfig, ChatBridge, ConfigError, load_config
from clients.chat_bridge.bridge import newest_session
from clients.chat_bridge.cli import build_parser, config_from_args
from clients.chat_bridge.commands import CommandParser
from clients.chat_bridge.config import CommandConfig, LimitConfig, PermissionConfig, Preset, ReplyConfig
from clients.chat_bridge.irc import (
    IrcFormatError,
    IrcMessage,
    IrcParseError,
    LineFramer,
    Source,
    escape_tag_value,
    parse_line,
    safe_chat_text,
    unescape_tag_value,
)
from clients.chat_bridge.permissions import Policy, roles_of
from clients.chat_bridge.replies import ChatReplies
from helpers import free_port

ROOT = Path(__file__).resolve().parents[1]

# Recorded-format Twitch IRC lines (tags as Twitch sends them with twitch.tv/tags + twitch.tv/commands).
TWITCH_BROADCASTER = (
    "@badge-info=subscriber/14;badges=broadcaster/1,subscriber/12;client-nonce=4f0c7b1f3e2d;color=#8A2BE2;"
    "display-name=StreamerGal;emotes=;first-msg=0;flags=;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;"
    "returning-chatter=0;room-id=713936733;subscriber=1;tmi-sent-ts=1700000000000;turbo=0;user-id=713936733;"
    "user-type= :streamergal!streamergal@streamergal.tmi.twitch.tv PRIVMSG #streamergal :!emote smile warmly")
TWITCH_MODERATOR = (
    "@badge-info=;badges=moderator/1,partner/1;color=#1E90FF;display-name=ModBot_9000;emotes=;first-msg=0;"
    "flags=;id=0e8a2c4c-1b7b-4c5f-9c3a-2f6b8d9e1a11;mod=1;returning-chatter=0;room-id=713936733;subscriber=0;"
    "tmi-sent-ts=1700000001000;turbo=0;user-id=11111111;user-type=mod "
    ":modbot_9000!modbot_9000@modbot_9000.tmi.twitch.tv PRIVMSG #streamergal :!reset")
TWITCH_VIP = (
    "@badge-info=;badges=vip/1;color=;display-name=VeryImportant;emotes=;first-msg=0;flags=;"
    "id=7c1d2f3e-aaaa-bbbb-cccc-1234567890ab;mod=0;room-id=713936733;subscriber=0;tmi-sent-ts=1700000002000;"
    "turbo=0;user-id=22222222;user-type=;vip=1 "
    ":veryimportant!veryimportant@veryimportant.tmi.twitch.tv PRIVMSG #streamergal :!intensity 0.3")
TWITCH_FOUNDER = (
    "@badge-info=founder/3;badges=founder/0;color=#FF4500;display-name=EarlyFan;emotes=25:6-10;first-msg=0;"
    "flags=;id=99999999-0000-1111-2222-333333333333;mod=0;room-id=713936733;subscriber=0;"
    "tmi-sent-ts=1700000003000;turbo=0;user-id=33333333;user-type= "
    ":earlyfan!earlyfan@earlyfan.tmi.twitch.tv PRIVMSG #streamergal :!emote Kappa look surprised")
TWITCH_VIEWER = (
    "@badge-info=;badges=;client-nonce=aa;color=;display-name=RandomViewer;emotes=;first-msg=1;flags=;"
    "id=12121212-3434-5656-7878-909090909090;mod=0;returning-chatter=0;room-id=713936733;subscriber=0;"
    "tmi-sent-ts=1700000004000;turbo=0;user-id=44444444;user-type= "
    ":randomviewer!randomviewer@randomviewer.tmi.twitch.tv PRIVMSG #streamergal :!emote look furious")
TWITCH_USERNOTICE = (
    r"@badge-info=subscriber/1;badges=subscriber/0,premium/1;color=;display-name=NewSub;emotes=;flags=;"
    r"id=db25007f-7a18-43eb-9379-80131e44d633;login=newsub;mod=0;msg-id=sub;msg-param-cumulative-months=1;"
    r"msg-param-sub-plan-name=Channel\sSubscription\s(streamergal);msg-param-sub-plan=Prime;room-id=713936733;"
    r"subscriber=1;system-msg=NewSub\ssubscribed\swith\sPrime.\:)\\o/;tmi-sent-ts=1700000005000;"
    r"user-id=55555555;user-type= :tmi.twitch.tv USERNOTICE #streamergal :Great stream!")
TWITCH_OTHER = [
    "PING :tmi.twitch.tv",
    ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands",
    "@emote-only=0;followers-only=-1;r9k=0;room-id=713936733;slow=0;subs-only=0 :tmi.twitch.tv ROOMSTATE #streamergal",
    "@ban-duration=600;room-id=713936733;target-user-id=44444444;tmi-sent-ts=1700000006000 "
    ":tmi.twitch.tv CLEARCHAT #streamergal :randomviewer",
    "@msg-id=msg_ratelimit :tmi.twitch.tv NOTICE #streamergal :Your message was not sent because you are sending "
    "messages too quickly.",
    ":tmi.twitch.tv RECONNECT",
    ":streamerbot!streamerbot@streamerbot.tmi.twitch.tv JOIN #streamergal",
    ":tmi.twitch.tv 001 streamerbot :Welcome, GLHF!",
    ":streamerbot.tmi.twitch.tv 353 streamerbot = #streamergal :streamerbot",
]


# --------------------------------------------------------------------------------------------- IRC framing

def test_twitch_privmsg_tags_and_badges():
    msg = parse_line(TWITCH_BROADCASTER + "\r\n")
    assert msg.command == "PRIVMSG" and msg.params == ("#streamergal", "!emote smile warmly")
    assert msg.source == Source("streamergal", "streamergal", "streamergal.tmi.twitch.tv")
    assert msg.tags["badges"] == "broadcaster/1,subscriber/12" and msg.tags["badge-info"] == "subscriber/14"
    assert msg.tags["display-name"] == "StreamerGal" and msg.tags["user-type"] == "" and msg.tags["emotes"] == ""
    assert roles_of(msg, frozenset()) == {"viewer", "broadcaster", "subscriber"}
    assert roles_of(parse_line(TWITCH_MODERATOR), frozenset()) == {"viewer", "moderator"}
    assert roles_of(parse_line(TWITCH_VIP), frozenset()) == {"viewer", "vip"}
    assert roles_of(parse_line(TWITCH_FOUNDER), frozenset()) == {"viewer", "subscriber"}
    viewer = parse_line(TWITCH_VIEWER)
    assert roles_of(viewer, frozenset()) == {"viewer"}
    assert roles_of(viewer, frozenset({"randomviewer"})) == {"viewer", "allowed"}
    # Without IRCv3 tags a badge claimed in the text means nothing; only the allow-list counts.
    plain = parse_line(":alice!a@host PRIVMSG #c :badges=broadcaster/1")
    assert not plain.has_tags and roles_of(plain, frozenset()) == {"viewer"}


def test_tag_value_escapes():
    notice = parse_line(TWITCH_USERNOTICE)
    assert notice.tags["system-msg"] == "NewSub subscribed with Prime.;)\\o/"
    assert notice.tags["msg-param-sub-plan-name"] == "Channel Subscription (streamergal)"
    assert notice.params == ("#streamergal", "Great stream!")
    assert unescape_tag_value(r"a\:b\sc\\d\re\nf") == "a;b c\\d\re\nf"
    assert unescape_tag_value("trailing\\") == "trailing" and unescape_tag_value(r"\q") == "q"
    assert parse_line("@a=;b;c=1;c=2 CMD").tags == {"a": "", "b": "", "c": "2"}
    rng = random.Random(1)
    for _ in range(300):
        value = "".join(rng.choice("ab;: \\\r\nsé🙂") for _ in range(rng.randint(0, 12)))
        assert unescape_tag_value(escape_tag_value(value)) == value
        line = IrcMessage("TAGMSG", ("#c",), {"k": value, "+vendor.example/x": value}).to_line()
        assert parse_line(line).tags == {"k": value, "+vendor.example/x": value}


def test_rfc_lines_parse_and_format():
    msg = parse_line(":irc.example.net 005 me CHANTYPES=# NICKLEN=30 :are supported")
    assert msg.command == "005" and msg.params == ("me", "CHANTYPES=#", "NICKLEN=30", "are supported")
    assert msg.source == Source("irc.example.net")
    assert parse_line("privmsg   #c   ::-)  hi ").params == ("#c", ":-)  hi ")
    assert parse_line("PING").params == () and parse_line("PING :").params == ("",)
    assert parse_line("NICK new\n").params == ("new",)
    assert IrcMessage("PRIVMSG", ("#c", "hello there")).to_line() == "PRIVMSG #c :hello there"
    assert IrcMessage("PRIVMSG", ("#c", ":)")).to_line() == "PRIVMSG #c ::)"
    for bad in (IrcMessage("PRIVMSG", ("#c", "a\r\nQUIT")), IrcMessage("PRIVMSG", ("#c x", "y")),
                IrcMessage("PRI VMSG", ()), IrcMessage("PRIVMSG", ("#c", "x" * 600))):
        with pytest.raises(IrcFormatError):
            bad.to_line()
    for line in TWITCH_OTHER:
        parse_line(line)
    assert parse_line(TWITCH_OTHER[3]).tags["ban-duration"] == "600"


ODD_LINES = [
    "", " ", "\r\n", ":", "::", "@", "@ ", "@;", "@=;=", ":nick", ":nick ", "@a=b", "@a=b :src", ": PRIVMSG #c :x",
    "PRIVMSG", "PRIVMSG #c", "PRIVMSG :", "123", "12 x", "1234 x", "PRIV-MSG x", "\x00PRIVMSG #c :x",
    "PRIVMSG #c :a\x00b", "@badges=broadcaster/1 :x!y@z PRIVMSG", ":x!y@z PRIVMSG #streamergal :\x01ACTION !emote"
    " dance\x01", ":!@ PRIVMSG #streamergal :!emote x", ":x!@ PRIVMSG #streamergal :!", "@\\=\\ :a PRIVMSG #c :!help",
    "\udcff", "é" * 2000, "@" + "a=" * 5000 + " PING", ":x PRIVMSG #streamergal :!emote " + "\x03" * 50,
    ":x PRIVMSG #streamergal :!intensity nan", ":x PRIVMSG #streamergal :!intensity 1e999",
    ":x PRIVMSG #streamergal :!EMOTE", ":x PRIVMSG #streamergal :  !emote   spaced   out  ",
]


def _mutated_line(rng: random.Random) -> str:
    """A recorded line with a few random insertions, deletions and replacements of IRC-significant characters."""
    pieces = ["@", ":", ";", "=", " ", "  ", "!", "\\", "#", "PRIVMSG", "001", "é", "\x01", "\x03", "\t", "/",
              "badges=vip/1", "!emote ", "#streamergal", "\x00", "\r", "\n", "\udcff"]
    line = rng.choice([TWITCH_BROADCASTER, TWITCH_MODERATOR, TWITCH_VIP, TWITCH_VIEWER, TWITCH_USERNOTICE,
                       *TWITCH_OTHER, ":alice!a@h PRIVMSG #streamergal :!emote smile"])
    for _ in range(rng.randint(1, 6)):
        at = rng.randint(0, len(line))
        action = rng.random()
        if action < 0.4:
            line = line[:at] + rng.choice(pieces) + line[at:]
        elif action < 0.7:
            line = line[:at] + line[at + rng.randint(1, 20):]
        else:
            line = line[:at] + rng.choice(pieces) + line[at + 1:]
    return line


def test_parser_and_bridge_survive_odd_lines():
    rng = random.Random(7)
    lines = ODD_LINES + [_mutated_line(rng) for _ in range(3000)]
    lines += [rng.randbytes(rng.randint(0, 80)) for _ in range(1000)]
    parsed = []
    for line in lines:
        try:
            parsed.append(parse_line(line))
        except IrcParseError:
            pass  # the only exception allowed
    assert len(parsed) > 1000  # the fuzz reaches the bridge's handler, not only the parser's error path

    async def feed_bridge() -> ChatBridge:
        bridge = ChatBridge(_config(channel="#streamergal")).setup()
        for message in parsed:
            bridge.on_irc_message(message)  # must never raise
        return bridge

    bridge = asyncio.run(feed_bridge())
    assert bridge.stats.received > 0

    # Framing: any chunking of a byte stream gives back the same lines; an over-long line is dropped whole.
    stream = b"PING :a\r\n" + b"x" * 20000 + b"\r\nPRIVMSG #c :\xc3\xa9\nNOTICE x :y\r\n"
    framer, out, pos = LineFramer(), [], 0
    while pos < len(stream):
        step = rng.randint(1, 700)
        out += framer.feed(stream[pos:pos + step])
        pos += step
    assert out == [b"PING :a", b"PRIVMSG #c :\xc3\xa9", b"NOTICE x :y"] and framer.discarded == 1


def test_safe_chat_text():
    assert safe_chat_text("/ban someone", 100) == "ban someone"  # Twitch would run it as a command
    assert safe_chat_text("a\r\nPRIVMSG #x :b", 100) == "a PRIVMSG #x :b"
    assert safe_chat_text("\x02bold\x02 \x0304,01red", 100) == "bold red"
    cut = safe_chat_text("é" * 300, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("...")


# --------------------------------------------------------------------------------- commands and policy

def test_commands_aliases_and_presets():
    parser = CommandParser(CommandConfig(prefix="!", aliases={"e": "emote", "mood?": "mood"},
                                         presets={"happy": Preset("look happy", 0.8)}))
    assert parser.parse("!emote  smile   warmly ").argument == "smile warmly"
    assert parser.parse("!E nod slowly").name == "emote"
    assert parser.parse("\x02!happy\x02").preset == Preset("look happy", 0.8)
    assert parser.parse("!mood?").name == "mood"
    assert parser.parse("!say hello  there").argument == "hello there"
    assert parser.parse("!uptime") is None and parser.parse("hello !emote x") is None
    assert "!happy" in parser.help_text()
    assert CommandParser(CommandConfig(prefix="~~")).parse("~~reset").name == "reset"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_policy_roles_cooldown_global_limit_length_denylist():
    clock = Clock()
    perms = PermissionConfig(allow=["Alice"])
    policy = Policy(perms, LimitConfig(user_cooldown_s=10, global_limit=3, global_window_s=30, max_length=20,
                                       deny_words=["furious", "bad word"]), clock)
    viewer, sub, mod = frozenset({"viewer"}), frozenset({"viewer", "subscriber"}), frozenset({"viewer", "moderator"})
    assert policy.admit("bob", viewer, "emote", "smile").reason == "permission"
    assert policy.admit("bob", viewer, "mood") is None and policy.admit("bob", viewer, "reset").reason == "permission"
    assert policy.admit("carol", sub, "emote", "x" * 21).reason == "length"
    assert policy.admit("carol", sub, "emote", "look FURIOUS!").reason == "denied"
    assert policy.admit("carol", sub, "emote", "a bad-word here").reason == "denied"
    assert policy.denied("BAD  WORD") and policy.denied("badword") and not policy.denied("badwords are fine")
    clock.now += 100
    assert policy.admit("carol", sub, "emote", "smile") is None
    assert policy.admit("carol", sub, "emote", "smile").reason == "cooldown"
    allowed = roles_of(parse_line(":ALICE!a@h PRIVMSG #c :x"), policy.allow)
    assert "allowed" in allowed and policy.admit("alice", allowed, "reset") is None
    assert policy.admit("dave", sub, "emote", "smile") is None
    assert policy.admit("erin", sub, "emote", "smile").reason == "global"  # 3 in 30 s
    assert policy.admit("mod", mod, "reset") is None  # moderators are exempt
    policy.refund("dave", sub)  # the avatar was offline: dave keeps his turn and the global slot
    assert policy.admit("dave", sub, "emote", "x") is None
    clock.now += 31
    assert policy.admit("erin", sub, "emote", "smile") is None


def test_reply_bucket_never_exceeds_twitch_rate_and_coalesces():
    clock = Clock()
    replies = ChatReplies(ReplyConfig(limit=20, window_s=30, burst=5, max_pending=10), clock)
    sent: list[tuple[float, str]] = []
    rng = random.Random(3)
    for step in range(2000):  # 200 simulated seconds of a chat flood, 0.1 s per step
        for _ in range(rng.choice([0, 0, 1, 3])):
            replies.say(f"@user{step} ok {rng.random():.3f}")
        if replies.bucket.wait_time() == 0 and (line := replies.take_line()) is not None:
            assert replies.bucket.try_take()
            sent.append((clock.now, line))
        clock.now += 0.1
    stamps = [t for t, _ in sent]
    worst = max(sum(1 for s in stamps if t <= s < t + 30) for t in stamps)
    assert worst <= 20 and len(sent) >= 100  # the rule holds and the bucket is not needlessly strict
    assert replies.coalesced > 0 and any(" | " in line for _, line in sent)
    assert all(len(line.encode()) <= 400 for _, line in sent)
    replies.say("same")
    replies.say("same")
    assert replies.pending.count("same") == 1


def test_newest_session_and_intensity_parsing():
    assert newest_session([{"session": "a"}, {"session": "b"}])["session"] == "b"
    assert newest_session([{"session": "a", "created": 5}, {"session": "b", "created": 2}])["session"] == "a"
    from clients.chat_bridge.bridge import _parse_intensity
    assert _parse_intensity("0.25") == 0.25 and _parse_intensity("40%") == 0.4
    assert _parse_intensity("1.5") is None and _parse_intensity("nan") is None and _parse_intensity("x") is None


# ---------------------------------------------------------------------------------------------- config

def test_docs_example_config_loads(tmp_path):
    doc = (ROOT / "docs" / "chat-bridge.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    path = tmp_path / "bridge.toml"
    path.write_text(example)
    config = load_config(path)
    assert config.irc.channel.startswith("#") and config.commands.presets
    config.validate()


def test_config_errors_are_specific(tmp_path):
    def load(text: str) -> BridgeConfig:
        path = tmp_path / "c.toml"
        path.write_text(textwrap.dedent(text))
        return load_config(path)

    with pytest.raises(ConfigError, match="unknown key limits.cooldown"):
        load("[limits]\ncooldown = 3\n")
    with pytest.raises(ConfigError, match="unknown config section"):
        load("[limitz]\n")
    with pytest.raises(ConfigError, match="limits.user_cooldown_s must be float"):
        load("[limits]\nuser_cooldown_s = 'x'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load("[limits\n")
    with pytest.raises(ConfigError, match="unknown roles"):
        load("[irc]\nnick='b'\nchannel='#c'\n[permissions]\nemote = ['admins']\n").validate()
    with pytest.raises(ConfigError, match="presets.sad"):
        load("[presets]\nsad = 3\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")

    path = tmp_path / "f.toml"
    args = build_parser().parse_args(["--irc", "127.0.0.1:6667", "--nick", "bot", "--channel", "#c",
                                      "--allow", "alice, bob", "--session", "s1", "--config", str(path)])
    path.write_text("[presets]\nhappy = 'look happy'\n[permissions]\nallow = ['carol']\n")
    config = config_from_args(args)
    assert config.permissions.allow == ["carol", "alice", "bob"] and config.avatar.session == "s1"
    assert config.irc.port == 6667 and config.commands.presets["happy"].text == "look happy"
    with pytest.raises(ConfigError, match="HOST:PORT"):
        config_from_args(build_parser().parse_args(["--irc", "localhost", "--nick", "b", "--channel", "#c"]))
    with pytest.raises(ConfigError, match="not set"):
        config_from_args(build_parser().parse_args(["--irc", "h:1", "--nick", "b", "--channel", "#c",
                                                    "--password-env", "SURELY_UNSET_VARIABLE_42"]))


def _leaves_connection(raw: bytes) -> bool:
    """Lines that rightly end a connection (ERROR, RECONNECT, bad password) or answer our own PING."""
    try:
        return parse_line(raw).command in ("ERROR", "RECONNECT", "464", "465", "PONG")
    except IrcParseError:
        return False


def test_twitch_handshake_replayed():
    """IrcClient against a replay of Twitch's side of a session (no Twitch offline): CAP ACK turns tags on, the
    bridge answers PING, sees badges, shrugs off hundreds of malformed lines, and follows RECONNECT with a fresh
    connection."""
    from clients.chat_bridge.config import IrcConfig
    from clients.chat_bridge.irc_client import IrcClient

    async def scenario() -> None:
        heard: list[list[str]] = []
        connected = asyncio.Queue()

        async def twitch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await replay(reader, writer)
            except ConnectionError:
                pass  # the test ends while the second connection registers
            finally:
                writer.close()

        async def replay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            lines: list[str] = []
            heard.append(lines)
            await connected.put(lines)

            async def expect(prefix: str) -> None:
                while not any(line.startswith(prefix) for line in lines):
                    if not (raw := await reader.readline()):
                        raise ConnectionError(f"client hung up before {prefix}; it sent {lines}")
                    lines.append(raw.decode().rstrip("\r\n"))

            await expect("CAP REQ")
            writer.write(b":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands\r\n")
            await expect("NICK")
            writer.write(b":tmi.twitch.tv 001 streamerbot :Welcome, GLHF!\r\n:tmi.twitch.tv 376 streamerbot :>\r\n")
            await expect("JOIN")
            writer.write(b":streamerbot!streamerbot@streamerbot.tmi.twitch.tv JOIN #streamergal\r\n")
            writer.write(b"PING :tmi.twitch.tv\r\n" + TWITCH_BROADCASTER.encode() + b"\r\n")
            await expect("PONG")
            writer.write(fuzz + b"PING :after-fuzz\r\n")  # odd lines on the wire must not break the connection
            await expect("PONG after-fuzz")
            writer.write(b":tmi.twitch.tv RECONNECT\r\n")
            await writer.drain()
            await reader.read()  # until the client hangs up

        rng = random.Random(11)
        fuzz = b""
        for line in ODD_LINES + [_mutated_line(rng) for _ in range(500)]:
            raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
            parts = raw.replace(b"\r", b"\n").split(b"\n")
            if not any(p and _leaves_connection(p) for p in parts):
                fuzz += raw + b"\r\n"
        server = await asyncio.start_server(twitch, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        messages: list[tuple[IrcMessage, bool]] = []  # with tags_enabled at the time
        config = IrcConfig(host="127.0.0.1", port=port, nick="streamerbot", channel="#streamergal",
                           backoff_initial_s=0.05, backoff_max_s=0.1)
        client = IrcClient(config, "oauth:notarealtoken", lambda m: messages.append((m, client.tags_enabled)))
        task = asyncio.create_task(client.run())
        try:
            first = await asyncio.wait_for(connected.get(), 15)
            await asyncio.wait_for(connected.get(), 15)  # RECONNECT → a second connection
            assert first[:4] == ["CAP REQ :twitch.tv/tags twitch.tv/commands", "PASS oauth:notarealtoken",
                                 "NICK streamerbot", "USER streamerbot 0 * streamerbot"]
            assert "CAP END" in first and "JOIN #streamergal" in first and "PONG tmi.twitch.tv" in first
            privmsg, tags_on = next((m, on) for m, on in messages if m.command == "PRIVMSG")
            assert tags_on and client.connects >= 1 and client.bad_lines > 50
            assert roles_of(privmsg, frozenset()) >= {"broadcaster", "subscriber"}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


# ------------------------------------------------------------------------------------- end to end helpers

def _config(channel: str = "#stream", port: int = 1, server: str = "ws://127.0.0.1:1/ws", **limits) -> BridgeConfig:
    config = BridgeConfig()
    config.irc.host, config.irc.port, config.irc.nick, config.irc.channel = "127.0.0.1", port, "avatarbot", channel
    config.irc.backoff_initial_s, config.irc.backoff_max_s = 0.2, 1.0
    config.avatar.server, config.avatar.backoff_initial_s, config.avatar.backoff_max_s = server, 0.1, 0.5
    config.avatar.connect_wait_s = 1.5
    config.permissions.allow = ["alice"]
    config.limits = LimitConfig(**{"user_cooldown_s": 0, "global_limit": 4, "global_window_s": 60, **limits})
    config.replies = ReplyConfig(limit=20, window_s=5, burst=5)
    config.commands.presets = {"happy": Preset("look happy", 0.8)}
    return config


class NgIrcd:
    """Debian's ngircd in the foreground on a free loopback port (penalties off, so test clients may flood)."""

    def __init__(self, workdir: Path, password: str = "", tls_cert: Path | None = None):
        self.port, self.workdir, self.proc = free_port(), workdir, None
        self.tls_port = free_port() if tls_cert else None
        self.conf = workdir / "ngircd.conf"
        ssl = f"[SSL]\nCertFile = {tls_cert}\nKeyFile = {tls_cert}\nPorts = {self.tls_port}\n" if tls_cert else ""
        self.conf.write_text(textwrap.dedent(f"""\
            [Global]
            Name = irc.test.local
            Info = chat bridge test
            Listen = 127.0.0.1
            Ports = {self.port}
            Password = {password}
            [Limits]
            MaxPenaltyTime = 0
            MaxConnectionsIP = 0
            MaxNickLength = 30
            [Options]
            PAM = no
            Ident = no
            DNS = no
            """) + ssl)

    def start(self) -> None:
        self.proc = subprocess.Popen(["ngircd", "-n", "-f", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("ngircd did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def ngircd(tmp_path):
    if shutil.which("ngircd") is None:
        pytest.skip("ngircd is not installed (apt install ngircd)")
    server = NgIrcd(tmp_path)
    server.start()
    yield server
    server.stop()


async def eventually(condition, timeout: float = 30.0, context=lambda: "") -> None:
    """Polls `condition` (generous timeouts: the machine may be busy; nothing here asserts a speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s; {context()}")
        await asyncio.sleep(0.02)


class ChatUser:
    """A plain IRC user on a raw socket: joins, speaks, and records what the channel says."""

    def __init__(self, nick: str, port: int, channel: str = "#stream", password: str = ""):
        self.nick, self.port, self.channel, self.password = nick, port, channel, password
        self.heard: list[tuple[float, str, str]] = []  # (time, sender, text)
        self.seen: list[tuple[str, str]] = []  # (command, nick) of other users' JOIN/QUIT

    async def connect(self) -> ChatUser:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        if self.password:
            self.writer.write(f"PASS {self.password}\r\n".encode())
        self.writer.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :{self.nick}\r\nJOIN {self.channel}\r\n".encode())
        self.task = asyncio.create_task(self._listen())
        await self.wait_for(lambda: self.joined)
        return self

    joined = False

    async def _listen(self) -> None:
        framer = LineFramer()
        while data := await self.reader.read(4096):
            for raw in framer.feed(data):
                msg = parse_line(raw)
                if msg.command == "PING":
                    self.writer.write(f"PONG :{msg.trailing}\r\n".encode())
                elif msg.command == "JOIN" and msg.nick == self.nick:
                    self.joined = True
                elif msg.command in ("JOIN", "QUIT"):
                    self.seen.append((msg.command, msg.nick))
                elif msg.command == "PRIVMSG":
                    self.heard.append((time.monotonic(), msg.nick, msg.trailing))

    def say(self, text: str) -> None:
        self.writer.write(f"PRIVMSG {self.channel} :{text}\r\n".encode())

    def replies(self, pattern: str) -> list[str]:
        return [text for _, nick, text in self.heard if nick == "avatarbot" and re.search(pattern, text)]

    async def wait_for(self, condition, timeout: float = 30.0) -> None:
        await eventually(condition, timeout, lambda: f"{self.nick} heard {self.heard[-8:]}")

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()


TOKEN = "chat-bridge-test-token"


@pytest.fixture(scope="module")
def avatar_resources():
    """The real server's shared models, loaded once (restarts below reuse them, as a process restart would
    load the same files). An untrained generator is enough here: the bridge only drives instructions."""
    from realtime.server.config import ServerConfig
    from realtime.server.resources import AvatarResources

    return AvatarResources.load(ServerConfig(allow_untrained=True))


class AvatarServer:
    """The real avatar server (realtime.server.app) on a loopback port that survives restarts."""

    def __init__(self, resources) -> None:
        self.resources, self.port, self.server = resources, 0, None
        self.calls: list = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self, token: str | None = TOKEN) -> None:
        from realtime.server.app import AvatarServer as Server
        from realtime.server.config import ServerConfig

        config = ServerConfig(port=self.port, token=token, allow_untrained=True, idle_timeout_s=300, max_sessions=2,
                              admit_by_load=False)
        self.server = Server(config, self.resources)
        await self.server.start()
        self.port = self.server.port

    async def open_call(self, instruction: str | None = None) -> str:
        """A session exists only while a WebRTC call is up: open one with the project's Python client."""
        from clients.avatar_client.client import AvatarClient

        client = await AvatarClient(self.url).connect()
        self.calls.append(client)
        return await client.call(None, instruction=instruction)

    async def sessions(self) -> list[dict]:
        from clients.avatar_client.client import AvatarClient

        async with AvatarClient(self.url, binary=False) as client:
            await client.auth(TOKEN)
            return await client.sessions()

    async def stop(self) -> None:
        for client in self.calls:
            await client.close()
        self.calls.clear()
        if self.server is not None:
            await self.server.stop()
            self.server = None


@pytest.mark.slow
def test_end_to_end_ngircd_and_avatar_server(ngircd, avatar_resources, monkeypatch):
    async def scenario() -> None:
        avatar = AvatarServer(avatar_resources)
        await avatar.start()
        session = await avatar.open_call(instruction="look calm")
        monkeypatch.setenv("AVATAR_TEST_TOKEN", TOKEN)
        config = _config(port=ngircd.port, server=avatar.url, deny_words=["furious"])
        config.avatar.token_env = "AVATAR_TEST_TOKEN"
        config.avatar.request_timeout_s = 30  # the server's worker may be slow on a loaded machine
        bridge = ChatBridge(config).setup()
        task = asyncio.create_task(bridge.run())
        alice = await ChatUser("alice", ngircd.port).connect()
        mallory = await ChatUser("mallory", ngircd.port).connect()
        try:
            await asyncio.wait_for(bridge.irc.joined.wait(), 30)
            assert not bridge.irc.tags_enabled  # ngircd NAKs the Twitch capabilities

            # An allowed user's !emote reaches the session.
            alice.say("!emote smile warmly")
            await alice.wait_for(lambda: alice.replies(r"^@alice ok: smile warmly$"))
            assert await avatar.sessions() == [{"session": session, "instruction": "smile warmly", "intensity": 1.0}]

            # A stranger is refused in chat, and the instruction stays.
            mallory.say("!emote look bored")
            await mallory.wait_for(lambda: mallory.replies(r"^@mallory sorry, that command is for"))
            mallory.say("!mood")
            await mallory.wait_for(lambda: mallory.replies(r"^@mallory mood: smile warmly"))
            assert (await avatar.sessions())[0]["instruction"] == "smile warmly"
            alice.say("!emote look FURIOUS")
            await alice.wait_for(lambda: alice.replies(r"not allowed"))

            # Twitch-tagged lines (as Twitch delivers them) carry roles: broadcaster, VIP, moderator, viewer.
            def twitch(line: str) -> None:
                bridge.on_irc_message(parse_line(line.replace("#streamergal", "#stream")))

            twitch(TWITCH_BROADCASTER)
            await alice.wait_for(lambda: alice.replies(r"^@StreamerGal ok: smile warmly$"))
            twitch(TWITCH_BROADCASTER.replace("!emote smile warmly", "!say hello chat"))  # speech, exempt too
            await alice.wait_for(lambda: alice.replies(r"^@StreamerGal saying: hello chat$"))
            twitch(TWITCH_VIP)  # !intensity 0.3
            await alice.wait_for(lambda: alice.replies(r"^@VeryImportant intensity 0.30$"))
            assert (await avatar.sessions())[0] == {"session": session, "instruction": "smile warmly", "intensity": 0.3}
            twitch(TWITCH_MODERATOR)  # !reset
            await alice.wait_for(lambda: alice.replies(r"^@ModBot_9000 reset$"))
            assert (await avatar.sessions())[0]["instruction"] is None
            twitch(TWITCH_VIEWER)
            await alice.wait_for(lambda: alice.replies(r"^@RandomViewer sorry"))
            alice.say("!happy")  # a preset from the config
            await alice.wait_for(lambda: alice.replies(r"^@alice ok: look happy$"))
            assert (await avatar.sessions())[0] == {"session": session, "instruction": "look happy", "intensity": 0.8}

            # A flood: the global limit (4 per minute: alice twice and the VIP so far; broadcaster and moderator
            # are exempt) lets one more through, and the replies stay within 20 messages per 5 s.
            for i in range(10):
                alice.say(f"!emote nod {i}")
            await alice.wait_for(lambda: bridge.stats.received >= 19 and bridge.queue.empty())
            await alice.wait_for(lambda: not bridge.replies.pending)
            await asyncio.sleep(0.3)
            assert bridge.stats.applied == 7 and bridge.stats.refused["global"] == 9  # !say included
            assert (await avatar.sessions())[0]["instruction"] == "nod 0"
            stamps = [t for t, nick, _ in alice.heard if nick == "avatarbot"]
            assert max(sum(1 for s in stamps if t <= s < t + 5) for t in stamps) <= 20
            assert len(stamps) < 19 and any(" | " in text for text in alice.replies("too many commands"))

            # A wrong token is refused by the server: that link stays offline.
            from clients.chat_bridge.avatar_link import AvatarLink, AvatarOffline
            wrong = AvatarLink(dataclasses.replace(config.avatar, connect_wait_s=0.5), token="wrong")
            wrong_task = asyncio.create_task(wrong.run())
            with pytest.raises(AvatarOffline):
                await wrong.sessions()
            wrong_task.cancel()

            # The avatar server goes away: a short "avatar offline"; back with a new call: commands work again.
            await avatar.stop()
            alice.say("!mood")
            await alice.wait_for(lambda: alice.replies(r"^@alice avatar offline$"))
            await avatar.start(token=None)  # now without a token: loopback clients may control sessions
            alice.say("!mood")
            await alice.wait_for(lambda: alice.replies(r"^@alice no live avatar session$"))
            await avatar.open_call(instruction="raise your eyebrows")
            alice.say("!mood")
            await alice.wait_for(lambda: alice.replies(r"^@alice mood: raise your eyebrows \(intensity 1.00\)$"))
            assert bridge.avatar.connects >= 2

            # The IRC server restarts: the bridge reconnects and rejoins on its own.
            await alice.close()
            await mallory.close()
            ngircd.stop()
            await asyncio.sleep(0.3)
            ngircd.start()
            await eventually(lambda: bridge.irc.connects >= 2 and bridge.irc.joined.is_set())
            alice = await ChatUser("alice", ngircd.port).connect()
            alice.say("!help")
            await alice.wait_for(lambda: alice.replies(r"^@alice !emote <text>"))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await alice.close()
            await avatar.stop()

    asyncio.run(asyncio.wait_for(scenario(), 300))


def test_tls_and_server_password(tmp_path, monkeypatch):
    """--tls (with the server's own CA) and --password-env against ngircd's TLS port; !help needs no avatar."""
    if shutil.which("ngircd") is None or shutil.which("openssl") is None:
        pytest.skip("ngircd and openssl are needed")
    cert = tmp_path / "irc.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(cert), "-out",
                    str(tmp_path / "crt.pem"), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    cert.write_text(cert.read_text() + (tmp_path / "crt.pem").read_text())  # key and certificate in one file
    server = NgIrcd(tmp_path, password="letmein", tls_cert=cert)
    server.start()
    monkeypatch.setenv("IRC_TEST_PASSWORD", "letmein")
    args = ["--irc", f"127.0.0.1:{server.tls_port}", "--tls", "--tls-ca", str(tmp_path / "crt.pem"), "--nick",
            "avatarbot", "--password-env", "IRC_TEST_PASSWORD", "--channel", "#stream", "--server",
            "ws://127.0.0.1:9/ws"]

    async def scenario() -> None:
        bridge = ChatBridge(config_from_args(build_parser().parse_args(args))).setup()
        task = asyncio.create_task(bridge.run())
        user = None
        try:
            await asyncio.wait_for(bridge.irc.joined.wait(), 30)
            user = await ChatUser("viewer", server.port, password="letmein").connect()
            user.say("!help")
            await user.wait_for(lambda: user.replies(r"^@viewer !emote <text>, !say <text>, !intensity <0-1>"))
            user.say("!mood")  # needs the avatar server, which is not there
            await user.wait_for(lambda: user.replies(r"^@viewer avatar offline$"))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if user is not None:
                await user.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        server.stop()


def test_cli_runs_and_stops_cleanly(ngircd):
    """`python -m clients.chat_bridge` (what `avatar chat-bridge` runs) joins, answers, and on SIGTERM says QUIT
    and exits 0."""
    import os
    import signal
    import sys

    async def scenario() -> None:
        user = await ChatUser("watcher", ngircd.port).connect()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clients.chat_bridge", "--irc", f"127.0.0.1:{ngircd.port}", "--nick", "avatarbot",
            "--channel", "#stream", "--server", "ws://127.0.0.1:9/ws", "--allow", "watcher", cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=asyncio.subprocess.PIPE)
        try:
            await user.wait_for(lambda: ("JOIN", "avatarbot") in user.seen)
            user.say("!emote smile")
            await user.wait_for(lambda: user.replies(r"^@watcher avatar offline$"))
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            await user.wait_for(lambda: ("QUIT", "avatarbot") in user.seen)
            assert b"Traceback" not in await proc.stderr.read()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await user.close()

    asyncio.run(asyncio.wait_for(scenario(), 90))
