import os

import numpy as np
import pytest


def pytest_configure(config):
    """On pytest-xdist's workers (the suite runs on two: pyproject's addopts), one torch thread each, in this
    process and in the alplug processes tests start, so that two workers share two cores instead of fighting over
    them. The kill-and-resume tests give their child this process's thread count (tests/kills.py)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from alplug.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _quick_digits() -> str:
    """The first 400 of scikit-learn's digits as an npz file, written once per test session: a quick run's pool is
    then about 200 images instead of 1,400, so each of its queries and pool passes is seven times shorter, and
    nothing a quick run checks depends on the pool's size."""
    import atexit
    import shutil
    import tempfile

    from sklearn.datasets import load_digits

    folder = tempfile.mkdtemp(prefix="alplug-tests-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    digits = load_digits()
    path = f"{folder}/digits400.npz"
    np.savez(path, X=np.rint(digits.images[:400] * (255 / 16)).astype(np.uint8), y=digits.target[:400])
    return path


# Settings for a run of the whole of digits (the README's data set) that finishes in seconds on a 2-core CPU.
QUICK_DIGITS = ["--n-start", "1", "--per-round", "5", "--rounds", "2", "--epochs", "1", "--batch-size", "16",
                "--test-size", "100", "--val1-size", "50", "--val2-size", "50"]
# The same on 400 digits: what most tests of the run machine use. A test's own --dataset goes after it.
QUICK = ["--dataset", f"npz:{_quick_digits()}", *QUICK_DIGITS]


@pytest.fixture
def quick_args():
    return list(QUICK)


def write_finished_run(run_dir, rounds: list[dict], result: dict) -> None:
    """A finished run's files as a report reads them, written directly: ``rounds`` are round records' fields
    (``alplug.records.RoundRecord``), kept in state.json as the loop keeps them."""
    import json

    from alplug.records import RoundRecord
    from alplug.rundir import RunState

    state = RunState(round=len(rounds) - 1, labels=rounds[-1]["labels"], finished=True,
                     history=[RoundRecord(**row) for row in rounds], checkpoint="checkpoint/round-0000")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "state.json").write_text(state.to_json())
    (run_dir / "result.json").write_text(json.dumps(result))
