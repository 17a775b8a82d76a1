"""Pools larger than memory: memory-mapped sources and batch-sized reads only."""
import numpy as np

from alplug.data import load_dataset
from alplug.data.lazy import IndexedImages, npz_member_memmap
from alplug.estimators import make_estimator

from counting import CountingImages


def test_uncompressed_npz_images_are_memory_mapped(tmp_path, rng):
    X = rng.integers(0, 256, (50, 9, 9, 3), dtype=np.uint8)
    np.savez(tmp_path / "plain.npz", X=X, y=np.arange(50) % 5)
    np.savez_compressed(tmp_path / "packed.npz", X=X, y=np.arange(50) % 5)
    plain = load_dataset(f"npz:{tmp_path / 'plain.npz'}")
    packed = load_dataset(f"npz:{tmp_path / 'packed.npz'}")
    assert isinstance(plain.X.base, np.memmap) or isinstance(plain.X, np.memmap)
    assert not isinstance(packed.X, np.memmap) and packed.X.base is None or not isinstance(packed.X.base, np.memmap)
    np.testing.assert_array_equal(np.asarray(plain.X), packed.X)
    assert plain.X.shape == (50, 3, 9, 9)
    assert npz_member_memmap(tmp_path / "packed.npz", "X") is None


def test_indexed_images_read_each_batch_in_one_sorted_call(rng):
    images = CountingImages(rng.integers(0, 256, (100, 1, 4, 4), dtype=np.uint8))
    ds = IndexedImages(images, np.array([40, 3, 99, 7]), y=np.array([0, 1, 2, 3]))
    batch = ds.__getitems__([0, 1, 2, 3])
    assert images.reads == [4]
    np.testing.assert_array_equal(batch[2][0], images.array[99])
    assert [int(t) for _, t in batch] == [0, 1, 2, 3]


def test_estimator_reads_only_batches_of_an_id_pool(digits):
    images = CountingImages(digits.X)
    net = make_estimator("squeezenet1_1", in_channels=1, num_classes=10, epochs=1, batch_size=16,
                         images=images, eval_batch_size=64, valid_data=(np.arange(100, 140), digits.y[100:140]))
    ids = np.arange(60)
    net.fit(ids, digits.y[ids])
    proba = net.predict_proba(np.arange(200, 1000))
    assert proba.shape == (800, 10)
    assert max(images.reads) <= 64  # never more than one evaluation batch at a time
    np.testing.assert_allclose(proba[:5], net.predict_proba(digits.X[200:205]), atol=1e-6)


def test_a_run_never_materialises_the_data_set(tmp_path, digits, monkeypatch):
    from alplug import loop
    from alplug.config import RunConfig
    from alplug.data import DataSet
    from alplug.rundir import RunDirectory

    images = CountingImages(digits.X)
    monkeypatch.setattr(loop, "load_dataset", lambda *a, **k: DataSet("digits", images, digits.y,
                                                                      digits.classes))
    config = RunConfig(query="margin", model="squeezenet1_1", n_start=1, per_round=5, rounds=2, epochs=1,
                       batch_size=16, test_size=100, val1_size=50, val2_size=50)
    job = loop.ActiveLearningRun(config, echo=lambda *_: None)
    result = job.run(RunDirectory.create(tmp_path / "run", config))
    assert result.labels == 20
    assert max(images.reads) <= 256


def test_a_folder_of_npy_files_is_memory_mapped(tmp_path, rng):
    X = rng.integers(0, 256, (30, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(30) % 3)
    data = load_dataset(f"npz:{tmp_path}")
    assert isinstance(data.X.base, np.memmap) or isinstance(data.X, np.memmap)
    assert data.X.shape == (30, 1, 6, 6) and data.n_classes == 3
    np.testing.assert_array_equal(np.asarray(data.X[:, 0]), X)
