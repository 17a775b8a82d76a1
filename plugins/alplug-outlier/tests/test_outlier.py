import numpy as np
from sklearn.linear_model import LogisticRegression

from alplug.testing import check_query_strategy
from alplug_outlier import cluster_outlier, outlier


def blobs():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.3, size=(40, 2))
    b = rng.normal(6, 0.3, size=(40, 2))
    far = np.array([[3.0, 20.0], [-15.0, 3.0], [20.0, -10.0]])
    X = np.vstack([a, b, far])
    y = (X[:, 0] > 3).astype(int)
    return X, y


def test_outlier_finds_the_planted_outliers_first():
    X, y = blobs()
    model = LogisticRegression().fit(X, y)  # a scikit-learn model: its inputs are the embedding
    idx, scores = outlier(model, X, n_instances=3)
    assert sorted(idx.tolist()) == [80, 81, 82]
    assert np.all(np.diff(scores) <= 0)


def test_cluster_outlier_takes_central_and_outlying_members_of_each_cluster():
    X, y = blobs()
    model = LogisticRegression().fit(X, y)
    idx, _ = cluster_outlier(model, X, n_instances=4, min_cluster_size=5)
    groups = [0 if i < 40 else 1 if i < 80 else 2 for i in idx.tolist()]
    assert sorted(groups[:4]) == [0, 0, 1, 1]
    first_cluster = [i for i in idx.tolist() if i < 40]
    centre = X[:40].mean(axis=0)
    distances = np.linalg.norm(X[first_cluster] - centre, axis=1)
    assert distances.min() < np.median(np.linalg.norm(X[:40] - centre, axis=1)) < distances.max()


def test_conformance():
    check_query_strategy(outlier)
    check_query_strategy(cluster_outlier)
