"""Killing a run mid-way, as a power cut would, for the tests that resume it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run_and_kill_after_round(args: list, run_dir: Path, target_round: int = 1, timeout: float = 240) -> None:
    """Start ``alplug run --out RUN_DIR ARGS`` in a new process and SIGKILL it once ``state.json`` commits
    ``target_round``. The process sums floats as this one does: with its torch thread count, not a new process's
    default or what earlier tests left in the environment (Dask's test cluster sets MKL_NUM_THREADS=1)."""
    import torch

    n = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    proc = subprocess.Popen([sys.executable, "-m", "alplug", "run", "--out", str(run_dir), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            state = run_dir / "state.json"
            if state.exists() and json.loads(state.read_text())["round"] >= target_round:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the run never committed round {target_round}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "result.json").exists(), "the run ended before it was killed"
