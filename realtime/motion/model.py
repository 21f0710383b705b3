"""The motion generator: an audio encoder and a two-branch conformer denoiser (one readable module).

    features (B, 4T, n_mels) ──AudioEncoder──▶ per-frame audio states (B, T, A) ──▶ viseme logits (aux)
                                                        │
    [prefix P clean frames | window W noisy frames] ──Denoiser(t)──▶ x0 of the window (B, W, DIM)
                                                        ▲
    instruction tokens (L, 384) ──▶ per-layer K/V of an emotion branch and a motion branch (cached)

The audio encoder is a stack of depthwise-separable dilated convolutions with a fixed receptive field: one
motion frame (40 ms) of lookahead per lookahead layer and a bounded left context, so a stream can recompute it over a
short history and get exactly the offline result. The denoiser's two cross-attention branches enter through
tanh gates initialised at zero, so a fresh model is a plain audio-driven denoiser and the instruction's
influence grows only as training finds it useful. The model holds no mutable state: one instance serves
many streams.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from realtime.motion.features import FEATURES_PER_MOTION_FRAME, FeatureConfig
from realtime.vocab import DIM


@dataclass
class GeneratorConfig:
    motion_dim: int = DIM
    n_mels: int = 80
    n_visemes: int = 16
    text_dim: int = 384  # MiniLM token states
    # audio encoder
    audio_dim: int = 128
    audio_lookahead_layers: int = 1  # dilation-1 layers that each look one frame (40 ms) ahead
    audio_dilations: tuple[int, ...] = (1, 2, 4, 8)  # causal layers after those
    audio_kernel: int = 5
    audio_dropout: float = 0.1
    # denoiser
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: int = 2
    conv_kernel: int = 3
    prefix: int = 8  # motion frames of context (the previous chunk's output)
    window: int = 2  # frames denoised per chunk (80 ms): the audio a frame waits for is window + lookahead
    dropout: float = 0.0
    features: FeatureConfig = field(default_factory=FeatureConfig)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        d = dict(d)
        d["features"] = FeatureConfig(**d.get("features", {}))
        d["audio_dilations"] = tuple(d.get("audio_dilations", cls.audio_dilations))
        return cls(**d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """(B,H,Lq,D) attention through the project's kernels (Triton on CUDA, SDPA on CPU)."""
    try:
        from avatar_kernels import attention
    except ImportError:  # only while the kernels package is incomplete; the semantics are SDPA's
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attention(q, k, v, key_padding_mask=key_padding_mask)


# ---------------------------------------------------------------------------------------------------------
# Audio encoder


class AudioBlock(nn.Module):
    """Depthwise dilated conv (time mixing, `left`/`right` frames of context) + pointwise MLP (channel mixing)."""

    def __init__(self, dim: int, kernel: int, dilation: int, right_taps: int, dropout: float = 0.0):
        super().__init__()
        self.pad = ((kernel - 1 - right_taps) * dilation, right_taps * dilation)
        self.norm1 = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(self.norm1(x).transpose(1, 2), self.pad)
        x = x + self.conv(h).transpose(1, 2)
        return x + self.drop(self.mlp(self.norm2(x)))


class AudioEncoder(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        sub = FEATURES_PER_MOTION_FRAME
        # Strided conv to 25 fps: motion frame t reads feature frames 4t-4 .. 4t+3 (its own 40 ms and the previous).
        self.subsample = nn.Conv1d(cfg.n_mels, cfg.audio_dim, kernel_size=2 * sub, stride=sub)
        k, p = cfg.audio_kernel, cfg.audio_dropout
        blocks = [AudioBlock(cfg.audio_dim, k, 1, right_taps=1, dropout=p) for _ in range(cfg.audio_lookahead_layers)]
        blocks += [AudioBlock(cfg.audio_dim, k, d, right_taps=0, dropout=p) for d in cfg.audio_dilations]
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(cfg.audio_dim)
        self.viseme_head = nn.Linear(cfg.audio_dim, cfg.n_visemes)

    def receptive_field(self) -> tuple[int, int]:
        """(past, future) motion frames that one output frame depends on."""
        past, future = 1, 0
        for b in self.blocks:
            past, future = past + b.pad[0], future + b.pad[1]
        return past, future

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, 4T, n_mels) -> audio states (B, T, A), viseme logits (B, T, V)."""
        sub = FEATURES_PER_MOTION_FRAME
        x = self.subsample(F.pad(feats.transpose(1, 2), (sub, 0))).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x, self.viseme_head(x)


# ---------------------------------------------------------------------------------------------------------
# Instruction K/V cache


@dataclass
class InstructionCache:
    """Per-layer cross-attention keys/values of one or more instructions, for both branches.

    `kv[layer] = (k_emotion, v_emotion, k_motion, v_motion)`, each (B, H, L, D); `mask` (B, L), True = attend.
    Computed once per instruction and reused across DDIM steps and chunks.
    """

    kv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    mask: torch.Tensor

    @property
    def batch(self) -> int:
        return self.mask.shape[0]

    def flat(self) -> list[torch.Tensor]:
        """Every layer's K/V in one list: what a TorchScript trace or a CUDA graph's buffers take."""
        return [x for layer in self.kv for x in layer]

    @staticmethod
    def of_flat(flat: list[torch.Tensor], mask: torch.Tensor) -> InstructionCache:
        return InstructionCache([tuple(flat[i:i + 4]) for i in range(0, len(flat), 4)], mask)  # type: ignore[misc]

    @staticmethod
    def stack(caches: list[InstructionCache]) -> InstructionCache:
        """Concatenate along the batch, padding the token axis (padding is masked out)."""
        length = max(c.mask.shape[1] for c in caches)

        def pad(t: torch.Tensor) -> torch.Tensor:
            return F.pad(t, (0, 0, 0, length - t.shape[2]))

        kv = [tuple(torch.cat([pad(c.kv[i][j]) for c in caches]) for j in range(4)) for i in range(len(caches[0].kv))]
        mask = torch.cat([F.pad(c.mask, (0, length - c.mask.shape[1])) for c in caches])
        return InstructionCache(kv=kv, mask=mask)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Denoiser


class SelfAttention(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        y = attend(q, k, v, mask)
        return self.out(y.transpose(1, 2).reshape(B, L, C))


class CrossAttention(nn.Module):
    """Queries from the motion tokens, keys/values from the instruction tokens (precomputed), zero-init gate."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.heads = cfg.n_heads
        self.norm = nn.LayerNorm(cfg.d_model)
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.gate = nn.Parameter(torch.zeros(1))

    def keys_values(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L, C = text.shape
        k, v = self.kv(text).view(B, L, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q = self.q(self.norm(x)).view(B, L, self.heads, C // self.heads).transpose(1, 2)
        y = attend(q, k, v, mask).transpose(1, 2).reshape(B, L, C)
        return torch.tanh(self.gate) * self.out(y)


class ConvModule(nn.Module):
    """Conformer convolution module: pointwise GLU, depthwise conv over frames, pointwise."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        self.pw1 = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.dw = nn.Conv1d(cfg.d_model, cfg.d_model, cfg.conv_kernel, padding=cfg.conv_kernel // 2, groups=cfg.d_model)
        self.pw2 = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = F.glu(self.pw1(self.norm(x)), dim=-1) * valid[..., None]  # missing prefix frames contribute nothing
        h = self.dw(h.transpose(1, 2)).transpose(1, 2)
        return self.pw2(F.silu(h))


class FeedForward(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.ffn_mult * cfg.d_model),
                                 nn.SiLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_mult * cfg.d_model, cfg.d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """Macaron conformer block with two gated cross-attention branches (emotion, motion)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.ff1, self.ff2 = FeedForward(cfg), FeedForward(cfg)
        self.attn_norm = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.emotion = CrossAttention(cfg)
        self.motion = CrossAttention(cfg)
        self.conv = ConvModule(cfg)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor,
                kv: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                text_mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(self.attn_norm(x), valid)
        x = x + self.emotion(x, kv[0], kv[1], text_mask)
        x = x + self.motion(x, kv[2], kv[3], text_mask)
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the diffusion time t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class MotionGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.audio = AudioEncoder(cfg)
        # motion value + "is prefix" + "is missing" flags + the last prefix frame (the anchor every frame
        # sees directly, so that continuing the motion across a chunk border is easy to learn)
        self.motion_in = nn.Linear(2 * cfg.motion_dim + 2, d)
        self.audio_in = nn.Linear(cfg.audio_dim, d)
        self.pos = nn.Parameter(torch.zeros(cfg.prefix + cfg.window, d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text_norm = nn.LayerNorm(cfg.text_dim)
        self.text_in = nn.Linear(cfg.text_dim, d)
        # Two learned instructions: "null" is classifier-free guidance's unconditional branch (every
        # instruction dropped), "neutral" is what talking without any instruction looks like.
        self.null_text = nn.Parameter(torch.randn(1, cfg.text_dim) * 0.02)
        self.neutral_text = nn.Parameter(torch.randn(1, cfg.text_dim) * 0.02)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.n_layers))
        self.out = nn.Linear(d, cfg.motion_dim)
        nn.init.normal_(self.pos, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- conditioning ----------------------------------------------------------------------------------
    def encode_audio(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.audio(feats)

    def null_tokens(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional instruction as (tokens (B,1,text_dim), mask (B,1))."""
        mask = torch.ones(batch, 1, dtype=torch.bool, device=self.null_text.device)
        return self.null_text[None].expand(batch, -1, -1), mask

    def neutral_tokens(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The "no instruction, just talk" condition as (tokens (B,1,text_dim), mask (B,1))."""
        mask = torch.ones(batch, 1, dtype=torch.bool, device=self.neutral_text.device)
        return self.neutral_text[None].expand(batch, -1, -1), mask

    def text_cache(self, tokens: torch.Tensor, mask: torch.Tensor) -> InstructionCache:
        """tokens (B, L, text_dim), mask (B, L) -> per-layer, per-branch K/V."""
        text = self.text_in(self.text_norm(tokens))
        kv = []
        for block in self.blocks:
            kv.append((*block.emotion.keys_values(text), *block.motion.keys_values(text)))
        return InstructionCache(kv=kv, mask=mask.bool())

    def instruction_cache(self, embedding=None, neutral: bool = False) -> InstructionCache:
        """K/V for one instruction: an InstructionEmbedding (tokens (L,384), mask (L,)); None gives the
        learned null (unconditional) instruction, or with `neutral=True` the learned neutral one.
        Compute once per instruction; reuse across DDIM steps and chunks."""
        if embedding is None:
            return self.text_cache(*(self.neutral_tokens(1) if neutral else self.null_tokens(1)))
        tokens = torch.as_tensor(embedding.tokens, dtype=torch.float32)
        mask = torch.as_tensor(embedding.mask, dtype=torch.bool)
        if tokens.ndim != 2 or tokens.shape[-1] != self.cfg.text_dim or mask.shape != tokens.shape[:1]:
            raise ValueError(f"instruction tokens must be (L, {self.cfg.text_dim}) with an (L,) mask, "
                             f"got {tuple(tokens.shape)} and {tuple(mask.shape)}")
        return self.text_cache(tokens[None], mask[None])

    # --- denoising -------------------------------------------------------------------------------------
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, prefix: torch.Tensor, prefix_valid: torch.Tensor,
                audio: torch.Tensor, cache: InstructionCache) -> torch.Tensor:
        """Predict the clean window.

        x_t (B, W, DIM) noisy window (normalised units), t (B,) diffusion time in [0, 1],
        prefix (B, P, DIM) previous frames, prefix_valid (B, P) bool (False before the stream began),
        audio (B, P+W, A) audio-encoder states of the prefix and window frames, cache (batch B).
        Returns x0 (B, W, DIM).
        """
        B, W, _ = x_t.shape
        P = prefix.shape[1]
        prefix = prefix * prefix_valid[..., None]
        flags_prefix = torch.stack([torch.ones_like(prefix_valid, dtype=x_t.dtype), (~prefix_valid).to(x_t.dtype)], -1)
        flags_window = x_t.new_zeros(B, W, 2)
        tokens = torch.cat([torch.cat([prefix, flags_prefix], -1), torch.cat([x_t, flags_window], -1)], 1)
        anchor = prefix[:, -1:].expand(B, P + W, -1) if P > 0 else x_t.new_zeros(B, P + W, x_t.shape[-1])
        tokens = torch.cat([tokens, anchor], -1)
        valid = torch.cat([prefix_valid, torch.ones(B, W, dtype=torch.bool, device=x_t.device)], 1)
        temb = self.time_mlp(timestep_embedding(t, self.cfg.d_model))
        x = self.motion_in(tokens) + self.audio_in(audio) + self.pos[None, : P + W] + temb[:, None]
        for block, kv in zip(self.blocks, cache.kv):
            x = block(x, valid, kv, cache.mask)
        # Absolute x0, not an offset from the last prefix frame: offsets integrate a small bias into drift
        # over a long stream; continuity is taught by the prefix-offset targets in training instead.
        return self.out(x[:, P:])
