"""What does `--recipe few-labels` cost as the pool grows? (docs/low-budget.md, docs/performance.md)

    uv run python benchmarks/few_labels_cost.py                  # pools of 1,000, 5,000 and 20,000 images
    uv run python benchmarks/few_labels_cost.py --sizes 1000 --threads 1

Random 32x32 colour images through alplug's own estimator with the recipe's settings (the scattering model,
a frozen backbone, 10 augmented copies of each labeled image, weight decay 0.01, 100 head epochs): the time to
compute every image's features once (what a run does before its first fit, and all a labeling project's batch
adds), the features of 100 labeled images' copies (once per labeled image and run), and one fit of the head on
100 labels and their copies (what every round repeats). Features grow linearly with the pool; the copies with the
labels; the fit with the labels, not the pool. Every figure is from this run.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from alplug.estimators import make_estimator

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), device {args.device}")
    print("| pool images | features of every image (s) | ms per image | copies of 100 labeled images (s) "
          "| one head fit, 100 labels + copies, 100 epochs (s) |")
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        net = make_estimator("scattering", in_channels=3, num_classes=10, epochs=100, images=images,
                             freeze_backbone=True, device=args.device, image_size=32, augment_copies=10,
                             weight_decay=0.01)
        net.initialize()
        t0 = time.perf_counter()
        net.backbone_features(np.arange(n))
        features = time.perf_counter() - t0
        labeled = np.arange(100)
        t0 = time.perf_counter()
        net.copy_features(labeled)
        copies = time.perf_counter() - t0
        t0 = time.perf_counter()
        net.partial_fit(labeled, y[labeled])  # keeps the module (and so the feature caches) that was just filled
        fit = time.perf_counter() - t0
        print(f"| {n:,} | {features:.1f} | {1000 * features / n:.2f} | {copies:.1f} | {fit:.1f} |", flush=True)


if __name__ == "__main__":
    main()
