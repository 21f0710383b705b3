"""The training loss: x0 diffusion loss + velocity loss (including across the prefix/window border, against
seams) + viseme cross-entropy on the audio encoder. The prefix is the ground truth plus a little noise (and
sometimes an offset the target eases back from), so the model tolerates its own earlier output at sampling
time. Instructions are dropped to the learned null instruction for classifier-free guidance.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from realtime.motion.diffusion import add_noise
from realtime.motion.model import MotionGenerator
from realtime.training.generator.config import TrainConfig


def training_loss(model: MotionGenerator, batch: dict[str, torch.Tensor], text_tokens: torch.Tensor,
                  text_mask: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    P, W = cfg.prefix, cfg.window
    past = model.audio.receptive_field()[0]
    L = config.segment_frames
    states, logits = model.encode_audio(batch["feats"])
    states, logits = states[:, past: past + L], logits[:, past: past + L]
    labels = batch["visemes"].reshape(-1)
    labels = labels.clamp(max=cfg.n_visemes - 1).masked_fill(labels < 0, -100)
    viseme_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels, ignore_index=-100)

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
    noise_scale = config.prefix_noise * torch.rand(B, 1, 1, generator=generator)
    prefix_in = prefix + noise_scale * torch.randn(prefix.shape, generator=generator)

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
