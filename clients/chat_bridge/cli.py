"""`avatar chat-bridge`: flags over an optional TOML config file over built-in defaults."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys

from .config import BridgeConfig, ConfigError, load_config

EXAMPLE = ("avatar chat-bridge --irc irc.chat.twitch.tv:6697 --tls --nick mybot --password-env TWITCH_OAUTH "
           "--channel '#mychannel' --server ws://127.0.0.1:8080/ws --latest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar chat-bridge", description="Drive the avatar from IRC/Twitch chat.",
                                     epilog=f"example: {EXAMPLE}  (config file format: docs/chat-bridge.md)")
    parser.add_argument("--irc", metavar="HOST:PORT", help="IRC server, e.g. irc.chat.twitch.tv:6697")
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None, help="connect with TLS")
    parser.add_argument("--tls-ca", metavar="FILE", help="extra CA certificate for a self-hosted server")
    parser.add_argument("--nick", help="the bridge's IRC nick (on Twitch, the bot account's login)")
    parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the IRC password "
                        "(Twitch: 'oauth:…')")
    parser.add_argument("--channel", help="channel to join, e.g. '#mychannel'")
    parser.add_argument("--server", metavar="URL", help="avatar server WebSocket (default ws://127.0.0.1:8080/ws)")
    parser.add_argument("--token-env", metavar="VAR", help="environment variable holding the avatar server's token")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--session", metavar="ID", help="control this session")
    target.add_argument("--latest", action="store_true", help="follow the newest session (the default)")
    parser.add_argument("--allow", metavar="NICK,…", help="nicks allowed besides the roles (the only ones "
                        "allowed on servers without IRCv3 tags)")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (see docs/chat-bridge.md)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    return parser


def config_from_args(args: argparse.Namespace) -> BridgeConfig:
    config = load_config(args.config) if args.config else BridgeConfig()
    irc, avatar = config.irc, config.avatar
    if args.irc:
        host, sep, port = args.irc.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"--irc must be HOST:PORT, got {args.irc!r}")
        irc = dataclasses.replace(irc, host=host.strip("[]"), port=int(port))
    irc = dataclasses.replace(irc, **{k: v for k, v in dict(
        tls=args.tls, tls_ca_file=args.tls_ca, nick=args.nick, password_env=args.password_env,
        channel=args.channel).items() if v is not None})
    avatar = dataclasses.replace(avatar, **{k: v for k, v in dict(
        server=args.server, token_env=args.token_env, session=args.session).items() if v is not None})
    if args.latest:
        avatar = dataclasses.replace(avatar, session="")
    permissions = config.permissions
    if args.allow:
        extra = [n.strip() for n in args.allow.split(",") if n.strip()]
        permissions = dataclasses.replace(permissions, allow=[*permissions.allow, *extra])
    if not irc.host:
        raise ConfigError("no IRC server: pass --irc HOST:PORT or set [irc] host in the config file")
    config = dataclasses.replace(config, irc=irc, avatar=avatar, permissions=permissions)
    config.validate()
    config.irc.password(), config.avatar.token()  # fail now, not at the first reconnect, on a missing variable
    return config


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"avatar chat-bridge: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .bridge import ChatBridge

    async def run() -> None:
        bridge, task = ChatBridge(config).setup(), asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):  # a service manager's stop is a clean exit, not a traceback
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        try:
            await bridge.run()
        except asyncio.CancelledError:
            pass

    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(run())
        else:
            uvloop.run(run())
    except KeyboardInterrupt:
        pass
    return 0
