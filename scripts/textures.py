"""Writes a labeled image folder unlike digits, for checking that a few-label recipe is not tuned to digits: 15
classes of colour textures (1,200 images of 32x32, 80 per class) with nothing in the middle to look at. A class
is a kind of pattern at a scale (fine or coarse stripes, checks, dots, rings, waves, bricks, hatching, blobs,
speckle...), drawn at a random orientation, phase and scale within its range, in two random colours, under a
random illumination gradient, with noise. One sub-folder per class, the layout `--dataset folder:PATH` reads;
docs/low-budget.md reports every recipe on it.

    uv run python scripts/textures.py textures
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from image_folder import main, save

SIDE = 32
PER_CLASS = 80


def _rotated(rng, xx, yy):
    a = rng.uniform(0, np.pi)
    return np.cos(a) * xx + np.sin(a) * yy, -np.sin(a) * xx + np.cos(a) * yy


def _blur(rng, field, sigma):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(field, sigma, mode="wrap")


def _pattern(kind: str, rng, xx, yy):
    """A field in [0, 1] of the given kind."""
    u, v = _rotated(rng, xx, yy)
    phase = rng.uniform(0, 2 * np.pi)
    if kind.startswith("stripes"):
        period = rng.uniform(3, 4.5) if kind.endswith("fine") else rng.uniform(8, 12)
        return (np.sin(2 * np.pi * u / period + phase) > 0).astype(float)
    if kind.startswith("checks"):
        period = rng.uniform(4, 6) if kind.endswith("fine") else rng.uniform(10, 14)
        return ((np.floor(u / period * 2 + phase) + np.floor(v / period * 2)) % 2).astype(float)
    if kind.startswith("dots"):
        period = rng.uniform(5, 7) if kind.endswith("fine") else rng.uniform(10, 13)
        radius = period * rng.uniform(0.22, 0.3)
        du = (u + phase) % period - period / 2
        dv = v % period - period / 2
        return (du ** 2 + dv ** 2 < radius ** 2).astype(float)
    if kind == "grid":
        period = rng.uniform(7, 10)
        w = rng.uniform(1.0, 1.8)
        return (((u + phase) % period < w) | (v % period < w)).astype(float)
    if kind == "hatching":
        period = rng.uniform(4, 6)
        return ((np.sin(2 * np.pi * u / period + phase) > 0.6) |
                (np.sin(2 * np.pi * (0.5 * u + 0.866 * v) / period) > 0.6)).astype(float)
    if kind == "waves":
        period = rng.uniform(5, 8)
        amp, wl = rng.uniform(2, 4), rng.uniform(12, 20)
        return (np.sin(2 * np.pi * (u + amp * np.sin(2 * np.pi * v / wl)) / period + phase) > 0).astype(float)
    if kind == "rings":
        period = rng.uniform(4, 7)
        cx, cy = rng.uniform(-16, 48, 2)
        r = np.hypot(xx - cx, yy - cy)
        return (np.sin(2 * np.pi * r / period + phase) > 0).astype(float)
    if kind == "zigzag":
        period, wl = rng.uniform(5, 8), rng.uniform(6, 10)
        tri = np.abs((v / wl) % 2 - 1) * wl * 0.6
        return (np.sin(2 * np.pi * (u + tri) / period + phase) > 0).astype(float)
    if kind == "bricks":
        h = rng.uniform(5, 7)
        w = h * 2
        row = np.floor(v / h)
        shifted = u + (row % 2) * w / 2 + phase
        mortar = (v % h < 1.2) | (shifted % w < 1.2)
        return (~mortar).astype(float)
    if kind == "blobs":
        field = _blur(rng, rng.normal(size=xx.shape), rng.uniform(2.5, 3.5))
        return (field > np.median(field)).astype(float)
    if kind == "speckle":
        field = _blur(rng, rng.normal(size=xx.shape), 0.7)
        return (field > np.quantile(field, 0.7)).astype(float)
    if kind == "spokes":
        cx, cy = rng.uniform(8, 24, 2)
        n = int(rng.integers(6, 10))
        return (np.sin(n * np.arctan2(yy - cy, xx - cx) + phase) > 0).astype(float)
    raise ValueError(kind)


KINDS = ("stripes-fine", "stripes-coarse", "checks-fine", "checks-coarse", "dots-fine", "dots-coarse", "grid",
         "hatching", "waves", "rings", "zigzag", "bricks", "blobs", "speckle", "spokes")


def write(root: Path, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(float)
    count = 0
    for label, kind in enumerate(KINDS):
        for _ in range(PER_CLASS):
            field = _pattern(kind, rng, xx, yy)
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            while np.abs(a.astype(int) - b).sum() < 150:  # two colours that can be told apart
                b = rng.integers(0, 256, 3)
            image = a * (1 - field[..., None]) + b * field[..., None]
            g = rng.uniform(0.6, 1.0) + rng.uniform(-0.4, 0.4) * (xx / SIDE - 0.5)[..., None] \
                + rng.uniform(-0.4, 0.4) * (yy / SIDE - 0.5)[..., None]
            save(root, f"{label:02d}-{kind}", count, image * g + rng.normal(0, 10, image.shape))
            count += 1
    return count


if __name__ == "__main__":
    main(write, "textures.py")
