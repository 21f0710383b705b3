"""Training settings: the run's TrainConfig and the model size presets."""
from __future__ import annotations

from dataclasses import dataclass, field

MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(audio_dim=32, audio_lookahead_layers=2, audio_dilations=(1, 2), d_model=32, n_layers=2,
                 n_heads=2, prefix=8, window=4),
    "small": dict(),  # GeneratorConfig defaults
}


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
