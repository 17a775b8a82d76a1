"""An example alplug data-source plugin: ``--dataset imagelist:FILE`` reads the images a CSV file lists.

FILE has a header with ``path`` and ``label`` columns; paths are relative to FILE's folder. Every image is
made ``--image-size`` square (default 32) in grayscale, classes are the labels in sorted order. A data
source is one ``DataSource`` whose ``load`` returns an ``alplug.data.DataSet``; alplug checks what it returns.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from alplug.data import DataSet, DataSource
from alplug.errors import DataError

DEFAULT_SIZE = 32


def load(argument: str, *, data_dir=None, image_size=None, download=True) -> DataSet:
    from PIL import Image, ImageOps

    listing = Path(argument).expanduser()
    if not listing.is_file():
        raise DataError(f"image list {listing} does not exist; pass imagelist:FILE with a path,label CSV")
    try:
        with open(listing, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{listing} is not a UTF-8 CSV file ({exc})") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DataError(f"{listing} needs a header with the columns path and label, and at least one row")
    size = image_size or DEFAULT_SIZE
    images, labels = [], []
    for line, row in enumerate(rows, start=2):
        path = listing.parent / row["path"]
        try:
            with Image.open(path) as im:
                images.append(np.asarray(ImageOps.fit(im.convert("L"), (size, size))))
        except OSError as exc:
            raise DataError(f"{listing} line {line}: cannot read {path} ({exc})") from None
        labels.append(row["label"])
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels], dtype=np.int64)
    return DataSet(f"imagelist:{listing}", np.stack(images)[:, None], y, classes)


IMAGE_LIST = DataSource("imagelist", load, "images listed in a CSV file (path,label), an example plugin",
                        argument="FILE")
