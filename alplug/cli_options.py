"""The run settings as click options, shared by `alplug run`, `compare` and `project init`, and the first words
those commands say while torch loads.

Each option is made from its setting's declaration in ``RunConfig`` (``config.setting``); only click and the
standard library are imported.
"""
from __future__ import annotations

import dataclasses

import click

from .config import RunConfig, choices_of, kind_of


def setting_option(f: dataclasses.Field, default):
    """The click option of one ``RunConfig`` field, made from its declaration (``config.setting``): ``--NAME`` of
    the field's type (``--NAME/--no-NAME`` for a flag, a choice where it has choices), its help and default."""
    meta, kind = f.metadata, kind_of(f.type)[0]
    cli = meta.get("cli", {})
    name = cli.get("name", "--" + f.name.replace("_", "-"))
    options = {"help": meta.get("help")}
    if kind == "bool":
        return click.option(f"{name}/--no-{name[2:]}", f.name, default=default, show_default=True, **options)
    if kind == "dict":
        return click.option(name, f.name, multiple=True, metavar=cli.get("metavar"), **options)
    if meta.get("choices"):
        options["type"] = click.Choice(choices_of(f))
    elif cli.get("directory"):
        options["type"] = click.Path(file_okay=False)
    elif kind in ("int", "float"):
        options["type"] = {"int": int, "float": float}[kind]
    if "metavar" in cli:
        options["metavar"] = cli["metavar"]
    return click.option(name, *cli.get("flags", ()), f.name, default=default, show_default=default is not None,
                        **options)


def run_options(only: tuple[str, ...] | None = None, config_class=RunConfig):
    """Decorator adding the run settings as options (``only``: these settings, by field name), each made from
    its declaration in ``config_class``."""
    defaults = config_class()

    def decorate(f):
        for field in reversed(dataclasses.fields(config_class)):
            if only is None or field.name in only:
                f = setting_option(field, getattr(defaults, field.name))(f)
        return f

    return decorate


def explicit_settings(ctx: click.Context, params: dict, config_class=RunConfig) -> dict:
    """The settings the user typed on the command line (not click's defaults)."""
    from click.core import ParameterSource

    from .strategies.options import parse_option_values

    given = {f.name: params[f.name] for f in dataclasses.fields(config_class) if f.name in params
             and ctx.get_parameter_source(f.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
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
