"""Stochastic forward passes with dropout kept on (consistent MC dropout), shaped as baal expects."""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from alplug.strategies.outputs import (StrategyError, estimator_of, is_torch_net, mark_predictions_read,
                                       module_for_pass)

NO_DROPOUT_ADVICE = ("the model has no dropout layer with p > 0, so every MC-dropout score would be 0; "
                     "train it with a dropout head: `alplug run --dropout 0.3` or "
                     "make_estimator(..., dropout=0.3) (SqueezeNet 1.1 has dropout of its own)")


def _dropout_layers(module) -> list:
    from torch import nn

    return [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


@functools.lru_cache(maxsize=None)  # one class, so set_mc_sample can recognise its layers
def _consistent_dropout_class():
    import torch
    from torch import nn

    class ConsistentMCDropout(nn.Module):
        """Always-on dropout whose k-th mask is shared by every image of the pool (consistent MC dropout).

        Pass k of every image then runs the same network w_k drawn from the
        dropout posterior, as BatchBALD's joint entropies assume (p(y_1..n | w_k)
        is a product over images only when they share w_k; the paper's code does
        the same). baal's ``ConsistentDropout`` keeps one mask per position in the
        batch, so images in one batch still see different networks. For the
        single-image strategies (BALD, ...) each image's T passes have the same
        distribution either way. Drawing T masks per query instead of T per
        image also removes the mask draws that were most of the MC cost.
        Masks are Bernoulli(1 - p) as ``rand >= p``, scaled by 1 / (1 - p) like
        ``F.dropout``; channel-wise (``channels``) for Dropout1d/2d/3d.
        """

        def __init__(self, p: float, channels: bool):
            super().__init__()
            self.p, self.channels = float(p), channels
            self.sample = 0  # set by set_mc_sample before each pass
            self.masks = {}  # (sample, feature shape) -> mask, drawn on first use

        def forward(self, x):
            shape = (x.shape[1],) + (1,) * (x.dim() - 2) if self.channels else tuple(x.shape[1:])
            key = (self.sample, shape)
            if key not in self.masks:
                keep = torch.rand(shape, device=x.device) >= self.p
                self.masks[key] = keep.float() / (1.0 - self.p)
            return x * self.masks[key].to(x.dtype)

    return ConsistentMCDropout


def stochastic_copy(module):
    """A copy of ``module`` with every dropout layer always on and consistent (the model itself is untouched).

    The same walk over the module tree as baal's ``patch_module``; pick the MC
    sample of each pass with ``set_mc_sample`` (``mc_passes`` does).
    """
    import copy

    from baal.bayesian import dropout as baal_dropout
    from torch import nn

    ConsistentMCDropout = _consistent_dropout_class()
    # baal's always-on layers too: a model a user already patched with baal's patch_module / MCDropoutModule
    element_wise = (nn.Dropout, baal_dropout.Dropout)
    channel_wise = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, baal_dropout.Dropout2d)
    clone = copy.deepcopy(module)
    for parent in [clone, *clone.modules()]:
        for name, child in list(parent.named_children()):
            if isinstance(child, (*element_wise, *channel_wise)):
                setattr(parent, name, ConsistentMCDropout(child.p, channels=isinstance(child, channel_wise)))
    left = sorted({f"{type(m).__module__}.{type(m).__name__}" for m in _dropout_layers(clone)})
    if left:
        raise StrategyError(f"MC dropout supports element-wise and channel-wise dropout (torch's Dropout, "
                            f"Dropout1d/2d/3d, baal's Dropout, Dropout2d), not {', '.join(left)}")
    return clone.eval()


def set_mc_sample(stochastic, k: int) -> None:
    """Make the next pass of ``stochastic`` (from ``stochastic_copy``) run MC sample ``k``'s masks."""
    ConsistentMCDropout = _consistent_dropout_class()
    for m in stochastic.modules():
        if isinstance(m, ConsistentMCDropout):
            m.sample = k


def mc_passes(stochastic, x, T: int):
    """Logits of ``T`` passes of ``x`` through ``stochastic``, MC sample k in pass k: shape [batch, C, T]."""
    import torch

    out = []
    for k in range(T):
        set_mc_sample(stochastic, k)
        out.append(stochastic(x))
    return torch.stack(out, dim=-1)


def head_only_possible(module) -> bool:
    """True when every dropout layer is inside ``module.head`` and the module exposes ``features``."""
    if not (hasattr(module, "head") and hasattr(module, "features")):
        return False
    in_head = {id(m) for m in module.head.modules()}
    return all(id(m) in in_head for m in _dropout_layers(module))


def mc_batches(learner, X_pool, T: int = 20, random_state=None, head_only: bool | None = None):
    """Yield class probabilities of ``T`` stochastic passes for each pool batch, shape (batch, C, T).

    Dropout is made always-on and consistent in a copy (``stochastic_copy``):
    pass k of every image runs the same network w_k, and the learner's own
    model is left as it was. With ``head_only`` (default: when possible) the
    backbone runs once per batch and the stochastic head T times, with exactly
    the dropout masks T full passes would draw.
    """
    import torch

    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 2:
        raise StrategyError(f"T = {T!r}, must be an integer >= 2 stochastic passes")
    mark_predictions_read()
    est = estimator_of(learner)
    if not is_torch_net(est):
        raise StrategyError(f"MC dropout needs a torch model with dropout (a skorch net), not {type(est).__name__}")
    module = est.module_
    if not _dropout_layers(module):
        raise StrategyError(NO_DROPOUT_ADVICE)
    if head_only is None:
        head_only = head_only_possible(module)
    device = torch.device(est.device)
    devices = [device.index or 0] if device.type == "cuda" else []
    # eval mode: BatchNorm uses its running statistics; only the patched dropout is random
    with module_for_pass(est, len(X_pool)) as module:
        stochastic = stochastic_copy(module.head if head_only else module)
        with torch.random.fork_rng(devices=devices), torch.inference_mode(), \
                getattr(est, "autocast", contextlib.nullcontext)():
            if random_state is not None:
                torch.manual_seed(int(random_state))
            for Xi, _ in est.get_iterator(est.get_dataset(X_pool), training=False):
                x = Xi.to(device, non_blocking=True)
                inputs = module.features(x) if head_only else x
                logits = mc_passes(stochastic, inputs, T)  # [batch, C, T]
                yield torch.softmax(logits.float(), dim=1).cpu().numpy()


def mc_probabilities(learner, X_pool, T: int = 20, random_state=None, head_only: bool | None = None) -> np.ndarray:
    """All MC-dropout probabilities, shape (N, C, T): MC samples last, as baal's heuristics take.

    Memory O(N x C x T): for large pools use ``mc_scores``, which reduces each batch as it comes.
    """
    return np.concatenate(list(mc_batches(learner, X_pool, T, random_state, head_only)))


def mc_scores(learner, X_pool, score, T: int = 20, random_state=None) -> np.ndarray:
    """``score`` (a function of a (batch, C, T) array returning (batch,) scores) over the pool, batch by batch.

    Memory O(N) for the scores plus one batch of MC samples, whatever the pool size.
    """
    parts = [np.asarray(score(batch), dtype=np.float64) for batch in mc_batches(learner, X_pool, T, random_state)]
    return np.concatenate(parts) if parts else np.zeros(0)


def mc_top_candidates(learner, X_pool, score, k: int, T: int = 20, random_state=None):
    """The ``k`` highest ``score``s of the pool with their MC probabilities, from one streamed pass.

    Returns (positions, scores, probabilities [k, C, T]), best first. Ties are
    broken as ``alplug.strategies.selection.select`` breaks them (in a seeded
    random order), so the positions equal ``select(all scores, k, largest=True)``.
    Memory O(N) for the tie-break order plus O(k x C x T), never the pool's MC samples.
    """
    n = len(X_pool)
    order = np.arange(n) if random_state is None else np.random.default_rng(random_state).permutation(n)
    tie_rank = np.empty(n, dtype=np.intp)
    tie_rank[order] = np.arange(n)
    keep_pos = np.zeros(0, dtype=np.intp)
    keep_scores = np.zeros(0)
    keep_probs = None
    start = 0
    for batch in mc_batches(learner, X_pool, T, random_state):
        pos = np.arange(start, start + len(batch))
        start += len(batch)
        scores = np.asarray(score(batch), dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise StrategyError(f"{int(np.sum(~np.isfinite(scores)))} MC-dropout scores are NaN or infinite "
                                "(the model's probabilities are not finite; check the training loss)")
        pos = np.concatenate([keep_pos, pos])
        scores = np.concatenate([keep_scores, scores])
        probs = batch if keep_probs is None else np.concatenate([keep_probs, batch])
        best = np.lexsort((tie_rank[pos], -scores))[:k]  # highest score first, then the tie-break order
        keep_pos, keep_scores, keep_probs = pos[best], scores[best], probs[best]
    return keep_pos, keep_scores, keep_probs
