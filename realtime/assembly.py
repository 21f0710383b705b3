"""The pipeline's parts, assembled once from an AvatarConfig: portrait → renderer, checkpoint → generator,
the instruction encoder, and samplers over them. The server, `avatar render` and the benchmarks all build here.

The generator, encoder, portrait and renderer are shared by every stream: none is mutated after setup. Each
stream gets its own sampler (it holds the stream's state); a server's samplers run their DDIM windows on one
SharedDenoiser thread, which batches the windows that wait together.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from realtime.config import AvatarConfig, WorkerConfig
from realtime.vocab import MODEL_RATE, PROGRAM_NAMES

log = logging.getLogger(__name__)


class AssemblyError(RuntimeError):
    """The parts cannot be built: no generator checkpoint, no face in the portrait, …"""


def apply_threads(worker: WorkerConfig) -> None:
    """The process-wide CPU thread count, set in this one place."""
    if worker.threads:
        from realtime.avatar import set_cpu_threads

        set_cpu_threads(worker.threads)


@dataclass
class AvatarParts:
    config: AvatarConfig
    model: Any  # realtime.motion.model.MotionGenerator (eval mode, never mutated)
    encoder: Any  # realtime.instruct.InstructionEncoder (set up, LRU-cached, thread-safe for reads)
    portrait: Any  # realtime.avatar.Portrait
    trained: bool  # False = a randomly initialised generator (development only)
    _renderer: Any = field(default=None, repr=False)  # realtime.avatar.Renderer, built on first use
    _denoiser: Any = field(default=None, repr=False)  # realtime.motion.batcher.SharedDenoiser, started on first use

    @classmethod
    def load(cls, config: AvatarConfig, encoder: bool = True) -> AvatarParts:
        """Enrols `config.server.image` and loads `config.server.checkpoint` (None: the shipped ones); without
        `encoder`, streams take no instructions (and the MiniLM load is saved)."""
        import torch

        from realtime.avatar import enrol
        from realtime.instruct import WordedEncoder
        from realtime.motion.checkpoint import CheckpointError, load_generator

        config.check()
        apply_threads(config.worker)
        server = config.server
        try:
            portrait = enrol(server.image)
        except (ValueError, FileNotFoundError) as exc:
            raise AssemblyError(f"cannot enrol the portrait {server.image or '(default)'}: {exc}") from exc
        trained = True
        try:
            model = load_generator(server.checkpoint)
        except CheckpointError as exc:
            if not server.allow_untrained:
                raise AssemblyError(str(exc)) from exc
            from realtime.motion.model import GeneratorConfig, MotionGenerator

            log.warning("%s; running an UNTRAINED generator (allow_untrained)", exc)
            torch.manual_seed(server.seed)
            model = MotionGenerator(GeneratorConfig()).eval().requires_grad_(False)
            trained = False
        cfg = model.cfg
        config.check_model(cfg.window, model.audio.receptive_field()[1], cfg.d_model, cfg.n_heads)
        learned = getattr(model, "programs", PROGRAM_NAMES)  # what its checkpoint learned (an untrained one: all)
        text = WordedEncoder(config.encoder, learned=learned).setup() if encoder else None
        return cls(config=config, model=model, encoder=text, portrait=portrait, trained=trained)

    def renderer(self):
        if self._renderer is None:
            from realtime.avatar import Renderer

            self._renderer = Renderer(self.portrait, self.config.renderer).setup()
        return self._renderer

    def denoiser(self):
        if self._denoiser is None:
            from realtime.motion.batcher import SharedDenoiser

            # a daemon thread, idle while nobody calls
            self._denoiser = SharedDenoiser(self.model, device=self.config.worker.denoiser).start()
        return self._denoiser

    def sampler(self, seed: int = 0, shared: bool = True):
        """A new stream's sampler; `shared` runs its windows on the shared denoiser (a server's many streams)."""
        from realtime.animate import perform_program
        from realtime.motion.sampler import StreamingSampler

        return StreamingSampler(self.model, self.encoder, self.config.sampler, seed=seed,
                                denoiser=self.denoiser() if shared else None, performer=perform_program)

    def warm_up(self) -> None:
        """One throwaway chunk and frame, so the first caller does not pay for torch's first calls."""
        import numpy as np

        motion = self.sampler().push(np.zeros(MODEL_RATE // 2, np.float32))
        self.renderer()(motion[:1])

    def describe(self) -> dict[str, Any]:
        return {"trained": self.trained, "parameters": int(self.model.num_params()),
                "portrait": str(getattr(self.portrait, "source", "")) or None}
