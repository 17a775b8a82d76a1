"""The settings of one active-learning run, read from the CLI and TOML files."""
from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import UsageError
from .presets import RECIPES
from .semi import UNLABELED_METHODS
from .ssl import METHODS as SSL_METHODS

# The --ssl and --semi choices are their modules' registries (ssl.py and semi.py import neither torch nor lightly at
# their top). The optimizers' names are kept here, apart from alplug.estimators (which imports torch);
# tests/test_low_budget.py holds the two equal.


def semi_methods() -> tuple[str, ...]:
    """The ``--semi`` methods, read from ``alplug.semi.UNLABELED_METHODS`` when asked (an entry added there is a
    choice at once)."""
    return tuple(UNLABELED_METHODS)


SEMI_METHODS = semi_methods()  # as the command line's choices were made
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
RECIPE_NAMES = (*RECIPES, "none")  # none: no recipe (what a labeling project, which takes one by default, can say)
LABELING_RATES = ("fixed", "adaptive")
MAX_IMAGE_SIZE = 4096
MAX_AUGMENT_COPIES = 100  # each copy costs a backbone pass and its cached features


def setting(default=None, *, help: str | None, valid: tuple | None = None, choices: tuple | None = None,
            nonempty: bool = False, to: str | None = None, key: str | None = None, project: bool = False,
            cli: dict | None = None, factory=None):
    """A run setting, declared once: its default and help, what values it takes (``valid``: a test and what it
    says when it fails; ``choices``, a tuple or a function reading a registry; ``nonempty`` text), which code it is
    handed to (``to="estimator"``: a keyword of ``estimators.make_estimator``, passed by
    ``round_steps.estimator_for``, under the name ``key`` if given: a skorch parameter such as
    ``optimizer__momentum`` reaches the optimizer with no other code), whether labeling projects take it, and how
    its click option differs from the plain ``--NAME`` of its type (``cli``: extra flags, metavar, a directory).
    From this the CLI options, the TOML check, ``validate()`` and docs/cli.md are made."""
    metadata = {"help": help, "valid": valid, "choices": choices, "nonempty": nonempty, "to": to, "key": key,
                "project": project, "cli": cli or {}}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def at_least(low):
    return (lambda v: v >= low), f"must be >= {low}"


SPLIT_SIZE = ((lambda v: 0 < v < 1 or (v >= 1 and float(v).is_integer())),
              "must be a fraction in (0, 1) or a whole number of images")


@dataclass
class RunConfig:
    """Everything that decides what a run does. The defaults are the README's quick digits run."""

    recipe: str | None = setting(
        help="A named training recipe: sets the settings you do not give, says what it chose and why (`alplug "
             "recipes` lists them; few-labels: tens to a few hundred labels). [default: none; labeling projects: "
             "few-labels]",
        choices=RECIPE_NAMES, project=True)
    query: str = setting(
        "margin", help="Query strategy name (see `alplug strategies`).", nonempty=True, project=True,
        cli={"flags": ["-q"]})
    query_options: dict = setting(
        factory=dict, project=True,
        help="Strategy option, repeatable (e.g. T=30; for FIRST+SECOND: prefilter=4, FIRST.KEY=VALUE).",
        cli={"name": "--query-opt", "multiple": True, "metavar": "KEY=VALUE"})
    model: str = setting(
        "resnet18", nonempty=True, to="estimator", project=True, cli={"flags": ["-m"]},
        help="A model from `alplug models`: resnet18, resnet50, squeezenet1_1, or a family's FAMILY:NAME "
             "(timm:resnet10t with alplug[timm]).")
    dataset: str = setting(
        "digits", nonempty=True, cli={"flags": ["-d"]},
        help="A data source from `alplug datasets`: digits, mnist, fashion-mnist, emnist, cifar10, svhn, "
             "folder:PATH, npz:PATH, or a plugin's.")
    data_dir: str | None = setting(
        help="Where torchvision data sets are read from and downloaded to [default: $ALPLUG_DATA or "
             "~/.cache/alplug/data].", cli={"directory": True})
    image_size: int | None = setting(
        valid=((lambda v: 1 <= v <= MAX_IMAGE_SIZE), f"must be in 1..{MAX_IMAGE_SIZE}"), project=True,
        help="Side length the model sees (and folder images are made). [default: inputs under 32 px are upsampled "
             "to 32; folders: 64]")
    n_start: int = setting(
        5, valid=at_least(1),
        help="Initial labeled images per class, drawn at random (this uses the labels to draw them; see --initial).")
    initial: str | None = setting(
        project=True,
        help="Pick the initial labeled set with a strategy that needs no labels (random, typiclust, probcover, "
             "maxherding) instead of --n-start per class. [default: off]")
    n_initial: int | None = setting(valid=at_least(1), help="With --initial: how many images it picks.")
    per_round: int = setting(50, valid=at_least(1), project=True, help="Images queried and labeled per round.")
    labeling_rate: str = setting(
        "fixed", choices=LABELING_RATES,
        help="adaptive: label fewer images per round while val-2 accuracy climbs fast, more when it stalls "
             "(see docs/loop.md).")
    goal: float | None = setting(
        valid=((lambda v: 0 < v <= 1), "must be an accuracy in (0, 1]"),
        help="Stop when val-2 accuracy reaches this; also the goal of the report's label-cost table. "
             "[default: none]")
    max_per_round: int | None = setting(
        valid=at_least(1), help="Adaptive rate: most images per round (R). [default: 4 x --per-round]")
    gain: float | None = setting(
        valid=((lambda v: 0 < v <= 1), "must be in (0, 1]"),
        help="Adaptive rate: accuracy gain a round aims for (g). [default: 0.05]")
    epsilon: float | None = setting(
        valid=((lambda v: v > 0), "must be > 0"),
        help="Adaptive rate: smallest per-round gain assumed (ε). [default: 0.005]")
    rounds: int = setting(5, valid=at_least(0), help="Query rounds after round 0.")
    epochs: int = setting(10, valid=at_least(1), to="estimator", project=True, help="Training epochs per round.")
    patience: int | None = setting(
        valid=at_least(1), help="Stop after this many rounds without val-2 improvement. [default: off]")
    stop: str | None = setting(  # checked by alplug.stopping.parse_stop in validate()
        help="Stopping rules, any of kappa[=0.99] (predictions stabilised), uncertainty[=0.05] (mean least "
             "confidence on unlabeled images), patience[=3] (val-2), comma-separated; the first that fires stops "
             "the run. [default: off]")
    budget: int | None = setting(
        valid=at_least(1), help="Stop when this many images are labeled (initial set included). [default: none]")
    lr: float = setting(1e-3, valid=((lambda v: v > 0), "must be > 0"), to="estimator", project=True,
                        help="Learning rate.")
    batch_size: int = setting(32, valid=((lambda v: v >= 2), "must be >= 2 (BatchNorm needs two samples)"),
                              to="estimator", project=True, help=None)
    weight_decay: float = setting(0.0, valid=at_least(0), to="estimator", project=True, help="L2 penalty.")
    optimizer: str = setting("adam", choices=OPTIMIZER_NAMES, to="estimator", project=True, help=None)
    augment: bool = setting(False, to="estimator", project=True,
                            help="Rotation ±15°, contrast ±10%, hue ±10% (colour) on the training set.")
    hflip: bool = setting(False, to="estimator", project=True,
                          help="Add horizontal flips to --augment (off: flips change digits' meaning).")
    augment_copies: int = setting(
        0, valid=((lambda v: 0 <= v <= MAX_AUGMENT_COPIES), f"must be in 0..{MAX_AUGMENT_COPIES}"),
        to="estimator", project=True,
        help="With --freeze-backbone: each labeled image also trains the head as N copies shifted by a few pixels "
             "at random, made once and cached with the features.")
    weights: str | None = setting(
        to="estimator", project=True,
        help="Pretrained weights: a state-dict file, or a name the model knows (torchvision's DEFAULT, "
             "IMAGENET1K_V1; timm's pretrained tags); `alplug models` says which.")
    dropout: float | None = setting(
        valid=((lambda v: 0 <= v < 1), "must be in [0, 1)"), to="estimator", project=True,
        help="Dropout before the classifier (needed by MC-dropout strategies on ResNet). [default: the model's "
             "own: ResNet none, SqueezeNet 0.5]")
    freeze_backbone: bool = setting(
        False, to="estimator", project=True,
        help="Train the classifier head only (transfer learning from --weights or --ssl); each image's features "
             "are computed once per run.")
    features_from: str | None = setting(
        to="estimator", project=True, cli={"metavar": "PART[,PART]"},
        help="The head reads the pooled output of this part of the backbone (layer3 of a ResNet), or of several "
             "side by side (layer1,layer2,layer3); the parts after the last are dropped (--ssl pretrains only the "
             "parts kept). [default: the whole backbone]")
    ssl: str | None = setting(
        choices=SSL_METHODS, project=True,
        help="Self-supervised pretraining of the backbone on the run's unlabeled images before round 0 (needs "
             "alplug[ssl]); cached and reused by runs on the same images. [default: off]")
    ssl_epochs: int = setting(20, valid=at_least(1), project=True, help="Epochs of --ssl pretraining.")
    semi: str | None = setting(
        choices=semi_methods, to="estimator", project=True,
        help="Semi-supervised training on the unlabeled pool alongside the labels (docs/low-budget.md). "
             "[default: off]")
    semi_weight: float = setting(1.0, valid=at_least(0), to="estimator", project=True,
                                 help="Weight of the unlabeled loss.")
    semi_threshold: float = setting(
        0.95, valid=((lambda v: 0 <= v <= 1), "must be a probability in [0, 1]"), to="estimator", project=True,
        help="pseudo, fixmatch: confidence a prediction needs to become a target.")
    semi_ratio: int = setting(
        2, valid=at_least(1), to="estimator", project=True,
        help="Unlabeled images per labeled image in each step; an epoch is one pass over the pool.")
    warm_start: bool = setting(
        False, to="estimator",
        help="Continue training the previous round's model instead of retraining from scratch.")
    device: str = setting("auto", nonempty=True, to="estimator", project=True, help="auto, cpu, cuda or cuda:N.")
    seed: int = setting(0, valid=at_least(0), project=True, help=None)
    test_size: float = setting(
        0.2, valid=SPLIT_SIZE,
        help="Held-out test fraction (or count) when the data set has no test set of its own.")
    val1_size: float = setting(
        0.1, valid=SPLIT_SIZE,
        help="Validation set 1 (watches training, every epoch): fraction or count.")
    val2_size: float = setting(
        0.1, valid=SPLIT_SIZE,
        help="Validation set 2 (scores every round): fraction or count.")

    def __post_init__(self):
        if self.recipe == "none":  # said to a labeling project, whose default is a recipe: no recipe at all
            self.recipe = None

    def settings_for(self, consumer: str) -> dict:
        """The settings declared ``to=consumer``, by name (or declared key): what ``round_steps.estimator_for`` hands
        ``make_estimator``."""
        return {f.metadata.get("key") or f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("to") == consumer}

    def combination_problems(self, flag=None) -> list[str]:
        """Settings that do not work together (each may be fine alone); ``flag`` names a setting in the messages
        (default: its option, ``--name``)."""
        flag = flag or option_flag
        problems = []
        if self.augment_copies and (not self.freeze_backbone or self.augment):
            problems.append(f"{flag('augment_copies')} trains on fixed copies of a frozen backbone's features: use "
                            f"it with {flag('freeze_backbone')} and without {flag('augment')} (which makes new "
                            "copies at every step)")
        method = UNLABELED_METHODS.get(self.semi)
        if method is not None and method.targets is not None and (not self.freeze_backbone or self.augment):
            problems.append(f"{flag('semi')} {self.semi} {method.needs}: use it with {flag('freeze_backbone')} "
                            f"and without {flag('augment')}")
        return problems

    def validate(self) -> "RunConfig":
        """Checks that need no data; every problem is reported at once."""
        problems = type_problems(self.to_dict(), prefix="--", config_class=type(self))
        if problems:
            raise UsageError("; ".join(problems))
        problems = value_problems(self)
        if self.initial is not None and not self.initial.strip():
            problems.append("--initial is empty")
        # A labeling project's batches are sized by `project next -n`: it takes --initial alone.
        if self.initial is not None and self.n_initial is None and self.dataset != "project":
            problems.append("--initial needs --n-initial N: how many images it picks for the first labels")
        if self.n_initial is not None and self.initial is None:
            problems.append("--n-initial needs --initial STRATEGY (random, typiclust, probcover, ...)")
        if self.stop is not None:
            from .stopping import parse_stop

            try:
                parse_stop(self.stop)
            except UsageError as exc:
                problems.append(str(exc))
        if self.recipe is None:  # a recipe may set what these need: checked once it is resolved (check_model_fits)
            problems += self.combination_problems()
        if self.labeling_rate == "fixed":
            stray = [f"--{n.replace('_', '-')}" for n in ("max_per_round", "gain", "epsilon")
                     if getattr(self, n) is not None]
            if stray:
                problems.append(f"{', '.join(stray)} only apply with --labeling-rate adaptive")
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
        return cls(**check_settings(values, source, config_class=cls))

    @classmethod
    def from_toml(cls, path: str | Path) -> "RunConfig":
        return cls(**read_settings(path, config_class=cls))

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



# What each setting may hold, by the annotation of its RunConfig field.
_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
          "dict": "a table of strategy options"}


def kind_of(annotation) -> tuple[str, bool]:
    """('int', optional?) from a field annotation such as 'int | None' (a string, or the type itself where the
    module declaring the field does not postpone annotations)."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else str(annotation)
    parts = [a.strip() for a in text.split("|")]
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


def project_settings(config_class=None) -> tuple[str, ...]:
    """The settings labeling projects take (declared ``project=True``)."""
    return tuple(f.name for f in fields(config_class or RunConfig) if f.metadata.get("project"))


def _one_of(choices: tuple) -> str:
    return f"{choices[0]!r} or {choices[1]!r}" if len(choices) == 2 else f"one of {', '.join(choices)}"


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The values a setting's declaration offers (``choices``: a tuple, or a function that reads a registry)."""
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


def option_flag(name: str) -> str:
    """A setting as its command-line option: ``batch_size`` -> ``--batch-size``."""
    return f"--{name.replace('_', '-')}"


def value_problems(config: RunConfig, names=None, flag=option_flag) -> list[str]:
    """One message per setting (of ``names``; default every one) whose value its declaration does not take: a
    choice not offered, empty text, a number out of range. ``flag`` names a setting in the messages."""
    problems = []
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None or (names is not None and f.name not in names):
            continue
        flag_ = flag(f.name)
        if meta.get("nonempty") and not value.strip():
            problems.append(f"{flag_} is empty")
        elif meta.get("choices") and value not in choices_of(f):
            problems.append(f"{flag_} = {value!r}, must be {_one_of(choices_of(f))}")
        elif meta.get("valid") and not meta["valid"][0](value):
            problems.append(f"{flag_} = {value}, {meta['valid'][1]}")
    return problems


def check_values(values: dict) -> None:
    """For code handed settings without a RunConfig (``estimators.make_estimator``): a UsageError naming each of
    ``values`` (setting name -> value) its declaration refuses, and those that do not work together."""
    config = RunConfig(**values)
    problems = value_problems(config, names=set(values), flag=str) + config.combination_problems(flag=str)
    if problems:
        raise UsageError("; ".join(problems))


def type_problems(values: dict, prefix: str = "", config_class=None) -> list[str]:
    """One message per setting in ``values`` whose value is not of its field's kind (``None`` only where
    the field is optional)."""
    kinds = {f.name: kind_of(f.type) for f in fields(config_class or RunConfig)}
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


def check_settings(values: dict, source: str = "settings", config_class=None) -> dict:
    """``values`` with keys normalised to field names and each value's type checked; unknown keys are an
    error naming close matches."""
    import difflib

    config_class = config_class or RunConfig
    names = {f.name for f in fields(config_class)}
    cleaned = {key.replace("-", "_"): value for key, value in values.items()}
    unknown = [key for key in cleaned if key not in names]
    if unknown:
        hints = []
        for key in unknown:
            match = difflib.get_close_matches(key, names, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {match[0]!r}?)" if match else ""))
        raise UsageError(f"unknown setting(s) in {source}: {', '.join(hints)}")
    problems = type_problems(cleaned, config_class=config_class)
    if problems:
        raise UsageError(f"{source}: {'; '.join(problems)}")
    return cleaned


MAX_TOML_BYTES = 1024 * 1024


def read_settings(path: str | Path, config_class=None) -> dict:
    """The settings a TOML file sets (and only those)."""
    path = Path(path)
    from .userfiles import read_user_text

    text = read_user_text(path, MAX_TOML_BYTES, f"config file {path}", too_large="a settings file is a few lines",
                          hint="TOML files are UTF-8")
    try:
        values = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    return check_settings(values, source=str(path), config_class=config_class)
