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


def agreement(annotations: dict[int, dict[str, str]], classes: list[str], paths: dict[int, str]) -> dict:
    """``annotations``: image id -> {annotator: label}. Returns pairs (Cohen's kappa and how many images they
    share), Fleiss' kappa over the images every annotator labeled (more than two annotators), and the images
    with more than one label, listed with each annotator's."""
    annotators = sorted({who for labels in annotations.values() for who in labels})
    pairs = []
    for a, b in combinations(annotators, 2):
        shared = [labels for labels in annotations.values() if a in labels and b in labels]
        kappa = None
        if shared:
            from sklearn.metrics import cohen_kappa_score

            ya, yb = [s[a] for s in shared], [s[b] for s in shared]
            # kappa is undefined when both gave one and the same class throughout; they agree on every image
            kappa = 1.0 if len(set(ya) | set(yb)) == 1 else float(cohen_kappa_score(ya, yb, labels=classes))
        pairs.append({"annotators": [a, b], "shared": len(shared), "kappa": kappa,
                      "agreed": sum(s[a] == s[b] for s in shared)})
    fleiss, fleiss_images = None, 0
    if len(annotators) > 2:
        everyone = [labels for labels in annotations.values() if len(labels) == len(annotators)]
        fleiss_images = len(everyone)
        if everyone:
            table = np.array([[list(labels.values()).count(c) for c in classes] for labels in everyone])
            fleiss = fleiss_kappa(table)
    disagreements = [{"image_id": i, "path": paths.get(i, str(i)), "labels": labels}
                     for i, labels in annotations.items() if len(set(labels.values())) > 1]
    shared_images = sum(1 for labels in annotations.values() if len(labels) > 1)
    return {"annotators": annotators, "pairs": pairs, "fleiss_kappa": fleiss, "fleiss_images": fleiss_images,
            "shared_images": shared_images, "disagreements": disagreements}
