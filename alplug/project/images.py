"""The image files of a labeling project: finding them, checking them, and reading them for the model."""
from __future__ import annotations

import os
import stat
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


def _opened_path(fd: int) -> str | None:
    """Where the file behind descriptor ``fd`` is, as the kernel knows it (symlinks already followed)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # Linux
    except OSError:
        pass
    try:
        import fcntl

        return os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).rstrip(b"\0"))  # macOS
    except (ImportError, AttributeError, OSError):
        return None


def open_inside(root: Path, rel: str):
    """``root / rel`` opened for reading, as a binary file object and its ``os.stat_result``; None when the
    file is missing, not a regular file, or (every symlink followed) not inside ``root``.

    Checking a path and then opening it again is a race: a registered image swapped for a symlink between
    the two serves a file from anywhere. So the file is opened once and every check concerns what was
    opened: the descriptor must be a regular file (a FIFO would hang the request; O_NONBLOCK keeps the open
    itself from blocking), and the kernel's path for that descriptor must lie inside ``root``. The caller
    serves this descriptor and nothing else.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(root / rel, flags)
    except (OSError, ValueError):  # missing, a loop, a name the file system refuses
        return None
    try:
        opened = os.fstat(fd)
        where = _opened_path(fd)
        if where is None:  # no way to ask the kernel: the path, resolved now, must still be this very file
            real = (root / rel).resolve(strict=True)
            there = os.lstat(real)
            ok = inside(root, real) and (there.st_dev, there.st_ino) == (opened.st_dev, opened.st_ino)
        else:
            ok = Path(where).is_relative_to(root.resolve(strict=True))
        if ok and stat.S_ISREG(opened.st_mode):
            return os.fdopen(fd, "rb"), opened
    except (OSError, RuntimeError):
        pass
    os.close(fd)
    return None


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
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8: no page, CSV or database can name it faithfully
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            rows.append((shown, False, "file name is not valid UTF-8; rename the file", None))
            warn(f"alplug: skipped {shown} (its name is not valid UTF-8; rename it)")
            continue
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
