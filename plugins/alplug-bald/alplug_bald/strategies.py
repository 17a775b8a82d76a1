"""BALD and its family: baal's heuristics on MC-dropout probabilities (N, C, T).

Cost: one backbone pass over the pool plus T head passes (see mc.py); BatchBALD
adds its greedy joint-entropy search, O(n_instances x N x num_draw).
"""
from __future__ import annotations

import numpy as np

from alplug.strategies.selection import check_n_instances, pool_size, select

from .mc import mc_probabilities


def _mc(name, learner, X_pool, n_instances, T, random_state):
    check_n_instances(n_instances, pool_size(X_pool), name)
    return mc_probabilities(learner, X_pool, T=T, random_state=random_state)  # [N, C, T]


def bald(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """BALD: mutual information between prediction and weights over T dropout passes; highest first."""
    from baal.active.heuristics import BALD

    probs = _mc("bald", learner, X_pool, n_instances, T, random_state)
    return select(BALD().get_uncertainties(probs), n_instances, largest=True, random_state=random_state,
                  strategy="bald")


def batchbald(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20, num_draw: int = 500):
    """BatchBALD: greedy batch maximising joint mutual information (baal's implementation); highest first."""
    import torch
    from baal.active.heuristics import BatchBALD

    probs = _mc("batchbald", learner, X_pool, n_instances, T, random_state)
    heuristic = BatchBALD(num_samples=n_instances, num_draw=num_draw)
    with torch.random.fork_rng(devices=[]):  # baal draws its joint-entropy samples from torch's RNG
        if random_state is not None:
            torch.manual_seed(int(random_state))
        ranks, scores = heuristic.get_ranks(probs)
    ranks = np.asarray(ranks)[:n_instances].astype(np.intp)
    return ranks, np.asarray(scores, dtype=np.float64)[ranks]


def mc_entropy(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Max entropy of the mean MC-dropout prediction; highest first."""
    from baal.active.heuristics import Entropy

    probs = _mc("mc-entropy", learner, X_pool, n_instances, T, random_state)
    return select(Entropy().get_uncertainties(probs), n_instances, largest=True, random_state=random_state,
                  strategy="mc-entropy")


def mc_least_confidence(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Least confidence of the mean MC-dropout prediction: max_c mean_t p; lowest first."""
    from baal.active.heuristics import Certainty

    probs = _mc("mc-least-confidence", learner, X_pool, n_instances, T, random_state)
    return select(Certainty().get_uncertainties(probs), n_instances, largest=False, random_state=random_state,
                  strategy="mc-least-confidence")


def mc_margin(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Margin of the mean MC-dropout prediction (top-1 minus top-2); lowest first."""
    from baal.active.heuristics import Margin

    probs = _mc("mc-margin", learner, X_pool, n_instances, T, random_state)
    return select(Margin().get_uncertainties(probs), n_instances, largest=False, random_state=random_state,
                  strategy="mc-margin")


def mc_ratio(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Ratio of confidence of the mean MC-dropout prediction (top-2 / top-1); highest first.

    baal has no ratio heuristic.
    """
    probs = _mc("mc-ratio", learner, X_pool, n_instances, T, random_state)
    top2 = np.sort(probs.mean(axis=-1), axis=1)[:, -2:]  # [N, 2]
    scores = top2[:, 0] / np.maximum(top2[:, 1], 1e-12)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="mc-ratio")


def variation_ratios(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Variation ratios: 1 - (passes whose argmax is the modal class) / T; highest first.

    baal has no variation-ratio heuristic.
    """
    probs = _mc("variation-ratios", learner, X_pool, n_instances, T, random_state)
    votes = probs.argmax(axis=1)  # [N, T]
    counts = np.stack([np.bincount(v, minlength=probs.shape[1]) for v in votes])  # [N, C]
    scores = 1.0 - counts.max(axis=1) / probs.shape[-1]
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="variation-ratios")
