"""skorch estimators over ``alplug.models.ImageClassifier``.

``make_estimator`` returns an unfitted ``NeuralNetClassifier`` that works on the
tiny labeled sets of active learning: no internal validation split, no
BatchNorm crash on a last batch of one, and BatchNorm statistics re-estimated
after every fit so that predictions (and every uncertainty score built on them)
are not noise after a handful of optimizer steps.
"""
from __future__ import annotations

import contextlib
import copy
import sys

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn
from torch.utils.data import DataLoader, default_collate

from .data.lazy import IndexedImages, is_index_array
from .config import check_values
from .errors import ModelTrainingError, UsageError  # noqa: F401 - ModelTrainingError re-exported
from .models import ImageClassifier
from .semi import UNLABELED_METHODS

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def resolve_device(device: str = "auto") -> str:
    """'auto' picks CUDA when a GPU is visible; an explicit 'cuda' without one is a usage error
    (skorch would raise deep inside fit)."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} but no CUDA GPU is visible; use --device cpu or auto")
    if not (device == "cpu" or device.startswith(("cuda", "mps"))):
        raise UsageError(f"--device {device!r} is not a torch device; use auto, cpu, cuda or cuda:N")
    return device


def train_loader(dataset, batch_size: int, drop_last: bool | None = None, **kwargs) -> DataLoader:
    """A DataLoader that drops the last batch only when it would hold one sample.

    BatchNorm cannot train on a batch of one, but a fixed ``drop_last=True``
    would drop every sample of a labeled set smaller than the batch size.
    """
    if drop_last is None:
        drop_last = len(dataset) > 1 and len(dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, **kwargs)


class AugmentCollate:
    """Applies a torchvision transform to each training sample before batching.

    Used as the training iterator's ``collate_fn`` so augmentation touches the
    training set only; validation and prediction see the images unchanged.
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, batch):
        return default_collate([(self.transform(torch.as_tensor(x)), y) for x, y in batch])


def augmentation(channels: int, hflip: bool = False):
    """Rotation ±15°, contrast ±10%, hue ±10% (colour images only), optional horizontal flip."""
    from torchvision.transforms import v2

    steps = [v2.RandomRotation(15)]
    if channels in (1, 3):  # torchvision's colour ops are defined for grey and RGB only
        steps.append(v2.ColorJitter(contrast=0.1, hue=0.1 if channels == 3 else 0.0))
    if hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    return v2.Compose(steps)


def copy_augmentation(height: int, width: int):
    """The fixed copies of ``--augment-copies``: a shift by a whole number of pixels, up to 1/8 of the smaller side,
    the border filled by reflection (the usual CIFAR crop). No interpolation, so a copy's edges and textures stay as
    sharp as the image's: turns and scalings blurred textures and lost points there (docs/low-budget.md); no colour
    change or flip, which change what some classes mean. Any channel count."""
    from torchvision.transforms import v2

    return v2.RandomCrop((height, width), padding=max(1, min(height, width) // 8), padding_mode="reflect")


def copies_of(image: torch.Tensor, n: int, transform, seed: int, image_id: int) -> torch.Tensor:
    """``n`` augmented copies of one image (C, H, W), drawn from a generator seeded by (``seed``, ``image_id``) alone:
    the same image always gets the same copies, whatever else is computed, in whatever order (a resumed run
    trains on what the first run did)."""
    state = np.random.SeedSequence([seed, image_id]).generate_state(1)[0]
    with torch.random.fork_rng(devices=[]):  # torchvision draws from torch's global generator; leave the run's alone
        torch.manual_seed(int(state))
        return torch.stack([transform(image) for _ in range(n)])


class RecalibrateBatchNorm(Callback):
    """Re-estimates BatchNorm running statistics with one pass over the training data.

    After few optimizer steps the running averages lag far behind the weights
    and eval-mode predictions are close to random (FACTS: 0.14 -> 0.74 accuracy
    on 50 labels). ``torch.optim.swa_utils.update_bn`` does exactly the pass we
    need (cumulative average, momentum restored afterwards).
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if getattr(net.module_, "frozen", False):
            return  # a frozen backbone keeps its statistics (a reset here would wipe them); heads have no BatchNorm
        if X is None or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.module_.modules()):
            return
        # No augmentation, no shuffle, and (as in training) no batch of one, which
        # BatchNorm rejects in train mode.
        loader = train_loader(net.get_dataset(X, y), batch_size=net.batch_size, shuffle=False)
        with torch.no_grad(), net.autocast():
            torch.optim.swa_utils.update_bn(loader, net.module_, device=net.device)


class FitHeadStatistics(Callback):
    """Before each fit, head layers with a ``fit_statistics(features)`` method (the scattering model's per-coefficient
    standardisation) get the backbone features of the training images: a scaler fitted on the training set, as
    scikit-learn's StandardScaler is in a pipeline (skorch has no such step). Fixed buffers, not batch statistics:
    MC-dropout passes and predictions see the same standardisation."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        layers = [m for m in net.module_.head.modules() if callable(getattr(m, "fit_statistics", None))]
        if not layers or X is None:
            return
        features = torch.from_numpy(net.features_of(X))
        for layer in layers:
            layer.fit_statistics(features)


class EpochProgress(Callback):
    """A progress bar per fit on a terminal (tqdm, which skorch installs; nothing where stderr is not a terminal):
    epochs done, the last train loss and val-1 accuracy."""

    def on_train_begin(self, net, **kwargs):
        from tqdm import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc="  training", unit="epoch", leave=False, disable=None,
                         file=sys.stderr)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        shown = {"train loss": f"{row['train_loss']:.3f}"}
        if "valid_acc" in row:
            shown["val-1 acc"] = f"{row['valid_acc']:.3f}"
        self.bar_.set_postfix(shown, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        self.bar_.close()


class FeatureDataset:
    """Backbone features already computed (a frozen backbone's cache), as the module's ``features=`` input."""

    def __init__(self, features: np.ndarray, y=None, weights=None):
        self.features, self.y = features, None if y is None else np.asarray(y)
        self.weights = weights  # per-item weights of targets that are not labels (``--semi spread``)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i):
        X = {"features": self.features[i]}
        if self.weights is not None:
            X["weight"] = self.weights[i]
        return X, (self.y[i] if self.y is not None else np.float32(0))




class ImageClassifierNet(NeuralNetClassifier):
    """``NeuralNetClassifier`` plus mixed precision on CUDA, an embedding pass, semi-supervised steps and a
    frozen backbone's feature cache.

    skorch has no autocast switch of its own outside its accelerate mixin. ``semi`` (``alplug.semi``) trains
    on ``unlabeled`` (ids into ``images``, or an image array) alongside the labels; set ``net.unlabeled``
    before each fit. With a frozen backbone (``module__freeze_backbone=True``), each image's features are
    computed once and reused by every later fit, prediction and embedding pass.
    """

    def __init__(self, *args, amp: bool = True, images=None, semi: str | None = None, semi_weight: float = 1.0,
                 semi_threshold: float = 0.95, semi_ratio: int = 2, semi_hflip: bool = False, unlabeled=None,
                 augment_copies: int = 0, augment_seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.amp = amp
        self.images = images
        self.augment_copies, self.augment_seed = augment_copies, augment_seed
        self.semi, self.semi_weight, self.semi_threshold = semi, semi_weight, semi_threshold
        self.semi_ratio, self.semi_hflip = semi_ratio, semi_hflip
        self.unlabeled = unlabeled
        # skorch treats every attribute without a trailing underscore as a constructor parameter (get_params, clone)
        self.unlabeled_batches_ = None
        self.spread_ = None  # a --semi method's (targets, weights) of the unlabeled images (spread), for the fit under way
        self.feature_cache_ = None  # (backbone fingerprint, features array, filled mask)
        self.copy_cache_ = None     # (backbone fingerprint, {image id: features of its augmented copies})
        self.backbone_key_ = None   # the frozen backbone's fingerprint, taken once per (re)initialization or load

    # ---- semi-supervised steps ------------------------------------------------------------------------------
    def get_iterator(self, dataset, training=False):
        cached = self._cached_features(dataset, training)
        if cached is not None:
            dataset = cached
        iterator = super().get_iterator(dataset, training=training)
        if not (training and self.semi and self.unlabeled is not None and len(self.unlabeled)):
            return iterator
        from .semi import Cycle, Forever, steps_per_epoch, unlabeled_loader

        method = UNLABELED_METHODS[self.semi]
        unlabeled = self.get_dataset(self.unlabeled)
        # a frozen backbone: entropy and pseudo-labels need no views, so the stream serves cached features too
        features = isinstance(dataset, FeatureDataset) and isinstance(unlabeled, IndexedImages)
        if features:
            unlabeled = FeatureDataset(self.backbone_features(unlabeled.ids))
            if method.targets is not None:  # once per fit: skorch asks for the training iterator every epoch
                if self.spread_ is None:
                    self.spread_ = method.targets(dataset.features, dataset.y, unlabeled.features, len(self.classes))
                unlabeled = FeatureDataset(unlabeled.features, *self.spread_)
        elif method.targets is not None:  # set on a net that computes no fixed features
            check_values({"semi": self.semi, "freeze_backbone": False})
        channels = int(self.images.shape[1]) if self.images is not None else int(np.asarray(self.unlabeled).shape[1])
        batch = self.semi_ratio * self.batch_size
        self.unlabeled_batches_ = Forever(unlabeled_loader(unlabeled, batch, self.semi, channels, self.semi_hflip,
                                                           features=features))
        return Cycle(iterator, steps_per_epoch(len(unlabeled), self.batch_size, self.semi_ratio))

    def train_step_single(self, batch, **fit_params):
        if self.unlabeled_batches_ is None:
            return super().train_step_single(batch, **fit_params)
        from skorch.dataset import unpack_data

        from .semi import semi_loss

        self._set_training(True)
        Xi, yi = unpack_data(batch)
        unlabeled = next(self.unlabeled_batches_)
        device = self.device
        forward = self.module_
        if isinstance(Xi, dict):  # a frozen backbone's cached features, labeled and unlabeled alike
            Xi = Xi["features"]

            def forward(features):
                return self.module_(features=features)

        def move(x):
            return None if x is None else x.to(device, non_blocking=True)

        def move_all(x):
            return tuple(move(t) for t in x) if isinstance(x, tuple) else move(x)

        with self.autocast():
            supervised, unlabeled_loss = semi_loss(self.semi, forward, move(Xi), move(torch.as_tensor(yi)).long(),
                                                   tuple(move_all(part) for part in unlabeled),
                                                   weight=self.semi_weight, threshold=self.semi_threshold)
        loss = supervised + unlabeled_loss
        loss.backward()
        return {"loss": loss, "y_pred": None}

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except (RuntimeError, IndexError, ValueError, TypeError) as exc:  # torch's own errors, deep in a step
            raise ModelTrainingError(self._model_named(exc)) from exc
        finally:
            self.unlabeled_batches_ = self.spread_ = None

    def _model_named(self, exc: Exception) -> str:
        """A training failure in one line that names the model and the distribution that supplies it."""
        from .models import model_origin

        arch = getattr(getattr(self, "module_", None), "arch", None) or getattr(self, "module__arch", "?")
        try:
            origin = model_origin(arch)
        except Exception:  # noqa: BLE001 - the name is what matters here
            origin = "?"
        detail = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else "no details"
        return f"training model {arch!r} ({origin}) failed: {type(exc).__name__}: {detail}"

    # ---- a frozen backbone's feature cache ------------------------------------------------------------------
    def _cached_features(self, dataset, training: bool):
        """A ``FeatureDataset`` for ``dataset`` when the backbone is frozen and nothing per-step changes its input
        (augmentation or semi-supervised views in training); else None."""
        module = getattr(self, "module_", None)
        if not (getattr(module, "frozen", False) and isinstance(dataset, IndexedImages)
                and dataset.images is self.images):
            return None
        strong_views = self.semi is not None and UNLABELED_METHODS[self.semi].strong_view
        if training and (hasattr(self, "iterator_train__collate_fn") or strong_views):
            return None  # the views change every step
        if training and self.semi and self.unlabeled is not None and not is_index_array(self.unlabeled):
            return None  # unlabeled images given as an array, not ids: labeled batches must be images as well
        features, y = self.backbone_features(dataset.ids), dataset.y
        if training and self.augment_copies and len(dataset.ids):  # the labeled images, then their copies
            copies = self.copy_features(dataset.ids)
            features = np.concatenate([features, copies.reshape((-1,) + features.shape[1:])])
            y = np.concatenate([np.asarray(y), np.repeat(np.asarray(y), self.augment_copies)])
        return FeatureDataset(features, y)

    def backbone_fingerprint(self) -> str:
        """A hash of the frozen backbone's weights and buffers: features computed under it stay valid while it
        holds. Taken once after each initialization or ``load_params`` (a frozen backbone changes only there), not
        per pass: hashing ResNet-18's 45 MB cost about a tenth of a second at every prediction."""
        import hashlib

        if self.backbone_key_ is None:
            digest = hashlib.blake2b(digest_size=16)
            for value in self.module_.backbone.state_dict().values():
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            self.backbone_key_ = digest.hexdigest()
        return self.backbone_key_

    def load_params(self, *args, **kwargs):
        self.backbone_key_ = None
        return super().load_params(*args, **kwargs)

    def backbone_features(self, ids: np.ndarray) -> np.ndarray:
        """The frozen backbone's features of ``images[ids]``, computing only those not computed before."""
        key = self.backbone_fingerprint()
        if self.feature_cache_ is None or self.feature_cache_[0] != key:
            self.feature_cache_ = (key, None, np.zeros(len(self.images), dtype=bool))
        _, features, filled = self.feature_cache_
        ids = np.asarray(ids, dtype=np.int64)
        todo = np.unique(ids[~filled[ids]])
        if len(todo):
            loader = DataLoader(IndexedImages(self.images, todo), batch_size=getattr(self, "iterator_valid__batch_size", 256),
                                shuffle=False, generator=torch.Generator())
            # its own generator: iterating a DataLoader draws a seed from torch's global one even unshuffled, and
            # whether a feature was cached before (a resumed run's were not) must not change the run's draws
            start = 0
            with self.evaluation_module(len(todo)) as fast, torch.inference_mode(), self.autocast():
                for Xi, _ in loader:
                    f = fast.features(Xi.to(self.device)).float().cpu().numpy()
                    if features is None:
                        # np.empty leaves untouched pages unallocated: a large pool costs memory for what is read
                        features = np.empty((len(self.images),) + f.shape[1:], dtype=np.float32)
                        self.feature_cache_ = (key, features, filled)
                    features[todo[start:start + len(f)]] = f
                    start += len(f)
            filled[todo] = True
        return features[ids]

    def copy_features(self, ids: np.ndarray) -> np.ndarray:
        """The frozen backbone's features of ``augment_copies`` fixed augmented copies of each of ``images[ids]``,
        (len(ids), copies, ...): computed once per image (``copies_of``) and kept while the backbone holds.

        Why not skorch's or torchvision's: augmentation there draws new views at every step, which a frozen
        backbone's feature cache cannot serve; fixed copies can be, and a head on few labels gained more from them
        than from per-step views (docs/low-budget.md)."""
        key = self.backbone_fingerprint()
        if self.copy_cache_ is None or self.copy_cache_[0] != key:
            self.copy_cache_ = (key, {})
        cache = self.copy_cache_[1]
        ids = np.asarray(ids, dtype=np.int64)
        todo = [int(i) for i in np.unique(ids) if int(i) not in cache]
        if todo:
            n = self.augment_copies
            # One image's copies a batch, whatever else is computed: a batch's floats can depend on its size and
            # company, and a resumed run must train on the very numbers the first run did.
            with self.evaluation_module(len(todo) * n) as fast, torch.inference_mode(), self.autocast():
                for i in todo:
                    chunk = [i]
                    images = torch.as_tensor(np.asarray(self.images[np.asarray(chunk)]))
                    if not torch.is_floating_point(images):
                        images = images.float().div_(255.0)
                    # at the size the backbone sees, as its own preparation would resize them: a shift or turn of
                    # an 8 px digit by under a pixel would otherwise leave most copies the image itself
                    size = fast.prepared_size(*images.shape[-2:])
                    if size != tuple(images.shape[-2:]):
                        images = torch.nn.functional.interpolate(images, size=size, mode="bilinear",
                                                                 align_corners=False)
                    transform = copy_augmentation(*size)
                    views = torch.cat([copies_of(image, n, transform, self.augment_seed, i)
                                       for image, i in zip(images, chunk)])
                    f = fast.features(views.to(self.device)).float().cpu().numpy()
                    for j, i in enumerate(chunk):
                        cache[i] = f[j * n:(j + 1) * n]
        return np.stack([cache[int(i)] for i in ids])

    def features_of(self, X) -> np.ndarray:
        """The backbone features of ``X`` (ids into ``images``, or images): a frozen backbone's from its cache."""
        dataset = self.get_dataset(X)
        if getattr(self.module_, "frozen", False) and isinstance(dataset, IndexedImages):
            return self.backbone_features(dataset.ids)
        out = []
        loader = DataLoader(dataset, batch_size=getattr(self, "iterator_valid__batch_size", 256), shuffle=False,
                            generator=torch.Generator())  # see backbone_features
        with self.evaluation_module(len(dataset)) as fast, torch.inference_mode(), self.autocast():
            for Xi, _ in loader:
                out.append(fast.features(Xi.to(self.device)).float().cpu().numpy())
        return np.concatenate(out)

    def get_dataset(self, X, y=None):
        """With ``images`` set, a 1-d integer ``X`` holds ids into it, read lazily batch by batch."""
        if self.images is not None and is_index_array(X):
            return IndexedImages(self.images, X, None if y is None else np.asarray(y))
        return super().get_dataset(X, y)

    def autocast(self):
        device = str(self.device)
        if self.amp and device.startswith("cuda") and torch.cuda.is_bf16_supported():
            # bf16 keeps fp32's range: no gradient scaler needed.
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def initialize_module(self):
        super().initialize_module()
        self.backbone_key_ = None
        module = self.module_
        if isinstance(module, ImageClassifier):
            # NHWC lets cuDNN use its fastest (tensor-core) kernels; on the CPU it depends on the model (its spec)
            if str(self.device).startswith("cuda") or module.cpu_trains_channels_last:
                module.use_channels_last()
        return self

    # The copy costs a fixed time per pass and saves a share of it, so only passes over thousands of images
    # gain; docs/performance.md (figure 6, "channels-last") has the measured costs behind this threshold.
    CHANNELS_LAST_COPY_MIN_IMAGES = 4096

    @contextlib.contextmanager
    def evaluation_module(self, n_images: int | None = None):
        """The fitted module in eval mode, for a pass over ``n_images`` images, in its fastest layout for that.

        A module that trains in NCHW (ResNets on the CPU) is copied into channels-last for a pass over at least
        ``CHANNELS_LAST_COPY_MIN_IMAGES`` images (or an unknown number): oneDNN evaluates ResNets 13-31% faster
        in it (docs/performance.md, figure 6). The fitted module itself is left as it was, mode included.
        """
        module = self.module_
        was_training = module.training
        fast = module
        big = n_images is None or n_images >= self.CHANNELS_LAST_COPY_MIN_IMAGES
        if big and isinstance(module, ImageClassifier) and not module.channels_last:
            fast = copy.deepcopy(module).use_channels_last()
        try:
            yield fast.eval()
        finally:
            module.train(was_training)

    def infer(self, x, **fit_params):
        if isinstance(x, torch.Tensor) and x.device.type == "cpu" and str(self.device).startswith("cuda"):
            x = x.to(self.device, non_blocking=True)  # overlaps with compute; batches come pinned
        with self.autocast():
            return super().infer(x, **fit_params).float()

    def embed_and_predict(self, X, need_proba: bool = True,
                          need_embeddings: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Penultimate embeddings (N, D) and class probabilities (N, C) from one backbone pass, in eval mode.

        What is not needed comes back as None and is never held: probabilities alone keep memory O(N·C).
        """
        self.check_is_fitted()
        dataset = self.get_dataset(X)
        n = len(dataset)
        # Written in place into arrays of the final size, not collected per batch and concatenated: that would
        # hold everything twice at the end, and thousands of small kept blocks between freed batch-sized ones
        # fragment the heap (docs/performance.md, figure 4, has what that cost at a million images).
        embeddings = probabilities = None
        start = 0
        with self.evaluation_module(n) as module, torch.inference_mode(), self.autocast():
            for Xi, _ in self.get_iterator(dataset, training=False):
                if isinstance(Xi, dict):  # a frozen backbone's cached features
                    features = Xi["features"].to(self.device)
                else:
                    features = module.features(Xi.to(self.device, non_blocking=True))
                stop = start + len(features)
                if need_embeddings:
                    pooled = module.pool(features).float().cpu().numpy()
                    if embeddings is None:
                        embeddings = np.empty((n, pooled.shape[1]), dtype=np.float32)
                    embeddings[start:stop] = pooled
                if need_proba:
                    proba = torch.softmax(module.head(features).float(), dim=1).cpu().numpy()
                    if probabilities is None:
                        probabilities = np.empty((n, proba.shape[1]), dtype=np.float32)
                    probabilities[start:stop] = proba
                start = stop
        if n == 0:  # no batch to learn the widths from
            width = getattr(module, "embedding_dim", 0)
            embeddings = np.empty((0, width), dtype=np.float32) if need_embeddings else None
            probabilities = np.empty((0, getattr(module, "num_classes", 0)), dtype=np.float32) if need_proba else None
        return embeddings, probabilities

    def embed(self, X) -> np.ndarray:
        """Penultimate-layer embeddings of ``X``, shape (N, embedding_dim)."""
        return self.embed_and_predict(X, need_proba=False)[0]


def make_estimator(model: str = "resnet18", *, in_channels: int, num_classes: int,
                   dropout: float | None = None, image_size: int | None = None, weights: str | None = None,
                   lr: float = 1e-3, batch_size: int = 32, epochs: int = 10, weight_decay: float = 0.0,
                   optimizer: str = "adam", augment: bool = False, hflip: bool = False,
                   device: str = "auto", amp: bool = True, valid_data: tuple | None = None,
                   warm_start: bool = False, progress: bool = False, verbose: int = 0,
                   images=None, eval_batch_size: int = 256, backbone_file: str | None = None,
                   freeze_backbone: bool = False, semi: str | None = None, semi_weight: float = 1.0,
                   semi_threshold: float = 0.95, semi_ratio: int = 2,
                   features_from: str | None = None, augment_copies: int = 0,
                   augment_seed: int = 0, **net_params) -> ImageClassifierNet:
    """An unfitted skorch classifier for ``model`` (resnet18, resnet50, squeezenet1_1).

    ``valid_data=(X, y)`` is scored after every epoch (skorch's ``valid_loss``
    and ``valid_acc``); without it nothing is held out. With ``images`` (an
    array or memory map of (N, C, H, W) images), ``X`` may be 1-d id arrays into
    it everywhere (fit, predict, ``valid_data``): nothing is copied or loaded
    beyond the current batch. Prediction uses batches of ``eval_batch_size``. ``backbone_file`` (a cached
    ``--ssl`` backbone) is what every fit starts from; ``freeze_backbone`` trains the head only;
    ``features_from`` cuts the backbone after that part; ``augment_copies`` (frozen backbone) adds that many fixed
    augmented copies of each labeled image to every fit, drawn by ``augment_seed``; ``semi``
    trains on ``net.unlabeled`` too (``alplug.semi``). ``net_params`` go to skorch as they are (its ``prefix__name``
    routes ``optimizer__momentum`` to the optimizer, ``module__...`` to the module). ``warm_start=False``
    rebuilds the module on every ``fit``, so each active-learning round trains
    from scratch (or from the pretrained ``weights``).
    """
    # The settings' own declarations (config.setting) check them: a caller may not have gone through RunConfig.
    check_values({"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size,
                  "epochs": epochs, "dropout": dropout, "augment": augment, "augment_copies": augment_copies,
                  "freeze_backbone": freeze_backbone, "semi": semi, "semi_weight": semi_weight,
                  "semi_threshold": semi_threshold, "semi_ratio": semi_ratio})
    device = resolve_device(device)
    extra = {}
    if optimizer == "sgd":
        extra["optimizer__momentum"] = 0.9
    if augment:
        extra["iterator_train__collate_fn"] = AugmentCollate(augmentation(in_channels, hflip))
    if device.startswith("cuda"):
        extra["iterator_train__pin_memory"] = True
        extra["iterator_valid__pin_memory"] = True
    callbacks = [("head_statistics", FitHeadStatistics()), ("recalibrate_bn", RecalibrateBatchNorm())]
    if progress:
        callbacks.append(("progress", EpochProgress()))
    train_split = None
    if valid_data is not None:
        Xv, yv = valid_data
        valid = IndexedImages(images, Xv, yv) if images is not None and is_index_array(Xv) else Dataset(Xv, yv)
        train_split = predefined_split(valid)
    return ImageClassifierNet(
        ImageClassifier,
        module__arch=model, module__in_channels=in_channels, module__num_classes=num_classes,
        module__dropout=dropout, module__image_size=image_size, module__weights=weights,
        module__backbone_file=backbone_file, module__freeze_backbone=freeze_backbone,
        module__features_from=features_from,
        semi=semi, semi_weight=semi_weight, semi_threshold=semi_threshold, semi_ratio=semi_ratio, semi_hflip=hflip,
        augment_copies=augment_copies, augment_seed=augment_seed,
        criterion=nn.CrossEntropyLoss,  # the modules output logits
        optimizer=OPTIMIZERS[optimizer], lr=lr, optimizer__weight_decay=weight_decay,
        batch_size=batch_size, max_epochs=epochs, iterator_valid__batch_size=max(eval_batch_size, batch_size),
        iterator_train=train_loader, iterator_train__shuffle=True,
        train_split=train_split, classes=list(range(num_classes)),
        device=device, amp=amp, images=images, warm_start=warm_start, callbacks=callbacks, verbose=verbose,
        **{**extra, **net_params},
    )
