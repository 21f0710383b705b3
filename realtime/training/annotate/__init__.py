"""`avatar annotate VIDEO_OR_DIR [-o OUT]`: turn real talking-face footage into training data.

Writes a corpus in the same format as `avatar corpus` (audio 16 kHz, fitted motion, instruction text
from detected action units; visemes unknown = -1) plus `summary.json` describing every video.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from realtime.training.annotate.pipeline import (
    VISEME_UNKNOWN,
    AnnotateConfig,
    AnnotatedVideo,
    AnnotationError,
    Annotator,
)
from realtime.training.annotate.video import VideoError, decode_video, find_videos
from realtime.training.corpus.format import CorpusWriter

__all__ = ["VISEME_UNKNOWN", "AnnotateConfig", "AnnotatedVideo", "AnnotationError", "Annotator", "VideoError",
           "annotate_videos", "decode_video", "find_videos", "main"]


def annotate_videos(source: str | Path, out: str | Path, config: AnnotateConfig | None = None,
                    progress: bool = True) -> dict:
    """Annotate one video or every video under a folder into the corpus folder `out` (replaced atomically).
    Videos that cannot be annotated are listed under "failed" in the summary; if none succeeds, raises."""
    from tqdm import tqdm

    videos = find_videos(source)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    annotator = Annotator(config).setup()
    summary: dict = {"source": str(source), "corpus": str(out), "videos": [], "failed": []}
    with CorpusWriter(tmp) as writer:
        for path in tqdm(videos, desc="annotate", unit="video", disable=not progress):
            try:
                result = annotator(path)
            except VideoError as exc:
                summary["failed"].append({"path": str(path), "error": str(exc)})
                continue
            for item in result.corpus_items():
                writer.write(item)
            summary["videos"].append(result.summary())
    if not summary["videos"]:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AnnotationError("no video could be annotated: " + "; ".join(f["error"] for f in summary["failed"]))
    summary["items"] = sum(len(v["items"]) for v in summary["videos"])
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar annotate", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a video file or a folder of videos")
    parser.add_argument("-o", "--out", default="data/annotated", help="output corpus folder (replaced)")
    parser.add_argument("--max-item-seconds", type=float, default=AnnotateConfig.max_item_s)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = annotate_videos(args.source, args.out, AnnotateConfig(max_item_s=args.max_item_seconds),
                                  progress=not args.quiet)
    except VideoError as exc:
        print(f"avatar annotate: error: {exc}", file=sys.stderr)
        return 2
    for video in summary["videos"]:
        for item in video["items"]:
            changes = "".join(f"; from {seg['start_s']:.1f}s: {seg['instruction']}" for seg in item["segments"][1:])
            print(f"{video['path']} @{item['start_s']:.1f}s: {item['instruction']}{changes}")
    for failed in summary["failed"]:
        print(f"{failed['path']}: skipped: {failed['error']}", file=sys.stderr)
    print(f"{summary['items']} items from {len(summary['videos'])} videos -> {summary['corpus']}")
    return 0
