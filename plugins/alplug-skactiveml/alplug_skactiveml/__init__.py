"""scikit-activeml's pool strategies as alplug query strategies (see README.md)."""
from .strategies import (clue, contrastive_al, dal, dropquery, falcun,
                         maxherding, probcover, typiclust)

__all__ = ["typiclust", "probcover", "maxherding", "dal", "falcun", "dropquery", "clue", "contrastive_al"]
