"""A first labeled set picked without labels (--initial), strategy schedules and stopping rules."""
import json

import numpy as np
import pytest

from alplug import loop
from alplug.config import RunConfig
from alplug.errors import UsageError
from alplug.stopping import StopRule
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


# A run with --initial killed and resumed: tests/test_low_budget.py's kill test (with --ssl, --semi and margin).


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


# ---- stopping rules ---------------------------------------------------------------------------------------

def rows(val2, kappa=None, uncertainty=None, test=None):
    n = len(val2)
    kappa = kappa or [None] * n
    uncertainty = uncertainty or [0.5] * n
    test = test or val2
    from alplug.records import RoundRecord

    return [RoundRecord(round=i, labels=10 + 10 * i, val2_acc=v, stop={"kappa": k, "uncertainty": u}, test_acc=t)
            for i, (v, k, u, t) in enumerate(zip(val2, kappa, uncertainty, test))]


def test_parse_stop():
    from alplug.stopping import parse_stop

    assert parse_stop("kappa, patience=2") == {"kappa": 0.99, "patience": 2.0}
    assert parse_stop(None) == {}
    for bad, message in (("kapa", "unknown rule"), ("kappa=high", "not a number"), ("patience=1.5", "whole number"),
                         ("uncertainty=2", "in [0, 1]"), ("kappa=-1", "(-1, 1]")):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
            parse_stop(bad)


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_bad_stop_rule_on_the_command_line_is_one_line_and_exit_2(tmp_path, command):
    result = invoke(command, "--out", tmp_path / "x", "--stop", "kappa=high")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "not a number" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_kappa_rule_needs_three_stable_rounds():
    from alplug.stopping import first_stop, fires

    history = rows([0.5] * 6, kappa=[None, 0.5, 0.995, 0.99, 0.97, 0.999])
    assert fires("kappa", 0.99, history[:4]) is None  # only two kappas of the window at or above
    assert first_stop("kappa", 0.98, history) == 4     # mean(0.995, 0.99, 0.97) = 0.985
    assert first_stop("kappa", 0.99, history) is None  # no three rounds average 0.99
    assert "mean kappa of the last 3 rounds" in fires("kappa", 0.98, history[:5])


def test_uncertainty_and_patience_rules():
    from alplug.stopping import first_stop

    history = rows([0.5, 0.7, 0.8, 0.79, 0.8, 0.75], uncertainty=[0.6, 0.3, 0.1, 0.06, 0.05, 0.04])
    assert first_stop("uncertainty", 0.05, history) == 4
    assert first_stop("patience", 3, history) == 5  # best 0.8 first at round 2; a tie at round 4 is no gain
    assert first_stop("patience", 4, history) is None


def test_measures_on_the_stop_set():
    from alplug.stopping import stop_measures, stop_set

    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    pred, figures = stop_measures(proba, None)
    assert pred == [0, 1, 0, 1] and figures["kappa"] is None
    assert figures["uncertainty"] == pytest.approx((0.1 + 0.2 + 0.4 + 0.3) / 4)
    assert stop_measures(proba, [0, 1, 0, 1])[1]["kappa"] == 1.0
    assert stop_measures(proba, [0, 1, 1, 1])[1]["kappa"] == pytest.approx(0.5)  # po 0.75, pe 0.5
    assert stop_measures(np.array([[1.0, 0.0]] * 3), [0, 0, 0])[1]["kappa"] == 1.0  # one class both times: not NaN
    pool = np.arange(5000)
    a, b = stop_set(pool, 3), stop_set(pool, 3)
    assert len(a) == 1000 and np.array_equal(a, b) and not np.array_equal(a, stop_set(pool, 4))


def test_report_costs_each_rules_stop_against_hindsight():
    from alplug.stopping import where_rules_stop

    history = rows([0.5, 0.8, 0.9, 0.9, 0.9], kappa=[None, 0.5, 0.99, 1.0, 1.0],
                   test=[0.5, 0.8, 0.9, 0.95, 0.95])
    out = where_rules_stop(history, {"kappa": 0.99, "patience": 2}, n_apply=1000, cost_label=1, lam=5, error_cost=1)
    # cost(k) = labels + 5k + 1000 (1 - test): 510, 225, 140, 105, 120
    assert out["hindsight"]["row"] == 3 and out["hindsight"]["cost"] == pytest.approx(105)
    # mean kappa of rows 1-3 is 0.83, of rows 2-4 0.997: the rule fires one round after the cheapest stop
    assert out["kappa"] == {"row": 4, "fired": True, "labels": 50, "accuracy": 0.95, "cost": pytest.approx(120),
                            "regret": pytest.approx(15)}
    # val-2 peaks at round 2 (later ties are no gain): two rounds without gain end at row 4
    assert out["patience"]["row"] == 4 and out["patience"]["fired"]
    out = where_rules_stop(history, {"patience": 3}, n_apply=1000, cost_label=1, lam=5, error_cost=1)
    assert out["patience"]["row"] == 4 and not out["patience"]["fired"]  # never fires: the last row


@pytest.mark.parametrize("stop,reason", [("uncertainty=0.99", "overall uncertainty"),
                                         ("patience=1", "no val-2 improvement for 1 rounds"),
                                         ("kappa=-0.5", "predictions stabilised")])
def test_each_rule_stops_a_real_run_and_is_its_stop_reason(tmp_path, small, stop, reason):
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *small, "--n-start", "1", "--rounds", "8", "--stop", stop)
    assert result.exit_code == 0, result.output
    result = json.loads((out / "result.json").read_text())
    assert reason in result["stop_reason"] and result["rounds"] < 8
    history = read_history(out)
    assert history[0]["stop_kappa"] == "" and all(r["stop_kappa"] != "" for r in history[1:])


class ConfidentRule(StopRule):
    """A stopping rule added by a test, in one declaration: stop once the mean top probability on the stop set
    reaches the threshold."""

    name, default, measures = "confident", 0.9, True

    def problem(self, threshold):
        return None if 0 <= threshold <= 1 else "confident must be in [0, 1]"

    def measure(self, proba, previous):
        return float(proba.max(axis=1).mean())

    def fires(self, threshold, history):
        value = history[-1].stop.get(self.name)
        return f"confident: {value:.3f}" if value is not None and value >= threshold else None


def test_a_stopping_rule_added_in_one_place_is_parsed_measured_recorded_and_stops_a_run(tmp_path, small,
                                                                                       monkeypatch):
    from alplug.stopping import STOP_RULES, parse_stop

    monkeypatch.setitem(STOP_RULES, "confident", ConfidentRule())
    assert parse_stop("confident") == {"confident": 0.9}
    with pytest.raises(UsageError, match=r"confident must be in \[0, 1\]"):
        parse_stop("confident=2")
    out = tmp_path / "run"
    result = invoke("run", "--out", out, *small, "--n-start", "1", "--rounds", "8", "--stop", "confident=0.0")
    assert result.exit_code == 0, result.output
    result = json.loads((out / "result.json").read_text())
    assert result["stop_reason"].startswith("confident: ") and result["rounds"] == 0
    state = json.loads((out / "state.json").read_text())
    assert 0 < state["history"][0]["stop_confident"] <= 1  # in the record, beside the built-in rules' figures
    assert float(read_history(out)[0]["stop_confident"]) == state["history"][0]["stop_confident"]
