"""Judging rendered clips from their per-frame pixel measures (`benchmarks.pixels`): lip sync against the
speech, and whether an instruction was followed against the uninstructed render of the same speech.

Lip sync, per clip (mouth opening in IOD; definitions of ../shared/NOTES.md):
- envelope r: correlation of the mouth opening with the speech envelope in dB (each 40 ms frame, floor 50 dB
  under the clip's peak) at the best lag within +-4 frames (lag > 0: the mouth follows the sound late);
- /p b m/ closed: the opening reaches "closed" (max(0.05, 0.3 x the clip's 75th-percentile opening)) between
  2 frames before and 1 frame after each forced-aligned bilabial;
- silent closed: the share of silent frames (2+ frames away from any voiced frame of the CLEAN audio, so
  noise does not count as speech; the clip's tail after the last word included) that are closed;
- cold start (`cold_start`): a clip's first 0.8 s of speech said twice with a pause between
  (`heldout_speech.cold_start_clip`): the mean opening above rest (the 5th percentile) over the first saying,
  over the same for the second; 1 = the stream's first syllables open the mouth as later ones do.
"""
from __future__ import annotations

import numpy as np

from benchmarks.heldout_wordings import Rule
from benchmarks.mouth import closed_level
from benchmarks.pixels import MEASURES, column

MAX_LAG = 4
SILENCE_MARGIN = 2  # frames either side of voice that are not judged as silence (anticipation, release)


def envelope_db(db: np.ndarray) -> np.ndarray:
    return np.maximum(db, db.max() - 50)


def best_lag_r(opening: np.ndarray, env: np.ndarray) -> tuple[float, int]:
    best = (-1.0, 0)
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        a = opening[max(lag, 0): len(opening) + min(lag, 0)]
        b = env[max(-lag, 0): len(env) - max(lag, 0)]
        if len(a) > 5 and a.std() > 1e-9 and b.std() > 1e-9:
            r = float(np.corrcoef(a, b)[0, 1])
            if r > best[0]:
                best = (r, lag)
    return best


def cold_start(opening: np.ndarray, repeat: int, length: int) -> float:
    rest = float(np.percentile(opening, 5))
    first = np.clip(opening[:length] - rest, 0, None).mean()
    second = np.clip(opening[repeat:repeat + length] - rest, 0, None).mean()
    return float(first / max(second, 1e-6))


def syllable_peaks(env: np.ndarray, min_gap: int = 4, prominence_db: float = 6.0) -> list[int]:
    """Frames of the envelope's local maxima that rise `prominence_db` over the dip before them."""
    smooth = np.convolve(env, np.ones(3) / 3, "same")
    peaks, last = [], -min_gap
    dip = smooth[0]
    for i in range(1, len(smooth) - 1):
        dip = min(dip, smooth[i])
        if smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1] and smooth[i] - dip >= prominence_db \
                and smooth[i] > smooth.max() - 25:
            if i - last >= min_gap:
                peaks.append(i)
                last, dip = i, smooth[i]
    return peaks


def lipsync(opening: np.ndarray, db_clean: np.ndarray, db_heard: np.ndarray, voiced: np.ndarray,
            bilabials: list[tuple[float, float]], fps: int = 25) -> dict:
    n = min(len(opening), len(db_clean), len(voiced))
    opening, db_clean, db_heard, voiced = opening[:n], db_clean[:n], db_heard[:n], voiced[:n]
    closed = closed_level(opening)
    r, lag = best_lag_r(opening, envelope_db(db_heard))
    near = np.convolve(voiced.astype(float), np.ones(2 * SILENCE_MARGIN + 1), "same") > 0
    silent = ~near
    closures = []
    for a, b in bilabials:
        lo, hi = max(0, int(a * fps) - 2), min(n, int(np.ceil(b * fps)) + 1)
        if hi > lo:
            closures.append(bool(opening[lo:hi].min() <= closed))
    return {"frames": int(n), "closed_level": closed, "r": r, "lag": lag,
            "bilabials": len(closures), "bilabials_closed": int(sum(closures)),
            "silent_frames": int(silent.sum()), "silent_closed": int((opening[silent] <= closed).sum()),
            "syllables": len(syllable_peaks(envelope_db(db_clean)))}


WINK_SHUT, WINK_OPEN, WINK_RUN = 0.75, 0.9, 2
SHUT_EYES = 0.8  # smile_eyes: eyes whose pixel openness falls under this share of the uninstructed are shut


def _openness(table: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Median pixel openness of each eye (open_l, open_r) over the uninstructed clip's."""
    return np.array([np.median(column(table, k)) / max(np.median(column(base, k)), 1e-9) for k in ("open_l", "open_r")])


def wink_frames(table: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Frames where one eye's pixel openness is under WINK_SHUT of its uninstructed median while the other's stays
    over WINK_OPEN of its own, in runs of WINK_RUN frames or more (a one-frame slip of dlib's corners is no wink)."""
    left = column(table, "open_l") / max(np.median(column(base, "open_l")), 1e-9)
    right = column(table, "open_r") / max(np.median(column(base, "open_r")), 1e-9)
    one = ((left < WINK_SHUT) & (right > WINK_OPEN)) | ((right < WINK_SHUT) & (left > WINK_OPEN))
    out = np.zeros_like(one)
    start = None
    for i, v in enumerate(np.r_[one, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= WINK_RUN:
                out[start:i] = True
            start = None
    return out


def _energy(x: np.ndarray) -> float:
    return float(np.abs(np.diff(x)).mean()) if len(x) > 1 else 0.0


def rule_value(rule: Rule, table: np.ndarray, base: np.ndarray) -> float:
    """The signed change a rule reads (instructed vs uninstructed clip), in the rule's own units."""
    if rule.measure.endswith("_range"):  # how far a gesture swings: the 5-95 % range, over the uninstructed one's
        name = rule.measure[: -len("_range")]
        spread = [float(np.subtract(*np.percentile(column(t, name), [95, 5]))) for t in (table, base)]
        return spread[0] / max(spread[1], 1e-6)
    if rule.measure.endswith("_energy"):
        name = rule.measure[: -len("_energy")]
        return _energy(column(table, name)) / max(_energy(column(base, name)), 1e-6)
    if rule.measure == "blinks":  # share of frames with an eye below half its open median
        def shut(t):
            eyes = np.minimum(column(t, "eye_l"), column(t, "eye_r"))
            return float((eyes < 0.5 * np.median(column(base, "eye_open"))).mean())
        return shut(table) - shut(base)
    if rule.measure == "wink":  # share of frames in a wink (`wink_frames`), over the uninstructed clip's
        return float(wink_frames(table, base).mean() - wink_frames(base, base).mean())
    if rule.measure == "smile_eyes":  # eyes narrowed (dlib's eye_open falls) with the irises still showing
        narrowed = float(np.median(column(table, "eye_open")) - np.median(column(base, "eye_open")))
        return narrowed if _openness(table, base).min() >= SHUT_EYES else 0.0
    assert rule.measure in MEASURES, rule.measure
    return float(np.median(column(table, rule.measure)) - np.median(column(base, rule.measure)))


def followed(rules: tuple[Rule, ...], table: np.ndarray, base: np.ndarray) -> tuple[bool, list[float]]:
    values = [rule_value(r, table, base) for r in rules]
    ok = all((v >= r.threshold) if r.measure.endswith(("_energy", "_range")) else (v * r.sign >= r.threshold)
             for r, v in zip(rules, values))
    return ok, values
