"""alplug's strategies inside a plain modAL loop: no alplug loop, CLI or run directory involved.

    uv run python examples/plain_modal.py             # entropy
    uv run python examples/plain_modal.py typiclust   # any name from `alplug strategies`
"""
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits

from alplug.estimators import make_estimator
from alplug.modal_compat import ActiveLearner  # modAL's ActiveLearner, fixed for scikit-learn >= 1.8
from alplug.strategies import get_strategy

digits = load_digits()
X = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # (N, 1, 8, 8) uint8
y = digits.target.astype(np.int64)
rng = np.random.default_rng(0)
order = rng.permutation(len(y))
test, pool = order[:400], order[400:]
start = pool[:30]
pool = pool[30:]

torch.manual_seed(0)
net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=4)
strategy = sys.argv[1] if len(sys.argv) > 1 else "entropy"
learner = ActiveLearner(net, get_strategy(strategy), X_training=X[start], y_training=y[start])
for round_ in range(1, 4):
    idx, _ = learner.query(X[pool], n_instances=30, random_state=round_)
    learner.teach(X[pool[idx]], y[pool[idx]])  # the "oracle" is the known label
    pool = np.delete(pool, idx)
    print(f"round {round_}: {len(learner.y_training)} labels, test accuracy {learner.score(X[test], y[test]):.3f}")
