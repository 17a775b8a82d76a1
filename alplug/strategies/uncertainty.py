"""Uncertainty sampling on the model's class probabilities (Lewis & Gale 1994; Settles 2009).

Each strategy scores the shared probabilities (one pass over the pool, reused by every strategy of a query)
with the same arithmetic as modAL's ``classifier_*`` utilities, and ``selection.select`` picks from the
scores. Cost: one pass over the pool. ``n_instances`` and the pool are checked by the per-call wrapper.
"""
from __future__ import annotations

import numpy as np

from .outputs import predict_proba
from .selection import select


def least_confidence(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Least confidence: score = 1 - max_c p(c|x); highest first."""
    scores = 1 - np.max(predict_proba(learner, X_pool), axis=1)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="least-confidence")


def margin(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Margin: score = p(best|x) - p(second best|x); smallest first (Scheffer et al. 2001)."""
    proba = predict_proba(learner, X_pool)
    if proba.shape[1] == 1:
        scores = np.zeros(len(proba))
    else:
        top = np.partition(-proba, 1, axis=1)  # [N, C]: minus the best, minus the second best first
        scores = -top[:, 0] + top[:, 1]
    return select(scores, n_instances, largest=False, random_state=random_state, strategy="margin")


def entropy(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Entropy: score = -sum_c p(c|x) log p(c|x); highest first (Shannon entropy of the prediction)."""
    from scipy.stats import entropy as shannon

    scores = shannon(predict_proba(learner, X_pool).T)  # normalises each row first, as modAL does
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="entropy")


def ratio(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Ratio of confidence: score = p(second best|x) / p(best|x); highest first (Monarch 2021)."""
    proba = predict_proba(learner, X_pool)
    top2 = np.sort(proba, axis=1)[:, -2:]  # [N, 2]: second best, best
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(top2[:, 1] > 0, top2[:, 0] / top2[:, 1], 1.0)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="ratio")
