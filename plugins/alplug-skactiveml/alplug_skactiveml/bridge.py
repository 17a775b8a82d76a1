"""The bridge: an alplug strategy call becomes a scikit-activeml ``query`` on the model's embeddings.

scikit-activeml's strategies take one sample matrix ``X`` with ``y`` marking the unlabeled rows (NaN) and
``candidates`` naming the rows to choose from. A modAL learner keeps the labeled images (``X_training``) apart
from the pool, so the bridge stacks their embeddings, labeled rows first, and maps the picks back to pool
positions. The embeddings are alplug's (``alplug.strategies.outputs``): the penultimate layer, which is the
self-supervised or pretrained backbone's output when the run has one, computed once per query and shared with
any other strategy of the same query.

Strategies that need a classifier (Falcun, BADGE, CLUE, DropQuery, ContrastiveAL) get ``ModelHead``: the
trained model's own head applied to those embeddings, so their probabilities are the network's and nothing is
refitted. No library has this adapter: scikit-activeml expects scikit-learn estimators, modAL skorch nets.
"""
from __future__ import annotations

import numpy as np

from alplug.strategies.outputs import StrategyError, embeddings, estimator_of, is_torch_net, labeled_inputs


def _labels(learner, n_labeled: int) -> np.ndarray:
    """The labeled rows' labels as floats (scikit-activeml's missing label is NaN), or zeros if unknown."""
    y = getattr(learner, "y_training", None)
    if y is None or len(y) != n_labeled:
        return np.zeros(n_labeled)
    return np.asarray(y, dtype=np.float64)


def stacked(learner, X_pool) -> tuple[np.ndarray, np.ndarray, int]:
    """(X, y, n_labeled): labeled embeddings then pool embeddings, with NaN labels for the pool rows."""
    pool = embeddings(learner, X_pool)
    labeled = labeled_inputs(learner)
    if labeled is None or len(labeled) == 0:
        return pool.astype(np.float64), np.full(len(pool), np.nan), 0
    lab = embeddings(learner, labeled)
    X = np.concatenate([lab, pool]).astype(np.float64)
    y = np.concatenate([_labels(learner, len(lab)), np.full(len(pool), np.nan)])
    return X, y, len(lab)


def _seed(random_state):
    """scikit-activeml takes an int or a RandomState; a Generator becomes a seed drawn from it."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return random_state


def run_query(qs, learner, X_pool, n_instances: int, **query_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``qs.query`` over the pool rows; returns (pool positions, the utility of each pick when it was made)."""
    n_pool = len(X_pool)
    if n_instances > n_pool:
        raise StrategyError(f"asked for {n_instances} images from a pool of {n_pool}")
    X, y, n_lab = stacked(learner, X_pool)
    candidates = np.arange(n_lab, n_lab + n_pool)
    idx, utilities = qs.query(X, y, candidates=candidates, batch_size=n_instances, return_utilities=True,
                              **query_kwargs)
    idx = np.asarray(idx, dtype=np.intp)
    scores = np.asarray(utilities, dtype=np.float64)[np.arange(len(idx)), idx]
    # Some strategies leave NaN utilities where a pick was forced (e.g. every candidate already covered).
    return idx - n_lab, np.nan_to_num(scores, nan=0.0)


def model_head(learner):
    """A scikit-activeml classifier over embeddings: the trained model's head (see ``ModelHead``)."""
    from skactiveml.base import SkactivemlClassifier

    est = estimator_of(learner)

    class ModelHead(SkactivemlClassifier):
        """The fitted network's head on penultimate embeddings (a scikit-learn model: its predict_proba).

        ``fit`` is never called by the bridge (every query passes ``fit_clf=False``): the model is trained by
        the loop, not by the strategy.
        """

        def __init__(self, classes=None, missing_label=np.nan, random_state=None):
            super().__init__(classes=classes, missing_label=missing_label, random_state=random_state)

        def fit(self, X, y, sample_weight=None):
            raise StrategyError("the model head is trained by the active-learning loop, not by the strategy")

        def predict_proba(self, X, return_embeddings=False):
            proba = _head_proba(est, np.asarray(X))
            return (proba, np.asarray(X)) if return_embeddings else proba

        def predict(self, X, return_embeddings=False):
            proba = self.predict_proba(X)
            pred = self.classes_[proba.argmax(axis=1)]
            return (pred, np.asarray(X)) if return_embeddings else pred

    n_classes = _n_classes(est)
    head = ModelHead(classes=np.arange(n_classes))
    head.classes_ = np.arange(n_classes)
    head._le = None
    return head


def _n_classes(est) -> int:
    if is_torch_net(est):
        classes = getattr(est, "classes_", None)
        if classes is not None:
            return len(classes)
        return int(est.module_.num_classes)
    return len(est.classes_)


def _head_proba(est, emb: np.ndarray) -> np.ndarray:
    if is_torch_net(est):
        import torch

        head = getattr(est.module_, "head", None)
        if head is None:
            raise StrategyError(f"{type(est.module_).__name__} has no head to apply to embeddings; this "
                                "strategy needs an alplug model (make_estimator)")
        param = next(head.parameters())
        x = torch.as_tensor(emb, dtype=param.dtype, device=param.device)
        if any(isinstance(m, torch.nn.Conv2d) for m in head.modules()):
            # A head over feature maps (SqueezeNet: 1x1 conv, then pooling) gives the same logits on the
            # pooled map as a 1x1 map, since the conv and the average commute.
            x = x[:, :, None, None]
        was = head.training
        head.eval()
        try:
            with torch.inference_mode():
                return torch.softmax(head(x).float(), dim=1).cpu().numpy().astype(np.float64)
        finally:
            head.train(was)
    # A scikit-learn classifier's embedding is its flattened input (alplug.strategies.outputs).
    return np.asarray(est.predict_proba(emb), dtype=np.float64)
