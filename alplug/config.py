"""The settings of one active-learning run, read from the CLI and TOML files."""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import UsageError
from .presets import RECIPES


@dataclass
class RunConfig:
    """Everything that decides what a run does. The defaults are the README's quick digits run."""

    recipe: str | None = None        # a named preset (alplug.presets) that fills the settings not given
    query: str = "margin"
    query_options: dict = field(default_factory=dict)
    model: str = "resnet18"
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    n_start: int = 5
    initial: str | None = None       # a strategy that picks the initial set without labels (instead of n_start)
    n_initial: int | None = None
    per_round: int = 50
    labeling_rate: str = "fixed"
    goal: float | None = None
    max_per_round: int | None = None
    gain: float | None = None
    epsilon: float | None = None
    rounds: int = 5
    epochs: int = 10
    patience: int | None = None
    stop: str | None = None          # stopping rules (alplug.stopping), e.g. "kappa=0.99,uncertainty"
    budget: int | None = None
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    optimizer: str = "adam"
    augment: bool = False
    hflip: bool = False
    augment_copies: int = 0       # fixed augmented copies of each labeled image (frozen backbone)
    weights: str | None = None
    dropout: float | None = None
    freeze_backbone: bool = False
    features_from: str | None = None
    ssl: str | None = None
    ssl_epochs: int = 20
    semi: str | None = None
    semi_weight: float = 1.0
    semi_threshold: float = 0.95
    semi_ratio: int = 2
    warm_start: bool = False
    device: str = "auto"
    seed: int = 0
    test_size: float = 0.2
    val1_size: float = 0.1
    val2_size: float = 0.1

    def combination_problems(self) -> list[str]:
        """Settings that do not work together (each may be fine alone)."""
        problems = []
        if self.augment_copies and (not self.freeze_backbone or self.augment):
            problems.append("--augment-copies trains on fixed copies of a frozen backbone's features: use it with "
                            "--freeze-backbone and without --augment (which makes new copies at every step)")
        if self.semi == "spread" and (not self.freeze_backbone or self.augment):
            problems.append("--semi spread spreads the labels over a frozen backbone's fixed features: "
                            "use it with --freeze-backbone and without --augment")
        return problems

    def validate(self) -> "RunConfig":
        """Checks that need no data; every problem is reported at once."""
        problems = type_problems(self.to_dict(), prefix="--")
        if problems:
            raise UsageError("; ".join(problems))
        for name, low in (("n_start", 1), ("per_round", 1), ("rounds", 0), ("epochs", 1), ("batch_size", 2),
                          ("seed", 0)):
            if getattr(self, name) < low:
                problems.append(f"--{name.replace('_', '-')} = {getattr(self, name)}, must be >= {low}")
        if self.recipe is not None and self.recipe not in RECIPE_NAMES:
            problems.append(f"--recipe = {self.recipe!r}, must be one of {', '.join(RECIPE_NAMES)}")
        if self.initial is not None and not self.initial.strip():
            problems.append("--initial is empty")
        # A labeling project's batches are sized by `project next -n`: it takes --initial alone.
        if self.initial is not None and self.n_initial is None and self.dataset != "project":
            problems.append("--initial needs --n-initial N: how many images it picks for the first labels")
        if self.n_initial is not None and self.initial is None:
            problems.append("--n-initial needs --initial STRATEGY (random, typiclust, probcover, ...)")
        if self.n_initial is not None and self.n_initial < 1:
            problems.append(f"--n-initial = {self.n_initial}, must be >= 1")
        if self.stop is not None:
            from .stopping import parse_stop

            try:
                parse_stop(self.stop)
            except UsageError as exc:
                problems.append(str(exc))
        if self.patience is not None and self.patience < 1:
            problems.append(f"--patience = {self.patience}, must be >= 1")
        if self.budget is not None and self.budget < 1:
            problems.append(f"--budget = {self.budget}, must be >= 1")
        if not self.lr > 0:
            problems.append(f"--lr = {self.lr}, must be > 0")
        if not self.weight_decay >= 0:
            problems.append(f"--weight-decay = {self.weight_decay}, must be >= 0")
        if self.ssl is not None and self.ssl not in SSL_METHODS:
            problems.append(f"--ssl = {self.ssl!r}, must be one of {', '.join(SSL_METHODS)}")
        if self.ssl_epochs < 1:
            problems.append(f"--ssl-epochs = {self.ssl_epochs}, must be >= 1")
        if self.semi is not None and self.semi not in SEMI_METHODS:
            problems.append(f"--semi = {self.semi!r}, must be one of {', '.join(SEMI_METHODS)}")
        if self.recipe is None:  # a recipe may set what these need: checked once it is resolved (check_model_fits)
            problems += self.combination_problems()
        if not self.semi_weight >= 0:
            problems.append(f"--semi-weight = {self.semi_weight}, must be >= 0")
        if not 0 <= self.semi_threshold <= 1:
            problems.append(f"--semi-threshold = {self.semi_threshold}, must be a probability in [0, 1]")
        if not 0 <= self.augment_copies <= MAX_AUGMENT_COPIES:
            problems.append(f"--augment-copies = {self.augment_copies}, must be in 0..{MAX_AUGMENT_COPIES}")
        if self.semi_ratio < 1:
            problems.append(f"--semi-ratio = {self.semi_ratio}, must be >= 1")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            problems.append(f"--dropout = {self.dropout}, must be in [0, 1)")
        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            problems.append(f"--image-size = {self.image_size}, must be in 1..{MAX_IMAGE_SIZE}")
        for name in ("test_size", "val1_size", "val2_size"):
            value = getattr(self, name)
            if not (0 < value < 1 or (value >= 1 and float(value).is_integer())):
                problems.append(f"--{name.replace('_', '-')} = {value}, must be a fraction in (0, 1) "
                                "or a whole number of images")
        for name in ("query", "model", "dataset", "device", "optimizer"):
            if not getattr(self, name).strip():
                problems.append(f"--{name.replace('_', '-')} is empty")
        if self.labeling_rate not in ("fixed", "adaptive"):
            problems.append(f"--labeling-rate = {self.labeling_rate!r}, must be 'fixed' or 'adaptive'")
        elif self.labeling_rate == "fixed":
            stray = [f"--{n.replace('_', '-')}" for n in ("max_per_round", "gain", "epsilon")
                     if getattr(self, n) is not None]
            if stray:
                problems.append(f"{', '.join(stray)} only apply with --labeling-rate adaptive")
        if self.goal is not None and not 0 < self.goal <= 1:
            problems.append(f"--goal = {self.goal}, must be an accuracy in (0, 1]")
        if self.max_per_round is not None and self.max_per_round < 1:
            problems.append(f"--max-per-round = {self.max_per_round}, must be >= 1")
        if self.gain is not None and not 0 < self.gain <= 1:
            problems.append(f"--gain = {self.gain}, must be in (0, 1]")
        if self.epsilon is not None and not self.epsilon > 0:
            problems.append(f"--epsilon = {self.epsilon}, must be > 0")
        if problems:
            raise UsageError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        import tomli_w

        # TOML has no null: unset options are left out and read back as defaults.
        return tomli_w.dumps({k: v for k, v in self.to_dict().items() if v is not None and v != {}})

    @classmethod
    def from_dict(cls, values: dict, source: str = "settings") -> "RunConfig":
        return cls(**check_settings(values, source))

    @classmethod
    def from_toml(cls, path: str | Path) -> "RunConfig":
        return cls(**read_settings(path))

    def differences(self, other: "RunConfig", only: set[str] | None = None) -> list[str]:
        """``name: ours != theirs`` for each setting that differs (restricted to ``only``)."""
        out = []
        for f in fields(self):
            if only is not None and f.name not in only:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out.append(f"{f.name}: {a!r} != {b!r}")
        return out


MAX_IMAGE_SIZE = 4096
MAX_AUGMENT_COPIES = 100  # each copy costs a backbone pass and its cached features
# Kept here (not imported from alplug.ssl / alplug.semi) so that reading settings imports neither torch nor lightly;
# tests/test_low_budget.py checks that the lists agree.
SSL_METHODS = ("simclr", "byol")
SEMI_METHODS = ("entropy", "pseudo", "fixmatch", "spread")
RECIPE_NAMES = tuple(RECIPES)

# What each setting may hold, by the annotation of its RunConfig field.
_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
          "dict": "a table of strategy options"}


def _kind_of(annotation: str) -> tuple[str, bool]:
    """('int', optional?) from a field annotation such as 'int | None'."""
    parts = [a.strip() for a in str(annotation).split("|")]
    return next(a for a in parts if a != "None"), "None" in parts


def _fits(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is an int to Python, never a number to a user
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str) and "\0" not in value
    if kind == "dict":
        return isinstance(value, dict) and all(isinstance(k, str) and _option_value(v) for k, v in value.items())
    return False


def _option_value(value) -> bool:
    if isinstance(value, list):
        return all(_option_value(v) and not isinstance(v, list) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def type_problems(values: dict, prefix: str = "") -> list[str]:
    """One message per setting in ``values`` whose value is not of its field's kind (``None`` only where
    the field is optional)."""
    kinds = {f.name: _kind_of(f.type) for f in fields(RunConfig)}
    problems = []
    for name, value in values.items():
        if name not in kinds:
            continue
        kind, optional = kinds[name]
        if (value is None and optional) or _fits(kind, value):
            continue
        shown = f"{prefix}{name.replace('_', '-')}" if prefix else name
        problems.append(f"{shown} = {value!r}, must be {_KINDS[kind]}" +
                        (" (values: strings, numbers, true/false, or lists of them)" if kind == "dict" else ""))
    return problems


def check_settings(values: dict, source: str = "settings") -> dict:
    """``values`` with keys normalised to field names and each value's type checked; unknown keys are an
    error naming close matches."""
    import difflib

    names = {f.name for f in fields(RunConfig)}
    cleaned = {key.replace("-", "_"): value for key, value in values.items()}
    unknown = [key for key in cleaned if key not in names]
    if unknown:
        hints = []
        for key in unknown:
            match = difflib.get_close_matches(key, names, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {match[0]!r}?)" if match else ""))
        raise UsageError(f"unknown setting(s) in {source}: {', '.join(hints)}")
    problems = type_problems(cleaned)
    if problems:
        raise UsageError(f"{source}: {'; '.join(problems)}")
    return cleaned


MAX_TOML_BYTES = 1024 * 1024


def read_settings(path: str | Path) -> dict:
    """The settings a TOML file sets (and only those)."""
    path = Path(path)
    from .userfiles import read_user_text

    text = read_user_text(path, MAX_TOML_BYTES, f"config file {path}", too_large="a settings file is a few lines",
                          hint="TOML files are UTF-8")
    try:
        values = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    return check_settings(values, source=str(path))
