"""BALD and its family: baal's heuristics on MC-dropout probabilities (N, C, T).

Cost: one backbone pass over the pool plus T head passes (see mc.py), reduced to
per-sample scores batch by batch (memory O(N), never O(N x C x T)). BatchBALD
adds its greedy joint-entropy search (batchbald.py) over at most ``candidates`` images.
"""
from __future__ import annotations

import numpy as np

from alplug.strategies.options import checks_options
from alplug.strategies.selection import select

from .batchbald import greedy_batchbald
from .mc import mc_scores, mc_top_candidates


def _scores(name, learner, X_pool, n_instances, T, random_state, score):
    return mc_scores(learner, X_pool, score, T=T, random_state=random_state)  # [N], streamed


def _bald_scores(probs):  # [batch, C, T] -> [batch]
    from baal.active.heuristics import BALD

    return BALD().get_uncertainties(probs)


def bald(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """BALD: mutual information between prediction and weights over T dropout passes; highest first."""
    scores = _scores("bald", learner, X_pool, n_instances, T, random_state, _bald_scores)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="bald")


def batchbald(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20, num_draw: int = 500,
              candidates: int | None = None):
    """BatchBALD: greedy batch maximising the joint mutual information with the weights; pick order.

    The greedy search (``batchbald.greedy_batchbald``: exact joint entropies
    while small, then T x ``num_draw`` sampled label configurations, lazy
    re-scoring) runs on the ``candidates`` images with the highest BALD,
    default max(200, 4 x n_instances), taken from the same streamed MC pass.
    Scores: each pick's gain in mutual information (the first is its BALD).
    """
    from alplug.errors import UsageError

    n, n_instances = len(X_pool), int(n_instances)
    for name, value in (("num_draw", num_draw), ("candidates", candidates)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise UsageError(f"batchbald: {name} = {value!r}, must be a positive integer")
    if candidates is None:
        candidates = max(200, 4 * n_instances)
    elif candidates < n_instances:
        raise UsageError(f"batchbald: candidates = {candidates}, must be >= n_instances = {n_instances}")
    keep, _, probs = mc_top_candidates(learner, X_pool, _bald_scores, min(int(candidates), n), T=T,
                                       random_state=random_state)
    picks, gains = greedy_batchbald(probs, n_instances, num_draw=int(num_draw), random_state=random_state)
    return keep[picks].astype(np.intp), gains


def mc_entropy(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Max entropy of the mean MC-dropout prediction; highest first."""
    from baal.active.heuristics import Entropy

    scores = _scores("mc-entropy", learner, X_pool, n_instances, T, random_state, Entropy().get_uncertainties)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="mc-entropy")


def mc_least_confidence(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Least confidence of the mean MC-dropout prediction: max_c mean_t p; lowest first."""
    from baal.active.heuristics import Certainty

    scores = _scores("mc-least-confidence", learner, X_pool, n_instances, T, random_state,
                     Certainty().get_uncertainties)
    return select(scores, n_instances, largest=False, random_state=random_state, strategy="mc-least-confidence")


def mc_margin(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Margin of the mean MC-dropout prediction (top-1 minus top-2); lowest first."""
    from baal.active.heuristics import Margin

    scores = _scores("mc-margin", learner, X_pool, n_instances, T, random_state, Margin().get_uncertainties)
    return select(scores, n_instances, largest=False, random_state=random_state, strategy="mc-margin")


def _ratio_scores(probs):  # [batch, C, T] -> [batch]
    top2 = np.sort(probs.mean(axis=-1), axis=1)[:, -2:]
    return top2[:, 0] / np.maximum(top2[:, 1], 1e-12)


def mc_ratio(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Ratio of confidence of the mean MC-dropout prediction (top-2 / top-1); highest first.

    baal has no ratio heuristic.
    """
    scores = _scores("mc-ratio", learner, X_pool, n_instances, T, random_state, _ratio_scores)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="mc-ratio")


def _variation_ratio_scores(probs):  # [batch, C, T] -> [batch]
    votes = probs.argmax(axis=1)  # [batch, T]
    counts = (votes[:, :, None] == np.arange(probs.shape[1])).sum(axis=1)  # [batch, C]
    return 1.0 - counts.max(axis=1) / probs.shape[-1]


def variation_ratios(learner, X_pool, n_instances: int = 1, *, random_state=None, T: int = 20):
    """Variation ratios: 1 - (passes whose argmax is the modal class) / T; highest first.

    baal has no variation-ratio heuristic.
    """
    scores = _scores("variation-ratios", learner, X_pool, n_instances, T, random_state, _variation_ratio_scores)
    return select(scores, n_instances, largest=True, random_state=random_state, strategy="variation-ratios")


def _check_options(T=20, num_draw=500, candidates=None, **_):
    """What ``--query-opt`` values the MC strategies take, checked before any training."""
    if T < 2:
        return f"T = {T}, must be >= 2 stochastic passes"
    if num_draw < 1 or (candidates is not None and candidates < 1):
        return "num_draw and candidates must be positive integers"
    return None


for _strategy in (bald, batchbald, mc_entropy, variation_ratios, mc_least_confidence, mc_margin, mc_ratio):
    checks_options(_check_options)(_strategy)
