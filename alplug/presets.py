"""Named training recipes: ``--recipe NAME`` sets, for one run, study or labeling project, the settings that make a
measured best practice, so that a user types one flag rather than a line of options copied from a doc.

A recipe sets only what the user left alone: every setting given on the command line or in a ``--config`` file wins,
option by option. It may look at the data (channels, image size, classes, pool size, labels) and says what it chose
and why, in the run's output and in ``recipe.txt`` beside ``config.toml``, which holds every setting it chose. It is
resolved once, when a run, study or project starts; ``--resume`` reads the resolved settings back and never
resolves again, so a resumed run is the run that started. ``alplug recipes`` (no arguments) lists the recipes with
their evidence. docs/low-budget.md has the studies behind each.

No library offers presets that depend on the data: this module is ours.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Callable

from .errors import UnknownNameError


@dataclass(frozen=True)
class DataFacts:
    """What a recipe may look at: the data as the run loads it (before the recipe's own settings)."""

    channels: int
    side: int          # the smaller side of the images, as loaded
    classes: int
    pool: int          # images the run may label (pool and initial set)
    labels: int | None  # the labels of round 0 when known (--n-start x classes, or --n-initial)
    project: bool = False  # a labeling project: its first batches are picked before any label


@dataclass(frozen=True)
class Choice:
    setting: str | None  # None: a note, no setting (why the recipe sets nothing here)
    value: object
    why: str


@dataclass(frozen=True)
class Recipe:
    """A named preset. ``choose(facts, yours)`` -> the settings it sets, each with the reason said to the user;
    ``yours``: the settings the user gave, by name (those are kept whatever it returns)."""

    name: str
    summary: str
    evidence: str
    choose: Callable[[DataFacts, dict], list[Choice]]


TINY_SIDE = 16  # images smaller than this (digits' 8 px) take the pretrained small-images settings


def _tiny_images(facts: DataFacts) -> list[Choice]:
    """docs/low-budget.md#pretraining-only-what-the-head-reads: 24 seeds on digits, 0.962 at 30 random labels and
    0.975 at 100, where the scattering settings reach 0.836 and 0.946."""
    return [
        Choice("image_size", 16, f"images of {facts.side} px: ResNet-18 pretrained near their own size (on digits "
                                 "the scattering head reached 0.836 at 30 labels, these settings 0.962)"),
        Choice("ssl", "simclr", "SimCLR on the unlabeled pool, cached and reused by every run of the same images "
                                "(about 220 s a seed on a 2-core CPU)"),
        Choice("ssl_epochs", 200, "200 epochs beat 60 and 90 on digits at 16 px"),
        Choice("freeze_backbone", True, "a head on the pretrained features: each image's are computed once per run"),
        Choice("features_from", "layer3", "the head reads the third stage, pretrained alone: better than the last "
                                          "at 30 and 100 labels"),
        Choice("semi", "pseudo", "the model's confident guesses on the pool as targets"),
        Choice("semi_threshold", 0.9, "a guess counts at 0.9 confidence"),
        Choice("epochs", 100, "a head on cached features: 100 epochs are cheap"),
    ]


def _few_labels(facts: DataFacts, yours: dict) -> list[Choice]:
    if yours.get("weights") is not None and "model" not in yours:
        return [Choice(None, None, "your --weights are pretrained weights for the model: the recipe, measured without "
                                   "any, sets nothing")]
    if facts.side < TINY_SIDE and yours.get("model", "resnet18") == "resnet18":
        if importlib.util.find_spec("lightly") is not None:
            return _tiny_images(facts)
        tiny_note = [Choice(None, None, f"images of {facts.side} px would take the pretrained small-images settings, "
                                        "which need lightly (pip install \"alplug[ssl]\"): the scattering settings "
                                        "instead")]
    else:
        tiny_note = []
    model = yours.get("model")
    if model not in (None, "scattering", "scattering-conv"):
        # Freezing a randomly initialised backbone, or a 32 px cap on a pretrained one, would be no advice at all.
        return [Choice("model", "scattering-conv", "the recipe's other settings were measured with the scattering "
                                                   "models only, so with yours it sets nothing else")]
    first_picks = [Choice("initial", "random", "the first batches, before any label, at random: on the three folders "
                                               "unlike digits random picks covered more classes than typical ones "
                                               "(TypiClust)")] if facts.project else []
    if model == "scattering" or importlib.util.find_spec("lightly") is None:
        note = [] if model == "scattering" else [Choice(None, None, "the pretrained scattering trunk needs lightly "
                                                                    "(pip install \"alplug[ssl]\"): the fixed "
                                                                    "scattering settings instead")]
        return _fixed_scattering(facts) + first_picks + note + tiny_note
    return _scattering_trunk(facts) + first_picks + tiny_note


TRUNK_EPOCHS = 60


def _channels(facts: DataFacts) -> str:
    return "each of the 3 colour channels" if facts.channels == 3 else f"{facts.channels} channel(s)"


# The head both scattering settings train on cached features: a frozen backbone, ten shifted copies of each label
# and weight decay over standardised features.
_CACHED_HEAD = [
    Choice("epochs", 100, "a linear head on cached features: 100 epochs take seconds"),
    Choice("augment_copies", 10, "ten copies of each labeled image shifted by a few pixels, their features computed "
                                 "once: the head learns what a label looks like moved a little"),
    Choice("weight_decay", 0.01, "an L2 penalty on the head over standardised features: better on each of the four "
                                 "data sets measured with the fixed features"),
]


def _scattering_trunk(facts: DataFacts) -> list[Choice]:
    """docs/low-budget.md#one-flag-for-few-labels: a small trunk over scattering coefficients, pretrained by SimCLR
    on the pool's stored views."""
    return [
        Choice("model", "scattering-conv", f"wavelet scattering coefficients of {_channels(facts)} and a small "
                                           "convolutional trunk over them, pretrained on the unlabeled pool"),
        Choice("image_size", 32, "the trunk reads the 8x8 coefficient maps that 2 scales give at 32 px"),
        Choice("ssl", "simclr", "SimCLR on views of the pool's images, their coefficients computed once: minutes "
                                "on a CPU, cached and reused by every run of the same images"),
        Choice("ssl_epochs", TRUNK_EPOCHS, f"{TRUNK_EPOCHS} epochs of the trunk over the stored views"),
        Choice("freeze_backbone", True, "a head on the pretrained features: each image's are computed once per run"),
        *_CACHED_HEAD,
    ]


def _fixed_scattering(facts: DataFacts) -> list[Choice]:
    """docs/low-budget.md: the fixed scattering features with a linear head, no pretraining (no lightly needed)."""
    return [
        Choice("model", "scattering", f"label-free wavelet scattering features of {_channels(facts)}: no "
                                      "pretraining, and on folders unlike digits a head on them beat training from "
                                      "scratch"),
        Choice("image_size", 32, "the scattering head reads an 8x8 grid, which 2 scales give at 32 px"),
        Choice("freeze_backbone", True, "the features are fixed: each image's are computed once per run"),
        *_CACHED_HEAD,
    ]


RECIPES = {
    "few-labels": Recipe(
        "few-labels", "tens to a few hundred labels, no pretrained weights that fit the images",
        "docs/low-budget.md#one-flag-for-few-labels: 10 seeds on hard-digits, shapes and textures; under 16 px, "
        "docs/low-budget.md#pretraining-only-what-the-head-reads: 24 seeds on digits", _few_labels),
}


def as_option(setting: str, value) -> str:
    """``--name value``, or ``--name`` / ``--no-name`` for a switch, as a user would type it."""
    flag = setting.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"


def describe_recipes() -> str:
    """``alplug recipes``: each recipe, what it is for, its evidence and its choices on a typical folder."""
    example = DataFacts(channels=3, side=32, classes=10, pool=1000, labels=100)
    tiny = dataclasses.replace(example, channels=1, side=8)
    lines = []
    for recipe in RECIPES.values():
        settings = " ".join(as_option(c.setting, c.value) for c in recipe.choose(example, {}) if c.setting)
        on_tiny = " ".join(as_option(c.setting, c.value) for c in recipe.choose(tiny, {}) if c.setting)
        fixed = " ".join(as_option(c.setting, c.value) for c in recipe.choose(example, {"model": "scattering"})
                         if c.setting and c.setting != "model")
        lines += [f"{recipe.name}: {recipe.summary}", f"  evidence: {recipe.evidence}",
                  f"  sets (colour images, 10 classes, 100 labels): {settings}",
                  f"  on images under {TINY_SIDE} px (8 px digits): {on_tiny}",
                  f"  with --model scattering, or without lightly: {fixed}",
                  f"  use: alplug run --recipe {recipe.name} (or compare, project init); any option you give wins"]
    return "\n".join(lines)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError("recipe", name, list(RECIPES)) from None


def apply_recipe(config, facts: DataFacts, given: set[str]):
    """``(config with the recipe's settings, lines saying what it chose)``; settings in ``given`` (what the user
    set) are kept and said to be kept."""
    recipe = get_recipe(config.recipe)
    changes, lines = {}, [f"recipe {recipe.name}: {recipe.summary} ({recipe.evidence})"]
    for choice in recipe.choose(facts, {name: getattr(config, name) for name in given}):
        if choice.setting is None:
            lines.append(f"  {choice.why}")
        elif choice.setting in given:
            lines.append(f"  {as_option(choice.setting, getattr(config, choice.setting))}: yours, kept (the recipe "
                         f"would use {as_option(choice.setting, choice.value)}: {choice.why})")
        else:
            changes[choice.setting] = choice.value
            lines.append(f"  {as_option(choice.setting, choice.value)}: {choice.why}")
    return dataclasses.replace(config, **changes), lines


RECIPE_FILE = "recipe.txt"  # beside config.toml (or study.toml, or a project's database)


def record_choices(directory, lines: list[str]) -> None:
    """What a recipe chose and why, kept in ``directory/recipe.txt`` (once: an existing file is the same run's)."""
    from pathlib import Path

    from .userfiles import atomic_write

    path = Path(directory) / RECIPE_FILE
    if lines and not path.exists():
        atomic_write(path, "\n".join(lines) + "\n")


def resolve_recipe(config, data, splits, given: set[str]):
    """``apply_recipe`` with the facts of a loaded data set and a seed's splits."""
    labels = config.n_initial if config.initial is not None else len(splits.initial)
    facts = DataFacts(channels=data.channels, side=int(min(data.X.shape[-2:])), classes=data.n_classes,
                      pool=len(splits.pool) + len(splits.initial), labels=labels)
    return apply_recipe(config, facts, given)
