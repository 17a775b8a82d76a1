"""Query strategies: plain functions ``fn(learner, X_pool, n_instances=1, *, random_state=None, **options)``
returning ``(indices, scores)``, found by name through the ``alplug.query_strategies`` entry points.

Each one can be passed straight to modAL's ``ActiveLearner(query_strategy=...)``.
"""
from .mixed import prefiltered
from .outputs import StrategyError, embeddings, embeddings_and_proba, predict_proba
from ..plugins import normalize_name
from .contract import check_result
from .options import strategy_options
from .registry import GROUP, StrategyLoadError, available_strategies, get_strategy, resolve_query

__all__ = ["GROUP", "StrategyError", "StrategyLoadError", "available_strategies", "check_result", "embeddings",
           "embeddings_and_proba", "get_strategy", "normalize_name", "predict_proba", "prefiltered",
           "resolve_query", "strategy_options"]
