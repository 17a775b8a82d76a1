"""Stopping rules: when to stop labeling (``--stop kappa=0.99,uncertainty=0.05,patience=3``).

baal, small-text and ASReview have stopping rules; modAL and scikit-activeml, which alplug builds on, have none,
and baal's work on its own loop, so these are ours. Each rule reads only the run's history rows, so the same
code stops a run and, in ``alplug report``, shows where every rule would have stopped a finished one:

- ``kappa``: stabilizing predictions (Bloodgood & Vijay-Shanker 2009). Every round the model predicts a fixed
  stop set of unlabeled images; the rule fires when Cohen's kappa between successive rounds' predictions,
  averaged over the last ``KAPPA_WINDOW`` rounds, reaches the threshold (default 0.99).
- ``uncertainty``: low overall uncertainty (Zhu et al. 2008): the mean least confidence, 1 − max p, over the
  stop set falls to the threshold (default 0.05).
- ``patience``: no val-2 improvement for N rounds (the same rule as ``--patience``).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

DEFAULTS = {"kappa": 0.99, "uncertainty": 0.05, "patience": 3}
KAPPA_WINDOW = 3       # rounds whose kappas are averaged (the paper's three)
STOP_SET_SIZE = 1000   # unlabeled images predicted every round for kappa and uncertainty


def parse_stop(text: str | None) -> dict[str, float]:
    """``"kappa=0.99,patience"`` -> {"kappa": 0.99, "patience": 3}; a rule without a value takes its default."""
    if text is None or not text.strip():
        return {}
    rules = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = (s.strip() for s in part.partition("="))
        if name not in DEFAULTS:
            raise UsageError(f"--stop {text!r}: unknown rule {name!r}; choose from {', '.join(DEFAULTS)} "
                             "(e.g. --stop kappa=0.99,patience=3)")
        if not eq:
            rules[name] = DEFAULTS[name]
            continue
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--stop {text!r}: {name}={value!r} is not a number") from None
        if name == "patience" and not (number >= 1 and number.is_integer()):
            raise UsageError(f"--stop {text!r}: patience must be a whole number of rounds >= 1")
        if name == "kappa" and not -1 < number <= 1:
            raise UsageError(f"--stop {text!r}: kappa must be in (-1, 1]")
        if name == "uncertainty" and not 0 <= number <= 1:
            raise UsageError(f"--stop {text!r}: uncertainty must be in [0, 1]")
        rules[name] = number
    return rules


def stop_set(pool: np.ndarray, seed: int, size: int = STOP_SET_SIZE) -> np.ndarray:
    """The fixed, seeded set of pool images whose predictions the rules compare (sorted ids)."""
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) <= size:
        return np.sort(pool)
    return np.sort(np.random.default_rng([seed, 0x5709]).choice(pool, size=size, replace=False))


def stop_measures(proba: np.ndarray, previous: list[int] | None) -> tuple[list[int], float | None, float]:
    """(predictions, kappa against ``previous`` predictions or None, mean least confidence) on the stop set."""
    from sklearn.metrics import cohen_kappa_score

    pred = proba.argmax(axis=1)
    uncertainty = float(np.mean(1.0 - proba.max(axis=1))) if len(proba) else 0.0
    kappa = None
    if previous is not None and len(previous) == len(pred) and len(pred):
        if np.array_equal(previous, pred):
            kappa = 1.0  # cohen_kappa_score is NaN when both rounds predict a single class
        else:
            kappa = float(cohen_kappa_score(previous, pred))
            kappa = None if math.isnan(kappa) else kappa
    return [int(p) for p in pred], kappa, uncertainty


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def fires(rule: str, threshold: float, history: list[dict]) -> str | None:
    """Why ``rule`` stops after the last row of ``history`` (rows as in state.json or history.csv), or None."""
    if not history:
        return None
    if rule == "kappa":
        kappas = [_number(row.get("stop_kappa")) for row in history[-KAPPA_WINDOW:]]
        if len(kappas) == KAPPA_WINDOW and all(k is not None for k in kappas) and np.mean(kappas) >= threshold:
            return (f"predictions stabilised: mean kappa of the last {KAPPA_WINDOW} rounds {np.mean(kappas):.4f} "
                    f">= {threshold:g}")
        return None
    if rule == "uncertainty":
        value = _number(history[-1].get("stop_uncertainty"))
        if value is not None and value <= threshold:
            return f"overall uncertainty {value:.4f} <= {threshold:g}"
        return None
    if rule == "patience":
        val2 = [float(row["val2_acc"]) for row in history]
        best_at = int(np.argmax(val2))  # the first round with the best val-2 accuracy: later ties do not count
        if len(val2) - 1 - best_at >= threshold:
            return f"no val-2 improvement for {int(threshold)} rounds (patience)"
        return None
    raise ValueError(rule)


def first_stop(rule: str, threshold: float, history: list[dict]) -> int | None:
    """The index of the first row after which ``rule`` would have stopped the run (None: it never fires)."""
    for k in range(len(history)):
        if fires(rule, threshold, history[:k + 1]):
            return k
    return None


def stop_cost(history: list[dict], k: int, n_apply: int, cost_label: float, lam: float, error_cost: float) -> float:
    """The cost of stopping after row ``k``: C_L·labels + k·λ·C_L (training rounds) + C_E·errors on the
    ``n_apply`` images the model then labels (test accuracy where recorded, val-2 otherwise)."""
    row = history[k]
    accuracy = _number(row.get("test_acc"))
    accuracy = float(row["val2_acc"]) if accuracy is None else accuracy
    return cost_label * int(row["labels"]) + k * lam * cost_label + error_cost * (1.0 - accuracy) * n_apply


def where_rules_stop(history: list[dict], rules: dict[str, float], n_apply: int, cost_label: float, lam: float,
                     error_cost: float) -> dict[str, dict]:
    """For each rule, and "hindsight" (the cheapest row): the row it stops after (the last row if it never
    fires), whether it fired, the labels, the accuracy there and the cost."""
    costs = [stop_cost(history, k, n_apply, cost_label, lam, error_cost) for k in range(len(history))]
    out = {}
    for rule, threshold in rules.items():
        k = first_stop(rule, threshold, history)
        out[rule] = {"row": len(history) - 1 if k is None else k, "fired": k is not None}
    out["hindsight"] = {"row": int(np.argmin(costs)), "fired": True}
    for entry in out.values():
        row = history[entry["row"]]
        accuracy = _number(row.get("test_acc"))
        entry.update(labels=int(row["labels"]), accuracy=float(row["val2_acc"]) if accuracy is None else accuracy,
                     cost=costs[entry["row"]], regret=costs[entry["row"]] - min(costs))
    return out
