import numpy as np
from sklearn.linear_model import LogisticRegression

from alplug.modal_compat import ActiveLearner
from alplug.testing import check_query_strategy
from alplug_kmeans import badge, coreset, kmeans_boundary


def two_blobs_and_a_bridge():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.2, (30, 2)), rng.normal(4, 0.2, (30, 2)), [[2.0, 2.0]]])
    y = (X[:, 0] > 2).astype(int)
    return X, y


def test_kmeans_boundary_picks_the_point_between_clusters():
    X, y = two_blobs_and_a_bridge()
    model = LogisticRegression().fit(X, y)
    idx, scores = kmeans_boundary(model, X, n_instances=1, n_clusters=2, random_state=0)
    assert idx.tolist() == [60] and scores[0] < 0.5


def test_coreset_starts_far_from_the_labeled_set():
    X, y = two_blobs_and_a_bridge()
    learner = ActiveLearner(LogisticRegression(), coreset, X_training=X[:30:3], y_training=np.r_[y[:27:3], 1])
    idx, scores = coreset(learner, X, n_instances=2)
    assert idx[0] >= 30  # the first pick lies in the blob with no labels
    assert np.all(np.diff(scores) <= 0)


def test_badge_prefers_large_gradients_and_spreads_out():
    X, y = two_blobs_and_a_bridge()
    model = LogisticRegression(C=0.05).fit(X, y)
    idx, scores = badge(model, X, n_instances=6, random_state=0)
    assert len(set(idx.tolist())) == 6
    proba = model.predict_proba(X)
    residual = proba.copy()
    residual[np.arange(len(X)), proba.argmax(1)] -= 1
    norms = np.linalg.norm(residual[:, :, None] * X[:, None, :], axis=(1, 2))
    np.testing.assert_allclose(scores, norms[idx])
    assert norms[idx].mean() > norms.mean()
    assert {i < 30 for i in idx.tolist()} == {True, False}  # both blobs are represented


def test_conformance():
    for fn in (kmeans_boundary, coreset, badge):
        check_query_strategy(fn)


def test_factorised_distances_equal_explicit_gradient_embeddings():
    from alplug_kmeans.strategies import _kmeans_pp_on_outer_products

    rng = np.random.default_rng(0)
    r, h = rng.normal(size=(40, 3)), rng.normal(size=(40, 5))
    g = (r[:, :, None] * h[:, None, :]).reshape(40, -1)
    picks = _kmeans_pp_on_outer_products(r, h, 6, np.random.default_rng(1))
    # Re-run D^2 sampling with explicit vectors and the same random draws: same picks.
    chosen = [int(np.argmax((g * g).sum(1)))]
    d2 = ((g - g[chosen[0]]) ** 2).sum(1)
    draw = np.random.default_rng(1)
    while len(chosen) < 6:
        pick = int(draw.choice(40, p=d2 / d2.sum()))
        chosen.append(pick)
        d2 = np.minimum(d2, ((g - g[pick]) ** 2).sum(1))
    assert picks.tolist() == chosen
