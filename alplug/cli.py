"""The ``alplug`` command line.

Only click and the standard library are imported at start-up; torch, skorch and
modAL (about 16 s together) are imported inside the commands that need them.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import click

from . import __version__
from .config import RunConfig
from .errors import AlplugError

DEFAULTS = RunConfig()


class AlplugGroup(click.Group):
    """Turns alplug's own errors into one line on stderr (exit 2 for usage errors), never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AlplugError as exc:
            click.echo(f"alplug: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a read-only --out, a full disk, a file that vanished: the system's words
            click.echo(f"alplug: error: {describe_os_error(exc)}", err=True)
            import errno

            usage = isinstance(exc, (PermissionError, FileExistsError)) or exc.errno == errno.EROFS
            ctx.exit(2 if usage else 1)


def describe_os_error(exc: OSError) -> str:
    """'cannot write runs/x/state.json: No space left on device' rather than a traceback."""
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


def _run_option_list():
    """The settings of RunConfig as click options; defaults shown in --help come from RunConfig."""
    d = DEFAULTS
    return [
        click.option("--query", "-q", default=d.query, show_default=True,
                     help="Query strategy name (see `alplug strategies`)."),
        click.option("--query-opt", "query_options", multiple=True, metavar="KEY=VALUE",
                     help="Strategy option, repeatable (e.g. T=30; for FIRST+SECOND: prefilter=4, "
                          "FIRST.KEY=VALUE)."),
        click.option("--model", "-m", default=d.model, show_default=True,
                     help="resnet18, resnet50 or squeezenet1_1."),
        click.option("--dataset", "-d", default=d.dataset, show_default=True,
                     help="digits, mnist, fashion-mnist, emnist, cifar10, svhn, folder:PATH or npz:PATH."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Where torchvision data sets are read from and downloaded to "
                          "[default: $ALPLUG_DATA or ~/.cache/alplug/data]."),
        click.option("--image-size", type=int, default=None,
                     help="Side length the model sees (and folder images are made). "
                          "[default: inputs under 32 px are upsampled to 32; folders: 64]"),
        click.option("--n-start", type=int, default=d.n_start, show_default=True,
                     help="Initial labeled images per class, drawn at random."),
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
        click.option("--weights", default=None,
                     help="Pretrained weights: a torchvision name (DEFAULT, IMAGENET1K_V1) or a state-dict file."),
        click.option("--dropout", type=float, default=None,
                     help="Dropout before the classifier (needed by MC-dropout strategies on ResNet). "
                          "[default: the model's own: ResNet none, SqueezeNet 0.5]"),
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


_run_options = run_options()


SETTING_NAMES = [f.name for f in dataclasses.fields(RunConfig)]


def _explicit_settings(ctx: click.Context, params: dict) -> dict:
    """The settings the user typed on the command line (not click's defaults)."""
    from click.core import ParameterSource

    from .strategies.registry import parse_option_values

    given = {name: params[name] for name in SETTING_NAMES
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if "query_options" in given:
        given["query_options"] = parse_option_values(given["query_options"])
    return given


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
@click.pass_context
def run(ctx, out, resume, config_file, verbose, **params):
    """Run pool-based active learning and write a run directory.

    \b
    Example:
      alplug run --query margin
      alplug run --query entropy --model squeezenet1_1 --rounds 10 --seed 3
    """
    from .config import read_settings
    from .errors import UsageError
    from .rundir import RunDirectory

    # Precedence: command line > --config file > defaults.
    given = {**(read_settings(config_file) if config_file else {}), **_explicit_settings(ctx, params)}
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
    job = ActiveLearningRun(config, echo=click.echo, progress=sys.stderr.isatty() and not verbose)
    if verbose:
        job.estimator.set_params(verbose=1)
    if resume:
        job.check_resumable(run_dir)  # state.json against this run's splits, before anything is said or done
    if run_dir is None:
        run_dir = RunDirectory.create(out_path, config)
    click.echo(f"alplug: {config.query} on {job.data.name} with {config.model}, seed {config.seed}, "
               f"device {job.estimator.device}; splits {job.splits.sizes()}; writing {run_dir.path}")
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
@click.pass_context
def compare(ctx, seeds, jobs, backend, address, scheduler, threads, out, config_file, targets, label_cost, lambdas, **params):
    """Run every strategy with every seed (identical splits per seed), then write the report.

    \b
    Example:
      alplug compare --query random,margin,entropy --seeds 3 --rounds 4
    """
    from .config import read_settings
    from .errors import UsageError
    from .study import Study, run_study
    from .strategies import resolve_query
    from .strategies.registry import options_for

    given = {**(read_settings(config_file) if config_file else {}), **_explicit_settings(ctx, params)}
    queries = [q.strip() for q in str(given.pop("query", params["query"])).split(",") if q.strip()]
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
    problems = []
    for q in queries:  # every unknown name at once, before anything starts
        try:
            resolve_query(q, options_for(q, given.get("query_options")))
        except UsageError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))
    base = dataclasses.replace(RunConfig(), **given).validate()
    targets_, lambdas_ = _numbers(targets, "--targets"), _numbers(lambdas, "--lambdas")
    study = Study(Path(out) if out else Path("studies") / time.strftime("%Y%m%d-%H%M%S"), queries,
                  list(range(first_seed, first_seed + seeds)), base)
    if not (study.path / "study.toml").exists():
        from .loop import ActiveLearningRun

        ActiveLearningRun(dataclasses.replace(base, query=queries[0], seed=first_seed,
                                              query_options=options_for(queries[0], base.query_options)),
                          echo=lambda *_: None)
    from .backends import study_backend

    with study_backend(backend, address or scheduler) as where:  # connects (or fails) before anything is written
        study.prepare()
        outcomes = run_study(study, jobs=jobs, echo=click.echo, backend=where, threads=threads)
    report = _write_report(study, targets_, base.goal or REPORT_GOAL, label_cost, lambdas_)
    failed = [o for o in outcomes if o.status == "failed"]
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
def strategies():
    """List the registered query strategies, their options, and broken plugins."""
    from .strategies.registry import (OPTIONAL_STRATEGIES, StrategyLoadError, conflict_message,
                                      discover_strategies, strategy_options)

    rows, broken = [], []
    registered, conflicts = discover_strategies()
    for name, entry in registered.items():
        try:
            fn = entry.load()
        except StrategyLoadError as exc:
            broken.append((name, entry.origin, str(exc)))
            continue
        doc = (fn.__doc__ or "").strip().splitlines()
        options = " ".join(f"{k}={v!r}" for k, v in strategy_options(fn).items())
        rows.append((name, entry.origin, doc[0] if doc else "", options))
    width = max([len(r[0]) for r in rows + broken] + [4])
    owidth = max([len(r[1]) for r in rows + broken] + [6])
    for name, origin, doc, options in rows:
        click.echo(f"{name:<{width}}  {origin:<{owidth}}  {doc}" + (f"  [options: {options}]" if options else ""))
    for name, origin, reason in broken:
        click.echo(f"{name:<{width}}  {origin:<{owidth}}  BROKEN: {reason}")
    for name, others in conflicts.items():
        click.echo(f"CONFLICT: {conflict_message(name, registered[name], others)}")
    missing = {}
    for name, extra in OPTIONAL_STRATEGIES.items():
        if name not in registered:
            missing.setdefault(extra, []).append(name)
    for extra, names in sorted(missing.items()):
        click.echo(f"not installed: {', '.join(names)} (pip install \"alplug[{extra}]\")")
    click.echo("Combine two as FIRST+SECOND (e.g. entropy+model-outlier, option prefilter=4).")


def _add_labeling_commands():
    from .cli_project import label, project

    cli.add_command(project)
    cli.add_command(label)


_add_labeling_commands()


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

