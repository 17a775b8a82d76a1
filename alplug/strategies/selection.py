"""The one place where strategies turn per-sample scores into chosen indices.

modAL's ``multi_argmax``/``shuffled_argmax`` break ties with the global
``np.random`` state and return the top ``n`` unordered; we need a seeded
tie-break (same seed, same query) and the best first.
"""
from __future__ import annotations

import numpy as np

from .outputs import StrategyError


def select(scores: np.ndarray, n_instances: int, *, largest: bool, random_state=None,
           strategy: str = "strategy") -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n_instances`` best scores (best first) and those scores.

    Ties are broken in index order, or at random when ``random_state`` is given.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = int(n_instances)  # checked by the per-call wrapper (contract.checked), the one place that checks it
    if not np.all(np.isfinite(scores)):
        bad = int(np.sum(~np.isfinite(scores)))
        raise StrategyError(f"{strategy}: {bad} of {len(scores)} scores are NaN or infinite "
                         "(the model's probabilities are not finite; check the training loss)")
    order = np.arange(len(scores)) if random_state is None else np.random.default_rng(random_state).permutation(len(scores))
    key = -scores[order] if largest else scores[order]
    chosen = order[np.argsort(key, kind="stable")[:n]]
    return chosen.astype(np.intp), scores[chosen]
