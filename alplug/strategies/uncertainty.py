"""Uncertainty sampling on the model's class probabilities (Lewis & Gale 1994; Settles 2009).

Scores come from modAL's own utility functions; selection is ``selection.select``.
Cost: one ``predict_proba`` over the pool.
"""
from __future__ import annotations

import numpy as np

from .outputs import SharedProbabilities
from .selection import check_n_instances, pool_size, select


def _checked(name, X_pool, n_instances):
    check_n_instances(n_instances, pool_size(X_pool), name)


def least_confidence(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Least confidence: score = 1 - max_c p(c|x); highest first."""
    from modAL.uncertainty import classifier_uncertainty

    _checked("least-confidence", X_pool, n_instances)
    return select(classifier_uncertainty(SharedProbabilities(learner), X_pool), n_instances, largest=True,
                  random_state=random_state, strategy="least-confidence")


def margin(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Margin: score = p(best|x) - p(second best|x); smallest first (Scheffer et al. 2001)."""
    from modAL.uncertainty import classifier_margin

    _checked("margin", X_pool, n_instances)
    return select(classifier_margin(SharedProbabilities(learner), X_pool), n_instances, largest=False,
                  random_state=random_state, strategy="margin")


def entropy(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Entropy: score = -sum_c p(c|x) log p(c|x); highest first (Shannon entropy of the prediction)."""
    from modAL.uncertainty import classifier_entropy

    _checked("entropy", X_pool, n_instances)
    return select(classifier_entropy(SharedProbabilities(learner), X_pool), n_instances, largest=True,
                  random_state=random_state, strategy="entropy")


def ratio(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Ratio of confidence: score = p(second best|x) / p(best|x); highest first (Monarch 2021)."""
    from .outputs import predict_proba

    _checked("ratio", X_pool, n_instances)
    proba = predict_proba(learner, X_pool)
    top2 = np.sort(proba, axis=1)[:, -2:]  # [N, 2]: second best, best
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(top2[:, 1] > 0, top2[:, 0] / top2[:, 1], 1.0)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="ratio")
