"""The image files of a labeling project: finding them, checking them, and reading them for the model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import DataError

# torchvision's list, copied so that `alplug project` and `alplug label` start without importing torch.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GRAY_MODES = ("L", "1", "I", "I;16", "F", "LA")


def inside(root: Path, candidate: Path) -> bool:
    """Whether ``candidate``, with every symlink followed, lies inside ``root``."""
    try:
        return candidate.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return False


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def scan_images(root: Path, warn=_warn) -> list[tuple[str, bool, str | None, str | None]]:
    """Every image file under ``root`` as (path relative to root, readable, problem, PIL mode).

    Each file is fully decoded once, so truncated or corrupt files are found now
    and never reach training; symlinks that lead out of ``root`` are left out.
    """
    from PIL import Image

    if not root.is_dir():
        raise DataError(f"image directory {root} does not exist")
    rows, outside = [], 0
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        if not inside(root, path):
            outside += 1
            continue
        rel = path.relative_to(root).as_posix()
        try:
            with Image.open(path) as im:
                im.load()
                mode = im.mode
            rows.append((rel, True, None, mode))
        except Exception as exc:  # truncated, corrupt, unsupported: recorded, never queued
            rows.append((rel, False, f"{type(exc).__name__}: {exc}", None))
            warn(f"alplug: skipped unreadable image {rel} ({type(exc).__name__})")
    if outside:
        warn(f"alplug: left out {outside} symlink(s) pointing outside {root}")
    if not any(row[1] for row in rows):
        raise DataError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return rows


def is_colour(modes) -> bool:
    """Colour when any image is: grayscale images are then read as RGB (the other way would lose colour)."""
    return any(m not in GRAY_MODES for m in modes)


def project_images(root: Path, paths: list[str], size: int, colour: bool):
    """The images as an (N, C, size, size) uint8 array for the estimator's ``images=``: decoded once into
    memory when small, otherwise read batch by batch (the same rule as ``folder:`` data sets)."""
    from ..data.sources import FOLDER_IN_MEMORY_BYTES, FolderImages

    X = FolderImages([str(root / p) for p in paths], size, colour)
    if len(paths) * (3 if colour else 1) * size * size <= FOLDER_IN_MEMORY_BYTES:
        X = X[np.arange(len(paths))]
    return X
