"""What does `--recipe few-labels` cost as the pool grows? (docs/low-budget.md, docs/performance.md)

    uv run python benchmarks/few_labels_cost.py                  # pools of 1,000, 5,000 and 20,000 images
    uv run python benchmarks/few_labels_cost.py --sizes 1000 --threads 1
    uv run python benchmarks/few_labels_cost.py --pretraining    # the scattering trunk's pretraining instead

With ``--pretraining``: what the recipe's pretraining of the scattering trunk costs (``--model scattering-conv
--ssl simclr``, once per pool and seed, cached): the scattering coefficients of each image and its stored views
(``alplug.ssl``'s bank, once) and one epoch of the trunk over them (the recipe runs 60), and the bank's memory.

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
    parser.add_argument("--pretraining", action="store_true", help="time the scattering trunk's pretraining")
    args = parser.parse_args()
    if args.pretraining:
        return pretraining_cost(args)
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


def pretraining_cost(args) -> None:
    import torch

    from alplug import ssl
    from alplug.models import ImageClassifier
    from alplug.presets import TRUNK_EPOCHS

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), device {args.device}, {ssl.FRONT_VIEWS} stored views an image")
    print(f"| pool images | stored views' coefficients (s) | one trunk epoch (s) | {TRUNK_EPOCHS} epochs and the views "
          "(min) | bank memory (GB) |")
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    timed_epochs = 3
    module = ImageClassifier("scattering-conv", 3, 2, image_size=32)
    views = ssl.view_transforms("simclr", 3, (32, 32), False)
    ssl._front_bank(module, views, rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), np.arange(8), False)  # warm
    for n in (int(s) for s in args.sizes.split(",")):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        settings = ssl.PretrainSettings(method="simclr", epochs=timed_epochs, model="scattering-conv", in_channels=3,
                                        image_size=32, weights=None, hflip=False, seed=0)
        t0 = time.perf_counter()
        bank = ssl._front_bank(module, views, images, np.arange(n), progress=False)
        coefficients = time.perf_counter() - t0
        memory = bank.nbytes / 2**30
        real_bank, ssl._front_bank = ssl._front_bank, lambda *a, **k: bank  # the views just timed, not again
        try:
            t0 = time.perf_counter()
            ssl.pretrain(settings, images, np.arange(n), device=args.device)
            epoch = (time.perf_counter() - t0) / timed_epochs
        finally:
            ssl._front_bank = real_bank
        del bank
        total = (coefficients + TRUNK_EPOCHS * epoch) / 60
        print(f"| {n:,} | {coefficients:.0f} | {epoch:.1f} | {total:.1f} | {memory:.2f} |", flush=True)


if __name__ == "__main__":
    main()
