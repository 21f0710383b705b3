"""The composed config: TOML sections over the dataclasses' defaults, flags over the file, the bad key named,
invariants checked, and `avatar serve --config FILE` on a real server process."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
import typing
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port, wait_until
from realtime.config import AvatarConfig, ConfigError, load_config
from realtime.server import build_parser, config_from_args

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "avatar.example.toml"


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "avatar.toml"
    path.write_text(text)
    return path


def test_the_example_file_loads_and_sets_what_it_says():
    config = load_config(EXAMPLE)
    assert config.server.max_sessions == 8 and config.server.admit_max_load == 0.9
    assert config.sampler.steps == 3 and config.worker.threads == 1
    assert config.renderer.device == "auto"


def _other_value(hint, value):
    """A TOML value of the field's type that differs from its default, or None for types TOML cannot write."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if kind is bool:
        return not value
    if kind is int:
        return (value or 0) + 3
    if kind is float:
        return (value or 0.0) + 0.25
    if kind is str:
        return "x" + (value or "")
    if kind is Path:
        return "some/file.png"
    if typing.get_origin(kind) is tuple:
        return ["a", "b"] if typing.get_args(kind)[0] is str else None
    return None


@pytest.mark.parametrize("section", [f.name for f in dataclasses.fields(AvatarConfig)])
def test_every_field_of_every_section_is_settable_from_toml(section):
    """Nothing lists the keys: a field added to a section's dataclass is a TOML key at once."""
    cls = typing.get_type_hints(AvatarConfig)[section]
    defaults = cls()
    table = {}
    for f in dataclasses.fields(cls):
        value = _other_value(typing.get_type_hints(cls)[f.name], getattr(defaults, f.name))
        if value is not None:
            table[f.name] = value
    # values that the sections' own checks would refuse are not the point here
    for key in ("cert", "key", "device", "denoiser", "replay_frames"):
        table.pop(key, None)
    if section == "renderer":
        table.pop("threads")  # refused: threads are [worker] threads
        table["field_step"] = 8  # must divide 32
    if section == "sampler":
        table["steps"] = 4
    if section == "server":
        table["admit_max_load"] = 0.5  # a fraction of the cores: at most 1
    config = load_config(None, {section: table})
    for key, value in table.items():
        got = getattr(getattr(config, section), key)
        assert got == (tuple(value) if isinstance(value, list) else Path(value) if isinstance(got, Path)
                       else value), key


@pytest.mark.parametrize("text, message", [
    ("[server]\nprot = 8080", "unknown key server.prot"),
    ("[sever]\nport = 8080", "unknown section sever"),
    ('[server]\nport = "8080"', "server.port must be int"),
    ('[sampler]\nguidance = "high"', "sampler.guidance must be float"),
    ("[sampler]\nsteps = 12", "sampler.steps must be 1..8"),
    ("[server]\nmax_sessions = 0", "[server]: max_sessions must be >= 1"),
    ("[server]\nadmit_max_load = 1.5", "[server]: admit_max_load must be in (0, 1]"),
    ("[server]\nsession_cost_prior = 0.0", "[server]: session_cost_prior must be > 0"),
    ("[worker]\nthreads = 0", "worker.threads must be >= 1"),
    ('[renderer]\ndevice = "tpu"', "renderer.device must be auto, cpu or cuda"),
    ('[worker]\ndenoiser = "gpu"', "worker.denoiser must be auto, cpu or cuda"),
    ("server = 1", "server must be a table"),
    ("[renderer]\nthreads = 2", "renderer.threads is not set here: CPU threads are [worker] threads"),
    ("[server\nport = 1", "is not valid TOML"),
])
def test_bad_files_are_refused_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(_toml(tmp_path, text))
    assert message in str(error.value) and "avatar.toml" in str(error.value)


def test_flags_override_the_file_and_left_out_flags_keep_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AVATAR_TOKEN", raising=False)
    path = _toml(tmp_path, "[server]\nport = 9001\nmax_sessions = 3\n[sampler]\nsteps = 5\nguidance = 2\n")
    config = config_from_args(build_parser().parse_args(["--config", str(path), "--max-sessions", "1",
                                                         "--guidance", "0.5", "--device", "cpu"]))
    assert (config.server.port, config.server.max_sessions) == (9001, 1)
    assert (config.sampler.steps, config.sampler.guidance, config.renderer.device) == (5, 0.5, "cpu")
    assert config.server.host == "127.0.0.1" and config.server.token is None  # neither file nor flag: default


def test_invariants_against_the_model():
    config = AvatarConfig()
    config.check_model(window=2, lookahead=1, d_model=128, n_heads=4)  # the shipped generator's shape
    tight = config.replace("server", max_buffered_frames=2)
    with pytest.raises(ConfigError, match="server.max_buffered_frames must hold one chunk and its lookahead"):
        tight.check_model(window=2, lookahead=1, d_model=128, n_heads=4)
    with pytest.raises(ConfigError, match="server.max_backlog_s"):
        config.replace("server", max_backlog_s=0.1).check_model(window=2, lookahead=1, d_model=128, n_heads=4)
    with pytest.raises(AssertionError, match="head dim"):
        config.check_model(window=2, lookahead=1, d_model=1024, n_heads=4)


def test_serve_with_a_config_file(tmp_path):
    """A real `avatar serve --config FILE`: the port comes from the file, the session limit from a flag (the
    banner and /api/sessions say so); a bad file exits 2 naming the key."""
    port = free_port()
    path = _toml(tmp_path, f"[server]\nport = {port}\nmax_sessions = 3\nallow_untrained = true\n"
                           "[sampler]\nsteps = 2\n[worker]\nthreads = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "AVATAR_TOKEN"}
    server = subprocess.Popen([sys.executable, "-m", "realtime", "serve", "--config", str(path), "--max-sessions",
                               "1", "--log-level", "WARNING"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner and "1 session(s)" in banner, banner
        assert wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions", timeout=5)
                          .status == 200, 30)
    finally:
        server.terminate()
        server.wait(60)
    bad = _toml(tmp_path, "[server]\nmax_sesions = 3\n")
    done = subprocess.run([sys.executable, "-m", "realtime", "serve", "--config", str(bad)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "unknown key server.max_sesions" in done.stderr, done.stderr


def test_turn_servers_get_their_credentials_and_stun_servers_none():
    from realtime.server import ServerConfig
    from realtime.server.session import ice_servers

    config = load_config(None, {"server": {"ice_servers": ["stun:stun.example:3478", "turn:turn.example:3478"],
                                           "ice_username": "avatar", "ice_credential": "secret"}})
    assert [(s.urls, s.username, s.credential) for s in ice_servers(config.server)] == [
        ("stun:stun.example:3478", None, None), ("turn:turn.example:3478", "avatar", "secret")]
    assert ice_servers(ServerConfig()) == []  # none by default: a LAN needs none
