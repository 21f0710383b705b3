"""`avatar say --session ID TEXT`: a controller's `say` from the command line (prints the acknowledgement;
`--wait` also waits until the avatar has finished saying it). `--clear` sends a barge-in instead."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from clients.avatar_client.client import AvatarClient, AvatarError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatar say", description=__doc__)
    p.add_argument("text", nargs="*", help="what the avatar says (espeak-ng)")
    p.add_argument("--session", required=True, help="the live session (see GET /api/sessions)")
    p.add_argument("--url", default="ws://127.0.0.1:8080/ws", help="the server's WebSocket")
    p.add_argument("--token", default=os.environ.get("AVATAR_TOKEN"), help="controller token (default $AVATAR_TOKEN)")
    p.add_argument("--voice", default=None, help="espeak-ng voice, e.g. en-us, en-gb+f3")
    p.add_argument("--rate", type=int, default=None, help="words per minute (80-450)")
    p.add_argument("--wait", action="store_true", help="return when the avatar has finished saying it")
    p.add_argument("--clear", action="store_true", help="drop the session's queued speech (barge-in) instead")
    return p


async def _run(args: argparse.Namespace) -> dict:
    async with AvatarClient(args.url, binary=False) as client:
        if args.token:
            await client.auth(args.token)
        if args.clear:
            return await client.clear(session=args.session)
        answer = await client.say(" ".join(args.text), session=args.session, voice=args.voice, rate=args.rate)
        if args.wait:
            while True:
                event = await client.playback("finished", timeout_s=answer["queued_s"] + 60)
                if event["utterance"] == answer["utterance"]:
                    return {**answer, "finished": event}
        return answer


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.clear and not " ".join(args.text).strip():
        print("avatar say: error: nothing to say (give TEXT, or --clear)", file=sys.stderr)
        return 2
    try:
        print(json.dumps(asyncio.run(_run(args))))
    except (AvatarError, OSError, TimeoutError) as exc:
        print(f"avatar say: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
