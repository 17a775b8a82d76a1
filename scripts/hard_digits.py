"""Writes a labeled image folder harder than digits, for checking that a recipe is not tuned to digits alone:
each of scikit-learn's 1,797 digits drawn at a random size (14 to 24 px), rotation (±25°) and position on a
32x32 RGB canvas, dark on light or light on dark, over a random lightly tinted gradient with noise. (Fully random
colours made every recipe, supervised or self-supervised, stay at chance with 30 labels: too hard to say anything.) One sub-folder per class, the
layout `--dataset folder:PATH` reads (docs/low-budget.md uses it).

    uv run python scripts/hard_digits.py hard-digits
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from image_folder import main, save


def write(root: Path, seed: int = 0) -> int:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        dark = rng.random() < 0.5  # background dark or light
        tint = rng.uniform(-20, 20, 3)
        a = rng.uniform(0, 90) + tint if dark else rng.uniform(165, 255) + tint
        b = rng.uniform(0, 90) + tint if dark else rng.uniform(165, 255) + tint
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        t = (t - t.min()) / (np.ptp(t) or 1.0)
        canvas = a * (1 - t[..., None]) + b * t[..., None] + rng.normal(0, 12, (32, 32, 3))
        size = int(rng.integers(14, 25))
        glyph = Image.fromarray((img * 255 / 16).astype(np.uint8), mode="L").resize((size, size),
                                                                                     Image.Resampling.BICUBIC)
        glyph = glyph.rotate(float(rng.uniform(-25, 25)), resample=Image.Resampling.BILINEAR, expand=True)
        mask = np.asarray(glyph, dtype=np.float64) / 255.0
        h, w = mask.shape
        top, left = int(rng.integers(0, 32 - h + 1)), int(rng.integers(0, 32 - w + 1))
        ink = (rng.uniform(165, 255) if dark else rng.uniform(0, 90)) + rng.uniform(-15, 15, 3)
        region = canvas[top:top + h, left:left + w]
        canvas[top:top + h, left:left + w] = region * (1 - mask[..., None]) + ink * mask[..., None]
        save(root, str(label), i, canvas)
    return len(digits.target)


if __name__ == "__main__":
    main(write, "hard_digits.py")
