"""What does training cost? Every figure is a ratio against a baseline measured in this run (docs/performance.md).

    uv run python benchmarks/train_benchmark.py              # about 10 minutes on a 2-core CPU
    uv run python benchmarks/train_benchmark.py --images 512 --model squeezenet1_1

1. a supervised fit through alplug's estimator / a bare PyTorch loop over the same module, data, batch size,
   epochs and optimizer; with and without alplug's one extra documented pass (BatchNorm recalibration)
2. one self-supervised epoch (--ssl simclr, byol) over the images / one supervised epoch over the same images;
   and a SimCLR epoch pretraining only the parts the head reads (--features-from layer3) / the whole backbone's
3. one semi-supervised epoch (--semi entropy, pseudo, fixmatch: one pass over the unlabeled stream, with 32
   labels) / one supervised epoch over the same unlabeled images
4. training steps with PyTorch's own convolutions / with alplug's small-map convolutions (models/small_maps.py),
   with supervised batches at 32 px and SimCLR's batches of two views at 32 and 16 px
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(fn, repeat: int) -> float:
    """The best of ``repeat`` timings, after one untimed call (first imports, oneDNN's kernel selection)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def images(n: int, seed: int = 0):
    from alplug.data import load_dataset

    d = load_dataset("digits")
    pick = np.random.default_rng(seed).permutation(len(d.y))[:n]
    return d.X, d.y, pick


def estimator(model, X, epochs, batch_size, **kwargs):
    from alplug.estimators import make_estimator

    return make_estimator(model, in_channels=X.shape[1], num_classes=10, epochs=epochs, batch_size=batch_size,
                          images=X, device="cpu", **kwargs)


def bare_fit(model, X, y, ids, epochs, batch_size, seed=0):
    """The same training written as the PyTorch tutorials do: the module, Adam, shuffled batches, cross-entropy."""
    import torch
    from torch.utils.data import DataLoader

    from alplug.data.lazy import IndexedImages
    from alplug.models import ImageClassifier

    torch.manual_seed(seed)
    module = ImageClassifier(model, X.shape[1], 10)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    loader = DataLoader(IndexedImages(X, ids, y[ids]), batch_size=batch_size, shuffle=True)
    criterion = torch.nn.CrossEntropyLoss()
    module.train()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(module(torch.as_tensor(xb)), torch.as_tensor(yb).long())
            loss.backward()
            optimizer.step()
    return module


def figure_1(args, X, y, ids):
    import torch

    def alplug_fit(recalibrate=True):
        torch.manual_seed(0)
        net = estimator(args.model, X, args.epochs, args.batch_size)
        if not recalibrate:
            net.set_params(callbacks__recalibrate_bn=None)
        net.fit(ids, y[ids])

    bare = best_of(lambda: bare_fit(args.model, X, y, ids, args.epochs, args.batch_size), args.repeat)
    full = best_of(alplug_fit, args.repeat)
    without = best_of(lambda: alplug_fit(False), args.repeat)
    return {"bare_s": bare, "alplug_s": full, "alplug_without_recalibration_s": without,
            "ratio": full / bare, "ratio_without_recalibration": without / bare,
            "recalibration_pass_epochs": (full - without) / (bare / args.epochs)}


def figure_2(args, X, y, ids):
    from alplug import ssl

    def supervised_epoch():
        estimator(args.model, X, 1, args.batch_size).fit(ids, y[ids])

    sup = best_of(supervised_epoch, args.repeat)
    out = {"supervised_epoch_s": sup}
    for method in ("simclr", "byol"):
        settings = ssl.PretrainSettings(method=method, epochs=1, model=args.model, in_channels=X.shape[1],
                                        image_size=None, weights=None, hflip=False, seed=0,
                                        batch_size=args.ssl_batch_size)
        seconds = best_of(lambda: ssl.pretrain(settings, X, ids), args.repeat)
        out[method] = {"epoch_s": seconds, "ratio": seconds / sup}
    if args.features_from:  # --ssl with --features-from pretrains only the parts the head reads
        import dataclasses

        cut = dataclasses.replace(settings, method="simclr",
                                  features_from=ssl.last_part(args.model, args.features_from, X.shape[1]))
        seconds = best_of(lambda: ssl.pretrain(cut, X, ids), args.repeat)
        out["simclr_cut"] = {"epoch_s": seconds, "ratio_to_whole": seconds / out["simclr"]["epoch_s"]}
    return out


def figure_3(args, X, y, ids):
    labeled, unlabeled = ids[:32], ids[32:]

    def supervised_epoch():
        estimator(args.model, X, 1, args.batch_size).fit(unlabeled, y[unlabeled])

    sup = best_of(supervised_epoch, args.repeat)
    out = {"supervised_epoch_s": sup, "unlabeled_images": int(len(unlabeled))}
    for method in ("entropy", "pseudo", "fixmatch"):
        def semi_epoch():
            net = estimator(args.model, X, 1, args.batch_size, semi=method)
            net.unlabeled = unlabeled
            net.fit(labeled, y[labeled])

        seconds = best_of(semi_epoch, args.repeat)
        out[method] = {"epoch_s": seconds, "ratio": seconds / sup}
    return out


def figure_4(args, X, y, ids):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from alplug.models import ImageClassifier
    from alplug.models.small_maps import SmallMapConv2d
    from alplug.ssl import PretrainSettings

    def steps(module, batch, size, n=5):
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
        xb = torch.as_tensor(X[ids[:batch]]).float().div(255)
        yb = torch.as_tensor(y[ids[:batch]]).long()
        xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False)

        def run():
            for _ in range(n):
                optimizer.zero_grad()
                F.cross_entropy(module(xb), yb).backward()
                optimizer.step()
        return run

    out = {}
    ssl_batch = 2 * PretrainSettings.batch_size  # two views of each image
    for name, size, batch in (("supervised", 32, args.batch_size), ("ssl", 32, ssl_batch), ("ssl", 16, ssl_batch)):
        torch.manual_seed(0)
        ours = ImageClassifier(args.model, X.shape[1], 10, image_size=size).train()
        stock = ImageClassifier(args.model, X.shape[1], 10, image_size=size).train()
        for layer in stock.modules():
            if type(layer) is SmallMapConv2d:
                layer.__class__ = nn.Conv2d
        stock_s = best_of(steps(stock, batch, size), args.repeat)
        ours_s = best_of(steps(ours, batch, size), args.repeat)
        out[f"{name}-{size}px"] = {"name": name, "size": size, "batch": batch, "stock_s": stock_s, "small_maps_s": ours_s,
                     "ratio": stock_s / ours_s}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ssl-batch-size", type=int, default=256)
    parser.add_argument("--features-from", default="layer3",
                        help="figure 2: also a SimCLR epoch pretraining only up to this part ('' to skip)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", default="1,2,3,4")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    import torch

    X, y, ids = images(args.images)
    print(f"# {args.model}, {args.images} digits images (8x8 -> 32x32), batch {args.batch_size}, best of "
          f"{args.repeat}; torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    results = {}
    only = set(args.only.split(","))
    if "1" in only:
        r = results["1"] = figure_1(args, X, y, ids)
        print(f"1. supervised fit, {args.epochs} epochs: alplug {r['alplug_s']:.2f}s / bare PyTorch {r['bare_s']:.2f}s "
              f"= {r['ratio']:.3f}; without the BatchNorm recalibration pass {r['ratio_without_recalibration']:.3f} "
              f"(the pass costs {r['recalibration_pass_epochs']:.2f} epoch-equivalents)")
    if "2" in only:
        r = results["2"] = figure_2(args, X, y, ids)
        for method in ("simclr", "byol"):
            print(f"2. self-supervised epoch, {method}: {r[method]['epoch_s']:.2f}s / supervised epoch "
                  f"{r['supervised_epoch_s']:.2f}s = {r[method]['ratio']:.2f}")
        if "simclr_cut" in r:
            print(f"2. self-supervised epoch, simclr, backbone up to {args.features_from}: "
                  f"{r['simclr_cut']['epoch_s']:.2f}s / the whole backbone's {r['simclr']['epoch_s']:.2f}s = "
                  f"{r['simclr_cut']['ratio_to_whole']:.2f}")
    if "3" in only:
        r = results["3"] = figure_3(args, X, y, ids)
        for method in ("entropy", "pseudo", "fixmatch"):
            print(f"3. semi-supervised epoch, {method}: {r[method]['epoch_s']:.2f}s / supervised epoch over the "
                  f"{r['unlabeled_images']} unlabeled images {r['supervised_epoch_s']:.2f}s = {r[method]['ratio']:.2f}")
    if "4" in only:
        r = results["4"] = figure_4(args, X, y, ids)
        for name, f in r.items():
            print(f"4. five {f['name']} training steps, {f['size']} px, batches of {f['batch']}: PyTorch's convolutions "
                  f"{f['stock_s']:.2f}s / small-map convolutions {f['small_maps_s']:.2f}s = {f['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
