import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from alplug.errors import UnknownNameError, UsageError
from alplug.strategies import StrategyError
from alplug.strategies import available_strategies, get_strategy
from alplug.strategies.baseline import random_sampling
from alplug.strategies.uncertainty import entropy, least_confidence, margin, ratio

BUILT_INS = ["random", "least-confidence", "margin", "entropy", "ratio"]


class FixedProba:
    """A 'classifier' whose probabilities we choose."""

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=float)
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        return self.proba[np.asarray(X).reshape(-1).astype(int)]


POOL = np.arange(5)
PROBA = [[0.90, 0.05, 0.05],   # confident
         [0.50, 0.45, 0.05],   # small margin
         [0.34, 0.33, 0.33],   # near uniform: highest entropy, least confident
         [0.60, 0.20, 0.20],
         [0.70, 0.29, 0.01]]


def test_built_ins_are_registered_through_entry_points():
    registered = available_strategies()
    for name in BUILT_INS:
        assert registered[name].distribution == "alplug"
    assert get_strategy("least_confidence").__wrapped__ is least_confidence  # '_' is an alias of '-'


def test_unknown_strategy_suggests_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean 'margin'"):
        get_strategy("margn")


@pytest.mark.parametrize("strategy,expected", [
    (least_confidence, [2, 1]), (margin, [2, 1]), (entropy, [2, 3]), (ratio, [2, 1]),
])
def test_uncertainty_strategies_rank_best_first(strategy, expected):
    model = FixedProba(PROBA)
    idx, scores = strategy(model, POOL, n_instances=2)
    assert idx.tolist() == expected and len(scores) == 2
    assert model.calls == 1


def test_scores_are_the_documented_formulas():
    model = FixedProba(PROBA)
    _, s = margin(model, POOL, n_instances=5)
    assert sorted(s) == pytest.approx(sorted([0.85, 0.05, 0.01, 0.4, 0.41]))
    _, s = least_confidence(model, POOL, n_instances=1)
    assert s[0] == pytest.approx(0.66)
    _, s = ratio(model, POOL, n_instances=5)
    assert sorted(s) == pytest.approx(sorted([0.05 / 0.9, 0.45 / 0.5, 0.33 / 0.34, 0.2 / 0.6, 0.29 / 0.7]))
    _, s = entropy(model, POOL, n_instances=1)
    assert s[0] == pytest.approx(-np.sum(np.array(PROBA[2]) * np.log(PROBA[2])))


def test_ties_break_by_index_or_by_seed():
    model = FixedProba([[0.5, 0.5]] * 50)
    idx, _ = margin(model, np.arange(50), n_instances=3)
    assert idx.tolist() == [0, 1, 2]
    a, _ = margin(model, np.arange(50), n_instances=3, random_state=1)
    b, _ = margin(model, np.arange(50), n_instances=3, random_state=1)
    c, _ = margin(model, np.arange(50), n_instances=3, random_state=2)
    assert a.tolist() == b.tolist() != c.tolist()


def test_random_is_seeded_distinct_and_in_range():
    a, scores = random_sampling(None, np.zeros((100, 2)), n_instances=10, random_state=3)
    b, _ = random_sampling(None, np.zeros((100, 2)), n_instances=10, random_state=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 10 and a.max() < 100
    assert scores.shape == (10,)


@pytest.mark.parametrize("name", BUILT_INS)
@pytest.mark.parametrize("n", [0, 6])
def test_n_instances_outside_the_pool_is_refused(name, n):
    with pytest.raises(UsageError, match="n_instances"):
        get_strategy(name)(FixedProba(PROBA), POOL, n_instances=n)


def test_nan_probabilities_are_an_error_naming_the_strategy():
    model = FixedProba([[np.nan, 0.5]] * 5)
    with pytest.raises(StrategyError, match="margin: 5 of 5 scores are NaN"):
        margin(model, POOL, n_instances=1)


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_works_inside_plain_modal_with_two_instances(name):
    from alplug.modal_compat import active_learner_class

    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return get_strategy(name)(*args, **kwargs)

    learner = active_learner_class()(LogisticRegression(), counted, X_training=X[:10], y_training=y[:10])
    idx, rows = learner.query(X[10:], n_instances=2, random_state=0)
    # modAL unpacks (indices, scores); bare indices would be called twice and give one index for n=2
    assert len(calls) == 1
    assert len(idx) == 2 and len(set(np.asarray(idx).tolist())) == 2
    np.testing.assert_array_equal(rows, X[10:][idx])


def test_modal_teach_works_on_this_scikit_learn():
    from alplug.modal_compat import active_learner_class

    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 1] > 0).astype(int)
    learner = active_learner_class()(LogisticRegression(), margin, X_training=X[:6], y_training=y[:6])
    learner.teach(X[6:9], y[6:9])  # raised TypeError (force_all_finite) on scikit-learn >= 1.8 unpatched
    assert len(learner.X_training) == 9 and learner.score(X, y) > 0.5


def test_missing_modal_gives_the_install_command(monkeypatch):
    import builtins

    from alplug.errors import MissingDependencyError
    from alplug.modal_compat import active_learner_class

    real_import = builtins.__import__

    def without_modal(name, *args, **kwargs):
        if name.startswith("modAL"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_modal)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps modAL-python"):
        active_learner_class()
