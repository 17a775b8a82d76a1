"""What strategies read from a model: probabilities, embeddings, the labeled set.

One shared helper, so no strategy re-implements how to reach the penultimate
layer. ``learner`` is whatever modAL passes (an ``ActiveLearner``), a fitted
skorch net, or a fitted scikit-learn classifier.

Embeddings are the penultimate layer of alplug's modules (any module with an
``embed(x)`` method works). A scikit-learn classifier has no hidden layer: its
input features, flattened, are its embedding.
"""
from __future__ import annotations

import numpy as np

from ..errors import AlplugError


class StrategyError(AlplugError):
    """A strategy cannot work with this model or pool, or returned something malformed."""


def estimator_of(learner):
    """The fitted model inside a modAL learner, or the learner itself."""
    return getattr(learner, "estimator", learner)


def is_torch_net(estimator) -> bool:
    return hasattr(estimator, "module_") and hasattr(estimator, "get_iterator")


def predict_proba(learner, X_pool) -> np.ndarray:
    """Class probabilities, shape (N, C)."""
    return np.asarray(learner.predict_proba(X_pool))


def embeddings(learner, X_pool) -> np.ndarray:
    """Penultimate-layer embeddings, shape (N, D)."""
    return embeddings_and_proba(learner, X_pool, need_proba=False)[0]


def embeddings_and_proba(learner, X_pool, need_proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (N, D) and probabilities (N, C) from one pass over the pool where the model allows it."""
    est = estimator_of(learner)
    if hasattr(est, "embed_and_predict"):
        return est.embed_and_predict(X_pool)
    if is_torch_net(est):
        raise StrategyError(f"this strategy needs embeddings, but {type(est.module_).__name__} has no embed() "
                            "method; build the net with alplug.estimators.make_estimator or add embed(x) "
                            "returning the penultimate layer")
    flat = np.asarray(X_pool, dtype=np.float32).reshape(len(X_pool), -1)
    return flat, (predict_proba(learner, X_pool) if need_proba else None)


def labeled_inputs(learner):
    """The labeled training inputs modAL keeps (``X_training``), or None for a bare estimator."""
    return getattr(learner, "X_training", None)
