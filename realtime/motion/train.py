"""Train the motion generator on a corpus (`avatar train --corpus DIR --out DIR [--config tiny|small]`).

A batch is a few audio segments; the audio encoder runs once per segment (with its full left receptive
field, as in streaming) and several (prefix | window) denoising examples are cut from each segment. The
prefix is the ground truth plus a little noise, so the model tolerates its own earlier output at sampling
time. Losses: x0 diffusion loss + velocity loss (including across the prefix/window border, against seams)
+ viseme cross-entropy on the audio encoder. Instructions are dropped to the learned null instruction for
classifier-free guidance.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from realtime.motion.checkpoint import CONFIG, WEIGHTS, save_generator
from realtime.motion.diffusion import add_noise
from realtime.motion.features import FEATURES_PER_MOTION_FRAME, HOP, WINDOW, FeatureConfig, LogMel, corpus_stats
from realtime.motion.model import GeneratorConfig, MotionGenerator
from realtime.motion.space import SCALE

SAMPLES_PER_FRAME = 640
STATE = "train_state.pt"

MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(audio_dim=32, audio_lookahead_layers=2, audio_dilations=(1, 2), d_model=32, n_layers=2,
                 n_heads=2, prefix=8, window=4),
    "small": dict(),  # GeneratorConfig defaults
}

TextEmbedder = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


class TrainError(RuntimeError):
    """Training cannot start (bad corpus, bad config, nothing to resume)."""


@dataclass
class TrainConfig:
    model: str = "small"  # preset name in MODEL_PRESETS
    steps: int = 6000
    segments: int = 12  # audio segments per batch
    windows_per_segment: int = 6  # denoising examples cut from each segment
    segment_frames: int = 40  # frames per segment where windows are placed (prefix included)
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    cfg_dropout: float = 0.15  # instruction -> null, for classifier-free guidance
    prefix_noise: float = 0.06  # std of the noise on the ground-truth prefix (normalised units)
    # Teach recovery and seamless continuation: shift the prefix by a random offset and let the target
    # start from it and return to the truth over a few frames (what a stream needs when its own past is off).
    # Offsets as large as a stream's own drift (a jaw left 0.2 open in silence): with 2-frame windows the model
    # must learn to pull back to what the audio says, or it follows its own prefix and drifts.
    p_prefix_offset: float = 0.5
    prefix_offset: float = 0.15  # std of the offset (normalised units)
    offset_return_frames: int = 4  # the target eases back to the truth over this many frames (zero slope at first)
    p_stream_start: float = 0.15  # segments that begin exactly at a stream start (no prefix at all)
    # Segments of items whose instruction changes are placed around the change, with one window starting
    # just after it: the model must answer a new instruction at once, not follow its own prefix.
    p_switch: float = 0.5
    velocity_weight: float = 2.0
    viseme_weight: float = 0.3
    gain_db: tuple[float, float] = (-12.0, 6.0)  # random input gain (mic levels vary)
    freq_masks: int = 2  # SpecAugment: masked mel bands per segment (against memorising voices)
    freq_mask_bins: int = 10
    time_masks: int = 2  # masked stretches of feature frames per segment
    time_mask_frames: int = 5
    heldout_fraction: float = 0.03  # items kept out for the validation loss
    log_every: int = 50
    checkpoint_every: int = 500
    threads: int = 2
    seed: int = 0
    stats_items: int = 300  # items used for the feature normalisation statistics
    model_overrides: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Data


def instruction_at(entry: dict, frame: int) -> str:
    text = entry["instruction"]
    for start, seg_text, _ in entry.get("segments", []):
        if start <= frame:
            text = seg_text
    return text


def minilm_embedder() -> TextEmbedder:
    """Token states of every instruction text from the project's InstructionEncoder (offline MiniLM)."""
    from realtime.instruct.encoder import InstructionEncoder

    encoder = InstructionEncoder()
    encoder.setup()

    def embed(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embs = [e for i in range(0, len(texts), 64) for e in encoder.encode_batch(texts[i:i + 64])]
        length = max(len(e.mask) for e in embs)
        tokens = torch.zeros(len(texts), length, embs[0].tokens.shape[-1])
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(embs):
            tokens[i, : len(e.mask)] = torch.as_tensor(e.tokens, dtype=torch.float32)
            mask[i, : len(e.mask)] = torch.as_tensor(e.mask, dtype=torch.bool)
        return tokens, mask

    return embed


class WindowSampler:
    """Draws training batches from a corpus: segments of audio features + windows of motion."""

    def __init__(self, corpus, items: list[int], model_cfg: GeneratorConfig, past: int, future: int,
                 config: TrainConfig, text_index: dict[str, int], rng: np.random.Generator):
        self.corpus, self.cfg, self.tc = corpus, model_cfg, config
        self.past, self.future = past, future
        self.text_index, self.rng = text_index, rng
        self.extractor = LogMel(model_cfg.features)
        self.scale = torch.from_numpy(SCALE)
        P, W, L = model_cfg.prefix, model_cfg.window, config.segment_frames
        # A segment start s0 may lie up to P frames before the item (missing prefix), windows must fit inside.
        frames = corpus.frames[items]
        usable = frames - L + P + 1
        self.items = np.asarray(items)[usable > 0]
        if len(self.items) == 0:
            raise TrainError(f"no corpus item is long enough for a {L}-frame segment")
        self.weights = (usable[usable > 0] / usable[usable > 0].sum()).astype(np.float64)

    def _audio(self, entry: dict, i: int, first: int, last: int) -> np.ndarray:
        """Samples for feature frames of motion frames [first, last) with causal framing; zeros outside."""
        a0 = first * SAMPLES_PER_FRAME - (WINDOW - HOP)
        a1 = last * SAMPLES_PER_FRAME
        out = np.zeros(a1 - a0, np.float32)
        lo, hi = max(a0, 0), min(a1, entry["samples"])
        if hi > lo:
            base = entry["audio_offset"]
            out[lo - a0: hi - a0] = self.corpus._map("audio")[base + lo: base + hi].astype(np.float32) / 32767.0
        return out

    def _spec_augment(self, feats: torch.Tensor) -> None:
        """Zero (= the corpus mean) random mel bands and short stretches of frames, in place."""
        n, frames, bins = feats.shape
        for b in range(n):
            for _ in range(self.tc.freq_masks):
                w = int(self.rng.integers(0, self.tc.freq_mask_bins + 1))
                f0 = int(self.rng.integers(0, bins - w + 1))
                feats[b, :, f0:f0 + w] = 0.0
            for _ in range(self.tc.time_masks):
                w = int(self.rng.integers(0, self.tc.time_mask_frames + 1))
                t0 = int(self.rng.integers(0, frames - w + 1))
                feats[b, t0:t0 + w] = 0.0

    def batch(self) -> dict[str, torch.Tensor]:
        P, W, L, K = self.cfg.prefix, self.cfg.window, self.tc.segment_frames, self.tc.windows_per_segment
        S = self.tc.segments
        audio, motion, motion_valid, visemes, texts, win_start = [], [], [], [], [], []
        for i in self.rng.choice(self.items, size=S, p=self.weights):
            e = self.corpus.entries[i]
            T = e["frames"]
            at_start = self.rng.random() < self.tc.p_stream_start
            switch = e["segments"][1][0] if len(e.get("segments") or []) > 1 else None
            at_switch = switch is not None and not at_start and self.rng.random() < self.tc.p_switch
            if at_start:
                s0 = -P
            elif at_switch:  # the change lies inside the segment, after the prefix of its first window
                s0 = int(np.clip(switch - P - self.rng.integers(0, L - P - W + 1), -P, T - L))
            else:
                s0 = int(self.rng.integers(-P, T - L + 1))
            gain = 10 ** (self.rng.uniform(*self.tc.gain_db) / 20)
            audio.append(self._audio(e, i, s0 - self.past, s0 + L + self.future) * gain)
            f0, f1 = max(s0, 0), s0 + L
            m = np.zeros((L, self.cfg.motion_dim), np.float32)
            v = np.full(L, -100, np.int64)  # ignore_index
            base = e["frame_offset"]
            m[f0 - s0:] = self.corpus._map("motion")[base + f0: base + f1]
            v[f0 - s0:] = self.corpus._map("visemes")[base + f0: base + f1]
            valid = np.zeros(L, bool)
            valid[f0 - s0:] = True
            motion.append(m), visemes.append(v), motion_valid.append(valid)
            # Window starts u (segment-relative, prefix first): the window itself lies inside the item.
            lo = max(0, -s0 - P)
            starts = self.rng.integers(lo, L - P - W + 1, size=K)
            if at_start:
                starts[0] = 0  # the very first chunk of a stream: an empty prefix
            elif at_switch:  # the first chunks after the change
                starts[0] = int(np.clip(switch - s0 - P + self.rng.integers(0, 2 * W + 1), lo, L - P - W))
            win_start.append(starts)
            texts.append([self.text_index.get(instruction_at(e, s0 + u + P), -1) for u in starts])
        audio_t = torch.from_numpy(np.stack(audio))
        feats = self.extractor.frames(audio_t)
        assert feats.shape[1] == FEATURES_PER_MOTION_FRAME * (self.past + L + self.future)
        self._spec_augment(feats)
        return {
            "feats": feats,
            "motion": torch.from_numpy(np.stack(motion)) / self.scale,
            "motion_valid": torch.from_numpy(np.stack(motion_valid)),
            "visemes": torch.from_numpy(np.stack(visemes)),
            "win_start": torch.from_numpy(np.stack(win_start)),
            "text": torch.tensor(texts, dtype=torch.long),
        }


# ---------------------------------------------------------------------------------------------------------
# Loss


def training_loss(model: MotionGenerator, batch: dict[str, torch.Tensor], text_tokens: torch.Tensor,
                  text_mask: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    P, W = cfg.prefix, cfg.window
    past = model.audio.receptive_field()[0]
    L = config.segment_frames
    states, logits = model.encode_audio(batch["feats"])
    states, logits = states[:, past: past + L], logits[:, past: past + L]
    viseme_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["visemes"].reshape(-1).clamp(max=cfg.n_visemes - 1)
                                  .masked_fill(batch["visemes"].reshape(-1) < 0, -100), ignore_index=-100)

    # Gather (prefix | window) examples: index (S, K, P+W) into the segment.
    S, K = batch["win_start"].shape
    idx = batch["win_start"][..., None] + torch.arange(P + W)
    seg = torch.arange(S)[:, None, None].expand_as(idx)
    audio = states[seg, idx].reshape(S * K, P + W, -1)
    motion = batch["motion"][seg, idx].reshape(S * K, P + W, -1)
    valid = batch["motion_valid"][seg, idx].reshape(S * K, P + W)
    prefix, x0 = motion[:, :P], motion[:, P:]
    prefix_valid = valid[:, :P]
    B = S * K
    D = x0.shape[-1]
    shifted = torch.rand(B, 1, 1, generator=generator) < config.p_prefix_offset
    offset = config.prefix_offset * torch.randn(B, 1, D, generator=generator) * shifted * prefix_valid[:, -1:, None]
    prefix = prefix + offset * prefix_valid[..., None]
    ease = ((torch.arange(W) + 1.0) / config.offset_return_frames).clamp(max=1.0)
    keep = 1.0 - ease * ease * (3.0 - 2.0 * ease)  # 1 - smoothstep: leaves the prefix with its own velocity
    x0 = x0 + offset * keep[None, :, None]
    prefix_in = prefix + config.prefix_noise * torch.rand(B, 1, 1, generator=generator) * torch.randn(prefix.shape, generator=generator)

    text = batch["text"].reshape(B)
    drop = torch.rand(B, generator=generator) < config.cfg_dropout
    neutral = text < 0  # no instruction in force: the learned neutral instruction
    tokens = text_tokens[text.clamp(min=0)]
    mask = text_mask[text.clamp(min=0)]
    one_token = torch.zeros_like(mask)
    one_token[:, 0] = True
    for learned, chosen in ((model.neutral_tokens(B)[0], neutral), (model.null_tokens(B)[0], drop)):
        learned = F.pad(learned, (0, 0, 0, tokens.shape[1] - 1))
        tokens = torch.where(chosen[:, None, None], learned, tokens)
        mask = torch.where(chosen[:, None], one_token, mask)
    cache = model.text_cache(tokens, mask)

    t = torch.rand(B, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    pred = model(add_noise(x0, t, noise), t, prefix_in, prefix_valid, audio, cache)
    diffusion_loss = F.mse_loss(pred, x0)
    # Velocities inside the window and across the border with the (clean) last prefix frame.
    last = prefix[:, -1:]
    vel_pred = torch.diff(torch.cat([last, pred], 1), dim=1)
    vel_true = torch.diff(torch.cat([last, x0], 1), dim=1)
    border_ok = torch.cat([prefix_valid[:, -1:], torch.ones(B, W - 1, dtype=torch.bool)], 1)[..., None]
    velocity_loss = ((vel_pred - vel_true) ** 2 * border_ok).sum() / (border_ok.sum() * x0.shape[-1])
    total = diffusion_loss + config.velocity_weight * velocity_loss + config.viseme_weight * viseme_loss
    return {"loss": total, "diffusion": diffusion_loss, "velocity": velocity_loss, "viseme": viseme_loss}


# ---------------------------------------------------------------------------------------------------------
# Training loop


def _n_visemes(corpus) -> int:
    try:
        from realtime.animate import Viseme  # the animator's class ids

        return len(Viseme)
    except ImportError:
        arr = corpus.viseme_array
        return int(arr.max()) + 1 if len(arr) else 1


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["loss", "diffusion", "velocity", "viseme"]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3))
    steps = [h["step"] for h in history if "loss" in h]
    for ax, k in zip(axes, keys):
        ax.plot(steps, [h[k] for h in history if "loss" in h], lw=1, label="train")
        val = [(h["step"], h["val_" + k]) for h in history if "val_" + k in h]
        if val:
            ax.plot(*zip(*val), "o-", ms=3, label="held-out")
        ax.set_title(k), ax.set_xlabel("step"), ax.set_yscale("log"), ax.legend(fontsize=7)
    lr = [(h["step"], h["lr"]) for h in history if "lr" in h]
    if lr:
        axes[-1].plot(*zip(*lr)), axes[-1].set_title("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _lr(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def build_model_config(config: TrainConfig, n_visemes: int, features: FeatureConfig) -> GeneratorConfig:
    if config.model not in MODEL_PRESETS:
        raise TrainError(f"unknown model preset {config.model!r}; choose from {sorted(MODEL_PRESETS)}")
    kwargs = {**MODEL_PRESETS[config.model], **config.model_overrides}
    return GeneratorConfig(n_visemes=n_visemes, features=features, **kwargs)


def train(corpus_path: str | Path, out_dir: str | Path, config: TrainConfig | None = None, resume: bool = False,
          embedder: TextEmbedder | None = None, progress: bool = True) -> MotionGenerator:
    """Train (or resume) and write checkpoints, `history.json`, `loss.png` and `train.log` under `out_dir`."""
    from tqdm import tqdm

    from realtime.corpus.format import Corpus

    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"realtime.motion.train.{out.resolve()}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.FileHandler(out / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    corpus = Corpus(corpus_path)
    if len(corpus) < 2:
        raise TrainError(f"corpus {corpus_path} has {len(corpus)} items; need at least 2")
    order = np.random.default_rng(config.seed).permutation(len(corpus))
    n_val = max(1, int(round(config.heldout_fraction * len(corpus))))
    val_items, train_items = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())

    state = None
    if resume:
        if not (out / STATE).is_file():
            raise TrainError(f"nothing to resume in {out} (no {STATE})")
        state = torch.load(out / STATE, weights_only=False)
        model_cfg = GeneratorConfig.from_dict(json.loads((out / CONFIG).read_text())["generator"])
    else:
        stats_rng = np.random.default_rng(config.seed + 1)
        picks = stats_rng.choice(train_items, size=min(config.stats_items, len(train_items)), replace=False)
        feat_cfg = FeatureConfig()
        feat_cfg.mean, feat_cfg.std = corpus_stats([corpus[int(i)].audio for i in picks], feat_cfg)
        model_cfg = build_model_config(config, _n_visemes(corpus), feat_cfg)
    model = MotionGenerator(model_cfg)
    past, future = model.audio.receptive_field()

    texts = [t for t in corpus.instructions if t]
    embed = embedder or minilm_embedder()
    if texts:
        text_tokens, text_mask = embed(texts)
    else:
        text_tokens, text_mask = torch.zeros(1, 1, model_cfg.text_dim), torch.ones(1, 1, dtype=torch.bool)
    text_index = {t: i for i, t in enumerate(texts)}

    def decays(name: str, p: torch.nn.Parameter) -> bool:
        return p.ndim >= 2 and not any(k in name for k in ("pos", "null_text", "neutral_text"))

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["gen"])
        history, step = state["history"], state["step"]
        log.info("resumed at step %d", step)

    sampler = WindowSampler(corpus, train_items, model_cfg, past, future, config, text_index, rng)
    val_sampler = WindowSampler(corpus, val_items if len(val_items) else train_items, model_cfg, past, future,
                                config, text_index, np.random.default_rng(12345))
    val_batches = [val_sampler.batch() for _ in range(4)]
    log.info("model %s: %.2f M parameters; corpus %s: %d items (%.2f h), %d instructions; %s",
             config.model, model.num_params() / 1e6, corpus_path, len(corpus), corpus.hours, len(texts),
             json.dumps(dataclasses.asdict(config)))

    def checkpoint() -> None:
        meta = {"step": step, "train_config": dataclasses.asdict(config), "corpus": str(corpus_path),
                "corpus_items": len(corpus), "corpus_hours": round(corpus.hours, 3)}
        save_generator(model, out, meta)
        torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "rng": rng.bit_generator.state,
                    "gen": gen.get_state(), "history": history, "step": step}, out / (STATE + ".tmp"))
        (out / (STATE + ".tmp")).replace(out / STATE)
        (out / "history.json").write_text(json.dumps(history))
        if history:
            _plot(history, out / "loss.png")

    def validate() -> dict[str, float]:
        model.eval()
        vgen = torch.Generator().manual_seed(999)
        with torch.no_grad():
            parts = [training_loss(model, b, text_tokens, text_mask, config, vgen) for b in val_batches]
        model.train()
        return {"val_" + k: float(np.mean([p[k].item() for p in parts])) for k in parts[0]}

    model.train()
    started = time.time()
    running: dict[str, float] = {}
    bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    while step < config.steps:
        lr = _lr(step, config)
        for group in optim.param_groups:
            group["lr"] = lr
        batch = sampler.batch()
        losses = training_loss(model, batch, text_tokens, text_mask, config, gen)
        optim.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optim.step()
        step += 1
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + v.item()
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            n = config.log_every if step % config.log_every == 0 else step % config.log_every
            entry = {"step": step, "lr": lr, "time_s": round(time.time() - started, 1),
                     **{k: v / n for k, v in running.items()}}
            running = {}
            if step % config.checkpoint_every == 0 or step == config.steps:
                entry.update(validate())
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}", vis=f"{entry['viseme']:.3f}")
            log.info(json.dumps(entry))
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
    bar.close()
    log.info("done: %d steps in %.1f s", step, time.time() - started)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avatar train", description="train the motion generator on a corpus")
    parser.add_argument("--corpus", required=True, help="corpus folder (from `avatar corpus`)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, logs, loss curves")
    parser.add_argument("--config", default="small", choices=sorted(MODEL_PRESETS), help="model size preset")
    parser.add_argument("--steps", type=int, default=None, help=f"optimiser steps (default {TrainConfig.steps})")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    config = TrainConfig(model=args.config, seed=args.seed, threads=args.threads)
    if args.steps is not None:
        config.steps = args.steps
    if args.resume and (Path(args.out) / STATE).is_file():
        saved = json.loads((Path(args.out) / CONFIG).read_text()).get("meta", {}).get("train_config")
        if saved:  # keep the run's own settings; only the step budget may be raised
            saved["steps"] = config.steps if args.steps is not None else saved["steps"]
            saved["gain_db"] = tuple(saved["gain_db"])
            config = TrainConfig(**saved)
    try:
        train(args.corpus, args.out, config, resume=args.resume)
    except (TrainError, FileNotFoundError, ValueError) as exc:
        print(f"avatar train: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / WEIGHTS} and {Path(args.out) / CONFIG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
