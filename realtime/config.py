"""One composed configuration: `AvatarConfig` = server + sampler + encoder + renderer + worker sections.

`avatar serve --config FILE` reads it from TOML (one table per section, keys = the sections' dataclass fields,
so a field added to a section's dataclass is settable at once); flags override the file; `render` and `bench`
build from the same object. Unknown keys and wrong types are refused with the key's full name
(`server.max_sessions`). Invariants between sections, and between the config and the loaded model, are checked
by `check()` and `check_model()`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import dacite

from realtime.avatar import RenderConfig
from realtime.devices import DEVICES
from realtime.instruct import EncoderConfig
from realtime.motion.sampler import SamplerConfig
from realtime.server.config import ServerConfig
from realtime.vocab import FPS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

MAX_DDIM_STEPS = 8


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the offending key."""


@dataclass
class WorkerConfig:
    """How a process that renders (the server, `render`, the benchmarks) uses the machine."""

    # torch and OpenCV intra-op threads, process-wide. Sessions run in parallel worker threads, and many small
    # ops make a second intra-op thread cost more than it gives. None = leave the libraries' default.
    threads: int | None = 1
    # Where the server's shared denoiser runs: "auto" (a GPU when torch sees one, its forward replayed from CUDA
    # graphs, realtime/motion/graphed.py), "cpu" (a TorchScript trace on the cores) or "cuda".
    denoiser: str = "auto"


@dataclass
class AvatarConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    renderer: RenderConfig = field(default_factory=RenderConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    @classmethod
    def of(cls, config: AvatarConfig | ServerConfig | None) -> AvatarConfig:
        """The composed config for callers that only set the server's part."""
        if isinstance(config, AvatarConfig):
            return config
        return cls(server=config) if config is not None else cls()

    def check(self) -> AvatarConfig:
        """The ranges and rules that the sections' own dataclasses do not check; returns self."""
        s = self.sampler
        _require(1 <= s.steps <= MAX_DDIM_STEPS, "sampler.steps", f"must be 1..{MAX_DDIM_STEPS} DDIM steps",
                 s.steps)
        _require(s.guidance >= 0, "sampler.guidance", "must be >= 0", s.guidance)
        _require(s.temperature > 0, "sampler.temperature", "must be > 0", s.temperature)
        _require(s.transition_s >= 0, "sampler.transition_s", "must be >= 0", s.transition_s)
        _require(s.border_ease_frames >= 0, "sampler.border_ease_frames", "must be >= 0", s.border_ease_frames)
        _require(s.prime_chunks >= 0, "sampler.prime_chunks", "must be >= 0", s.prime_chunks)
        _require(s.silence_gate_db >= 0, "sampler.silence_gate_db", "must be >= 0", s.silence_gate_db)
        _require(0 <= s.silence_gate_p <= 1, "sampler.silence_gate_p", "must be 0..1", s.silence_gate_p)
        _require(self.encoder.max_tokens >= 1, "encoder.max_tokens", "must be >= 1", self.encoder.max_tokens)
        _require(self.encoder.cache_size >= 0, "encoder.cache_size", "must be >= 0", self.encoder.cache_size)
        _require(self.renderer.device in DEVICES, "renderer.device", "must be auto, cpu or cuda",
                 self.renderer.device)
        _require(self.renderer.threads is None, "renderer.threads",
                 "is not set here: CPU threads are [worker] threads, one setting for the whole process",
                 self.renderer.threads)
        _require(self.worker.denoiser in DEVICES, "worker.denoiser", "must be auto, cpu or cuda", self.worker.denoiser)
        threads = self.worker.threads
        _require(threads is None or threads >= 1, "worker.threads", "must be >= 1 (or unset)", threads)
        return self

    def check_model(self, window: int, lookahead: int, d_model: int, n_heads: int) -> None:
        """Invariants against the loaded generator: its chunk of `window` frames waits `lookahead` more frames of
        audio, and its attention heads must fit the kernels."""
        from avatar_kernels import MAX_HEAD_DIM

        wait = window + lookahead  # frames a chunk's first frame waits for its audio
        _require(self.server.max_buffered_frames >= wait, "server.max_buffered_frames",
                 f"must hold one chunk and its lookahead ({window} + {lookahead} frames)",
                 self.server.max_buffered_frames)
        _require(self.server.max_backlog_s >= wait / FPS, "server.max_backlog_s",
                 f"must cover one chunk and its lookahead ({wait / FPS:.2f} s)", self.server.max_backlog_s)
        _require(self.server.late_frame_s >= wait / FPS + 0.05, "server.late_frame_s",  # + sampling, rendering
                 f"must leave time to sample and render after a chunk and its lookahead ({wait / FPS:.2f} s)",
                 self.server.late_frame_s)
        _require(self.sampler.border_ease_frames <= window, "sampler.border_ease_frames",
                 f"must be at most the model's chunk of {window} frames", self.sampler.border_ease_frames)
        assert d_model % n_heads == 0 and d_model // n_heads <= MAX_HEAD_DIM, (
            f"the generator's head dim {d_model}/{n_heads} does not fit the attention kernels (<= {MAX_HEAD_DIM})")

    def replace(self, section: str, **values: Any) -> AvatarConfig:
        """A copy with some fields of one section changed (the command line's overrides); None = keep."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        current = getattr(self, section)
        unknown = set(values) - {f.name for f in dataclasses.fields(current)}
        if unknown:
            raise ConfigError(f"unknown key {section}.{sorted(unknown)[0]}")
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} {rule}, got {value!r}")


def _known_keys(cls: type, data: dict[str, Any], where: str) -> None:
    """Every key of `data` (and of its nested tables) names a field of `cls`."""
    hints = get_type_hints(cls)
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in hints:
            kind = "section" if not where else "key"
            raise ConfigError(f"unknown {kind} {name}; known: {', '.join(hints)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table, got {type(value).__name__}")
            _known_keys(hints[key], value, name)


def _to_float(value: Any) -> Any:
    # TOML writes 2 for 2.0; a bool stays a bool, and fails the type check
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_dtype(value: Any) -> Any:
    import torch

    found = getattr(torch, value, None) if isinstance(value, str) else None
    return found if isinstance(found, torch.dtype) else value


def config_from_dict(data: dict[str, Any]) -> AvatarConfig:
    import torch

    _known_keys(AvatarConfig, data, "")
    options = dacite.Config(strict=True, cast=[Path, tuple], type_hooks={float: _to_float, torch.dtype: _to_dtype})
    sections = {}
    for f in dataclasses.fields(AvatarConfig):  # one section at a time, so that its own checks can be named
        try:
            sections[f.name] = dacite.from_dict(get_type_hints(AvatarConfig)[f.name], data.get(f.name, {}), options)
        except dacite.WrongTypeError as exc:
            raise ConfigError(f"{f.name}.{exc.field_path} must be {_type_name(exc.field_type)}, "
                              f"got {exc.value!r}") from None
        except dacite.DaciteError as exc:
            raise ConfigError(f"[{f.name}]: {exc}") from None
        except ValueError as exc:  # the section's own check (__post_init__)
            raise ConfigError(f"[{f.name}]: {exc}") from None
    return AvatarConfig(**sections).check()


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> AvatarConfig:
    """An AvatarConfig from a TOML file (sections and keys left out keep their defaults), then `overrides`
    ({section: {key: value}}, the command line's flags) over it; validated together."""
    data = read_toml(path) if path is not None else {}
    for section, values in (overrides or {}).items():
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{section} must be a table, got {type(table).__name__}")
        table.update(values)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
