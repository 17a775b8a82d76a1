"""The figures and tables of a strategy study: learning curves with their spread, final accuracies,
labels needed for accuracy targets, a paired test against random, queried-class distributions and
the label-cost model of docs/study.md.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from .csvcells import csv_text
from .errors import UsageError
from .study import Study


MAX_RESULT_BYTES = 16 * 2**20


def load_runs(study: Study) -> dict[str, list[dict]]:
    """Finished runs per strategy: each {'seed', 'labels', 'val2', 'test', 'classes_queried', 'rounds'}. A run
    whose files are damaged is a one-line error naming it (a report on part of the seeds would mislead)."""
    out: dict[str, list[dict]] = {q: [] for q in study.queries}
    for run in study.runs:
        path = study.run_dir(run)
        if not os.path.lexists(path / "result.json"):
            continue
        try:
            out[run.query].append(_load_run(path, run.seed))
        except (UsageError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
            why = str(exc) if isinstance(exc, (UsageError, ValueError)) else f"{type(exc).__name__}: {exc}"
            raise UsageError(f"run {path} is damaged ({why[:300]}); move it out of {study.path / 'runs'} and run "
                             "the study's `alplug compare` command again to redo it") from None
    return out


def _load_run(path: Path, seed: int) -> dict:
    """One finished run's result and round records, read as untrusted."""
    from .records import RunResult
    from .userfiles import read_user_file

    try:
        result = RunResult.from_dict(json.loads(read_user_file(path / "result.json", MAX_RESULT_BYTES,
                                                               "result.json")))
    except ValueError as exc:
        raise ValueError(f"result.json {exc}") from None
    test, classes = result.test_accuracy, result.classes
    records = _round_records(path)
    labels = np.array([r.labels for r in records])
    val2 = np.array([r.val2_acc for r in records])
    if labels[0] < 1 or np.any(np.diff(labels) < 0):
        raise ValueError("state.json's labels do not grow")
    queried = [c for r in records for c in r.queried_classes]
    if any(not 0 <= c < len(classes) for c in queried):
        raise ValueError("state.json's queried_classes name classes the run does not have")
    test_curve = None  # runs written before the records had test_acc have no test curve
    if all(r.test_acc is not None for r in records):
        test_curve = np.array([r.test_acc for r in records])
    sizes = result.split_sizes
    return {"seed": seed, "labels": labels, "val2": val2, "test": float(test), "test_curve": test_curve,
            "classes": classes, "queried_classes": queried, "rounds": len(records) - 1, "history": records,
            "pool": int(sizes.get("pool", 0)) + int(labels[0])}


def _round_records(path: Path) -> list:
    """The round records of a finished run's state.json, each checked (``RoundRecord.from_dict``)."""
    from .records import RoundRecord
    from .rundir import MAX_STATE_BYTES
    from .userfiles import read_user_file

    state = json.loads(read_user_file(path / "state.json", MAX_STATE_BYTES, "state.json"))
    history = state.get("history") if isinstance(state, dict) else None
    if not isinstance(history, list) or not history:
        raise ValueError("state.json has no rounds")
    records = []
    for i, row in enumerate(history):
        try:
            records.append(RoundRecord.from_dict(row))
        except ValueError as exc:
            raise ValueError(f"state.json's round {i} {exc}") from None
    return records


def round_reaching(curve: np.ndarray, target: float) -> int | None:
    """The first round (index into a run's curve) whose accuracy is ``target`` or more; None: never."""
    hit = np.flatnonzero(np.asarray(curve) >= target)
    return int(hit[0]) if len(hit) else None


def labels_to_reach(run: dict, target: float, curve: str = "val2") -> int | None:
    """The first number of labels at which val-2 (or ``curve="test_curve"``: test) accuracy reached ``target``
    (None: never)."""
    k = round_reaching(run[curve], target)
    return None if k is None else int(run["labels"][k])


def mean_curve(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, mean val-2 accuracy, std over runs) on the label counts every run covers.

    Runs with a fixed rate share their label counts, and this is the plain mean per round. With
    the adaptive rate (or a trimmed last round) seeds label different numbers of images per round;
    each run's curve is then interpolated linearly (as the plot draws it) onto the union of the
    label counts, within the range all runs reach, instead of averaging unlike points."""
    start = max(r["labels"][0] for r in runs)
    stop = min(r["labels"][-1] for r in runs)
    grid = np.unique(np.concatenate([r["labels"] for r in runs]))
    grid = grid[(grid >= start) & (grid <= stop)]
    ys = np.stack([np.interp(grid, r["labels"], r["val2"]) for r in runs])
    std = ys.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(grid))
    return grid, ys.mean(axis=0), std


def _same_label_counts(runs: list[dict]) -> bool:
    """Whether the runs labeled the same number of images in every round they all reached."""
    k = min(len(r["labels"]) for r in runs)
    return len({tuple(r["labels"][:k]) for r in runs}) == 1


def normalised_aulc(run: dict) -> float:
    """Area under the val-2 learning curve divided by the label range (1.0: perfect from the start)."""
    x, y = run["labels"], run["val2"]
    if len(x) < 2:
        return float(y[0])
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def label_cost(run: dict, goal: float, cost_label: float, lam: float) -> float | None:
    """Cost of reaching ``goal``: C_L·(initial labels) + K·C_T + Σ C_L·η_i over the K rounds needed,
    with C_T = λ·C_L the cost of one training round (the cost model of docs/study.md). None: goal not reached."""
    k = round_reaching(run["val2"], goal)
    if k is None:
        return None
    initial = int(run["labels"][0])
    queried = int(run["labels"][k] - initial)
    return cost_label * initial + k * lam * cost_label + cost_label * queried


def stopping_table(runs: dict[str, list[dict]], base, cost_label: float, lam: float) -> tuple[list[dict], str]:
    """Where each stopping rule would have stopped each strategy's runs, and at what cost (alplug.stopping)."""
    from .stopping import defaults, parse_stop, where_rules_stop

    rules = {**defaults(), **parse_stop(base.stop)}
    table = []
    for query, rs in runs.items():
        found = [where_rules_stop(r["history"], rules, r["pool"], cost_label, lam, cost_label) for r in rs]
        for rule in [*rules, "hindsight"]:
            if not found:
                continue
            entries = [f[rule] for f in found]
            label = rule if rule == "hindsight" else f"{rule}={rules[rule]:g}"
            table.append({
                "strategy": query, "rule": label,
                "fired": "—" if rule == "hindsight" else f"{sum(e['fired'] for e in entries)}/{len(entries)}",
                "labels at stop (median)": f"{np.median([e['labels'] for e in entries]):.0f}",
                "test acc at stop": _mean_std([e["accuracy"] for e in entries]),
                "cost": f"{np.mean([e['cost'] for e in entries]):.0f}",
                "regret vs hindsight": f"{np.mean([e['regret'] for e in entries]):.0f}",
            })
    intro = (f"Where each rule would have stopped every run (the last round if it never fired: `fired` counts the "
             f"runs it stopped), with the run's own --stop thresholds or the defaults. Cost of stopping after a "
             f"round: C_L·labels + K·λ·C_L for K training rounds + C_E·(1 − test accuracy)·N, the errors on the "
             f"N pool images the model then labels, with C_L = C_E = {cost_label:g} and λ = {lam:g}; regret is the "
             "extra cost over the cheapest round in hindsight (mean over seeds).")
    return table, intro


def _mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.4f}"


def _paired_p(a: list[dict], b: list[dict]) -> str:
    """Paired t-test of final test accuracy over the seeds both strategies finished."""
    from scipy.stats import ttest_rel

    by_seed = {r["seed"]: r["test"] for r in b}
    pairs = [(r["test"], by_seed[r["seed"]]) for r in a if r["seed"] in by_seed]
    if len(pairs) < 2:
        return "—"
    x, y = np.array(pairs).T
    if np.allclose(x, y):
        return "1.000"
    return f"{ttest_rel(x, y).pvalue:.3f}"


def write_report(study: Study, targets=(0.9, 0.95), goal: float = 0.9, cost_label: float = 1.0,
                 lambdas=(15, 30, 60)) -> Path:
    """Write report.md, report.html (figures embedded), figures (PNG and SVG) and CSV tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs(study)
    out = study.path / "report"
    out.mkdir(exist_ok=True)
    figures = {}

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for query, rs in runs.items():
        if not rs:
            continue
        x, mean, std = mean_curve(rs)
        line, = ax.plot(x, mean, marker="o", markersize=3, label=f"{query} (n={len(rs)})",
                        linewidth=2.5 if query == "random" else 1.5)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("labeled images")
    ax.set_ylabel("val-2 accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figures["learning_curves"] = _save(fig, out, "learning_curves")

    class_rows = []
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    names = next((r["classes"] for rs in runs.values() for r in rs), [])
    width = 0.8 / max(1, sum(1 for rs in runs.values() if rs))
    top = None
    for i, (query, rs) in enumerate((q, rs) for q, rs in runs.items() if rs):
        counts = np.bincount([c for r in rs for c in r["queried_classes"]], minlength=len(names))
        share = counts / max(1, counts.sum())
        if top is None:  # the ten classes queried most by random (or the first strategy), shown for all
            ref = runs.get("random") or rs
            ref_counts = np.bincount([c for r in ref for c in r["queried_classes"]], minlength=len(names))
            top = np.argsort(-ref_counts, kind="stable")[:10]
        ax.bar(np.arange(len(top)) + i * width, share[top], width, label=query)
        class_rows += [{"strategy": query, "class": names[c], "share": round(float(share[c]), 4)} for c in top]
    if top is not None:
        ax.set_xticks(np.arange(len(top)) + 0.4 - width / 2, [names[c] for c in top])
    ax.set_ylabel("share of queried labels")
    ax.legend(fontsize=8)
    figures["queried_classes"] = _save(fig, out, "queried_classes")

    table = []
    for query, rs in runs.items():
        row = {"strategy": query, "runs": len(rs), "final test accuracy": _mean_std([r["test"] for r in rs]),
               "normalised AULC": _mean_std([normalised_aulc(r) for r in rs])}
        with_test = rs and all(r["test_curve"] is not None for r in rs)
        for t in targets:
            for curve, suffix in (("val2", ""), ("test_curve", " (test)")) if with_test else (("val2", ""),):
                reached = [labels_to_reach(r, t, curve) for r in rs]
                hits = [v for v in reached if v is not None]
                row[f"labels to {t:g}{suffix}"] = (f"{np.median(hits):.0f} median, {np.mean(hits):.0f} mean "
                                                  f"({len(hits)}/{len(rs)} reached)" if hits else f"— (0/{len(rs)})")
        row["p vs random"] = "—" if query == "random" or "random" not in runs else _paired_p(rs, runs["random"])
        table.append(row)
    cost_table = []
    for query, rs in runs.items():
        row = {"strategy": query}
        for lam in lambdas:
            costs = [label_cost(r, goal, cost_label, lam) for r in rs]
            hits = [c for c in costs if c is not None]
            row[f"λ={lam:g}"] = f"{np.mean(hits):.0f} ({len(hits)}/{len(rs)})" if hits else "not reached"
        cost_table.append(row)

    stop_rows, stop_intro = stopping_table(runs, study.base, cost_label, lambdas[0] if lambdas else 15.0)
    for name, rows in (("summary", table), ("label_cost", cost_table), ("queried_classes", class_rows),
                       ("stopping", stop_rows)):
        if rows:
            (out / f"{name}.csv").write_text(csv_text(list(rows[0]), ([r[k] for k in rows[0]] for r in rows)),
                                            encoding="utf-8")

    base = study.base
    rate = (f"{base.per_round} per round" if base.labeling_rate == "fixed" else
            f"an adaptive labeling rate starting at {base.per_round} per round")
    ragged = any(rs and not _same_label_counts(rs) for rs in runs.values())
    interpolated = (" (seeds labeled different numbers of images per round, so each curve is interpolated "
                    "linearly at the label counts of the others)") if ragged else ""
    intro = (f"{len(study.queries)} strategies x {len(study.seeds)} seeds on {base.dataset} with {base.model}: "
             f"{base.n_start} labels per class to start, {rate}, {base.rounds} rounds, "
             f"{base.epochs} epochs per round. Curves show the mean and one standard deviation over seeds"
             f"{interpolated}; p is a paired t-test of final test accuracy against random over seeds.")
    cost_intro = (f"Cost to reach val-2 accuracy {goal:g}: C_L·(initial labels) + K·C_T + Σ C_L·η over the K "
                  f"rounds needed, with C_L = {cost_label:g} per label and C_T = λ·C_L per training round; mean "
                  "over the seeds that reached the goal (how many in brackets).")
    sections = [("h1", "alplug study report"), ("p", intro), ("img", ("learning curves", figures["learning_curves"])),
                ("h2", "Summary"), ("table", table), ("h2", "Label cost"), ("p", cost_intro), ("table", cost_table),
                ("h2", "Stopping rules"), ("p", stop_intro), ("table", stop_rows), ("h2", "Queried classes"),
                ("p", "Share of queried labels for the ten classes random queried most."),
                ("img", ("queried classes", figures["queried_classes"]))]
    (out / "report.md").write_text(_markdown(sections))
    (out / "report.html").write_text(_html(sections), encoding="utf-8")
    return out


def _save(fig, out: Path, name: str) -> Path:
    """Write ``fig`` as NAME.png and NAME.svg in ``out``; returns the PNG's path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"{name}.{ext}")
    plt.close(fig)
    return out / f"{name}.png"


def _markdown(sections) -> str:
    """report.md: the sections as Markdown, figures by their file names beside it."""
    from .csvcells import markdown_table

    def block(kind, content):
        if kind == "table":
            return markdown_table(list(content[0]), ([r[k] for k in content[0]] for r in content)) if content \
                else "(no finished runs)"
        return {"h1": "# {}", "h2": "## {}", "p": "{}"}[kind].format(content) if kind != "img" else \
            f"![{content[0]}]({content[1].name})"

    return "\n\n".join(block(kind, content) for kind, content in sections) + "\n\n"


REPORT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>alplug study report</title></head>
<body style="font-family:sans-serif;max-width:60em;margin:auto">
{% for kind, content in sections %}
{%- if kind == "h1" %}<h1>{{ content }}</h1>
{%- elif kind == "h2" %}<h2>{{ content }}</h2>
{%- elif kind == "p" %}<p>{{ content }}</p>
{%- elif kind == "img" %}<img alt="{{ content[0] }}" src="data:image/png;base64,{{ content[1] }}" style="max-width:100%">
{%- elif kind == "table" and content %}<table border="1" cellpadding="4" style="border-collapse:collapse">
<tr>{% for name in content[0] %}<th>{{ name }}</th>{% endfor %}</tr>
{% for row in content %}<tr>{% for name in content[0] %}<td>{{ row[name] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{%- elif kind == "table" %}<p>(no finished runs)</p>
{%- endif %}
{% endfor %}</body></html>
"""


def _html(sections) -> str:
    """report.html: the same sections through Jinja2 (Flask's, installed already), every text escaped, the figures
    embedded so the page stands alone."""
    import jinja2

    embedded = [(kind, (content[0], base64.b64encode(content[1].read_bytes()).decode()) if kind == "img" else content)
                for kind, content in sections]
    return jinja2.Environment(autoescape=True).from_string(REPORT_PAGE).render(sections=embedded)
