"""The audio encoder run incrementally over a stream: each motion frame's states are computed once.

The sampler needs the audio states of the prefix and the chunk, [n - P, n + W), every chunk. Run on a window, the
encoder recomputes every layer over the whole receptive field (past + P + W + future = 75 frames) for W = 2 new
frames: ~2.9 ms a chunk, 36 ms per session-second. Every layer is position-wise except one depthwise convolution
of fixed span, so the new frames of each layer follow from the last frames of the layer below: this keeps each
layer's recent outputs and computes only the new ones. The states equal the windowed encoder's to float rounding
(tests/test_generator.py holds them to 1e-5), because a used output never reads the window's zero padding.
"""
from __future__ import annotations

import threading
import warnings
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from realtime.motion.batcher import TRACE_LOCK
from realtime.motion.features import FEATURES_PER_MOTION_FRAME
from realtime.motion.model import AudioEncoder


class StreamingAudioStates:
    """`states(window, window_first, first, last)`: (1, last - first, A) states of motion frames [first, last), given
    the features of motion frames [window_first, last + future) (4 feature frames each, in stream order). The
    sampler asks for [n - P, n + W), then [n + W - P, n + 2W): consecutive calls overlap by `overlap` (P) frames.
    A call that does not continue the previous one starts over from its window."""

    def __init__(self, encoder: AudioEncoder, overlap: int, step: Step | _Traced | None = None):
        """`step`: the steady-state step as a trace (`traced_step`), shared by the streams of one encoder."""
        self.encoder, self.overlap, self.step = encoder, overlap, step
        self.sub = FEATURES_PER_MOTION_FRAME
        self.spans = [b.pad for b in encoder.blocks]  # (left, right) frames each block's output reads
        self.past, self.future = encoder.receptive_field()
        self._layers: list[torch.Tensor] = []  # rows of block i's input (i = len(blocks): the last block's output)
        self._ends: list[int] = []  # the motion frame after each layer's last row
        self._next: int | None = None  # the `first` that continues this stream

    def states(self, window: torch.Tensor, window_first: int, first: int, last: int) -> torch.Tensor:
        assert window.shape[0] == (last + self.future - window_first) * self.sub, (window.shape, window_first, last)
        with torch.inference_mode():
            new = last - first - self.overlap  # frames the steady state adds (W)
            if first == self._next and self._layers and self.step is not None and new == self.step.frames:
                states, self._layers = self.step(window[-(new + 1) * self.sub:], self._layers)
                self._ends = [end + new for end in self._ends]
                self._next = last - self.overlap
                return states[None]
            if first == self._next and self._layers:
                self._extend(window, window_first, last)
            else:
                self._start(window, window_first, first)
            assert self._ends[-1] == last, (self._ends, last)
            self._next = last - self.overlap
            rows = self._layers[-1][-(last - first):]
            self._trim()
            return self.encoder.norm(rows)[None]

    def _start(self, window: torch.Tensor, window_first: int, first: int) -> None:
        """The whole window, as the windowed encoder runs it, keeping each layer's rows that read no padding."""
        enc, sub = self.encoder, self.sub
        x = enc.subsample(F.pad(window.T[None], (sub, 0)))[0].T[1:]  # the first row read the zero padding
        lo, end = window_first + 1, window_first + 1 + x.shape[0]
        self._layers, self._ends = [x], [end]
        for block, (left, right) in zip(enc.blocks, self.spans):
            x = self._block(block, x)
            lo, end = lo + left, end - right
            self._layers.append(x)
            self._ends.append(end)
        assert lo <= first, f"the window starts too late: frame {first} needs features from frame {first - self.past}"

    def _extend(self, window: torch.Tensor, window_first: int, last: int) -> None:
        enc, sub = self.encoder, self.sub
        start = self._ends[0]  # the next subsampled frame reads the features of frames start - 1 and start
        new = enc.subsample(window[(start - 1 - window_first) * sub:].T[None])[0].T
        self._layers[0] = torch.cat([self._layers[0], new])
        self._ends[0] = start + new.shape[0]
        for i, (block, (left, _)) in enumerate(zip(enc.blocks, self.spans)):
            start = self._ends[i + 1]
            new = self._block(block, self._layers[i][-(self._ends[i] - start + left):])
            self._layers[i + 1] = torch.cat([self._layers[i + 1], new])
            self._ends[i + 1] = start + new.shape[0]

    @staticmethod
    def _block(block, x: torch.Tensor) -> torch.Tensor:
        """AudioBlock.forward on rows x (T, A) without padding: the T - left - right rows that read only x."""
        left, right = block.pad
        y = x[left: x.shape[0] - right] + block.conv(block.norm1(x).T[None])[0].T
        return y + block.mlp(block.norm2(y))

    def _trim(self) -> None:
        """Keep what the next call reads: each block's last `left + right` input rows, the output's overlap."""
        keep = [left + right for left, right in self.spans] + [self.overlap]
        self._layers = [rows[-k:] if k else rows[:0] for rows, k in zip(self._layers, keep)]


class Step(nn.Module):
    """One steady-state call of StreamingAudioStates as a module (what torch.jit.trace takes): the features of the
    `frames` new frames and the one before, each layer's kept rows -> the states of overlap + frames rows, and
    the rows to keep next. The convolutions as gathers and products: on a few rows oneDNN's convolution costs
    ~120 us a call (a third of the step), the same sums as tensor products ~10 us."""

    def __init__(self, encoder: AudioEncoder, frames: int):
        super().__init__()
        self.encoder, self.frames = encoder, frames
        sub = encoder.subsample  # (A, n_mels, 2 * sub) at stride sub: a linear map of two frames' features
        self.sub_weight = nn.Parameter(sub.weight.detach().permute(0, 2, 1).reshape(sub.out_channels, -1),
                                       requires_grad=False)
        self.sub_bias = nn.Parameter(sub.bias.detach().clone(), requires_grad=False)
        self.taps = nn.ParameterList([nn.Parameter(b.conv.weight.detach()[:, 0].T.contiguous(), requires_grad=False)
                                      for b in encoder.blocks])  # (kernel, A) per block
        for i, block in enumerate(encoder.blocks):  # output row r reads rows r + j * dilation
            rows = torch.arange(frames)[:, None] + torch.arange(block.conv.kernel_size[0]) * block.conv.dilation[0]
            self.register_buffer(f"rows{i}", rows, persistent=False)

    def forward(self, feats: torch.Tensor, kept: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        enc, w = self.encoder, self.frames
        pairs = feats.reshape(w + 1, -1)
        x = F.linear(torch.cat([pairs[:-1], pairs[1:]], 1), self.sub_weight, self.sub_bias)
        keep = []
        for i, block in enumerate(enc.blocks):
            rows = torch.cat([kept[i], x])
            keep.append(rows[w:])
            h = block.norm1(rows)[getattr(self, f"rows{i}")]  # (w, kernel, A)
            left = block.pad[0]
            y = rows[left:left + w] + (h * self.taps[i]).sum(1) + block.conv.bias
            x = y + block.mlp(block.norm2(y))
        out = torch.cat([kept[-1], x])
        keep.append(out[w:])
        return enc.norm(out), keep


def traced_step(encoder: AudioEncoder, frames: int, overlap: int) -> _Traced:
    """`Step` as a frozen CPU TorchScript trace: ~25 small operations with no Python between them (equal to the
    eager step to float rounding; tests/test_generator.py)."""
    spans = [left + right for left, right in (b.pad for b in encoder.blocks)] + [overlap]
    dim = encoder.norm.normalized_shape[0]
    example = (torch.zeros((frames + 1) * FEATURES_PER_MOTION_FRAME, encoder.subsample.in_channels),
               [torch.zeros(k, dim) for k in spans])
    with TRACE_LOCK, torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(Step(encoder, frames).eval(), example, check_trace=False)
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    return _Traced(traced, frames)


class _Traced:
    """The traced step, one call at a time: every session's thread shares it, and TorchScript's executor
    specialises a graph on its first runs (not checked safe from several threads at once). A call is ~0.8 ms,
    12.5 a second per session: the lock is rarely contended."""

    def __init__(self, module, frames: int):
        self.module, self.frames = module, frames
        self._lock = threading.Lock()

    def __call__(self, feats: torch.Tensor, kept: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with self._lock:
            return self.module(feats, kept)


_LOCK = threading.Lock()
_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder -> (frames, overlap, weights), step


def shared_step(encoder: AudioEncoder, frames: int, overlap: int) -> _Traced | None:
    """The traced step for `encoder` as its weights are now, traced once per process and shared by every stream
    (~0.1 s); traced again if the weights changed since (training updates them in place). None off the CPU."""
    params = list(encoder.parameters())
    if params[0].device.type != "cpu":
        return None
    key = (frames, overlap, tuple(p._version for p in params))
    with _LOCK:
        cached = _STEPS.get(encoder)
        if cached is None or cached[0] != key:
            cached = _STEPS[encoder] = (key, traced_step(encoder, frames, overlap))
        return cached[1]
