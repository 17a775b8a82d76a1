"""The data-source contract: what a loader returns (``DataSet``) and how it is registered (``DataSource``).

A data-source plugin registers a ``DataSource`` in the ``alplug.datasets`` entry-point group. ``--dataset
NAME`` calls ``load(None, ...)``; a source with an ``argument`` (``folder``, ``npz``) is used as
``--dataset NAME:ARGUMENT`` and gets the text after the colon. Whatever a loader returns is checked
(``dataset_problems``) before a run uses it. docs/data.md#writing-a-data-source-plugin has a worked example.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class DataSet:
    """Images ``X`` (N, C, H, W), integer labels ``y`` (N,) in 0..len(classes)-1 and the class names.

    ``X`` is ``uint8`` (0..255) or ``float32`` (0..1): an array, a memory map, or any object with ``shape``,
    ``dtype``, ``len`` and integer-array indexing (read lazily, batch by batch).
    ``X_test``/``y_test`` hold the data set's own test set when it has one.
    ``skipped`` lists ``(path, reason)`` for files that could not be read.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return self.X.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DataSource:
    """A registered data source.

    load: ``load(argument, *, data_dir, image_size, download)`` -> ``DataSet``. ``argument`` is None for a
        plain name, else the text after ``NAME:``. ``data_dir`` is ``--data-dir`` (None: the loader's
        default), ``image_size`` is ``--image-size`` (for sources that decide their images' size),
        ``download`` whether fetching is allowed. Raise ``alplug.errors.DataError`` with a one-line message
        that says what to do for anything missing or malformed.
    argument: what follows ``NAME:`` (``PATH``), or None when the source takes none.
    """

    name: str
    load: Callable[..., DataSet]
    description: str = ""
    argument: str | None = None

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


def dataset_problems(data) -> list[str]:
    """What is wrong with what a loader returned (empty when it follows the contract)."""
    if not isinstance(data, DataSet):
        return [f"it returned a {type(data).__name__}, not an alplug.data.DataSet"]
    problems = []
    X, y = data.X, np.asarray(data.y)
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    if shape is None or len(shape) != 4:
        problems.append(f"X has shape {shape}; it must be (N, C, H, W)")
    elif np.dtype(dtype) not in (np.uint8, np.float32):
        problems.append(f"X has dtype {dtype}; it must be uint8 (0..255) or float32 (0..1)")
    if not isinstance(data.classes, list) or len(data.classes) < 2 or \
            not all(isinstance(c, str) for c in data.classes):
        problems.append("classes must be a list of at least two class names (strings)")
        return problems
    for X_part, y_part, part in ((X, y, "X/y"), (data.X_test, data.y_test, "X_test/y_test")):
        if X_part is None and y_part is None:
            continue
        if X_part is None or y_part is None:
            problems.append(f"{part}: one is given without the other")
            continue
        y_part = np.asarray(y_part)
        if y_part.ndim != 1 or y_part.dtype != np.int64:
            problems.append(f"{part}: y must be a 1-d int64 array, got shape {y_part.shape} and {y_part.dtype}")
        elif len(y_part) != len(X_part):
            problems.append(f"{part}: {len(X_part)} images but {len(y_part)} labels")
        elif len(y_part) and (y_part.min() < 0 or y_part.max() >= len(data.classes)):
            problems.append(f"{part}: labels must be 0..{len(data.classes) - 1} for {len(data.classes)} classes")
    if data.X_test is not None and shape is not None and tuple(data.X_test.shape[1:]) != tuple(shape[1:]):
        problems.append(f"X_test's images are {tuple(data.X_test.shape[1:])}, X's {tuple(shape[1:])}")
    if not problems and len(np.unique(y)) < 2:
        problems.append("y holds fewer than two classes; active learning needs at least two")
    return problems
