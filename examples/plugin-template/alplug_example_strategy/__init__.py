"""An example third-party query strategy: the pool images least like the rest."""
from __future__ import annotations

import numpy as np

from alplug.strategies import embeddings
from alplug.strategies.selection import select


def least_typical(learner, X_pool, n_instances: int = 1, *, random_state=None, metric: str = "euclidean"):
    """Least typical: distance of each embedding from the pool's mean embedding; highest first."""
    emb = embeddings(learner, X_pool)  # [N, D]
    centre = emb.mean(axis=0, keepdims=True)
    if metric == "cosine":
        norms = np.linalg.norm(emb, axis=1) * np.linalg.norm(centre) + 1e-12
        scores = 1.0 - (emb @ centre.T).ravel() / norms
    elif metric == "euclidean":
        scores = np.linalg.norm(emb - centre, axis=1)
    else:
        raise ValueError(f"least-typical: metric = {metric!r}, must be 'euclidean' or 'cosine'")
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="least-typical")
