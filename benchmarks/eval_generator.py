"""Quality of the motion generator against the teacher and on real human speech.

    python -m benchmarks.eval_generator [--checkpoint DIR] [--corpus data/corpus_heldout] [--items 60]

Held-out corpus (held-out sentences x held-out instruction paraphrases; built with
`avatar corpus --out data/corpus_heldout --items 200 --seed 1 --split heldout` if missing):
  - mouth error vs the animator (mean |generated - teacher| over the mouth axes) and jaw_open correlation
  - lip closure rate on /p b m/: a bilabial viseme run counts as closed if lips_close reaches 0.5 in it
  - instructed action units: precision / recall / F1 of the non-speech AUs that realtime.training.annotate.describe
    detects in the generated motion vs those it detects in the teacher's, per instruction segment (after a
    12-frame settling time; mid-item instruction changes are streamed with set_instruction); the same at the
    level of describe()'s programs
  - emotion recall: the instructed emotion program is among describe()'s programs of the generated motion
  - jitter (mean |second difference| per axis, generated vs teacher) and seam score (mean |velocity| at
    chunk borders / mean |velocity| inside chunks; 1.0 = no seam)
Real human speech (realtime.training.corpus.human_speech): the mouth opens with the voice (jaw_open mean in voiced vs
silent frames, correlation with log energy), closes in silence, and closes at the start of words that begin
with /p b m/ (KLettres words and letters; weak: silence before a word closes the lips anyway); and on
every /p b m/ of the transcript, located by aligning espeak-ng's rendering of the text (exact phoneme
timings) to the recording with dynamic time warping of log-mel features.
"Closed in silence" = jaw_open < 0.1 and lips_close >= 0.5
(the teacher rests the lips closed in silence).
Writes benchmarks/results/eval_generator.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from realtime.vocab import EMOTIONS, INDEX, MODEL_RATE, SAMPLES_PER_FRAME, SCALE, SPEECH_AXES, Viseme

RESULTS = Path(__file__).parent / "results"
CLOSED = 0.5  # lips_close level that counts as a closure
BILABIAL_ONSET = {"me", "my", "pet", "ball", "b", "p"}  # KLettres words/letters that begin with /p b m/


def _bilabial_class() -> int:
    return int(Viseme.BILABIAL)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def seam_score(values: np.ndarray, window: int) -> float:
    """Mean |velocity| across chunk borders over mean |velocity| inside chunks (normalised units)."""
    vel = np.abs(np.diff(values / SCALE, axis=0)).mean(1)  # vel[i] = frame i -> i+1
    border = np.zeros(len(vel), bool)
    border[window - 1::window] = True
    return float(vel[border].mean() / max(vel[~border].mean(), 1e-9))


def jitter(values: np.ndarray) -> float:
    return float(np.abs(np.diff(values / SCALE, n=2, axis=0)).mean())


def _speech_free_aus(motion: np.ndarray) -> set[str]:
    """Action units describe.py detects in a stretch of motion, leaving out those speech moves anyway."""
    from realtime.training.annotate.describe import AU_AXES, SPOKEN_AXES, detect_aus

    return {au for au in detect_aus(motion) if AU_AXES[au] not in SPOKEN_AXES}


def _programs(motion: np.ndarray) -> set[str]:
    from realtime.training.annotate.describe import describe

    return {name for name, _ in describe(motion).programs}


def stream_item(model, encoder, item, seed: int, intensity: float = 1.0, use_instruction: bool = True,
                sampler_config=None) -> np.ndarray:
    """Generate an item's motion through the streaming sampler, switching instruction where the item does."""
    from realtime.motion.sampler import StreamingSampler

    sampler = StreamingSampler(model, encoder, sampler_config, seed=seed)
    segments = item.segments or [(0, item.instruction, item.programs)]
    if not use_instruction:
        segments = [(0, "", [])]
    frames = []
    for k, (start, text, _) in enumerate(segments):
        stop = segments[k + 1][0] if k + 1 < len(segments) else item.frames
        # the sampler applies an instruction from its next chunk: give it when that chunk starts
        sampler.set_instruction(text or None, intensity)
        frames.append(sampler.push(item.audio[start * SAMPLES_PER_FRAME: stop * SAMPLES_PER_FRAME]))
    frames.append(sampler.flush())
    return np.concatenate(frames)[: item.frames]


def evaluate_corpus(model, encoder, corpus_path: Path, items: int, seed: int, bilabial: int | None,
                    intensity: float = 1.0, sampler_config=None) -> dict:
    from realtime.training.corpus.format import Corpus

    corpus = Corpus(corpus_path)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(corpus), size=min(items, len(corpus)), replace=False)
    mouth_idx = [INDEX[n] for n in SPEECH_AXES]
    mae, corr, closures, closures_teacher, seams, jit_gen, jit_teacher = [], [], [], [], [], [], []
    au = {"tp": 0, "fp": 0, "fn": 0}
    prog = {"tp": 0, "fp": 0, "fn": 0}
    emotion_hits, emotion_total = 0, 0
    per_item = []
    window = model.cfg.window
    settle = 12  # frames after an instruction starts before it is judged (onset, cross-fade)
    for i in picks:
        item = corpus[int(i)]
        gen = stream_item(model, encoder, item, seed, intensity, use_instruction=encoder is not None,
                          sampler_config=sampler_config)
        teacher = item.motion
        mae.append(float(np.abs(gen[:, mouth_idx] - teacher[:, mouth_idx]).mean()))
        j = INDEX["jaw_open"]
        if teacher[:, j].std() > 1e-3 and gen[:, j].std() > 1e-6:
            corr.append(float(np.corrcoef(gen[:, j], teacher[:, j])[0, 1]))
        if bilabial is not None:
            for a, b in _runs(item.visemes == bilabial):
                # the teacher closes the lips up to 80 ms before the acoustic /p b m/: look from 2 frames before
                lo, hi = max(0, a - 2), min(item.frames, b + 1)
                closures.append(float(gen[lo:hi, INDEX["lips_close"]].max() >= CLOSED))
                closures_teacher.append(float(teacher[lo:hi, INDEX["lips_close"]].max() >= CLOSED))
        seams.append(seam_score(gen, window))
        jit_gen.append(jitter(gen)), jit_teacher.append(jitter(teacher))
        entry = {"item": int(i), "instruction": item.instruction, "segments": len(item.segments),
                 "mouth_mae": mae[-1], "judged": []}
        if encoder is not None:
            segments = item.segments or [(0, item.instruction, item.programs)]
            for k, (start, text, programs) in enumerate(segments):
                stop = segments[k + 1][0] if k + 1 < len(segments) else item.frames
                if stop - (start + settle) < 25:
                    continue
                t_span, g_span = teacher[start + settle: stop], gen[start + settle: stop]
                claimed, shown = _speech_free_aus(t_span), _speech_free_aus(g_span)
                for counts, (c, s_) in ((au, (claimed, shown)), (prog, (_programs(t_span), _programs(g_span)))):
                    counts["tp"] += len(c & s_)
                    counts["fp"] += len(s_ - c)
                    counts["fn"] += len(c - s_)
                emotions = [n for n, _ in programs if n in EMOTIONS and n != "neutral"]
                if emotions:
                    emotion_total += 1
                    emotion_hits += int(emotions[0] in _programs(g_span))
                entry["judged"].append({"text": text, "claimed_aus": sorted(claimed), "shown_aus": sorted(shown)})
        per_item.append(entry)

    def prf(c: dict) -> dict:
        p = c["tp"] / max(c["tp"] + c["fp"], 1)
        r = c["tp"] / max(c["tp"] + c["fn"], 1)
        return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9), **c}

    return {
        "corpus": str(corpus_path), "items": len(picks), "intensity": intensity,
        "mouth_mae": float(np.mean(mae)), "jaw_open_r": float(np.mean(corr)) if corr else None,
        "bilabial_runs": len(closures),
        "bilabial_closure_rate": float(np.mean(closures)) if closures else None,
        "bilabial_closure_rate_teacher": float(np.mean(closures_teacher)) if closures_teacher else None,
        "instructed_aus": prf(au), "instructed_programs": prf(prog),
        "emotion_recall": emotion_hits / emotion_total if emotion_total else None, "emotion_items": emotion_total,
        "seam_score": float(np.mean(seams)),
        "seam_score_teacher": float(np.mean([seam_score(corpus[int(i)].motion, window) for i in picks])),
        "jitter_generated": float(np.mean(jit_gen)), "jitter_teacher": float(np.mean(jit_teacher)),
        "per_item": per_item,
    }


def _dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Monotonic alignment of feature sequences a (n, F) and b (m, F) by cosine distance: (k, 2) index pairs."""
    an = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)
    bn = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-8)
    cost = 1.0 - an @ bn.T
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row, prev = acc[i], acc[i - 1]
        diag_up = np.minimum(prev[:-1], prev[1:]) + cost[i - 1]  # from (i-1, j-1) or (i-1, j)
        for j in range(1, m + 1):  # the left neighbour makes the row sequential
            row[j] = min(diag_up[j - 1], row[j - 1] + cost[i - 1, j - 1])
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        i, j = (i - 1, j - 1) if step == 0 else ((i - 1, j) if step == 1 else (i, j - 1))
    return np.array(path[::-1])


def bilabial_times(audio16k: np.ndarray, text: str, model, espeak) -> list[tuple[float, float]]:
    """(start, end) seconds of every /p b m/ in a human recording of `text`: espeak-ng says the text with
    exact phoneme timings, and dynamic time warping of the two log-mel sequences carries them across."""
    from realtime.animate import viseme_of
    from realtime.media import resample
    from realtime.motion.features import log_mel

    speech = espeak(text, voice="en-us")
    synth = resample(speech.audio, speech.sample_rate, MODEL_RATE)
    fa = log_mel(audio16k, model.cfg.features).numpy()
    fb = log_mel(synth, model.cfg.features).numpy()
    path = _dtw_path(fb, fa)  # synthetic frame -> human frame
    to_human = np.zeros(len(fb))
    for i, j in path:
        to_human[i] = j  # the last match of each synthetic frame
    out = []
    for p in speech.phonemes:
        if viseme_of(p.symbol) is Viseme.BILABIAL:
            a = int(np.clip(p.start * 100, 0, len(fb) - 1))
            b = int(np.clip(p.end * 100, 0, len(fb) - 1))
            out.append((to_human[a] / 100, to_human[b] / 100))
    return out


def evaluate_human_speech(model, seed: int, sampler_config=None) -> dict:
    from realtime.media import load_audio
    from realtime.motion.sampler import generate
    from realtime.speech import Espeak
    from realtime.training.corpus.human_speech import recordings

    espeak = Espeak()
    espeak.setup()
    out, voiced_means, silent_means, rs, silent_closed = [], [], [], [], []
    onset_closed, onset_total = 0, 0
    aligned_closed: list[float] = []
    for rec in recordings():
        audio = load_audio(rec.path)
        silence = np.zeros(MODEL_RATE // 2, np.float32)  # 0.5 s each side
        audio = np.concatenate([silence, audio, silence])
        gen = generate(model, None, audio, None, seed=seed, config=sampler_config).values
        T = min(len(gen), len(audio) // SAMPLES_PER_FRAME)
        frames = audio[: T * SAMPLES_PER_FRAME].reshape(T, SAMPLES_PER_FRAME)
        energy_db = 10 * np.log10((frames ** 2).mean(1) + 1e-10)
        voiced = energy_db > energy_db.max() - 30
        near_voice = np.convolve(voiced.astype(float), np.ones(7), "same") > 0  # within 3 frames of voice
        jaw, lips = gen[:T, INDEX["jaw_open"]], gen[:T, INDEX["lips_close"]]
        silent = ~near_voice
        entry = {"file": rec.path.name, "source": rec.source, "text": rec.text, "frames": int(T),
                 "jaw_voiced": float(jaw[voiced].mean()) if voiced.any() else None,
                 "jaw_silent": float(jaw[silent].mean()) if silent.any() else None,
                 "lips_close_silent": float(lips[silent].mean()) if silent.any() else None}
        if voiced.any() and silent.any():
            voiced_means.append(entry["jaw_voiced"]), silent_means.append(entry["jaw_silent"])
            silent_closed.append(float(((jaw[silent] < 0.1) & (lips[silent] >= CLOSED)).mean()))
        if jaw.std() > 1e-6:
            entry["jaw_energy_r"] = float(np.corrcoef(jaw, np.maximum(energy_db, energy_db.max() - 40))[0, 1])
            rs.append(entry["jaw_energy_r"])
        if rec.source.startswith("klettres") and rec.text.lower() in BILABIAL_ONSET:
            onset = int(np.flatnonzero(voiced)[0])
            lc = gen[max(0, onset - 3): onset + 3, INDEX["lips_close"]]
            entry["onset_lips_close_max"] = float(lc.max())
            onset_total += 1
            onset_closed += int(lc.max() >= CLOSED)
        pad_s = 0.5
        closures = []
        for a, b in bilabial_times(audio[8000:-8000], rec.text, model, espeak):
            lo, hi = int((a + pad_s) * 25) - 2, int(np.ceil((b + pad_s) * 25)) + 1  # from 80 ms before
            closures.append(float(gen[max(lo, 0):hi, INDEX["lips_close"]].max() >= CLOSED))
        if closures:
            entry["aligned_bilabials_closed"] = closures
            aligned_closed += closures
        out.append(entry)
    return {
        "recordings": len(out),
        "jaw_open_voiced_mean": float(np.mean(voiced_means)) if voiced_means else None,
        "jaw_open_silent_mean": float(np.mean(silent_means)) if silent_means else None,
        "silent_frames_closed_fraction": float(np.mean(silent_closed)) if silent_closed else None,
        "jaw_energy_r": float(np.mean(rs)) if rs else None,
        "bilabial_onset_words": onset_total,
        "bilabial_onset_closure_rate": onset_closed / onset_total if onset_total else None,
        "aligned_bilabials": len(aligned_closed),
        "aligned_bilabial_closure_rate": float(np.mean(aligned_closed)) if aligned_closed else None,
        "per_recording": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="generator folder (default: the shipped checkpoint)")
    parser.add_argument("--corpus", default="data/corpus_heldout", help="held-out corpus (built if missing)")
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bilabial-class", type=int, default=None,
                        help="viseme id of /p b m/ (default: the vocabulary's)")
    parser.add_argument("--no-encoder", action="store_true", help="skip instructions (no InstructionEncoder)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: SamplerConfig's)")
    parser.add_argument("--sampler", nargs="*", default=[], metavar="KEY=VALUE",
                        help="SamplerConfig overrides, e.g. prime_chunks=0 silence_gate_db=0")
    parser.add_argument("--out", default=str(RESULTS / "eval_generator.json"))
    args = parser.parse_args(argv)
    import torch

    from realtime.motion.checkpoint import load_generator, read_meta
    from realtime.motion.sampler import SamplerConfig

    torch.set_num_threads(1)  # batch-1 inference: a second thread only adds contention on shared cores
    started = time.time()
    model = load_generator(args.checkpoint)
    encoder = None
    if not args.no_encoder:
        from realtime.instruct.encoder import InstructionEncoder

        encoder = InstructionEncoder()
        encoder.setup()
    corpus_path = Path(args.corpus)
    if not (corpus_path / "index.json").is_file():
        from realtime.training.corpus.build import BuildConfig, build_corpus

        build_corpus(corpus_path, 200, seed=1, config=BuildConfig(split="heldout"))
    overrides = {k: type(getattr(SamplerConfig(), k))(v) for k, v in (kv.split("=", 1) for kv in args.sampler)}
    if args.steps is not None:
        overrides["steps"] = args.steps
    sampler_config = SamplerConfig(**overrides)
    bilabial = args.bilabial_class if args.bilabial_class is not None else _bilabial_class()
    result = {"checkpoint": args.checkpoint or "shipped", "meta": read_meta(args.checkpoint), "seed": args.seed,
              "sampler": dataclasses.asdict(sampler_config),
              "heldout": evaluate_corpus(model, encoder, corpus_path, args.items, args.seed, bilabial,
                                         sampler_config=sampler_config),
              "human_speech": evaluate_human_speech(model, args.seed, sampler_config)}
    result["seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    h, s = result["heldout"], result["human_speech"]
    print(json.dumps({k: v for k, v in h.items() if k != "per_item"}, indent=1))
    print(json.dumps({k: v for k, v in s.items() if k != "per_recording"}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
