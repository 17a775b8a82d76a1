"""Learning from the unlabeled pool: --ssl (pretraining and its cache), --semi (losses and the unlabeled
stream) and --freeze-backbone (docs/low-budget.md)."""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from alplug import semi, ssl
from alplug.config import SEMI_METHODS, SSL_METHODS, RunConfig
from alplug.errors import UsageError


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test pretrains into its own cache, never the user's."""
    monkeypatch.setenv("ALPLUG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory, digits):
    """300 digits as an npz data set: a pool of about a hundred images keeps --semi and --ssl runs to seconds."""
    path = tmp_path_factory.mktemp("data") / "digits300.npz"
    np.savez(path, X=digits.X[:300, 0], y=digits.y[:300])  # (N, H, W): grey
    return path


SMALL = ["--n-start", "1", "--per-round", "4", "--epochs", "1", "--batch-size", "16", "--test-size", "100",
         "--val1-size", "40", "--val2-size", "40", "--ssl-epochs", "1"]


class CountingImages:
    """An image array that records every read: which ids, and how many at once."""

    def __init__(self, array):
        self.array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, ids):
        ids = np.atleast_1d(np.asarray(ids))
        self.reads.append(ids.copy())
        return self.array[ids]


# ---- the losses, on hand-worked batches -----------------------------------------------------------------------

def test_entropy_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p = (1/2, 1/2) and (3/4, 1/4)
    by_hand = (math.log(2) + -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert semi.entropy_loss(logits).item() == pytest.approx(by_hand, rel=1e-6)


def test_pseudo_label_loss_by_hand():
    target = torch.tensor([[math.log(19.0), 0.0], [0.0, 0.0]])  # confidences 0.95 and 0.5
    logits = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    # row 1: target class 0, CE of (0, 0) = ln 2; row 2 is below the threshold and counts as 0; mean over both
    assert semi.pseudo_label_loss(target, logits, threshold=0.9).item() == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert semi.pseudo_label_loss(target, logits, threshold=0.99).item() == 0.0
    # no gradient flows into the targets
    t = target.clone().requires_grad_(True)
    semi.pseudo_label_loss(t, logits.clone().requires_grad_(True), 0.9).backward()
    assert t.grad is None


@pytest.mark.parametrize("method", SEMI_METHODS)
def test_semi_loss_by_hand(method):
    """forward: 1x1x2 images to the logits 10 * pixels, so every term can be worked out on paper."""
    def forward(x):
        return 10 * x.reshape(len(x), 2)

    X = torch.tensor([[[[1.0, 0.0]]]])  # logits (10, 0), label 0
    y = torch.tensor([0])
    weak = torch.tensor([[[[1.0, 0.0]]], [[[0.05, 0.0]]]])  # confident class 0 (1 - 4.5e-5), unsure (0.62)
    strong = torch.tensor([[[[0.0, 1.0]]], [[[1.0, 0.0]]]])
    spread = (torch.tensor([1, 0]), torch.tensor([0.5, 1.0]))  # spread targets and their weights
    unlabeled = (weak, strong if method == "fixmatch" else None, spread if method == "spread" else None)
    sup, unl = semi.semi_loss(method, forward, X, y, unlabeled, weight=2.0, threshold=0.95)
    ce_confident = math.log1p(math.exp(-10))  # CE of logits (10, 0) for class 0
    assert sup.item() == pytest.approx(ce_confident, abs=1e-7)
    if method == "entropy":
        def h(a):  # entropy of softmax(a, 0)
            p = 1 / (1 + math.exp(-a))
            return -(p * math.log(p) + (1 - p) * math.log(1 - p))
        expected = 2.0 * (h(10.0) + h(0.5)) / 2
    elif method == "pseudo":  # targets and predictions both from the weak view: only row 1 counts
        expected = 2.0 * ce_confident / 2
    elif method == "fixmatch":  # row 1's target 0 from the weak view, scored on the strong view's logits (0, 10)
        expected = 2.0 * (10 + ce_confident) / 2
    else:  # spread: row 1 against class 1 at weight 0.5 (logits (10, 0)), row 2 against class 0 (logits (0.5, 0))
        expected = 2.0 * (0.5 * (10 + ce_confident) + math.log1p(math.exp(-0.5))) / 2
    assert unl.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_method_lists_agree():
    from alplug.config import OPTIMIZER_NAMES
    from alplug.estimators import OPTIMIZERS

    assert SSL_METHODS == ssl.METHODS == tuple(ssl._METHOD_CLASSES) and OPTIMIZER_NAMES == tuple(OPTIMIZERS)


# ---- the unlabeled stream ----------------------------------------------------------------------------------

def test_unlabeled_stream_reads_one_batch_at_a_time_and_only_its_ids(digits):
    from alplug.data.lazy import IndexedImages

    images = CountingImages(digits.X)
    ids = np.arange(200, 500)
    loader = semi.unlabeled_loader(IndexedImages(images, ids), 24, "fixmatch", 1, hflip=False)
    stream = semi.Forever(loader)
    for _ in range(30):  # more than two passes
        weak, strong, targets = next(stream)
        assert weak.shape == strong.shape == (24, 1, 8, 8) and targets is None
    assert max(len(r) for r in images.reads) <= 24
    assert set(np.concatenate(images.reads)) <= set(ids)


def test_a_semi_supervised_fit_reads_no_more_than_a_batch_and_only_pool_images(digits):
    from alplug.estimators import make_estimator

    images = CountingImages(digits.X)
    # 96 unlabeled images make whole batches of 3 x 8: the loader drops a partial last batch (BatchNorm), which
    # with 100 left out 4 random images per pass, and one of them was missed by every pass in a CI run
    labeled, unlabeled, held_out = np.arange(0, 20), np.arange(20, 116), np.arange(116, 1797)
    torch.manual_seed(0)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=2, batch_size=8, images=images,
                         semi="fixmatch", semi_ratio=3, device="cpu")
    net.unlabeled = unlabeled
    net.fit(labeled, digits.y[labeled])
    read = np.concatenate(images.reads)
    assert not np.isin(read, held_out).any()
    assert np.isin(unlabeled, read).all()  # the stream went over the pool
    assert max(len(r) for r in images.reads) <= 3 * 8
    # an epoch is one pass over the unlabeled stream: 96 images / (3 x 8) per step = 4 steps
    assert [row["train_batch_count"] for row in net.history] == [4, 4]


# ---- --semi spread -------------------------------------------------------------------------------------------

def test_spread_targets_follow_the_pool_and_weigh_what_no_label_reaches_zero(rng):
    """Two groups with one label each, and a far group that no neighbour path joins to a label (in two dimensions,
    both of which separate groups: the features are standardised one by one first)."""
    group = lambda centre: np.asarray(centre) + 0.05 * rng.standard_normal((15, 2))  # noqa: E731
    a, b, far = group([1.0, 0.0]), group([-1.0, 0.0]), group([0.0, 10.0])
    labeled, y = np.stack([a[0], b[0]]), np.array([0, 1])
    unlabeled = np.concatenate([a[1:], b[1:], far])
    targets, weights = semi.spread_targets(labeled, y, unlabeled, n_classes=3)
    assert targets[:14].tolist() == [0] * 14 and targets[14:28].tolist() == [1] * 14
    assert weights[:28].min() > 0.9 and weights[28:].max() == 0.0
    assert targets.dtype == np.int64 and weights.dtype == np.float32


def test_a_spread_fit_spreads_the_labels_once_and_trains_on_them(digits, monkeypatch):
    """skorch asks for the training iterator every epoch: the spreading (a PCA and a graph over the pool) must run
    once per fit, not once per epoch."""
    from alplug.estimators import make_estimator

    calls = []
    spread = semi.spread_targets

    def counted(*args, **kwargs):
        calls.append(len(args[2]))
        return spread(*args, **kwargs)

    monkeypatch.setattr(semi, "spread_targets", counted)
    torch.manual_seed(0)
    net = make_estimator("scattering", in_channels=1, num_classes=10, epochs=3, images=digits.X, freeze_backbone=True,
                         semi="spread", device="cpu")
    labeled, pool = np.arange(0, 30), np.arange(30, 330)
    net.unlabeled = pool
    net.fit(labeled, digits.y[labeled])
    assert calls == [300] and net.spread_ is None  # once, over the whole pool; nothing kept after the fit
    net.fit(labeled, digits.y[labeled])
    assert calls == [300, 300]
    assert len(net.history) == 3 and all(np.isfinite(e["train_loss"]) for e in net.history)


# ---- --freeze-backbone ---------------------------------------------------------------------------------------

def test_computing_features_draws_nothing_from_torchs_generator(digits):
    """Whether an image's features were cached (a resumed run's were not) must not change the run's random draws:
    an unshuffled DataLoader still draws a seed from torch's global generator unless given its own."""
    from alplug.estimators import make_estimator

    for frozen in (True, False):
        net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1, images=digits.X,
                             freeze_backbone=frozen, device="cpu").initialize()
        torch.manual_seed(0)
        before = torch.random.get_rng_state()
        net.features_of(np.arange(40))
        assert torch.equal(torch.random.get_rng_state(), before), f"freeze_backbone={frozen}"


def test_freeze_backbone_leaves_the_backbone_unchanged_and_computes_features_once(digits, tmp_path):
    from alplug.estimators import make_estimator
    from alplug.models import ImageClassifier

    torch.manual_seed(0)
    start = ImageClassifier("resnet18", 1, 10)
    file = tmp_path / "backbone.pt"
    torch.save({f"backbone.{k}": v for k, v in start.backbone.state_dict().items()}, file)
    before = {k: v.clone() for k, v in start.backbone.state_dict().items()}

    images = CountingImages(digits.X)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=3, batch_size=16, images=images,
                         backbone_file=str(file), freeze_backbone=True, device="cpu")
    labeled = np.arange(60)
    net.fit(labeled, digits.y[labeled])
    after = net.module_.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert not torch.equal(net.module_.head[1].weight, ImageClassifier("resnet18", 1, 10).head[1].weight)

    n_reads = len(images.reads)
    proba = net.predict_proba(labeled)  # features of these ids were computed for training
    assert len(images.reads) == n_reads
    with torch.no_grad():
        direct = torch.softmax(net.module_.eval()(torch.as_tensor(digits.X[:60])), 1).numpy()
    np.testing.assert_allclose(proba, direct, atol=1e-5)
    net.predict_proba(np.arange(60, 100))
    assert set(np.concatenate(images.reads[n_reads:])) == set(range(60, 100))  # only the new ids were read


def test_the_frozen_backbone_is_fingerprinted_once_per_initialization_not_per_pass(digits, tmp_path):
    from alplug.estimators import make_estimator

    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=1, batch_size=16, images=digits.X,
                         freeze_backbone=True, device="cpu")
    net.fit(np.arange(40), digits.y[:40])
    hashed = []
    state_dict = net.module_.backbone.state_dict
    net.module_.backbone.state_dict = lambda *a, **k: hashed.append(1) or state_dict(*a, **k)
    for _ in range(3):
        net.predict_proba(np.arange(100))
    assert hashed == []  # the fingerprint of the fit serves every pass
    net.save_params(f_params=tmp_path / "p.pt")
    net.load_params(f_params=tmp_path / "p.pt")
    hashed.clear()  # saving and loading read the state dict too
    net.predict_proba(np.arange(10))
    net.predict_proba(np.arange(10, 20))
    assert len(hashed) == 1  # loaded weights may differ: fingerprinted again, once


@pytest.mark.parametrize("method", ["entropy", "pseudo"])
def test_a_frozen_backbone_learns_from_cached_features_of_the_unlabeled_pool(digits, method, tmp_path):
    """entropy and pseudo-labels need no views: with a frozen backbone each image is read once, whatever the
    number of epochs, and the backbone does not change."""
    from alplug.estimators import make_estimator
    from alplug.models import ImageClassifier

    torch.manual_seed(0)
    start = ImageClassifier("squeezenet1_1", 1, 10).backbone.state_dict()
    file = tmp_path / "backbone.pt"
    torch.save({f"backbone.{k}": v for k, v in start.items()}, file)

    def fit(images, **semi_settings):
        net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=4, batch_size=8, images=images,
                             backbone_file=str(file), freeze_backbone=True, device="cpu", **semi_settings)
        net.unlabeled = np.arange(40, 140)
        torch.manual_seed(0)
        return net.fit(np.arange(40), digits.y[:40])

    images = CountingImages(digits.X)
    net = fit(images, semi=method, semi_threshold=0.0)
    read = np.concatenate(images.reads)
    assert len(read) == 140 and set(read) == set(range(140))  # every image once
    assert [row["train_batch_count"] for row in net.history] == [7] * 4  # 100 / (2 x 8) per epoch
    after = net.module_.backbone.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in start.items())
    # the unlabeled term moved the head: the same fit without it predicts otherwise
    plain = fit(digits.X)
    ids = np.arange(200, 300)
    assert not np.allclose(plain.predict_proba(ids), net.predict_proba(ids), atol=1e-3)


# ---- self-supervised pretraining and its cache ---------------------------------------------------------------

def _settings(**changes):
    base = ssl.PretrainSettings(method="simclr", epochs=1, model="squeezenet1_1", in_channels=1, image_size=None,
                                weights=None, hflip=False, seed=0, batch_size=32)
    return dataclasses.replace(base, **changes)


def test_every_setting_and_every_image_enters_the_cache_key(digits):
    ids = np.arange(100)
    fingerprint = ssl.images_fingerprint(digits.X, ids)
    key = ssl.cache_key(_settings(), fingerprint)
    assert key == ssl.cache_key(_settings(), ssl.images_fingerprint(digits.X.copy(), ids))  # content, not identity
    changed = {"method": "byol", "epochs": 2, "model": "resnet18", "in_channels": 3, "image_size": 48,
               "weights": "DEFAULT", "hflip": True, "seed": 1, "batch_size": 64, "lr": 0.01, "features_from": "7"}
    assert set(changed) == {f.name for f in dataclasses.fields(ssl.PretrainSettings)}
    for name, value in changed.items():
        assert ssl.cache_key(_settings(**{name: value}), fingerprint) != key, name
    assert ssl.images_fingerprint(digits.X, np.arange(1, 101)) != fingerprint
    X = digits.X.copy()
    X[57, 0, 3, 3] ^= 1  # one pixel of one image
    assert ssl.images_fingerprint(X, ids) != fingerprint


def test_a_whole_backbone_keeps_the_cache_key_it_had_before_cut_backbones_were_pretrained():
    """Users' cached backbones stay found: the key of these settings, computed by the code before
    ``features_from`` joined the settings, is unchanged."""
    assert ssl.cache_key(_settings(), "0" * 32) == "a34218bd34b5fc1b45708585"


@pytest.mark.parametrize("parts", ["layer2", "layer2,layer1"])
def test_with_features_from_only_the_cut_backbone_is_pretrained_and_it_starts_the_cut_model(digits, parts):
    from alplug.config import RunConfig
    from alplug.models import ImageClassifier

    ids = np.arange(64)
    config = RunConfig(ssl="simclr", ssl_epochs=1, model="resnet18", image_size=16, features_from=parts)
    settings = dataclasses.replace(ssl.settings_for(config, 1), batch_size=32)
    # a head on several parts reads the backbone pretrained up to the last of them, in the backbone's order:
    # one pretraining (one cache key) serves `layer2` and `layer2,layer1` alike
    assert settings.features_from == "layer2"
    made = ssl.pretrained_backbone(settings, digits.X, ids, echo=lambda _: None)
    saved = torch.load(made.path)
    assert not any(k.startswith(("backbone.layer3", "backbone.layer4")) for k in saved)
    assert any(k.startswith("backbone.layer2") for k in saved)
    again = ssl.pretrain(settings, digits.X, ids)
    cut = ImageClassifier("resnet18", 1, 10, image_size=16, backbone_file=str(made.path),
                          features_from=parts).eval()
    x = torch.as_tensor(digits.X[:4])
    with torch.no_grad():
        # the head reads the pretrained last part (and, with several parts, the earlier ones before it)
        torch.testing.assert_close(cut.embed(x)[:, -again.embedding_dim:], again.embed(x))
    # the whole model cannot start from a cut backbone: the parts after the cut would stay random
    with pytest.raises(ssl.CachedBackboneError, match="do not fit the model: .* missing"):
        ImageClassifier("resnet18", 1, 10, image_size=16, backbone_file=str(made.path))


def test_pretraining_settings_name_one_part():
    """Pretraining up to several parts would be ambiguous: the settings hold the last, which settings_for picks."""
    with pytest.raises(ValueError, match="names one part"):
        _settings(model="resnet18", features_from="layer1,layer2")


def test_pretraining_reads_a_batch_at_a_time(digits):
    """Lazy pools: the fingerprint reads a chunk at a time, pretraining a batch at a time, and only ``ids``."""
    images = CountingImages(digits.X)
    ids = np.arange(100, 164)
    ssl.images_fingerprint(images, ids, chunk=16)
    assert max(len(r) for r in images.reads) <= 16
    images.reads.clear()
    ssl.pretrain(_settings(batch_size=16), images, ids)
    assert max(len(r) for r in images.reads) <= 16 and set(np.concatenate(images.reads)) == set(ids)


def test_pretraining_takes_any_channel_count(rng):
    """lightly's views go through PIL (ToTensor, blur), which refuses more than four channels."""
    images = rng.integers(0, 256, size=(8, 5, 12, 12), dtype=np.uint8)
    module = ssl.pretrain(_settings(in_channels=5, batch_size=4), images, np.arange(8))
    assert module.backbone[0].in_channels == 5


def test_a_weights_file_enters_the_key_by_content(tmp_path):
    file = tmp_path / "w.pt"
    file.write_bytes(b"one")
    config = RunConfig(ssl="simclr", weights=str(file))
    first = ssl.settings_for(config, 1)
    file.write_bytes(b"two")
    assert ssl.settings_for(config, 1) != first


def test_pretraining_is_cached_and_reused(digits, tmp_path):
    ids = np.arange(64)
    messages = []
    first = ssl.pretrained_backbone(_settings(), digits.X, ids, echo=messages.append)
    assert not first.reused and first.path.is_file() and "pretraining" in messages[0]
    made = first.path.stat().st_mtime_ns
    second = ssl.pretrained_backbone(_settings(), digits.X, ids, echo=messages.append)
    assert second.reused and second.path == first.path and "reusing" in messages[-1]
    assert first.path.stat().st_mtime_ns == made  # never rewritten
    # the pool and initial set of another --n-start: the same images in another order
    assert ssl.pretrained_backbone(_settings(), digits.X, ids[::-1], echo=messages.append).reused
    third = ssl.pretrained_backbone(_settings(seed=1), digits.X, ids, echo=messages.append)
    assert not third.reused and third.path != first.path
    # what it holds starts an ImageClassifier; the same seed and images give the same weights
    from alplug.models import ImageClassifier

    loaded = ImageClassifier("squeezenet1_1", 1, 10, backbone_file=str(first.path))
    again = ssl.pretrain(_settings(), digits.X, ids)
    for (k, a), b in zip(loaded.backbone.state_dict().items(), again.backbone.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_damaged_cached_backbone_is_a_one_line_error_and_is_kept(tmp_path):
    from alplug.models import ImageClassifier

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ssl.CachedBackboneError, match="remove the cached file"):
        ImageClassifier("squeezenet1_1", 1, 10, backbone_file=str(bad))
    assert bad.read_bytes() == b"not a checkpoint"
    other = tmp_path / "other.pt"
    torch.save({"backbone.nothing": torch.zeros(1)}, other)
    with pytest.raises(ssl.CachedBackboneError, match="do not fit"):
        ImageClassifier("squeezenet1_1", 1, 10, backbone_file=str(other))


def test_missing_lightly_says_which_extra(monkeypatch):
    from alplug.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "lightly", None)
    with pytest.raises(MissingDependencyError, match=r"alplug\[ssl\]"):
        ssl.pretrain(_settings(), np.zeros((4, 1, 8, 8), np.uint8), np.arange(4))


@pytest.mark.parametrize("values, message", [
    ({"ssl": "mae"}, "--ssl = 'mae'"), ({"semi": "mixmatch"}, "--semi = 'mixmatch'"),
    ({"ssl_epochs": 0}, "--ssl-epochs = 0"), ({"semi_threshold": 1.5}, "--semi-threshold = 1.5"),
    ({"semi_ratio": 0}, "--semi-ratio = 0"), ({"semi_weight": -1.0}, "--semi-weight = -1.0"),
    ({"freeze_backbone": "yes"}, "--freeze-backbone = 'yes'")])
def test_bad_low_budget_settings_are_one_line_errors(values, message):
    with pytest.raises(UsageError, match=message):
        RunConfig(**values).validate()


# ---- in a run -----------------------------------------------------------------------------------------------

def test_test_and_validation_images_never_reach_pretraining_or_the_unlabeled_stream(small_npz, tmp_path,
                                                                                    monkeypatch):
    from alplug import loop
    from alplug.rundir import RunDirectory

    seen = {"pretrain": [], "unlabeled": []}
    pretrain, loader = ssl.pretrain, semi.unlabeled_loader

    def spy_pretrain(settings, images, ids, **kw):
        seen["pretrain"].append(np.asarray(ids).copy())
        return pretrain(settings, images, ids, **kw)

    def spy_loader(dataset, *a, **kw):
        seen["unlabeled"].append(dataset.ids.copy())
        return loader(dataset, *a, **kw)

    monkeypatch.setattr(ssl, "pretrain", spy_pretrain)
    monkeypatch.setattr(semi, "unlabeled_loader", spy_loader)
    config = RunConfig.from_dict(dict(dataset=f"npz:{small_npz}", model="squeezenet1_1", n_start=1, per_round=4,
                                      rounds=2, epochs=1, batch_size=16, test_size=100, val1_size=40, val2_size=40,
                                      ssl="simclr", ssl_epochs=1, semi="pseudo"))
    run = loop.ActiveLearningRun(config, echo=lambda _: None)
    result = run.run(RunDirectory.create(tmp_path / "run", config))
    s = run.splits
    held_out = np.concatenate([s.test, s.val1, s.val2])
    assert len(seen["pretrain"]) == 1 and len(seen["unlabeled"]) == 3  # one pretraining; a stream per fit
    np.testing.assert_array_equal(np.sort(seen["pretrain"][0]), np.sort(np.concatenate([s.pool, s.initial])))
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    for fit, ids in enumerate(seen["unlabeled"]):  # fit k: the pool less the images labeled by round k
        assert not np.isin(ids, held_out).any() and not np.isin(ids, s.initial).any()
        np.testing.assert_array_equal(np.sort(ids), np.setdiff1d(s.pool, state["queried"][:4 * fit]))
    assert result.ssl_backbone["key"] and state["ssl_backbone"] == result.ssl_backbone


def test_a_second_run_on_the_same_images_reuses_the_pretraining(small_npz, tmp_path):
    from click.testing import CliRunner

    from alplug.cli import cli

    args = ["--dataset", f"npz:{small_npz}", "--model", "squeezenet1_1", *SMALL, "--rounds", "0", "--ssl", "simclr"]
    first = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "a"), *args])
    assert first.exit_code == 0, first.output
    assert "self-supervised backbone: pretraining" in first.output
    second = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "b"), *args, "--query", "entropy"])
    assert second.exit_code == 0 and "self-supervised backbone: reusing" in second.output
    third = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "c"), *args, "--ssl-epochs", "2"])
    assert third.exit_code == 0 and "self-supervised backbone: pretraining" in third.output
    keys = [json.loads((tmp_path / d / "result.json").read_text())["ssl_backbone"]["key"] for d in "abc"]
    assert keys[0] == keys[1] != keys[2]


def _kill_when(command: list[str], run_dir, target_round: int, delay: float) -> None:
    """Start ``alplug COMMAND`` and SIGKILL it ``delay`` seconds after ``run_dir`` commits ``target_round``
    (-1: once the run directory exists, that is during pretraining)."""
    proc = subprocess.Popen([sys.executable, "-m", "alplug", *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = run_dir / "state.json"
            if ((run_dir / "config.toml").exists() if target_round < 0 else
                    state.exists() and json.loads(state.read_text())["round"] >= target_round):
                time.sleep(delay)
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "result.json").exists(), "the run ended before it was killed"


def test_ssl_fixmatch_margin_killed_at_random_points_resumes_to_the_same_history(small_npz, tmp_path, monkeypatch):
    """Every run in its own process, as a user runs them: the test process's torch thread count (which other tests
    change) would change float sums, and a seed promises the same run only with the same thread count."""
    from test_cli import read_history

    def alplug(*command):
        done = subprocess.run([sys.executable, "-m", "alplug", *map(str, command)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    # --initial too: the first labels are picked after pretraining and kept in state.json for the resume
    args = ["--dataset", f"npz:{small_npz}", "--model", "squeezenet1_1", *SMALL, "--rounds", "3", "--seed", "5",
            "--ssl", "simclr", "--semi", "fixmatch", "--query", "margin", "--initial", "typiclust", "--n-initial", "8"]
    whole = tmp_path / "whole"
    alplug("run", "--out", whole, *args)

    # Killed twice: at a random moment from pretraining (-1) to round 0, then after resuming, in round 2 or 3.
    rng = np.random.default_rng(int(time.time()))
    first, second = int(rng.integers(-1, 1)), int(rng.integers(1, 3))
    # Within half the shortest round, so that each kill lands before the run ends however fast the machine
    shortest = min(row["train_seconds"] for row in json.loads((whole / "state.json").read_text())["history"])
    delays = rng.uniform(0, 0.5 * shortest, 2)
    killed = tmp_path / "killed"
    monkeypatch.setenv("ALPLUG_CACHE_DIR", str(tmp_path / "cache-killed"))  # its own: a kill may cut pretraining
    _kill_when(["run", "--out", str(killed), *args], killed, first, delays[0])
    _kill_when(["run", "--resume", str(killed)], killed, second, delays[1])
    alplug("run", "--resume", killed)
    assert read_history(killed) == read_history(whole), f"killed at rounds {first} and {second}"
    a, b = (json.loads((d / "result.json").read_text()) for d in (killed, whole))
    assert a["test_accuracy"] == b["test_accuracy"] and a["ssl_backbone"]["key"] == b["ssl_backbone"]["key"]
    a, b = (json.loads((d / "state.json").read_text()) for d in (killed, whole))
    assert a["initial"] == b["initial"] and len(a["initial"]) == 8 and a["queried"] == b["queried"]


def test_a_labeling_project_pretrains_once_and_learns_from_its_unlabeled_images(tmp_path, monkeypatch):
    from project_helpers import invoke as project_invoke
    from project_helpers import make_project

    seen = []
    loader = semi.unlabeled_loader

    def spy_loader(dataset, *a, **kw):
        seen.append(len(dataset))
        return loader(dataset, *a, **kw)

    monkeypatch.setattr(semi, "unlabeled_loader", spy_loader)
    project, truth = make_project(tmp_path, 8, "--ssl", "simclr", "--ssl-epochs", "1", "--semi", "entropy",
                                  "--model", "squeezenet1_1")
    paths = sorted(truth)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{p},{truth[p]}\n" for p in paths[::2]))
    assert project_invoke("project", "import", project, labels).exit_code == 0
    outputs = []
    for n in (1, 2):
        result = project_invoke("project", "next", project, "-n", 3, "--out", tmp_path / f"b{n}.csv")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "self-supervised backbone: pretraining" in outputs[0]
    assert "self-supervised backbone: reusing" in outputs[1]  # the held-out labels change, the images do not
    unlabeled = len(truth) - len(paths[::2])
    # each batch's model learns from the images nobody has labeled or has queued to label (batch 1's three)
    assert seen == [unlabeled, unlabeled - 3]


def test_a_study_pretrains_once_per_seed_and_says_so(small_npz, tmp_path):
    from test_cli import invoke

    result = invoke("compare", "--query", "random,margin", "--seeds", 1, "--jobs", 2, "--out", tmp_path / "study",
                    "--dataset", f"npz:{small_npz}", "--model", "squeezenet1_1", *SMALL, "--rounds", "1",
                    "--ssl", "simclr", "--freeze-backbone")
    assert result.exit_code == 0, result.output
    assert result.output.count("self-supervised backbone: pretraining") == 1
    assert result.output.count("self-supervised backbone: reusing") == 1
    keys = {json.loads(p.read_text())["ssl_backbone"]["key"] for p in (tmp_path / "study").glob("runs/*/result.json")}
    assert len(keys) == 1


def test_the_estimator_clones_with_its_low_budget_settings():
    from sklearn.base import clone

    from alplug.estimators import make_estimator

    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, semi="pseudo", semi_threshold=0.8,
                         freeze_backbone=True, device="cpu")
    net.unlabeled = np.arange(5)
    params = clone(net).get_params()
    assert params["semi"] == "pseudo" and params["semi_threshold"] == 0.8 and params["module__freeze_backbone"]
    assert not {"unlabeled_batches_", "feature_cache_", "_unlabeled_batches", "_feature_cache"} & set(params)


def test_ssl_without_lightly_fails_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util

    from test_cli import invoke

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightly" else real(name, *a))
    result = invoke("run", "--out", tmp_path / "run", "--ssl", "simclr")
    assert result.exit_code == 2 and "pip install 'alplug[ssl]'" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("freeze", [False, True])
def test_semi_supervised_training_on_plain_arrays(digits, freeze):
    """Plain modAL code passes image arrays, not ids; the unlabeled pool is then an array too."""
    from alplug.estimators import make_estimator

    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1, batch_size=8, semi="pseudo",
                         freeze_backbone=freeze, device="cpu")
    net.unlabeled = digits.X[40:100]
    net.fit(digits.X[:40], digits.y[:40])
    assert net.history[-1]["train_batch_count"] == 4  # 60 / (2 x 8)
    assert net.predict_proba(digits.X[100:110]).shape == (10, 10)


def test_a_semi_method_added_in_one_entry_is_a_setting_and_trains(monkeypatch, digits):
    """UNLABELED_METHODS is all a --semi method is: the entry makes it a valid setting and a training step's loss."""
    from alplug.estimators import make_estimator
    from alplug.semi import UNLABELED_METHODS, SemiMethod

    seen = []

    def shrink(logits, second, targets, threshold):  # pulls the unlabeled logits towards zero
        seen.append((tuple(logits.shape), second, targets))
        return logits.float().pow(2).mean()

    monkeypatch.setitem(UNLABELED_METHODS, "shrink", SemiMethod(shrink))
    RunConfig(semi="shrink").validate()
    with pytest.raises(UsageError, match="--semi = 'nothing', must be one of entropy, .*shrink"):
        RunConfig(semi="nothing").validate()
    torch.manual_seed(0)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1, batch_size=8, images=digits.X,
                         semi="shrink", semi_ratio=2, device="cpu")
    net.unlabeled = np.arange(20, 52)
    net.fit(np.arange(20), digits.y[:20])
    assert len(seen) == net.history[-1]["train_batch_count"] == 2  # 32 unlabeled / (2 x 8) per step
    assert all(shape == (16, 10) and second is None and targets is None for shape, second, targets in seen)
