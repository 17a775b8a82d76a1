"""Which images to label first, with no label at all: how many classes the first picks cover, TypiClust (through
alplug-skactiveml) on each label-free embedding a run or a labeling project can have, against random picks, on
the pool of ``alplug run --seed S`` (alplug's own data loading and splits).

    uv run python benchmarks/first_picks.py --dataset folder:/tmp/f/shapes --seeds 5
    uv run python benchmarks/first_picks.py --dataset digits --seeds 5 --image-size 32

For each embedding and batch size (one and two picks per class) it prints the mean number of classes covered
over the seeds, and each seed's count; docs/low-budget.md#first-picks-on-folders-unlike-digits reports them.
Embeddings: the scattering model's pooled coefficients (the few-labels recipe's backbone) and ResNet-18 with
random weights (a labeling project's default model before any label), both as ``pick_without_labels`` sees them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alplug.config import RunConfig  # noqa: E402
from alplug.data import load_dataset, make_splits  # noqa: E402
from alplug.round_steps import estimator_for, pick_without_labels  # noqa: E402

EMBEDDINGS = {"scattering": "scattering", "resnet18-random-weights": "resnet18"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--strategy", default="typiclust")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args(argv)

    data = load_dataset(args.dataset, image_size=args.image_size)
    k = len(data.classes)
    counts = {}
    for per_class in (1, 2):
        n = per_class * k
        for arm in [*EMBEDDINGS, "random"]:
            covered = []
            for seed in range(args.seeds):
                pool = make_splits(data, seed=seed, n_start=None).pool
                if arm == "random":
                    picked = np.random.default_rng(seed).choice(pool, size=n, replace=False)
                else:
                    config = RunConfig(model=EMBEDDINGS[arm], image_size=args.image_size, freeze_backbone=True,
                                       seed=seed, device="cpu")
                    net = estimator_for(config, data.channels, k, data.X, image_size=args.image_size)
                    picked = pick_without_labels(net, args.strategy, pool, n, seed)
                covered.append(int(len(np.unique(data.y[picked]))))
            counts[f"{arm}, {n} picks"] = covered
            name = arm if arm == "random" else f"{args.strategy} on {arm}"
            print(f"{args.dataset}: {n} picks ({k} classes), {name}: {np.mean(covered):.1f} classes covered "
                  f"(seeds: {covered})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
