"""The floor every few-label recipe must beat: label-free fixed features (HOG, wavelet scattering) with a linear
classifier or label spreading over the pool, on exactly the labels and test images of ``alplug run --n-start K
--seed S`` (alplug's own data loading and splits), so that each seed pairs with a run of a study.

    uv run python benchmarks/label_free_baselines.py --dataset folder:hard-digits --seeds 10 --per-class 1,3,10
    uv run python benchmarks/label_free_baselines.py --dataset digits --against studies/few-labels-10

Prints, per labels-per-class, the median test accuracy and range over the seeds of each baseline, and the
ceiling (logistic regression on the same features with every pool image labeled). With ``--against STUDY``
(a study of ``alplug compare --rounds 0 --n-start K``) it pairs the study's runs with the best baseline seed by
seed: wins, ties, losses and Wilcoxon's signed-rank test. docs/low-budget.md reports the figures.

Features are computed once per data set (they use no labels): HOG (scikit-image, 9 orientations, 8x8 cells, 2x2
blocks, on the grey image) and the scattering model's own features (``--model scattering``, the images at 32 px).
The linear classifier is scikit-learn's logistic regression on standardised features (C=0.1 below every label,
1 with all); label spreading runs on the 64 principal components of the standardised features over the pool, the
labeled images, and the test images left out (a kNN graph of 10 neighbours).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIDE = 32


def hog_features(X: np.ndarray) -> np.ndarray:
    """HOG of the grey image at 32 px (smaller images, such as digits' 8 px, upsampled as the models do)."""
    import torch
    import torch.nn.functional as F
    from skimage.feature import hog

    grey = torch.from_numpy(X.astype(np.float32).mean(axis=1, keepdims=True) / (255.0 if X.dtype == np.uint8 else 1.0))
    if grey.shape[-1] != SIDE or grey.shape[-2] != SIDE:
        grey = F.interpolate(grey, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    grey = grey[:, 0].numpy()
    return np.stack([hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for g in grey])


def scattering_features(X: np.ndarray) -> np.ndarray:
    import torch

    from alplug.models.module import ImageClassifier

    model = ImageClassifier("scattering", X.shape[1], 2, image_size=SIDE).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(X), 256):
            out.append(model.features(torch.from_numpy(np.ascontiguousarray(X[start:start + 256]))).flatten(1).numpy())
    return np.concatenate(out)


def linear(Z, train, y_train, test, y_test, C: float) -> float:
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(C=C, max_iter=2000).fit(Z[train], y_train).score(Z[test], y_test))


def spreading(P, labeled, y_labeled, unlabeled, test, y_test) -> float:
    from sklearn.semi_supervised import LabelSpreading

    ids = np.concatenate([labeled, unlabeled])
    targets = np.concatenate([y_labeled, -np.ones(len(unlabeled), dtype=np.int64)])
    model = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2, max_iter=100).fit(P[ids], targets)
    return float(model.score(P[test], y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--per-class", default="1,3,10")
    parser.add_argument("--against", default=None, help="a study directory to pair with, seed by seed")
    parser.add_argument("--json", default=None, help="write every seed's figures here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from alplug.data import load_dataset, make_splits

    data = load_dataset(args.dataset, image_size=SIDE)
    X = np.asarray(data.X)
    t0 = time.perf_counter()
    features = {"hog": hog_features(X), "scattering": scattering_features(X)}
    print(f"{args.dataset}: {len(X)} images, {data.n_classes} classes; features in {time.perf_counter() - t0:.0f} s "
          f"(HOG {features['hog'].shape[1]}, scattering {features['scattering'].shape[1]} per image)", flush=True)
    budgets = [int(k) for k in args.per_class.split(",")]
    rows = []  # (seed, per_class, method, accuracy)
    for seed in range(args.seeds):
        whole = make_splits(data, seed=seed, n_start=1)
        pool = np.concatenate([whole.pool, whole.initial])
        test, y_test = whole.test, whole.y_test
        for name, F in features.items():
            Z = StandardScaler().fit(F[pool]).transform(F)
            P = PCA(64, random_state=seed).fit(Z[pool]).transform(Z)
            P /= np.linalg.norm(P, axis=1, keepdims=True) + 1e-12
            rows.append((seed, "all", f"{name} + logistic", linear(Z, pool, data.y[pool], test, y_test, 1.0)))
            for k in budgets:
                s = make_splits(data, seed=seed, n_start=k)
                y_lab = data.y[s.initial]
                rows.append((seed, k, f"{name} + logistic", linear(Z, s.initial, y_lab, test, y_test, 0.1)))
                rows.append((seed, k, f"{name} + spreading", spreading(P, s.initial, y_lab, s.pool, test, y_test)))
        print(f"  seed {seed} done", flush=True)
    methods = sorted({r[2] for r in rows})
    print(f"\n| labels per class | {' | '.join(methods)} |\n| --- |" + " --- |" * len(methods))
    for k in [*budgets, "all"]:
        cells = []
        for m in methods:
            v = np.array([r[3] for r in rows if r[1] == k and r[2] == m])
            cells.append(f"{np.median(v):.3f} ({v.min():.3f}-{v.max():.3f})" if len(v) else "")
        print(f"| {k} | {' | '.join(cells)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    if args.against:
        _pair(args.against, rows, budgets)


def _pair(study_dir: str, rows, budgets) -> None:
    """The study's runs against the best baseline at their labels per class (best by median over the seeds)."""
    from scipy.stats import wilcoxon

    from alplug.study import Study

    study = Study.open(study_dir)
    k = study.base.n_start
    if k not in budgets:
        raise SystemExit(f"{study_dir} has {k} labels per class; add it to --per-class")
    ours = {}
    for run in study.runs:
        result = study.run_dir(run) / "result.json"
        if result.is_file():
            ours[run.seed] = json.loads(result.read_text())["test_accuracy"]
    by_method = {}
    for seed, per_class, method, acc in rows:
        if per_class == k:
            by_method.setdefault(method, {})[seed] = acc
    best = max(by_method, key=lambda m: np.median(list(by_method[m].values())))
    seeds = sorted(set(ours) & set(by_method[best]))
    diff = np.array([ours[s] - by_method[best][s] for s in seeds])
    wins, ties = int((diff > 0).sum()), int((diff == 0).sum())
    p = wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
    print(f"\n{study_dir} ({k} per class) against {best}, {len(seeds)} seeds: median {np.median([ours[s] for s in seeds]):.3f}"
          f" vs {np.median([by_method[best][s] for s in seeds]):.3f}; wins/ties/losses {wins}/{ties}/"
          f"{len(seeds) - wins - ties}; median paired difference {np.median(diff):+.3f}; Wilcoxon p = {p:.3g}")


if __name__ == "__main__":
    main()
