"""Embedding-space diversity: k-means boundary, greedy k-center (core-set), BADGE."""
from __future__ import annotations

import numpy as np

from alplug.strategies.outputs import embeddings, embeddings_and_proba, labeled_inputs
from alplug.strategies.selection import check_n_instances, pool_size, select


# Above this pool size k-means runs on mini-batches (scikit-learn's MiniBatchKMeans): the
# same objective, memory independent of N per step, at a small cost in cluster quality.
MINIBATCH_ABOVE = 20_000


def kmeans_boundary(learner, X_pool, n_instances: int = 1, *, random_state=None, n_clusters: int = 12):
    """k-means boundary: distance to the 2nd-closest centroid minus distance to the closest; smallest first."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n = pool_size(X_pool)
    check_n_instances(n_instances, n, "kmeans-boundary")
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

    n = pool_size(X_pool)
    check_n_instances(n_instances, n, "coreset")
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


def badge(learner, X_pool, n_instances: int = 1, *, random_state=None, candidates: int = 20_000):
    """BADGE: k-means++ seeding on last-layer gradient embeddings at the predicted label (Ash et al. 2020).

    Gradient embeddings take N x C x D floats; pools larger than ``candidates``
    are first thinned to a seeded uniform sample of that size (the paper seeds
    on the whole pool; uniform thinning keeps k-means++'s D^2 sampling unbiased
    over the sample).
    """
    from sklearn.cluster import kmeans_plusplus

    n = pool_size(X_pool)
    check_n_instances(n_instances, n, "badge")
    if candidates < n_instances:
        from alplug.errors import UsageError

        raise UsageError(f"badge: candidates = {candidates}, must be >= n_instances = {n_instances}")
    if n > candidates:
        keep = np.sort(np.random.default_rng(random_state).choice(n, size=candidates, replace=False))
        idx, scores = badge(learner, X_pool[keep], n_instances, random_state=random_state, candidates=candidates)
        return keep[idx].astype(np.intp), scores
    emb, proba = embeddings_and_proba(learner, X_pool)  # [N, D], [N, C]
    # Gradient of the cross-entropy at the predicted label w.r.t. the last linear layer's weights.
    residual = proba.copy()
    residual[np.arange(n), proba.argmax(axis=1)] -= 1.0  # p - onehot(y_hat), [N, C]
    grads = (residual[:, :, None] * emb[:, None, :]).reshape(n, -1).astype(np.float32)  # [N, C*D]
    norms = np.linalg.norm(grads, axis=1)
    _, idx = kmeans_plusplus(grads, n_clusters=n_instances, random_state=random_state)
    idx = list(dict.fromkeys(int(i) for i in idx))
    if len(idx) < n_instances:
        # k-means++ can pick one point twice when the rest are exact duplicates (zero distance);
        # fill with the largest gradients not yet taken.
        taken = set(idx)
        idx += [int(i) for i in np.argsort(-norms, kind="stable") if int(i) not in taken][:n_instances - len(idx)]
    idx = np.asarray(idx, dtype=np.intp)
    return idx, norms[idx].astype(np.float64)
