"""Writers for the published data sets' real on-disk formats, at toy sizes."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of MNIST, Fashion-MNIST and EMNIST (big-endian, uint8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 + array.ndim  # 0x08: unsigned byte
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist_like(root: Path, folder: str, prefix_train: str, prefix_test: str, n_classes: int, rng,
                     n_train=60, n_test=20):
    raw = root / folder / "raw"
    parts = {}
    for prefix, n in ((prefix_train, n_train), (prefix_test, n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % n_classes
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        parts[prefix] = (images, labels)
    return parts


def write_cifar10(root: Path, rng, per_batch=10):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)  # rows: R(1024) G B, row-major
        labels = [int(i % 10) for i in range(per_batch)]
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        written[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return written


def write_svhn(root: Path, rng, n=20):
    from scipy.io import savemat

    written = {}
    for split in ("train", "test"):
        X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # SVHN keeps samples last
        y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # digit 0 is stored as label 10
        root.mkdir(parents=True, exist_ok=True)
        savemat(root / f"{split}_32x32.mat", {"X": X, "y": y})
        written[split] = (X, y)
    return written


def write_image_folder(root: Path, rng, per_class=6, classes=("cat", "dog", "owl"), corrupt=True):
    """Mixed sizes, grayscale and RGB PNG/JPEG files, and (optionally) one corrupt file."""
    from PIL import Image

    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            size = (20 + 7 * i, 30 + 3 * ci)
            if i % 2:
                im = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L")
            else:
                im = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8), mode="RGB")
            im.save(d / f"img{i}.{'png' if i % 3 else 'jpg'}")
    if corrupt:
        (root / classes[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def write_unlabeled_folder(root: Path, per_class=20, classes=("zero", "one", "two"), corrupt=True) -> dict:
    """Digits 0, 1, 2 as an unlabeled image folder (nested dirs, mixed sizes, grayscale and RGB, PNG and
    JPEG, one corrupt file); returns the truth as {relative path: class}."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    truth = {}
    for ci, name in enumerate(classes):
        images = digits.images[digits.target == ci][:per_class]
        for i, img in enumerate(images):
            a = (img * 255 / 16).astype(np.uint8)
            im = Image.fromarray(a, mode="L").resize((16 + 4 * (i % 5), 16 + 4 * (i % 5)))
            if i % 2:
                im = im.convert("RGB")
            rel = f"batch{i % 3}/{name[0]}{ci}_{i:03d}.{'png' if i % 4 else 'jpg'}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            im.save(root / rel)
            truth[rel] = name
    if corrupt:
        (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return truth
