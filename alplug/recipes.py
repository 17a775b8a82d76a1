"""Training recipes compared over seeds: several studies of the same strategies and seeds, each made with other
training settings (``--ssl``, ``--semi``, ``--freeze-backbone``, epochs, ...), against the first one.

A study's own report compares strategies under one recipe; this compares recipes under the same strategies.
Runs are paired by (strategy, seed), which share their splits and initial labels whatever the recipe, so the
test is a paired one: Wilcoxon's signed-rank test (scipy), with Holm's correction over the recipes compared
(statsmodels is not a dependency, and Holm's step-down is a few lines).
"""
from __future__ import annotations

import numpy as np

from .report import load_runs
from .study import Study

# Settings that tell a study's runs apart within it (strategy, seed), not recipes apart.
_NOT_RECIPE = {"query", "query_options", "seed"}
# Settings that decide a seed's test set: runs can be paired by seed only where these agree.
_SAME_TEST_SET = ("dataset", "data_dir", "image_size", "test_size")


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


def compare_recipes(studies: list[Study]) -> list[dict]:
    """One row per study: its recipe, runs, labels, test accuracy (median, mean ± sd, range), and against the first
    study: paired runs, wins/ties/losses, median paired difference, Wilcoxon p and Holm-adjusted p."""
    from scipy.stats import wilcoxon

    base = studies[0]
    base_acc = final_accuracies(base)
    rows, raw_p = [], []
    for study in studies:
        acc = final_accuracies(study)
        values = np.array(list(acc.values()))
        labels = sorted({r["labels"][-1] for runs in load_runs(study).values() for r in runs})
        row = {"study": str(study.path), "recipe": recipe_of(study, base), "runs": len(values),
               "labels": "/".join(str(int(n)) for n in labels),
               "median": float(np.median(values)) if len(values) else None,
               "mean": float(values.mean()) if len(values) else None,
               "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
               "min": float(values.min()) if len(values) else None, "max": float(values.max()) if len(values) else None}
        if study is not base:
            keys = sorted(set(acc) & set(base_acc))
            diff = np.array([acc[k] - base_acc[k] for k in keys])
            row.update(pairs=len(keys), wins=int((diff > 0).sum()), ties=int((diff == 0).sum()),
                       losses=int((diff < 0).sum()), median_diff=float(np.median(diff)) if len(keys) else None)
            p = float(wilcoxon(diff).pvalue) if len(keys) >= 2 and np.any(diff != 0) else 1.0
            row["p"] = p
            raw_p.append((len(rows), p))
        rows.append(row)
    for (i, _), adjusted in zip(raw_p, holm([p for _, p in raw_p])):
        rows[i]["p_holm"] = adjusted
    return rows


def markdown(rows: list[dict]) -> str:
    def f(v, digits=3):
        return "—" if v is None else f"{v:.{digits}f}"

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| recipe | runs | labels | median test acc | mean ± sd | range | vs first: wins/ties/losses | "
             "median paired difference | Wilcoxon p | Holm p |", "| --- " * 10 + "|"]
    for r in rows:
        versus = (f"{r['wins']}/{r['ties']}/{r['losses']} of {r['pairs']}", f(r["median_diff"], 3), f(r["p"]),
                  f(r["p_holm"])) if "p" in r else ("—", "—", "—", "—")
        lines.append(f"| {cell(r['recipe'])} | {r['runs']} | {r['labels']} | {f(r['median'])} | "
                     f"{f(r['mean'])} ± {f(r['sd'])} | {f(r['min'])}–{f(r['max'])} | " + " | ".join(versus) + " |")
    return "\n".join(lines) + "\n"
