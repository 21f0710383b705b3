"""What every session shares, loaded once per server: the motion generator, the instruction encoder, the
enrolled portrait and its renderer. Each session gets its own sampler (it holds per-stream state); the renderer
is built once (its setup takes about a second) and shared, since rendering reads its tensors and mutates nothing.
The samplers' DDIM windows all run on one SharedDenoiser thread, which batches the windows that wait together."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from realtime.server.config import ServerConfig
from realtime.vocab import MODEL_RATE

log = logging.getLogger(__name__)


class ResourceError(RuntimeError):
    """The server cannot start: no generator checkpoint, no face in the portrait, …"""


@dataclass
class AvatarResources:
    model: Any  # realtime.motion.model.MotionGenerator (eval mode, never mutated)
    encoder: Any  # realtime.instruct.InstructionEncoder (set up, LRU-cached, thread-safe for reads)
    portrait: Any  # realtime.avatar.Portrait
    trained: bool  # False = a randomly initialised generator (development only)
    _renderer: Any = field(default=None, repr=False)  # realtime.avatar.Renderer, built on first use
    _denoiser: Any = field(default=None, repr=False)  # realtime.motion.batcher.SharedDenoiser, started on first use

    @classmethod
    def load(cls, config: ServerConfig) -> AvatarResources:
        import torch

        from realtime.avatar import enrol
        from realtime.instruct import InstructionEncoder
        from realtime.motion.checkpoint import CheckpointError, load_generator

        try:
            portrait = enrol(config.image)
        except (ValueError, FileNotFoundError) as exc:
            raise ResourceError(f"cannot enrol the portrait {config.image or '(default)'}: {exc}") from exc
        trained = True
        try:
            model = load_generator(config.checkpoint)
        except CheckpointError as exc:
            if not config.allow_untrained:
                raise ResourceError(str(exc)) from exc
            from realtime.motion.model import GeneratorConfig, MotionGenerator

            log.warning("%s; running an UNTRAINED generator (allow_untrained)", exc)
            torch.manual_seed(config.seed)
            model = MotionGenerator(GeneratorConfig()).eval().requires_grad_(False)
            trained = False
        encoder = InstructionEncoder()
        encoder.setup()
        resources = cls(model=model, encoder=encoder, portrait=portrait, trained=trained)
        resources.warm_up()
        return resources

    def warm_up(self) -> None:
        """One throwaway chunk and frame, so the first caller does not pay for torch's first calls."""
        import numpy as np

        from realtime.motion.sampler import StreamingSampler

        sampler = StreamingSampler(self.model, self.encoder, denoiser=self.denoiser())
        motion = sampler.push(np.zeros(MODEL_RATE // 2, np.float32))
        self.renderer()(motion[:1])

    def renderer(self):
        if self._renderer is None:
            from realtime.avatar import RenderConfig, Renderer

            self._renderer = Renderer(self.portrait, RenderConfig()).setup()
        return self._renderer

    def denoiser(self):
        if self._denoiser is None:
            from realtime.motion.batcher import SharedDenoiser

            self._denoiser = SharedDenoiser(self.model).start()  # a daemon thread, idle while nobody calls
        return self._denoiser

    def describe(self) -> dict[str, Any]:
        return {"trained": self.trained, "parameters": int(self.model.num_params()),
                "portrait": str(getattr(self.portrait, "source", "")) or None}
