import numpy as np
import pytest

from alplug.data import DataSet, make_splits
from alplug.errors import UsageError


def test_splits_are_disjoint_stratified_and_cover_the_data(digits):
    s = make_splits(digits, seed=0, n_start=3)
    sizes = s.sizes()
    assert sizes == {"test": 359, "val1": 180, "val2": 180, "initial": 30, "pool": 1048}
    parts = [s.test, s.val1, s.val2, s.initial, s.pool]
    together = np.concatenate(parts)
    assert len(np.unique(together)) == len(together) == 1797
    assert np.bincount(digits.y[s.initial]).tolist() == [3] * 10
    for part in (s.val1, s.val2):  # stratified: every class within one image of its share
        share = np.bincount(digits.y[part], minlength=10) / len(part)
        assert np.all(np.abs(share - np.bincount(digits.y) / 1797) < 0.01)


def test_same_seed_same_splits_other_seed_other_splits(digits):
    a, b, c = (make_splits(digits, seed=s, n_start=2) for s in (7, 7, 8))
    for name in ("val1", "val2", "initial", "pool"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.initial, c.initial)


def test_counts_instead_of_fractions(digits):
    s = make_splits(digits, seed=0, n_start=1, test_size=100, val1_size=50, val2_size=60)
    assert (len(s.y_test), len(s.val1), len(s.val2)) == (100, 50, 60)


def test_own_test_set_is_used_when_present(rng):
    X = rng.integers(0, 256, (100, 1, 4, 4), dtype=np.uint8)
    data = DataSet("toy", X, np.arange(100) % 2, ["a", "b"], X_test=X[:7], y_test=np.zeros(7, dtype=np.int64))
    s = make_splits(data, seed=0, n_start=2)
    assert len(s.y_test) == 7 and s.test is None and s.test_inputs(data) is data.X_test and len(s.val1) + len(s.val2) + len(s.initial) + len(s.pool) == 100


def test_n_start_times_classes_larger_than_pool_is_refused(digits):
    with pytest.raises(UsageError, match="larger than the pool"):
        make_splits(digits, seed=0, n_start=200)
    with pytest.raises(UsageError, match="n_start"):
        make_splits(digits, seed=0, n_start=0)


def test_no_initial_set_until_a_strategy_picks_one(digits):
    full = make_splits(digits, seed=0, n_start=3)
    empty = make_splits(digits, seed=0, n_start=None)  # --initial: the same test and validation sets
    assert len(empty.initial) == 0 and np.array_equal(empty.pool, np.union1d(full.pool, full.initial))
    assert np.array_equal(empty.test, full.test) and np.array_equal(empty.val2, full.val2)
    picked = empty.with_initial(empty.pool[[5, 1, 3]])
    assert picked.initial.tolist() == sorted(empty.pool[[1, 3, 5]].tolist())
    assert len(picked.pool) == len(empty.pool) - 3 and not np.isin(picked.initial, picked.pool).any()
