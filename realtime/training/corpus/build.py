"""`avatar corpus`: synthesise the instruction/speech/motion training corpus.

Per item: one sentence (or two with a pause) framed by silences of random length, spoken by a random
espeak-ng voice/variant/rate/pitch; the exact phoneme timings drive the procedural animator under an
instruction from the catalogue (sometimes none, sometimes changing mid-item); the audio alone is then
augmented (the motion stays the clean teacher). Items are built in worker processes, written in order,
so the result depends only on (items, seed, split).
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from realtime.media.audio import resample
from realtime.training.corpus.augment import AugmentConfig, Augmenter
from realtime.training.corpus.format import Corpus, CorpusItem, CorpusWriter
from realtime.training.corpus.sentences import Sentence, sentences_for
from realtime.vocab import EMOTIONS, MODEL_RATE, SAMPLES_PER_FRAME

# en-us weighted up: most users of the product will be heard through US-trained ears and models.
ACCENTS = ("en-us", "en-us", "en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-029", "en-gb-scotland",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")

INSTRUCTION_KINDS = {"emotion": 0.45, "motion": 0.35, "combination": 0.2}  # share of instructed items


class BuildError(RuntimeError):
    """The corpus cannot be built with these settings."""


@dataclass
class BuildConfig:
    split: str = "train"  # "train": train sentences x train paraphrases; "heldout": held-out x held-out
    p_two_sentences: float = 0.25
    lead_silence_s: tuple[float, float] = (0.05, 0.8)
    trail_silence_s: tuple[float, float] = (0.1, 0.8)
    p_long_silence: float = 0.12  # a long idle stretch before or after speech
    long_silence_s: tuple[float, float] = (1.5, 4.0)
    pause_s: tuple[float, float] = (0.2, 1.4)  # between two sentences
    rate: tuple[int, int] = (120, 230)  # espeak words per minute: speed perturbation at the source
    pitch: tuple[int, int] = (20, 80)
    p_variant: float = 0.85
    p_neutral: float = 0.2  # no instruction: plain talking
    p_change: float = 0.5  # instruction changes once inside the item (the generator learns to answer changes)
    augment: bool = True
    babble_sentences: int = 16


@dataclass
class _Tools:
    """What one worker process holds: set up once, reused for every item it builds."""

    espeak: Any
    animator: Any
    variants: list[str]
    accents: tuple[str, ...]
    sentences: list[Sentence]
    instructions: dict[str, list[list[Any]]]  # kind -> groups of texts that share the same programs
    augmenter: Augmenter
    babble: list[np.ndarray]
    config: BuildConfig
    seed: int


_TOOLS: _Tools | None = None  # one per worker process (a Pool initializer cannot return objects)


def setup_tools(config: BuildConfig, seed: int) -> _Tools:
    from realtime.animate import Animator, AnimatorConfig
    from realtime.speech.espeak import Espeak
    from realtime.training.catalogue import build_catalogue

    espeak = Espeak().setup()
    sentences = sentences_for(config.split)
    instructions = _group_instructions([ins for ins in build_catalogue(0) if ins.split == config.split])
    if not sentences or not instructions:
        raise BuildError(f"no sentences or instructions in split {config.split!r}")
    accents = tuple(a for a in ACCENTS if _speaks(espeak, a))
    if not accents:
        raise BuildError("espeak-ng speaks none of the English voices " + ", ".join(sorted(set(ACCENTS))))
    variants = [v for v in espeak.variants() if " " not in v]
    tools = _Tools(espeak=espeak, animator=Animator(AnimatorConfig()), variants=variants, accents=accents,
                   sentences=sentences, instructions=instructions, augmenter=Augmenter(AugmentConfig()),
                   babble=[], config=config, seed=seed)
    rng = np.random.default_rng([seed, 1 << 30])  # the babble bank is the same in every worker
    for _ in range(config.babble_sentences):
        text = sentences[int(rng.integers(len(sentences)))].text
        voice, variant, rate, pitch = _voice(tools, rng)
        tools.babble.append(_to_model_rate(espeak(text, voice=voice, variant=variant, rate=rate, pitch=pitch)))
    return tools


def _speaks(espeak: Any, voice: str) -> bool:
    from realtime.speech import SpeechError

    try:
        return len(espeak("Hello.", voice=voice).audio) > 0
    except SpeechError:
        return False


def _init_worker(config: BuildConfig, seed: int) -> None:
    global _TOOLS
    _TOOLS = setup_tools(config, seed)


def _build_in_worker(index: int) -> CorpusItem:
    assert _TOOLS is not None
    return build_item(_TOOLS, index)


def _voice(tools: _Tools, rng: np.random.Generator) -> tuple[str, str | None, int, int]:
    c = tools.config
    voice = tools.accents[int(rng.integers(len(tools.accents)))]
    variant = (tools.variants[int(rng.integers(len(tools.variants)))]
               if tools.variants and rng.random() < c.p_variant else None)
    return voice, variant, int(rng.integers(c.rate[0], c.rate[1] + 1)), int(rng.integers(c.pitch[0], c.pitch[1] + 1))


def _to_model_rate(speech: Any) -> np.ndarray:
    return resample(speech.audio, int(speech.sample_rate), MODEL_RATE)


def _join(parts: list[Any], silences: list[float]) -> Any:
    """One Speech from utterances separated by silences (len(silences) == len(parts) + 1), timings shifted."""
    rate = int(parts[0].sample_rate)
    audio, phonemes, offset = [], [], 0.0
    for k, part in enumerate(parts):
        gap = np.zeros(int(round(silences[k] * rate)), np.float32)
        audio.append(gap)
        offset += len(gap) / rate
        phonemes += [dataclasses.replace(p, start=p.start + offset, end=p.end + offset) for p in part.phonemes]
        audio.append(np.asarray(part.audio, np.float32))
        offset += len(part.audio) / rate
    audio.append(np.zeros(int(round(silences[-1] * rate)), np.float32))
    audio = np.concatenate(audio)
    return dataclasses.replace(parts[0], text=" ".join(p.text for p in parts), audio=audio,
                               phonemes=_fill_pauses(phonemes, len(audio) / rate))


def _fill_pauses(phonemes: list[Any], duration: float) -> list[Any]:
    """Silences become pause phonemes (as espeak marks its own), adjacent pauses merge into one."""
    from realtime.speech import PAUSE, Phoneme

    out: list[Any] = []
    t = 0.0
    for p in phonemes + [Phoneme(PAUSE, duration, duration)]:
        if p.start > t + 1e-6:
            out.append(Phoneme(PAUSE, t, p.start))
        if p.end > p.start:
            out.append(p)
        t = max(t, p.end)
    merged: list[Any] = []
    for p in out:
        if merged and merged[-1].symbol == PAUSE and p.symbol == PAUSE:
            merged[-1] = dataclasses.replace(merged[-1], end=p.end)
        else:
            merged.append(p)
    return merged


def _group_instructions(instructions: list[Any]) -> dict[str, list[list[Any]]]:
    """Group texts by their programs, and groups by kind, so that sampling is balanced over programs and
    intensities rather than over texts (emotions have many more paraphrases than head motions)."""
    groups: dict[tuple, list[Any]] = {}
    for ins in instructions:
        groups.setdefault(tuple(ins.programs), []).append(ins)
    kinds: dict[str, list[list[Any]]] = {}
    for programs, members in sorted(groups.items()):
        kind = "combination" if len(programs) > 1 else ("emotion" if programs and programs[0][0] in EMOTIONS
                                                        else "motion")
        kinds.setdefault(kind, []).append(members)
    return kinds


def _instruction(tools: _Tools, rng: np.random.Generator) -> tuple[str, list[tuple[str, float]]]:
    kinds = [k for k in INSTRUCTION_KINDS if k in tools.instructions]
    weights = np.array([INSTRUCTION_KINDS[k] for k in kinds])
    groups = tools.instructions[kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]]
    members = groups[int(rng.integers(len(groups)))]
    ins = members[int(rng.integers(len(members)))]
    return ins.text, [(str(n), float(i)) for n, i in ins.programs]


def build_item(tools: _Tools, index: int) -> CorpusItem:
    """Item `index` of the corpus for `tools.seed`: depends only on (seed, split, index)."""
    from realtime.animate import viseme_labels

    c = tools.config
    rng = np.random.default_rng([tools.seed, index, 0 if c.split == "train" else 1])
    picked = [tools.sentences[int(rng.integers(len(tools.sentences)))]
              for _ in range(2 if rng.random() < c.p_two_sentences else 1)]
    voice, variant, rate, pitch = _voice(tools, rng)
    parts = [tools.espeak(s.text, voice=voice, variant=variant, rate=rate, pitch=pitch) for s in picked]
    lead, trail = float(rng.uniform(*c.lead_silence_s)), float(rng.uniform(*c.trail_silence_s))
    if rng.random() < c.p_long_silence:
        if rng.random() < 0.5:
            lead = float(rng.uniform(*c.long_silence_s))
        else:
            trail = float(rng.uniform(*c.long_silence_s))
    silences = [lead] + [float(rng.uniform(*c.pause_s)) for _ in parts[1:]] + [trail]
    speech = _join(parts, silences)

    audio = _to_model_rate(speech)
    n_frames = len(audio) // SAMPLES_PER_FRAME
    audio = audio[: n_frames * SAMPLES_PER_FRAME]

    if rng.random() < c.p_neutral:
        text, programs = "", []
    else:
        text, programs = _instruction(tools, rng)
    segments: list[tuple[int, str, list[tuple[str, float]]]] = []
    motion_seed = int(rng.integers(2**31))
    if rng.random() < c.p_change and n_frames >= 50:
        text2, programs2 = _instruction(tools, rng) if text == "" or rng.random() < 0.8 else ("", [])
        switch = int(rng.integers(n_frames // 4, 3 * n_frames // 4))
        segments = [(0, text, programs), (switch, text2, programs2)]
        motion = tools.animator.animate_segments(speech, n_frames, [(0, programs), (switch, programs2)], motion_seed)
    else:
        motion = tools.animator(speech, n_frames, programs=programs, seed=motion_seed)
    motion = np.asarray(getattr(motion, "values", motion), np.float32)
    visemes = np.asarray(viseme_labels(speech.phonemes, n_frames), np.int8)

    augmentation: dict[str, Any] = {}
    if c.augment:
        audio, augmentation = tools.augmenter(audio, rng, tools.babble)
    return CorpusItem(
        audio=audio, motion=motion, visemes=visemes, instruction=text, programs=programs, segments=segments,
        meta={"index": index, "split": c.split, "sentences": [s.id for s in picked], "text": speech.text,
              "voice": voice, "variant": variant, "rate": rate, "pitch": pitch,
              "silences_s": [round(s, 3) for s in silences], "augmentation": augmentation},
    )


def build_corpus(out: str | Path, n_items: int, seed: int = 0, workers: int = 2,
                 config: BuildConfig | None = None, progress: bool = True) -> Corpus:
    """Build `n_items` into `out` atomically (written to `out.tmp`, then renamed over `out`)."""
    config = config or BuildConfig()
    if n_items < 1:
        raise BuildError(f"need at least one item, got {n_items}")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    bar = tqdm(total=n_items, desc=f"corpus {out.name}", unit="item", disable=not progress)
    with CorpusWriter(tmp) as writer:
        if workers <= 1:
            tools = setup_tools(config, seed)
            for i in range(n_items):
                writer.write(build_item(tools, i))
                bar.update()
        else:
            # spawn, not fork: a forked child inherits other threads' locks (a server's, torch's, OpenCV's) held
            # at the fork and can hang on them forever; the workers build their own tools anyway
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config, seed)) as pool:
                for item in pool.imap(_build_in_worker, range(n_items), chunksize=4):
                    writer.write(item)
                    bar.update()
    bar.close()
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return Corpus(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/corpus", help="corpus folder (replaced atomically)")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("train", "heldout"), default="train",
                        help="heldout: held-out sentences x held-out instruction paraphrases (evaluation)")
    parser.add_argument("--workers", type=int, default=max(1, min(2, multiprocessing.cpu_count())))
    parser.add_argument("--no-augment", action="store_true", help="keep the clean synthetic audio")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        corpus = build_corpus(args.out, args.items, args.seed, args.workers,
                              BuildConfig(split=args.split, augment=not args.no_augment), progress=not args.quiet)
    except BuildError as exc:
        print(f"avatar corpus: error: {exc}")
        return 2
    print(f"{len(corpus)} items, {corpus.hours * 60:.1f} min of audio, {len(corpus.instructions)} instruction "
          f"texts -> {corpus.path} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
