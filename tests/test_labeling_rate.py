import json
import math

import pytest

from alplug.config import RunConfig
from alplug.errors import UsageError
from alplug.labeling_rate import next_batch_size
from alplug.records import RoundRecord

from conftest import QUICK
from test_cli import invoke, read_history


def _history(*rounds):
    """round records of (val2_acc, queried)"""
    return [RoundRecord(round=i, labels=10 + i, val2_acc=a, queried=n) for i, (a, n) in enumerate(rounds)]


def adaptive(**kw):
    return RunConfig(labeling_rate="adaptive", per_round=50, **kw).validate()


def test_fixed_rate_always_labels_per_round():
    cfg = RunConfig(per_round=7)
    assert next_batch_size(cfg, _history((0.5, 0), (0.9, 7))) == 7


def test_first_query_round_of_the_adaptive_rate_uses_per_round():
    assert next_batch_size(adaptive(), _history((0.4, 0))) == 50


@pytest.mark.parametrize("rounds,R,g,eps,expected", [
    # fast gain: 0.2 per 50 labels -> delta 0.004/label -> g=0.05 needs ceil(12.5) = 13
    (((0.5, 0), (0.7, 50)), 200, 0.05, 0.005, 13),
    # stalled (accuracy fell): delta = eps/50 = 1e-4 -> 500 labels, capped at R = 200
    (((0.7, 0), (0.65, 50)), 200, 0.05, 0.005, 200),
    # near the top: min(g, 1 - a) = 0.02 limits the aim; delta = 0.1/40 -> 8 (float noise makes it
    # 8.000000000000009, which must not cost a ninth label)
    (((0.88, 20), (0.98, 40)), 500, 0.05, 0.005, 8),
    # the previous round's own size is the divisor, not per_round: delta = 0.03/10 -> ceil(16.67) = 17
    (((0.6, 50), (0.63, 10)), 500, 0.05, 0.001, 17),
])
def test_adaptive_rate_follows_the_formula(rounds, R, g, eps, expected):
    cfg = adaptive(max_per_round=R, gain=g, epsilon=eps)
    (a0, _), (a1, n1) = rounds
    delta = max(eps, a1 - a0) / n1
    assert expected == math.ceil(round(min(R, min(g, 1 - a1) / delta), 9))  # the formula, written out
    assert next_batch_size(cfg, _history(*rounds)) == expected


def test_adaptive_rate_never_asks_for_zero_images():
    assert next_batch_size(adaptive(), _history((0.9, 0), (1.0, 50))) == 1


def test_defaults_are_filled_in():
    # R defaults to 4 x per_round, g to 0.05, eps to 0.005
    assert next_batch_size(adaptive(), _history((0.7, 0), (0.7, 50))) == 200


@pytest.mark.parametrize("kw,message", [
    ({"gain": 0.1}, "--gain only apply with --labeling-rate adaptive"),
    ({"labeling_rate": "fast"}, "must be 'fixed' or 'adaptive'"),
    ({"goal": 1.5}, "--goal = 1.5"),
    ({"labeling_rate": "adaptive", "epsilon": 0.0}, "--epsilon = 0.0"),
    ({"labeling_rate": "adaptive", "max_per_round": 0}, "--max-per-round = 0"),
])
def test_bad_schedule_settings_are_refused(kw, message):
    with pytest.raises(UsageError, match=message):
        RunConfig(**kw).validate()


def test_adaptive_run_labels_what_the_schedule_asks_and_stops_at_the_goal(tmp_path):
    out = tmp_path / "run"
    args = [*QUICK, "--rounds", "4", "--epochs", "2",
            "--labeling-rate", "adaptive", "--max-per-round", "12", "--gain", "0.2", "--epsilon", "0.05"]
    result = invoke("run", "--out", out, *args)
    assert result.exit_code == 0, result.output
    rows = read_history(out)
    cfg = RunConfig(labeling_rate="adaptive", per_round=5, max_per_round=12, gain=0.2, epsilon=0.05)
    history = _history(*((float(r["val2_acc"]), int(r["queried"])) for r in rows))
    assert [h.queried for h in history[1:]] == [next_batch_size(cfg, history[:i]) for i in range(1, len(history))]
    assert history[1].queried == 5 and len({h.queried for h in history[1:]}) > 1  # the rate did adapt

    # A goal first reached in round k >= 1 stops the same run there.
    val2 = [h.val2_acc for h in history]
    k = next((i for i in range(1, len(val2)) if val2[i] > max(val2[:i])), None)
    assert k is not None, f"no round improved on the ones before it: {val2}"
    goal = val2[k]
    out2 = tmp_path / "goal"
    result = invoke("run", "--out", out2, *args, "--goal", goal)
    assert result.exit_code == 0, result.output
    assert read_history(out2) == rows[:k + 1]
    assert json.loads((out2 / "result.json").read_text())["stop_reason"] == f"val-2 accuracy goal of {goal:g} reached"
