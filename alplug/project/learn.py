"""Train on a project's labels so far and queue the next batch: modAL's ActiveLearner with the project's
strategy, exactly as in `alplug run`, but the oracle is a person.

Until the labels can train a model (at least two classes labeled and
``MIN_LABELS_PER_CLASS`` labels per class on average), batches are picked without
labels by the project's ``--initial`` strategy (the few-labels recipe a project takes by default sets random;
without a recipe: typicality, TypiClust, with alplug-skactiveml; random, seeded, without it). A fifth of the labels (at least one per class that has two) is
held out to report the model's validation accuracy; the model that queries is
trained on the rest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..round_steps import estimator_for, pick_without_labels, query_batch, round_seed, save_model, ssl_backbone
from ..strategies.schedules import chosen_by
from ..data.sources import is_colour
from .images import project_images
from .store import ProjectStore

MIN_LABELS_PER_CLASS = 2
VAL_FRACTION = 0.2
DEFAULT_IMAGE_SIZE = 64


@dataclass
class BatchResult:
    batch: int
    size: int
    how: str
    trained_on: int
    val_accuracy: float | None
    dropped: int
    seconds: float


def _holdout(y: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask of held-out labels: VAL_FRACTION of each class that has at least two."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) >= 2:
            k = max(1, int(round(VAL_FRACTION * len(members))))
            mask[rng.choice(members, size=k, replace=False)] = True
    return mask


def next_batch(store: ProjectStore, n: int, echo=lambda *_: None, track=(),
               overlap: tuple[int, float] = (1, 0.0)) -> BatchResult:
    """Queue the next ``n`` images to label (fewer when the pool runs out).

    ``track``: ``--track`` values; each training is tracked as one round of the project's tracked run.
    ``overlap``: (K, share): that share of the batch (seeded) waits for K annotators each (``alplug label``).
    An image that was readable at ``init`` and no longer is (truncated, replaced) is marked unreadable
    with its path and the reason, reported through ``echo``, and left out; the batch is then made
    without it. Each retry leaves out at least one more image, so this ends.
    """
    from ..errors import UnreadableImageError

    while True:
        try:
            return _next_batch(store, n, echo, track, overlap)
        except UnreadableImageError as exc:
            ids = store.image_ids_by_path()
            for path, why in exc.problems:
                rel = Path(path).relative_to(store.images_dir).as_posix() if Path(path).is_absolute() else path
                if rel not in ids:
                    raise  # not one of the project's images: nothing to leave out
                store.mark_unreadable([ids[rel]], why)
                echo(f"left out {rel}: it can no longer be read ({why})")


def _next_batch(store: ProjectStore, n: int, echo, track=(), overlap=(1, 0.0)) -> BatchResult:
    t0 = time.perf_counter()
    cfg, classes = store.settings, store.classes
    ids, paths = store.readable_images()
    gone = [i for i, p in zip(ids, paths) if not (store.images_dir / p).is_file()]
    if gone:  # deleted or moved since init: left out from now on (their labels stay in the history)
        echo(f"{len(gone)} image(s) are no longer in {store.images_dir}; leaving them out")
        store.mark_unreadable(gone, "missing since init")
        ids, paths = store.readable_images()
    position = {image_id: i for i, image_id in enumerate(ids)}
    labeled = [row for row in store.current_labels() if row[0] in position]
    batch_number = len(store.batches()) + 1
    seed = round_seed(cfg.seed, batch_number)
    pool = np.asarray([position[i] for i in store.pool()], dtype=np.int64)
    n = min(n, len(pool))
    y = np.asarray([classes.index(row[2]) for row in labeled], dtype=np.int64)
    enough = len(np.unique(y)) >= 2 and len(y) >= MIN_LABELS_PER_CLASS * len(classes)
    hints, val_acc, trained_on = None, None, 0
    if n == 0:
        chosen, how = np.array([], dtype=np.int64), "pool empty"
    elif not enough:
        first = cfg.initial or default_initial()
        if first == "random":
            chosen = np.random.default_rng(seed).choice(pool, size=n, replace=False)
        else:
            chosen = _pick_without_labels(store, cfg, first, paths, ids, pool, n, seed, echo)
        how = f"{first} (too few labels to train)"
    else:
        from ..checks import check_run_settings
        from ..modal_compat import active_learner_class

        check_project_model(store)  # before any pretraining or training
        labeled_pos = np.asarray([position[row[0]] for row in labeled], dtype=np.int64)
        held = _holdout(y, seed)
        echo(f"training {cfg.model} on {int((~held).sum())} labels ...")
        estimator = _estimator(store, cfg, paths, ids, seed, echo)
        estimator.unlabeled = pool  # --semi learns from the images nobody has labeled yet
        tracked = _open_trackers(store, track, batch_number, echo)
        if tracked:
            estimator.callbacks = list(estimator.callbacks) + tracked.callbacks()
        t_train = time.perf_counter()
        learner = active_learner_class()(estimator, check_run_settings(cfg)[cfg.query],
                                         X_training=labeled_pos[~held], y_training=y[~held])
        trained_on = int((~held).sum())
        train_s = time.perf_counter() - t_train
        if held.any():
            val_acc = float(np.mean(estimator.predict(labeled_pos[held]) == y[held]))
        chosen = query_batch(learner, pool, n, seed, labeled_pos)
        proba = estimator.predict_proba(chosen)
        hints = [(classes[int(p.argmax())], float(p.max())) for p in proba]
        how = chosen_by(learner.query_strategy, cfg.query, trained_on)  # a schedule's stage, by the labels trained on
        save_model(estimator.module_, store.project / "model.pt")  # for use outside alplug, like a run's model.pt
        if tracked:
            tracked.log_batch(_batch_metrics(len(labeled), trained_on, val_acc, train_s, batch_number, hints, classes),
                              step=len(labeled), files=[store.project / "model.pt"])
    batch, dropped, queued = store.new_batch([ids[i] for i in chosen], how, trained_on, val_acc,
                                             time.perf_counter() - t0, hints, overlap_needs(len(chosen), overlap, seed))
    return BatchResult(batch, queued, how, trained_on, val_acc, dropped, time.perf_counter() - t0)


def _open_trackers(store: ProjectStore, track, batch_number: int, echo):
    """The project's tracked runs (``tracking.json`` in the project continues them batch after batch); each
    training is one round: its epochs step on from the last batch's."""
    if not track:
        return None
    from ..errors import UsageError
    from ..tracking import TrackingPlan, open_trackers, parse_track

    try:  # a tracker gone since the project started costs the batch its tracking, never the batch
        tracked = open_trackers(TrackingPlan(parse_track(track), tags={"project": str(store.project.resolve())}),
                                store.project, store.project.resolve().name, store.settings.to_dict(),
                                store.settings.epochs, echo=echo)
    except UsageError as exc:
        echo(f"alplug: warning: {exc}; this batch is not tracked")
        return None
    tracked.start_round(batch_number)
    return tracked


def _batch_metrics(labels: int, trained_on: int, val_acc, train_s: float, batch_number: int, hints,
                   classes: list[str]) -> dict[str, float]:
    """A project's round: labels so far, the split it trained on, held-out accuracy, and the classes the model
    guesses for the batch it picked (the true ones are not known until labeled)."""
    metrics = {"project/labels": float(labels), "project/trained_on": float(trained_on),
               "project/train_seconds": float(train_s), "project/batch": float(batch_number)}
    if val_acc is not None:
        metrics["project/val_accuracy"] = float(val_acc)
    guesses = [guess for guess, _ in hints or []]
    metrics.update({f"guessed_class/{name}": float(guesses.count(name)) for name in classes})
    return metrics


def overlap_needs(n: int, overlap: tuple[int, float], seed: int) -> list[int]:
    """Annotators each of a batch's ``n`` images waits for: K for a seeded ``share`` of them (rounded, at least
    one when the share is above zero), 1 for the rest."""
    k, share = overlap
    needs = np.ones(n, dtype=int)
    if k > 1 and share > 0 and n:
        m = min(n, max(1, int(round(share * n))))
        needs[np.random.default_rng(seed).choice(n, size=m, replace=False)] = k
    return [int(x) for x in needs]


def default_initial() -> str:
    """How a project picks images before its labels can train a model: by typicality (TypiClust) where
    alplug-skactiveml is installed, else at random."""
    from ..strategies import available_strategies

    return "typiclust" if "typiclust" in available_strategies() else "random"


def check_project_model(store: ProjectStore) -> None:
    """The project's model for its classes and images, built on the meta device with its outputs checked."""
    from ..models import build_on_meta_device

    cfg = store.settings
    build_on_meta_device(cfg.model, in_channels=3 if is_colour(store.modes()) else 1, num_classes=len(store.classes),
                         dropout=cfg.dropout, image_size=cfg.image_size or DEFAULT_IMAGE_SIZE, weights=cfg.weights,
                         features_from=cfg.features_from)


def _estimator(store: ProjectStore, cfg, paths, ids, seed: int, echo):
    """The project's model over all its readable images (``--ssl``: its backbone pretrained on them), seeded."""
    import torch

    X = project_images(store.images_dir, paths, cfg.image_size or DEFAULT_IMAGE_SIZE, is_colour(store.modes()))
    backbone = None
    if cfg.ssl is not None:
        # Pretrained on every readable image of the project: a set that stays put from batch to batch (the
        # held-out labels change with each batch's seed), so every batch reuses one pretraining.
        backbone = str(ssl_backbone(cfg, X, np.arange(len(ids)), echo=echo).path)
    torch.manual_seed(seed)
    return estimator_for(cfg, X.shape[1], len(store.classes), X, image_size=cfg.image_size or DEFAULT_IMAGE_SIZE,
                         backbone_file=backbone)


def _pick_without_labels(store: ProjectStore, cfg, name: str, paths, ids, pool, n: int, seed: int, echo):
    """The first batches, before the labels can train a model: ``--initial`` (by default typicality) on the
    untrained model's embeddings (pretrained with ``--ssl`` or ``--weights``)."""
    echo(f"picking {n} images with {name} (no model trained yet) ...")
    return pick_without_labels(_estimator(store, cfg, paths, ids, seed, echo), name, pool, n, seed, echo=echo)
