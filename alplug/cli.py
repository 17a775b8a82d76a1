"""The ``alplug`` command line.

Only click and the standard library are imported at start-up; torch, skorch and
modAL (about 16 s together) are imported inside the commands that need them.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import click

from . import __version__
from .cli_options import explicit_settings, run_options, say_preparing, track_option
from .cli_project import label, project
from .config import RunConfig
from .errors import AlplugError

_run_options = run_options()



class AlplugGroup(click.Group):
    """Turns alplug's own errors into one line on stderr (exit 2 for usage errors), never a traceback (unless
    ``ALPLUG_TRACEBACK=1`` asks for it: a plugin's author debugging what their code raised)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AlplugError as exc:
            if os.environ.get("ALPLUG_TRACEBACK", "").strip() not in ("", "0"):
                import traceback

                traceback.print_exception(exc, file=sys.stderr)
            click.echo(f"alplug: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a read-only --out, a full disk, a file that vanished: the system's words
            click.echo(f"alplug: error: {describe_os_error(exc)}", err=True)
            import errno

            usage = isinstance(exc, (PermissionError, FileExistsError)) or exc.errno == errno.EROFS
            ctx.exit(2 if usage else 1)


def describe_os_error(exc: OSError) -> str:
    """'runs/x/state.json: No space left on device; free some space and try again' rather than a traceback."""
    import errno

    what = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else ""
    if exc.errno == errno.ENOSPC:
        what += "; free some space and try again"
    elif isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
        what += "; choose a place you can write to (--out)"
    return f"{name}: {what}" if name else what


@click.group(cls=AlplugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="alplug")
def cli():
    """Active learning for deep image classifiers: query strategies as plugins over modAL, skorch and torchvision."""


def _default_out(config: RunConfig) -> Path:
    slug = config.dataset.split(":")[0]
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.query}-{config.model}-{slug}-s{config.seed}"


@cli.command()
@_run_options
@click.option("--out", "-o", type=click.Path(), default=None,
              help="New run directory (never overwritten). [default: runs/TIMESTAMP-QUERY-MODEL-DATA-sSEED]")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the run in this directory from its last finished round.")
@click.option("--config", "config_file", type=click.Path(), default=None,
              help="TOML file with any of these settings (command-line options win).")
@click.option("--verbose", "-v", is_flag=True, help="Print skorch's per-epoch table.")
@track_option
@click.pass_context
def run(ctx, out, resume, config_file, verbose, track, **params):
    """Run pool-based active learning and write a run directory.

    \b
    Example:
      alplug run --query margin
      alplug run --query entropy --model squeezenet1_1 --rounds 10 --seed 3
    """
    say_preparing("run")
    from .config import read_settings
    from .errors import UsageError
    from .rundir import RunDirectory
    from .tracking import TrackingPlan, parse_track

    track_specs = parse_track(track)

    # Precedence: command line > --config file > defaults.
    given = {**(read_settings(config_file) if config_file else {}), **explicit_settings(ctx, params)}
    if resume:
        if out:
            raise UsageError("--out and --resume exclude each other; --resume continues the run in place")
        run_dir = RunDirectory.open(resume)
        config = run_dir.config()
        diffs = config.differences(dataclasses.replace(config, **given), only=set(given))
        if diffs:
            raise UsageError(f"{resume} was started with other settings ({'; '.join(diffs)}); "
                             "drop those options to continue it, or start a new run with --out")
    else:
        config = dataclasses.replace(RunConfig(), **given)
        run_dir = None
        out_path = Path(out) if out else _default_out(config)
        if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
            raise UsageError(f"{out_path} already exists; continue it with `alplug run --resume {out_path}` "
                             "or choose another --out")

    from .loop import ActiveLearningRun
    from .summary import format_summary

    # Settings, data and model are all checked here, before a new directory exists.
    tags = {"strategy": config.query, "seed": config.seed, "dataset": config.dataset, "model": config.model}
    job = ActiveLearningRun(config, echo=click.echo, progress=sys.stderr.isatty() and not verbose,
                            tracking=TrackingPlan(track_specs, tags=tags) if track_specs else None,
                            recipe_given=None if resume else set(given))
    config = job.config  # with a recipe's settings
    if job.tracking is not None:
        job.tracking.tags["model"] = config.model  # the model a recipe chose
    if verbose:
        job.estimator.set_params(verbose=1)
    if resume:
        job.check_resumable(run_dir)  # state.json against this run's splits, before anything is said or done
    if run_dir is None:
        run_dir = RunDirectory.create(out_path, config, recipe_lines=job.recipe_lines)
    sizes = job.splits.sizes()
    if config.initial is not None and not resume:  # picked once the run starts (after any pretraining)
        sizes["initial"] = f"{config.n_initial} by {config.initial}"
        sizes["pool"] -= config.n_initial
    click.echo(f"alplug: {config.query} on {job.data.name} with {config.model}, seed {config.seed}, "
               f"device {job.estimator.device}; splits {sizes}; writing {run_dir.path}")
    try:
        result = job.run(run_dir)
    except KeyboardInterrupt:
        click.echo(f"\nalplug: interrupted; continue with `alplug run --resume {run_dir.path}`", err=True)
        ctx.exit(130)
    except OSError as exc:  # the last committed round is intact
        raise AlplugError(f"{describe_os_error(exc)}; then continue with `alplug run --resume {run_dir.path}`") from exc
    click.echo(format_summary(result, job.history, run_dir))


REPORT_GOAL = 0.9  # label-cost goal when neither the study nor `alplug report --goal` sets one


def _report_options(f):
    # compare takes --goal from the run options: the same goal stops the runs and prices the labels.
    for option in reversed([
        click.option("--targets", default="0.9,0.95", show_default=True,
                     help="Val-2 accuracies for the labels-needed columns."),
        click.option("--label-cost", type=float, default=1.0, show_default=True, help="C_L: cost of one label."),
        click.option("--lambdas", default="15,30,60", show_default=True,
                     help="λ values of the label-cost table (a training round costs λ·C_L)."),
    ]):
        f = option(f)
    return f


def _numbers(text: str, name: str) -> list[float]:
    from .errors import UsageError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{name} {text!r} must be comma-separated numbers, e.g. 0.9,0.95") from None


@cli.command()
@_run_options
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per strategy: --seed, --seed+1, ...")
@click.option("--jobs", "-j", type=int, default=None,
              help="Runs at a time. [default: 1 on this machine, as many as the cluster has cores on Ray/Dask]")
@click.option("--backend", type=click.Choice(["local", "ray", "dask"]), default="local", show_default=True,
              help="Where runs execute: joblib processes here, or a Ray or Dask cluster (study directory on a "
                   "file system all workers share).")
@click.option("--address", default=None,
              help="Ray cluster: HOST:PORT, ray://HOST:10001, auto or local. [default: $RAY_ADDRESS, a cluster "
                   "running here, else a new local one]")
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://HOST:8786 (--backend dask).")
@click.option("--threads", type=int, default=None,
              help="Torch threads per run; the same seed and thread count give the same queries on any backend. "
                   "[default: local: cores / --jobs; clusters: the worker's own setting]")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Study directory; running the same command again resumes it. [default: studies/TIMESTAMP]")
@click.option("--config", "config_file", type=click.Path(), default=None, help="TOML file with run settings.")
@_report_options
@track_option
@click.pass_context
def compare(ctx, seeds, jobs, backend, address, scheduler, threads, out, config_file, targets, label_cost, lambdas,
            track, **params):
    """Run every strategy with every seed (identical splits per seed), then write the report.

    \b
    Example:
      alplug compare --query random,margin,entropy --seeds 3 --rounds 4
    """
    say_preparing("compare")
    from .config import read_settings
    from .errors import UsageError
    from .study import Study, run_study
    from .checks import check_run_settings
    from .strategies.schedules import split_queries
    from .tracking import parse_track

    track_specs = parse_track(track)
    given = {**(read_settings(config_file) if config_file else {}), **explicit_settings(ctx, params)}
    queries = split_queries(str(given.pop("query", params["query"])))
    first_seed = int(given.pop("seed", 0))
    for name, value in (("--seeds", seeds), ("--jobs", jobs), ("--threads", threads)):
        if value is not None and value < 1:
            raise UsageError(f"{name} = {value}, must be >= 1")
    if (address and backend != "ray") or (scheduler and backend != "dask"):
        raise UsageError("--address goes with --backend ray, --scheduler with --backend dask")
    if not queries:
        raise UsageError("--query names no strategy; give one or more, e.g. --query random,margin")
    if len(set(queries)) != len(queries):
        raise UsageError(f"--query lists a strategy twice: {', '.join(queries)}")
    base = dataclasses.replace(RunConfig(), **given)
    check_run_settings(dataclasses.replace(base, seed=first_seed), queries, echo=click.echo)
    targets_, lambdas_ = _numbers(targets, "--targets"), _numbers(lambdas, "--lambdas")
    study_path = Path(out) if out else Path("studies") / time.strftime("%Y%m%d-%H%M%S")
    # The data once, and the model for it on the meta device; a recipe is resolved on it (again when the study is
    # resumed: the same data and settings give the same choices, which study.toml then confirms).
    if base.recipe is not None or not (study_path / "study.toml").exists():
        from .checks import check_model_fits
        from .data import load_dataset, make_splits

        data = load_dataset(base.dataset, base.data_dir, image_size=base.image_size)
        splits = make_splits(data, seed=first_seed, n_start=None if base.initial else base.n_start,
                             test_size=base.test_size, val1_size=base.val1_size, val2_size=base.val2_size)
        if base.recipe is not None:
            from .presets import resolve_recipe

            base, recipe_lines = resolve_recipe(base, data, splits, set(given) | {"query", "seed"})
            for line in recipe_lines:
                click.echo(line)
        check_model_fits(base, data, splits)
    study = Study(study_path, queries, list(range(first_seed, first_seed + seeds)), base)
    from .backends import study_backend
    from .tracking import open_study_tracking

    with study_backend(backend, address or scheduler) as where:  # connects (or fails) before anything is written
        study.prepare()
        if base.recipe is not None:
            from .presets import record_choices

            record_choices(study.path, recipe_lines)
        parent = open_study_tracking(study, track_specs, echo=click.echo)
        try:
            outcomes = run_study(study, jobs=jobs, echo=click.echo, backend=where, threads=threads,
                                 track=track_specs, parent_run_id=parent.run.info.run_id if parent else None)
        except BaseException as exc:
            if parent:
                parent.guard("marking the study stopped", parent.fail, interrupted=isinstance(exc, KeyboardInterrupt))
            if isinstance(exc, KeyboardInterrupt):
                click.echo(f"\nalplug compare: interrupted; the same command continues the study in {study.path} "
                           "(finished runs are kept, interrupted ones continue from their last committed round)",
                           err=True)
                ctx.exit(130)
            raise
    report = _write_report(study, targets_, base.goal or REPORT_GOAL, label_cost, lambdas_)
    failed = [o for o in outcomes if o.status == "failed"]
    if parent:
        parent.guard("sending the study's report", parent.finish_study, Path(report), failed=bool(failed))
    click.echo(f"alplug compare: {len(outcomes) - len(failed)} of {len(outcomes)} runs finished; report in {report}")
    if failed:
        click.echo(f"alplug: error: {len(failed)} run(s) failed ({', '.join(o.run.name for o in failed)}; "
                   f"see error.txt in each); run the same command again to retry only them", err=True)
        ctx.exit(1)


def _write_report(study, targets, goal, label_cost, lambdas):
    from .errors import UsageError
    from .report import write_report

    if not 0 < goal <= 1:
        raise UsageError(f"--goal = {goal}, must be an accuracy in (0, 1]")

    return write_report(study, targets=targets, goal=goal, cost_label=label_cost, lambdas=lambdas)


@cli.command()
@click.argument("study_dir", type=click.Path())
@_report_options
@click.option("--goal", type=float, default=None,
              help="Accuracy goal of the label-cost table. [default: the study's --goal, else 0.9]")
def report(study_dir, targets, goal, label_cost, lambdas):
    """Write the figures and tables of a study (also done at the end of `alplug compare`)."""
    from .study import Study

    study = Study.open(study_dir)
    out = _write_report(study, _numbers(targets, "--targets"), goal or study.base.goal or REPORT_GOAL,
                        label_cost, _numbers(lambdas, "--lambdas"))
    click.echo(f"alplug report: {out}/report.html, report.md, figures (PNG, SVG) and CSV tables")


@cli.command()
@click.argument("studies", nargs=-1, metavar="STUDY[::STRATEGY]...")
@click.option("--metric", default="test", show_default=True,
              help="What to compare: test (final test accuracy), labels-to=ACC (labels to reach a test accuracy), "
                   "acc-at=N (test accuracy at N labels).")
def recipes(studies, metric):
    """List the named recipes (--recipe NAME), or compare training recipes: studies of the same strategies and seeds
    made with other settings (--ssl, --semi, epochs, ...), each against the first, paired by strategy and seed
    (Wilcoxon, Holm-corrected). STUDY::STRATEGY takes one strategy of a study, paired by seed alone.

    \b
    Examples:
      alplug recipes
      alplug recipes studies/supervised studies/ssl-frozen studies/ssl-frozen-fixmatch
      alplug recipes --metric labels-to=0.95 studies/a::random studies/b::typiclust
    """
    from .errors import UsageError
    from .recipes import check_pairable, compare_recipes, markdown, parse_arm, parse_metric
    from .study import Study

    parse_metric(metric)
    if not studies:
        from .presets import describe_recipes

        click.echo(describe_recipes())
        return
    if len(studies) < 2:
        raise UsageError("give two or more study directories: the first is the baseline the others are tested against")
    arms = [parse_arm(text) for text in studies]
    opened = [Study.open(path) for path, _ in arms]
    check_pairable(opened)
    click.echo(markdown(compare_recipes(opened, [s for _, s in arms], metric), metric), nl=False)


def _list_plugins(discovered, describe, optional: dict[str, str]) -> None:
    """The listing of one plugin group: a row per name (name, distribution, description), then broken entries,
    clashes, and optional plugins that are not installed (or hidden). ``describe(loaded)`` gives a row's
    description. A name two third-party distributions register is listed once per distribution, as
    ``DISTRIBUTION/NAME``: the only way it can be used."""
    from importlib.metadata import PackageNotFoundError, version

    from .plugins import DISABLE_ENV, PluginLoadError, ambiguous, conflict_message, qualified

    registered, conflicts = discovered
    rows, broken = [], []
    for name, entry in registered.items():
        shown = [(qualified(e), e) for e in [entry, *conflicts[name]]] if ambiguous(entry, conflicts) else \
            [(name, entry)]
        for label, e in shown:
            try:
                rows.append((label, e.origin, describe(e.load())))
            except PluginLoadError as exc:
                broken.append((label, e.origin, f"BROKEN: {exc}"))
    width = max([len(r[0]) for r in rows + broken] + [4])
    owidth = max([len(r[1]) for r in rows + broken] + [6])
    for name, origin, text in rows + broken:
        click.echo(f"{name:<{width}}  {origin:<{owidth}}  {text}")
    for name, others in conflicts.items():
        click.echo(f"CONFLICT: {conflict_message(registered[name], others)}")
    missing = {}
    for name, extra in optional.items():
        if name not in registered:
            missing.setdefault(extra, []).append(name)
    for extra, names in sorted(missing.items()):
        try:
            version(f"alplug-{extra}")
            click.echo(f"hidden: {', '.join(names)} (alplug-{extra} is installed; {DISABLE_ENV} hides it)")
        except PackageNotFoundError:
            click.echo(f"not installed: {', '.join(names)} (pip install \"alplug[{extra}]\")")


@cli.command()
def strategies():
    """List the registered query strategies, their options, and broken plugins."""
    from .strategies.options import strategy_options
    from .strategies.registry import OPTIONAL_STRATEGIES, discover_strategies

    def describe(fn) -> str:
        doc = (fn.__doc__ or "").strip().splitlines()
        options = " ".join(f"{k}={v!r}" for k, v in strategy_options(fn).items())
        return (doc[0] if doc else "") + (f"  [options: {options}]" if options else "")

    _list_plugins(discover_strategies(), describe, OPTIONAL_STRATEGIES)
    click.echo("Combine two as FIRST+SECOND (e.g. entropy+model-outlier, option prefilter=4).")


@cli.command()
def models():
    """List the registered models (--model), model families (--model FAMILY:NAME) and broken plugins."""
    click.echo("alplug: looking up model plugins ...", err=True)
    from .models import OPTIONAL_FAMILIES, ModelFamily, discover_models

    def describe(obj) -> str:
        if isinstance(obj, ModelFamily):
            examples = ", ".join(f"{obj.name}:{e}" for e in obj.examples[:3])
            return f"{obj.description}  [use as {obj.name}:NAME" + (f", e.g. {examples}]" if examples else "]")
        size = f"{obj.input_size} px" if obj.input_size else f">= {obj.min_input_size} px (smaller is upsampled)"
        return f"{obj.description}  [input {size}; --weights: {obj.weights_help}]"

    _list_plugins(discover_models(), describe, OPTIONAL_FAMILIES)


@cli.command()
def datasets():
    """List the registered data sources (--dataset NAME or NAME:ARGUMENT) and broken plugins."""
    from .data.registry import discover_datasets

    _list_plugins(discover_datasets(), lambda source: f"{source.description}  [use as {source.usage}]", {})


cli.add_command(project)
cli.add_command(label)


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    """alplug's own warnings as ``alplug: warning: ...`` (they carry their fix); others as Python prints them."""
    if category.__module__.startswith("alplug"):
        click.echo(f"alplug: warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = None


def main():
    import warnings

    global _show_warning
    _show_warning, warnings.showwarning = warnings.showwarning, _one_line_warnings
    cli(prog_name="alplug")

