"""Data sets as arrays, data sources as plugins (``alplug.datasets``), and the stratified splits of a run."""
from .registry import GROUP, available_datasets, discover_datasets, load_dataset, resolve_dataset
from .contract import DataSet, DataSource, dataset_problems
from .splits import Splits, make_splits

__all__ = ["GROUP", "DataSet", "DataSource", "Splits", "available_datasets", "dataset_problems",
           "discover_datasets", "load_dataset", "make_splits", "resolve_dataset"]
