"""PNG plots of a benchmark report (matplotlib, Agg) and contact sheets of a face region around events."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TARGETS_MS = {"glass_to_glass_p95": 250, "server_p95": 150, "instruction": 200}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_plot(report: dict, path: Path) -> Path | None:
    g2g = report.get("glass_to_glass")
    if not g2g:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0, 0]
    for onset in g2g["per_onset"]:
        trace = onset["trace"]
        ax.plot(np.asarray(trace["t"]) * 1000, trace["change"], color="0.6", lw=0.8)
        if onset["latency_ms"] is not None:
            ax.axvline(onset["latency_ms"], color="tab:red", lw=0.4, alpha=0.5)
    ax.axvline(0, color="k", lw=1)
    ax.set(xlabel="ms after the acoustic onset (client clock)", ylabel="mouth change (grey levels)",
           title="Returned mouth region around every onset (red: detected start)")
    ax = axes[0, 1]
    values = [o["latency_ms"] for o in g2g["per_onset"] if o["latency_ms"] is not None]
    if values:
        ax.hist(values, bins=np.arange(0, max(values) + 40, 20), color="tab:blue")
        stats = g2g["latency_ms"]
        ax.axvline(stats["p50"], color="tab:green", label=f"p50 {stats['p50']:.0f} ms")
        ax.axvline(stats["p95"], color="tab:orange", label=f"p95 {stats['p95']:.0f} ms")
    ax.axvline(TARGETS_MS["glass_to_glass_p95"], color="k", ls="--", label="target p95 250 ms")
    ax.set(xlabel="glass-to-glass latency (ms)", ylabel="onsets",
           title=f"Onset -> mouth moves: {g2g['onsets_detected']}/{g2g['onsets_sent']} detected")
    ax.legend()
    ax = axes[1, 0]
    stages = (report.get("server_call") or {}).get("stages") or {}
    if stages:
        names = list(stages)
        x = np.arange(len(names))
        ax.bar(x - 0.2, [stages[n]["p50_ms"] for n in names], 0.4, label="p50")
        ax.bar(x + 0.2, [stages[n]["p95_ms"] for n in names], 0.4, label="p95")
        ax.set_xticks(x, names, rotation=20)
        ax.axhline(TARGETS_MS["server_p95"], color="k", ls="--", label="server p95 target (latency)")
        ax.legend()
    ax.set(ylabel="ms", title="Server per-stage timings during the call")
    ax = axes[1, 1]
    curve = (report.get("av_offset") or {}).get("xcorr_curve") or {}
    if curve.get("lags_ms"):
        ax.plot(curve["lags_ms"], curve["r"])
        best = report["av_offset"]["xcorr_lag_ms"]
        ax.axvline(best, color="tab:red", label=f"best lag {best:+.0f} ms")
        ax.axvspan(-125, 45, color="tab:green", alpha=0.1, label="ITU-R BT.1359 undetectable")
        ax.legend()
    ax.set(xlabel="mouth motion lag behind returned voice (ms)", ylabel="correlation r", title="A/V offset")
    return _save(fig, path)


def pacing_plot(report: dict, times: np.ndarray, path: Path) -> Path | None:
    if len(times) < 3:
        return None
    intervals = np.diff(times) * 1000
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(times[1:] - times[0], intervals, lw=0.6)
    axes[0].axhline(40, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="s into the call", ylabel="inter-frame interval (ms)", title="Frame arrivals")
    axes[1].hist(intervals, bins=np.arange(0, max(120, intervals.max() + 5), 2))
    pacing = report.get("pacing") or {}
    axes[1].set(xlabel="interval (ms)", ylabel="frames", yscale="log",
                title=f"{pacing.get('fps')} fps, {pacing.get('missing_ticks')} missing ticks, "
                      f"{pacing.get('repeated_frames')} repeated")
    return _save(fig, path)


def instruction_plot(report: dict, path: Path) -> Path | None:
    inst = report.get("instruction")
    if not inst:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = {text: f"C{i}" for i, text in enumerate(inst["instructions"])}
    for rec in inst["per_instruction"]:
        c = colours.get(rec["text"], "k")
        ax.plot(np.asarray(rec["progress_t"]) * 1000, rec["progress"], color=c, lw=0.8,
                label=rec["text"] if rec is next(r for r in inst["per_instruction"] if r["text"] == rec["text"])
                else None)
        if rec["visible_ms"] is not None:
            ax.plot(rec["visible_ms"], 0.2, "o", color=c)
        if rec["complete_ms"] is not None:
            ax.plot(rec["complete_ms"], 0.9, "s", color=c)
    ax.axvline(TARGETS_MS["instruction"], color="k", ls="--", label="target: visible by 200 ms")
    ax.set(xlabel="ms after sending instruct", ylabel="progress (0 before, 1 settled)", ylim=(-0.5, 1.5),
           title="Eye region after each instruction (o visible, s complete)")
    ax.legend()
    return _save(fig, path)


def throughput_plot(report: dict, path: Path) -> Path | None:
    levels = (report.get("throughput") or {}).get("levels") or []
    if not levels:
        return None
    n = [lv["sessions"] for lv in levels]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(n, [lv["fps_per_session"]["min"] for lv in levels], "o-", label="received, slowest session")
    axes[0].plot(n, [(lv.get("new_fps_per_session") or {}).get("min") for lv in levels], "s-",
                 label="new pictures, slowest session")
    axes[0].plot(n, [(lv.get("new_fps_per_session") or {}).get("mean") for lv in levels], "s--",
                 label="new pictures, mean")
    axes[0].axhline(25, color="k", ls="--", lw=0.8)
    axes[0].set(xlabel="concurrent sessions", ylabel="frames per second", title="Frame rate per session", ylim=(0, 27))
    axes[0].legend()
    axes[1].plot(n, [lv["cpu"]["server_cpu_pct"] for lv in levels], "o-", label="server")
    axes[1].plot(n, [lv["cpu"]["client_cpu_pct"] for lv in levels], "s-", label="client (this process)")
    axes[1].plot(n, [100 * (lv["cpu"]["other_processes_cores"] or 0) for lv in levels], "^-",
                 label="other processes (and kernel)")
    axes[1].set(xlabel="concurrent sessions", ylabel="% of one core", title="CPU")
    axes[1].legend()
    axes[2].plot(n, [lv["server_rss_mb"] for lv in levels], "o-")
    axes[2].set(xlabel="concurrent sessions", ylabel="MiB", title="Server resident memory")
    for ax in axes:
        ax.set_xticks(n)
    return _save(fig, path)


def region_sheet(times: np.ndarray, crops: np.ndarray, events: list[float], detections: list[float | None],
                path: Path, rows: int = 4, span_s: tuple[float, float] = (-0.12, 0.6),
                title: str = "Mouth in returned frames") -> Path | None:
    """Rows = onsets, columns = returned frames from span_s[0] to span_s[1] around it; red = detected start."""
    if not len(times) or not len(crops):
        return None
    chosen = [i for i, d in enumerate(detections) if d is not None][:rows] or list(range(min(rows, len(events))))
    late = [detections[i] - events[i] for i in chosen if detections[i] is not None]
    if late:  # show each detected start and a little after it
        span_s = (span_s[0], float(np.clip(max(late) + 0.2, span_s[1], 1.4)))
    columns = int(round((span_s[1] - span_s[0]) * 25)) + 1
    step = max(1, int(np.ceil(crops.shape[2] / 100)))  # tiles at most ~100 px wide
    crops = crops[:, ::step, ::step]
    h, w = crops.shape[1:3]
    sheet = np.full((len(chosen) * (h + 4), columns * (w + 4), 3), 255, np.uint8)
    for r, i in enumerate(chosen):
        start = int(np.searchsorted(times, events[i] + span_s[0]))
        for c in range(columns):
            j = start + c
            if j >= len(times):
                break
            tile = np.repeat(crops[j][..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
            y, x = r * (h + 4), c * (w + 4)
            if times[j] < events[i]:
                sheet[y:y + h + 4, x:x + w + 4] = (120, 120, 255)  # blue: before the onset
            if detections[i] is not None and abs(times[j] - detections[i]) < 1e-6:
                sheet[y:y + h + 4, x:x + w + 4] = (255, 0, 0)
            sheet[y + 2:y + 2 + h, x + 2:x + 2 + w] = tile
    fig, ax = plt.subplots(figsize=(sheet.shape[1] / 100, sheet.shape[0] / 100 + 0.4))
    ax.imshow(sheet)
    ax.set_axis_off()
    ax.set_title(f"{title}, {span_s[0] * 1000:+.0f}..{span_s[1] * 1000:+.0f} ms around each event, 40 ms apart "
                 "(blue frame: arrived before the event; red: detected start)", fontsize=9)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
