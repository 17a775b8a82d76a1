"""Semi-supervised training (``--semi``): the unlabeled pool joins every training step.

Neither skorch nor lightly (nor modAL, baal or scikit-learn for deep models) trains on labeled and
unlabeled batches together, so the losses and the unlabeled stream are ours; skorch's own hooks
(``get_iterator`` and ``train_step_single``, in ``estimators.ImageClassifierNet``) join them to its loop.

- ``entropy``: cross-entropy on labeled batches + ``weight`` x mean prediction entropy on unlabeled ones
  (entropy minimisation, Grandvalet & Bengio 2005; the seed report's joint objective).
- ``pseudo``: the model's own confident predictions (probability >= ``threshold``) on unlabeled images
  as targets (Lee 2013).
- ``fixmatch``: the confident prediction on a weakly augmented view is the target for a strongly
  augmented view of the same image (Sohn et al. 2020).
- ``spread``: before each fit, the labels are spread over a frozen backbone's features of the labeled and
  unlabeled images (scikit-learn's ``LabelSpreading`` on a k-nearest-neighbour graph); each unlabeled image's
  spread class is its target, weighted by how certain the spreading is of it (label propagation for deep
  semi-supervised learning, Iscen et al. 2019). It is what lets the pool's shape decide where the class
  boundaries go with one to ten labels a class (docs/low-budget.md).

With ``--semi`` an epoch is one pass over the unlabeled stream, ``ratio`` unlabeled images per labeled one in
each step, while the labeled set is cycled: with a few dozen labels an epoch over the labels alone would
be one or two steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

# torch and numpy are imported where they are used: reading settings (alplug.config) reads the methods' names here.
if TYPE_CHECKING:
    import numpy as np
    import torch

SPREAD_NEIGHBOURS = 10  # the k-nearest-neighbour graph of label spreading
SPREAD_ALPHA = 0.2      # how much of its label an image gives up to its neighbours' (scikit-learn's default)
SPREAD_COMPONENTS = 64  # principal components of the standardised features that the graph is built on


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the predicted class distributions."""
    import torch.nn.functional as F

    log_p = F.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def confident_targets(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax class, mask of rows whose top probability >= threshold), with no gradient."""
    import torch

    with torch.no_grad():
        confidence, target = torch.softmax(logits.detach().float(), dim=1).max(dim=1)
    return target, (confidence >= threshold).float()


def pseudo_label_loss(target_logits: torch.Tensor, logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Cross-entropy of ``logits`` against the confident argmax of ``target_logits``, averaged over the whole
    batch (FixMatch's normalisation: unconfident rows count as zero, so few confident rows weigh little)."""
    import torch.nn.functional as F

    target, mask = confident_targets(target_logits, threshold)
    return (F.cross_entropy(logits.float(), target, reduction="none") * mask).mean()


def weak_augmentation(channels: int, hflip: bool):
    """FixMatch's weak view: a shift of up to 12.5% (and a flip with ``--hflip``)."""
    from torchvision.transforms import v2

    steps = [v2.RandomAffine(degrees=0, translate=(0.125, 0.125))]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


def strong_augmentation(channels: int, hflip: bool):
    """FixMatch's strong view: the weak view, then RandAugment (torchvision's, grey and RGB images only:
    its colour operations are undefined for other channel counts) and a cutout."""
    from torchvision.transforms import v2

    steps = [weak_augmentation(channels, hflip)]
    if channels in (1, 3):
        steps.append(v2.RandAugment(num_ops=2, magnitude=10))
    steps.append(v2.RandomErasing(p=1.0, scale=(0.02, 0.15), ratio=(0.5, 2.0), value=0))
    return v2.Compose(steps)


# An unlabeled batch is (inputs, second views or None, targets or None): what every method's loss below takes.

class TwoViews:
    """``collate_fn`` of the unlabeled stream: (weak views, strong views, None) per batch; ids' placeholder targets
    dropped."""

    def __init__(self, weak, strong=None):
        self.weak, self.strong = weak, strong

    def __call__(self, batch):
        import torch
        from torch.utils.data import default_collate

        images = [torch.as_tensor(x) for x, _ in batch]
        weak = default_collate([self.weak(x) for x in images])
        strong = default_collate([self.strong(x) for x in images]) if self.strong is not None else None
        return weak, strong, None


class Features:
    """``collate_fn`` of an unlabeled stream of a frozen backbone's cached features: (features, None, None), or with
    ``targets`` (``spread``) (features, None, (targets, weights)), from each item's ``target`` and ``weight``."""

    def __init__(self, targets: bool = False):
        self.targets = targets

    def __call__(self, batch):
        import numpy as np
        import torch
        from torch.utils.data import default_collate

        features = default_collate([x["features"] for x, _ in batch])
        if not self.targets:
            return features, None, None
        return features, None, (torch.as_tensor(np.array([y for _, y in batch]), dtype=torch.long),
                                torch.as_tensor(np.array([x["weight"] for x, _ in batch]), dtype=torch.float32))


def unlabeled_loader(dataset, batch_size: int, method: str, channels: int, hflip: bool, features: bool = False,
                     **loader_kwargs):
    """Shuffled batches of the unlabeled dataset (read lazily by the DataLoader, one batch at a time), with the
    views ``method`` needs, or (``features``) a frozen backbone's cached features, which entropy, pseudo-labels and
    spread targets use as they are. Shuffling draws from torch's generator, which the run seeds per round."""
    from torch.utils.data import DataLoader

    if features:
        collate = Features(targets=UNLABELED_METHODS[method].targets is not None)
    else:
        weak = weak_augmentation(channels, hflip)
        collate = TwoViews(weak, strong_augmentation(channels, hflip) if UNLABELED_METHODS[method].strong_view
                           else None)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) > batch_size,
                      collate_fn=collate, **loader_kwargs)


def steps_per_epoch(n_unlabeled: int, batch_size: int, ratio: int) -> int:
    """One pass over the unlabeled stream, ``ratio * batch_size`` images a step."""
    return max(1, math.ceil(n_unlabeled / (ratio * batch_size)))


class Cycle:
    """``steps`` batches from ``loader``, starting it again whenever it runs out (the labeled set, per epoch)."""

    def __init__(self, loader, steps: int):
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        done = 0
        while done < self.steps:
            empty = True
            for batch in self.loader:
                empty = False
                yield batch
                done += 1
                if done == self.steps:
                    return
            if empty:
                return


class Forever:
    """An endless iterator over a loader's batches, each pass reshuffled."""

    def __init__(self, loader):
        self.loader, self._it = loader, iter(loader)

    def __next__(self):
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            return next(self._it)


def spread_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the spread targets, each weighted by its certainty, averaged over the batch."""
    import torch.nn.functional as F

    return (F.cross_entropy(logits.float(), targets, reduction="none") * weights).mean()


@dataclass(frozen=True)
class SemiMethod:
    """One ``--semi`` method, all of it: adding one is an entry in ``UNLABELED_METHODS``, nothing else.

    ``loss(logits, second, targets, threshold)``: its unlabeled loss from the unlabeled inputs' logits, their
    second views' logits (with ``strong_view``) or None, and the stream's targets (with ``targets``) or None.
    ``strong_view``: the stream also yields a strongly augmented view of each image (new every step, so a frozen
    backbone's features cannot be cached). ``targets(labeled, y, unlabeled, n_classes) -> (targets, weights)``:
    computed once per fit over a frozen backbone's features, which the method therefore needs (``needs`` says
    why, in the one-line error of a run without them)."""

    loss: Callable
    strong_view: bool = False
    targets: Callable | None = None
    needs: str = ""


UNLABELED_METHODS = {
    "entropy": SemiMethod(lambda logits, second, targets, threshold: entropy_loss(logits)),
    "pseudo": SemiMethod(lambda logits, second, targets, threshold: pseudo_label_loss(logits, logits, threshold)),
    "fixmatch": SemiMethod(lambda logits, second, targets, threshold: pseudo_label_loss(logits, second, threshold),
                           strong_view=True),
    "spread": SemiMethod(lambda logits, second, targets, threshold: spread_loss(logits, *targets),
                         targets=lambda *args: spread_targets(*args),
                         needs="spreads the labels over a frozen backbone's fixed features"),
}


def semi_loss(method: str, forward, X_labeled, y, unlabeled, *, weight: float, threshold: float):
    """(supervised loss, unlabeled loss) of one step; ``forward`` maps a batch of images (or of a frozen
    backbone's features) to logits; ``unlabeled`` is a batch of the unlabeled stream (inputs, second views,
    targets).

    Labeled and unlabeled images go through one forward pass, so BatchNorm normalises them together (as
    FixMatch does) instead of seeing a labeled-only batch of a few images.
    """
    import torch
    import torch.nn.functional as F

    inputs, second, targets = unlabeled
    n, m = len(X_labeled), len(inputs)
    parts = [X_labeled, inputs] + ([second] if second is not None else [])
    logits = forward(torch.cat([_to_unit(p) for p in parts]))  # uint8 and float batches alike, in [0, 1]
    supervised = F.cross_entropy(logits[:n].float(), y)
    loss = UNLABELED_METHODS[method].loss(logits[n:n + m], logits[n + m:] if second is not None else None, targets,
                                    threshold)
    return supervised, weight * loss


def spread_targets(labeled: np.ndarray, y: np.ndarray, unlabeled: np.ndarray, n_classes: int,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(target class, weight) of each unlabeled image: the labels spread over the features of the labeled and
    unlabeled images by scikit-learn's ``LabelSpreading`` (a k-nearest-neighbour graph on the first principal
    components of the standardised features, L2-normalised so that neighbours are by angle). The weight is 1 minus
    the entropy of the spread distribution over log(``n_classes``) (Iscen et al. 2019); an image the spreading
    never reached (no path to a label) weighs 0."""
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler
    from sklearn.semi_supervised import LabelSpreading

    Z = np.concatenate([labeled.reshape(len(labeled), -1), unlabeled.reshape(len(unlabeled), -1)]).astype(np.float32)
    components = min(SPREAD_COMPONENTS, len(Z) - 1, Z.shape[1])
    P = make_pipeline(StandardScaler(), PCA(components, random_state=seed), Normalizer()).fit_transform(Z)
    known = np.concatenate([np.asarray(y, dtype=np.int64), -np.ones(len(unlabeled), dtype=np.int64)])
    spreading = LabelSpreading(kernel="knn", n_neighbors=min(SPREAD_NEIGHBOURS, len(Z) - 1), alpha=SPREAD_ALPHA,
                               max_iter=100).fit(P, known)
    D = spreading.label_distributions_[len(labeled):]
    mass = D.sum(axis=1)
    D = D / np.where(mass > 0, mass, 1.0)[:, None]
    entropy = -(D * np.log(np.clip(D, 1e-12, None))).sum(axis=1)
    weights = np.where(mass > 0, 1.0 - entropy / np.log(max(n_classes, 2)), 0.0)
    targets = spreading.classes_[D.argmax(axis=1)]
    return targets.astype(np.int64), np.clip(weights, 0.0, 1.0).astype(np.float32)


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    import torch

    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def unlabeled_ids(pool: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """The unlabeled stream of a round: the pool without the images labeled so far."""
    import numpy as np

    return np.setdiff1d(np.asarray(pool, dtype=np.int64), np.asarray(labeled, dtype=np.int64))
