"""Strategies that look at the model's hidden activations rather than its predictions."""
from __future__ import annotations

from .outputs import embeddings
from .selection import select


def model_outlier(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Model-based outliers: score = mean activation of the last hidden layer; lowest first.

    Images that barely activate the features the model learned are the ones it
    knows least about (Monarch, Human-in-the-Loop Machine Learning, 2021, ch. 4).
    Cost: one embedding pass over the pool.
    """
    emb = embeddings(learner, X_pool)  # [N, D], post-ReLU and pooled for alplug's modules
    return select(emb.mean(axis=1), n_instances, largest=False, random_state=random_state,
                  strategy="model-outlier")
