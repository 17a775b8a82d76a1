"""Self-supervised pretraining of a run's backbone on its unlabeled images (``--ssl``), cached by content.

lightly supplies what makes each method: its losses (NT-Xent, negative cosine), projection and prediction
heads, view transforms and momentum helpers. What lightly leaves to its users, and this module adds, is the
joining: which images (the pool and the initial set; never a validation or test image), the ~20-line training
loop lightly's own examples write out, and a content-addressed cache, so that every strategy of a study
that shares a seed's split reuses one pretraining, and a changed setting misses. A backbone whose ``front`` is
fixed (``scattering-conv``'s scattering transform) trains its ``trunk`` on the front's outputs of a few views of
each image, stored once: new views at every step would cost a front pass each.

The cached file holds the backbone's state dict under ``backbone.``, the layout of an alplug checkpoint, so
``--weights FILE`` reads it too. ``ImageClassifier(backbone_file=...)`` starts every round's model from it.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CachedBackboneError, MissingDependencyError, UsageError

# numpy, torch and lightly are imported where they are used: reading settings (alplug.config) reads METHODS here.
if TYPE_CHECKING:
    import numpy as np
# Part of every cache key: raise it when a change here changes what a pretraining produces (views, heads, loop),
# so that no run starts from a backbone the current code would not make.
RECIPE = 3


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that decides a pretraining's result, and so its cache key (with the images)."""

    method: str
    epochs: int
    model: str
    in_channels: int
    image_size: int | None
    weights: str | None
    hflip: bool
    seed: int
    batch_size: int = 128  # more steps beat bigger batches at 20 epochs on digits (docs/low-budget.md)
    lr: float = 1e-3
    # ``--features-from``: only the parts up to the last part the head reads are pretrained, so this names one
    # part: a head on several parts reads a backbone pretrained up to its last (the multi-layer linear probe).
    features_from: str | None = None

    def __post_init__(self):
        if self.features_from is not None and "," in self.features_from:
            raise ValueError(f"PretrainSettings.features_from names one part, got {self.features_from!r}; "
                             "settings_for() picks the last part the head reads")


def settings_for(config, channels: int) -> PretrainSettings:
    """The pretraining a run's settings ask for. A ``--weights`` file enters by its content, not its name."""
    from .models.contract import looks_like_a_path

    weights = config.weights
    if weights is not None and looks_like_a_path(weights) and Path(weights).expanduser().is_file():
        digest = hashlib.blake2b(Path(weights).expanduser().read_bytes(), digest_size=16).hexdigest()
        weights = f"file:{digest}"
    return PretrainSettings(method=config.ssl, epochs=config.ssl_epochs, model=config.model, in_channels=channels,
                            image_size=config.image_size, weights=weights, hflip=config.hflip, seed=config.seed,
                            features_from=last_part(config.model, config.features_from, channels,
                                                    config.image_size, config.weights))


def last_part(model: str, features_from: str | None, channels: int, image_size: int | None = None,
              weights: str | None = None) -> str | None:
    """The last of the parts ``--features-from`` names, in the backbone's order: pretraining up to it gives the
    weights of every head that reads it, so ``layer3`` and ``layer1,layer2,layer3`` share one pretraining."""
    if features_from is None or "," not in features_from:
        return features_from
    from .models import build_on_meta_device

    module = build_on_meta_device(model, in_channels=channels, image_size=image_size, weights=weights,
                                  features_from=features_from)
    return module.backbone.taps[-1]


def cache_dir() -> Path:
    """``$ALPLUG_CACHE_DIR``, else ``$XDG_CACHE_HOME/alplug``, else ``~/.cache/alplug``; backbones go in ``backbones/``."""
    root = os.environ.get("ALPLUG_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "alplug"


def images_fingerprint(images, ids: np.ndarray, chunk: int = 4096) -> str:
    """A hash of the images at ``ids`` (their bytes, dtype and shape), read a chunk at a time (lazy pools)."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    ids = np.asarray(ids, dtype=np.int64)
    h.update(repr((str(np.asarray(images[ids[:1]]).dtype), tuple(images.shape[1:]), len(ids))).encode())
    h.update(ids.tobytes())
    for start in range(0, len(ids), chunk):
        h.update(np.ascontiguousarray(images[ids[start:start + chunk]]).tobytes())
    return h.hexdigest()


def cache_key(settings: PretrainSettings, fingerprint: str) -> str:
    fields = asdict(settings)
    if fields["features_from"] is None:  # a whole backbone keeps the key it had before cuts were pretrained
        del fields["features_from"]
    text = json.dumps({"settings": fields, "images": fingerprint, "recipe": RECIPE}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class PretrainedBackbone:
    """A cached pretraining: its key, its file, and whether this call made it or found it."""

    key: str
    path: Path
    reused: bool

    def record(self) -> dict:
        """What a run directory records about the backbone it used."""
        return {"key": self.key, "path": str(self.path)}


def _lightly():
    try:
        import lightly  # noqa: F401
    except ImportError:
        raise MissingDependencyError("--ssl needs lightly: pip install 'alplug[ssl]'") from None


def view_transforms(method: str, channels: int, size: tuple[int, int], hflip: bool):
    """lightly's two-view transform for ``method``, on (C, H, W) image tensors, returning floats in [0, 1].

    Changed from lightly's ImageNet defaults because alplug's images can be small, grey or many-channel:
    crops keep at least 40% of the image (8 px digits lose their stroke at lightly's 8%), no blur, ±15°
    rotation like ``--augment``, horizontal flips only with ``--hflip`` (digits and letters change meaning),
    colour jitter without saturation or hue for grey images and none beyond three channels, and no
    normalisation (the model normalises). Views keep the input's dtype.
    """
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform

    colour = {"cj_prob": 0.8 if channels in (1, 3) else 0.0, "random_gray_scale": 0.2 if channels == 3 else 0.0}
    if channels != 3:
        colour.update(cj_sat=0.0, cj_hue=0.0)
    common = dict(input_size=size, min_scale=0.4, hf_prob=0.5 if hflip else 0.0, rr_prob=0.5, rr_degrees=15,
                  gaussian_blur=0.0, normalize=None, **colour)
    if method == "simclr":
        transform = SimCLRTransform(**common)
    else:
        transform = BYOLTransform(view_1_transform=BYOLView1Transform(**common),
                                  view_2_transform=BYOLView2Transform(**{**common, "solarization_prob": 0.0}))
    # lightly ends each view with ToTensor, for PIL images, and its blur goes through PIL even at probability 0;
    # ours are tensors already, and PIL refuses more than four channels. Without those two steps the views
    # keep the input's dtype (uint8 images are scaled by the model, as in training).
    def kept(step) -> bool:
        name = type(step).__name__
        return name != "ToTensor" and not (name == "GaussianBlur" and getattr(step, "prob", 1.0) == 0.0)

    for view in transform.transforms:
        view.transform.transforms = [t for t in view.transform.transforms if kept(t)]
    return transform


class _SimCLR:
    """SimCLR: projection head and NT-Xent loss over the two views (lightly's modules)."""

    def __init__(self, module, epochs: int, steps: int):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        d = module.embedding_dim
        self.head = SimCLRProjectionHead(d, d, 128)
        self.criterion = NTXentLoss(temperature=0.5)
        self.trainable = [self.head]

    def loss(self, module, x0, x1, step: int):
        return self.criterion(self.head(module.embed(x0)), self.head(module.embed(x1)))


class _BYOL:
    """BYOL: an online backbone with projection and prediction heads chasing a momentum copy (lightly's)."""

    def __init__(self, module, epochs: int, steps: int):
        import copy

        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        d = module.embedding_dim
        self.projection, self.prediction = BYOLProjectionHead(d, 1024, 256), BYOLPredictionHead(256, 1024, 256)
        self.target_backbone = copy.deepcopy(module.backbone)
        self.target_projection = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.target_backbone)
        deactivate_requires_grad(self.target_projection)
        self.criterion = NegativeCosineSimilarity()
        self.trainable = [self.projection, self.prediction]
        self.total_steps = max(1, epochs * steps)

    def loss(self, module, x0, x1, step: int):
        import torch
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        momentum = cosine_schedule(step, self.total_steps, 0.99, 1.0)
        update_momentum(module.backbone, self.target_backbone, m=momentum)
        update_momentum(self.projection, self.target_projection, m=momentum)

        def online(x):
            return self.prediction(self.projection(module.embed(x)))

        with torch.no_grad():
            def target(x):
                return self.target_projection(module.pool(self.target_backbone(module.prepare(x)))).detach()
            t0, t1 = target(x0), target(x1)
        return 0.5 * (self.criterion(online(x0), t1) + self.criterion(online(x1), t0))


# Views a backbone with a fixed front gets of each image (besides the image itself): pretraining draws its pairs
# from them. More views cost front passes and memory (float16), fewer repeat pairs sooner.
FRONT_VIEWS = 8


def _fixed_front(backbone):
    """The backbone's ``front`` when it has one without parameters (the scattering transform of
    ``scattering-conv``) followed by a ``trunk``; None otherwise."""
    front = getattr(backbone, "front", None)
    if front is None or getattr(backbone, "trunk", None) is None or any(True for _ in front.parameters()):
        return None
    return front


def _front_bank(module, views, images, ids: np.ndarray, progress: bool):
    """(len(ids), 1 + FRONT_VIEWS, ...) float16: the fixed front's output for each image and for FRONT_VIEWS of
    its views, drawn from torch's generator (seeded by the caller), an image at a time in ``ids`` order.

    Why: lightly's loop, like ours above, draws new views at every step, which means a front pass per view per
    epoch; a fixed front's output of a fixed set of views is computed once and the trunk trains on it, so
    pretraining costs a few front passes of the pool plus the trunk's epochs (docs/low-budget.md)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from .data.lazy import as_model_input

    single = views.transforms[0]  # one view of lightly's two-view transform
    front = _fixed_front(module.backbone)
    bank = None
    chunk = 64
    with torch.inference_mode():
        for start in tqdm(range(0, len(ids), chunk), desc="  views", unit="batch", leave=False,
                          disable=None if progress else True, file=sys.stderr):
            block = torch.as_tensor(as_model_input(images[ids[start:start + chunk]]))
            stack = torch.stack([torch.stack([img] + [single(img) for _ in range(FRONT_VIEWS)]) for img in block])
            flat = stack.flatten(0, 1)
            out = front(module.prepare(flat.to(module.mean.device))).float().cpu()
            out = out.reshape(len(block), 1 + FRONT_VIEWS, *out.shape[1:])
            if bank is None:
                bank = np.empty((len(ids),) + tuple(out.shape[1:]), dtype=np.float16)
            bank[start:start + len(block)] = out.numpy().astype(np.float16)
    return bank


class _TrunkOnFront:
    """What a method trains when the front is fixed: the trunk, on the front's stored outputs (a batch of them is
    already prepared and passed through the front)."""

    def __init__(self, module):
        self.backbone = module.backbone.trunk
        self.embedding_dim = module.embedding_dim
        self.pool = module.pool

    @staticmethod
    def prepare(x):
        return x

    def embed(self, x):
        return self.pool(self.backbone(x))


_METHOD_CLASSES = {"simclr": _SimCLR, "byol": _BYOL}  # --ssl NAME -> its method: adding one is a class and an entry
METHODS = tuple(_METHOD_CLASSES)


def pretrain(settings: PretrainSettings, images, ids: np.ndarray, *, device: str = "cpu",
             progress: bool = False, weights: str | None = None):
    """Train the backbone of ``settings.model`` on ``images[ids]`` with ``settings.method``; returns the module.

    Seeded by ``settings.seed``: the same settings and images give the same weights on the same device.
    Reads one batch of images at a time (``images`` may be a memory map). ``weights``: the ``--weights`` text
    the backbone starts from, when ``settings.weights`` holds a file's digest instead.
    """
    import numpy as np

    _lightly()
    import torch

    from .data.lazy import as_model_input
    from .models import ImageClassifier

    if settings.method not in _METHOD_CLASSES:
        from .errors import UnknownNameError

        raise UnknownNameError("--ssl method", settings.method, METHODS)
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) < 2:
        raise UsageError(f"--ssl needs at least 2 unlabeled images, the pool has {len(ids)}")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    module = ImageClassifier(settings.model, settings.in_channels, 2, image_size=settings.image_size,
                             weights=weights if weights is not None else settings.weights,
                             features_from=settings.features_from).to(device)
    size = module.prepared_size(*images.shape[2:4])  # the views are cropped to what the backbone sees
    views = view_transforms(settings.method, settings.in_channels, size, settings.hflip)
    batch_size = min(settings.batch_size, len(ids))
    steps = len(ids) // batch_size  # the last partial batch is dropped: a batch of one breaks BatchNorm
    bank = None
    if _fixed_front(module.backbone) is not None:
        bank = _front_bank(module, views, images, ids, progress)
        trained = _TrunkOnFront(module)
    else:
        trained = module
    method = _METHOD_CLASSES[settings.method](trained, settings.epochs, steps)
    for part in method.trainable:
        part.to(device)
    params = list(trained.backbone.parameters()) + [p for part in method.trainable for p in part.parameters()]
    optimizer = torch.optim.Adam(params, lr=settings.lr, weight_decay=1e-6)
    module.train()
    for part in method.trainable:
        part.train()
    from tqdm import tqdm

    bar = tqdm(total=settings.epochs, desc="  pretraining", unit="epoch", leave=False,
               disable=None if progress else True, file=sys.stderr)  # None: on a terminal only
    step = 0
    for epoch in range(settings.epochs):
        order = rng.permutation(ids)
        total = 0.0
        for b in range(steps):
            batch_ids = np.sort(order[b * batch_size:(b + 1) * batch_size])
            if bank is None:
                block = torch.as_tensor(as_model_input(images[batch_ids]))
                pairs = [views(img) for img in block]
                x0 = torch.stack([a for a, _ in pairs]).to(device)
                x1 = torch.stack([b_ for _, b_ in pairs]).to(device)
            else:  # two different stored views of each image
                rows = np.searchsorted(ids, batch_ids)  # the bank is in ``ids``' (sorted) order
                first = rng.integers(0, bank.shape[1], len(rows))
                second = (first + rng.integers(1, bank.shape[1], len(rows))) % bank.shape[1]
                x0 = torch.from_numpy(bank[rows, first]).float().to(device)
                x1 = torch.from_numpy(bank[rows, second]).float().to(device)
            loss = method.loss(trained, x0, x1, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            step += 1
        bar.set_postfix(loss=f"{total / steps:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    return module.eval()


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (a study's workers pretraining the same key wait for the first). The lock file
    is opened without following a link and without blocking, and must be a regular file: a link cannot make us
    create its target, and a FIFO put in its place cannot hang the run. Ours, not filelock's: filelock opens the
    lock file as it finds it, following a link and waiting on a FIFO."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the atomic rename still keeps the cache whole
        yield
        return
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:  # ELOOP: a link; ENXIO: a FIFO nobody reads
        raise CachedBackboneError(f"cannot use the backbone cache's lock file {path} ({exc.strerror}); remove it "
                                  "and run again") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CachedBackboneError(f"the backbone cache's lock file {path} is not a regular file; remove it "
                                      "and run again")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def file_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _check_cached(path: Path, sidecar: Path, echo) -> None:
    """A cached backbone must be a regular file with the digest recorded when it was written. A file cached by an
    earlier alplug, which recorded none, has its digest recorded now (and is checked from then on)."""
    from .models.contract import MAX_SIDECAR_BYTES, recorded_digest
    from .userfiles import UserFileError, atomic_write, read_user_file

    try:
        data = read_user_file(path, 8 * 2**30, f"cached backbone {path}")
    except UserFileError as exc:
        raise CachedBackboneError(f"{exc}; remove it to pretrain again") from None
    digest, recorded = file_digest(data), recorded_digest(sidecar)
    if recorded is None:
        try:
            values = json.loads(read_user_file(sidecar, MAX_SIDECAR_BYTES, str(sidecar)))
        except (UserFileError, ValueError, RecursionError):
            values = {}
        atomic_write(sidecar, json.dumps({**(values if isinstance(values, dict) else {}), "digest": digest},
                                         indent=2) + "\n")
        echo(f"self-supervised backbone: {path.name} was cached without a digest; its digest is recorded now")
    elif recorded != digest:
        raise CachedBackboneError(f"cached backbone {path} is not the file alplug wrote there (its digest differs "
                                  "from the one recorded beside it); remove it to pretrain again")


def pretrained_backbone(settings: PretrainSettings, images, ids: np.ndarray, *, device: str = "cpu",
                        echo=print, progress: bool = False, directory: Path | None = None,
                        weights: str | None = None) -> PretrainedBackbone:
    """The cached backbone for these settings and images, pretraining it first on a cache miss."""
    import numpy as np

    from .userfiles import atomic_write, torch_bytes

    directory = Path(directory) if directory is not None else cache_dir() / "backbones"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the backbone cache {directory} ({exc.strerror}); "
                         "set ALPLUG_CACHE_DIR to a writable folder") from None
    ids = np.sort(np.asarray(ids, dtype=np.int64))  # the same images in another order are the same pretraining
    key = cache_key(settings, images_fingerprint(images, ids))
    path = directory / f"{settings.method}-{key}.pt"
    sidecar = path.with_suffix(".json")
    with _locked(directory / f".{key}.lock"):
        if os.path.lexists(path):
            _check_cached(path, sidecar, echo)
            echo(f"self-supervised backbone: reusing {settings.method} pretraining {key} from {directory}")
            return PretrainedBackbone(key, path, reused=True)
        echo(f"self-supervised backbone: pretraining {settings.model} with {settings.method} on {len(ids):,} "
             f"unlabeled images for {settings.epochs} epochs (cached as {key})")
        started = time.perf_counter()
        module = pretrain(settings, images, ids, device=device, progress=progress, weights=weights)
        data = torch_bytes({f"backbone.{k}": v.detach().cpu() for k, v in module.backbone.state_dict().items()})
        # The sidecar with the digest first: a kill between the two leaves no backbone without its digest.
        atomic_write(sidecar, json.dumps({"settings": asdict(settings), "images": len(ids),
                                          "seconds": round(time.perf_counter() - started, 1),
                                          "digest": file_digest(data)}, indent=2) + "\n")
        atomic_write(path, data, exclusive=True)
        echo(f"self-supervised backbone: pretrained in {time.perf_counter() - started:.0f}s")
        return PretrainedBackbone(key, path, reused=False)
