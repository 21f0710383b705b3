"""Contact sheets: a grid of frames with a label under each, for eyeballing renders and for docs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def contact_sheet(frames, labels: Sequence[str] | None = None, cols: int = 4, scale: float = 1.0,
                  label_height: int = 16) -> Image.Image:
    """(N, H, W, 3) uint8 frames (array or tensor) -> one PIL image, `cols` frames per row."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3), got {frames.shape}")
    labels = list(labels) if labels is not None else [str(i) for i in range(len(frames))]
    if len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels for {len(frames)} frames")
    n, h, w = frames.shape[:3]
    tw, th = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tw, rows * (th + label_height)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        tile = Image.fromarray(np.ascontiguousarray(frame.astype(np.uint8)))
        if (tw, th) != (w, h):
            tile = tile.resize((tw, th), Image.LANCZOS)
        x, y = (i % cols) * tw, (i // cols) * (th + label_height)
        sheet.paste(tile, (x, y))
        draw.text((x + 3, y + th + 2), label, fill=(0, 0, 0))
    return sheet
