"""The baseline every strategy must beat."""
from __future__ import annotations

import numpy as np



def random_sampling(learner, X_pool, n_instances: int = 1, *, random_state=None):
    """Uniform random sample of the pool, without replacement.

    Score: none (all zeros). Cost: no model evaluation. Often hard to beat
    (see the study in docs/).
    """
    n = int(n_instances)
    rng = np.random.default_rng(random_state)
    idx = rng.choice(len(X_pool), size=n, replace=False).astype(np.intp)
    return idx, np.zeros(n)
