"""The run settings as click options, shared by `alplug run`, `compare` and `project init`, and the first words
those commands say while torch loads.

Defaults shown in ``--help`` come from ``RunConfig``; only click and the standard library are imported.
"""
from __future__ import annotations

import dataclasses

import click

from .config import RECIPE_NAMES, SEMI_METHODS, SSL_METHODS, RunConfig

DEFAULTS = RunConfig()


def _run_option_list():
    """The settings of RunConfig as click options; defaults shown in --help come from RunConfig."""
    d = DEFAULTS
    return [
        click.option("--recipe", type=click.Choice(RECIPE_NAMES), default=None,
                     help="A named training recipe: sets the settings you do not give, says what it chose and why "
                          "(`alplug recipes` lists them; few-labels: tens to a few hundred labels). [default: none]"),
        click.option("--query", "-q", default=d.query, show_default=True,
                     help="Query strategy name (see `alplug strategies`)."),
        click.option("--query-opt", "query_options", multiple=True, metavar="KEY=VALUE",
                     help="Strategy option, repeatable (e.g. T=30; for FIRST+SECOND: prefilter=4, "
                          "FIRST.KEY=VALUE)."),
        click.option("--model", "-m", default=d.model, show_default=True,
                     help="A model from `alplug models`: resnet18, resnet50, squeezenet1_1, or a family's "
                          "FAMILY:NAME (timm:resnet10t with alplug[timm])."),
        click.option("--dataset", "-d", default=d.dataset, show_default=True,
                     help="A data source from `alplug datasets`: digits, mnist, fashion-mnist, emnist, cifar10, "
                          "svhn, folder:PATH, npz:PATH, or a plugin's."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Where torchvision data sets are read from and downloaded to "
                          "[default: $ALPLUG_DATA or ~/.cache/alplug/data]."),
        click.option("--image-size", type=int, default=None,
                     help="Side length the model sees (and folder images are made). "
                          "[default: inputs under 32 px are upsampled to 32; folders: 64]"),
        click.option("--n-start", type=int, default=d.n_start, show_default=True,
                     help="Initial labeled images per class, drawn at random (this uses the labels to draw them; "
                          "see --initial)."),
        click.option("--initial", default=None,
                     help="Pick the initial labeled set with a strategy that needs no labels (random, typiclust, "
                          "probcover, maxherding) instead of --n-start per class. [default: off]"),
        click.option("--n-initial", type=int, default=None,
                     help="With --initial: how many images it picks."),
        click.option("--per-round", type=int, default=d.per_round, show_default=True,
                     help="Images queried and labeled per round."),
        click.option("--labeling-rate", type=click.Choice(["fixed", "adaptive"]), default=d.labeling_rate,
                     show_default=True,
                     help="adaptive: label fewer images per round while val-2 accuracy climbs fast, more when "
                          "it stalls (see docs/loop.md)."),
        click.option("--goal", type=float, default=None,
                     help="Stop when val-2 accuracy reaches this; also the goal of the report's label-cost table. "
                          "[default: none]"),
        click.option("--max-per-round", type=int, default=None,
                     help="Adaptive rate: most images per round (R). [default: 4 x --per-round]"),
        click.option("--gain", type=float, default=None,
                     help="Adaptive rate: accuracy gain a round aims for (g). [default: 0.05]"),
        click.option("--epsilon", type=float, default=None,
                     help="Adaptive rate: smallest per-round gain assumed (ε). [default: 0.005]"),
        click.option("--rounds", type=int, default=d.rounds, show_default=True, help="Query rounds after round 0."),
        click.option("--epochs", type=int, default=d.epochs, show_default=True, help="Training epochs per round."),
        click.option("--patience", type=int, default=None,
                     help="Stop after this many rounds without val-2 improvement. [default: off]"),
        click.option("--stop", default=None,
                     help="Stopping rules, any of kappa[=0.99] (predictions stabilised), uncertainty[=0.05] (mean "
                          "least confidence on unlabeled images), patience[=3] (val-2), comma-separated; the first "
                          "that fires stops the run. [default: off]"),
        click.option("--budget", type=int, default=None,
                     help="Stop when this many images are labeled (initial set included). [default: none]"),
        click.option("--lr", type=float, default=d.lr, show_default=True, help="Learning rate."),
        click.option("--batch-size", type=int, default=d.batch_size, show_default=True),
        click.option("--weight-decay", type=float, default=d.weight_decay, show_default=True,
                     help="L2 penalty."),
        click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default=d.optimizer,
                     show_default=True),
        click.option("--augment/--no-augment", default=d.augment, show_default=True,
                     help="Rotation ±15°, contrast ±10%, hue ±10% (colour) on the training set."),
        click.option("--hflip/--no-hflip", default=d.hflip, show_default=True,
                     help="Add horizontal flips to --augment (off: flips change digits' meaning)."),
        click.option("--augment-copies", type=int, default=d.augment_copies, show_default=True,
                     help="With --freeze-backbone: each labeled image also trains the head as N copies shifted by "
                          "a few pixels at random, made once and cached with the features."),
        click.option("--weights", default=None,
                     help="Pretrained weights: a state-dict file, or a name the model knows (torchvision's "
                          "DEFAULT, IMAGENET1K_V1; timm's pretrained tags); `alplug models` says which."),
        click.option("--dropout", type=float, default=None,
                     help="Dropout before the classifier (needed by MC-dropout strategies on ResNet). "
                          "[default: the model's own: ResNet none, SqueezeNet 0.5]"),
        click.option("--freeze-backbone/--no-freeze-backbone", default=d.freeze_backbone, show_default=True,
                     help="Train the classifier head only (transfer learning from --weights or --ssl); each image's "
                          "features are computed once per run."),
        click.option("--features-from", default=None, metavar="PART[,PART]",
                     help="The head reads the pooled output of this part of the backbone (layer3 of a ResNet), or "
                          "of several side by side (layer1,layer2,layer3); the parts after the last are dropped "
                          "(--ssl pretrains only the parts kept). "
                          "[default: the whole backbone]"),
        click.option("--ssl", type=click.Choice(SSL_METHODS), default=None,
                     help="Self-supervised pretraining of the backbone on the run's unlabeled images before round 0 "
                          "(needs alplug[ssl]); cached and reused by runs on the same images. [default: off]"),
        click.option("--ssl-epochs", type=int, default=d.ssl_epochs, show_default=True,
                     help="Epochs of --ssl pretraining."),
        click.option("--semi", type=click.Choice(SEMI_METHODS), default=None,
                     help="Semi-supervised training on the unlabeled pool alongside the labels (docs/low-budget.md). "
                          "[default: off]"),
        click.option("--semi-weight", type=float, default=d.semi_weight, show_default=True,
                     help="Weight of the unlabeled loss."),
        click.option("--semi-threshold", type=float, default=d.semi_threshold, show_default=True,
                     help="pseudo, fixmatch: confidence a prediction needs to become a target."),
        click.option("--semi-ratio", type=int, default=d.semi_ratio, show_default=True,
                     help="Unlabeled images per labeled image in each step; an epoch is one pass over the pool."),
        click.option("--warm-start/--no-warm-start", default=d.warm_start, show_default=True,
                     help="Continue training the previous round's model instead of retraining from scratch."),
        click.option("--device", default=d.device, show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--seed", type=int, default=d.seed, show_default=True),
        click.option("--test-size", type=float, default=d.test_size, show_default=True,
                     help="Held-out test fraction (or count) when the data set has no test set of its own."),
        click.option("--val1-size", type=float, default=d.val1_size, show_default=True,
                     help="Validation set 1 (watches training, every epoch): fraction or count."),
        click.option("--val2-size", type=float, default=d.val2_size, show_default=True,
                     help="Validation set 2 (scores every round): fraction or count."),
    ]


def run_options(only: tuple[str, ...] | None = None):
    """Decorator adding the run settings as options (``only``: these settings, by field name)."""

    def decorate(f):
        for option in reversed(_run_option_list()):
            probe = option(lambda: None).__click_params__[0]
            if only is None or probe.name in only:
                f = option(f)
        return f

    return decorate


SETTING_NAMES = [f.name for f in dataclasses.fields(RunConfig)]


def explicit_settings(ctx: click.Context, params: dict) -> dict:
    """The settings the user typed on the command line (not click's defaults)."""
    from click.core import ParameterSource

    from .strategies.options import parse_option_values

    given = {name: params[name] for name in SETTING_NAMES
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if "query_options" in given:
        given["query_options"] = parse_option_values(given["query_options"])
    return given


def track_option(f):
    """``--track``, on the commands that train (run, compare, project next, label)."""
    from .tracking import track_metavar

    return click.option("--track", "track", multiple=True, metavar=track_metavar(),
                        help="Track epochs, rounds, settings and results in TensorBoard or MLflow (repeatable; "
                             "default store inside the run, study or project directory; extras "
                             "alplug[tensorboard], alplug[mlflow]).")(f)


def say_preparing(command: str) -> None:
    """The command's first words, said before torch, torchvision and scikit-learn load (seconds on a 2-core
    machine). On a terminal only: piped output, and the one-line errors of bad input, stay as they are."""
    import sys

    if sys.stderr.isatty():
        click.echo(f"alplug {command}: loading torch and scikit-learn, then the data and the model ...", err=True)
