"""Stratified, seeded splits: test, validation 1 (watches training), validation 2 (scores rounds), pool."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DataError, UsageError
from .sources import DataSet


@dataclass
class Splits:
    """Index arrays into ``DataSet.X``.

    The test set is ``test`` (ids held out of ``DataSet.X``), or, when the data
    set has its own, ``test`` is None and the test images are ``DataSet.X_test``.
    ``pool`` excludes ``initial``; ``initial`` is ``n_start`` images per class
    drawn from what remains after the validation sets, or empty with ``n_start=None``
    until a strategy picks it (``with_initial``).
    """

    test: np.ndarray | None
    y_test: np.ndarray
    val1: np.ndarray
    val2: np.ndarray
    initial: np.ndarray
    pool: np.ndarray

    def test_inputs(self, data: DataSet):
        """What to give the model to score the test set: ids into ``data.X``, or the own test images."""
        return data.X_test if self.test is None else self.test

    def with_initial(self, ids) -> "Splits":
        """These splits with ``ids`` (taken from the pool and the initial set) as the initial labeled set."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        everything = np.union1d(self.pool, self.initial)
        if not np.isin(ids, everything).all():
            raise DataError("an initial labeled set names images outside the pool")
        return Splits(self.test, self.y_test, self.val1, self.val2, ids, np.setdiff1d(everything, ids))

    def sizes(self) -> dict[str, int]:
        return {"test": len(self.y_test), "val1": len(self.val1), "val2": len(self.val2),
                "initial": len(self.initial), "pool": len(self.pool)}


def _count(size: float, n: int, name: str) -> int:
    """A size given as a fraction (< 1) or a count (>= 1)."""
    if size <= 0:
        raise UsageError(f"{name} = {size}, must be a fraction in (0, 1) or a count >= 1")
    count = int(round(size * n)) if size < 1 else int(size)
    if count >= n:
        raise UsageError(f"{name} = {size} leaves nothing of the {n} images for the other splits")
    return count


def _stratified(ids: np.ndarray, y: np.ndarray, count: int, seed: int, name: str):
    """Split ``ids`` into (taken, rest) with ``count`` taken, stratified by ``y[ids]``."""
    try:
        rest, taken = train_test_split(ids, test_size=count, stratify=y[ids], random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot split off {name} ({count} of {len(ids)} images) stratified by class: {exc}; "
                        "use a larger data set or smaller split sizes") from None
    return np.sort(taken), np.sort(rest)


def make_splits(data: DataSet, *, seed: int, n_start: int | None, test_size: float = 0.2,
                val1_size: float = 0.1, val2_size: float = 0.1) -> Splits:
    """Deterministic for a given data set and seed; nothing here looks at ``seed``-free randomness.

    ``n_start=None``: no initial set yet (every remaining image in the pool), for ``--initial``.
    """
    if n_start is not None and n_start < 1:
        raise UsageError(f"n_start = {n_start}, must be >= 1 image per class")
    ids = np.arange(len(data.y))
    n = len(ids)
    if data.X_test is not None:
        test, y_test = None, data.y_test
    else:
        test, ids = _stratified(ids, data.y, _count(test_size, n, "test_size"), seed, "the test set")
        y_test = data.y[test]
    val1, ids = _stratified(ids, data.y, _count(val1_size, n, "val1_size"), seed + 1, "validation set 1")
    val2, ids = _stratified(ids, data.y, _count(val2_size, n, "val2_size"), seed + 2, "validation set 2")

    if n_start is None:
        return Splits(test, y_test, val1, val2, np.array([], dtype=np.int64), ids)
    counts = np.bincount(data.y[ids], minlength=data.n_classes)
    need = n_start * data.n_classes
    if need > len(ids):
        raise UsageError(f"n_start x classes = {n_start} x {data.n_classes} = {need} is larger than the pool of "
                         f"{len(ids)} images; lower --n-start")
    short = [data.classes[c] for c in np.flatnonzero(counts < n_start)]
    if short:
        raise UsageError(f"the pool has fewer than n_start = {n_start} images of class(es) "
                         f"{', '.join(short[:10])}; lower --n-start")
    rng = np.random.default_rng(seed)
    initial = np.sort(np.concatenate([rng.choice(ids[data.y[ids] == c], n_start, replace=False)
                                      for c in range(data.n_classes)]))
    pool = np.setdiff1d(ids, initial)
    return Splits(test, y_test, val1, val2, initial, pool)
