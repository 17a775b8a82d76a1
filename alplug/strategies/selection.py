"""The one place where strategies turn per-sample scores into chosen indices.

modAL's ``multi_argmax``/``shuffled_argmax`` break ties with the global
``np.random`` state and return the top ``n`` unordered; we need a seeded
tie-break (same seed, same query) and the best first.
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .outputs import StrategyError


def pool_size(X_pool) -> int:
    try:
        return len(X_pool)
    except TypeError:
        raise UsageError(f"X_pool must be an array-like of samples, got {type(X_pool).__name__}") from None


def check_n_instances(n_instances, n_pool: int, strategy: str) -> int:
    if isinstance(n_instances, bool) or not isinstance(n_instances, (int, np.integer)):
        raise UsageError(f"{strategy}: n_instances = {n_instances!r}, must be an integer")
    if n_instances < 1:
        raise UsageError(f"{strategy}: n_instances = {n_instances}, must be >= 1")
    if n_instances > n_pool:
        raise UsageError(f"{strategy}: n_instances = {n_instances} but the pool holds only {n_pool} samples")
    return int(n_instances)


def select(scores: np.ndarray, n_instances: int, *, largest: bool, random_state=None,
           strategy: str = "strategy") -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n_instances`` best scores (best first) and those scores.

    Ties are broken in index order, or at random when ``random_state`` is given.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = check_n_instances(n_instances, len(scores), strategy)
    if not np.all(np.isfinite(scores)):
        bad = int(np.sum(~np.isfinite(scores)))
        raise StrategyError(f"{strategy}: {bad} of {len(scores)} scores are NaN or infinite "
                         "(the model's probabilities are not finite; check the training loss)")
    order = np.arange(len(scores)) if random_state is None else np.random.default_rng(random_state).permutation(len(scores))
    key = -scores[order] if largest else scores[order]
    chosen = order[np.argsort(key, kind="stable")[:n]]
    return chosen.astype(np.intp), scores[chosen]
