"""How much a project's annotators agree: Cohen's kappa per pair on the images both labeled (scikit-learn's),
Fleiss' kappa when there are more than two, and the images they disagree on."""
from __future__ import annotations

from itertools import combinations

import numpy as np


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an (images x classes) table of how many annotators gave each class, every image rated by
    the same number of annotators (at least two). Ours: scikit-learn has Cohen's kappa only, and statsmodels
    would be a dependency for one formula."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    if len(counts) == 0 or n[0] < 2 or not np.all(n == n[0]):
        return None
    n = n[0]
    p_class = counts.sum(axis=0) / counts.sum()
    p_image = (np.sum(counts ** 2, axis=1) - n) / (n * (n - 1))
    p_bar, p_chance = p_image.mean(), np.sum(p_class ** 2)
    return 1.0 if p_chance == 1 else float((p_bar - p_chance) / (1 - p_chance))


MAX_PAIR_ANNOTATORS = 20  # pairs are counted among this many annotators (those with the most labels), at most
MAX_LABELS_SHOWN = 10     # annotators listed per disagreement


def agreement(annotations: dict[int, dict[str, str]], classes: list[str], paths: dict[int, str]) -> dict:
    """``annotations``: image id -> {annotator: label}. Returns pairs (Cohen's kappa and how many images they
    share), Fleiss' kappa over the images every annotator labeled (more than two annotators), and the images
    with more than one label, listed with each annotator's.

    Bounded for any input (an export can name thousands of annotators): pairs grow with the square of the
    annotators, so they are counted among the ``MAX_PAIR_ANNOTATORS`` with the most labels (``pairs_among``
    says how many), and a disagreement lists at most ``MAX_LABELS_SHOWN`` annotators' labels (``annotators``
    says how many labeled it)."""
    by_annotator: dict[str, dict[int, str]] = {}
    for image_id, labels in annotations.items():
        for who, label in labels.items():
            by_annotator.setdefault(who, {})[image_id] = label
    annotators = sorted(by_annotator)
    among = sorted(sorted(annotators), key=lambda w: -len(by_annotator[w]))[:MAX_PAIR_ANNOTATORS]
    pairs = []
    for a, b in combinations(sorted(among), 2):
        small, large = sorted((by_annotator[a], by_annotator[b]), key=len)
        shared = sorted(i for i in small if i in large)
        kappa = None
        ya, yb = [by_annotator[a][i] for i in shared], [by_annotator[b][i] for i in shared]
        if shared:
            from sklearn.metrics import cohen_kappa_score

            # kappa is undefined when both gave one and the same class throughout; they agree on every image
            kappa = 1.0 if len(set(ya) | set(yb)) == 1 else float(cohen_kappa_score(ya, yb, labels=classes))
        pairs.append({"annotators": [a, b], "shared": len(shared), "kappa": kappa,
                      "agreed": sum(x == y for x, y in zip(ya, yb))})
    fleiss, fleiss_images = None, 0
    if len(annotators) > 2:
        everyone = [labels for labels in annotations.values() if len(labels) == len(annotators)]
        fleiss_images = len(everyone)
        if everyone:
            index = {c: k for k, c in enumerate(classes)}
            table = np.zeros((len(everyone), len(classes)), dtype=np.int64)
            for row, labels in enumerate(everyone):
                for label in labels.values():
                    if label in index:  # a class since removed from the project is no vote
                        table[row, index[label]] += 1
            fleiss = fleiss_kappa(table)
    disagreements = [{"image_id": i, "path": paths.get(i, str(i)), "annotators": len(labels),
                      "labels": dict(list(labels.items())[:MAX_LABELS_SHOWN])}
                     for i, labels in annotations.items() if len(set(labels.values())) > 1]
    shared_images = sum(1 for labels in annotations.values() if len(labels) > 1)
    return {"annotators": annotators, "pairs": pairs, "pairs_among": len(among), "fleiss_kappa": fleiss,
            "fleiss_images": fleiss_images, "shared_images": shared_images, "disagreements": disagreements}
