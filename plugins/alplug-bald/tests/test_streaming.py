"""MC-dropout scoring is streamed: memory for the scores grows with N, not with N x C x T."""
import tracemalloc

import numpy as np
import torch

from alplug.estimators import make_estimator
from alplug_bald import bald, mc_probabilities


def test_bald_memory_stays_far_below_the_full_mc_array():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20_000, 1, 8, 8), dtype=np.uint8)
    y = np.arange(20_000) % 10
    torch.manual_seed(0)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, dropout=0.3, epochs=1, image_size=8,
                         images=images, eval_batch_size=500)
    net.fit(np.arange(64), y[:64])
    pool = np.arange(64, 20_000)
    full_array = len(pool) * 10 * 20 * 4  # what (N, C, T) float32 probabilities would take: 15.9 MB
    bald(net, pool[:10], n_instances=1, T=20)  # imports baal's modules before anything is traced

    tracemalloc.start()
    idx, scores = bald(net, pool, n_instances=50, T=20, random_state=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(idx) == 50 and scores[0] > 0
    assert peak < full_array / 4, f"peak {peak / 1e6:.1f} MB"

    tracemalloc.start()  # the check can fail: materialising every MC sample does exceed it
    mc_probabilities(net, pool, T=20, random_state=0)
    _, peak_full = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_full >= full_array
