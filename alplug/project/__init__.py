"""Labeling projects: a folder of unlabeled images, a class list, and the model choosing what to label next.

``store`` keeps the state in SQLite, ``images`` finds and reads the image files,
``learn`` trains and queries a batch, ``csvio`` moves labels in and out, and
``server`` is the labeling web page.
"""
from .store import ProjectStore

__all__ = ["ProjectStore"]
