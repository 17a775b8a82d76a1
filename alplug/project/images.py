"""The image files of a labeling project: finding them, checking them, and reading them for the model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..data.sources import decode_mode
from ..errors import DataError

# torchvision's list, copied so that `alplug project` and `alplug label` start without importing torch.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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
        mode, problem = decode_mode(path)
        rows.append((rel, problem is None, problem, mode))  # unreadable ones are recorded, never queued
        if problem:
            warn(f"alplug: skipped unreadable image {rel} ({problem.split(':')[0]})")
    if outside:
        warn(f"alplug: left out {outside} symlink(s) pointing outside {root}")
    if not any(row[1] for row in rows):
        raise DataError(f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return rows


def project_images(root: Path, paths: list[str], size: int, colour: bool):
    """The images as an (N, C, size, size) uint8 array for the estimator's ``images=``: decoded once into
    memory when small, otherwise read batch by batch (the same rule as ``folder:`` data sets)."""
    from ..data.sources import FOLDER_IN_MEMORY_BYTES, FolderImages

    X = FolderImages([str(root / p) for p in paths], size, colour)
    if len(paths) * (3 if colour else 1) * size * size <= FOLDER_IN_MEMORY_BYTES:
        X = X[np.arange(len(paths))]
    return X
