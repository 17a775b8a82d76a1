"""Outlier-seeking query strategies for alplug, on HDBSCAN's GLOSH scores."""
from .strategies import cluster_outlier, outlier

__all__ = ["cluster_outlier", "outlier"]
