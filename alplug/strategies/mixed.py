"""Combining two strategies: pre-select with one, pick with the other.

From the mixed strategies of the reports alplug grew from (docs/strategies.md) (e.g. entropy, then model-based
outliers among the most uncertain): the first narrows the pool to the
informative candidates, the second adds diversity or representativeness
among them. Cost: the first strategy on the pool + the second on m x n images.
"""
from __future__ import annotations

import numpy as np


def prefiltered(first, second):
    """A strategy that takes ``prefilter`` x n candidates from ``first`` and n of them from ``second``."""

    def combined(learner, X_pool, n_instances: int = 1, *, random_state=None, prefilter: int = 4):
        """Pre-select prefilter x n candidates with the first strategy, pick n with the second."""
        if prefilter < 1:
            from ..errors import UsageError

            raise UsageError(f"prefilter = {prefilter}, must be >= 1")
        from .outputs import shared_model_outputs

        m = min(len(X_pool), prefilter * n_instances)
        with shared_model_outputs():  # the second strategy reuses the first one's pass where it can
            candidates, _ = first(learner, X_pool, m, random_state=random_state)
            picked, scores = second(learner, X_pool[np.asarray(candidates)], n_instances, random_state=random_state)
        return np.asarray(candidates)[np.asarray(picked)], scores

    combined.__name__ = f"{getattr(first, '__name__', 'first')}_then_{getattr(second, '__name__', 'second')}"
    return combined
