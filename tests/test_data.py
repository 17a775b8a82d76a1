import numpy as np
import pytest

from alplug.data import load_dataset
from alplug.errors import DataError, UnknownNameError

from data_formats import write_cifar10, write_image_folder, write_mnist_like, write_svhn


def test_digits_is_uint8_nchw_with_ten_classes(digits):
    assert digits.X.shape == (1797, 1, 8, 8) and digits.X.dtype == np.uint8
    assert digits.X.max() == 255 and digits.n_classes == 10 and digits.X_test is None


@pytest.mark.parametrize("name,folder,train,test,n_classes", [
    ("mnist", "MNIST", "train", "t10k", 10),
    ("fashion-mnist", "FashionMNIST", "train", "t10k", 10),
    ("emnist", "EMNIST", "emnist-balanced-train", "emnist-balanced-test", 47),
])
def test_idx_datasets_load_from_their_raw_files(tmp_path, rng, name, folder, train, test, n_classes):
    parts = write_mnist_like(tmp_path, folder, train, test, n_classes, rng)
    data = load_dataset(name, tmp_path, download=False)
    images, labels = parts[train]
    assert data.X.shape == (60, 1, 28, 28) and data.X_test.shape == (20, 1, 28, 28)
    expected = images.transpose(0, 2, 1) if name == "emnist" else images  # EMNIST is stored transposed
    np.testing.assert_array_equal(data.X[:, 0], expected)
    np.testing.assert_array_equal(data.y, labels)
    np.testing.assert_array_equal(data.y_test, parts[test][1])
    assert data.n_classes == n_classes


def test_cifar10_loads_from_python_pickles(tmp_path, rng, monkeypatch):
    written = write_cifar10(tmp_path, rng)
    # torchvision checks each file's md5 against the published archive; toy files cannot match it.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.X.shape == (50, 3, 32, 32) and data.X_test.shape == (10, 3, 32, 32)
    first = written["data_batch_1"][0][0].reshape(3, 32, 32)
    np.testing.assert_array_equal(data.X[0], first)
    assert data.classes[0] == "airplane" and data.n_classes == 10


def test_svhn_loads_from_mat_files_and_maps_label_10_to_0(tmp_path, rng, monkeypatch):
    written = write_svhn(tmp_path, rng)
    monkeypatch.setattr("torchvision.datasets.svhn.check_integrity", lambda *a, **k: True)
    data = load_dataset("svhn", tmp_path, download=False)
    assert data.X.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(data.X[3], written["train"][0][..., 3].transpose(2, 0, 1))
    assert data.y[9] == 0 and data.y[0] == 1


def test_missing_torchvision_set_without_download_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not in"):
        load_dataset("mnist", tmp_path, download=False)


def test_failed_download_is_a_data_error_with_the_folder(tmp_path, monkeypatch):
    def no_network(self):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.MNIST.download", no_network)
    with pytest.raises(DataError, match="downloading it failed"):
        load_dataset("mnist", tmp_path, download=True)


def test_missing_data_dir_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nope")


def test_image_folder_mixed_sizes_and_modes_skips_corrupt(tmp_path, rng, capsys):
    root = write_image_folder(tmp_path / "imgs", rng)
    data = load_dataset(f"folder:{root}", image_size=24)
    assert data.X.shape == (18, 3, 24, 24)  # one RGB image makes the whole set RGB
    assert data.classes == ["cat", "dog", "owl"]
    assert np.bincount(data.y).tolist() == [6, 6, 6]
    assert len(data.skipped) == 1 and data.skipped[0][0].endswith("broken.png")
    assert "broken.png" in capsys.readouterr().err


def test_grayscale_folder_stays_one_channel(tmp_path, rng):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (10 + i, 12), dtype=np.uint8), mode="L").save(tmp_path / c / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path}", image_size=16)
    assert data.X.shape == (6, 1, 16, 16)


def test_folder_with_one_class_is_refused(tmp_path, rng):
    root = write_image_folder(tmp_path / "imgs", rng, classes=("only",), corrupt=False)
    with pytest.raises(DataError, match="at least two"):
        load_dataset(f"folder:{root}")


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


@pytest.mark.parametrize("shape,channels", [((30, 9, 9), 1), ((30, 9, 9, 3), 3), ((30, 9, 9, 6), 6)])
def test_npz_images_channels_last_become_nchw(tmp_path, rng, shape, channels):
    X = rng.random(shape).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=X, y=np.array(["cat", "dog", "eel"] * 10))
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.X.shape == (30, channels, 9, 9) and data.X.dtype == np.float32
    assert data.classes == ["cat", "dog", "eel"] and data.y[:3].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(data.X[4, 0], X[4] if X.ndim == 3 else X[4, ..., 0])


def test_npz_with_own_test_set(tmp_path, rng):
    np.savez(tmp_path / "d.npz", X=rng.integers(0, 256, (20, 5, 5), dtype=np.uint8), y=np.arange(20) % 2,
             X_test=rng.integers(0, 256, (6, 5, 5), dtype=np.uint8), y_test=np.arange(6) % 2)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.X.dtype == np.uint8 and data.X_test.shape == (6, 1, 5, 5)


@pytest.mark.parametrize("arrays,message", [
    ({"images": np.zeros((4, 5, 5)), "y": np.arange(4)}, "no array X"),
    ({"X": np.zeros((4, 5, 5)), "y": np.arange(3)}, "4 images but y has 3"),
    ({"X": np.zeros((4, 5)), "y": np.arange(4)}, "must be"),
    ({"X": np.zeros((4, 5, 5)), "y": np.zeros(4)}, "at least two"),
])
def test_bad_npz_files(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_missing_npz_and_unknown_name():
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("npz:/no/such/file.npz")
    with pytest.raises(UnknownNameError, match="did you mean 'mnist'"):
        load_dataset("mnsit")


def test_large_image_folders_are_read_lazily_with_the_same_pixels(tmp_path, rng, monkeypatch):
    from alplug.data import sources

    root = write_image_folder(tmp_path / "imgs", rng)
    eager = load_dataset(f"folder:{root}", image_size=24)
    monkeypatch.setattr(sources, "FOLDER_IN_MEMORY_BYTES", 100)  # pretend the folder is too large for memory
    lazy = load_dataset(f"folder:{root}", image_size=24)
    assert isinstance(lazy.X, sources.FolderImages) and lazy.X.shape == eager.X.shape
    np.testing.assert_array_equal(lazy.X[[3, 0, 17]], eager.X[[3, 0, 17]])
    np.testing.assert_array_equal(lazy.X[5], eager.X[5])
    assert len(lazy.skipped) == 1 and lazy.y.tolist() == eager.y.tolist()
