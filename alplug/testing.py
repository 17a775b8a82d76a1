"""Conformance check for query strategies, for plugin authors' own test suites.

    from alplug.testing import check_query_strategy

    def test_my_strategy_follows_the_contract():
        check_query_strategy(my_strategy)

It runs the strategy on a small fitted model (by default a ResNet-18 with a
dropout head, trained briefly on digits, so MC-dropout and embedding
strategies work too) and raises ``AssertionError`` listing every problem.
"""
from __future__ import annotations

import hashlib
import pickle

import numpy as np

from .strategies.registry import check_result, signature_problems

_FIXTURE = {}


def reference_learner(pool_size: int = 60):
    """A modAL ActiveLearner over a small fitted alplug net, and an unlabeled pool; built once per process."""
    if pool_size not in _FIXTURE:
        import torch

        from .data import load_dataset
        from .estimators import make_estimator
        from .modal_compat import active_learner_class
        from .strategies.baseline import random_sampling

        data = load_dataset("digits")
        rng = np.random.default_rng(0)
        order = rng.permutation(len(data.y))
        labeled, pool = order[:40], order[40:40 + pool_size]
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = make_estimator("resnet18", in_channels=1, num_classes=10, dropout=0.3, epochs=2, batch_size=16)
            learner = active_learner_class()(net, random_sampling, X_training=data.X[labeled], y_training=data.y[labeled])
        # Every skorch prediction leaves the module in eval mode; start there, so the check
        # catches strategies that switch train mode (dropout, BatchNorm updates) on and leave it.
        net.module_.eval()
        _FIXTURE[pool_size] = (learner, data.X[pool])
    return _FIXTURE[pool_size]


def fingerprint(learner) -> str:
    """A digest of everything a strategy must not change: weights, buffers, train/eval modes, training data."""
    h = hashlib.sha256()
    est = getattr(learner, "estimator", learner)
    module = getattr(est, "module_", None)
    if module is not None:
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
        h.update(bytes(m.training for m in module.modules()))
        h.update(repr([(type(m).__name__, getattr(m, "p", None)) for m in module.modules()]).encode())
    else:
        h.update(pickle.dumps(est))
    X = getattr(learner, "X_training", None)
    if X is not None:
        h.update(np.ascontiguousarray(X).tobytes())
    return h.hexdigest()


def check_query_strategy(fn, learner=None, X_pool=None, *, name: str | None = None) -> None:
    """Assert that ``fn`` follows alplug's strategy contract; the message lists every problem found.

    Checks: the signature; a tuple ``(indices, scores)`` of the right types; distinct in-range indices
    for ``n_instances`` of 1, 2, many and the whole pool; the same result twice for a fixed
    ``random_state``; the learner unchanged; n_instances of 0 and pool+1 refused; and, inside
    modAL's ``ActiveLearner.query`` with n_instances=2, one call and two indices.
    """
    name = name or getattr(fn, "__name__", repr(fn))
    problems = [f"signature: {p}" for p in signature_problems(fn)]
    if problems:
        raise AssertionError(f"{name} does not follow the strategy contract:\n- " + "\n- ".join(problems))
    if learner is None:
        learner, X_pool = reference_learner()
    n_pool = len(X_pool)
    before = fingerprint(learner)

    def attempt(n, seed, label):
        try:
            return check_result(fn(learner, X_pool, n, random_state=seed), n, n_pool, name)
        except Exception as exc:  # report, and go on to the other checks
            problems.append(f"{label}: {type(exc).__name__}: {exc}")
            return None

    for n in sorted({1, 2, max(3, n_pool // 3), n_pool}):
        first = attempt(n, 7, f"n_instances={n}")
        if first is None:
            continue
        if not np.all(np.isfinite(first[1])):
            problems.append(f"n_instances={n}: scores are not all finite")
        again = attempt(n, 7, f"n_instances={n}, repeated")
        if again is not None and first[0].tolist() != again[0].tolist():
            problems.append(f"n_instances={n}: two calls with random_state=7 chose different indices")
    if fingerprint(learner) != before:
        problems.append("the learner (weights, buffers, train/eval mode or training data) was changed")

    for n in (0, n_pool + 1):
        try:
            fn(learner, X_pool, n, random_state=0)
        except Exception:
            pass
        else:
            problems.append(f"n_instances={n} (pool of {n_pool}) was accepted; it must raise")

    if hasattr(learner, "query"):
        calls = []

        def counted(*args, **kwargs):
            calls.append(1)
            return fn(*args, **kwargs)

        saved = learner.query_strategy
        learner.query_strategy = counted
        try:
            idx, _ = learner.query(X_pool, n_instances=2, random_state=0)
            if len(calls) != 1:
                problems.append(f"inside modAL's query it was called {len(calls)} times (return a tuple)")
            if len(np.atleast_1d(idx)) != 2:
                problems.append(f"inside modAL's query with n_instances=2 it gave {len(np.atleast_1d(idx))} indices")
        except Exception as exc:
            problems.append(f"inside modAL's query: {type(exc).__name__}: {exc}")
        finally:
            learner.query_strategy = saved

    if problems:
        raise AssertionError(f"{name} does not follow the strategy contract:\n- " + "\n- ".join(problems))
