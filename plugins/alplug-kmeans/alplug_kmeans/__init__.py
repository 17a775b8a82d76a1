"""Diversity query strategies for alplug: k-means boundary, core-set and BADGE."""
from .strategies import badge, coreset, kmeans_boundary

__all__ = ["badge", "coreset", "kmeans_boundary"]
