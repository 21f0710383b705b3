"""Server settings: the [server] section of the composed config (realtime/config.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_max_sessions(admit_by_load: bool = True) -> int:
    """The ceiling when `max_sessions` is not set. Admitted by measured load, the load decides below a generous
    ceiling (4 per core: what the issue #12 target, 4 calls on 2 cores, needs, with room); without it, one call
    per core (one session cost ~0.9 core, benchmarks/RESULTS.md)."""
    return max(1, available_cores()) * (4 if admit_by_load else 1)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, within a cgroup CPU quota (a container) if one is set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return cores


def default_workers() -> int:
    """`--workers auto`: one worker per core. A worker is one Python process, so one GIL: its sessions' pacing,
    RTP/SRTP, encoding and the event loop share one core at most (with two sessions in one process 57 % of two
    cores stayed idle while both repeated frames); more workers than cores only add copies of the model."""
    return max(1, os.cpu_count() or 1)


MAX_WORKERS = 64


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    image: Path | None = None  # portrait; None = the bundled astronaut
    token: str | None = None  # controllers must authenticate with it; None = loopback controllers only
    # A hard cap on concurrent calls. None: admission by measured load decides (below 4 per core), or one per core
    # when admit_by_load is off. The in-process server's limit; with workers, slots are workers x sessions_per_worker.
    max_sessions: int | None = None
    idle_timeout_s: float = 30.0  # a session that sends no audio and no message for this long is closed
    checkpoint: Path | None = None  # generator checkpoint dir; None = the one shipped with the package
    allow_untrained: bool = False  # development only: run a randomly initialised generator if none loads
    seed: int = 0
    # Playout: frames wait this many extra ticks (40 ms each) before they are shown. 0: the tick phase is
    # aligned to the generator's output instead (ticks fall `playout_margin_ms` after frames are ready), a late
    # chunk costs one repeated frame and a tick of delay, which is given back (a frame dropped) once frames
    # have waited at every tick of a `trim_window_s` window.
    jitter_frames: int = 0
    playout_margin_ms: float = 10.0
    trim_window_s: float = 1.0
    # RTP audio packets (20 ms each) held before the first is decoded: aiortc's default 4 costs ~80 ms of
    # latency and only helps on links that reorder packets. 0: each packet is decoded on arrival (its buffer
    # cannot tell a packet is complete before the next one arrives, so 1 still costs 20 ms).
    audio_prefetch_packets: int = 0
    max_buffered_frames: int = 10  # beyond this the oldest frames are dropped to bound latency
    # A worker that runs slower than real time (a CPU shared with other sessions or programs) keeps latency
    # bounded instead of building a queue: a frame whose audio arrived more than `late_frame_s` before the worker
    # reaches it keeps the previous picture (its voice still plays), and audio waiting beyond `max_backlog_s` is
    # skipped. Without these an overloaded call settled at ~0.85 s glass-to-glass and stayed there.
    late_frame_s: float = 0.25
    max_backlog_s: float = 0.3
    # An audio gap longer than this is filled with silence so the face keeps its idle life.
    silence_fill_s: float = 0.12
    max_message_bytes: int = 256 * 1024
    ice_servers: tuple[str, ...] = ()  # e.g. ("stun:stun.l.google.com:19302",); none needed on a LAN
    ice_username: str | None = None  # for the turn:/turns: entries of ice_servers (e.g. coturn's --user)
    ice_credential: str | None = None
    portraits: Path | None = None  # a folder of portraits callers may choose by name (`portrait` in an offer)
    portrait_cache_mb: float = 512.0  # renderers of chosen/uploaded portraits kept in memory, by content
    # Who may reach the server. A browser page of another origin must not drive it (cross-site WebSocket), and
    # a request naming another host is a DNS-rebinding attempt: both are refused with 403.
    allowed_origins: tuple[str, ...] = ()  # origins besides the server's own, e.g. ("https://studio.example",)
    allowed_hosts: tuple[str, ...] = ()  # Host names besides IP literals, localhost and this machine's name
    require_token_for_calls: bool = False  # offers (and viewing) need the token too, not only control
    cert: Path | None = None  # PEM certificate chain: serve HTTPS/WSS (browsers give the mic only to secure
    key: Path | None = None  # origins beyond localhost); with its private key
    # Bounds on what one caller can make the server hold or do.
    connect_timeout_s: float = 15.0  # an answered peer that has not reached "connected" by then is dropped
    disconnect_grace_s: float = 5.0  # ICE "disconnected" for longer than this ends the session
    stall_timeout_s: float = 5.0  # a worker holding work without finishing a step for this long has stalled
    instruct_timeout_s: float = 10.0  # an instruction not acknowledged by then fails (never hangs)
    max_pending_instructions: int = 4  # per session, being encoded or waiting for the worker
    max_channel_messages: int = 16  # data-channel messages queued per session before new ones are refused
    message_rate: float = 20.0  # messages per second per connection (WebSocket or data channel), sustained
    message_burst: int = 40  # and in a burst
    # The process model (server/front.py, router.py, worker.py). 0: every session in this one process (one GIL).
    # N: N worker processes, started once, each loading model and portrait and owning up to
    # `sessions_per_worker` whole sessions (peer connections, pipeline, viewers); this process keeps the page,
    # /ws, /api and WHIP/WHEP and routes signalling and control to them. Capacity is then workers x
    # sessions_per_worker (max_sessions applies to the in-process mode only), within the admission by load.
    workers: int = 0
    sessions_per_worker: int = 1  # one session costs ~half a core of CPU plus its share of one GIL
    worker_start_timeout_s: float = 180.0  # loading model, encoder and portrait; a worker not up by then failed
    worker_request_timeout_s: float = 30.0  # a message forwarded to a worker not answered by then fails
    worker_poll_s: float = 1.0  # how often the front reconciles its routing table with the workers' sessions
    # Scale-out (server/ray_workers.py): the workers are Ray actors placed on the nodes of a cluster. None: local
    # worker processes. "local": start a Ray instance here (or join $RAY_ADDRESS); else a cluster address
    # ("auto", "HOST:6379", "ray://HOST:10001"). With Ray and workers = 0, one worker per ray_worker_cpus.
    ray: str | None = None
    ray_worker_cpus: float = 1.0  # CPUs Ray reserves for each worker actor (one session costs ~half a core)
    # Admission by measured load (server/load.py): a new call is refused as `server busy` unless the machine's busy
    # cores (every process, over the last load_window_s), plus the cost of the sessions not yet in that window,
    # plus one more session fit in admit_max_load of its cores; the process that would own it stays within
    # admit_process_max_load cores (one GIL: two calls in one process kept 1.28 cores busy while both repeated
    # frames); and no call repeated more than admit_max_repeats frames in the window. A server with no call
    # always takes one. The cost of a session is measured (the process's CPU per session, all sessions settled);
    # before any was, session_cost_prior is used (one call kept its server 0.90-0.98 core busy, in-process and in a
    # worker process, benchmarks/RESULTS.md 2026-12-03).
    admit_by_load: bool = True
    admit_max_load: float = 0.9  # fraction of the cores
    admit_process_max_load: float = 1.0  # cores
    admit_max_repeats: int = 2  # repeated frames per call in the window before it counts as falling behind
    admit_cores: float | None = None  # cores to plan with; None = the CPU affinity within the cgroup quota
    session_cost_prior: float = 0.95  # cores per session until one is measured
    load_window_s: float = 3.0
    # Benchmarks only (server/replay.py): sessions show this .npy loop of pre-rendered frames instead of running
    # the generator and renderer, so a run measures what calls cost with no model or render work (the floor).
    replay_frames: Path | None = None

    def __post_init__(self) -> None:
        if self.max_sessions is not None and self.max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.late_frame_s <= 0:
            raise ValueError(f"late_frame_s must be > 0 s, got {self.late_frame_s}")
        if not 0 < self.admit_max_load <= 1:
            raise ValueError(f"admit_max_load must be in (0, 1] (a fraction of the cores), got {self.admit_max_load}")
        for name in ("admit_process_max_load", "session_cost_prior", "load_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.admit_cores is not None and not self.admit_cores > 0:
            raise ValueError(f"admit_cores must be > 0 (or unset), got {self.admit_cores}")
        if self.admit_max_repeats < 0:
            raise ValueError(f"admit_max_repeats must be >= 0, got {self.admit_max_repeats}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.image is not None:
            self.image = Path(self.image)
        if self.checkpoint is not None:
            self.checkpoint = Path(self.checkpoint)
        if self.portraits is not None:
            self.portraits = Path(self.portraits)
        if self.replay_frames is not None:
            self.replay_frames = Path(self.replay_frames)
            if not self.replay_frames.is_file():
                raise ValueError(f"replay_frames file not found: {self.replay_frames}")
        if (self.cert is None) != (self.key is None):
            raise ValueError("HTTPS needs both a certificate and its key (--cert FILE --key FILE)")
        for name in ("cert", "key"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
                if not getattr(self, name).is_file():
                    raise ValueError(f"{name} file not found: {getattr(self, name)}")
        self.allowed_origins = tuple(o.rstrip("/").lower() for o in self.allowed_origins)
        self.allowed_hosts = tuple(h.lower() for h in self.allowed_hosts)
        if self.message_rate <= 0 or self.message_burst < 1:
            raise ValueError("message_rate must be > 0 and message_burst >= 1")
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 0..{MAX_WORKERS} (0 = sessions in the server's own process), "
                             f"got {self.workers}")
        if self.ray_worker_cpus <= 0:
            raise ValueError(f"ray_worker_cpus must be > 0, got {self.ray_worker_cpus}")
        if self.sessions_per_worker < 1:
            raise ValueError(f"sessions_per_worker must be >= 1, got {self.sessions_per_worker}")
        if min(self.worker_start_timeout_s, self.worker_request_timeout_s, self.worker_poll_s) <= 0:
            raise ValueError("worker_start_timeout_s, worker_request_timeout_s and worker_poll_s must be > 0")

    @property
    def session_cap(self) -> int:
        """The hard cap on concurrent calls in one process (see max_sessions)."""
        return self.max_sessions if self.max_sessions is not None else default_max_sessions(self.admit_by_load)

    @property
    def cores(self) -> float:
        """The cores admission plans with."""
        return self.admit_cores if self.admit_cores is not None else float(available_cores())

    @property
    def tls(self) -> bool:
        return self.cert is not None
