"""One pool-based active-learning run: modAL's ActiveLearner queries and teaches, we keep the books.

modAL and the strategies see only index arrays into the data set's images; the
skorch net reads the images of each batch (lazily, for memory-mapped data).

Round 0 trains on the initial labeled set. Each later round queries
``per_round`` pool images (or as many as the adaptive labeling rate asks for) with the strategy, reveals their labels (the
simulated oracle) and teaches them, which retrains the model. After every round
the state is committed to the run directory, so ``--resume`` continues from the
last committed round.

Every random choice is seeded from ``(seed, round)`` rather than drawn from a
running generator: a resumed run then makes exactly the choices an
uninterrupted one would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .config import RunConfig
from .data import DataSet, Splits, load_dataset, make_splits
from .rundir import RunDirectory, RunState
from .labeling_rate import next_batch_size
from .records import RoundRecord, RunResult
from .round_steps import estimator_for, pick_without_labels, query_batch, round_seed, save_torch, ssl_backbone
from .stopping import fires, measuring_rules, parse_stop, stop_measures, stop_set
from .strategies.schedules import chosen_by


@dataclass
class Oracle:
    """Holds the pool's labels and reveals them only for queried ids."""

    labels: np.ndarray

    def reveal(self, ids: np.ndarray) -> np.ndarray:
        return self.labels[ids]


def _stop_reason(config: RunConfig, state: RunState, n_pool_left: int) -> str | None:
    if state.round >= config.rounds:
        return f"{config.rounds} rounds done"
    if config.goal is not None and state.history and state.history[-1].val2_acc >= config.goal:
        return f"val-2 accuracy goal of {config.goal:g} reached"
    if config.budget is not None and state.labels >= config.budget:
        return f"label budget of {config.budget} reached"
    if config.patience is not None and state.stale_rounds >= config.patience:
        return f"no val-2 improvement for {config.patience} rounds (patience)"
    for rule, threshold in parse_stop(config.stop).items():
        why = fires(rule, threshold, state.history)
        if why:
            return why
    if n_pool_left == 0:
        return "pool is empty"
    return None


class ActiveLearningRun:
    """Prepares data, estimator and learner for a run directory, then runs rounds until a stop rule fires."""

    def __init__(self, config: RunConfig, echo: Callable[[str], None] = print, progress: bool = False,
                 tracking=None, measure_stop: bool | None = None, recipe_given: set[str] | None = None):
        """``recipe_given``: for a new run with ``--recipe``, the settings the user gave (the recipe fills the
        others, once the data is loaded); None for a run whose settings are resolved already (resumed, or one run
        of a study)."""
        from .checks import check_model_fits, check_run_settings

        self.config, self.echo, self.progress = config, echo, progress
        self.tracking = tracking  # alplug.tracking.TrackingPlan (--track), or None
        # The stop set costs an inference pass over up to 1,000 pool images a round: made where something reads
        # it, a run with --stop and every run of a study (its report shows where each rule would have stopped).
        self.measure_stop = bool(config.stop) if measure_stop is None else measure_stop
        self.tracked = None       # alplug.tracking.TrackedRuns once the run starts
        self.run_dir: RunDirectory | None = None
        self.history: list[RoundRecord] = []
        # Bad settings, unknown names, bad options and broken plugins fail here, before any data is read.
        self.strategy = check_run_settings(config, echo=echo)[config.query]
        self.data: DataSet = load_dataset(config.dataset, config.data_dir, image_size=config.image_size)
        # With --initial the initial set is picked by a strategy in _run (after any pretraining it reads).
        self.splits: Splits = make_splits(self.data, seed=config.seed, n_start=None if config.initial else config.n_start,
                                          test_size=config.test_size, val1_size=config.val1_size,
                                          val2_size=config.val2_size)
        self.recipe_lines: list[str] = []
        if config.recipe is not None and recipe_given is not None:
            from .presets import resolve_recipe

            resolved, self.recipe_lines = resolve_recipe(config, self.data, self.splits, recipe_given)
            for line in self.recipe_lines:
                echo(line)
            if resolved.image_size != config.image_size:  # the images as the recipe's size makes them
                self.data = load_dataset(resolved.dataset, resolved.data_dir, image_size=resolved.image_size)
            self.config = config = resolved.validate()  # the strategy stays: a recipe does not choose it
        # A bad architecture, weights file or budget fails here, before the caller creates a run directory.
        check_model_fits(config, self.data, self.splits)
        self.oracle = Oracle(self.data.y)
        s = self.splits
        self.estimator = estimator_for(config, self.data.channels, self.data.n_classes, self.data.X,
                                       valid_data=(s.val1, self.data.y[s.val1]), progress=progress)

    # ---- pieces -----------------------------------------------------------------
    def _labeled_ids(self, state: RunState) -> np.ndarray:
        return np.concatenate([self.splits.initial, np.asarray(state.queried, dtype=np.int64)])

    def _evaluate(self, X, y, with_predictions: bool = False):
        from sklearn.metrics import accuracy_score, log_loss

        proba = self.estimator.predict_proba(X)
        pred = proba.argmax(axis=1)
        acc = float(accuracy_score(y, pred))
        loss = float(log_loss(y, proba, labels=np.arange(proba.shape[1])))
        return (acc, loss, pred) if with_predictions else (acc, loss)

    def _row(self, state: RunState, round_: int, labels: int, queried: np.ndarray, train_s: float,
             query_s: float, strategy: str) -> RoundRecord:
        last = self.estimator.history[-1]
        y, s = self.data.y, self.splits
        # skorch scores val-1 during each epoch, before BatchNorm is recalibrated at
        # the end of fit; the round's figures use the model as it will query.
        val1_acc, val1_loss = self._evaluate(s.val1, y[s.val1])
        val2_acc, val2_loss = self._evaluate(s.val2, y[s.val2])
        # Recorded for studies' test-accuracy curves (labels to reach a test accuracy); nothing in the run
        # decides on it: stopping and patience read val-2.
        test_acc, _ = self._evaluate(s.test_inputs(self.data), s.y_test)
        stop = {}
        if self.measure_stop:
            stop_ids = stop_set(s.pool, self.config.seed)
            state.stop_predictions, stop = stop_measures(self.estimator.predict_proba(stop_ids),
                                                         state.stop_predictions)
        return RoundRecord(
            round=round_, labels=labels, queried=len(queried),
            train_seconds=round(train_s, 3), query_seconds=round(query_s, 3),
            train_loss=round(float(last["train_loss"]), 6),
            val1_acc=round(val1_acc, 6), val1_loss=round(val1_loss, 6),
            val2_acc=round(val2_acc, 6), val2_loss=round(val2_loss, 6),
            queried_ids=[int(i) for i in queried], queried_classes=[int(c) for c in self.data.y[queried]],
            strategy=strategy, test_acc=round(test_acc, 6),
            stop={name: None if stop.get(name) is None else round(stop[name], 6) for name in measuring_rules()},
        )

    def _checkpoint_files(self, prefix) -> tuple[str, str | None]:
        # A cold start rebuilds the optimizer at every fit; only --warm-start carries
        # its state (Adam's moments: twice the model's size) into the next round.
        return f"{prefix}.params.pt", (f"{prefix}.optimizer.pt" if self.config.warm_start else None)

    def _checkpoint_writer(self):
        """A function that writes this round's checkpoint under a path prefix, for a background commit.

        The files are what skorch's ``save_params`` writes (``torch.save`` of the state
        dicts; ``load_params`` reads them back), but the state dicts are taken here and
        written later by the run directory's worker thread. They refer to the live
        tensors, not copies: the loop waits for the commit before ``teach`` changes them.
        """
        params_state = self.estimator.module_.state_dict()
        optimizer_state = self.estimator.optimizer_.state_dict() if self.config.warm_start else None

        def write(prefix) -> None:
            params, optimizer = self._checkpoint_files(prefix)
            save_torch(params_state, params)
            if optimizer is not None:
                save_torch(optimizer_state, optimizer)

        return write

    def _commit(self, state: RunState, row: RoundRecord) -> None:
        best = state.best_val2
        improved = best is None or row.val2_acc > best
        state.round, state.labels = row.round, row.labels
        state.best_val2 = row.val2_acc if improved else best
        state.stale_rounds = 0 if improved else state.stale_rounds + 1
        state.history.append(row)
        # Written while the next round queries: the query only reads the weights.
        self.run_dir.commit(state, self._checkpoint_writer())

    def _announce(self, row: RoundRecord) -> None:
        self.echo(f"round {row.round:>3}  labels {row.labels:>6}  train {row.train_seconds:6.1f}s  "
                  f"query {row.query_seconds:5.1f}s  val-1 acc {row.val1_acc:.3f}  val-2 acc {row.val2_acc:.3f}")

    def check_resumable(self, run_dir: RunDirectory) -> None:
        """Raise the one-line error ``--resume`` gives for a run directory whose state does not fit this run."""
        state = run_dir.load_state()
        if state is not None and not state.finished:
            self.run_dir = run_dir
            self._check_resumed_state(state)

    def _check_resumed_state(self, state: RunState) -> None:
        """What ``state.json`` says must fit this run's splits: queried ids from its pool, counts that add up."""
        if self.config.initial is not None:
            if state.initial is None or len(state.initial) != self.config.n_initial:
                raise self.run_dir.damaged(f"state.json does not list the {self.config.n_initial} images --initial "
                                           f"{self.config.initial} picked")
            if not np.isin(state.initial, np.union1d(self.splits.pool, self.splits.initial)).all():
                raise self.run_dir.damaged("state.json lists initial ids that are not in this run's pool")
            self.splits = self.splits.with_initial(state.initial)
        queried = np.asarray(state.queried, dtype=np.int64)
        if not np.isin(queried, self.splits.pool).all():
            raise self.run_dir.damaged("state.json lists queried ids that are not in this run's pool")
        if state.labels != len(self.splits.initial) + len(queried):
            raise self.run_dir.damaged(f"state.json counts {state.labels} labels but lists "
                                       f"{len(self.splits.initial) + len(queried)} labeled images")
        optimizer = self._checkpoint_files(self.run_dir.checkpoint_prefix(state))[1]
        if optimizer is not None and not Path(optimizer).is_file():
            raise self.run_dir.damaged(f"its checkpoint has no optimizer file {Path(optimizer).name}")

    # ---- the loop ---------------------------------------------------------------
    def run(self, run_dir: RunDirectory) -> RunResult:
        """Run (or continue) in ``run_dir`` to a stop rule; returns the result written to result.json."""
        self.run_dir = run_dir
        try:
            return self._run()
        except BaseException as exc:
            if self.tracked:
                self.tracked.fail(interrupted=isinstance(exc, KeyboardInterrupt))
            raise
        finally:
            # A commit still being written (an error or Ctrl-C mid-round) lands before we return.
            run_dir.wait_for_commit()

    def _run(self) -> dict:
        import torch

        from .modal_compat import active_learner_class

        ActiveLearner = active_learner_class()
        cfg = self.config
        state = self.run_dir.load_state()
        if state is not None:
            self.history = state.history
        if state is not None and state.finished:
            result = self.run_dir.read_result() or self._finish(state)
            self._catch_up_trackers(state, result)
            return result

        backbone = self._pretrained_backbone(state)
        self._open_trackers()
        if state is None:
            state = RunState(strategy_sources=getattr(self.strategy, "alplug_sources", {}),
                             ssl_backbone=backbone.record() if backbone else None)
            if cfg.initial is not None:
                self.splits = self.splits.with_initial(self._pick_initial())
                state.initial = [int(i) for i in self.splits.initial]
            self.history = state.history
            initial = self.splits.initial
            # The first fit builds the module (the constructor only checked it, on the meta
            # device), so its initial weights come from this seed, warm start or not.
            torch.manual_seed(round_seed(cfg.seed, 0))
            self.estimator.unlabeled = self.splits.pool
            t0 = time.perf_counter()
            learner = ActiveLearner(self.estimator, self.strategy,
                                    X_training=initial, y_training=self.oracle.reveal(initial))
            row = self._row(state, 0, len(initial), np.array([], dtype=np.int64), time.perf_counter() - t0, 0.0,
                            cfg.initial or "random per class")
            self._commit(state, row)
            self._announce(row)
            self._track(state)
        else:
            self._check_resumed_state(state)
            labeled = self._labeled_ids(state)
            self.estimator.initialize()
            params, optimizer = self._checkpoint_files(self.run_dir.checkpoint_prefix(state))
            self.estimator.load_params(f_params=params, f_optimizer=optimizer)
            learner = ActiveLearner(self.estimator, self.strategy)
            learner.X_training, learner.y_training = labeled, self.oracle.reveal(labeled)
            self.echo(f"resuming after round {state.round} ({state.labels} labels)")
            self._track(state)  # a round committed but not yet sent when the run stopped

        while True:
            pool = np.setdiff1d(self.splits.pool, np.asarray(state.queried, dtype=np.int64))
            reason = _stop_reason(cfg, state, len(pool))
            if reason:
                break
            round_ = state.round + 1
            n = min(next_batch_size(cfg, state.history), len(pool))
            if cfg.budget is not None:
                n = min(n, cfg.budget - state.labels)
            by = chosen_by(self.strategy, cfg.query, state.labels)
            t0 = time.perf_counter()
            new = query_batch(learner, pool, n, round_seed(cfg.seed, round_), self._labeled_ids(state))
            query_s = time.perf_counter() - t0
            self.run_dir.wait_for_commit()  # the last round's checkpoint reads the weights teach() changes
            torch.manual_seed(round_seed(cfg.seed, round_))
            if self.tracked:
                self.tracked.start_round(round_)
            self.estimator.unlabeled = np.setdiff1d(pool, new)  # labeled images leave the unlabeled stream
            t0 = time.perf_counter()
            learner.teach(new, self.oracle.reveal(new))
            train_s = time.perf_counter() - t0
            state.queried = state.queried + [int(i) for i in new]
            row = self._row(state, round_, state.labels + len(new), new, train_s, query_s, by)
            self._commit(state, row)
            self._announce(row)
            self._track(state)
        state.stop_reason = reason
        return self._finish(state)

    def _open_trackers(self) -> None:
        """``--track``: start or continue the tracked runs; their skorch callbacks log every fit's epochs."""
        if not self.tracking or not self.tracking.specs:
            return
        from .tracking import open_trackers

        self.tracked = open_trackers(self.tracking, self.run_dir.path, self.run_dir.path.name,
                                     self.config.to_dict(), self.config.epochs, echo=self.echo)
        self.estimator.callbacks = list(self.estimator.callbacks) + self.tracked.callbacks()

    def _catch_up_trackers(self, state: RunState, result: RunResult) -> None:
        """A finished run resumed with ``--track``: send the rounds and the end a tracker missed (it stopped
        answering mid-run, or the run was not tracked before)."""
        if not self.tracking or not self.tracking.specs:
            return
        from .tracking import tracking_behind

        if tracking_behind(self.run_dir.path, self.tracking.specs, state.round):
            self._open_trackers()
            self._track(state)
            self.tracked.finish(result, self.run_dir.path)

    def _track(self, state: RunState) -> None:
        if self.tracked:
            self.tracked.log_rounds(state.history, self.data.classes)

    def _pick_initial(self) -> np.ndarray:
        """``--initial``: the first images to label, picked from the pool by a strategy without any label, on
        the model before any training (its ``--ssl`` or ``--weights`` backbone where the run has one). Seeded
        like round 0."""
        cfg = self.config
        n = min(cfg.n_initial, len(self.splits.pool))
        self.echo(f"picking the first {n} images to label with {cfg.initial}")
        return pick_without_labels(self.estimator, cfg.initial, self.splits.pool, n, round_seed(cfg.seed, 0),
                                   echo=self.echo)

    def _pretrained_backbone(self, state: RunState | None):
        """With ``--ssl``: the cached backbone (pretrained now on a miss) that every fit starts from.

        Pretrained on the pool and the initial set: never a validation or test image. A resumed run must find
        the backbone it started with; the same settings and images give the same key.
        """
        if self.config.ssl is None:
            return None
        ids = np.concatenate([self.splits.pool, self.splits.initial])
        backbone = ssl_backbone(self.config, self.data.X, ids, echo=self.echo, progress=self.progress)
        recorded = state.ssl_backbone if state is not None else None
        if isinstance(recorded, dict) and recorded.get("key") not in (None, backbone.key):
            raise self.run_dir.damaged(f"it started from self-supervised backbone {recorded.get('key')}, but "
                                       f"its images and settings now give {backbone.key}")
        self.estimator.set_params(module__backbone_file=str(backbone.path))
        return backbone

    def _finish(self, state: RunState) -> RunResult:
        from sklearn.metrics import recall_score

        from .plots import plot_learning_curve

        s = self.splits
        test_acc, test_loss, pred = self._evaluate(s.test_inputs(self.data), s.y_test, with_predictions=True)
        present = [c for c in range(len(self.data.classes)) if np.any(s.y_test == c)]
        recall = recall_score(s.y_test, pred, labels=present, average=None, zero_division=0)
        per_class = {self.data.classes[c]: float(r) for c, r in zip(present, recall)}  # each class's accuracy
        # The last round's checkpoint already holds these weights (a torch.save of the state
        # dict, see _checkpoint_writer): model.pt reuses the file instead of serialising again.
        self.run_dir.wait_for_commit()
        self.run_dir.publish_model(self._checkpoint_files(self.run_dir.checkpoint_prefix(state))[0])
        plot_learning_curve(state.history, self.run_dir.path / "learning_curve.png", test_acc=test_acc,
                            title=f"{self.config.query} on {self.data.name}, {self.config.model}, "
                                  f"seed {self.config.seed}")
        result = RunResult(
            test_accuracy=test_acc, test_loss=test_loss, test_size=int(len(s.y_test)), per_class_accuracy=per_class,
            labels=state.labels, rounds=state.round, stop_reason=state.stop_reason, classes=list(self.data.classes),
            split_sizes=s.sizes(), skipped_files=[p for p, _ in self.data.skipped],
            device=str(self.estimator.device), config=self.config.to_dict(),
            strategy_sources=state.strategy_sources, ssl_backbone=state.ssl_backbone)
        self.run_dir.write_result(result)
        self.run_dir.mark_finished(state)
        if self.tracked:
            self.tracked.finish(result, self.run_dir.path)
        return result
