"""docs/low-budget.md's lead table from the studies behind it: every folder x (from scratch, the best label-free
baseline, the fixed scattering settings, the trunk without copies, ``--recipe few-labels``, its ceiling) at 1, 3
and 10 labels per class,
medians with ranges over the seeds, and the recipe paired seed by seed with the best baseline and the fixed
settings (wins/ties/losses, median difference, Wilcoxon's signed-rank test).

    uv run python benchmarks/few_labels_table.py --studies studies --update

Reads ``STUDIES/PREFIX-FOLDER-K`` (``alplug compare --recipe few-labels --query random --rounds 0 --n-start K``) and
``STUDIES/PREFIXceil-FOLDER`` (the same with ``--n-start`` as high as the smallest class allows); every other
column comes from the results file (``baselines-*`` from benchmarks/label_free_baselines.py ``--json``, ``fl2-*``
the fixed scattering settings, ``fl3-*`` the trunk without the copies, ``scratch-*`` ResNet-18 from scratch), with
which ``--update`` merges the studies' figures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FOLDERS = ("hard-digits", "shapes", "textures")
BUDGETS = (1, 3, 10)


def study_accuracies(path: Path) -> dict[str, float]:
    """Test accuracy of every finished run of a study, by seed (as text, the results file's keys)."""
    from alplug.study import Study

    study = Study.open(path)
    out = {}
    for run in study.runs:
        result = study.run_dir(run) / "result.json"
        if result.is_file():
            out[str(run.seed)] = json.loads(result.read_text())["test_accuracy"]
    return out


def cell(values: dict | None) -> str:
    if not values:
        return "—"
    v = np.array(list(values.values()))
    n = "" if len(v) >= 10 else f", n={len(v)}"
    return f"{np.median(v):.3f} ({v.min():.3f}–{v.max():.3f}{n})" if len(v) > 1 else f"{v[0]:.3f} (n=1)"


def paired(ours: dict, theirs: dict) -> str:
    from scipy.stats import wilcoxon

    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return "—"
    diff = np.array([ours[s] - theirs[s] for s in seeds])
    p = wilcoxon(diff).pvalue if np.any(diff != 0) and len(diff) > 1 else 1.0
    return (f"{int((diff > 0).sum())}/{int((diff == 0).sum())}/{int((diff < 0).sum())}, "
            f"{np.median(diff):+.3f}, p = {p:.2g}")


def best_baseline(results: dict, folder: str, k: int) -> tuple[str, dict]:
    methods = {m.split(" @ ")[0]: v for m, v in results[f"baselines-{folder}"].items() if m.endswith(f"@ {k} per class")}
    name = max(methods, key=lambda m: np.median(list(methods[m].values())))
    return name, methods[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", default="studies")
    parser.add_argument("--prefix", default="fl4")
    parser.add_argument("--results", default="docs/low-budget/few-labels-results.json")
    parser.add_argument("--update", action="store_true", help="merge the studies' figures into --results")
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text())
    root = Path(args.studies)
    for folder in FOLDERS:
        for name in [f"{p}-{folder}-{k}" for p in ("fl3", args.prefix) for k in BUDGETS] + [f"{args.prefix}ceil-{folder}"]:
            if (root / name).is_dir():
                results[name] = study_accuracies(root / name)
    if args.update:
        Path(args.results).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    header = ["data set", "labels per class", "from scratch (ResNet-18)", "best label-free baseline",
              "fixed scattering settings", "the trunk without copies", "`--recipe few-labels`", "recipe ÷ its ceiling",
              "against the best baseline", "against the fixed settings"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for folder in FOLDERS:
        ceiling = results.get(f"{args.prefix}ceil-{folder}")
        for k in BUDGETS:
            ours = results.get(f"{args.prefix}-{folder}-{k}")
            base_name, base = best_baseline(results, folder, k)
            fixed = results.get(f"fl2-{folder}-{k}")
            ratio = (f"{np.median(list(ours.values())) / np.median(list(ceiling.values())):.2f}"
                     if ours and ceiling else "—")
            print(f"| {folder} | {k} | {cell(results.get(f'scratch-{folder}-{k}'))} | {base_name}: {cell(base)} | "
                  f"{cell(fixed)} | {cell(results.get(f'fl3-{folder}-{k}'))} | {cell(ours)} | {ratio} | "
                  f"{paired(ours or {}, base)} | "
                  f"{paired(ours or {}, fixed or {})} |")
        print(f"| {folder} | every pool label (ceiling) | — | — | {cell(results.get(f'fl2ceil-{folder}'))} | — | "
              f"{cell(ceiling)} | | | |")


if __name__ == "__main__":
    main()
