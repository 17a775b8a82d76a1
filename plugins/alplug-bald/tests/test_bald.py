import copy

import numpy as np
import pytest
import torch

from alplug.estimators import make_estimator
from alplug.strategies import StrategyError
from alplug.testing import check_query_strategy
from alplug_bald import (bald, batchbald, mc_least_confidence, mc_margin, mc_probabilities, mc_ratio,
                         variation_ratios)


@pytest.fixture(scope="module")
def digits_net():
    from alplug.data import load_dataset

    data = load_dataset("digits")
    torch.manual_seed(0)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, dropout=0.3, epochs=3, batch_size=16)
    net.fit(data.X[:80], data.y[:80])
    return net, data.X[200:300]


def full_model_probabilities(net, X, T, seed, stochastic):
    """T full forward passes of ``stochastic`` (a copy of the whole model with dropout kept on) per batch."""
    from alplug_bald.mc import set_mc_sample

    out = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for Xi, _ in net.get_iterator(net.get_dataset(X), training=False):
            passes = []
            for k in range(T):
                set_mc_sample(stochastic, k)  # no-op for baal's module, which has no consistent layers
                passes.append(torch.softmax(stochastic(Xi), 1))
            out.append(torch.stack(passes, dim=-1))
    return torch.cat(out).numpy()  # [N, C, T]


def baal_style_probabilities(net, X, T, seed):
    """What baal users write: MCDropoutModule over the whole model, T full forward passes per batch."""
    from baal.bayesian.dropout import MCDropoutModule

    return full_model_probabilities(net, X, T, seed, MCDropoutModule(copy.deepcopy(net.module_)).eval())


def test_head_only_mc_equals_full_model_mc_for_the_same_seed(digits_net):
    from alplug_bald.mc import stochastic_copy

    net, X = digits_net
    ours = mc_probabilities(net, X, T=8, random_state=3)
    full = full_model_probabilities(net, X, T=8, seed=3, stochastic=stochastic_copy(net.module_))
    assert ours.shape == (100, 10, 8)
    np.testing.assert_allclose(ours, full, atol=1e-5)  # same dropout masks, same probabilities
    forced_full = mc_probabilities(net, X, T=8, random_state=3, head_only=False)
    np.testing.assert_allclose(forced_full, full, atol=1e-5)


def test_mc_sample_k_is_the_same_network_for_every_image_in_every_batch(digits_net):
    net, X = digits_net
    net2 = copy.copy(net)
    net2.iterator_valid__batch_size = 7  # the copies below land at other places in other batches
    pool = np.concatenate([X[:10], X[:10], X[:10]])
    probs = mc_probabilities(net2, pool, T=6, random_state=0)
    np.testing.assert_allclose(probs[10:20], probs[:10], atol=1e-6)
    np.testing.assert_allclose(probs[20:], probs[:10], atol=1e-6)
    assert np.abs(probs[..., 0] - probs[..., 1]).max() > 1e-3  # while the passes do differ


def test_mc_samples_have_the_distribution_of_baals_mc_dropout(digits_net):
    """Our masks (rand >= p, one per MC sample) and baal's (bernoulli, one per image and pass) differ draw
    by draw, not in each image's distribution."""
    net, X = digits_net
    ours = mc_probabilities(net, X, T=100, random_state=0).mean(axis=-1)
    theirs = baal_style_probabilities(net, X, T=100, seed=1).mean(axis=-1)
    again = baal_style_probabilities(net, X, T=100, seed=2).mean(axis=-1)
    gap, noise = np.abs(ours - theirs).mean(), np.abs(again - theirs).mean()
    assert gap < 2 * noise + 1e-4, (gap, noise)  # as close as two baal runs are to each other


def test_bald_scores_agree_with_baals_heuristic(digits_net):
    from baal.active.heuristics import BALD

    net, X = digits_net
    idx, scores = bald(net, X, n_instances=len(X), T=10, random_state=5)
    expected = BALD().get_uncertainties(mc_probabilities(net, X, T=10, random_state=5))  # same stochastic passes
    np.testing.assert_allclose(scores, expected[idx], rtol=1e-4, atol=1e-7)
    assert np.all(np.diff(scores) <= 1e-12)  # highest first
    assert scores.max() > 1e-3  # the dropout head makes the scores non-zero


def test_model_without_dropout_is_refused_with_advice():
    from alplug.data import load_dataset

    data = load_dataset("digits")
    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=1)
    net.fit(data.X[:30], data.y[:30])
    with pytest.raises(StrategyError, match="--dropout 0.3"):
        bald(net, data.X[100:120], n_instances=2)


def test_model_is_unchanged_and_mc_is_seeded(digits_net):
    net, X = digits_net
    before = {k: v.clone() for k, v in net.module_.state_dict().items()}
    modes = [m.training for m in net.module_.modules()]
    a = mc_probabilities(net, X[:10], T=4, random_state=1)
    b = mc_probabilities(net, X[:10], T=4, random_state=1)
    c = mc_probabilities(net, X[:10], T=4, random_state=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert all(torch.equal(before[k], v) for k, v in net.module_.state_dict().items())
    assert modes == [m.training for m in net.module_.modules()]
    assert not any(type(m).__module__.startswith(("baal", "alplug_bald")) for m in net.module_.modules())


def test_T_must_be_at_least_two(digits_net):
    net, X = digits_net
    with pytest.raises(StrategyError, match="T = 1"):
        bald(net, X, n_instances=1, T=1)


FIXED = np.array([  # [N=3, C=3, T=4]
    [[0.9, 0.9, 0.9, 0.9], [0.05, 0.05, 0.05, 0.05], [0.05, 0.05, 0.05, 0.05]],   # confident, unanimous
    [[0.6, 0.1, 0.6, 0.1], [0.3, 0.8, 0.3, 0.8], [0.1, 0.1, 0.1, 0.1]],           # passes disagree 2:2
    [[0.5, 0.5, 0.4, 0.6], [0.4, 0.4, 0.5, 0.3], [0.1, 0.1, 0.1, 0.1]],           # 3:1 votes
])


@pytest.fixture
def fixed_mc(monkeypatch):
    from alplug_bald import mc

    monkeypatch.setattr(mc, "mc_batches", lambda *a, **k: iter([FIXED[:2], FIXED[2:]]))  # two batches


def test_variation_ratios_formula(fixed_mc):
    idx, scores = variation_ratios(None, np.zeros(3), n_instances=3)
    assert dict(zip(idx.tolist(), scores.tolist())) == {0: 0.0, 1: 0.5, 2: 0.25}


def test_mc_margin_ratio_and_least_confidence_use_the_mean_prediction(fixed_mc):
    mean = FIXED.mean(axis=-1)
    top = np.sort(mean, axis=1)
    idx, s = mc_margin(None, np.zeros(3), n_instances=3)
    np.testing.assert_allclose(s, (top[:, -1] - top[:, -2])[idx])
    idx, s = mc_ratio(None, np.zeros(3), n_instances=3)
    np.testing.assert_allclose(s, (top[:, -2] / top[:, -1])[idx])
    assert idx[0] == 2  # mean [0.5, 0.4, 0.1]: ratio 0.8, the highest
    idx, s = mc_least_confidence(None, np.zeros(3), n_instances=3)
    np.testing.assert_allclose(s, top[idx, -1])
    assert idx[-1] == 0  # the confident one comes last


def test_batchbald_gives_distinct_seeded_batches(digits_net):
    net, X = digits_net
    a = batchbald(net, X[:40], n_instances=5, T=8, num_draw=100, random_state=0)[0]
    b = batchbald(net, X[:40], n_instances=5, T=8, num_draw=100, random_state=0)[0]
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5


@pytest.mark.parametrize("fn", [bald, mc_ratio, variation_ratios])
def test_conformance(fn):
    check_query_strategy(fn)


def test_dropout_inside_the_backbone_falls_back_to_full_model_passes(digits_net):
    from alplug_bald.mc import head_only_possible, stochastic_copy

    net, X = digits_net
    assert head_only_possible(net.module_)
    module = copy.deepcopy(net.module_)
    module.backbone.layer4 = torch.nn.Sequential(module.backbone.layer4, torch.nn.Dropout(0.2))
    assert not head_only_possible(module)
    net2 = copy.copy(net)
    net2.module_ = module
    ours = mc_probabilities(net2, X[:20], T=4, random_state=0)  # head_only chosen automatically: False
    full = full_model_probabilities(net2, X[:20], T=4, seed=0, stochastic=stochastic_copy(module))
    np.testing.assert_allclose(ours, full, atol=1e-5)


def test_channel_wise_dropout_drops_whole_channels_the_same_for_every_image():
    from alplug_bald.mc import set_mc_sample, stochastic_copy

    stochastic = stochastic_copy(torch.nn.Sequential(torch.nn.Dropout2d(0.5)))
    x = torch.ones(3, 16, 4, 4)
    torch.manual_seed(0)
    a = stochastic(x)
    assert torch.equal(a, a[:1].expand_as(a))  # one mask for every image
    per_channel = a.amax(dim=(2, 3))
    assert torch.equal(a, per_channel[:, :, None, None].expand_as(a))  # whole channels kept or dropped
    assert set(per_channel.unique().tolist()) == {0.0, 2.0}
    set_mc_sample(stochastic, 1)
    assert not torch.equal(stochastic(x), a)  # another MC sample, another mask
    set_mc_sample(stochastic, 0)
    assert torch.equal(stochastic(x), a)  # sample 0 again: its mask was kept


def test_a_model_already_patched_by_baal_gets_consistent_masks_too():
    from baal.bayesian.dropout import patch_module

    from alplug_bald.mc import stochastic_copy

    patched = patch_module(torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Dropout2d(0.5)), inplace=False)
    assert type(patched[0]).__module__.startswith("baal")
    stochastic = stochastic_copy(patched)
    x = torch.ones(4, 8, 3, 3)
    torch.manual_seed(0)
    out = stochastic(x)
    assert torch.equal(out, out[:1].expand_as(out))  # one network for every image, not baal's per-image masks
    assert 0 < (out == 0).float().mean() < 1


def test_dropout_kinds_mc_cannot_sample_are_refused():
    from alplug_bald.mc import stochastic_copy

    with pytest.raises(StrategyError, match="AlphaDropout"):
        stochastic_copy(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.AlphaDropout(0.2)))


def test_a_plain_skorch_net_is_sampled_in_eval_mode_and_left_as_it_was():
    # Not one of alplug's nets: no evaluation_module(), no autocast(); MC dropout still works on it.
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                 torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    X = np.random.default_rng(0).normal(size=(60, 6)).astype(np.float32)
    y = np.arange(60) % 3
    net = NeuralNetClassifier(module, criterion=torch.nn.CrossEntropyLoss, max_epochs=2, batch_size=20,
                              train_split=None, verbose=0).fit(X, y)
    net.module_.train()
    probs = mc_probabilities(net, X, T=5, random_state=0)
    assert probs.shape == (60, 3, 5) and not np.allclose(probs[..., 0], probs[..., 1])
    # eval mode for the passes: BatchNorm used its running statistics, so one image alone gets the same samples
    alone = mc_probabilities(net, X[:1], T=5, random_state=0)
    np.testing.assert_allclose(alone[0], probs[0], atol=1e-6)
    assert net.module_.training  # the mode it had
    idx, _ = bald(net, X, n_instances=4, T=5, random_state=0)
    assert len(set(idx.tolist())) == 4
