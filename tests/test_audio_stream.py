"""The incremental audio encoder (realtime/motion/audio_stream.py) gives the windowed encoder's states, chunk after
chunk, in every form it runs in (Python, the eager step, the traced step), so the sampler's motion stays the same."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from realtime.motion.audio_stream import Step, StreamingAudioStates, shared_step, traced_step
from realtime.motion.model import GeneratorConfig, MotionGenerator
from realtime.motion.sampler import SamplerConfig, StreamingSampler
from realtime.training.generator import MODEL_PRESETS

ATOL = 1e-5


def _model(preset: str) -> MotionGenerator:
    torch.manual_seed(0)
    return MotionGenerator(GeneratorConfig(**MODEL_PRESETS[preset])).eval().requires_grad_(False)


def _windowed(model: MotionGenerator, feats: torch.Tensor, n: int) -> torch.Tensor:
    """What the sampler computed before: the whole window through the encoder, the prefix and chunk kept."""
    P, W = model.cfg.prefix, model.cfg.window
    past, future = model.audio.receptive_field()
    window = feats[4 * (n - P - past): 4 * (n + W + future)]
    return model.encode_audio(window[None])[0][:, past: past + P + W]


def _streamed(model: MotionGenerator, stream: StreamingAudioStates, feats: torch.Tensor, n: int) -> torch.Tensor:
    P, W = model.cfg.prefix, model.cfg.window
    past, future = model.audio.receptive_field()
    first = n - P - past
    return stream.states(feats[4 * first: 4 * (n + W + future)], first, n - P, n + W)


@pytest.mark.parametrize("preset", ["tiny", "small"])  # tiny: 2 lookahead layers, 4-frame chunks; small: shipped
def test_every_form_of_the_stream_gives_the_windowed_states_chunk_after_chunk(preset):
    model = _model(preset)
    P, W = model.cfg.prefix, model.cfg.window
    past, _ = model.audio.receptive_field()
    feats = torch.randn(4 * 400, model.cfg.n_mels)
    forms = {"python": StreamingAudioStates(model.audio, P), "eager step": StreamingAudioStates(model.audio, P,
             Step(model.audio, W)), "traced step": StreamingAudioStates(model.audio, P, traced_step(model.audio, W, P))}
    chunks = list(range(P + past, 200, W))
    del chunks[20]  # a chunk never asked for: the next call starts over from its window
    with torch.inference_mode():
        for n in chunks:
            expected = _windowed(model, feats, n)
            for name, stream in forms.items():
                torch.testing.assert_close(_streamed(model, stream, feats, n), expected, atol=ATOL, rtol=0,
                                           msg=f"{name}, frame {n}")


def test_the_stream_reads_no_features_before_its_window_and_keeps_only_what_the_next_chunk_reads():
    model = _model("small")
    P, W = model.cfg.prefix, model.cfg.window
    past, _ = model.audio.receptive_field()
    stream = StreamingAudioStates(model.audio, P, shared_step(model.audio, W, P))
    feats = torch.randn(4 * 200, model.cfg.n_mels)
    with torch.inference_mode():
        for n in range(P + past, 150, W):
            _streamed(model, stream, feats, n)
            changed = feats.clone()
            changed[: 4 * (n + W - P - past)] = 100.0  # all that precedes the next chunk's window
            torch.testing.assert_close(_streamed(model, StreamingAudioStates(model.audio, P), changed, n + W),
                                       _windowed(model, feats, n + W), atol=ATOL, rtol=0)
    kept = sum(len(rows) for rows in stream._layers)
    assert kept == sum(b.pad[0] + b.pad[1] for b in model.audio.blocks) + P  # bounded however long the call


def test_the_shared_step_is_traced_once_and_again_when_the_weights_change():
    model = _model("tiny")
    P, W = model.cfg.prefix, model.cfg.window
    step = shared_step(model.audio, W, P)
    assert shared_step(model.audio, W, P) is step
    with torch.no_grad():
        model.audio.blocks[0].conv.weight.mul_(1.5)  # what an optimiser step does: in place
    again = shared_step(model.audio, W, P)
    assert again is not step
    feats = torch.randn(4 * 200, model.cfg.n_mels)
    past, _ = model.audio.receptive_field()
    with torch.inference_mode():
        stream = StreamingAudioStates(model.audio, P, again)
        for n in range(P + past, 120, W):
            torch.testing.assert_close(_streamed(model, stream, feats, n), _windowed(model, feats, n), atol=ATOL,
                                       rtol=0)


def test_the_sampler_moves_the_same_with_the_incremental_encoder():
    """The whole stream, audio pushed in uneven pieces: the motion of the incremental and the windowed encoder
    agree to float rounding, frame for frame (the same seed, so the same noise)."""
    model = _model("tiny")
    rng = np.random.default_rng(1)
    t = np.arange(16_000 * 4) / 16_000
    audio = (0.2 * (np.sin(2 * np.pi * 3 * t) > 0.2) * np.sin(2 * np.pi * 180 * t)
             + 0.003 * rng.standard_normal(len(t))).astype(np.float32)
    sizes = rng.integers(50, 4000, 200)
    motion = {}
    for incremental in (False, True):
        sampler = StreamingSampler(model, None, dataclasses.replace(SamplerConfig(), incremental_audio=incremental),
                                   seed=3)
        assert (sampler._audio is not None and sampler._audio.step is not None) == incremental  # traced, shared
        parts, i = [], 0
        for n in sizes:
            parts.append(sampler.push(audio[i:i + n]))
            i += n
            if i >= len(audio):
                break
        motion[incremental] = np.concatenate(parts + [sampler.flush()])
    assert len(motion[True]) == len(motion[False]) == -(-len(audio) // 640)
    np.testing.assert_allclose(motion[True], motion[False], atol=1e-4)
    assert np.abs(motion[True]).max() > 0.01  # it moved
