"""A first labeled set picked without labels (--initial), strategy schedules and stopping rules."""
import json
import subprocess
import sys

import numpy as np
import pytest

from alplug import loop
from alplug.config import RunConfig
from alplug.errors import UsageError
from test_cli import invoke, read_history

from test_low_budget import small_npz  # noqa: F401  (a fixture: 300 digits as an npz data set)


@pytest.fixture
def small(small_npz):  # noqa: F811
    """Settings of a run of a few seconds: 300 digits, SqueezeNet, one epoch."""
    return ["--dataset", f"npz:{small_npz}", "--model", "squeezenet1_1", "--per-round", "5", "--epochs", "1",
            "--batch-size", "16", "--test-size", "100", "--val1-size", "40", "--val2-size", "40"]


def test_initial_set_is_picked_before_any_label_is_read(tmp_path, monkeypatch, small):
    revealed = []
    reveal = loop.Oracle.reveal

    def spy(self, ids):
        revealed.append(np.asarray(ids).tolist())
        return reveal(self, ids)

    monkeypatch.setattr(loop.Oracle, "reveal", spy)
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *small, "--initial", "typiclust", "--n-initial", "12", "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert "picking the first 12 images to label with typiclust" in result.output
    state = json.loads((out / "state.json").read_text())
    assert len(state["initial"]) == 12 == len(set(state["initial"]))
    assert revealed[0] == sorted(state["initial"])  # the first labels read are the picked images, nothing before
    assert not set(state["initial"]) & set(state["queried"])
    history = read_history(out)
    assert history[0]["labels"] == "12" and history[1]["labels"] == "17"
    assert 'initial = "typiclust"' in (out / "config.toml").read_text()


def test_typiclust_initial_set_covers_more_classes_than_its_size_would_by_chance(digits):
    """On digits, 10 typical images from the pool cover most of the 10 classes (random picks: 6.5 on average)."""
    from alplug.loop import ActiveLearningRun

    covered = []
    for seed in range(2):
        run = ActiveLearningRun(RunConfig(initial="typiclust", n_initial=10, seed=seed, epochs=1), echo=lambda *_: None)
        picked = run._pick_initial()
        assert np.isin(picked, run.splits.pool).all()
        covered.append(len(np.unique(digits.y[picked])))
    assert min(covered) >= 8, covered


@pytest.mark.parametrize("args,message", [
    (["--initial", "typiclust"], "--initial needs --n-initial"),
    (["--n-initial", "5"], "--n-initial needs --initial"),
    (["--initial", "typiclst", "--n-initial", "5"], "did you mean 'typiclust'"),
    (["--initial", "random", "--n-initial", "0"], "--n-initial = 0, must be >= 1"),
    (["--initial", "random", "--n-initial", "500"], "larger than the pool"),
    (["--initial", "random", "--n-initial", "20", "--budget", "10"], "smaller than the initial labeled set"),
])
def test_bad_initial_settings_are_one_line(tmp_path, args, message, small):
    result = invoke("run", "--out", tmp_path / "run", *small, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_killed_run_with_initial_resumes_to_the_same_history(tmp_path, small):
    from test_low_budget import _kill_when

    def alplug(*command):
        done = subprocess.run([sys.executable, "-m", "alplug", *map(str, command)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    args = [*small, "--initial", "typiclust", "--n-initial", "10", "--rounds", "3", "--seed", "4"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    alplug("run", "--out", whole, *args)
    _kill_when(["run", "--out", str(killed), *args], killed, 1, 0.0)
    alplug("run", "--resume", killed)
    assert read_history(killed) == read_history(whole)
    a, b = (json.loads((d / "state.json").read_text()) for d in (killed, whole))
    assert a["initial"] == b["initial"] and a["queried"] == b["queried"]


def test_a_state_whose_initial_set_does_not_fit_is_refused(tmp_path, small):
    out = tmp_path / "run"
    args = [*small, "--initial", "random", "--n-initial", "8", "--rounds", "1"]
    assert invoke("run", "--out", out, *args).exit_code == 0
    state = json.loads((out / "state.json").read_text())
    state.update(finished=False, initial=state["initial"][:-1])
    (out / "state.json").write_text(json.dumps(state))
    result = invoke("run", "--resume", out)
    assert result.exit_code == 2 and "--initial random picked" in result.output, result.output


def test_config_validation_of_initial():
    with pytest.raises(UsageError, match="--initial needs --n-initial"):
        RunConfig(initial="typiclust").validate()
    RunConfig(initial="typiclust", dataset="project").validate()  # a project's batch size comes from `next -n`


# ---- strategy schedules -----------------------------------------------------------------------------------

def test_schedule_parsing():
    from alplug.strategies.schedules import parse_schedule, stage_name

    stages = parse_schedule("typiclust@100, margin+coreset@300,margin")
    assert stages == [("typiclust", 100), ("margin+coreset", 300), ("margin", None)]
    assert [stage_name(stages, n) for n in (0, 99, 100, 299, 300, 10_000)] == \
        ["typiclust", "typiclust", "margin+coreset", "margin+coreset", "margin", "margin"]


@pytest.mark.parametrize("query,message", [
    ("typiclust,margin", "needs @LABELS"),
    ("typiclust@100,margin@200", "the last stage runs to the end"),
    ("typiclust@ten,margin", "must be a whole number"),
    ("typiclust@100,random@50,margin", "must be >= 1 and increase"),
    ("typiclust@0,margin", "must be >= 1 and increase"),
    ("@100,margin", "names no strategy"),
    ("typiclust@100,margn", "did you mean 'margin'"),
])
def test_bad_schedules_are_one_line_usage_errors(tmp_path, query, message, small):
    result = invoke("run", "--out", tmp_path / "run", *small, "--query", query)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_schedule_options_go_to_the_stage_they_name():
    from alplug.strategies import resolve_query

    fn = resolve_query("typiclust@20,margin", {"typiclust.k": 3})
    assert {"typiclust", "margin"} <= fn.alplug_sources.keys()
    with pytest.raises(UsageError, match="write STRATEGY.KEY=VALUE"):
        resolve_query("typiclust@20,margin", {"k": 3})
    with pytest.raises(UsageError, match="typiclust"):  # reached typiclust's own option check
        resolve_query("typiclust@20,margin", {"typiclust.no_such_option": 3})


def test_schedule_switches_at_its_limit_in_plain_modal_and_checks_the_contract():
    from sklearn.linear_model import LogisticRegression

    from alplug.modal_compat import ActiveLearner
    from alplug.strategies import resolve_query
    from alplug.testing import check_query_strategy

    fn = resolve_query("random@12,margin")
    check_query_strategy(fn)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    learner = ActiveLearner(LogisticRegression(), fn, X_training=X[[0, 1, 2, 3]], y_training=y[[0, 1, 2, 3]])
    picks = []
    for _ in range(3):
        pool = np.arange(4 + 4 * len(picks), 200)
        idx, _ = learner.query(X[pool], n_instances=4, random_state=1)
        picks.append(np.abs(learner.estimator.decision_function(X[pool][idx])).mean())
        learner.teach(X[pool][idx], y[pool][idx])
    # rounds at 4 and 8 labels are random; at 12 labels margin takes the images nearest the boundary
    assert picks[2] < 0.5 * min(picks[:2])


def test_history_records_which_stage_chose_each_round(tmp_path, small):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *small, "--n-start", "1", "--query", "random@15,margin", "--rounds", "3")
    assert result.exit_code == 0, result.output
    rows = read_history(out)
    assert [(r["labels"], r["strategy"]) for r in rows] == \
        [("10", "random per class"), ("15", "random"), ("20", "margin"), ("25", "margin")]


def test_a_study_lists_schedules_among_its_strategies():
    from alplug.strategies.schedules import split_queries

    assert split_queries("random, typiclust@30,margin,entropy") == ["random", "typiclust@30,margin", "entropy"]
    assert split_queries("a@10,b@20,c,d") == ["a@10,b@20,c", "d"]
    assert split_queries("typiclust@30") == ["typiclust@30"]  # left for parse_schedule to refuse
