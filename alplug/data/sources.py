"""alplug's built-in data sources, registered through the ``alplug.datasets`` entry points like any
plugin's: scikit-learn's digits, the torchvision sets, ``folder:PATH`` and ``npz:PATH``.

Images stay ``uint8`` where the source is 8-bit (4x less memory than float32;
the model scales them on the fly). torchvision reads and downloads the
published data sets; we only turn its attributes into arrays.
"""
from __future__ import annotations

import os
import sys
import zipfile
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DataError, UnreadableImageError
from .contract import DataSet, DataSource

# name -> (torchvision class, keyword arguments for the train part, for the test part)
TORCHVISION_SETS = {
    "mnist": ("MNIST", {"train": True}, {"train": False}),
    "fashion-mnist": ("FashionMNIST", {"train": True}, {"train": False}),
    "emnist": ("EMNIST", {"split": "balanced", "train": True}, {"split": "balanced", "train": False}),
    "cifar10": ("CIFAR10", {"train": True}, {"train": False}),
    "svhn": ("SVHN", {"split": "train"}, {"split": "test"}),
}
DEFAULT_FOLDER_IMAGE_SIZE = 64


def default_data_dir() -> Path:
    return Path(os.environ.get("ALPLUG_DATA", Path.home() / ".cache" / "alplug" / "data"))


def _torchvision_root(data_dir: str | Path | None) -> Path:
    if data_dir is None:
        root = default_data_dir()
        root.mkdir(parents=True, exist_ok=True)
        return root
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist; create it or point --data-dir "
                        "at the folder that holds (or should receive) the data set")
    return root


def _load_digits(argument, *, data_dir=None, image_size=None, download=True) -> DataSet:
    return _digits()


def _load_torchvision(name: str, argument, *, data_dir=None, image_size=None, download=True) -> DataSet:
    return _torchvision(name, _torchvision_root(data_dir), download)


def _load_folder(argument: str, *, data_dir=None, image_size=None, download=True) -> DataSet:
    return _folder(Path(argument).expanduser(), image_size or DEFAULT_FOLDER_IMAGE_SIZE)


def _load_npz(argument: str, *, data_dir=None, image_size=None, download=True) -> DataSet:
    path = Path(argument).expanduser()
    try:
        return _npz(path)
    except DataError:
        raise
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
        # object arrays, headers that promise more data than the file holds, damaged archives...
        raise DataError(f"cannot read {path} as an npz data set ({type(exc).__name__}: {exc}); it needs "
                        "plain numeric arrays X (N,H,W[,C]) and y (N,) saved with np.savez") from None


def _digits() -> DataSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 grey levels -> uint8
    return DataSet("digits", X, d.target.astype(np.int64), [str(c) for c in d.target_names])


def _torchvision(name: str, root: Path, download: bool) -> DataSet:
    import torchvision.datasets as tvd

    cls_name, train_kw, test_kw = TORCHVISION_SETS[name]
    cls = getattr(tvd, cls_name)
    parts = []
    for kw in (train_kw, test_kw):
        try:
            ds = cls(str(root), download=False, **kw)
        except RuntimeError:  # torchvision: "Dataset not found ..."
            if not download:
                raise DataError(f"{name} is not in {root}; run once with downloads allowed "
                                f"or copy the files there") from None
            try:
                ds = cls(str(root), download=True, **kw)
            except Exception as exc:
                raise DataError(f"{name} is not in {root} and downloading it failed "
                                f"({type(exc).__name__}: {exc}); download it on a machine with internet "
                                f"and copy the files into {root}") from None
        parts.append(_torchvision_arrays(name, ds))
    (X, y), (X_test, y_test) = parts
    classes = [str(c) for c in getattr(ds, "classes", [])] or [str(c) for c in range(int(y.max()) + 1)]
    return DataSet(name, X, y, classes, X_test, y_test)


def _torchvision_arrays(name: str, ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data
    data = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if name == "emnist":
        data = data.transpose(0, 2, 1)  # EMNIST is stored transposed; make letters upright
    if data.ndim == 3:
        data = data[:, None]
    elif name == "cifar10":
        data = data.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W); SVHN is already (N, C, H, W)
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels
    labels = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    return np.ascontiguousarray(data, dtype=np.uint8), labels.astype(np.int64)


# Image folders whose decoded images fit this budget are decoded once and kept in
# memory (fast epochs); larger ones are read from disk batch by batch.
FOLDER_IN_MEMORY_BYTES = 512 * 2**20


def _fit_image(im, size: int, colour: bool):
    from PIL import ImageOps

    im = im.convert("RGB" if colour else "L")
    return np.asarray(ImageOps.fit(im, (size, size)))  # shorter side to size, centre crop


GRAY_MODES = ("L", "1", "I", "I;16", "F", "LA")


def decode_mode(path) -> tuple[str | None, str | None]:
    """(PIL mode, None) for a readable image, (None, why) otherwise. A full decode, so truncated and
    corrupt files are found now, not mid-training."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.mode, None
    except Exception as exc:  # truncated, corrupt, unsupported: the caller reports it and goes on
        return None, f"{type(exc).__name__}: {exc}"


def is_colour(modes) -> bool:
    """Colour when any image is: grayscale images are then read as RGB (the other way would lose colour)."""
    return any(m not in GRAY_MODES for m in modes)


class FolderImages:
    """Images of an image folder as a lazily read (N, C, size, size) uint8 array."""

    def __init__(self, paths: list[str], size: int, colour: bool):
        self.paths, self.size, self.colour = paths, size, colour
        self.shape = (len(paths), 3 if colour else 1, size, size)
        self.dtype, self.ndim = np.dtype(np.uint8), 4

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                a = _fit_image(im, self.size, self.colour)
        except Exception as exc:  # decoded fine when the data set was made; changed on disk since
            raise UnreadableImageError([(self.paths[i], f"{type(exc).__name__}: {exc}")]) from None
        return a.transpose(2, 0, 1) if self.colour else a[None]

    def __getitem__(self, index):
        if np.ndim(index) == 0:
            return self._read(int(index))
        ids = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if not len(ids):
            return np.zeros((0,) + self.shape[1:], np.uint8)
        out = np.empty((len(ids),) + self.shape[1:], np.uint8)
        problems = []
        for k, i in enumerate(ids):
            try:
                out[k] = self._read(int(i))
            except UnreadableImageError as exc:  # every bad file of the batch at once, not one per try
                problems += exc.problems
        if problems:
            raise UnreadableImageError(problems)
        return out


def _folder(root: Path, size: int) -> DataSet:
    """One sub-folder per class; every image is made ``size``x``size`` (shorter side, centre crop).

    torchvision's ``ImageFolder`` finds the files, but fails the whole run on one
    unreadable image and keeps sizes mixed; we read each file ourselves. Every
    file is decoded once here so unreadable ones are skipped before training.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; pass folder:PATH with one sub-folder per class")
    try:
        classes, class_to_idx = find_classes(str(root))
    except FileNotFoundError:
        classes = []
    if len(classes) < 2:
        raise DataError(f"image folder {root} has {len(classes)} class sub-folder(s); it needs at least two "
                        "(one sub-folder of images per class)")
    samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    paths, labels, modes, skipped = [], [], [], []
    for path, label in samples:
        mode, problem = decode_mode(path)
        if problem:
            skipped.append((path, problem))
        else:
            modes.append(mode)
            paths.append(path)
            labels.append(label)
    for path, reason in skipped:
        print(f"alplug: skipped unreadable image {path} ({reason})", file=sys.stderr)
    if not paths:
        raise DataError(f"no readable images in {root}")
    y = np.asarray(labels, dtype=np.int64)
    if (np.bincount(y, minlength=len(classes)) > 0).sum() < 2:
        raise DataError(f"image folder {root} has readable images in fewer than two classes")
    colour = is_colour(modes)
    X = FolderImages(paths, size, colour)
    if len(paths) * (3 if colour else 1) * size * size <= FOLDER_IN_MEMORY_BYTES:
        X = X[np.arange(len(paths))]
    return DataSet(f"folder:{root}", X, y, list(classes), skipped=skipped)


def _npz(path: Path) -> DataSet:
    """Arrays ``X`` (N, H, W) or (N, H, W, C) and ``y``; optional ``X_test``/``y_test`` and ``classes``.

    ``X`` of an uncompressed file (``np.savez``) in uint8 or float32 is memory-mapped, not loaded;
    so is ``X.npy`` when PATH is a folder of ``.npy`` files.
    """
    if path.is_dir():  # X.npy, y.npy (and optionally X_test.npy, y_test.npy, classes.npy), memory-mapped
        arrays = _NpyFolder(path)
    elif not path.is_file():
        raise DataError(f"npz file {path} does not exist")
    else:
        try:
            arrays = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"cannot read {path} as .npz ({exc})") from None
    missing = [k for k in ("X", "y") if k not in arrays.files]
    if missing:
        raise DataError(f"{path} has no array {' or '.join(missing)}; it needs X (N,H,W[,C]) and y (N,), "
                        f"found {arrays.files}")
    from .lazy import npz_member_memmap

    if not path.is_dir():
        _check_npz_sizes(path, [k for k in ("X", "y", "X_test", "y_test", "classes") if k in arrays.files])

    mapped = arrays["X"] if path.is_dir() else npz_member_memmap(path, "X")
    if mapped is not None and mapped.dtype in (np.uint8, np.float32) and mapped.ndim in (3, 4):
        # Uncompressed uint8/float32 images stay on disk; batches are read when needed.
        X = mapped[:, None] if mapped.ndim == 3 else mapped.transpose(0, 3, 1, 2)
    else:
        X = _npz_images(path, arrays["X"], "X")
    if 0 in X.shape:
        raise DataError(f"{path}: X has shape {tuple(mapped.shape if mapped is not None else X.shape)}; it needs at "
                        "least one image of at least one pixel")
    y = _npz_labels(path, arrays["y"], "y")
    if len(X) != len(y):
        raise DataError(f"{path}: X has {len(X)} images but y has {len(y)} labels; they must match")
    names = [str(c) for c in arrays["classes"]] if "classes" in arrays.files else None
    X_test = y_test = None
    if "X_test" in arrays.files and "y_test" in arrays.files:
        X_test, y_test = _npz_images(path, arrays["X_test"], "X_test"), _npz_labels(path, arrays["y_test"], "y_test")
        if len(X_test) != len(y_test) or X_test.shape[1:] != X.shape[1:]:
            raise DataError(f"{path}: X_test/y_test do not match each other or X's image shape")
    values = np.unique(y if y_test is None else np.concatenate([y, y_test]))
    if len(values) < 2:
        raise DataError(f"{path}: y has {len(values)} class(es); active learning needs at least two")
    if names is None:
        names = [str(v) for v in values]
        encode = {v: i for i, v in enumerate(values)}
        y = np.array([encode[v] for v in y.tolist()], dtype=np.int64)
        if y_test is not None:
            y_test = np.array([encode[v] for v in y_test.tolist()], dtype=np.int64)
    else:
        y = y.astype(np.int64)
        y_test = None if y_test is None else y_test.astype(np.int64)
        if y.min() < 0 or y.max() >= len(names):
            raise DataError(f"{path}: labels must be 0..{len(names) - 1} to match its {len(names)} classes")
    return DataSet(f"npz:{path}", X, y, names, X_test, y_test)


MAX_NPZ_LOADED_BYTES = 2 * 2**30  # a compressed member is loaded whole; an uncompressed one is read as needed


def _check_npz_sizes(path: Path, keys: list[str]) -> None:
    """Every array of the file has a shape that fits memory, checked from the headers before anything is loaded,
    and images of at least one pixel."""
    from .lazy import npz_member_header

    for key in keys:
        try:
            shape, dtype, compressed = npz_member_header(path, key)
        except Exception as exc:  # a damaged member: said in one line, as np.load's own errors are
            raise DataError(f"cannot read {path} as .npz ({key}: {exc})") from None
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if compressed and nbytes > MAX_NPZ_LOADED_BYTES:
            raise DataError(f"{path}: {key} is compressed and would take {nbytes / 2**30:.1f} GiB in memory (more "
                            f"than {MAX_NPZ_LOADED_BYTES / 2**30:.0f} GiB); save it with np.savez (uncompressed: "
                            "read from disk as needed) or as a folder of .npy files")
        if key.startswith("X") and len(shape) in (3, 4) and 0 in shape:
            raise DataError(f"{path}: {key} has shape {shape}; it needs at least one image of at least one pixel")


def _npz_labels(path: Path, y, key: str) -> np.ndarray:
    """Labels as a 1-d array of integers or strings, or a one-line error saying what is wrong."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{path}: {key} has shape {y.shape}; it must be 1-d (N,): save {key}.ravel()")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DataError(f"{path}: {key} holds NaN or infinite labels; every image needs a class")
        if not np.all(y == np.round(y)):
            raise DataError(f"{path}: {key} holds fractional labels; labels are classes (integers or strings)")
        return y.astype(np.int64)
    if y.dtype.kind not in "biuUS":
        raise DataError(f"{path}: {key} has dtype {y.dtype}; labels must be integers or strings")
    return y


class _NpyFolder:
    """A folder of .npy files, read like an .npz archive; arrays are memory-mapped."""

    def __init__(self, path: Path):
        self.path = path
        self.files = sorted(p.stem for p in path.glob("*.npy"))

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return np.load(self.path / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"cannot read {self.path / key}.npy ({exc})") from None


def _npz_images(path: Path, X: np.ndarray, key: str) -> np.ndarray:
    if X.ndim == 3:
        X = X[:, None]
    elif X.ndim == 4:
        X = X.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{path}: {key} has shape {X.shape}; it must be (N, H, W) or (N, H, W, C)")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    if np.issubdtype(X.dtype, np.integer) and X.size and X.min() >= 0 and X.max() <= 255:
        return np.ascontiguousarray(X, dtype=np.uint8)
    return np.ascontiguousarray(X, dtype=np.float32)  # floats are used as they are (expected in [0, 1])


DIGITS = DataSource("digits", _load_digits, "scikit-learn's bundled 8x8 digits: 1,797 images, 10 classes, no download")
MNIST = DataSource("mnist", partial(_load_torchvision, "mnist"), "MNIST (torchvision; downloaded to --data-dir)")
FASHION_MNIST = DataSource("fashion-mnist", partial(_load_torchvision, "fashion-mnist"),
                           "Fashion-MNIST (torchvision; downloaded to --data-dir)")
EMNIST = DataSource("emnist", partial(_load_torchvision, "emnist"),
                    "EMNIST balanced, 47 classes, letters upright (torchvision; downloaded to --data-dir)")
CIFAR10 = DataSource("cifar10", partial(_load_torchvision, "cifar10"), "CIFAR-10 (torchvision; downloaded to --data-dir)")
SVHN = DataSource("svhn", partial(_load_torchvision, "svhn"), "SVHN (torchvision; downloaded to --data-dir)")
FOLDER = DataSource("folder", _load_folder, "an image folder with one sub-folder per class", argument="PATH")
NPZ = DataSource("npz", _load_npz, "arrays X (N,H,W[,C]) and y in an .npz file or a folder of .npy files",
                 argument="PATH")
