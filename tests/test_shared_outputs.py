import numpy as np
import torch

from alplug.estimators import make_estimator
from alplug.strategies import resolve_query
from alplug.strategies.outputs import shared_model_outputs


def test_a_combination_costs_one_backbone_pass_and_gives_the_same_result(digits, monkeypatch):
    torch.manual_seed(0)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1, images=digits.X)
    net.fit(np.arange(40), digits.y[:40])
    pool = np.arange(100, 700)
    strategy = resolve_query("entropy+model-outlier", {"prefilter": 4})
    alone = strategy(net, pool, 10, random_state=0)

    calls = []
    original = type(net).embed_and_predict

    def counted(self, X, need_proba=True):
        calls.append(len(X))
        return original(self, X, need_proba)

    monkeypatch.setattr(type(net), "embed_and_predict", counted)
    with shared_model_outputs():
        shared = strategy(net, pool, 10, random_state=0)
    assert calls == [600]  # one pass over the pool; the 40 candidates came from it
    assert shared[0].tolist() == alone[0].tolist()
    np.testing.assert_allclose(shared[1], alone[1], rtol=1e-5)
    calls.clear()
    strategy(net, pool, 10, random_state=0)  # a combination shares within itself, block or not
    assert calls == [600]
    calls.clear()
    model_outlier = resolve_query("model-outlier")
    model_outlier(net, pool, 5)
    model_outlier(net, pool, 5)  # outside a block nothing is kept between queries
    assert calls == [600, 600]
