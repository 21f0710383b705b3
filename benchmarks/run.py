"""`avatar bench`: latency and throughput of the live pipeline, measured from the user's side.

    avatar bench [--quick] [--out benchmarks/results] [--checkpoint DIR] [--only latency ...]

Starts `avatar serve` as its own process, calls it over WebRTC from this process with the Python client, and
measures from the returned pixels and voice: glass-to-glass latency (syllable onset -> mouth moves), the
server's per-stage timings, time to first frame, instruction latency, A/V offset, frame pacing, and
throughput (1..N concurrent calls until 25 fps no longer holds, CPU and memory). Also times each stage of
one session's work in-process (what limits the number of sessions). Writes <out>/bench.json (bench_quick.json
with --quick), PNG plots beside it and a Markdown table (bench.md). The full suite takes 2-3 minutes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import profile
from benchmarks.latency import LatencyConfig, glass_to_glass, instruction_latency
from benchmarks.proc import load_average, machine
from benchmarks.stages import StagesConfig, stage_costs
from benchmarks.throughput import ThroughputConfig, throughput

PARTS = ("stages", "latency", "instruction", "throughput")
# not in the default suite: glass-to-glass over WHIP in and WHEP out; say/clear seen by a WHEP viewer
EXTRA_PARTS = ("whip", "speech")
RESULTS = Path(__file__).parent / "results"


@dataclass
class BenchConfig:
    quick: bool = False
    parts: tuple[str, ...] = PARTS
    checkpoint: Path | None = None
    image: Path | None = None
    avatar_config: Path | None = None  # TOML for the server (and the in-process stages), as `serve --config`
    profile: bool = False  # py-spy the server during the glass-to-glass call
    whip: str | None = None  # another server's WHIP and WHEP endpoints (None: our own server's)
    whep: str | None = None
    token: str | None = None
    speech_trials: int | None = None  # say/clear trials (None: SpeechConfig's, 2 with --quick)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    throughput: ThroughputConfig = field(default_factory=ThroughputConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)

    @classmethod
    def preset(cls, quick: bool, **overrides) -> BenchConfig:
        if quick:
            return cls(quick=True, latency=LatencyConfig(onsets=6, instruction_count=2),
                       throughput=ThroughputConfig(max_sessions=2, measure_s=4.0, warmup_s=1.5),
                       stages=StagesConfig(chunks=10), **overrides)
        return cls(**overrides)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatar bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs (about a minute): a smoke test, not figures")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, PNG and Markdown (default %(default)s)")
    p.add_argument("--checkpoint", type=Path, default=None, help="generator checkpoint folder (default: shipped)")
    p.add_argument("--image", type=Path, default=None, help="portrait (default: the astronaut)")
    p.add_argument("--config", type=Path, default=None, help="the server's TOML config (as `avatar serve --config`)")
    p.add_argument("--only", action="append", choices=PARTS + EXTRA_PARTS, help="run only these parts (repeatable)")
    p.add_argument("--whip", default=None, help="measure this WHIP endpoint (with --whep) instead of our server")
    p.add_argument("--whep", default=None, help="the WHEP endpoint that plays what --whip publishes (/latest ok)")
    p.add_argument("--token", default=None, help="Bearer token for --whip/--whep")
    p.add_argument("--onsets", type=int, default=None, help="syllable onsets in the glass-to-glass call")
    p.add_argument("--trials", type=int, default=None, help="speech: say/clear trials (default 6)")
    p.add_argument("--max-sessions", type=int, default=None, help="throughput: try up to this many calls")
    p.add_argument("--measure-s", type=float, default=None, help="throughput: seconds measured per level")
    p.add_argument("--profile", action="store_true",
                   help="sample the server with py-spy during the glass-to-glass call (pip install py-spy)")
    p.add_argument("--no-stop", action="store_true", help="throughput: try every level even after one fails")
    p.add_argument("--sessions", default=None, metavar="1,2,4,6",
                   help="instead of the suite: the capacity curve, these many callers at once per level "
                        "(sessions.json/.md/.png); with --workers 0,auto: in-process vs worker processes")
    p.add_argument("--workers", default="0", help="--sessions: server modes to compare, e.g. 0,auto,ray:2 "
                                                  "(0 = in-process, ray:N = N Ray actors on a local Ray instance; "
                                                  "default %(default)s)")
    p.add_argument("--admission", default="off", metavar="on,off",
                   help="--sessions: the server's admission by measured load, on (callers beyond what it measures "
                        "it holds are refused as busy) and/or off (only its slots; default %(default)s)")
    p.add_argument("--floor", default="off", metavar="off,rgb,yuv",
                   help="--sessions: also (or only) servers that run no model and no renderer, their calls showing a "
                        "loop of pre-rendered frames: rgb (RGB->YUV + VP8 + transport per frame), yuv (VP8 + "
                        "transport); with the stages' per-frame CPU beside (default %(default)s: the full pipeline)")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="--sessions: seconds each level runs before it is measured (default 2; the VP8 bitrate "
                        "climbs from 0.5 to 1.5 Mbps over the first ~15 s of a call)")
    p.add_argument("--sessions-per-worker", type=int, default=None,
                   help="--sessions: slots per worker (default: enough for the largest count)")
    p.add_argument("--soak", type=float, default=None, metavar="MINUTES",
                   help="instead of the suite: one call this long, memory, threads, latency and repeats sampled "
                        "every 10 s (soak.json, soak.png)")
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    config = BenchConfig.preset(args.quick, parts=tuple(args.only or PARTS), checkpoint=args.checkpoint,
                                image=args.image, avatar_config=args.config)
    config.stages.checkpoint, config.stages.image = args.checkpoint, args.image
    if args.config is not None:
        from realtime.config import load_config

        config.stages.avatar = load_config(args.config)
    if args.trials is not None:
        if args.trials < 1:
            raise ValueError(f"--trials must be >= 1, got {args.trials}")
        config.speech_trials = args.trials
    if args.onsets is not None:
        if args.onsets < 1:
            raise ValueError(f"--onsets must be >= 1, got {args.onsets}")
        config.latency.onsets = args.onsets
    if args.max_sessions is not None:
        if args.max_sessions < 1:
            raise ValueError(f"--max-sessions must be >= 1, got {args.max_sessions}")
        config.throughput.max_sessions = args.max_sessions
    if args.measure_s is not None:
        if args.measure_s <= 0:
            raise ValueError(f"--measure-s must be > 0, got {args.measure_s}")
        config.throughput.measure_s = args.measure_s
    config.throughput.stop_at_failure = not args.no_stop
    config.profile = args.profile
    if (args.whip is None) != (args.whep is None):
        raise ValueError("--whip and --whep go together")
    if args.whip:
        config.parts, config.whip, config.whep, config.token = ("whip",), args.whip, args.whep, args.token
    return config


def run_bench(config: BenchConfig, out: Path | None = None, command: str = "avatar bench") -> dict:
    """Runs the parts asked for; a failing part is reported in the JSON (`errors`) and the others still run."""
    started = time.monotonic()
    report: dict = {"suite": "avatar bench", "version": 1, "command": command, "quick": config.quick,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "machine": machine(), "errors": {}}
    artifacts: dict = {}
    if "stages" in config.parts:  # before the server starts: nothing else of ours is running
        _part(report, "stages", lambda: stage_costs(config.stages))
    live = [p for p in config.parts if p != "stages"]
    if config.whip:  # someone else's server: nothing of ours to start
        artifacts["whip"] = _part(report, "whip", lambda: _whip(config, config.whip, config.whep, None))
    elif live:
        _part(report, "server", lambda: _live_parts(report, artifacts, live, config))
    report["machine"]["load_average_end"] = load_average()
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["targets"] = targets(report)
    if out is not None:
        write(report, artifacts, out)
    return report


def _live_parts(report: dict, artifacts: dict, live: list[str], config: BenchConfig) -> dict:
    """The parts that need the server: one server process for all of them (a start failure is the `server` error)."""
    from benchmarks.server_process import ServerProcess

    max_sessions = config.throughput.max_sessions if "throughput" in live else 1
    with ServerProcess(max_sessions, config.checkpoint, config.image, config.avatar_config) as server:
        report["server"] = {"trained": server.trained, "startup_s": server.startup_s,
                            "checkpoint": str(config.checkpoint or "shipped"),
                            "command": " ".join(server.command()[1:])}
        portrait = _portrait(config.image)
        if "latency" in live:
            spy = _start_profile(report, server.pid, config) if config.profile else None
            artifacts["latency"] = _part(report, "latency",
                                         lambda: asyncio.run(glass_to_glass(server.ws_url, portrait, config.latency)))
            if spy is not None:
                _part(report, "profile", lambda: {"profile": {"during": "glass-to-glass call (1 session)",
                                                              **profile.finish(*spy)}})
                shutil.rmtree(spy[1].parent, ignore_errors=True)
        if "instruction" in live:
            artifacts["instruction"] = _part(report, "instruction", lambda: asyncio.run(
                instruction_latency(server.ws_url, portrait, config.latency)))
        if "throughput" in live:
            _part(report, "throughput", lambda: asyncio.run(throughput(server.ws_url, server.pid, config.throughput)))
        if "speech" in live:
            from benchmarks.speech_control import SpeechConfig, speech_control

            trials = config.speech_trials or (2 if config.quick else SpeechConfig.trials)
            _part(report, "speech", lambda: asyncio.run(speech_control(server.ws_url, portrait, SpeechConfig(trials))))
        if "whip" in live:
            http = server.ws_url.replace("ws://", "http://").removesuffix("/ws")
            artifacts["whip"] = _part(report, "whip", lambda: _whip(config, f"{http}/whip", f"{http}/whep/latest",
                                                                   portrait))
    return {}


def _whip(config: BenchConfig, whip: str, whep: str, portrait):
    from benchmarks.whip_latency import whip_glass_to_glass

    result, artifacts = asyncio.run(whip_glass_to_glass(whip, whep, config.latency, config.token, portrait))
    return {"whip": result}, artifacts


def _part(report: dict, name: str, fn):
    """Runs one part; its dict(s) go into the report; returns its in-memory artifacts (or None)."""
    try:
        result = fn()
    except Exception as exc:  # one broken part must not lose the others' figures
        logging.getLogger(__name__).exception("benchmark part %s failed", name)
        report["errors"][name] = f"{type(exc).__name__}: {exc}"
        return None
    result, artifacts = result if isinstance(result, tuple) else (result, None)
    report.update(result)
    return artifacts


def _start_profile(report: dict, pid: int, config: BenchConfig):
    """py-spy over the glass-to-glass call's speech; the raw stacks (large) stay in a temporary folder, the
    summary goes into the report."""
    lat = config.latency
    seconds = lat.lead_s + lat.onsets * (sum(lat.gap_s) / 2 + 0.3)
    path = Path(tempfile.mkdtemp(prefix="avatar-bench-")) / "profile.txt"
    try:
        return profile.start(pid, path, seconds), path
    except profile.ProfileError as exc:
        report["errors"]["profile"] = str(exc)
        return None


def _portrait(image: Path | None):
    from realtime.avatar import enrol

    return enrol(image)


def _target(name: str, goal: str, value, limit: float | None, higher_is_better: bool = False, note: str = "") -> dict:
    met = None
    margin = None
    if value is not None and limit is not None:
        met = value >= limit if higher_is_better else value <= limit
        margin = round(value - limit, 1)
    return {"target": name, "goal": goal, "measured": value, "met": met, "margin": margin, "note": note}


def targets(report: dict) -> list[dict]:
    g2g = (report.get("glass_to_glass") or {}).get("latency_ms") or {}
    server = (((report.get("server_call") or {}).get("stages") or {}).get("latency") or {})
    inst = (report.get("instruction") or {}).get("visible_ms") or {}
    tp = report.get("throughput") or {}
    tried = tp.get("tried_up_to")
    held = tp.get("max_sessions_no_frame_loss")
    tp_note = ""
    if tried is not None and held == tried and tried < 4:
        held, tp_note = None, f"only {tried} session(s) tried"
    detected = (report.get("glass_to_glass") or {}).get("onsets_detected")
    return [
        _target("glass-to-glass p95", "<= 250 ms", g2g.get("p95"), 250,
                note=f"{detected} onsets detected" if detected is not None else ""),
        _target("server-side p95 (audio arrival -> frame on air)", "<= 150 ms", server.get("p95_ms"), 150),
        _target("instruction visible (p95)", "<= 200 ms", inst.get("p95"), 200,
                note=f"p50 {inst.get('p50')} ms" if inst.get("p50") is not None else ""),
        _target("concurrent 512x512 sessions at 25 fps, no frame lost", ">= 4", held, 4, higher_is_better=True,
                note=tp_note),
    ]


def write(report: dict, artifacts: dict, out: Path) -> list[Path]:
    from benchmarks import plots

    out.mkdir(parents=True, exist_ok=True)
    stem = "bench_quick" if report["quick"] else "bench"
    written = [out / f"{stem}.json"]
    written[0].write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(markdown(report))
    written.append(out / f"{stem}.md")
    latency, instruction = artifacts.get("latency"), artifacts.get("instruction")
    candidates = [plots.latency_plot(report, out / f"{stem}_latency.png"),
                  plots.instruction_plot(report, out / f"{stem}_instruction.png"),
                  plots.throughput_plot(report, out / f"{stem}_throughput.png")]
    if latency is not None:
        candidates.append(plots.pacing_plot(report, latency.times, out / f"{stem}_pacing.png"))
        candidates.append(plots.region_sheet(latency.times, latency.crops["mouth"], latency.events,
                                            latency.detections, out / f"{stem}_mouth_onsets.png"))
    if instruction is not None:
        candidates.append(plots.region_sheet(instruction.times, instruction.crops["eyes"], instruction.events,
                                            instruction.detections, out / f"{stem}_eyes_instructions.png",
                                            span_s=(-0.12, 0.8), title="Eyes in returned frames"))
    return written + [p for p in candidates if p is not None]


def _fmt(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:g}{unit}" if isinstance(value, (int, float)) else str(value)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM; "
             f"load average {m.get('load_average')} at start, {m.get('load_average_end')} at end; "
             f"torch {m.get('torch')}. "
             f"Generator: {'trained' if (report.get('server') or {}).get('trained') else 'UNTRAINED'}.",
             f"Command: `{report['command']}` ({report['duration_s']} s).", "",
             "| Target | Goal | Measured | Met |", "|---|---|---|---|"]
    for t in report["targets"]:
        met = "not measured" if t["met"] is None else "yes" if t["met"] else f"no (by {abs(t['margin']):g})"
        lines.append(f"| {t['target']} | {t['goal']} | {_fmt(t['measured'])} {t['note']} | {met} |")
    g2g = report.get("glass_to_glass")
    if g2g:
        lat = g2g["latency_ms"]
        ttff = g2g["time_to_first_frame_ms"]
        lines += ["", "| Measure | p50 | p95 | max | n |", "|---|---|---|---|---|",
                  f"| glass-to-glass, onset -> mouth moves (ms) | {_fmt(lat['p50'])} | {_fmt(lat['p95'])} | "
                  f"{_fmt(lat['max'])} | {lat['n']}/{g2g['onsets_sent']} |"]
        voice = g2g["returned_voice_latency_ms"]
        lines.append(f"| onset -> returned voice (ms) | {_fmt(voice['p50'])} | {_fmt(voice['p95'])} | "
                     f"{_fmt(voice['max'])} | {voice['n']} |")
        av = report.get("av_offset") or {}
        off = av.get("onset_offset_ms") or {}
        lines.append(f"| A/V offset per onset, video - voice (ms) | {_fmt(off.get('p50'))} | {_fmt(off.get('p95'))} | "
                     f"{_fmt(off.get('max'))} | {off.get('n')} |")
        lines.append(f"| time to first frame from offer (ms) | {_fmt(ttff['from_offer'])} | | | 1 |")
        lines.append(f"| A/V cross-correlation | best lag {_fmt(av.get('xcorr_lag_ms'))} ms "
                     f"| r {_fmt(av.get('xcorr_r'))} | | |")
    whip = report.get("whip")
    if whip:
        lat, pace = whip["glass_to_glass"]["latency_ms"], whip["pacing"]
        lines += ["", f"WHIP {whip['endpoints']['whip']} -> WHEP {whip['endpoints']['whep']}: "
                  f"{whip['endpoints']['video_fps']} fps at {whip['endpoints']['video_size']}; glass-to-glass "
                  f"p50 {_fmt(lat['p50'])} / p95 {_fmt(lat['p95'])} / max {_fmt(lat['max'])} ms "
                  f"({lat['n']}/{whip['glass_to_glass']['onsets_sent']} onsets); "
                  f"{pace.get('repeated_frames')} repeated frames."]
    speech = report.get("speech_control")
    if speech:
        lines += ["", "| say / clear, seen by a WHEP viewer (ms) | p50 | p95 | max | n |", "|---|---|---|---|---|"]
        for key, label in (("say_mouth_opens_ms", "say -> mouth opens"), ("say_voice_heard_ms", "say -> voice heard"),
                           ("clear_mouth_closed_ms", "clear -> mouth closed"),
                           ("clear_voice_silent_ms", "clear -> voice silent")):
            v = speech[key]
            lines.append(f"| {label} | {_fmt(v['p50'])} | {_fmt(v['p95'])} | {_fmt(v['max'])} | {v['n']} |")
    stages = ((report.get("server_call") or {}).get("stages")) or {}
    if stages:
        lines += ["", "| Server stage (ms) | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages),
                  "| p50 | " + " | ".join(_fmt(s["p50_ms"]) for s in stages.values()) + " |",
                  "| p95 | " + " | ".join(_fmt(s["p95_ms"]) for s in stages.values()) + " |"]
    inst = report.get("instruction")
    if inst:
        lines += ["", f"Instruction ({' / '.join(inst['instructions'])}, {inst['sent']} sent): visible p50 "
                  f"{_fmt(inst['visible_ms']['p50'])} ms, p95 {_fmt(inst['visible_ms']['p95'])} ms "
                  f"({inst['visible_ms']['n']} seen); complete p50 {_fmt(inst['complete_ms']['p50'])} ms; "
                  f"ack p50 {_fmt(inst['ack_ms']['p50'])} ms."]
    pacing = report.get("pacing")
    if pacing and "interval_ms" in pacing:
        iv = pacing["interval_ms"]
        lines += ["", f"Pacing ({pacing['duration_s']} s): {pacing['fps']} fps received, interval p50 {iv['p50']} ms, "
                  f"p99 {iv['p99']} ms, max {iv['max']} ms, SD {iv['sd']} ms; {pacing['intervals_over_60ms']} "
                  f"intervals > 60 ms; {pacing['missing_ticks']} missing ticks; {pacing['repeated_frames']} repeated "
                  f"frames (pixels); server: {pacing.get('server_counts')}."]
    tp = report.get("throughput")
    if tp:
        lines += ["", "| Sessions | fps received (min / mean) | new pictures/s (min) | lost frames | server CPU % "
                  "| client CPU % | other procs (cores) "
                  "| server RSS MiB (per session) | latency p95 ms (max) | holds 25 fps |", "|---" * 10 + "|"]
        for lv in tp["levels"]:
            cpu = lv["cpu"]
            lines.append(f"| {lv['sessions']} | {_fmt(lv['fps_per_session']['min'])} / "
                         f"{_fmt(lv['fps_per_session']['mean'])} | {_fmt(lv['new_fps_per_session']['min'])} | "
                         f"{lv['lost_frames']} | {_fmt(cpu['server_cpu_pct'])} | "
                         f"{_fmt(cpu['client_cpu_pct'])} | {_fmt(cpu['other_processes_cores'])} | "
                         f"{_fmt(lv['server_rss_mb'])} ({_fmt(lv['server_rss_per_session_mb'])}) | "
                         f"{_fmt(lv['latency_p95_ms']['max'])} | {'yes' if lv['holds_25fps'] else 'no'} |")
    st = report.get("stages")
    if st:
        per = st["cpu_ms_per_session_second"]
        lines += ["", "CPU per session-second (in-process, one thread): " +
                  ", ".join(f"{k} {v:g} ms" for k, v in per.items()) +
                  f"; total {st['cpu_ms_per_session_second_total']} ms -> at most "
                  f"{st['sessions_per_core_upper_bound']} sessions per core; limiting stage: {st['limiting_stage']}."]
        wait = st.get("audio_wait")
        if wait:
            lines.append(f"Audio a frame waits for before it can be generated ({wait['chunk_frames']}-frame chunks, "
                         f"{wait['lookahead_frames']} frames lookahead): {wait['first_frame_of_chunk_ms']:g} ms for "
                         f"the first frame of a chunk, {wait['last_frame_of_chunk_ms']:g} ms for the last, "
                         f"{wait['mean_ms']:g} ms on average.")
    prof = report.get("profile")
    if prof:
        lines += ["", f"Server profile (py-spy, {prof['samples']} samples of running threads, {prof['during']}): "
                  "threads " + ", ".join(f"{t['function']} {t['pct']}%" for t in prof["threads"][:5]) +
                  "; self time " + ", ".join(f"{t['function']} {t['pct']}%" for t in prof["self"][:8]) + "."]
    if report.get("errors"):
        lines += ["", f"Errors: {report['errors']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command = "avatar bench " + " ".join(sys.argv[2:] if argv is None else argv)
    if args.soak is not None:
        return _soak(args, command.strip())
    if args.sessions is not None:
        return _sessions(args, command.strip())
    try:
        config = config_from_args(args)
        report = run_bench(config, args.out, command.strip())
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"avatar bench: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(report))
    print(f"written to {args.out}/")
    return 1 if report["errors"] else 0


def _sessions(args: argparse.Namespace, command: str) -> int:
    from benchmarks.floor import parse_floor
    from benchmarks.sessions import markdown, parse_admission, parse_counts, parse_modes, sessions_bench

    try:
        counts, modes = parse_counts(args.sessions), parse_modes(args.workers)
        admission, floors = parse_admission(args.admission), parse_floor(args.floor)
    except ValueError as exc:
        print(f"avatar bench: error: {exc}", file=sys.stderr)
        return 2
    report = sessions_bench(counts, modes, args.sessions_per_worker, args.measure_s or 9.5, args.out, command,
                            admission, floors, args.warmup_s, checkpoint=args.checkpoint, image=args.image,
                            avatar_config=args.config)
    print(markdown(report) + report.get("floor_split", ""))
    print(f"written to {args.out}/sessions.json, sessions.md, sessions.png")
    return 0


def _soak(args: argparse.Namespace, command: str) -> int:
    from benchmarks.soak import SoakConfig, markdown, soak

    if args.soak <= 0:
        print("avatar bench: error: --soak needs a positive number of minutes", file=sys.stderr)
        return 2
    report = soak(SoakConfig(minutes=args.soak, checkpoint=args.checkpoint), args.out, command)
    print(markdown(report))
    print(f"written to {args.out}/soak.json, soak.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
