"""The steps an active-learning round is made of, written once for both of alplug's loops: a run's
(``loop.ActiveLearningRun``, the oracle a data set's labels) and a labeling project's (``project/learn.py``, the
oracle a person). Each is a thin join of modAL, skorch and lightly: the estimator the settings describe, the first
picks without labels, the seeded query with its outputs shared and checked, the ``--ssl`` backbone, and the
model written to disk.
"""
from __future__ import annotations

import numpy as np

from .config import RunConfig


def estimator_for(config: RunConfig, in_channels: int, num_classes: int, images, *, image_size: int | None = None,
                  valid_data=None, progress: bool = False, backbone_file: str | None = None):
    """The skorch estimator a run's (or a labeling project's) settings describe, over ``images``
    (``backbone_file``: the cached ``--ssl`` backbone every fit starts from)."""
    from .estimators import make_estimator

    return make_estimator(
        **config.settings_for("estimator"),  # every setting declared to="estimator" (config.setting)
        in_channels=in_channels, num_classes=num_classes, image_size=image_size or config.image_size,
        augment_seed=config.seed, valid_data=valid_data, progress=progress, images=images,
        backbone_file=backbone_file)


def pick_without_labels(estimator, strategy_name: str, pool: np.ndarray, n: int, seed: int,
                        echo=None) -> np.ndarray:
    """``n`` pool ids picked by a strategy that needs no labels (random, typiclust, ...) on ``estimator``
    initialised (seeded) but not trained: the first labels of a run (``--initial``) or of a labeling project.
    Embedding strategies see its pretrained backbone where it has one, random weights otherwise (which make them
    little better than random). A strategy that reads the model's predictions (margin, entropy, BALD) reads an
    untrained head's: ``echo`` says so."""
    import torch

    from .strategies import resolve_query
    from .strategies.outputs import shared_model_outputs, watch_prediction_reads

    strategy = resolve_query(strategy_name)
    torch.manual_seed(seed)
    estimator.initialize()
    with shared_model_outputs(), watch_prediction_reads() as reads:
        idx, _ = strategy(estimator, pool.copy(), n, random_state=seed)
    if reads and echo:
        echo(f"note: {strategy_name} picked the first labels by the predictions of a model trained on no label, "
             "which are close to random; strategies that need no labels read images or embeddings instead "
             "(random, typiclust, probcover)")
    chosen = pool[np.asarray(idx, dtype=np.int64)]
    check_new_labels(chosen, np.array([], dtype=np.int64), strategy)
    return chosen


def round_seed(seed: int, round_: int) -> int:
    """A distinct 32-bit seed per (run seed, round)."""
    return int(np.random.SeedSequence([seed, round_]).generate_state(1)[0])


def save_torch(obj, path) -> None:
    """``torch.save`` to a checkpoint file (not atomic: the run directory's commit names it only once flushed)."""
    from .userfiles import torch_bytes

    with open(path, "wb") as f:
        f.write(torch_bytes(obj))


def check_new_labels(new: np.ndarray, labeled: np.ndarray, strategy) -> None:
    """The ids about to be labeled must be distinct and not labeled yet, whatever the strategy did."""
    if len(np.unique(new)) != len(new) or np.isin(new, labeled).any():
        from .strategies.outputs import StrategyError

        where = getattr(strategy, "alplug_name", "the strategy")
        raise StrategyError(f"{where} chose images that are labeled already or chosen twice; nothing was labeled "
                            f"(a strategy must not change X_pool)")


def query_batch(learner, pool: np.ndarray, n: int, seed: int, labeled: np.ndarray) -> np.ndarray:
    """The ``n`` pool ids the learner's strategy picks next, seeded, checked against ``labeled``. The model's
    outputs on the pool are computed once and shared by the strategy's calls (``shared_model_outputs``); the
    strategy gets its own copy of ``pool``, so nothing it does changes the caller's."""
    from .strategies.outputs import shared_model_outputs

    with shared_model_outputs():
        idx, _ = learner.query(pool.copy(), n_instances=n, random_state=seed)
    chosen = pool[np.asarray(idx, dtype=np.int64)]
    check_new_labels(chosen, labeled, learner.query_strategy)
    return chosen


def ssl_backbone(config: RunConfig, images, ids: np.ndarray, echo=print, progress: bool = False):
    """With ``--ssl``: the cached backbone (pretrained now on a miss, on ``images[ids]`` only) that every fit
    starts from (``ssl.PretrainedBackbone``: its key and file)."""
    from .estimators import resolve_device
    from .ssl import pretrained_backbone, settings_for

    return pretrained_backbone(settings_for(config, images.shape[1]), images, ids,
                               device=resolve_device(config.device), echo=echo, progress=progress,
                               weights=config.weights)


def save_model(module, path) -> None:
    """A model's state dict as ``path``, written atomically (a project's model.pt)."""
    from .userfiles import atomic_write, torch_bytes

    atomic_write(path, torch_bytes(module.state_dict()))
