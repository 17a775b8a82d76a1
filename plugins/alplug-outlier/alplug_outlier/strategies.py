"""GLOSH outlier scores of the pool's embeddings (hdbscan package)."""
from __future__ import annotations

import numpy as np

from alplug.strategies.outputs import embeddings
from alplug.strategies.selection import select


def _cluster(learner, X_pool, name, n_instances, min_cluster_size, min_samples, n_components, random_state):
    import hdbscan

    n = len(X_pool)
    emb = embeddings(learner, X_pool)  # [N, D]
    if n_components and n_components < min(emb.shape):
        # Density estimates degrade in 512 dimensions and HDBSCAN's tree search slows to
        # brute force there; a PCA projection keeps the structure and makes it fast.
        from sklearn.decomposition import PCA

        emb = PCA(n_components=n_components, random_state=random_state).fit_transform(emb)
    size = max(2, min(min_cluster_size, n))
    clusterer = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=min(min_samples or size, n - 1) or 1)
    clusterer.fit(emb.astype(np.float64))
    # GLOSH is undefined (NaN) for exact duplicates of a cluster's densest point: not outlying at all.
    return clusterer, np.nan_to_num(clusterer.outlier_scores_, nan=0.0)


def outlier(learner, X_pool, n_instances: int = 1, *, random_state=None, min_cluster_size: int = 10,
            min_samples: int | None = None, n_components: int = 32):
    """Outliers: GLOSH outlier score of each embedding under HDBSCAN; highest first."""
    _, scores = _cluster(learner, X_pool, "outlier", n_instances, min_cluster_size, min_samples, n_components,
                         random_state)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="outlier")


def cluster_outlier(learner, X_pool, n_instances: int = 1, *, random_state=None, min_cluster_size: int = 10,
                    min_samples: int | None = None, n_components: int = 32):
    """Per HDBSCAN cluster in turn: its most central and its most outlying member; noise last."""
    clusterer, scores = _cluster(learner, X_pool, "cluster-outlier", n_instances, min_cluster_size, min_samples,
                                 n_components, random_state)
    labels, membership = clusterer.labels_, clusterer.probabilities_
    groups = [c for c in np.unique(labels) if c >= 0] + ([-1] if np.any(labels == -1) else [])
    queues = []
    for c in groups:
        members = np.flatnonzero(labels == c)
        central = members[np.lexsort((members, -membership[members]))]  # most central first, ties by index
        outlying = members[np.lexsort((members, -scores[members]))]
        queues.append([v for pair in zip(central, outlying) for v in pair])
    chosen, seen = [], set()
    depth = 0
    while len(chosen) < n_instances:
        for queue in queues:
            for v in queue[2 * depth:2 * depth + 2]:
                if v not in seen and len(chosen) < n_instances:
                    seen.add(v)
                    chosen.append(v)
        depth += 1
    idx = np.asarray(chosen, dtype=np.intp)
    return idx, scores[idx]
