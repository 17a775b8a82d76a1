"""Label Studio in and out: a project's next batch as Label Studio tasks (the model's guesses as predictions), and
a Label Studio JSON export read back as labels with their annotators.

Label Studio's community edition cannot order tasks by a model's choice; alplug picks the batch and Label Studio
shows it. The files follow Label Studio's task and export formats (labelstud.io/guide/task_format); the tests check
them with Label Studio's own SDK (``label_studio_sdk.label_interface``). Nothing here imports the SDK: writing ten
lines of JSON does not need it, and an export is untrusted input that we check ourselves, field by field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from ..errors import UsageError
from ..userfiles import printable, read_user_text
from .store import MAX_WHO_CHARS, ProjectStore

FROM_NAME, TO_NAME, DATA_KEY = "label", "image", "image"  # the names our labeling config gives its tags
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's URL for files under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
MAX_EXPORT_BYTES = 256 * 2**20  # tens of thousands of tasks; the parsed tasks take several times this


def labeling_config(classes: list[str]) -> str:
    """The labeling config to paste into Label Studio (Settings > Labeling Interface > Code): one image, one
    single choice among the project's classes (escaped: class names are the user's text)."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="${DATA_KEY}"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInLine="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def check_image_url(prefix: str) -> str:
    """``--image-url``: an http(s) URL or a path on Label Studio's own server ("/data/..."), ending in "/" (the
    image's path is appended as it is: without the slash the folder's name and the path would run together).
    Anything else (``javascript:``, ``data:``, a bare word) would reach the annotators' browsers as an image
    source, so it is refused."""
    from urllib.parse import urlsplit

    shown = printable(prefix, 100)
    try:
        parts = urlsplit(prefix)
    except ValueError as exc:
        raise UsageError(f"--image-url {shown!r}: not a valid URL ({exc})") from None
    if not ((parts.scheme in ("http", "https") and parts.netloc) or (not parts.scheme and prefix.startswith("/")
                                                                     and not prefix.startswith("//"))):
        raise UsageError(f"--image-url {shown!r}: give an http:// or https:// URL, or a path on Label Studio's "
                         "server that starts with /")
    if not prefix.isprintable() or any(c.isspace() for c in prefix):
        raise UsageError(f"--image-url {shown!r}: spaces and control characters do not belong in a URL")
    if not prefix.endswith(("/", "=")):
        raise UsageError(f"--image-url {shown!r}: end it with / (the image's path is appended to it), e.g. "
                         f"{shown}/")
    return prefix


def image_url(store: ProjectStore, path: str, prefix: str | None) -> str:
    """Where Label Studio reads an image: ``prefix`` + the path, or by default Label Studio's local-files URL
    for a document root that is the images folder's parent (docs/labeling.md)."""
    if prefix is not None:
        return prefix + quote(path)
    return LOCAL_FILES + quote(f"{store.images_dir.name}/{path}")


def batch_tasks(store: ProjectStore, batch: int, how: str, prefix: str | None = None) -> list[dict]:
    """The images of ``batch`` still waiting for a label, as Label Studio tasks; each with the model's guess as a
    prediction (choices, scored by the model's confidence) when a trained model picked the batch."""
    tasks = []
    for image_id, path, guess, confidence in store.pending_items(batch):
        task = {"data": {DATA_KEY: image_url(store, path, prefix), "alplug_path": path, "alplug_batch": batch}}
        if guess is not None:
            task["predictions"] = [{
                "model_version": f"alplug batch {batch} ({how})", "score": round(float(confidence), 6),
                "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                            "value": {"choices": [guess]}, "score": round(float(confidence), 6)}],
            }]
        tasks.append(task)
    return tasks


# ---- reading an export --------------------------------------------------------------------------------------------

@dataclass
class ExportLabel:
    line: int        # where the task starts in the file
    task: str        # its id, for messages
    path: str        # the project's path of the image
    label: str
    who: str
    at: str          # Label Studio's time of the annotation (ordering: the latest counts)


@dataclass
class ExportRead:
    labels: list[ExportLabel] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, what, why)
    cancelled: int = 0   # annotations skipped in Label Studio ("was_cancelled")
    unlabeled: int = 0   # tasks without an annotation


def _tasks_with_lines(text: str, source: Path):
    """(line, task) for each element of the export's top-level list, parsed one by one so that every problem can
    name the line its task starts on (lines counted as the parse moves on: linear in the file's length)."""
    decoder = json.JSONDecoder()
    i = len(text) - len(text.lstrip())
    if not text.startswith("[", i):
        raise UsageError(f"{source} is not a Label Studio JSON export (a list of tasks); export the project as JSON")
    i += 1
    line, counted = 1, 0  # the line number at text[counted]
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            raise UsageError(f"{source}: the list of tasks is not closed; export it again")
        if text[i] == "]":
            return
        line += text.count("\n", counted, i)
        counted = i
        try:
            task, i = decoder.raw_decode(text, i)
        except (ValueError, RecursionError) as exc:  # ValueError: also an integer of more digits than Python takes
            raise UsageError(f"{source} line {line}: not valid JSON ({_json_problem(exc)})") from None
        yield line, task


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return str(exc).split(";")[0]  # "Exceeds the limit (4300 digits) for integer string conversion"


def _annotator(annotation: dict, fallback: str) -> str:
    """Who made an annotation: Label Studio's ``created_username`` ("name, id" or an email), else the e-mail of a
    ``completed_by`` object, else ``label-studio-user-ID``, else ``fallback``."""
    who = annotation.get("created_username")
    if isinstance(who, str) and who.strip():
        name, _, rest = who.strip().rpartition(",")
        who = name.strip() if name.strip() and rest.strip().isdigit() else who.strip()
    else:
        by = annotation.get("completed_by")
        if isinstance(by, dict):
            who = by.get("email") or by.get("username") or (f"label-studio-user-{by['id']}" if "id" in by else None)
        elif isinstance(by, int) and not isinstance(by, bool):
            who = f"label-studio-user-{by}"
    who = "".join(ch for ch in who if ch.isprintable()).strip()[:MAX_WHO_CHARS] if isinstance(who, str) else ""
    return who or fallback  # a name of control characters only is no name


def _choice(annotation: dict) -> tuple[str | None, str | None]:
    """(label, problem) of one annotation: exactly one choice in its result."""
    result = annotation.get("result")
    if not isinstance(result, list):
        return None, "its result is not a list"
    choices = []
    for region in result:
        if not isinstance(region, dict):
            return None, "a result entry is not an object"
        value = region.get("value")
        if region.get("type") == "choices" and isinstance(value, dict):
            picked = value.get("choices")
            if not isinstance(picked, list) or not all(isinstance(c, str) for c in picked):
                return None, "its choices are not a list of class names"
            choices += picked
    if len(choices) != 1:
        return None, f"it has {len(choices)} choices; one class per image is expected" if choices else \
            "it has no choice (a labeling config with Choices is expected)"
    return choices[0].strip(), None


class _PathFinder:
    """The project's path of a task's image: our own ``alplug_path``, else the image URL's local-files path (or
    the URL's path) relative to the images folder, else a file name that only one project image has. The names
    are indexed once: a lookup costs the same whatever the number of images."""

    def __init__(self, known: dict[str, int], images_dir: Path):
        self.known, self.folder = known, f"{images_dir.name}/"
        self.by_name: dict[str, list[str]] = {}
        for p in known:
            self.by_name.setdefault(p.rsplit("/", 1)[-1], []).append(p)

    def __call__(self, data: dict) -> str | None:
        path = data.get("alplug_path")
        if isinstance(path, str) and path in self.known:
            return path
        url = data.get(DATA_KEY)
        if not isinstance(url, str):
            return None
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed [ in the host
            return None
        d = parse_qs(parts.query).get("d")
        candidate = unquote(d[0] if d else parts.path).lstrip("/")
        for prefix in ("", self.folder):
            if candidate.startswith(prefix) and candidate[len(prefix):] in self.known:
                return candidate[len(prefix):]
        same_name = self.by_name.get(candidate.rsplit("/", 1)[-1], [])
        return same_name[0] if len(same_name) == 1 else None


PROGRESS_EVERY = 10_000  # tasks between progress lines on long imports


def read_export(store: ProjectStore, source: Path, fallback_who: str, echo=None) -> ExportRead:
    """Every annotation of a Label Studio JSON export as a label of this project, with its annotator; a task or
    annotation that does not fit (an unknown image or class, no single choice, a malformed entry) is rejected
    with the line its task starts on. Cancelled annotations and tasks without one are counted. ``echo``: where
    a long import says how far it got."""
    text = read_user_text(source, MAX_EXPORT_BYTES, str(source), too_large="export fewer tasks at once",
                          hint="export it again as JSON")
    known, classes = store.image_ids_by_path(), set(store.classes)
    find = _PathFinder(known, store.images_dir)
    unreadable = {p for p, _ in store.unreadable_images()}
    out = ExportRead()
    for n, (line, task) in enumerate(_tasks_with_lines(text, source), 1):
        if echo and n % PROGRESS_EVERY == 0:
            echo(f"alplug project: read {n:,} tasks (line {line:,})")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            out.rejected.append((line, "a task", "not a Label Studio task (an object with data)"))
            continue
        name = f"task {printable(str(task['id']), 40)}" if isinstance(task.get("id"), (int, str)) else "a task"
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            out.rejected.append((line, name, "its annotations are not a list"))
            continue
        path = find(task["data"])
        if path is None:
            shown = task["data"].get("alplug_path") or task["data"].get(DATA_KEY)
            why = "unreadable image" if isinstance(shown, str) and shown in unreadable else \
                "not an image of this project"
            out.rejected.append((line, name, f"{printable(repr(shown))}: {why}"))
            continue
        if not annotations:
            out.unlabeled += 1
        for annotation in annotations:
            if not isinstance(annotation, dict):
                out.rejected.append((line, name, "an annotation is not an object"))
                continue
            if annotation.get("was_cancelled") is True:
                out.cancelled += 1
                continue
            label, problem = _choice(annotation)
            if problem is None and label not in classes:
                problem = f"unknown class {printable(repr(label), 100)}"
            if problem:
                out.rejected.append((line, name, f"{path}: {problem}"))
                continue
            at = annotation.get("updated_at") or annotation.get("created_at")
            out.labels.append(ExportLabel(line, name, path, label, _annotator(annotation, fallback_who),
                                          at if isinstance(at, str) else ""))
    return out


def import_export(store: ProjectStore, source: Path, fallback_who: str, echo=None):
    """Add the export's labels to the project (source ``label-studio``) in one transaction: all or nothing.

    Each annotator's latest annotation of an image (by Label Studio's ``updated_at``) is their label; it is
    compared with that annotator's current label in the project, so importing the same or a grown export again
    adds only what changed, and a label changed back (zero, one, zero) ends where Label Studio ends."""
    from .csvio import ImportReport

    read = read_export(store, source, fallback_who, echo)
    report = ImportReport(rejected=read.rejected, blank=read.cancelled + read.unlabeled)
    ids = store.image_ids_by_path()
    latest: dict[tuple[str, str], ExportLabel] = {}
    for item in sorted(read.labels, key=lambda x: x.at):  # stable: in the file's order at equal times
        key = (item.path, item.who)
        if key in latest:
            report.superseded += 1
        latest[key] = item
    rows = []
    current = store.labels_by_annotator()
    for (path, who), item in latest.items():
        if current.get((ids[path], who)) == item.label:
            report.unchanged += 1
        else:
            rows.append((ids[path], item.label, who))
    store.add_labels(rows, source="label-studio")
    report.imported = len(rows)
    return report
