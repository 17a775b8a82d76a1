"""What strategies read from a model: probabilities, embeddings, the labeled set.

One shared helper, so no strategy re-implements how to reach the penultimate
layer. ``learner`` is whatever modAL passes (an ``ActiveLearner``), a fitted
skorch net, or a fitted scikit-learn classifier.

Embeddings are the penultimate layer of alplug's modules (any module with an
``embed(x)`` method works). A scikit-learn classifier has no hidden layer: its
input features, flattened, are its embedding.
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from ..errors import StrategyError  # noqa: F401 - re-exported: plugins import it from here




def estimator_of(learner):
    """The fitted model inside a modAL learner, or the learner itself."""
    return getattr(learner, "estimator", learner)


def is_torch_net(estimator) -> bool:
    return hasattr(estimator, "module_") and hasattr(estimator, "get_iterator")


@contextlib.contextmanager
def module_for_pass(net, n_images: int):
    """A skorch net's fitted module in eval mode for a pass over ``n_images`` images; its mode restored after.

    alplug's nets hand out the module in their fastest evaluation layout (``ImageClassifierNet.evaluation_module``),
    any other skorch net its own module.
    """
    if hasattr(net, "evaluation_module"):
        with net.evaluation_module(n_images) as module:
            yield module
        return
    module = net.module_
    was_training = module.training
    try:
        yield module.eval()
    finally:
        module.train(was_training)


# While a query runs inside ``shared_model_outputs()``, one backbone pass per
# (model, pool) serves every strategy that asks: a combination such as
# entropy+model-outlier then costs one pass, not three.
_SHARED: contextvars.ContextVar[list | None] = contextvars.ContextVar("alplug_shared_outputs", default=None)


@contextlib.contextmanager
def shared_model_outputs():
    """Share embeddings and probabilities between the strategies of one query (the model must not change)."""
    if _SHARED.get() is not None:  # nested: the outer block already shares
        yield
        return
    token = _SHARED.set([])
    try:
        yield
    finally:
        _SHARED.reset(token)


def _from_shared(est, X_pool):
    """Cached (embeddings, probabilities) rows for ``X_pool`` if a pass over it (or its superset of ids) was made."""
    from ..data.lazy import is_index_array

    for owner, pool, emb, proba in _SHARED.get() or []:
        if owner is not est:
            continue
        if pool is X_pool:
            return emb, proba
        if is_index_array(pool) and is_index_array(X_pool):  # a subset of the ids, e.g. a prefilter's candidates
            order = np.argsort(pool, kind="stable")
            pos = np.searchsorted(pool[order], X_pool)
            pos = np.minimum(pos, len(pool) - 1)
            if np.array_equal(pool[order][pos], X_pool):
                rows = order[pos]
                return emb[rows], proba[rows]
    return None


# Probabilities alone are N x C floats; sharing them means keeping the N x D
# embeddings of the same pass too. Above this size a probability-only query
# keeps memory flat instead (it cannot share with an embedding strategy then).
SHARED_EMBEDDING_BUDGET = 256 * 2**20  # bytes


# Set while a strategy picks without labels (``--initial``): whether it read the model's predictions, which an
# untrained head makes close to random.
_PREDICTIONS_READ: contextvars.ContextVar[list | None] = contextvars.ContextVar("alplug_predictions_read", default=None)


@contextlib.contextmanager
def watch_prediction_reads():
    """Yields a list that is non-empty once a strategy inside the block read the model's predictions."""
    token = _PREDICTIONS_READ.set([])
    try:
        yield _PREDICTIONS_READ.get()
    finally:
        _PREDICTIONS_READ.reset(token)


def mark_predictions_read() -> None:
    """Called by every reader of a model's predictions (probabilities, MC-dropout samples)."""
    reads = _PREDICTIONS_READ.get()
    if reads is not None:
        reads.append(True)


def predict_proba(learner, X_pool) -> np.ndarray:
    """Class probabilities, shape (N, C)."""
    mark_predictions_read()
    est = estimator_of(learner)
    if _SHARED.get() is not None and hasattr(est, "embed_and_predict"):
        cached = _from_shared(est, X_pool)
        if cached is not None:
            return cached[1]
        dim = getattr(getattr(est, "module_", None), "embedding_dim", 0)
        if len(X_pool) * dim * 4 <= SHARED_EMBEDDING_BUDGET:
            return embeddings_and_proba(learner, X_pool)[1]
    if hasattr(est, "embed_and_predict"):  # alplug's pool pass (faster layout), probabilities only
        return est.embed_and_predict(X_pool, need_embeddings=False)[1]
    return np.asarray(learner.predict_proba(X_pool))


def embeddings(learner, X_pool) -> np.ndarray:
    """Penultimate-layer embeddings, shape (N, D)."""
    return embeddings_and_proba(learner, X_pool, need_proba=False)[0]


def embeddings_and_proba(learner, X_pool, need_proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (N, D) and probabilities (N, C) from one pass over the pool where the model allows it."""
    if need_proba:
        mark_predictions_read()
    est = estimator_of(learner)
    if hasattr(est, "embed_and_predict"):
        shared = _SHARED.get()
        if shared is None:
            return est.embed_and_predict(X_pool, need_proba=need_proba)
        cached = _from_shared(est, X_pool)
        if cached is None:
            cached = est.embed_and_predict(X_pool)
            shared.append((est, X_pool, *cached))
        return cached
    if is_torch_net(est):
        raise StrategyError(f"this strategy needs embeddings, but {type(est.module_).__name__} has no embed() "
                            "method; build the net with alplug.estimators.make_estimator or add embed(x) "
                            "returning the penultimate layer")
    flat = np.asarray(X_pool, dtype=np.float32).reshape(len(X_pool), -1)
    return flat, (predict_proba(learner, X_pool) if need_proba else None)


def labeled_inputs(learner):
    """The labeled training inputs modAL keeps (``X_training``), or None for a bare estimator."""
    return getattr(learner, "X_training", None)
