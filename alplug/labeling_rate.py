"""How many images to label in the next round: fixed, or the adaptive rate of docs/loop.md.

Neither modAL nor baal schedules the batch size, so this is ours. The adaptive
rule labels few images while accuracy climbs fast and more when it stalls:

    δ   = max(ε, a_i − a_{i−1}) / η_{i−1}         accuracy gained per label last round
    η_i = ceil(min(R, min(g, 1 − a_i) / δ))      labels expected to gain g (capped at R)

with a_i the val-2 accuracy after round i and η_{i−1} the images labeled in it.
The first query round has no gain to measure yet and labels ``per_round``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .config import RunConfig

if TYPE_CHECKING:
    from .records import RoundRecord

DEFAULT_GAIN = 0.05      # aim for 5 accuracy points per round
DEFAULT_EPSILON = 0.005  # a round that gained less (or lost) counts as this gain
DEFAULT_MAX_FACTOR = 4   # R defaults to 4 x --per-round


def adaptive_parameters(config: RunConfig) -> tuple[int, float, float]:
    """(R, g, ε) with their defaults filled in."""
    return (config.max_per_round or DEFAULT_MAX_FACTOR * config.per_round,
            config.gain or DEFAULT_GAIN, config.epsilon or DEFAULT_EPSILON)


def next_batch_size(config: RunConfig, history: list[RoundRecord]) -> int:
    """Images to query in the next round, from the rounds done so far (the run's round records)."""
    if config.labeling_rate == "fixed" or len(history) < 2:
        return config.per_round
    R, g, eps = adaptive_parameters(config)
    previous, last = history[-2], history[-1]
    delta = max(eps, last.val2_acc - previous.val2_acc) / max(1, last.queried)
    # Rounded before ceil: accuracies are ratios of counts, and 8.000000000000009 must mean 8.
    return max(1, math.ceil(round(min(R, min(g, 1.0 - last.val2_acc) / delta), 9)))
