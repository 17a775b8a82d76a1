"""Conformance checks for query strategies, models and data sources, for plugin authors' own test suites.

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

from .strategies.contract import check_result, signature_problems

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
    ``random_state``; the learner unchanged; and, inside modAL's ``ActiveLearner.query`` with
    n_instances=2, one call and two indices. Impossible counts (0, more than the pool) never reach a
    strategy: the per-call wrapper (``strategies.contract.checked``) refuses them, so a strategy need not.
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


# ---- models and data sources ------------------------------------------------------------------------------


def check_model(model, *, shapes=((1, 2), (3, 5))) -> None:
    """Assert that a model plugin follows alplug's model contract; the message lists every problem found.

    ``model``: a ``--model`` name (``"resnet18"``, ``"timm:resnet10t"``) or a ``ModelSpec`` not yet installed.
    For each (channels, classes) in ``shapes`` it builds the model twice with one seed (same weights), runs a
    batch smaller than the model's input size (upsampled) and one at it, and checks: logits of shape
    (N, K); ``head(features)`` equal to the forward pass; embeddings of ``embedding_dim``; the dropout
    layer first in the head, at the given rate and the only randomness in train mode (MC dropout runs
    head-only); gradients reaching the backbone (unless it has no parameters at all: fixed features, such as the
    scattering model's); the state dict reloading strictly; and the module's own checkpoint accepted as
    ``--weights``.
    """
    import tempfile

    import torch

    from .models import ImageClassifier, get_model_spec

    problems = []
    try:
        spec = get_model_spec(model)
    except Exception as exc:
        raise AssertionError(f"{model!r}: cannot get its ModelSpec: {type(exc).__name__}: {exc}") from exc
    name = spec.name
    if not (isinstance(spec.min_input_size, int) and spec.min_input_size >= 1):
        problems.append(f"min_input_size = {spec.min_input_size!r}, must be a whole number >= 1")
    if spec.input_size is not None and not (isinstance(spec.input_size, int) and spec.input_size >= 1):
        problems.append(f"input_size = {spec.input_size!r}, must be None or a whole number >= 1")
    if not 0 <= spec.default_dropout < 1:
        problems.append(f"default_dropout = {spec.default_dropout!r}, must be in [0, 1)")
    side = spec.input_size or spec.min_input_size
    for c, k in shapes:
        if True:
            where = f"{c} channel(s), {k} classes"
            try:
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    net = ImageClassifier(spec, c, k, dropout=0.3)
                    torch.manual_seed(0)
                    twin = ImageClassifier(spec, c, k, dropout=0.3)
            except Exception as exc:
                problems.append(f"{where}: building failed: {type(exc).__name__}: {exc}")
                continue
            a, b = net.state_dict(), twin.state_dict()
            if a.keys() != b.keys() or not all(torch.equal(a[key], b[key]) for key in a):
                problems.append(f"{where}: two builds with the same seed have different weights")
            if not isinstance(net.head[0], torch.nn.Dropout) or abs(net.head[0].p - 0.3) > 1e-9:
                problems.append(f"{where}: the head does not start with the dropout layer at the asked rate")
            generator = torch.Generator().manual_seed(1)
            small = max(1, side // 2) if spec.input_size is None else side
            for size in sorted({small, side}):
                x = torch.randint(0, 256, (3, c, size, size), dtype=torch.uint8, generator=generator)
                try:
                    net.eval()
                    with torch.no_grad():
                        logits = net(x)
                        features = net.features(x)
                        via_head = net.head(features)
                        embedding = net.embed(x)
                        net.head.train()  # MC dropout: only the head samples
                        torch.manual_seed(2)
                        first = net.head(features)
                        second = net.head(features)
                        net.eval()
                except Exception as exc:
                    problems.append(f"{where}, {size} px: the forward pass failed: {type(exc).__name__}: {exc}")
                    continue
                if tuple(logits.shape) != (3, k) or not torch.isfinite(logits).all():
                    problems.append(f"{where}, {size} px: logits of shape {tuple(logits.shape)}, want (3, {k}), finite")
                elif not torch.allclose(via_head, logits, atol=1e-5):
                    problems.append(f"{where}, {size} px: head(features(x)) differs from the forward pass")
                if tuple(embedding.shape) != (3, net.embedding_dim):
                    problems.append(f"{where}, {size} px: embeddings of shape {tuple(embedding.shape)}, want "
                                    f"(3, {net.embedding_dim})")
                if torch.equal(first, second):
                    problems.append(f"{where}, {size} px: the head in train mode gave the same output twice "
                                    "(is its dropout reached?)")
            try:
                net.train()
                loss = torch.nn.functional.cross_entropy(net(x), torch.arange(3) % k)
                loss.backward()
                learns = list(net.backbone.parameters())
                if learns and not any(p.grad is not None and p.grad.abs().sum() > 0 for p in learns):
                    problems.append(f"{where}: no gradient reaches the backbone")
            except Exception as exc:
                problems.append(f"{where}: a training step failed: {type(exc).__name__}: {exc}")
            try:
                ImageClassifier(spec, c, k, dropout=0.3).load_state_dict(net.state_dict(), strict=True)
            except Exception as exc:
                problems.append(f"{where}: its state dict does not load back: {type(exc).__name__}: {exc}")
            with tempfile.TemporaryDirectory() as tmp:
                path = f"{tmp}/model.pt"
                torch.save(net.state_dict(), path)
                try:
                    reused = ImageClassifier(spec, c, k + 1, weights=path)
                    if not all(torch.equal(v, reused.backbone.state_dict()[key])
                               for key, v in net.backbone.state_dict().items()):
                        problems.append(f"{where}: its own checkpoint as --weights did not restore the backbone (build() "
                                        "should read a weights file with alplug.models.load_backbone_weights)")
                except Exception as exc:
                    problems.append(f"{where}: its own checkpoint (a run's model.pt) is refused as --weights: "
                                    f"{type(exc).__name__}: {exc}")
    if problems:
        raise AssertionError(f"model {name!r} does not follow the model contract:\n- " + "\n- ".join(problems))


def check_dataset(source, argument: str | None = None, **load_options) -> None:
    """Assert that a data-source plugin follows alplug's data-source contract; the message lists every problem.

    ``source``: a ``--dataset`` name or a ``DataSource`` not yet installed; ``argument`` what follows
    ``NAME:``; ``load_options`` go to its loader (``data_dir``, ``image_size``, ``download``). Checks that the
    data set it returns follows ``alplug.data.dataset_problems``, that loading twice gives the same data,
    that image values are in range and that images can be read by an array of ids, as runs read them.
    """
    from .data.registry import resolve_dataset
    from .data.contract import DataSource, dataset_problems

    if isinstance(source, DataSource):
        name = source.name
    else:
        name = source
        source = resolve_dataset(f"{source}:{argument}" if argument is not None else source)[1]
    options = {"data_dir": None, "image_size": None, "download": False, **load_options}
    problems = []
    try:
        data = source.load(argument, **options)
        again = source.load(argument, **options)
    except Exception as exc:
        raise AssertionError(f"data source {name!r}: loading failed: {type(exc).__name__}: {exc}") from exc
    problems += dataset_problems(data)
    if not problems:
        n = len(data.y)
        ids = np.unique(np.random.default_rng(0).integers(0, n, size=min(n, 16)))
        try:
            batch = np.asarray(data.X[ids])
        except Exception as exc:
            problems.append(f"X cannot be read by an array of ids: {type(exc).__name__}: {exc}")
        else:
            if batch.shape != (len(ids),) + tuple(data.X.shape[1:]):
                problems.append(f"X[ids] has shape {batch.shape}, want {(len(ids),) + tuple(data.X.shape[1:])}")
            if batch.dtype == np.float32 and (not np.isfinite(batch).all() or batch.min() < 0 or batch.max() > 1):
                problems.append("float32 images must hold finite values in [0, 1]")
            if not np.array_equal(batch, np.asarray(again.X[ids])) or not np.array_equal(data.y, again.y) or \
                    data.classes != again.classes:
                problems.append("two loads gave different data (a loader must be deterministic)")
    if problems:
        raise AssertionError(f"data source {name!r} does not follow the data-source contract:\n- "
                             + "\n- ".join(problems))
