import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import alplug_skactiveml as sk
from alplug.estimators import make_estimator
from alplug.modal_compat import ActiveLearner
from alplug.strategies import available_strategies, get_strategy
from alplug.testing import check_query_strategy
from alplug_skactiveml.bridge import model_head, stacked

LABEL_FREE = ["typiclust", "probcover", "maxherding", "dal"]
WITH_MODEL = ["falcun", "dropquery", "clue", "contrastive_al"]


def four_blobs(n_per=25, seed=0):
    """Four tight, far-apart blobs in 2-D; labels are the blob."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    X = np.concatenate([c + rng.normal(0, 0.5, (n_per, 2)) for c in centres])
    return X, np.repeat(np.arange(4), n_per), centres


@pytest.fixture(scope="module")
def reference():
    from alplug.testing import reference_learner

    return reference_learner()  # one ResNet fit shared by the module (the kit checks it is never changed)


@pytest.mark.parametrize("name", LABEL_FREE + WITH_MODEL)
def test_conformance(name, reference):
    learner, X_pool = reference
    check_query_strategy(getattr(sk, name), learner, X_pool)


def test_registered_with_their_origin():
    entries = available_strategies()
    for name in ("typiclust", "probcover", "maxherding", "dal", "falcun", "dropquery", "clue", "contrastive-al"):
        assert entries[name].distribution == "alplug-skactiveml", name
        assert get_strategy(name) is not None


@pytest.mark.parametrize("name", ["typiclust", "probcover", "maxherding"])
def test_cold_start_picks_one_image_per_blob_without_labels(name):
    X, y, _ = four_blobs()
    idx, scores = getattr(sk, name)(LogisticRegression(), X, n_instances=4, random_state=0)
    assert sorted(y[idx].tolist()) == [0, 1, 2, 3]
    assert np.all(np.isfinite(scores))


def test_typiclust_picks_typical_images_not_outliers():
    X, y, centres = four_blobs()
    X = np.concatenate([X, [[5.0, 5.0], [20.0, 20.0]]])  # two outliers between and beyond the blobs
    idx, _ = sk.typiclust(LogisticRegression(), X, n_instances=4, random_state=0)
    assert len(X) - 1 not in idx and len(X) - 2 not in idx
    near = np.linalg.norm(X[idx] - centres[y[idx]], axis=1)
    spread = np.linalg.norm(X[:100] - centres[y], axis=1)
    assert near.mean() < np.median(spread)  # closer to their centre than a typical member


@pytest.mark.parametrize("name", ["typiclust", "probcover", "dal"])
def test_labeled_blobs_are_skipped(name):
    """With two blobs labeled, the picks go to the blobs without labels: the labeled rows are seen as such."""
    X, y, _ = four_blobs()
    labeled = np.flatnonzero(y < 2)[::2]  # half of blobs 0 and 1; their other half stays in the pool
    pool = np.flatnonzero(~np.isin(np.arange(len(y)), labeled))
    learner = ActiveLearner(LogisticRegression(), getattr(sk, name), X_training=X[labeled],
                            y_training=y[labeled])
    idx, _ = getattr(sk, name)(learner, X[pool], n_instances=2, random_state=0)
    assert np.all((idx >= 0) & (idx < len(pool)))
    assert set(y[pool[idx]].tolist()) <= {2, 3}


def test_stacking_puts_labeled_rows_first_and_marks_the_pool_unlabeled():
    X, y, _ = four_blobs()
    labeled = [0, 30, 60]
    learner = ActiveLearner(LogisticRegression(), sk.typiclust, X_training=X[labeled], y_training=y[labeled])
    Xs, ys, n_lab = stacked(learner, X[10:20])
    assert n_lab == 3 and Xs.shape == (13, 2)
    np.testing.assert_allclose(Xs[:3], X[labeled], rtol=1e-6)  # embeddings are float32
    np.testing.assert_allclose(Xs[3:], X[10:20], rtol=1e-6)
    assert ys[:3].tolist() == [0, 1, 2] and np.isnan(ys[3:]).all()


def test_dal_without_a_labeled_set_says_what_to_use():
    from alplug.strategies.outputs import StrategyError

    X, _, _ = four_blobs()
    with pytest.raises(StrategyError, match="typiclust"):
        sk.dal(LogisticRegression(), X, n_instances=2, random_state=0)


def test_model_head_gives_the_networks_own_probabilities():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (40, 1, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 3
    for arch in ("resnet18", "squeezenet1_1"):
        net = make_estimator(arch, in_channels=1, num_classes=3, epochs=1, batch_size=20)
        net.fit(X, y)
        emb, proba = net.embed_and_predict(X)
        head = model_head(net)
        np.testing.assert_allclose(head.predict_proba(emb), proba, atol=1e-4)
        np.testing.assert_array_equal(head.predict(emb), proba.argmax(1))


def test_plain_modal_loop_with_typiclust_on_an_image_net():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    X = rng.integers(0, 255, (60, 1, 8, 8), dtype=np.uint8)
    y = np.arange(60) % 3
    net = make_estimator("resnet18", in_channels=1, num_classes=3, epochs=1, batch_size=20)
    learner = ActiveLearner(net, sk.typiclust, X_training=X[:6], y_training=y[:6])
    pool = np.arange(6, 60)
    idx, _ = learner.query(X[pool], n_instances=5, random_state=0)
    assert len(set(np.asarray(idx).tolist())) == 5
    learner.teach(X[pool[idx]], y[pool[idx]])
    assert len(learner.y_training) == 11
