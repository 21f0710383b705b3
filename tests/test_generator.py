"""Motion generator: features, model, DDIM + guidance, streaming sampler, checkpoints, training (tiny configs)."""
from __future__ import annotations

import dataclasses
import time
import zlib

import numpy as np
import pytest
import torch

from realtime.motion.checkpoint import CheckpointError, load_generator, save_generator
from realtime.motion.diffusion import DenoiseRequest, ddim_sample, ddim_sample_many
from realtime.motion.features import FeatureConfig, FeatureError, StreamingLogMel, log_mel
from realtime.motion.model import GeneratorConfig, InstructionCache, MotionGenerator
from realtime.motion.sampler import SamplerConfig, SamplerError, StreamingSampler, generate
from realtime.training.generator import MODEL_PRESETS, TrainConfig, train
from realtime.vocab import DIM, HI, INDEX, LO

SR = 16_000
TEXT_DIM = 384
STREAM_ATOL = 1e-4  # streaming vs offline: only float rounding of differently batched FFT/matmul may differ


@dataclasses.dataclass
class FakeEmbedding:
    text: str
    tokens: torch.Tensor
    mask: torch.Tensor


class HashedTextEncoder:
    """Deterministic per-text random token states with the InstructionEncoder's call shape (tests only)."""

    def __call__(self, text: str) -> FakeEmbedding:
        g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        n = 3 + len(text.split())
        return FakeEmbedding(text, torch.randn(n, TEXT_DIM, generator=g), torch.ones(n, dtype=torch.bool))

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embs = [self(t) for t in texts]
        length = max(len(e.mask) for e in embs)
        tokens = torch.zeros(len(texts), length, TEXT_DIM)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(embs):
            tokens[i, : len(e.mask)], mask[i, : len(e.mask)] = e.tokens, True
        return tokens, mask


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of harmonic sound separated by silences."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = (np.sin(2 * np.pi * rng.uniform(2, 5) * t) > 0.2).astype(np.float32)
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate([140, 280, 700, 1200], 1))
    return (0.2 * envelope * tone + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def tiny_model(seed: int = 0) -> MotionGenerator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(**MODEL_PRESETS["tiny"])
    model = MotionGenerator(cfg)
    with torch.no_grad():  # open the zero-initialised gates so the instruction matters in these tests
        for block in model.blocks:
            block.emotion.gate.fill_(0.7)
            block.motion.gate.fill_(-0.5)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model() -> MotionGenerator:
    return tiny_model()


# --- features ----------------------------------------------------------------------------------------------

def test_streaming_features_equal_offline():
    audio = speechlike(2.3)
    cfg = FeatureConfig()
    offline = log_mel(audio, cfg)
    assert offline.shape == (len(audio) // 160, 80)
    stream, parts, i = StreamingLogMel(cfg), [], 0
    rng = np.random.default_rng(1)
    while i < len(audio):
        n = int(rng.integers(1, 2500))
        parts.append(stream.push(audio[i:i + n]))
        i += n
    streamed = torch.cat(parts)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)


def test_features_are_causal_and_reject_bad_audio():
    audio = speechlike(1.0)
    cfg = FeatureConfig()
    changed = audio.copy()
    changed[8000:] = 0.0  # frames ending at or before sample 8000 must not notice
    torch.testing.assert_close(log_mel(audio, cfg)[:50], log_mel(changed, cfg)[:50])
    with pytest.raises(FeatureError, match="mono"):
        log_mel(np.zeros((100, 2), np.float32), cfg)
    with pytest.raises(FeatureError, match="NaN"):
        log_mel(np.full(1000, np.nan, np.float32), cfg)


# --- model ---------------------------------------------------------------------------------------------------

def test_shapes_and_receptive_field(model):
    cfg = model.cfg
    past, future = model.audio.receptive_field()
    assert future <= 2 and past < 100  # 80 ms lookahead, bounded history
    feats = torch.randn(3, 4 * 50, cfg.n_mels)
    states, logits = model.encode_audio(feats)
    assert states.shape == (3, 50, cfg.audio_dim) and logits.shape == (3, 50, cfg.n_visemes)
    P, W = cfg.prefix, cfg.window
    cache = model.text_cache(*HashedTextEncoder().batch(["smile", "nod slowly please", "frown"]))
    x0 = model(torch.randn(3, W, DIM), torch.rand(3), torch.randn(3, P, DIM), torch.ones(3, P, dtype=torch.bool),
               states[:, :P + W], cache)
    assert x0.shape == (3, W, DIM)
    assert 1e3 < MotionGenerator(GeneratorConfig()).num_params() < 3.5e6


def test_the_model_makes_no_tensor_off_its_own_device():
    """On the meta device every tensor made on the CPU inside the model clashes, as it would on a GPU (the
    diffusion time's frequencies once did: the generator could not run on CUDA)."""
    model = MotionGenerator(GeneratorConfig()).eval().to("meta")
    cfg, meta = model.cfg, torch.device("meta")
    with torch.inference_mode():
        states, _ = model.encode_audio(torch.zeros(2, 4 * (cfg.prefix + cfg.window), cfg.n_mels, device=meta))
        for cache in (model.instruction_cache(None), model.instruction_cache(None, neutral=True)):
            x0 = model(torch.zeros(1, cfg.window, DIM, device=meta), torch.zeros(1, device=meta),
                       torch.zeros(1, cfg.prefix, DIM, device=meta), torch.ones(1, cfg.prefix, dtype=torch.bool,
                                                                             device=meta), states[:1], cache)
            assert x0.device == meta and x0.shape == (1, cfg.window, DIM)


def test_audio_encoder_on_bounded_history_equals_full_sequence(model):
    past, future = model.audio.receptive_field()
    feats = torch.randn(1, 4 * 120, model.cfg.n_mels)
    full, _ = model.encode_audio(feats)
    a, b = 90, 100  # frames [a, b) from a window starting `past` frames earlier, ending `future` later
    part, _ = model.encode_audio(feats[:, 4 * (a - past): 4 * (b + future)])
    torch.testing.assert_close(part[:, past: past + b - a], full[:, a:b], atol=1e-5, rtol=1e-5)
    # ...and one frame more of future does change the result (the lookahead is really used)
    feats2 = feats.clone()
    feats2[:, 4 * (b + future):] += 1.0
    assert torch.allclose(model.encode_audio(feats2)[0][:, :b], full[:, :b], atol=1e-6)
    feats2[:, 4 * (b + future) - 1] += 1.0
    assert not torch.allclose(model.encode_audio(feats2)[0][:, b - 1], full[:, b - 1], atol=1e-6)


def test_gates_start_at_zero_so_a_fresh_model_ignores_the_instruction():
    fresh = MotionGenerator(GeneratorConfig(**MODEL_PRESETS["tiny"])).eval()
    enc = HashedTextEncoder()
    args = (torch.randn(1, 4, DIM), torch.rand(1), torch.randn(1, 8, DIM), torch.ones(1, 8, dtype=torch.bool),
            torch.randn(1, 12, fresh.cfg.audio_dim))
    with torch.no_grad():
        a = fresh(*args, fresh.instruction_cache(enc("smile")))
        b = fresh(*args, fresh.instruction_cache(None))
    torch.testing.assert_close(a, b)


def test_cached_kv_equals_uncached_and_padding_is_inert(model):
    """K/V computed once and batched (padded) with the null instruction gives what a fresh per-call
    computation gives for each instruction alone."""
    enc = HashedTextEncoder()
    P, W = model.cfg.prefix, model.cfg.window
    x, prefix = torch.randn(1, W, DIM), torch.randn(1, P, DIM)
    valid, audio = torch.ones(1, P, dtype=torch.bool), torch.randn(1, P + W, model.cfg.audio_dim)
    short, long_ = enc("smile"), enc("look very surprised and raise your brows")
    cached = InstructionCache.stack([model.instruction_cache(None), model.instruction_cache(short),
                                     model.instruction_cache(long_)])
    batched = model(x.expand(3, -1, -1), torch.full((3,), 0.4), prefix.expand(3, -1, -1), valid.expand(3, -1),
                    audio.expand(3, -1, -1), cached)
    for i, emb in enumerate([None, short, long_]):
        tokens, mask = (model.null_tokens(1) if emb is None else (emb.tokens[None], emb.mask[None]))
        uncached = model(x, torch.full((1,), 0.4), prefix, valid, audio, model.text_cache(tokens, mask))
        torch.testing.assert_close(batched[i:i + 1], uncached, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[1], batched[2], atol=1e-3)  # and the instruction matters


# --- diffusion and guidance ---------------------------------------------------------------------------------

def guided_x0(model, x, prefix, valid, audio, cache, weights):
    return ddim_sample(model, x, 1, prefix, valid, audio, cache, weights)  # one step: the guided x0 at t = 1


def test_zero_guidance_equals_unconditional_branch(model):
    enc = HashedTextEncoder()
    P, W = model.cfg.prefix, model.cfg.window
    x, prefix = torch.randn(1, W, DIM), torch.randn(1, P, DIM)
    valid, audio = torch.ones(1, P, dtype=torch.bool), torch.randn(1, P + W, model.cfg.audio_dim)
    null = model.instruction_cache(None)
    both = InstructionCache.stack([null, model.instruction_cache(enc("frown"))])
    uncond = guided_x0(model, x, prefix, valid, audio, null, [])
    torch.testing.assert_close(guided_x0(model, x, prefix, valid, audio, both, [0.0]), uncond, atol=1e-5, rtol=0)
    cond = guided_x0(model, x, prefix, valid, audio, both, [1.0])
    assert not torch.allclose(cond, uncond, atol=1e-3)
    # guidance is linear in the scale
    g2 = guided_x0(model, x, prefix, valid, audio, both, [2.0])
    torch.testing.assert_close(g2 - uncond, 2 * (cond - uncond), atol=1e-5, rtol=1e-4)
    audio_s = speechlike(1.0)
    # intensity 0 is the unconditional branch whatever the text (None = neutral talking, also guided)
    a = generate(model, enc, audio_s, "smile warmly", intensity=0.0, seed=3).values
    b = generate(model, enc, audio_s, None, intensity=0.0, seed=3).values
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a, generate(model, enc, audio_s, None, intensity=1.0, seed=3).values, atol=1e-4)


def test_streams_denoised_together_get_what_each_would_alone(model):
    enc = HashedTextEncoder()
    P, W = model.cfg.prefix, model.cfg.window
    g = torch.Generator().manual_seed(0)
    null = model.instruction_cache(None)
    caches = [null, InstructionCache.stack([null, model.instruction_cache(enc("frown"))]),
              InstructionCache.stack([null, model.instruction_cache(enc("smile warmly and nod slowly")),
                                      model.instruction_cache(enc("close your eyes"))])]
    requests = [DenoiseRequest(torch.randn(1, W, DIM, generator=g), torch.randn(1, P, DIM, generator=g),
                               torch.rand(1, P, generator=g) > 0.3,
                               torch.randn(1, P + W, model.cfg.audio_dim, generator=g),
                               cache, weights) for cache, weights in zip(caches, ([], [1.5], [0.4, 1.1]))]
    together = ddim_sample_many(model, requests, 3)
    for request, result in zip(requests, together):
        alone = ddim_sample(model, request.noise, 3, request.prefix, request.prefix_valid, request.audio,
                            request.cache, request.weights)
        torch.testing.assert_close(result, alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="guidance weights"):
        DenoiseRequest(requests[0].noise, requests[0].prefix, requests[0].prefix_valid, requests[0].audio, null, [1.0])


def test_shared_denoiser_batches_windows_that_wait_together(model):
    import threading

    from realtime.motion.batcher import SharedDenoiser

    P, W = model.cfg.prefix, model.cfg.window
    g = torch.Generator().manual_seed(1)
    requests = [DenoiseRequest(torch.randn(1, W, DIM, generator=g), torch.randn(1, P, DIM, generator=g),
                               torch.ones(1, P, dtype=torch.bool),
                               torch.randn(1, P + W, model.cfg.audio_dim, generator=g),
                               model.instruction_cache(None), []) for _ in range(4)]
    release, calls = threading.Event(), []

    def gated(*args):  # the first window blocks the thread until the other three are queued
        calls.append(args[0].shape[0])
        if len(calls) == 1:
            release.wait(10)
        return model(*args)

    denoiser = SharedDenoiser(gated).start()
    results = [None] * 4

    def call(i: int) -> None:
        results[i] = denoiser(requests[i], 2)

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    while not calls:
        time.sleep(0.001)
    threads += [threading.Thread(target=call, args=(i,)) for i in (1, 2, 3)]
    for t in threads[1:]:
        t.start()
    while denoiser._inbox.qsize() < 3:
        time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(10)
    denoiser.stop()
    assert (denoiser.batches, denoiser.windows) == (2, 4) and calls == [1, 1, 3, 3]  # 2 DDIM steps per batch
    for request, result in zip(requests, results):
        alone = ddim_sample(model, request.noise, 2, request.prefix, request.prefix_valid, request.audio,
                            request.cache, request.weights)
        torch.testing.assert_close(result, alone, atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="not running"):
        denoiser(requests[0], 2)


def test_traced_denoiser_equals_the_model_for_any_batch_and_instruction_length(model):
    from realtime.motion.batcher import traced_denoiser

    P, W = model.cfg.prefix, model.cfg.window
    traced = traced_denoiser(model)
    g = torch.Generator().manual_seed(2)
    for batch, tokens in ((1, 1), (3, 7), (6, 20)):
        cache = model.text_cache(torch.randn(batch, tokens, TEXT_DIM, generator=g),
                                 torch.rand(batch, tokens, generator=g) > 0.2)
        args = (torch.randn(batch, W, DIM, generator=g), torch.rand(batch, generator=g),
                torch.randn(batch, P, DIM, generator=g), torch.rand(batch, P, generator=g) > 0.3,
                torch.randn(batch, P + W, model.cfg.audio_dim, generator=g), cache)
        torch.testing.assert_close(traced(*args), model(*args), atol=1e-5, rtol=1e-5)


def test_a_call_loaded_into_a_captured_graphs_buffers_gets_what_it_would_alone(model):
    """A CUDA graph replays fixed shapes, so the GPU denoiser copies each call's rows and tokens into the buffers of
    the next larger graph (realtime/motion/graphed.py::load), over what an earlier call left there. The loading runs
    here, on the CPU: the real rows equal the forward of the call alone, and a call that fits no graph is refused."""
    from realtime.motion.graphed import _forward, example, flatten, load

    P, W = model.cfg.prefix, model.cfg.window
    g = torch.Generator().manual_seed(3)
    static = example(model, 8, 32, torch.device("cpu"))
    for batch, tokens in ((6, 32), (1, 1), (3, 7)):  # larger first: the later calls land on its leftovers
        cache = model.text_cache(torch.randn(batch, tokens, TEXT_DIM, generator=g),
                                 torch.arange(tokens)[None] < torch.randint(1, tokens + 1, (batch, 1), generator=g))
        args = (torch.randn(batch, W, DIM, generator=g), torch.rand(batch, generator=g),
                torch.randn(batch, P, DIM, generator=g), torch.rand(batch, P, generator=g) > 0.3,
                torch.randn(batch, P + W, model.cfg.audio_dim, generator=g), cache)
        load(static, flatten(*args))
        out = _forward(model, static)
        assert out.shape[0] == 8 and torch.isfinite(out).all()
        torch.testing.assert_close(out[:batch], model(*args), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="do not fit 8 x 32"):
        load(static, flatten(*(torch.cat([a] * 3) for a in args[:5]), InstructionCache.stack([cache] * 3)))


def test_ddim_is_deterministic_given_noise_and_rejects_too_many_steps(model):
    P, W = model.cfg.prefix, model.cfg.window
    args = (torch.zeros(1, P, DIM), torch.zeros(1, P, dtype=torch.bool), torch.randn(1, P + W, model.cfg.audio_dim),
            model.instruction_cache(None), [])
    noise = torch.randn(1, W, DIM)
    torch.testing.assert_close(ddim_sample(model, noise, 4, *args), ddim_sample(model, noise, 4, *args))
    with pytest.raises(ValueError, match="between 1 and 8"):
        ddim_sample(model, noise, 9, *args)


# --- streaming sampler ----------------------------------------------------------------------------------------

def test_generate_is_deterministic_per_seed_and_in_range(model):
    enc = HashedTextEncoder()
    audio = speechlike(1.5)
    a = generate(model, enc, audio, "smile", seed=1).values
    b = generate(model, enc, audio, "smile", seed=1).values
    c = generate(model, enc, audio, "smile", seed=2).values
    assert a.shape == (-(-len(audio) // 640), DIM)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert (a >= LO - 1e-6).all() and (a <= HI + 1e-6).all()


def test_streaming_equals_offline(model):
    enc = HashedTextEncoder()
    audio = speechlike(2.0, seed=4)[:31_000]  # not a whole number of frames
    offline = generate(model, enc, audio, "raise your eyebrows", seed=5).values
    sampler = StreamingSampler(model, enc, seed=5)
    sampler.set_instruction("raise your eyebrows")
    rng = np.random.default_rng(0)
    parts, i = [], 0
    while i < len(audio):
        n = int(rng.integers(10, 3000))
        parts.append(sampler.push(audio[i:i + n]))
        # motion never runs ahead of the audio, and lags it by at most chunk + lookahead (+ one hop)
        assert -1e-9 <= sampler.latency_s <= sampler.chunk_s + sampler.lookahead_s + 0.01
        i += n
    parts.append(sampler.flush())
    streamed = np.concatenate(parts)
    assert sampler.frames_emitted == len(streamed) == len(offline) == -(-len(audio) // 640)
    np.testing.assert_allclose(streamed, offline, atol=STREAM_ATOL)
    with pytest.raises(SamplerError, match="after flush"):
        sampler.push(audio[:100])


def test_an_embedding_given_with_the_instruction_is_not_encoded_again(model):
    """The server encodes off the event loop and hands the embedding to the worker with the command."""
    audio = speechlike(1.0, seed=2)
    expected = generate(model, HashedTextEncoder(), audio, "nod slowly", seed=1).values

    def no_encoder(text):
        raise AssertionError(f"encoded {text!r} again")

    sampler = StreamingSampler(model, no_encoder, seed=1)
    sampler.set_instruction("nod slowly", 1.0, embedding=HashedTextEncoder()("nod slowly"))
    got = np.concatenate([sampler.push(audio), sampler.flush()])
    np.testing.assert_array_equal(got, expected)


def test_instruction_switch_applies_next_chunk_with_a_ramp(model):
    enc = HashedTextEncoder()
    audio = speechlike(3.0)
    cfg = SamplerConfig(transition_s=0.48)
    base = StreamingSampler(model, enc, cfg, seed=0)
    switched = StreamingSampler(model, enc, cfg, seed=0)
    half = 640 * 40
    a1, b1 = base.push(audio[:half]), switched.push(audio[:half])
    np.testing.assert_array_equal(a1, b1)
    switched.set_instruction("open your mouth wide", 1.0)
    a2 = np.concatenate([base.push(audio[half:]), base.flush()])
    b2 = np.concatenate([switched.push(audio[half:]), switched.flush()])
    diff = np.abs(a2 - b2).mean(1)
    w = model.cfg.window
    assert diff[:w].mean() > 0  # applies from the very next chunk
    # the ramp: the first switched chunk moves less than the fully switched ones
    assert diff[:w].mean() < diff[3 * w:].mean()


def test_sampler_rejects_bad_input(model):
    sampler = StreamingSampler(model, None)
    with pytest.raises(SamplerError, match="mono"):
        sampler.push(np.zeros((10, 2), np.float32))
    with pytest.raises(SamplerError, match="NaN"):
        sampler.push(np.array([np.nan], np.float32))
    with pytest.raises(SamplerError, match="between 0 and 1"):
        sampler.set_instruction("smile", 1.5)
    with pytest.raises(SamplerError, match="InstructionEncoder"):
        sampler.set_instruction("smile")


# --- checkpoints and training ---------------------------------------------------------------------------------

def test_checkpoint_roundtrip(model, tmp_path):
    model.cfg.features.mean, model.cfg.features.std = [0.5] * 80, [2.0] * 80
    try:
        save_generator(model, tmp_path / "ck", {"step": 7})
        loaded = load_generator(tmp_path / "ck")
    finally:
        model.cfg.features.mean, model.cfg.features.std = [], []
    assert loaded.cfg.features.mean == [0.5] * 80
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with pytest.raises(CheckpointError, match="no generator checkpoint"):
        load_generator(tmp_path / "missing")


def write_tiny_corpus(path, items: int = 12) -> None:
    """Speech-like bursts whose envelope drives jaw_open, visemes = voiced/unvoiced, two instructions that
    set a constant smile or brow raise (so the instruction is learnable)."""
    from realtime.training.corpus.format import CorpusItem, CorpusWriter

    with CorpusWriter(path) as writer:
        for i in range(items):
            audio = speechlike(2.0 + (i % 3) * 0.4, seed=i)
            frames = len(audio) // 640
            env = np.abs(audio[: frames * 640]).reshape(frames, 640).mean(1)
            motion = np.zeros((frames, DIM), np.float32)
            motion[:, INDEX["jaw_open"]] = np.clip(env * 8, 0, 1)
            instruction = ["smile", "raise your eyebrows", ""][i % 3]
            if instruction == "smile":
                motion[:, INDEX["smile"]] = 0.8
            elif instruction:
                motion[:, INDEX["brow_inner_up"]] = 0.8
            visemes = (env > 0.02).astype(np.int8)
            writer.write(CorpusItem(audio=audio, motion=motion, visemes=visemes, instruction=instruction))


def test_tiny_training_reduces_loss_and_resumes(tmp_path):
    write_tiny_corpus(tmp_path / "corpus")
    cfg = TrainConfig(model="tiny", steps=80, segments=4, windows_per_segment=4, segment_frames=24, lr=3e-3,
                      warmup=10, log_every=10, checkpoint_every=40, threads=1, stats_items=8)
    train(tmp_path / "corpus", tmp_path / "run", cfg, embedder=HashedTextEncoder().batch, progress=False)
    import json

    history = json.loads((tmp_path / "run" / "history.json").read_text())
    first, last = history[0]["loss"], history[-1]["loss"]
    assert last < 0.7 * first, (first, last)
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    model = load_generator(tmp_path / "run")
    assert model.cfg.features.mean and len(model.cfg.features.mean) == 80
    cfg.steps = 90
    train(tmp_path / "corpus", tmp_path / "run", cfg, resume=True, embedder=HashedTextEncoder().batch, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["step"] == 90 and history[0]["step"] == 10


def test_real_instruction_encoder_feeds_the_model(model):
    """The project's MiniLM InstructionEncoder plugs into instruction_cache, the sampler and the trainer."""
    from realtime.instruct import InstructionEncoder
    from realtime.training.generator import minilm_embedder

    encoder = InstructionEncoder().setup()
    cache = model.instruction_cache(encoder("smile warmly"))
    assert cache.kv[0][0].shape[:2] == (1, model.cfg.n_heads) and cache.mask.all()
    motion = generate(model, encoder, speechlike(0.6), "look very surprised", seed=0)
    assert len(motion) == 15
    tokens, mask = minilm_embedder()(["nod", "look a little sad while you talk"])
    assert tokens.shape[0] == 2 and tokens.shape[-1] == TEXT_DIM and mask[0].sum() < mask[1].sum()


# --- the shipped checkpoint -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return load_generator()  # realtime/motion/checkpoints/: must be there


def test_shipped_generator_rests_in_silence_with_idle_life(shipped):
    motion = generate(shipped, None, np.zeros(SR * 4, np.float32), None, seed=0).values
    assert motion.shape == (100, DIM)
    jaw, lips = motion[:, INDEX["jaw_open"]], motion[:, INDEX["lips_close"]]
    assert jaw.mean() < 0.1 and lips.mean() > 0.5  # the teacher rests the lips closed in silence
    head = motion[:, [INDEX["head_yaw"], INDEX["head_pitch"], INDEX["head_roll"]]]
    assert head.std(0).max() > 0.05  # not frozen: idle head motion (degrees)


def test_shipped_generator_opens_the_mouth_with_speech_and_closes_it_on_bilabials(shipped):
    from realtime.animate import viseme_labels
    from realtime.media import resample
    from realtime.speech import Espeak
    from realtime.vocab import Viseme

    speech = Espeak().setup()("Mama made my money, but Bob paid the bill.", voice="en-us")
    pad = 15  # frames of silence (0.6 s) either side, as a live call has
    audio = np.pad(resample(speech.audio, speech.sample_rate, SR), pad * SR // 25)
    motion = generate(shipped, None, audio, None, seed=0).values
    labels = viseme_labels(speech.phonemes, len(motion) - 2 * pad)
    talk = motion[pad:pad + len(labels)]
    jaw, lips = talk[:, INDEX["jaw_open"]], talk[:, INDEX["lips_close"]]
    quiet = np.concatenate([motion[:pad - 5], motion[-(pad - 5):]])[:, INDEX["jaw_open"]]
    vowels = np.isin(labels, [Viseme.OPEN, Viseme.MID])
    assert jaw[vowels].mean() > 0.15 and jaw[vowels].mean() > 4 * quiet.mean()
    runs = np.flatnonzero(np.diff(np.concatenate([[0], labels == Viseme.BILABIAL, [0]]).astype(int)) == 1)
    assert len(runs) >= 6
    ends = np.flatnonzero(np.diff(np.concatenate([[0], labels == Viseme.BILABIAL, [0]]).astype(int)) == -1)
    closed = [lips[max(a - 2, 0):b + 1].max() >= 0.5 for a, b in zip(runs, ends)]
    assert np.mean(closed) >= 0.5, closed


def test_a_checkpoint_without_negative_smile_still_relaxes_the_photographs_smile(shipped):
    """The shipped checkpoint predates `smile` < 0, so it cannot undo the photograph's smile that the teacher's
    sad, angry or neutral face undoes: the sampler adds that relaxation for what the wording asks, eased in, and
    never for a smile (the live path and `render` alike)."""
    from realtime.instruct import WordedEncoder

    assert shipped.output_lo[INDEX["smile"]] >= 0.0  # what makes the sampler add it
    encoder = WordedEncoder().setup()
    audio = speechlike(3.0)
    smile = {text: generate(shipped, encoder, audio, text, seed=0).values[:, INDEX["smile"]]
             for text in (None, "look sad", "look a little annoyed", "stop smiling", "smile and look sad")}
    assert smile[None].min() >= 0.0
    assert smile["look sad"][-25:].max() <= -0.9 and smile["stop smiling"][-25:].max() <= -0.9
    assert -0.8 <= smile["look a little annoyed"][-25:].mean() <= -0.5  # a slight level relaxes part of it
    assert smile["smile and look sad"].min() >= 0.0  # a smile asked for is not undone


def test_gestures_asked_for_are_performed_on_the_sampled_motion(shipped):
    """A nod or a head shake is a movement whose phase nothing in the conditioning fixes, and the sampled motion
    averaged it away (2.3 degrees of pitch while speaking, the teacher swings 8). The sampler performs the
    gestures the wording asks for with the teacher's programs, on top of the model's motion."""
    from realtime.animate import perform_program
    from realtime.instruct import WordedEncoder

    encoder = WordedEncoder(learned=shipped.programs).setup()
    audio = speechlike(4.0)

    def motion(text, **kw):
        return generate(shipped, encoder, audio, text, seed=0, performer=perform_program, **kw).values

    plain = motion(None)
    nod, shake, wink = motion("bob your head up and down"), motion("shake your head"), motion("give me a wink")
    assert np.ptp(nod[:, INDEX["head_pitch"]]) > 4 * np.ptp(plain[:, INDEX["head_pitch"]])
    assert np.ptp(nod[:, INDEX["head_pitch"]]) > 6.0
    assert np.ptp(shake[:, INDEX["head_yaw"]]) > 12.0 and np.ptp(shake[:, INDEX["head_pitch"]]) < 4.0
    assert (wink[:, INDEX["blink_right"]] > 0.9).sum() > (wink[:, INDEX["blink_left"]] > 0.9).sum() + 5
    # without the performer (or switched off) the motion is the model's own
    own = generate(shipped, encoder, audio, "bob your head up and down", seed=0).values
    off = motion("bob your head up and down", config=SamplerConfig(perform_gestures=False))
    assert np.allclose(own, off) and np.ptp(own[:, INDEX["head_pitch"]]) < 4.0
    # the server's sessions get their samplers from the assembly, which gives them the performer
    from realtime.assembly import AvatarParts
    from realtime.config import AvatarConfig

    live = AvatarParts(AvatarConfig(), shipped, encoder, portrait=None, trained=True).sampler(shared=False)
    live.set_instruction("bob your head up and down")
    pitch = [live.push(audio[:int(0.32 * SR)])]
    live.set_instruction("smile")  # the first nod, under way, finishes...
    pitch.append(live.push(audio[int(0.32 * SR):int(0.44 * SR)]))
    live.set_instruction("bob your head up and down")  # ...and, asked for again, keeps going: no cut mid-swing
    pitch = np.concatenate(pitch + [live.push(audio[int(0.44 * SR):]), live.flush()])[:, INDEX["head_pitch"]]
    assert np.ptp(pitch) > 6.0 and np.abs(np.diff(pitch)).max() < 2.5
    # a program added to the vocabulary after the checkpoint was trained (the directed head tilt) is performed
    # by the sampler, and the generator, which never learned it, is not given it
    assert "tilt_head_left" not in shipped.programs and encoder.understood("tilt your head to the left").wording == ""
    left, right = motion("tilt your head to the left"), motion("lean your head over to the right")
    assert left[-25:, INDEX["head_roll"]].mean() < -6.0 < 6.0 < right[-25:, INDEX["head_roll"]].mean()
    assert abs(plain[-25:, INDEX["head_roll"]].mean()) < 3.0
