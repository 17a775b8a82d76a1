"""Stopping rules: when to stop labeling (``--stop kappa=0.99,uncertainty=0.05,patience=3``).

baal, small-text and ASReview have stopping rules; modAL and scikit-activeml, which alplug builds on, have none,
and baal's work on its own loop, so these are ours. Each rule reads only the run's round records, so the same
code stops a run and, in ``alplug report``, shows where every rule would have stopped a finished one.

A rule is one ``StopRule`` in ``STOP_RULES``: its name and default threshold, what thresholds it takes, what it
measures every round on the stop set (kept in each round record as ``stop_<name>``; rules that read the records'
other figures measure nothing), and whether it fires. Adding one touches this file only. The records rules
read are ``alplug.records.RoundRecord``s (not imported here: records name the rules' figures after them).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
import numpy as np

from .errors import UsageError

KAPPA_WINDOW = 3       # rounds whose kappas are averaged (the paper's three)
STOP_SET_SIZE = 1000   # unlabeled images predicted every round for the rules that measure


class StopRule(ABC):
    """One stopping rule. ``measures``: whether it records a figure of the stop set's predictions each round."""

    name: str
    default: float
    measures = False

    def problem(self, threshold: float) -> str | None:
        """Why ``threshold`` is not one this rule takes (None: it is)."""
        return None

    def measure(self, proba: np.ndarray, previous: list[int] | None) -> float | None:
        """This round's figure from the stop set's class probabilities (``previous``: last round's predictions);
        asked only of rules that measure."""
        return None

    @abstractmethod
    def fires(self, threshold: float, history: list) -> str | None:
        """Why the rule stops after the last record of ``history`` (None: it does not)."""


class KappaRule(StopRule):
    """Stabilising predictions (Bloodgood & Vijay-Shanker 2009): Cohen's kappa between successive rounds'
    predictions on the stop set, averaged over the last ``KAPPA_WINDOW`` rounds, reaches the threshold."""

    name, default, measures = "kappa", 0.99, True

    def problem(self, threshold):
        return None if -1 < threshold <= 1 else "kappa must be in (-1, 1]"

    def measure(self, proba, previous):
        from sklearn.metrics import cohen_kappa_score

        pred = proba.argmax(axis=1)
        if previous is None or len(previous) != len(pred) or not len(pred):
            return None
        if np.array_equal(previous, pred):
            return 1.0  # cohen_kappa_score is NaN when both rounds predict a single class
        kappa = float(cohen_kappa_score(previous, pred))
        return None if math.isnan(kappa) else kappa

    def fires(self, threshold, history):
        kappas = [row.stop.get(self.name) for row in history[-KAPPA_WINDOW:]]
        if len(kappas) == KAPPA_WINDOW and all(k is not None for k in kappas) and np.mean(kappas) >= threshold:
            return (f"predictions stabilised: mean kappa of the last {KAPPA_WINDOW} rounds {np.mean(kappas):.4f} "
                    f">= {threshold:g}")
        return None


class UncertaintyRule(StopRule):
    """Low overall uncertainty (Zhu et al. 2008): the mean least confidence, 1 − max p, over the stop set falls
    to the threshold."""

    name, default, measures = "uncertainty", 0.05, True

    def problem(self, threshold):
        return None if 0 <= threshold <= 1 else "uncertainty must be in [0, 1]"

    def measure(self, proba, previous):
        return float(np.mean(1.0 - proba.max(axis=1))) if len(proba) else 0.0

    def fires(self, threshold, history):
        value = history[-1].stop.get(self.name)
        if value is not None and value <= threshold:
            return f"overall uncertainty {value:.4f} <= {threshold:g}"
        return None


class PatienceRule(StopRule):
    """No val-2 improvement for N rounds (the same rule as ``--patience``)."""

    name, default = "patience", 3

    def problem(self, threshold):
        return None if threshold >= 1 and float(threshold).is_integer() else \
            "patience must be a whole number of rounds >= 1"

    def fires(self, threshold, history):
        val2 = [row.val2_acc for row in history]
        best_at = int(np.argmax(val2))  # the first round with the best val-2 accuracy: later ties do not count
        if len(val2) - 1 - best_at >= threshold:
            return f"no val-2 improvement for {int(threshold)} rounds (patience)"
        return None


STOP_RULES: dict[str, StopRule] = {rule.name: rule for rule in (KappaRule(), UncertaintyRule(), PatienceRule())}


def defaults() -> dict[str, float]:
    """Every rule at its default threshold (what a report shows when the run named none)."""
    return {name: rule.default for name, rule in STOP_RULES.items()}


def measuring_rules() -> list[str]:
    """The rules whose figure every round record keeps (``stop_<name>`` in state.json and history.csv)."""
    return [name for name, rule in STOP_RULES.items() if rule.measures]


def parse_stop(text: str | None) -> dict[str, float]:
    """``"kappa=0.99,patience"`` -> {"kappa": 0.99, "patience": 3}; a rule without a value takes its default."""
    if text is None or not text.strip():
        return {}
    rules = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, value = (s.strip() for s in part.partition("="))
        if name not in STOP_RULES:
            raise UsageError(f"--stop {text!r}: unknown rule {name!r}; choose from {', '.join(STOP_RULES)} "
                             "(e.g. --stop kappa=0.99,patience=3)")
        if not eq:
            rules[name] = STOP_RULES[name].default
            continue
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--stop {text!r}: {name}={value!r} is not a number") from None
        problem = STOP_RULES[name].problem(number)
        if problem:
            raise UsageError(f"--stop {text!r}: {problem}")
        rules[name] = number
    return rules


def stop_set(pool: np.ndarray, seed: int, size: int = STOP_SET_SIZE) -> np.ndarray:
    """The fixed, seeded set of pool images whose predictions the rules compare (sorted ids)."""
    pool = np.asarray(pool, dtype=np.int64)
    if len(pool) <= size:
        return np.sort(pool)
    return np.sort(np.random.default_rng([seed, 0x5709]).choice(pool, size=size, replace=False))


def stop_measures(proba: np.ndarray, previous: list[int] | None) -> tuple[list[int], dict[str, float | None]]:
    """(predictions, each measuring rule's figure) on the stop set; ``previous``: last round's predictions."""
    figures = {name: STOP_RULES[name].measure(proba, previous) for name in measuring_rules()}
    return [int(p) for p in proba.argmax(axis=1)], figures


def fires(rule: str, threshold: float, history: list) -> str | None:
    """Why ``rule`` stops after the last record of ``history``, or None."""
    return STOP_RULES[rule].fires(threshold, history) if history else None


def first_stop(rule: str, threshold: float, history: list) -> int | None:
    """The index of the first record after which ``rule`` would have stopped the run (None: it never fires)."""
    for k in range(len(history)):
        if fires(rule, threshold, history[:k + 1]):
            return k
    return None


def _accuracy(row) -> float:
    """Test accuracy where the record has it, val-2 otherwise."""
    return row.val2_acc if row.test_acc is None else row.test_acc


def stop_cost(history: list, k: int, n_apply: int, cost_label: float, lam: float,
              error_cost: float) -> float:
    """The cost of stopping after record ``k``: C_L·labels + k·λ·C_L (training rounds) + C_E·errors on the
    ``n_apply`` images the model then labels (test accuracy where recorded, val-2 otherwise)."""
    row = history[k]
    return cost_label * row.labels + k * lam * cost_label + error_cost * (1.0 - _accuracy(row)) * n_apply


def where_rules_stop(history: list, rules: dict[str, float], n_apply: int, cost_label: float,
                     lam: float, error_cost: float) -> dict[str, dict]:
    """For each rule, and "hindsight" (the cheapest record): the record it stops after (the last if it never
    fires), whether it fired, the labels, the accuracy there and the cost."""
    costs = [stop_cost(history, k, n_apply, cost_label, lam, error_cost) for k in range(len(history))]
    out = {}
    for rule, threshold in rules.items():
        k = first_stop(rule, threshold, history)
        out[rule] = {"row": len(history) - 1 if k is None else k, "fired": k is not None}
    out["hindsight"] = {"row": int(np.argmin(costs)), "fired": True}
    for entry in out.values():
        row = history[entry["row"]]
        entry.update(labels=row.labels, accuracy=_accuracy(row), cost=costs[entry["row"]],
                     regret=costs[entry["row"]] - min(costs))
    return out
