"""The training loop (`avatar train`): optimiser, schedule, validation, checkpoints, resume, loss curves."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from realtime.motion.checkpoint import CONFIG, WEIGHTS, save_generator
from realtime.motion.features import FeatureConfig, corpus_stats
from realtime.motion.model import GeneratorConfig, MotionGenerator
from realtime.training.corpus.format import Corpus
from realtime.training.generator.config import MODEL_PRESETS, TrainConfig, TrainError
from realtime.training.generator.data import TextEmbedder, WindowSampler, minilm_embedder
from realtime.training.generator.loss import training_loss
from realtime.vocab import HI, INDEX, LO, PROGRAM_NAMES, Viseme

STATE = "train_state.pt"



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

    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"realtime.training.generator.{out.resolve()}")
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
        model_cfg = build_model_config(config, len(Viseme), feat_cfg)
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
                "corpus_items": len(corpus), "corpus_hours": round(corpus.hours, 3),
                # the smile axis's range in the targets (checkpoints from before it took negative values lack it)
                "smile_range": [float(LO[INDEX["smile"]]), float(HI[INDEX["smile"]])],
                "programs": list(PROGRAM_NAMES)}
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
