"""Writes a labeled image folder unlike digits, for checking that a few-label recipe is not tuned to digits: 20
classes of outlined or filled geometric shapes (1,200 colour images, 60 per class), each at a random size, position
and rotation (±20°, so a square never becomes a diamond), in a random colour over a cluttered background (a
random gradient, stray strokes and dots of other colours, noise). One sub-folder per class, the layout
`--dataset folder:PATH` reads; docs/low-budget.md reports every recipe on it.

    uv run python scripts/shapes.py shapes
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from image_folder import main, save

SIDE = 32
SCALE = 4  # drawn at 4x and downsampled, for anti-aliased edges
PER_CLASS = 60


def _polygon(n: int, radius: float = 1.0, phase: float = 0.0) -> list:
    angles = phase + np.arange(n) * 2 * np.pi / n
    return [(radius * np.cos(a), radius * np.sin(a)) for a in angles]


def _star(n: int, inner: float) -> list:
    points = []
    for i in range(2 * n):
        r = 1.0 if i % 2 == 0 else inner
        a = -np.pi / 2 + i * np.pi / n
        points.append((r * np.cos(a), r * np.sin(a)))
    return points


# Each shape in a unit box around (0, 0): (outline polygons, or ("ellipse", rx, ry), ...).
SHAPES = {
    "circle": [("ellipse", 1.0, 1.0)],
    "ellipse": [("ellipse", 1.0, 0.55)],
    "square": [[(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]],
    "bar": [[(-1.0, -0.3), (1.0, -0.3), (1.0, 0.3), (-1.0, 0.3)]],
    "triangle": [_polygon(3, 1.0, -np.pi / 2)],
    "pentagon": [_polygon(5, 1.0, -np.pi / 2)],
    "hexagon": [_polygon(6, 1.0, 0.0)],
    "star": [_star(5, 0.42)],
    "burst": [_star(8, 0.6)],
    "plus": [[(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]],
    "arrow": [[(-1, -0.25), (0.2, -0.25), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.25), (-1, 0.25)]],
    "chevron": [[(-0.9, -0.9), (-0.3, -0.9), (0.6, 0), (-0.3, 0.9), (-0.9, 0.9), (0, 0)]],
    "ell": [[(-0.7, -1), (-0.2, -1), (-0.2, 0.5), (0.8, 0.5), (0.8, 1), (-0.7, 1)]],
    "tee": [[(-1, -1), (1, -1), (1, -0.5), (0.25, -0.5), (0.25, 1), (-0.25, 1), (-0.25, -0.5), (-1, -0.5)]],
    "trapezoid": [[(-1, 0.6), (1, 0.6), (0.45, -0.6), (-0.45, -0.6)]],
    "semicircle": [[(np.cos(a), 0.35 - np.sin(a)) for a in np.linspace(0, np.pi, 24)]],
    "crescent": "crescent",
    "ring": "ring",
    "two-dots": "two-dots",
    "heart": [[(0.06 * 16 * np.sin(t) ** 3, -0.06 * (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
                                                 - np.cos(4 * t))) for t in np.linspace(0, 2 * np.pi, 40)]],
}


def _rotate(points, angle, scale, cx, cy):
    c, s = np.cos(angle), np.sin(angle)
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in points]


def _draw_shape(draw, name, angle, scale, cx, cy, colour, background, width):
    spec = SHAPES[name]
    box = lambda rx, ry, dx=0.0: [cx + scale * (dx - rx), cy - scale * ry, cx + scale * (dx + rx), cy + scale * ry]
    if spec == "ring":
        draw.ellipse(box(1.0, 1.0), fill=colour)
        draw.ellipse(box(0.55, 0.55), fill=background)
    elif spec == "crescent":
        shift = 0.45 * np.cos(angle), 0.45 * np.sin(angle)
        draw.ellipse(box(1.0, 1.0), fill=colour)
        draw.ellipse([cx + scale * (shift[0] - 0.85), cy + scale * (shift[1] - 0.85),
                      cx + scale * (shift[0] + 0.85), cy + scale * (shift[1] + 0.85)], fill=background)
    elif spec == "two-dots":
        for sign in (-1, 1):
            dx, dy = sign * 0.6 * np.cos(angle), sign * 0.6 * np.sin(angle)
            draw.ellipse([cx + scale * (dx - 0.38), cy + scale * (dy - 0.38), cx + scale * (dx + 0.38),
                          cy + scale * (dy + 0.38)], fill=colour)
    else:
        for part in spec:
            if part[0] == "ellipse":
                _, rx, ry = part
                # an ellipse rotated: drawn as a polygon
                t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
                points = _rotate(list(zip(rx * np.cos(t), ry * np.sin(t))), angle, scale, cx, cy)
            else:
                points = _rotate(part, angle, scale, cx, cy)
            if width:
                draw.polygon(points, outline=colour, width=width)
            else:
                draw.polygon(points, fill=colour)


def _colour(rng, avoid=None):
    while True:
        c = rng.integers(0, 256, 3)
        if avoid is None or np.abs(c.astype(int) - np.asarray(avoid)).sum() > 180:
            return tuple(int(v) for v in c)


def write(root: Path, seed: int = 0) -> int:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    big = SIDE * SCALE
    yy, xx = np.mgrid[0:big, 0:big] / (big - 1)
    count = 0
    for label, name in enumerate(SHAPES):
        for i in range(PER_CLASS):
            a, b = np.asarray(_colour(rng)), np.asarray(_colour(rng))
            angle = rng.uniform(0, 2 * np.pi)
            t = np.cos(angle) * xx + np.sin(angle) * yy
            t = (t - t.min()) / (np.ptp(t) or 1.0)
            canvas = a * (1 - t[..., None]) + b * t[..., None]
            image = Image.fromarray(canvas.astype(np.uint8), mode="RGB")
            draw = ImageDraw.Draw(image)
            mean = tuple(int(v) for v in canvas.reshape(-1, 3).mean(0))
            for _ in range(int(rng.integers(2, 6))):  # clutter: stray strokes and dots
                x0, y0 = rng.uniform(0, big, 2)
                if rng.random() < 0.5:
                    x1, y1 = np.array([x0, y0]) + rng.uniform(-big / 3, big / 3, 2)
                    draw.line([(x0, y0), (x1, y1)], fill=_colour(rng), width=int(rng.integers(2, 6)))
                else:
                    r = rng.uniform(2, 7)
                    draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=_colour(rng))
            scale = rng.uniform(0.22, 0.38) * big
            cx, cy = rng.uniform(scale, big - scale, 2)
            colour = _colour(rng, avoid=mean)
            filled = rng.random() < 0.5
            _draw_shape(draw, name, rng.uniform(-np.pi / 9, np.pi / 9), scale, cx, cy, colour, mean,
                        0 if filled else int(rng.integers(5, 10)))
            small = np.asarray(image.resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
            save(root, f"{label:02d}-{name}", count, small + rng.normal(0, 8, small.shape))
            count += 1
    return count


if __name__ == "__main__":
    main(write, "shapes.py")
