import numpy as np
from sklearn.linear_model import LogisticRegression

from alplug.testing import check_query_strategy
from alplug_example_strategy import least_typical


def test_follows_the_alplug_strategy_contract():
    check_query_strategy(least_typical)


def test_picks_the_image_farthest_from_the_rest():
    X = np.vstack([np.zeros((20, 2)), [[9.0, 9.0]]])
    model = LogisticRegression().fit(X, np.arange(21) % 2)
    idx, _ = least_typical(model, X, n_instances=1)
    assert idx.tolist() == [20]
