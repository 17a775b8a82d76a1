"""What the scripts that write test folders share (hard_digits.py, shapes.py, textures.py): one PNG per image in
one sub-folder per class, the layout `--dataset folder:PATH` reads, and a command line that never writes into a
folder that holds something."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np


def save(root: Path, class_dir: str, index: int, image: np.ndarray) -> None:
    """``image`` (H, W, 3), any real values, clipped to 0..255, as ``root/class_dir/INDEX.png``."""
    from PIL import Image

    path = root / class_dir / f"{index:04d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="RGB").save(path)


def main(write: Callable[[Path], int], script: str) -> None:
    if len(sys.argv) != 2:
        sys.exit(f"usage: python scripts/{script} FOLDER")
    out = Path(sys.argv[1])
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} exists and is not empty; choose another folder")
    print(f"wrote {write(out)} images to {out}/")
