"""Query strategies: plain functions ``fn(learner, X_pool, n_instances=1, *, random_state=None, **options)``
returning ``(indices, scores)``, found by name through the ``alplug.query_strategies`` entry points.

Each one can be passed straight to modAL's ``ActiveLearner(query_strategy=...)``.
"""
from .registry import GROUP, available_strategies, get_strategy, normalize_name

__all__ = ["GROUP", "available_strategies", "get_strategy", "normalize_name"]
