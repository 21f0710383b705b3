"""The code layout rules: live code never loads training code, no module outside tests/ grows past 450 lines.

(ruff and the import contracts in pyproject.toml run in CI before the tests, `.ci/run`.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450
# Over the limit and being split into smaller modules; each entry must still be over it (remove it once split).
OVERSIZED: set[str] = set()

LOADED_TRAINING = """
import importlib, pkgutil, sys
from realtime.cli import main

def live(package):  # every module of the product, without walking into the training package
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        if info.name not in ("realtime.training", "realtime.__main__"):
            importlib.import_module(info.name)
            if info.ispkg:
                live(info.name)

live("realtime")
try:
    main(["serve", "--help"])
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.startswith("realtime.training")))
"""


def test_live_code_loads_no_training_module():
    out = subprocess.run([sys.executable, "-c", LOADED_TRAINING], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_training_commands_still_start_from_the_command_line():
    for command in ("train", "corpus", "annotate"):
        done = subprocess.run([sys.executable, "-m", "realtime", command, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0 and f"avatar {command}" in done.stdout, done.stderr


def test_no_source_file_outside_tests_is_over_the_line_limit():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    lengths = {p: len((ROOT / p).read_text().splitlines()) for p in tracked if not p.startswith("tests/")}
    over = {p for p, n in lengths.items() if n > MAX_LINES}
    assert over <= OVERSIZED, {p: lengths[p] for p in over - OVERSIZED}
    assert all(lengths.get(p, 0) > MAX_LINES for p in OVERSIZED), "split: remove it from OVERSIZED"
