"""`alplug project ...` and `alplug label`: labeling your own images, the model choosing what comes next."""
from __future__ import annotations

import dataclasses
import getpass
import sys
from pathlib import Path

import click

from .cli_options import explicit_settings, run_options, say_preparing, track_option
from .config import RunConfig, project_settings

# The run settings that mean something for a labeling project (declared with project=True: the data set is the
# project's folder, and the person labeling decides when to stop).
PROJECT_SETTINGS = project_settings()
DEFAULT_PROJECT_RECIPE = "few-labels"


# Class names appear in the page, in CSV files and in key bindings: markup, quotes and control characters
# have no business there (the page escapes them anyway; refusing them at init keeps every output plain).
MARKUP = "<>&\"'`"
MAX_CLASS_CHARS = 100


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "unknown"


def _open(project: str):
    from .project import ProjectStore

    return ProjectStore(project)


def _refuse_existing(path: str | None) -> None:
    from .errors import UsageError

    if path and Path(path).exists():
        raise UsageError(f"{path} already exists; choose another --out (nothing is overwritten)")


@click.group()
def project():
    """A labeling project: your images, your classes, the model choosing what to label next.

    \b
    alplug project init shoes --images ~/photos --classes boot,sandal,sneaker
    alplug label shoes                  # label in the browser, or in another tool:
    alplug project next shoes -n 50 --out to_label.csv
    alplug project import shoes to_label.csv
    alplug project export shoes --out labels.csv
    """


@project.command()
@click.argument("project_dir", metavar="PROJECT", type=click.Path())
@click.option("--images", "images_dir", required=True, type=click.Path(),
              help="Folder of images (searched recursively; they stay where they are).")
@click.option("--classes", required=True, help="Comma-separated class names, e.g. cat,dog,bird.")
@run_options(only=PROJECT_SETTINGS)
@click.pass_context
def init(ctx, project_dir, images_dir, classes, **params):
    """Create a labeling project (a directory with an SQLite database) for a folder of images."""
    from .errors import UsageError
    from .project.images import scan_images
    from .project.store import ProjectStore

    names = [c.strip() for c in classes.split(",")]
    if len(names) < 2 or any(not c for c in names) or len(set(names)) != len(names):
        raise UsageError(f"--classes {classes!r} must name at least two distinct, non-empty classes")
    bad = [c for c in names if len(c) > MAX_CLASS_CHARS or any(ch in MARKUP or not ch.isprintable() for ch in c)]
    if bad:
        raise UsageError(f"--classes: {', '.join(map(repr, bad))} may not hold control characters or any of "
                         f"{' '.join(MARKUP)}, nor be longer than {MAX_CLASS_CHARS} characters; use plain names "
                         "such as cat,dog,bird")
    path = Path(project_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{path} already exists; choose another PROJECT directory (nothing is overwritten)")
    given = explicit_settings(ctx, params)
    # A project takes the few-labels recipe unless told otherwise (--recipe none): few labels is what it is for.
    settings = dataclasses.replace(RunConfig(), dataset="project", **{"recipe": DEFAULT_PROJECT_RECIPE, **given})
    from .checks import check_run_settings
    from .models import build_on_meta_device

    check_run_settings(settings, echo=click.echo)  # bad settings and unknown strategies fail before anything is made
    from .project.learn import DEFAULT_IMAGE_SIZE

    def check_model(s: RunConfig) -> None:
        # an unknown model, a missing or foreign weights file, or a model whose outputs do not fit fails now
        build_on_meta_device(s.model, num_classes=len(names), dropout=s.dropout,
                             image_size=s.image_size or DEFAULT_IMAGE_SIZE, weights=s.weights,
                             features_from=s.features_from)

    check_model(settings)  # as given, before the folder is read
    root = Path(images_dir).expanduser().resolve()
    rows, recipe_lines = None, []
    if settings.recipe is not None:  # resolved once, on the project's images; project next trains with the result
        from .data.sources import is_colour
        from .presets import DataFacts, apply_recipe

        rows = scan_images(root, warn=lambda m: click.echo(m, err=True))
        usable = [r for r in rows if r[1]]
        facts = DataFacts(channels=3 if is_colour({r[3] for r in usable}) else 1,
                          side=settings.image_size or DEFAULT_IMAGE_SIZE, classes=len(names), pool=len(usable),
                          labels=None, project=True)
        settings, recipe_lines = apply_recipe(settings, facts, set(given))
        for line in recipe_lines:
            click.echo(line)
        check_model(settings)  # as the recipe made it
    if rows is None:
        rows = scan_images(root, warn=lambda m: click.echo(m, err=True))
    store = ProjectStore.create(path, root, names, settings, rows)
    if recipe_lines:
        from .presets import record_choices

        record_choices(path, recipe_lines)
    readable = sum(1 for r in rows if r[1])
    unreadable = f" ({len(rows) - readable} unreadable, left out)" if len(rows) > readable else ""
    click.echo(f"alplug project: {path} with {readable} images from {root}{unreadable}, classes {', '.join(names)}; "
               f"{settings.query} with {settings.model}, {settings.per_round} per batch")
    click.echo(f"next: `alplug label {path}` (browser) or `alplug project next {path} --out to_label.csv`")
    store.close()


@project.command(name="next")
@click.argument("project_dir", metavar="PROJECT")
@click.option("-n", "n", type=int, default=None, help="Images in the batch. [default: the project's --per-round]")
@click.option("--format", "fmt", type=click.Choice(["csv", "label-studio"]), default="csv", show_default=True,
              help="csv: path,label with the label empty; label-studio: Label Studio tasks (JSON) with the model's "
                   "guesses as predictions, and PROJECT/label-studio.xml, the labeling config to paste.")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="File to write. [default: PROJECT/batch-NNNN.csv or .json]")
@click.option("--image-url", default=None,
              help="label-studio: URL prefix of the images in Label Studio (the image's path is appended). "
                   "[default: Label Studio's local files, /data/local-files/?d=IMAGES_FOLDER/PATH]")
@track_option
def next_(project_dir, n, fmt, out, image_url, track):
    """Train on the labels so far and queue the next batch (picked by --initial, typicality by default,
    while there are too few labels to train)."""
    say_preparing("project next")
    from .errors import UsageError
    from .project.csvio import batch_csv
    from .project.learn import next_batch
    from .tracking import parse_track
    from .userfiles import atomic_write

    parse_track(track)  # an unknown or missing tracker is refused before any work
    if image_url is not None and fmt != "label-studio":
        raise UsageError("--image-url goes with --format label-studio")
    if image_url is not None:
        from .project.labelstudio import check_image_url

        check_image_url(image_url)
    store = _open(project_dir)
    n = n if n is not None else store.settings.per_round
    if n < 1:
        raise UsageError(f"-n {n} must be >= 1")
    _refuse_existing(out)
    result = next_batch(store, n, echo=lambda m: click.echo(m, err=True), track=track)
    if result.dropped:
        click.echo(f"alplug project: {result.dropped} unlabeled image(s) of the previous batch went back to the pool",
                   err=True)
    if result.size == 0:
        click.echo("alplug project: every image is labeled or skipped; nothing to queue")
        return
    suffix = ".json" if fmt == "label-studio" else ".csv"
    target = Path(out) if out else store.project / f"batch-{result.batch:04d}{suffix}"
    if fmt == "label-studio":
        import json

        from .project.labelstudio import batch_tasks, labeling_config

        config = store.project / "label-studio.xml"
        atomic_write(config, labeling_config(store.classes))
        tasks = batch_tasks(store, result.batch, result.how, prefix=image_url)
        atomic_write(target, json.dumps(tasks, indent=1, ensure_ascii=False), exclusive=True)
    else:
        atomic_write(target, batch_csv(store, result.batch)[0], exclusive=True)
    acc = f", validation accuracy {result.val_accuracy:.3f}" if result.val_accuracy is not None else ""
    click.echo(f"alplug project: batch {result.batch}, {result.size} images by {result.how} "
               f"(trained on {result.trained_on} labels{acc}) -> {target}")
    if fmt == "label-studio":
        click.echo(f"import {target} into a Label Studio project whose labeling config is {config}; export it as "
                   f"JSON, then `alplug project import {project_dir} EXPORT.json`")
    else:
        click.echo(f"fill in the label column, then `alplug project import {project_dir} {target}`")


@project.command(name="import")
@click.argument("project_dir", metavar="PROJECT")
@click.argument("csv_file", metavar="FILE", type=click.Path())
@click.option("--who", default=None,
              help="Who labeled them (a Label Studio export names its own annotators). [default: your login name]")
@click.pass_context
def import_(ctx, project_dir, csv_file, who):
    """Import labels from a CSV with path and label columns, or from a Label Studio JSON export (FILE ending in
    .json); bad rows are reported by line, not imported."""
    from .project.csvio import import_labels
    from .project.store import check_annotator

    who = check_annotator(who if who is not None else _user())
    store = _open(project_dir)
    if Path(csv_file).suffix.lower() == ".json":
        from .project.labelstudio import import_export

        report = import_export(store, Path(csv_file), who, echo=lambda line: click.echo(line, err=True))
    else:
        report = import_labels(store, Path(csv_file), who)
    superseded = f", {report.superseded} superseded by a later annotation" if report.superseded else ""
    click.echo(f"alplug project: imported {report.imported} label(s); {report.unchanged} unchanged{superseded}, "
               f"{report.blank} without a label, {len(report.rejected)} rejected")
    for line, path, why in report.rejected[:20]:
        click.echo(f"  line {line}: {path}: {why}", err=True)
    if len(report.rejected) > 20:
        click.echo(f"  ... and {len(report.rejected) - 20} more", err=True)
    if report.rejected:
        ctx.exit(1)


@project.command()
@click.argument("project_dir", metavar="PROJECT")
@click.option("--out", "-o", type=click.Path(), default=None, help="CSV file to write. [default: standard output]")
def export(project_dir, out):
    """Write every label (path,label,who,at,source) as CSV."""
    from .project.csvio import export_labels
    from .userfiles import atomic_write

    store = _open(project_dir)
    _refuse_existing(out)
    text, n = export_labels(store)
    if out:
        atomic_write(Path(out), text, exclusive=True)
        click.echo(f"alplug project: {n} labels -> {out}", err=True)
    else:
        sys.stdout.write(text)


@project.command()
@click.argument("project_dir", metavar="PROJECT")
def status(project_dir):
    """Labels so far, the queue, and each batch's training."""
    store = _open(project_dir)
    p = store.progress()
    counts = {c: 0 for c in store.classes}
    for row in store.current_labels():
        counts[row[2]] += 1
    click.echo(f"{store.project}: {p['labeled']} labeled, {p['unlabeled']} unlabeled ({p['remaining_in_batch']} of "
               f"them waiting in the queue), {len(store.unreadable_images())} unreadable; images in {store.images_dir}")
    click.echo("labels per class: " + ", ".join(f"{c} {k}" for c, k in counts.items()))
    if p["waiting_for_others"]:
        click.echo(f"{p['waiting_for_others']} queued image(s) have a label and wait for more annotators (--overlap); "
                   f"`alplug label {project_dir} --overlap 1` (or any lower --overlap) releases them")
    for b in store.batches():
        acc = f"{b['val_accuracy']:.3f}" if b["val_accuracy"] is not None else "-"
        click.echo(f"  batch {b['batch']:>3}  {b['created_at']}  {b['how']:<24} trained on {b['trained_on']:>5}  "
                   f"val. accuracy {acc}  {b['seconds']:.1f} s")
    _echo_agreement(store)


MAX_LINES = 20  # pairs and disagreements `project status` prints; the page lists more


def _echo_agreement(store) -> None:
    """Agreement between annotators, when more than one labeled the same images."""
    from .project.agreement import agreement
    from .userfiles import printable

    result = agreement(store.annotations(), store.classes, {i: p for p, i in store.image_ids_by_path().items()})
    if not result["shared_images"]:
        return
    click.echo(f"agreement: {len(result['annotators'])} annotators, {result['shared_images']} image(s) labeled by "
               "more than one (training uses the majority label, the latest on a tie)")
    pairs = sorted((p for p in result["pairs"] if p["shared"]), key=lambda p: -p["shared"])
    if result["pairs_among"] < len(result["annotators"]):
        click.echo(f"  pairs among the {result['pairs_among']} annotators with the most labels")
    for pair in pairs[:MAX_LINES]:
        kappa = "-" if pair["kappa"] is None else f"{pair['kappa']:.3f}"
        click.echo(f"  {' - '.join(printable(a, 60) for a in pair['annotators'])}: Cohen's kappa {kappa} on "
                   f"{pair['shared']} shared image(s), {pair['agreed']} agreed")
    if len(pairs) > MAX_LINES:
        click.echo(f"  ... and {len(pairs) - MAX_LINES} more pairs (the page's agreement panel lists every pair counted)")
    if result["fleiss_kappa"] is not None:
        click.echo(f"  Fleiss' kappa {result['fleiss_kappa']:.3f} on the {result['fleiss_images']} image(s) "
                   "everyone labeled")
    for d in result["disagreements"][:MAX_LINES]:
        more = f" (and {d['annotators'] - len(d['labels'])} more)" if d["annotators"] > len(d["labels"]) else ""
        click.echo(f"  disagree: {printable(d['path'])}: "
                   + ", ".join(f"{printable(w, 60)}: {lab}" for w, lab in d["labels"].items()) + more)
    if len(result["disagreements"]) > MAX_LINES:
        click.echo(f"  ... and {len(result['disagreements']) - MAX_LINES} more disagreements")


@click.command()
@click.argument("project_dir", metavar="PROJECT")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback requires the token printed at start.")
@click.option("--port", type=int, default=0, help="Port. [default: a free one, printed at start]")
@click.option("-n", "--per-round", "per_round", type=int, default=None,
              help="Images per batch before retraining. [default: the project's --per-round]")
@click.option("--annotator", default=None, help="Name stored with each label. [default: your login name]")
@click.option("--hint/--no-hint", default=False, show_default=True,
              help="Show the model's guess and confidence (biases annotators; off by default).")
@click.option("--retrain-timeout", type=float, default=3600, show_default=True,
              help="Seconds a retraining may take before it is stopped, reported on the page and retried.")
@click.option("--overlap", type=int, default=None,
              help="Annotators who each label the overlapping share of every new batch (for agreement); queued "
                   "images waiting for more annotators than this are released. [default: 1, and queued images "
                   "keep waiting for theirs]")
@click.option("--overlap-share", type=float, default=0.2, show_default=True,
              help="With --overlap K > 1: the share of each new batch that K annotators label.")
@track_option
def label(project_dir, host, port, per_round, annotator, hint, retrain_timeout, overlap, overlap_share, track):
    """Label a project's images in the browser; the model picks each next batch.

    \b
    Keys: a class named by one key (0-9, a letter) is labeled by that key; the others by
    1-9, 0, then q w e r ... in order (each key is shown on its button);
    Backspace undoes this tab's last label, Space skips, arrows move in the grid view.
    """
    from .errors import UsageError
    from .project.server import serve
    from .project.store import check_annotator
    from .tracking import parse_track

    parse_track(track)
    annotator = check_annotator(annotator if annotator is not None else _user())
    store = _open(project_dir)
    from .project.learn import check_project_model

    check_project_model(store)  # a model plugin changed since init fails here, not in every retraining
    n = per_round if per_round is not None else store.settings.per_round
    if overlap is not None and overlap >= 1:  # fewer annotators than an earlier --overlap asked for
        released = store.limit_overlap(overlap)
        if released:
            click.echo(f"alplug label: {released} queued image(s) waited for more than {overlap} annotator(s); "
                       "they are labeled now")
    store.close()
    overlap = 1 if overlap is None else overlap
    if n < 1 or not 0 <= port < 65536:
        raise UsageError(f"-n {n} must be >= 1 and --port {port} in 0..65535")
    if not retrain_timeout > 0:
        raise UsageError(f"--retrain-timeout {retrain_timeout} must be > 0 seconds")
    if overlap < 1 or not 0 < overlap_share <= 1:
        raise UsageError(f"--overlap {overlap} must be >= 1 and --overlap-share {overlap_share} in (0, 1]")
    try:
        serve(project_dir, host=host, port=port, batch_size=n, annotator=annotator, hint=hint,
              echo=click.echo, retrain_timeout=retrain_timeout, track=track, overlap=(overlap, overlap_share))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                         "or --host") from None
