"""Every registered strategy through `alplug run --query NAME`, with ResNet-18 and SqueezeNet 1.1, on digits."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from alplug.cli import cli
from alplug.strategies import available_strategies


@pytest.fixture(scope="module")
def digits_subset(tmp_path_factory):
    """400 digits as an npz file: the same images, a pool small enough to query 36 times quickly."""
    from alplug.data import load_dataset

    d = load_dataset("digits")
    idx = np.random.default_rng(0).permutation(len(d.y))[:400]
    path = tmp_path_factory.mktemp("data") / "digits400.npz"
    np.savez(path, X=d.X[idx, 0], y=d.y[idx])
    return path


@pytest.mark.parametrize("model", ["resnet18", "squeezenet1_1"])
@pytest.mark.parametrize("query", sorted(available_strategies()) + ["entropy+model-outlier"])
def test_strategy_runs_end_to_end(tmp_path, digits_subset, model, query):
    out = tmp_path / "run"
    args = ["run", "--query", query, "--model", model, "--dataset", f"npz:{digits_subset}", "--out", str(out),
            "--n-start", "1", "--per-round", "4", "--rounds", "1", "--epochs", "1", "--batch-size", "16",
            "--test-size", "40", "--val1-size", "20", "--val2-size", "20", "--query-opt",
            "prefilter=3" if "+" in query else ("T=4" if "bald" in query or query.startswith(("mc-", "variation"))
                                                 else "")]
    if args[-1] == "":
        args = args[:-2]
    if model == "resnet18":
        args += ["--dropout", "0.3"]  # ResNet has no dropout of its own; MC-dropout strategies need it
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    state = json.loads((out / "state.json").read_text())
    assert len(state["queried"]) == len(set(state["queried"])) == 4
