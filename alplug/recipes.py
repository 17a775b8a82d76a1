"""Training recipes compared over seeds: several studies of the same strategies and seeds, each made with other
training settings (``--ssl``, ``--semi``, ``--freeze-backbone``, epochs, ...), against the first one.

An argument ``STUDY::STRATEGY`` takes one strategy of a study (an "arm"), and arms are paired by seed alone: this
compares, say, random picks in a study started with ``--initial random`` against TypiClust in one started with
``--initial typiclust``. ``metric`` chooses what is compared: final test accuracy, the labels a run needed to
reach a test accuracy (``labels-to=0.95``; a run that never did counts as one label more than it used), or the
test accuracy at a number of labels (``acc-at=30``), both read from the runs' round records (``test_acc``).

A study's own report compares strategies under one recipe; this compares recipes under the same strategies.
Runs are paired by (strategy, seed), which share their splits and initial labels whatever the recipe, so the
test is a paired one: Wilcoxon's signed-rank test (scipy), with Holm's correction over the recipes compared
(statsmodels is not a dependency, and Holm's step-down is a few lines).
"""
from __future__ import annotations

import numpy as np

from .csvcells import markdown_table
from .report import labels_to_reach, load_runs
from .study import Study

# Settings that tell a study's runs apart within it (strategy, seed), not recipes apart.
_NOT_RECIPE = {"query", "query_options", "seed"}
# Settings that decide a seed's test set: runs can be paired by seed only where these agree. --image-size is not
# one: it changes the resolution the model sees, not which images a seed's splits hold (they come from the data
# set's labels and the seed), so it is a recipe like any other.
_SAME_TEST_SET = ("dataset", "data_dir", "test_size")


def check_pairable(studies: list[Study]) -> None:
    """Studies whose runs of a seed do not share a test set cannot be paired: a one-line error naming why."""
    from .errors import UsageError

    first = studies[0].base
    for study in studies[1:]:
        differ = [f"{k}: {getattr(first, k)!r} != {getattr(study.base, k)!r}" for k in _SAME_TEST_SET
                  if getattr(first, k) != getattr(study.base, k)]
        if differ:
            raise UsageError(f"{study.path} is not on the same test sets as {studies[0].path} ({'; '.join(differ)}); "
                             "compare recipes on the same data and splits")


def recipe_of(study: Study, base: Study) -> str:
    """The settings in which ``study`` differs from ``base``, as ``name=value`` (``base`` itself: "baseline")."""
    ours, theirs = study.base.to_dict(), base.base.to_dict()
    diffs = [f"{k.replace('_', '-')}={ours[k]}" for k in ours if k not in _NOT_RECIPE and ours[k] != theirs[k]]
    return ", ".join(diffs) if diffs else ("baseline" if study is base else "same settings")


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (the same order as given)."""
    order = np.argsort(pvalues)
    m = len(pvalues)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def final_accuracies(study: Study) -> dict[tuple[str, int], float]:
    """Final test accuracy of every finished run, by (strategy, seed)."""
    return {(query, run["seed"]): run["test"] for query, runs in load_runs(study).items() for run in runs}


def parse_metric(text: str) -> tuple[str, float | None]:
    """``test`` | ``labels-to=T`` | ``acc-at=N`` -> (kind, value); a one-line error otherwise."""
    from .errors import UsageError

    kind, eq, value = text.partition("=")
    if kind == "test" and not eq:
        return "test", None
    try:
        number = float(value)
    except ValueError:
        number = None
    if kind == "labels-to" and number is not None and 0 < number <= 1:
        return kind, number
    if kind == "acc-at" and number is not None and number >= 1:
        return kind, number
    raise UsageError(f"--metric {text!r}: use test, labels-to=ACCURACY (e.g. labels-to=0.95) or acc-at=LABELS "
                     "(e.g. acc-at=30)")


def metric_of(run: dict, kind: str, value: float | None) -> float | None:
    """A finished run's value of the metric (None: its history has no test curve to read it from)."""
    if kind == "test":
        return run["test"]
    curve = run.get("test_curve")
    if curve is None:
        return None
    labels = run["labels"]
    if kind == "labels-to":
        reached = labels_to_reach(run, value, "test_curve")
        return float(reached) if reached is not None else float(labels[-1] + 1)  # censored: more than it used
    at = np.flatnonzero(labels <= value)
    return float(curve[at[-1]]) if len(at) else None


def arm_values(study: Study, strategy: str | None, kind: str = "test", value: float | None = None) -> dict:
    """The metric of every finished run, by (strategy, seed), or by seed for one ``strategy``."""
    out = {}
    for query, runs in load_runs(study).items():
        if strategy is not None and query != strategy:
            continue
        for run in runs:
            v = metric_of(run, kind, value)
            if v is not None:
                out[run["seed"] if strategy is not None else (query, run["seed"])] = v
    return out


def parse_arm(text: str) -> tuple[str, str | None]:
    """``STUDY`` or ``STUDY::STRATEGY``."""
    path, sep, strategy = text.partition("::")
    return path, (strategy if sep else None)


def compare_recipes(studies: list[Study], strategies: list[str | None] | None = None, metric: str = "test") -> list[dict]:
    """One row per study (or arm: a study's ``strategies[i]``): its recipe, runs, labels, the metric (median,
    mean ± sd, range), and against the first: paired runs, wins/ties/losses, median paired difference, Wilcoxon p
    and Holm-adjusted p. Arms are paired by seed, studies by (strategy, seed)."""
    from scipy.stats import wilcoxon

    from .errors import UsageError

    kind, value = parse_metric(metric)
    strategies = strategies or [None] * len(studies)
    if len({s is None for s in strategies}) > 1:
        raise UsageError("name a strategy for every study (STUDY::STRATEGY) or for none")
    lower_is_better = kind == "labels-to"
    base = studies[0]
    base_acc = arm_values(base, strategies[0], kind, value)
    rows, raw_p = [], []
    for study, strategy in zip(studies, strategies):
        acc = arm_values(study, strategy, kind, value)
        if strategy is not None and not acc:
            raise UsageError(f"{study.path} has no finished run of {strategy!r} with a value of {metric} "
                             f"(its strategies: {', '.join(study.queries)})")
        values = np.array(list(acc.values()))
        labels = sorted({r["labels"][-1] for q, runs in load_runs(study).items() for r in runs
                         if strategy is None or q == strategy})
        recipe = recipe_of(study, base)
        if strategy is not None:
            recipe = f"{strategy} ({recipe})" if recipe not in ("baseline", "same settings") else strategy
        row = {"study": str(study.path), "recipe": recipe, "runs": len(values),
               "labels": "/".join(str(int(n)) for n in labels),
               "median": float(np.median(values)) if len(values) else None,
               "mean": float(values.mean()) if len(values) else None,
               "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
               "min": float(values.min()) if len(values) else None, "max": float(values.max()) if len(values) else None}
        if study is not base:
            keys = sorted(set(acc) & set(base_acc))
            diff = np.array([acc[k] - base_acc[k] for k in keys])
            better = -diff if lower_is_better else diff
            row.update(pairs=len(keys), wins=int((better > 0).sum()), ties=int((better == 0).sum()),
                       losses=int((better < 0).sum()), median_diff=float(np.median(diff)) if len(keys) else None)
            p = float(wilcoxon(diff).pvalue) if len(keys) >= 2 and np.any(diff != 0) else 1.0
            row["p"] = p
            raw_p.append((len(rows), p))
        rows.append(row)
    for (i, _), adjusted in zip(raw_p, holm([p for _, p in raw_p])):
        rows[i]["p_holm"] = adjusted
    return rows


METRIC_NAMES = {"test": "test acc", "labels-to": "labels to test acc {:g}", "acc-at": "test acc at {:g} labels"}


def markdown(rows: list[dict], metric: str = "test") -> str:
    kind, value = parse_metric(metric)
    digits = 0 if kind == "labels-to" else 3

    def f(v, digits=3):
        return "—" if v is None else f"{v:.{digits}f}"

    name = METRIC_NAMES[kind].format(value) if value is not None else METRIC_NAMES[kind]
    header = ["recipe", "runs", "labels", f"median {name}", "mean ± sd", "range", "vs first: wins/ties/losses",
              "median paired difference", "Wilcoxon p", "Holm p"]
    table = []
    for r in rows:
        versus = (f"{r['wins']}/{r['ties']}/{r['losses']} of {r['pairs']}", f(r["median_diff"], digits),
                  f(r["p"]), f(r["p_holm"])) if "p" in r else ("—", "—", "—", "—")
        table.append([r["recipe"], r["runs"], r["labels"], f(r["median"], digits),
                      f"{f(r['mean'], digits)} ± {f(r['sd'], digits)}", f"{f(r['min'], digits)}–{f(r['max'], digits)}",
                      *versus])
    return markdown_table(header, table) + "\n"
