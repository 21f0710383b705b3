"""Command line: call the avatar server with a sound file (or the live microphone), save the answer as mp4,
send timed instructions, print measurements as JSON.

    python -m clients.avatar_client --wav speech.wav --seconds 10 -o answer.mp4 \\
        --instruction "smile warmly" --at 4:"raise your eyebrows" --at 7:"look sad@0.5"
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from clients.avatar_client.client import AvatarClient, AvatarError
from clients.avatar_client.media import DeviceMicrophone, FileMicrophone, Mp4Sink


def _timed_instruction(text: str) -> tuple[float, str, float | None]:
    """"4.5:look sad@0.6" -> (4.5, "look sad", 0.6)."""
    when, sep, rest = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SECONDS:TEXT[@INTENSITY], got {text!r}")
    words, at, level = rest.rpartition("@") if "@" in rest else (rest, "", "")
    try:
        return float(when), words.strip(), float(level) if at else None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad timed instruction {text!r}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clients.avatar_client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8080/ws", help="the server's WebSocket")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--wav", help="sound file played as the microphone (any rate/channels)")
    source.add_argument("--device", nargs="?", const="", default=None,
                        help="live input device (needs the optional package sounddevice)")
    p.add_argument("--seconds", type=float, default=None, help="call length (default: the file's length + 1 s)")
    p.add_argument("--instruction", default=None, help="instruction at the start of the call")
    p.add_argument("--intensity", type=float, default=None, help="0..1")
    p.add_argument("--at", action="append", type=_timed_instruction, default=[], metavar="S:TEXT[@I]",
                   help="send an instruction S seconds into the call (repeatable)")
    p.add_argument("-o", "--out", default=None, help="save received video + returned audio as mp4")
    p.add_argument("--json", action="store_true", help="JSON only on stdout")
    return p


async def run(args: argparse.Namespace) -> dict:
    microphone = None
    if args.wav:
        microphone = FileMicrophone(args.wav)
    elif args.device is not None:
        microphone = DeviceMicrophone(args.device or None)
    seconds = args.seconds or (microphone.duration_s + 1.0 if isinstance(microphone, FileMicrophone) else 10.0)
    sink = Mp4Sink(args.out) if args.out else None
    acks = []
    async with AvatarClient(args.url) as client:
        await client.call(microphone, args.instruction, args.intensity,
                          on_frame=(lambda rgb, t: sink.frame(rgb)) if sink else None,
                          on_audio=(lambda pcm, t: sink.voice(pcm)) if sink else None)
        await client.wait_first_frame()
        start = time.monotonic()
        first_frame_s = start - client.call_started
        for when, text, level in sorted(args.at):
            await asyncio.sleep(max(0.0, start + when - time.monotonic()))
            acks.append(await client.instruct(text, level))
        while time.monotonic() < start + seconds:
            await client.ping(via_channel=True)
            await asyncio.sleep(0.5)
        stats = await client.stats()
        result = {**client.measurements(), "first_frame_s": round(first_frame_s, 3),
                  "instructed": [{k: a.get(k) for k in ("text", "intensity", "frame")} for a in acks],
                  "server": {k: stats.get(k) for k in ("stages", "counts")}}
        await client.hangup()
    if sink is not None:
        result["out"] = str(sink.close())
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except (AvatarError, OSError, ValueError, RuntimeError, TimeoutError) as exc:
        print(f"avatar client: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
