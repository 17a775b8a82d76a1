import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    from alplug.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Settings for a run that finishes in seconds on a 2-core CPU.
QUICK = ["--n-start", "1", "--per-round", "5", "--rounds", "2", "--epochs", "1", "--batch-size", "16",
         "--test-size", "100", "--val1-size", "50", "--val2-size", "50"]


@pytest.fixture
def quick_args():
    return list(QUICK)
