"""MC-dropout query strategies for alplug, on baal's heuristics."""
from .mc import mc_batches, mc_probabilities, mc_scores
from .strategies import (bald, batchbald, mc_entropy, mc_least_confidence, mc_margin, mc_ratio,
                         variation_ratios)

__all__ = ["bald", "batchbald", "mc_entropy", "mc_least_confidence", "mc_margin", "mc_batches", "mc_probabilities", "mc_scores",
           "mc_ratio", "variation_ratios"]
