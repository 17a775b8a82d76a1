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
from .store import ProjectStore

FROM_NAME, TO_NAME, DATA_KEY = "label", "image", "image"  # the names our labeling config gives its tags
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's URL for files under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
MAX_EXPORT_BYTES = 512 * 2**20
MAX_WHO_CHARS = 200


def labeling_config(classes: list[str]) -> str:
    """The labeling config to paste into Label Studio (Settings > Labeling Interface > Code): one image, one
    single choice among the project's classes (escaped: class names are the user's text)."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="${DATA_KEY}"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInLine="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


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
    name the line its task starts on."""
    decoder = json.JSONDecoder()
    i = len(text) - len(text.lstrip())
    if not text.startswith("[", i):
        raise UsageError(f"{source} is not a Label Studio JSON export (a list of tasks); export the project as JSON")
    i += 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text):
            raise UsageError(f"{source}: the list of tasks is not closed; export it again")
        if text[i] == "]":
            return
        line = text.count("\n", 0, i) + 1
        try:
            task, i = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UsageError(f"{source} line {line}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") \
                from None
        yield line, task


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
    who = who if isinstance(who, str) and who.strip() else fallback
    return "".join(ch for ch in who if ch.isprintable())[:MAX_WHO_CHARS]


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


def _project_path(data: dict, known: dict[str, int], images_dir: Path) -> str | None:
    """The project's path of a task's image: our own ``alplug_path``, else the image URL's local-files path (or
    the URL's path) relative to the images folder, else a file name that only one project image has."""
    path = data.get("alplug_path")
    if isinstance(path, str) and path in known:
        return path
    url = data.get(DATA_KEY)
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    d = parse_qs(parts.query).get("d")
    candidate = unquote(d[0] if d else parts.path).lstrip("/")
    for prefix in ("", f"{images_dir.name}/"):
        if candidate.startswith(prefix) and candidate[len(prefix):] in known:
            return candidate[len(prefix):]
    name = candidate.rsplit("/", 1)[-1]
    same_name = [p for p in known if p.rsplit("/", 1)[-1] == name]
    return same_name[0] if len(same_name) == 1 else None


def read_export(store: ProjectStore, source: Path, fallback_who: str) -> ExportRead:
    """Every annotation of a Label Studio JSON export as a label of this project, with its annotator; a task or
    annotation that does not fit (an unknown image or class, no single choice, a malformed entry) is rejected
    with the line its task starts on. Cancelled annotations and tasks without one are counted."""
    try:
        if source.stat().st_size > MAX_EXPORT_BYTES:
            raise UsageError(f"{source} is larger than {MAX_EXPORT_BYTES // 2**20} MiB; export fewer tasks at once")
        with open(source, "rb") as f:
            text = f.read(MAX_EXPORT_BYTES + 1).decode("utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{source} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{source} is a directory; pass Label Studio's JSON export") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not UTF-8 text (byte {exc.start}); export it again as JSON") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    known, classes = store.image_ids_by_path(), set(store.classes)
    unreadable = {p for p, _ in store.unreadable_images()}
    out = ExportRead()
    for line, task in _tasks_with_lines(text, source):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            out.rejected.append((line, "a task", "not a Label Studio task (an object with data)"))
            continue
        name = f"task {task['id']}" if isinstance(task.get("id"), (int, str)) else "a task"
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            out.rejected.append((line, name, "its annotations are not a list"))
            continue
        path = _project_path(task["data"], known, store.images_dir)
        if path is None:
            shown = task["data"].get("alplug_path") or task["data"].get(DATA_KEY)
            why = "unreadable image" if shown in unreadable else "not an image of this project"
            out.rejected.append((line, name, f"{str(shown)[:200]!r}: {why}"))
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
                problem = f"unknown class {label[:100]!r}"
            if problem:
                out.rejected.append((line, name, f"{path}: {problem}"))
                continue
            at = annotation.get("updated_at") or annotation.get("created_at")
            out.labels.append(ExportLabel(line, name, path, label, _annotator(annotation, fallback_who),
                                          at if isinstance(at, str) else ""))
    return out


def import_export(store: ProjectStore, source: Path, fallback_who: str):
    """Add the export's labels to the project (source ``label-studio``), oldest annotation first so that the
    latest is the image's label; an annotation already imported (same image, class and annotator) is counted as
    unchanged, so importing a grown export again adds only what is new."""
    from .csvio import ImportReport

    read = read_export(store, source, fallback_who)
    report = ImportReport(rejected=read.rejected, blank=read.cancelled + read.unlabeled)
    ids = store.image_ids_by_path()
    for item in sorted(read.labels, key=lambda x: x.at):
        image_id = ids[item.path]
        if store.has_label(image_id, item.label, item.who, source="label-studio"):
            report.unchanged += 1
            continue
        store.add_label(image_id, item.label, who=item.who, source="label-studio")
        report.imported += 1
    return report
