"""Labels in and out of a project as CSV (``path,label``), for labeling in another tool."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .store import ProjectStore


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    blank: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, path, why)


def _normalise(path: str, root: Path) -> str:
    """A CSV path as the project stores it: relative to the images directory, '/'-separated."""
    p = Path(path.strip())
    if p.is_absolute():
        try:
            p = p.relative_to(root)
        except ValueError:
            return path.strip()
    return p.as_posix()


def read_label_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, path, label) of a CSV with a header naming ``path`` and ``label``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"path", "label"} <= {f.strip() for f in reader.fieldnames}:
        raise UsageError(f"{path} needs a header with the columns path and label (as `alplug project next` writes)")
    reader.fieldnames = [f.strip() for f in reader.fieldnames]
    return [(reader.line_num, row["path"] or "", (row["label"] or "").strip()) for row in reader]


def import_labels(store: ProjectStore, csv_path: Path, who: str) -> ImportReport:
    """Import every valid row; unknown paths and classes are reported, not imported. Rows with an empty
    label (a batch not labeled yet) are counted and left alone."""
    report = ImportReport()
    known, classes = store.image_ids_by_path(), set(store.classes)
    current = {row[0]: row[2] for row in store.current_labels()}
    unreadable = {p for p, _ in store.unreadable_images()}
    for line, raw_path, label in read_label_rows(csv_path):
        path = _normalise(raw_path, store.images_dir)
        if not label:
            report.blank += 1
        elif path not in known:
            why = "unreadable image" if path in unreadable else "not an image of this project"
            report.rejected.append((line, raw_path, why))
        elif label not in classes:
            report.rejected.append((line, raw_path, f"unknown class {label!r}"))
        elif current.get(known[path]) == label:
            report.unchanged += 1
        else:
            store.add_label(known[path], label, who=who, source="import")
            current[known[path]] = label
            report.imported += 1
    return report


def write_rows(rows, out) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "who", "at", "source"])
    writer.writerows(rows)


def export_labels(store: ProjectStore, out) -> int:
    rows = [(path, label, who, at, source) for _, path, label, who, at, source in store.current_labels()]
    write_rows(rows, out)
    return len(rows)


def write_batch(store: ProjectStore, batch: int, out) -> int:
    """The queued images of ``batch`` as ``path,label`` rows with the label empty, to be filled in."""
    paths = store.pending_paths(batch)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label"])
    writer.writerows((path, "") for path in paths)
    return len(paths)
