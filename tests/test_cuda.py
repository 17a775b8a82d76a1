"""The estimators' GPU path: bf16 autocast, pinned and non-blocking copies, channels-last, head-only MC dropout,
a lazy pool streamed to the GPU. Marked ``cuda``: skipped without a CUDA device, run by benchmarks/gpu_check.sh."""
import numpy as np
import pytest
import torch

from alplug.estimators import make_estimator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh)")]


def images_and_labels(n=256, channels=1, size=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.integers(0, 60, (n, channels, size, size), dtype=np.uint8)
    X[y == 1, :, : size // 2] += 150  # learnable: a bright top half, a bright left half
    X[y == 2, :, :, : size // 2] += 150
    return X, y


def test_fit_and_predict_on_the_gpu_learn_and_match_fp32():
    X, y = images_and_labels()
    torch.manual_seed(0)
    net = make_estimator("resnet18", in_channels=1, num_classes=3, epochs=3, batch_size=32, device="cuda")
    net.fit(X, y)
    assert next(net.module_.parameters()).is_cuda
    assert net.module_.channels_last  # the GPU trains in channels-last
    assert net.iterator_train__pin_memory and net.iterator_valid__pin_memory
    proba = net.predict_proba(X)  # bf16 autocast
    assert proba.dtype == np.float32 and np.allclose(proba.sum(1), 1, atol=1e-3)
    assert np.mean(proba.argmax(1) == y) > 0.8
    with torch.no_grad():
        exact = torch.softmax(net.module_.float().eval()(torch.as_tensor(X[:64], device="cuda")), 1).cpu().numpy()
    assert np.mean(exact.argmax(1) == proba[:64].argmax(1)) >= 0.95  # bf16 changes near-ties only


def test_embeddings_and_probabilities_in_one_pass_on_the_gpu():
    X, y = images_and_labels()
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=3, epochs=1, batch_size=32, device="cuda",
                         images=X)
    net.fit(np.arange(64), y[:64])
    emb, proba = net.embed_and_predict(np.arange(len(X)))
    assert emb.shape == (len(X), net.module_.embedding_dim) and proba.shape == (len(X), 3)
    assert np.isfinite(emb).all() and np.isfinite(proba).all()


def test_a_lazy_pool_streams_to_the_gpu(tmp_path):
    X, y = images_and_labels(n=512)
    path = tmp_path / "pool.npy"
    np.save(path, X)
    pool = np.load(path, mmap_mode="r")  # read a batch at a time
    net = make_estimator("resnet18", in_channels=1, num_classes=3, epochs=1, batch_size=32, device="cuda",
                         images=pool, eval_batch_size=128)
    net.fit(np.arange(96), y[:96])
    proba = net.predict_proba(np.arange(len(X)))
    assert proba.shape == (512, 3) and np.isfinite(proba).all()


def test_head_only_mc_dropout_runs_on_the_gpu():
    bald = pytest.importorskip("alplug_bald")
    from alplug.modal_compat import ActiveLearner

    X, y = images_and_labels()
    net = make_estimator("resnet18", in_channels=1, num_classes=3, epochs=1, batch_size=32, device="cuda",
                         dropout=0.3, images=X)
    learner = ActiveLearner(net, bald.bald, X_training=np.arange(48), y_training=y[:48])
    idx, scores = bald.bald(learner, np.arange(48, len(X)), n_instances=10, random_state=0)
    assert len(set(np.asarray(idx).tolist())) == 10 and np.isfinite(scores).all()
