import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alplug.cli import cli

from conftest import QUICK
from kills import run_and_kill_after_round
from data_formats import write_image_folder


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def read_history(run_dir: Path, drop_timing=True):
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    if drop_timing:
        for row in rows:
            row.pop("train_seconds"), row.pop("query_seconds")
    return rows


@pytest.mark.parametrize("command", [[], ["run"], ["strategies"], ["compare"], ["report"], ["label"], ["project"],
                                     ["recipes"], ["project", "init"], ["project", "next"], ["project", "import"],
                                     ["project", "export"], ["project", "status"]])
def test_help_on_every_command(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_strategies_lists_the_built_ins_with_their_distribution():
    result = invoke("strategies")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert {"random", "least-confidence", "margin", "entropy"} <= set(lines)
    assert "alplug 0.1.0" in lines["margin"] and "smallest first" in lines["margin"]


def test_cli_start_up_does_not_import_torch_or_modal():
    code = ("import sys, alplug.cli; print(sorted(m for m in ('torch', 'modAL', 'skorch', 'baal', 'flask', 'ray', "
            "'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_full_small_run_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--query", "margin", "--out", out, *QUICK)
    assert result.exit_code == 0, result.output
    assert {"config.toml", "history.csv", "result.json", "model.pt", "learning_curve.png", "state.json"} <= {
        p.name for p in out.iterdir()}
    rows = read_history(out)
    assert [r["round"] for r in rows] == ["0", "1", "2"]
    assert [r["labels"] for r in rows] == ["10", "15", "20"]
    queried = [int(i) for r in rows[1:] for i in r["queried_ids"].split()]
    assert len(queried) == len(set(queried)) == 10
    result_json = json.loads((out / "result.json").read_text())
    assert 0 <= result_json["test_accuracy"] <= 1 and result_json["test_size"] == 100
    assert result_json["labels"] == 20 and result_json["config"]["query"] == "margin"
    # each class's test accuracy, weighted by its test images, is the test accuracy
    from alplug.config import RunConfig
    from alplug.data import load_dataset, make_splits

    config = RunConfig.from_toml(out / "config.toml")
    data = load_dataset(config.dataset)
    y_test = make_splits(data, seed=config.seed, n_start=config.n_start, test_size=config.test_size,
                         val1_size=config.val1_size, val2_size=config.val2_size).y_test
    per_class = result_json["per_class_accuracy"]
    weighted = sum(acc * np.sum(y_test == data.classes.index(name)) for name, acc in per_class.items()) / len(y_test)
    assert weighted == pytest.approx(result_json["test_accuracy"]) and len(per_class) == len(np.unique(y_test))
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "test accuracy" in result.output and "labels used    20" in result.output
    import torch

    state = torch.load(out / "model.pt", weights_only=True)
    assert state["head.1.weight"].shape == (10, 512)
    final = torch.load(next((out / "checkpoint").glob("round-0002.params.pt")), weights_only=True)
    assert state.keys() == final.keys() and all(torch.equal(state[k], final[k]) for k in state)


def test_config_file_is_used_and_command_line_wins(tmp_path):
    (tmp_path / "c.toml").write_text('query = "entropy"\nrounds = 1\nper-round = 3\nseed = 4\n')
    out = tmp_path / "run"
    result = invoke("run", "--config", tmp_path / "c.toml", "--seed", 5, "--out", out,
                    "--n-start", 1, "--epochs", 1, "--test-size", 100, "--val1-size", 50, "--val2-size", 50)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "result.json").read_text())["config"]
    assert (config["query"], config["rounds"], config["per_round"], config["seed"]) == ("entropy", 1, 3, 5)


@pytest.mark.parametrize("extra,stop,labels", [
    (["--budget", "17", "--rounds", "5"], "label budget of 17 reached", [10, 15, 17]),
    (["--rounds", "0"], "0 rounds done", [10]),
])
def test_budget_and_rounds_stop_the_loop(tmp_path, extra, stop, labels):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *QUICK, *extra)
    assert result.exit_code == 0, result.output
    assert [int(r["labels"]) for r in read_history(out)] == labels
    assert json.loads((out / "result.json").read_text())["stop_reason"] == stop


def test_patience_stops_after_rounds_without_improvement(tmp_path):
    out = tmp_path / "run"
    # lr so small the model cannot improve: val-2 accuracy stays flat
    result = invoke("run", "--out", out, *QUICK, "--rounds", "6", "--patience", "2", "--lr", "1e-9")
    assert result.exit_code == 0, result.output
    rows = read_history(out)
    assert "patience" in json.loads((out / "result.json").read_text())["stop_reason"]
    assert len(rows) < 7


def test_pool_exhaustion_stops_the_loop(tmp_path, rng):
    X = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(40) % 2)
    out = tmp_path / "run"
    result = invoke("run", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--out", out, "--n-start", 2,
                    "--per-round", 7, "--rounds", 10, "--epochs", 1, "--batch-size", 8,
                    "--test-size", 8, "--val1-size", 4, "--val2-size", 4)
    assert result.exit_code == 0, result.output
    assert [int(r["labels"]) for r in read_history(out)] == [4, 11, 18, 24]
    assert json.loads((out / "result.json").read_text())["stop_reason"] == "pool is empty"


def _bad(tmp_path, *args):
    result = invoke("run", "--out", tmp_path / "run", *QUICK, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("alplug: error:") and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing was created
    return lines[0]


@pytest.mark.parametrize("args,message", [
    (["--query", "margn"], "did you mean 'margin'"),
    (["--model", "resnet19"], "did you mean 'resnet18'"),
    (["--dataset", "mnits"], "did you mean 'mnist'"),
    (["--n-start", "500"], "larger than the pool"),
    (["--per-round", "0"], "--per-round = 0, must be >= 1"),
    (["--dataset", "mnist", "--data-dir", "/no/such/dir"], "does not exist"),
    (["--dataset", "npz:/no/such.npz"], "does not exist"),
    (["--budget", "5"], "smaller than the initial labeled set"),
    (["--weights", "/no/such/resnet18.pth"], "does not exist"),
    (["--device", "gpu"], "not a torch device"),
])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, args, message):
    assert message in _bad(tmp_path, *args)


def test_bad_npz_files_from_the_cli(tmp_path):
    np.savez(tmp_path / "noy.npz", X=np.zeros((10, 4, 4)))
    assert "no array y" in _bad(tmp_path, "--dataset", f"npz:{tmp_path / 'noy.npz'}")
    np.savez(tmp_path / "short.npz", X=np.zeros((10, 4, 4)), y=np.arange(9))
    assert "must match" in _bad(tmp_path, "--dataset", f"npz:{tmp_path / 'short.npz'}")


def test_folder_with_one_class_from_the_cli(tmp_path, rng):
    root = write_image_folder(tmp_path / "imgs", rng, classes=("only",), corrupt=False)
    assert "at least two" in _bad(tmp_path, "--dataset", f"folder:{root}")


def test_image_folder_run_skips_the_corrupt_file(tmp_path, rng):
    root = write_image_folder(tmp_path / "imgs", rng, per_class=12)
    out = tmp_path / "run"
    result = invoke("run", "--dataset", f"folder:{root}", "--image-size", 24, "--out", out, "--n-start", 2,
                    "--per-round", 3, "--rounds", 1, "--epochs", 1, "--batch-size", 8,
                    "--test-size", 6, "--val1-size", 6, "--val2-size", 6)
    assert result.exit_code == 0, result.output
    skipped = json.loads((out / "result.json").read_text())["skipped_files"]
    assert len(skipped) == 1 and skipped[0].endswith("broken.png")


def test_existing_run_directory_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "labels.csv").write_text("precious")
    result = invoke("run", "--out", out, *QUICK)
    assert result.exit_code == 2 and "--resume" in result.output
    assert [p.name for p in out.iterdir()] == ["labels.csv"] and (out / "labels.csv").read_text() == "precious"


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "run"
    assert invoke("run", "--out", out, *QUICK).exit_code == 0
    before = (out / "history.csv").read_text()
    result = invoke("run", "--resume", out, "--seed", "9", "--query", "entropy")
    assert result.exit_code == 2 and "seed: 0 != 9" in result.output and "query: 'margin' != 'entropy'" in result.output
    assert (out / "history.csv").read_text() == before
    result = invoke("run", "--resume", tmp_path / "nothing-here")
    assert result.exit_code == 2 and "not an alplug run directory" in result.output


def test_resume_after_kill_gives_the_same_run(tmp_path):
    """Kill a run (SIGKILL) after its first committed round, resume it, compare with an uninterrupted run."""
    args = ["--query", "margin", *QUICK, "--rounds", "4", "--seed", "3"]
    whole = tmp_path / "whole"
    assert invoke("run", "--out", whole, *args).exit_code == 0

    killed = tmp_path / "killed"
    run_and_kill_after_round(args, killed)

    result = invoke("run", "--resume", killed)
    assert result.exit_code == 0, result.output
    assert "resuming after round" in result.output
    assert read_history(killed) == read_history(whole)
    a, b = (json.loads((d / "state.json").read_text()) for d in (killed, whole))
    assert a["queried"] == b["queried"]
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (killed, whole))
    assert ra["test_accuracy"] == rb["test_accuracy"]

    again = invoke("run", "--resume", killed)  # a finished run stays as it is
    assert again.exit_code == 0 and read_history(killed) == read_history(whole)


def test_cli_reference_in_docs_is_current():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("cli_reference", root / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "cli.md").read_text() == module.render(), \
        "docs/cli.md is stale: run `uv run python scripts/cli_reference.py`"


def test_warm_start_resume_restores_model_and_optimizer(tmp_path, monkeypatch):
    """Interrupt a --warm-start run after round 1 (Ctrl-C); resuming must give the uninterrupted run."""
    from alplug import loop

    args = ["--query", "entropy", *QUICK, "--rounds", "3", "--warm-start", "--seed", "2"]
    whole = tmp_path / "whole"
    assert invoke("run", "--out", whole, *args).exit_code == 0

    announce = loop.ActiveLearningRun._announce

    def interrupt_after_round_1(self, row):
        announce(self, row)
        if row.round == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.ActiveLearningRun, "_announce", interrupt_after_round_1)
    cut = tmp_path / "cut"
    result = invoke("run", "--out", cut, *args)
    assert result.exit_code == 130 and "--resume" in result.output
    assert list((cut / "checkpoint").glob("*.optimizer.pt"))  # warm starts carry Adam's state
    monkeypatch.setattr(loop.ActiveLearningRun, "_announce", announce)
    assert invoke("run", "--resume", cut).exit_code == 0
    assert read_history(cut) == read_history(whole)


def test_cold_and_warm_start_train_the_same_first_model(tmp_path):
    """The first fit builds the module under the round-0 seed either way; only later fits differ."""
    args = ["--query", "entropy", *QUICK, "--rounds", "1", "--seed", "3"]
    assert invoke("run", "--out", tmp_path / "cold", *args).exit_code == 0
    assert invoke("run", "--out", tmp_path / "warm", *args, "--warm-start").exit_code == 0
    cold, warm = read_history(tmp_path / "cold"), read_history(tmp_path / "warm")
    assert cold[0] == warm[0]
    assert cold[1]["queried_ids"] == warm[1]["queried_ids"]  # queried by the same round-0 model
    assert cold[1]["train_loss"] != warm[1]["train_loss"]  # then the warm start continues from it


def test_checkpoints_hold_each_rounds_model_when_the_disk_is_slow(tmp_path, monkeypatch):
    """Checkpoints are written in the background while the next round queries. With --warm-start,
    teach() changes the very tensors being written, so the loop must wait for the write first:
    slow writes make a missing wait visible."""
    import time

    import torch

    from alplug import loop

    real_save, commit = loop.save_torch, loop.ActiveLearningRun._commit
    expected, written = {}, {}

    def remember(self, state, row):
        expected[row.round] = {k: v.clone() for k, v in self.estimator.module_.state_dict().items()}
        commit(self, state, row)

    def slow_save(obj, f):
        if str(f).endswith(".params.pt"):
            time.sleep(1.5)
            written[int(Path(f).name[len("round-"):][:4])] = {k: v.clone() for k, v in obj.items()}
        return real_save(obj, f)

    monkeypatch.setattr(loop.ActiveLearningRun, "_commit", remember)
    monkeypatch.setattr(loop, "save_torch", slow_save)
    result = invoke("run", "--out", tmp_path / "run", "--query", "margin", *QUICK, "--warm-start")
    assert result.exit_code == 0, result.output
    assert sorted(written) == sorted(expected) == [0, 1, 2]
    for r in expected:
        assert all(torch.equal(written[r][k], expected[r][k]) for k in expected[r]), f"round {r}"


def test_augmented_run(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *QUICK, "--augment", "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "result.json").read_text())["config"]["augment"] is True


@pytest.mark.parametrize("command", [["run", "--n-start", "1", "--rounds", "0", "--epochs", "1"],
                                     ["compare", "--query", "random", "--seeds", "1", "--n-start", "1", "--rounds", "0",
                                      "--epochs", "1"]])
def test_on_a_terminal_the_first_line_comes_before_the_heavy_imports(tmp_path, command):
    """`alplug run` and `compare` say what they do before torch loads (seconds): read through a pseudo-terminal,
    with Python's import-time trace on the same terminal, the line comes before torch's first import."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: alplug on the terminal
        os.execvp(sys.executable, [sys.executable, "-X", "importtime", "-m", "alplug", *command,
                                   "--out", str(tmp_path / "out")])
    import re

    torch_line = re.compile(rb"\|\s+torch\r?\n")
    seen, deadline = b"", time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not torch_line.search(seen):
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    found = torch_line.search(seen)
    assert found, seen.decode(errors="replace")[-2000:]
    said = seen.find(f"alplug {command[0]}: loading torch".encode())
    assert 0 <= said < found.start(), seen.decode(errors="replace")[-2000:]


def test_features_from_an_unknown_part_is_one_line_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, "--features-from", "layer9", "--ssl", "simclr", *QUICK)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "alplug: error: --features-from 'layer9': resnet18's backbone has no part by that name; its parts: conv1, "
        "bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc"]
    assert not out.exists()
