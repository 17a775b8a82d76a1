"""Embedding-space diversity: k-means boundary, greedy k-center (core-set), BADGE."""
from __future__ import annotations

import numpy as np

from alplug.strategies.outputs import embeddings, embeddings_and_proba, labeled_inputs
from alplug.strategies.selection import select


# Above this pool size k-means runs on mini-batches (scikit-learn's MiniBatchKMeans): the
# same objective, memory independent of N per step, at a small cost in cluster quality.
MINIBATCH_ABOVE = 20_000


def kmeans_boundary(learner, X_pool, n_instances: int = 1, *, random_state=None, n_clusters: int = 12):
    """k-means boundary: distance to the 2nd-closest centroid minus distance to the closest; smallest first."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = len(X_pool)
    emb = embeddings(learner, X_pool)  # [N, D]
    k = max(2, min(n_clusters, n))
    if n > MINIBATCH_ABOVE:
        kmeans = MiniBatchKMeans(n_clusters=k, n_init="auto", batch_size=4096, random_state=random_state)
    else:
        kmeans = KMeans(n_clusters=k, n_init="auto", random_state=random_state)
    distances = kmeans.fit(emb).transform(emb)  # [N, k]
    two = np.sort(distances, axis=1)[:, :2]
    return select(two[:, 1] - two[:, 0], n_instances, largest=False, random_state=random_state,
                  strategy="kmeans-boundary")


def _min_distances(points: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Distance of each point to its nearest center, in chunks so memory stays O(N + chunk x centers)."""
    from sklearn.metrics import pairwise_distances

    out = np.full(len(points), np.inf)
    for start in range(0, len(centers), chunk):
        d = pairwise_distances(points, centers[start:start + chunk])  # [N, chunk]
        np.minimum(out, d.min(axis=1), out=out)
    return out


def coreset(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Core-set (greedy k-center): farthest pool image from the labeled set and the picks so far; largest first."""
    from sklearn.metrics import pairwise_distances

    n = len(X_pool)
    emb = embeddings(learner, X_pool)  # [N, D]
    labeled = labeled_inputs(learner)
    chosen, scores = [], []
    if labeled is not None and len(labeled):
        nearest = _min_distances(emb, embeddings(learner, labeled))
    else:  # no labeled set known: the first pick is a seeded random pool image (score 0)
        first = int(np.random.default_rng(random_state).integers(n))
        chosen, scores = [first], [0.0]
        nearest = pairwise_distances(emb, emb[first:first + 1]).ravel()
        nearest[first] = -1.0
    while len(chosen) < n_instances:
        pick = int(np.argmax(nearest))  # first index among ties: deterministic
        chosen.append(pick)
        scores.append(float(max(nearest[pick], 0.0)))
        nearest = np.minimum(nearest, pairwise_distances(emb, emb[pick:pick + 1]).ravel())
        nearest[chosen] = -1.0
    return np.asarray(chosen, dtype=np.intp), np.asarray(scores)


def badge(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """BADGE: k-means++ seeding on last-layer gradient embeddings at the predicted label (Ash et al. 2020)."""
    n = len(X_pool)
    emb, proba = embeddings_and_proba(learner, X_pool)  # [N, D], [N, C]
    # Gradient of the cross-entropy at the predicted label w.r.t. the last linear layer: r ⊗ h.
    r = proba.astype(np.float64)
    r[np.arange(n), proba.argmax(axis=1)] -= 1.0  # p - onehot(y_hat), [N, C]
    h = emb.astype(np.float64)  # [N, D]
    idx = _kmeans_pp_on_outer_products(r, h, n_instances, np.random.default_rng(random_state))
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(h, axis=1)
    return idx, norms[idx]


def _kmeans_pp_on_outer_products(r: np.ndarray, h: np.ndarray, k: int, rng) -> np.ndarray:
    """k-means++ seeding (D^2 sampling) on the points g_i = r_i ⊗ h_i, without forming them.

    ||g_i - g_j||^2 = |r_i|^2 |h_i|^2 + |r_j|^2 |h_j|^2 - 2 (r_i . r_j)(h_i . h_j), so each step costs
    O(N (C + D)) instead of O(N C D), and memory stays O(N (C + D)). scikit-learn's
    ``kmeans_plusplus`` needs the N x C*D matrix. As in BADGE's reference code, the
    first center is the largest gradient and the rest are D^2-sampled.
    """
    sq = (r * r).sum(axis=1) * (h * h).sum(axis=1)  # |g_i|^2, [N]
    first = int(np.argmax(sq))
    chosen = [first]
    d2 = np.maximum(sq + sq[first] - 2.0 * (r @ r[first]) * (h @ h[first]), 0.0)
    d2[first] = 0.0
    while len(chosen) < k:
        total = d2.sum()
        if total <= 0:  # the rest duplicate chosen points: take the largest remaining gradients
            rest = [int(i) for i in np.argsort(-sq, kind="stable") if int(i) not in set(chosen)]
            chosen += rest[:k - len(chosen)]
            break
        pick = int(rng.choice(len(d2), p=d2 / total))
        chosen.append(pick)
        d2 = np.minimum(d2, np.maximum(sq + sq[pick] - 2.0 * (r @ r[pick]) * (h @ h[pick]), 0.0))
        d2[pick] = 0.0
    return np.asarray(chosen, dtype=np.intp)
