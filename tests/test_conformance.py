"""Every installed strategy passes alplug.testing.check_query_strategy, and the check catches real faults."""
import numpy as np
import pytest

from alplug.strategies import available_strategies
from alplug.testing import check_query_strategy, reference_learner

ALL = sorted(available_strategies())


def test_every_strategy_named_in_the_issue_is_installed():
    expected = {"random", "least-confidence", "margin", "entropy", "ratio", "bald", "batchbald", "mc-entropy",
                "variation-ratios", "mc-least-confidence", "mc-margin", "mc-ratio", "kmeans-boundary", "outlier",
                "cluster-outlier", "model-outlier", "coreset", "badge"}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_strategy_conforms(name):
    check_query_strategy(available_strategies()[name].load(), name=name)


def _fails(fn, *fragments):
    with pytest.raises(AssertionError) as info:
        check_query_strategy(fn)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_check_catches_bare_indices():
    def bare(learner, X_pool, n_instances=1, *, random_state=None):
        return np.arange(n_instances)

    _fails(bare, "n_instances=1", "inside modAL's query")


def test_check_catches_nondeterminism_and_duplicates():
    def unseeded(learner, X_pool, n_instances=1, *, random_state=None):
        idx = np.random.default_rng().permutation(len(X_pool))[:n_instances]
        return idx, np.zeros(n_instances)

    _fails(unseeded, "two calls with random_state=7 chose different indices")

    def dupes(learner, X_pool, n_instances=1, *, random_state=None):
        return np.zeros(n_instances, dtype=int), np.zeros(n_instances)

    _fails(dupes, "duplicate indices")


def test_check_catches_a_strategy_that_changes_the_model():
    def leaves_dropout_on(learner, X_pool, n_instances=1, *, random_state=None):
        learner.estimator.module_.train()
        return np.arange(n_instances), np.zeros(n_instances)

    _fails(leaves_dropout_on, "the learner")
    learner, _ = reference_learner()
    learner.estimator.module_.eval()


def test_impossible_counts_are_refused_by_the_wrapper_not_each_strategy():
    from alplug.errors import UsageError
    from alplug.strategies.contract import checked

    def lenient(learner, X_pool, n_instances=1, *, random_state=None):  # checks nothing itself
        n = min(max(n_instances, 1), len(X_pool))
        return np.arange(n), np.zeros(n)

    check_query_strategy(lenient)  # conforms: counts are not a strategy's job
    learner, pool = reference_learner()
    for n in (0, len(pool) + 1, 2.0, True):
        with pytest.raises(UsageError, match="n_instances"):
            checked(lenient, "lenient")(learner, pool, n)


def test_check_catches_bad_signatures():
    def positional(learner, X_pool, n_instances=1, random_state=None):
        return np.arange(n_instances), np.zeros(n_instances)

    _fails(positional, "keyword-only random_state")
