"""Writes a folder of unlabeled images to try labeling projects on: scikit-learn's digits 0-2 as PNG and JPEG
files of mixed sizes, grayscale and RGB, in sub-folders (no network needed).

    uv run python scripts/demo_images.py demo-images
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def write(root: Path, per_class: int = 60) -> int:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    n = 0
    for digit in (0, 1, 2):
        for i, img in enumerate(digits.images[digits.target == digit][:per_class]):
            im = Image.fromarray((img * 255 / 16).astype(np.uint8), mode="L")
            im = im.resize((int(rng.integers(24, 96)),) * 2, Image.Resampling.BICUBIC)
            if i % 2:
                im = im.convert("RGB")
            path = root / f"shoot{i % 4}" / f"img{digit}{i:03d}.{'png' if i % 3 else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path)
            n += 1
    return n


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-images")
    if out.exists():
        sys.exit(f"{out} exists; choose another folder")
    print(f"wrote {write(out)} images (digits 0, 1, 2) to {out}")
