"""`avatar bench`: the measurements on synthetic signals with known answers, then a tiny run of the whole suite
against a real server process that checks the report's structure (never a time)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.analysis import av_lag, first_change, pacing, summary, transition, voice_onsets
from benchmarks.probe import TimedMicrophone

FPS = 25


def frames(seconds: float, start: float = 100.0) -> np.ndarray:
    return start + np.arange(int(seconds * FPS)) / FPS


def test_first_change_finds_the_frame_where_the_region_moves():
    rng = np.random.default_rng(0)
    times = frames(3.0)
    event = times[40] - 0.01  # an onset just before frame 40
    crops = 100 + rng.normal(0, 0.3, (len(times), 8, 8)).astype(np.float32)
    crops[45:55] += 20.0  # the mouth opens 5 frames (~200 ms) after the onset
    response = first_change(times, crops, event)
    assert response.frame_time == times[45]
    assert response.latency_ms == pytest.approx(1000 * (times[45] - event))
    still = 100 + rng.normal(0, 0.3, crops.shape).astype(np.float32)
    assert first_change(times, still, event).latency_ms is None  # noise alone is no response
    blip = still.copy()
    blip[44] += 20.0  # one noisy frame is not a response either
    assert first_change(times, blip, event).latency_ms is None


def test_transition_reports_visible_and_complete():
    times = frames(3.0)
    event = times[25]
    progress = np.clip((np.arange(len(times)) - 30) / 10, 0, 1)  # starts 5 frames after, done 10 frames later
    crops = (50 + 30 * progress[:, None, None] * np.ones((1, 6, 6))).astype(np.float32)
    trace = transition(times, crops, event, settle_s=(1.5, 2.2))
    assert trace.visible_ms == pytest.approx(1000 * (times[32] - event))  # first frame at >= 20 %
    assert trace.complete_ms == pytest.approx(1000 * (times[39] - event))  # first frame at >= 90 %
    assert trace.size == pytest.approx(30.0, rel=0.01)
    flat = transition(times, np.full_like(crops, 50.0), event, settle_s=(1.5, 2.2))
    assert flat.visible_ms is None and flat.complete_ms is None


def test_voice_onsets_and_av_lag():
    t = 100 + np.arange(0, 6, 0.02)
    rms = np.where(((t - 100) % 1.5) < 0.3, 0.2, 0.0005)  # loud 300 ms every 1.5 s
    onsets = voice_onsets(t, rms, [100.9, 102.4])
    assert onsets == [pytest.approx(101.5), pytest.approx(103.0)]
    # opens on a tail: the next rise counts
    assert voice_onsets(t, rms, [101.6], window_s=1.5) == [pytest.approx(103.0)]
    frame_t = frames(6.0)
    mouth = np.interp(frame_t - 0.08, t, rms)  # the mouth follows the voice 80 ms later
    lag = av_lag(t, rms, frame_t, mouth, 100.5, 105.5)
    assert lag["lag_ms"] == pytest.approx(80, abs=10) and lag["r"] > 0.9


def test_pacing_counts_missing_ticks_and_repeats():
    times = frames(5.0, start=0.0)
    pts = np.arange(len(times)) * 3600
    pts[60:] += 2 * 3600  # two ticks never arrived
    change = np.full(len(times), 5.0)
    change[[70, 71, 90]] = 0.0  # pixel-identical to the previous frame
    result = pacing(times, pts, change, skip_s=1.0)
    assert result["missing_ticks"] == 2 and result["repeated_frames"] == 3
    assert result["interval_ms"]["p50"] == pytest.approx(40.0) and result["intervals_over_60ms"] == 0
    assert summary([]) ["n"] == 0 and summary([1.0, None, 3.0])["p50"] == 2.0


def test_microphone_sound_time_includes_packetisation():
    mic = TimedMicrophone(np.zeros(48_000, np.float32))
    mic.sent_at = [10.0, 10.02, 10.04]
    # sample 1200 is in frame 1 (handed over at 10.02); a real microphone heard it 10 ms into that frame's capture
    assert mic.sound_time(1200 / 48_000) == pytest.approx(10.02 - 0.02 + 240 / 48_000)
    assert mic.sound_time(1.0) is None  # not sent yet


def test_bad_arguments_get_a_clear_error(capsys):
    from benchmarks.run import main

    assert main(["--onsets", "0"]) == 2
    assert "--onsets must be >= 1" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_suite_writes_a_complete_report(tmp_path):
    from benchmarks.latency import LatencyConfig
    from benchmarks.run import BenchConfig, run_bench
    from benchmarks.stages import StagesConfig
    from benchmarks.throughput import ThroughputConfig

    config = BenchConfig(quick=True, latency=LatencyConfig(onsets=2, lead_s=1.5, instruction_count=2,
                                                           instruction_period_s=1.5),
                         throughput=ThroughputConfig(max_sessions=1, measure_s=1.5, warmup_s=0.5),
                         stages=StagesConfig(chunks=3))
    report = run_bench(config, tmp_path)
    assert report["errors"] == {}
    assert {"machine", "server", "stages", "glass_to_glass", "av_offset", "pacing", "server_call", "instruction",
            "throughput", "targets"} <= set(report)
    g2g = report["glass_to_glass"]
    assert g2g["onsets_sent"] == 2 and len(g2g["per_onset"]) == 2
    assert set(g2g["latency_ms"]) == {"n", "mean", "p50", "p95", "max", "min"}
    assert g2g["time_to_first_frame_ms"]["from_offer"] > 0
    assert {"render", "sample", "latency"} <= set(report["server_call"]["stages"])
    assert report["pacing"]["frames"] > 25 and "missing_ticks" in report["pacing"]
    assert report["instruction"]["sent"] == 2 and len(report["instruction"]["per_instruction"]) == 2
    level = report["throughput"]["levels"][0]
    assert level["sessions"] == 1 and level["fps_per_session"]["n"] == 1 and level["server_rss_mb"] > 0
    assert report["stages"]["limiting_stage"] in report["stages"]["cpu_ms_per_session_second"]
    assert [t["goal"] for t in report["targets"]] == ["<= 250 ms", "<= 150 ms", "<= 200 ms", ">= 4"]
    assert json.loads((tmp_path / "bench_quick.json").read_text())["targets"] == report["targets"]
    for name in ("latency", "instruction", "throughput", "pacing", "mouth_onsets"):
        assert (tmp_path / f"bench_quick_{name}.png").stat().st_size > 1000
    assert "| Target |" in (tmp_path / "bench_quick.md").read_text()
