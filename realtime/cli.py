"""`avatar` command line: one sub-command per job; heavy modules are imported only by the job that needs them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _intensity(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"intensity must be between 0 and 1, got {value}")
    return value


def _render(args: argparse.Namespace) -> int:
    from realtime.config import AvatarConfig, load_config
    from realtime.render import RenderJob, render

    job = RenderJob(
        out=Path(args.out), text=args.text, audio=Path(args.audio) if args.audio else None,
        image=Path(args.image) if args.image else None, instruction=args.instruction,
        intensity=args.intensity, seed=args.seed, teacher=args.teacher, voice=args.voice,
        progress=not args.quiet, threads=args.threads,
        config=load_config(args.config) if args.config else AvatarConfig(),
    )
    result = render(job)
    print(result.summary())
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    """Sub-commands with their own argument parsers (`main(argv) -> int`)."""
    import importlib

    return int(importlib.import_module(module).main(argv) or 0)


DELEGATED = {
    "serve": ("realtime.server", "run the real-time WebRTC avatar server"),
    "train": ("realtime.training.generator.loop", "train the motion generator on a corpus"),
    "corpus": ("realtime.training.corpus.build", "build the synthetic instruction/speech/motion corpus"),
    "annotate": ("realtime.training.annotate", "annotate real videos: landmarks → motion → AUs → instruction text"),
    "chat-bridge": ("clients.chat_bridge", "drive the avatar from IRC/Twitch chat"),
    "bench": ("benchmarks.run", "run the latency/throughput benchmark suite"),
    "say": ("clients.avatar_client.say", "make a live session's avatar say a text (espeak-ng)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a talking-portrait clip to mp4")
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="text to speak (synthesised with espeak-ng)")
    source.add_argument("--audio", help="a speech recording (any rate, mono or stereo)")
    render.add_argument("--image", help="portrait image (default: the astronaut from scikit-image)")
    render.add_argument("--instruction", default=None, help='free text, e.g. "smile warmly"')
    render.add_argument("--intensity", type=_intensity, default=None, help="0..1 (default: from the wording)")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--voice", default="en-us", help="espeak-ng voice for --text")
    render.add_argument("--teacher", action="store_true",
                        help="animate --text with the procedural animator instead of the learned generator")
    render.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: [worker] threads, 1)")
    render.add_argument("--config", type=Path, default=None,
                        help="TOML file: its [sampler], [renderer] and [worker] sections apply")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.add_argument("-o", "--out", required=True, help="output .mp4")
    render.set_defaults(func=_render)

    for name, (module, help_text) in DELEGATED.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in DELEGATED:
        return _delegate(DELEGATED[argv[0]][0], argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # our errors carry a readable message
        print(f"avatar {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
