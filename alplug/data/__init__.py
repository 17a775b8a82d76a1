"""Data sets as arrays, and the stratified splits of an active-learning run."""
from .sources import DATASETS, DataSet, load_dataset
from .splits import Splits, make_splits

__all__ = ["DATASETS", "DataSet", "Splits", "load_dataset", "make_splits"]
