"""BatchBALD's greedy search (alplug_bald.batchbald) against brute force, its eager form and baal's."""
import itertools

import numpy as np
import pytest
import torch

from alplug.strategies.selection import select
from alplug_bald import batchbald
from alplug_bald.batchbald import greedy_batchbald
from alplug_bald.mc import mc_probabilities, mc_scores, mc_top_candidates
from alplug_bald.strategies import _bald_scores


def random_probs(n, C, T, seed, sharpness=2.0):
    """MC-dropout-like probabilities [n, C, T]: per-image logits plus per-sample noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, sharpness, (n, C, 1)) + rng.normal(0, 1.0, (n, C, T))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def joint_entropy(probs, items):
    """H(y_items) by enumerating every label configuration: p(y) = mean_k prod_i p(y_i | w_k)."""
    C, T = probs.shape[1:]
    total = 0.0
    for labels in itertools.product(range(C), repeat=len(items)):
        p = np.prod([probs[i, c].astype(np.float64) for i, c in zip(items, labels)], axis=0).mean()
        total -= p * np.log(p) if p > 0 else 0.0
    return total


def brute_force_greedy(probs, n):
    """Greedy maximisation of the exact batch mutual information H(y_batch) - sum_i E_w H(y_i | w)."""
    p = probs.astype(np.float64)
    conditional = -(p * np.log(p)).sum(axis=1).mean(axis=1)
    picks, gains, before = [], [], 0.0
    for _ in range(n):
        mi = {i: joint_entropy(probs, picks + [i]) - conditional[picks + [i]].sum()
              for i in range(len(probs)) if i not in picks}
        best = max(mi, key=mi.get)
        gains.append(mi[best] - before)
        before = mi[best]
        picks.append(best)
    return picks, gains


def test_exact_phase_equals_brute_force_enumeration():
    probs = random_probs(12, 3, 6, seed=0)
    # C^n stays <= T x num_draw = 6 x 10 = 60 up to 3 chosen labels: the 4 picks below are all exact
    picks, gains = greedy_batchbald(probs, 4, num_draw=10, random_state=0)
    want_picks, want_gains = brute_force_greedy(probs, 4)
    assert picks.tolist() == want_picks
    np.testing.assert_allclose(gains, want_gains, rtol=1e-4, atol=1e-6)
    assert gains[0] > gains[-1] > 0  # the first is BALD; gains shrink (submodular) but stay positive


def test_sampled_phase_estimates_the_exact_gains():
    probs = random_probs(10, 3, 8, seed=1)
    want_picks, want_gains = brute_force_greedy(probs, 5)
    # num_draw 5: M = 40 < 3^4, so the fifth pick's gain is estimated from 40 sampled configurations ...
    rough = [greedy_batchbald(probs, 5, num_draw=5, random_state=s)[1][-1] for s in range(40)]
    # ... and with num_draw 20,000 from 160,000: close to exact
    picks, gains = greedy_batchbald(probs, 5, num_draw=20_000, random_state=0)
    assert picks.tolist() == want_picks
    np.testing.assert_allclose(gains, want_gains, rtol=0.02, atol=1e-3)
    assert np.mean(rough) == pytest.approx(want_gains[-1], rel=0.25)  # unbiased on average, not per draw
    assert np.std(rough) > np.abs(gains[-1] - want_gains[-1])  # and more samples estimate it better


@pytest.mark.parametrize("num_draw", [10, 200])  # all exact / mostly sampled
def test_lazy_search_picks_what_the_full_search_picks(num_draw):
    probs = random_probs(60, 4, 10, seed=2, sharpness=1.0)
    lazy = greedy_batchbald(probs, 12, num_draw=num_draw, random_state=3)
    full = greedy_batchbald(probs, 12, num_draw=num_draw, random_state=3, lazy=False)
    assert lazy[0].tolist() == full[0].tolist()
    np.testing.assert_allclose(lazy[1], full[1], rtol=1e-5)


def test_batch_is_more_diverse_than_bald_top_n():
    """Five copies of the most uncertain image: BALD takes them all, BatchBALD at most two."""
    C, T = 3, 12
    split = np.full((C, T), 0.05, dtype=np.float32)  # each MC sample sure of a different class
    split[np.arange(T) % C, np.arange(T)] = 0.9
    probs = np.concatenate([np.repeat(split[None], 5, axis=0), random_probs(20, C, T, seed=4, sharpness=0.5)])
    assert set(np.argsort(-_bald_scores(probs))[:5].tolist()) == set(range(5))
    picks, gains = greedy_batchbald(probs, 5, random_state=0)
    assert picks[0] < 5 and np.sum(picks < 5) <= 2  # BALD's top 5 would be the five copies
    copies_after_one = greedy_batchbald(probs[:5], 2, random_state=0)[1]
    assert copies_after_one[1] < 0.5 * copies_after_one[0]  # a second copy is worth less than half the first


def test_seeded_and_long_batches_stay_finite():
    probs = random_probs(300, 10, 20, seed=5)
    a = greedy_batchbald(probs, 120, num_draw=50, random_state=7)
    b = greedy_batchbald(probs, 120, num_draw=50, random_state=7)
    assert a[0].tolist() == b[0].tolist() and len(set(a[0].tolist())) == 120
    assert np.all(np.isfinite(a[1])) and np.all(a[1] > -1e-3)  # 120 products of probabilities, no underflow
    probs[:, :, :] = probs[:, :, :1]  # no disagreement between MC samples: every gain is 0
    assert np.allclose(greedy_batchbald(probs, 5, random_state=0)[1], 0, atol=1e-5)


def grouped_probs(groups, copies, C, T, seed):
    """``groups`` images of differing uncertainty, each ``copies`` times with a little noise: [groups x copies, C, T]."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (groups, 1, C, T)) * rng.uniform(0.5, 3, (groups, 1, 1, 1)) + rng.normal(0, 1, (groups, 1, C, 1))
    logits = (base + rng.normal(0, 0.1, (groups, copies, C, T))).reshape(groups * copies, C, T)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_picks_agree_with_baals_batchbald_as_much_as_baals_agree_with_each_other():
    """Same objective, different sampling: our batches overlap baal's about as much as baal's overlap each other.

    Near-copies are interchangeable, so batches are compared by how many images they take from each group.
    """
    from baal.active.heuristics import BatchBALD

    groups, copies, n = 10, 6, 15
    probs = grouped_probs(groups, copies, 5, 20, seed=6)

    def baal(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return BatchBALD(n, num_draw=100).get_ranks(probs)[0][:n]

    def overlap(a, b):
        return np.minimum(np.bincount(np.asarray(a) // copies, minlength=groups),
                          np.bincount(np.asarray(b) // copies, minlength=groups)).sum() / n

    ours = [greedy_batchbald(probs, n, num_draw=100, random_state=s)[0] for s in range(3)]
    theirs = [baal(s) for s in range(3)]
    baal_self = np.mean([overlap(theirs[i], theirs[j]) for i, j in ((0, 1), (1, 2), (0, 2))])
    cross = np.mean([overlap(o, t) for o in ours for t in theirs])
    bald_top = np.argsort(-_bald_scores(probs))[:n]
    assert cross >= baal_self - 0.1
    assert cross > np.mean([overlap(bald_top, t) for t in theirs]) + 0.1  # and not simply BALD's top 15


@pytest.fixture(scope="module")
def digits_net():
    from alplug.data import load_dataset
    from alplug.estimators import make_estimator

    data = load_dataset("digits")
    torch.manual_seed(0)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, dropout=0.3, epochs=2, batch_size=16,
                         eval_batch_size=32)
    net.fit(data.X[:60], data.y[:60])
    return net, data.X[200:330]


def test_streamed_candidates_are_selects_top_k_with_the_same_mc_samples(digits_net):
    net, X = digits_net
    pos, scores, probs = mc_top_candidates(net, X, _bald_scores, 25, T=6, random_state=4)  # 130 images, 5 batches
    all_scores = mc_scores(net, X, _bald_scores, T=6, random_state=4)
    want, want_scores = select(all_scores, 25, largest=True, random_state=4)
    assert pos.tolist() == want.tolist()
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    np.testing.assert_allclose(probs, mc_probabilities(net, X, T=6, random_state=4)[pos], atol=1e-6)


def test_ties_are_broken_like_select(monkeypatch):
    from alplug_bald import mc

    flat = np.full((9, 2, 4), 0.5, dtype=np.float32)  # every score ties
    monkeypatch.setattr(mc, "mc_batches", lambda *a, **k: iter([flat[:4], flat[4:]]))
    for seed in (None, 0, 1):
        pos, _, _ = mc_top_candidates(None, np.zeros(9), _bald_scores, 4, random_state=seed)
        assert pos.tolist() == select(np.zeros(9), 4, largest=True, random_state=seed)[0].tolist()


def test_strategy_takes_candidates_from_the_top_bald_and_checks_its_options(digits_net):
    from alplug.errors import UsageError

    net, X = digits_net
    idx, gains = batchbald(net, X, n_instances=6, T=6, num_draw=50, candidates=20, random_state=0)
    top20 = mc_top_candidates(net, X, _bald_scores, 20, T=6, random_state=0)[0]
    assert set(idx.tolist()) <= set(top20.tolist()) and len(set(idx.tolist())) == 6
    assert idx[0] == top20[0] and gains[0] == pytest.approx(mc_top_candidates(net, X, _bald_scores, 1, T=6,
                                                                              random_state=0)[1][0], rel=1e-4)
    for bad in ({"candidates": 3}, {"candidates": 0}, {"num_draw": 0}, {"num_draw": 2.5}):
        with pytest.raises(UsageError, match="batchbald"):
            batchbald(net, X, n_instances=6, T=6, random_state=0, **bad)
    # default candidates max(200, 4 n): the whole 130-image pool here
    assert len(batchbald(net, X, n_instances=130, T=4, num_draw=5, random_state=0)[0]) == 130
