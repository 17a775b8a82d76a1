import numpy as np
import pytest
import torch

from alplug.errors import UsageError
from alplug.estimators import make_estimator, resolve_device, train_loader


def _subset(digits, n, seed=0):
    idx = np.random.default_rng(seed).permutation(len(digits.y))
    return digits.X[idx[:n]], digits.y[idx[:n]], digits.X[idx[n:]], digits.y[idx[n:]]


@pytest.mark.parametrize("n,batch,expected_batches", [(21, 10, 2), (20, 32, 1), (22, 10, 3), (1, 4, 1)])
def test_train_loader_drops_only_a_last_batch_of_one(n, batch, expected_batches):
    loader = train_loader(torch.utils.data.TensorDataset(torch.zeros(n, 1)), batch_size=batch)
    assert len(loader) == expected_batches


def test_tiny_labeled_sets_train_without_a_batch_of_one(digits):
    X, y, _, _ = _subset(digits, 21)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=1, batch_size=10)
    net.fit(X, y)  # 21 = 10 + 10 + 1: the single leftover sample would crash BatchNorm
    assert len(net.history) == 1 and np.isfinite(net.history[-1]["train_loss"])
    assert net.predict_proba(X).shape == (21, 10)


def test_batchnorm_statistics_are_recalibrated_on_the_labeled_set(digits):
    X, y, _, _ = _subset(digits, 40)
    torch.manual_seed(0)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=1, batch_size=64)
    net.fit(X, y)
    module = net.module_.eval()
    with torch.no_grad():
        first = module.backbone.conv1(module.prepare(torch.as_tensor(X)))
    # After one pass of update_bn the running mean is the labeled set's batch mean,
    # not a momentum-0.1 blend with the initial zeros.
    torch.testing.assert_close(module.backbone.bn1.running_mean, first.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_squeezenet_from_scratch_learns_digits(digits):
    X, y, X_test, y_test = _subset(digits, 300)
    torch.manual_seed(0)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=12)
    net.fit(X, y)
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    assert accuracy > 0.5, accuracy  # stock SqueezeNet 1.1 stays near 0.1 here (docs/models.md)


def _is_channels_last(module) -> bool:
    # a 3x3 kernel's weight is contiguous in one layout only (1x1 kernels and 1-channel inputs are in both)
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    layouts = {c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs}
    assert len(layouts) == 1 and all(c.weight.is_contiguous() != (True in layouts) for c in convs)
    return layouts.pop()


@pytest.mark.parametrize("arch,trains_channels_last", [("resnet18", False), ("squeezenet1_1", True)])
def test_pool_passes_run_in_channels_last_and_training_in_the_faster_layout(arch, trains_channels_last):
    # On the CPU oneDNN evaluates both faster in NHWC, but trains only SqueezeNet faster in it (models.py).
    net = make_estimator(arch, in_channels=3, num_classes=10, device="cpu").initialize()
    module = net.module_.train()
    assert _is_channels_last(module) == trains_channels_last
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    assert module.prepare(x).is_contiguous(memory_format=torch.channels_last) == trains_channels_last
    with net.evaluation_module() as fast:
        assert _is_channels_last(fast) and not fast.training
        assert (fast is module) == trains_channels_last  # a copy only when the layout differs
        assert fast.prepare(x).is_contiguous(memory_format=torch.channels_last)
        if fast is not module:
            assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), module.state_dict().values()))
    assert module.training and _is_channels_last(module) == trains_channels_last  # left as it was
    with net.evaluation_module(n_images=net.CHANNELS_LAST_COPY_MIN_IMAGES - 1) as small_pass:
        assert small_pass is module and not module.training  # a copy would cost more than it saves
    assert module.training


def test_validation_data_is_scored_every_epoch(digits):
    X, y, Xv, yv = _subset(digits, 30)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=2, valid_data=(Xv[:40], yv[:40]))
    net.fit(X, y)
    assert all("valid_acc" in row and "valid_loss" in row for row in net.history)


def test_augmentation_changes_training_batches_only(digits):
    X, y, _, _ = _subset(digits, 16)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, augment=True, batch_size=16)
    net.initialize()
    dataset = net.get_dataset(X, y)
    torch.manual_seed(0)
    (train_batch, _), = list(net.get_iterator(dataset, training=True))
    (valid_batch, _), = list(net.get_iterator(dataset, training=False))
    torch.testing.assert_close(valid_batch, torch.as_tensor(X))
    assert train_batch.shape == valid_batch.shape and not torch.equal(torch.sort(train_batch.flatten())[0],
                                                                       torch.sort(valid_batch.flatten())[0])


@pytest.mark.parametrize("channels,hflip,kinds", [
    (1, False, {"RandomRotation", "ColorJitter"}),
    (3, True, {"RandomRotation", "ColorJitter", "RandomHorizontalFlip"}),
    (5, False, {"RandomRotation"}),
])
def test_augmentation_steps_fit_the_channels(channels, hflip, kinds):
    from alplug.estimators import augmentation

    pipeline = augmentation(channels, hflip)
    assert {type(t).__name__ for t in pipeline.transforms} == kinds
    out = pipeline(torch.randint(0, 256, (channels, 12, 12), dtype=torch.uint8))
    assert out.shape == (channels, 12, 12)
    if channels == 3:
        jitter = next(t for t in pipeline.transforms if type(t).__name__ == "ColorJitter")
        assert jitter.hue == (-0.1, 0.1) and jitter.contrast == (0.9, 1.1)


def test_optimizer_settings_reach_torch(digits):
    net = make_estimator("resnet18", in_channels=1, num_classes=10, optimizer="sgd", lr=0.05, weight_decay=1e-4)
    net.initialize()
    group = net.optimizer_.param_groups[0]
    assert isinstance(net.optimizer_, torch.optim.SGD)
    assert group["lr"] == 0.05 and group["weight_decay"] == 1e-4 and group["momentum"] == 0.9


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UsageError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": 0}, "lr"), ({"batch_size": 1}, "batch_size"), ({"epochs": 0}, "epochs"),
    ({"weight_decay": -1}, "weight_decay"), ({"optimizer": "adagrad"}, "optimizer"),
])
def test_bad_estimator_settings(kwargs, message):
    with pytest.raises(UsageError, match=message):
        make_estimator("resnet18", in_channels=1, num_classes=2, **kwargs)


def test_embed_and_predict_fills_whole_pool_arrays_batch_by_batch(digits):
    X, y, X_pool, _ = _subset(digits, 30)
    net = make_estimator("resnet18", in_channels=1, num_classes=10, epochs=1, batch_size=8,
                         eval_batch_size=16).fit(X, y)
    pool = X_pool[:37]  # batches of 16, 16 and 5
    emb, proba = net.embed_and_predict(pool)
    assert emb.shape == (37, 512) and proba.shape == (37, 10) and emb.dtype == proba.dtype == np.float32
    np.testing.assert_allclose(proba, net.predict_proba(pool), atol=1e-5)  # every row, in order
    np.testing.assert_allclose(emb[30:], net.embed(pool[30:]), atol=1e-5)
    assert net.embed_and_predict(pool, need_embeddings=False)[0] is None
    assert net.embed_and_predict(pool, need_proba=False)[1] is None
    empty_emb, empty_proba = net.embed_and_predict(pool[:0])
    assert empty_emb.shape == (0, 512) and empty_proba.shape == (0, 10)
