"""Labels in and out of a project as CSV (``path,label``), for labeling in another tool."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..csvcells import csv_text, restore
from ..errors import UsageError
from ..userfiles import printable, read_user_text
from .store import ProjectStore


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    superseded: int = 0  # annotations replaced by a later one of the same annotator in the same file
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


MAX_CSV_BYTES = 256 * 2**20  # far beyond any label list; a larger file is a mistake, not labels


def read_label_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, path, label) of a CSV with a header naming ``path`` and ``label`` once each.
    Cells are read back through ``csvcells.restore``, so an alplug export imports unchanged."""
    text = read_user_text(path, MAX_CSV_BYTES, str(path), too_large="split it into smaller CSV files",
                          hint="save it as UTF-8 CSV and import it again")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise UsageError(f"{path} line {reader.line_num}: not valid CSV ({exc})") from None
    for column in ("path", "label"):
        if header.count(column) != 1:
            problem = "twice" if header.count(column) > 1 else "not at all"
            raise UsageError(f"{path} names the column {column!r} {problem}; it needs a header with the columns "
                             "path and label once each (as `alplug project next` writes)")
    at_path, at_label = header.index("path"), header.index("label")

    def cell(row, i):
        return restore(row[i]) if i < len(row) else ""

    return [(line, cell(row, at_path), cell(row, at_label).strip()) for line, row in rows if any(row)]


def import_labels(store: ProjectStore, csv_path: Path, who: str) -> ImportReport:
    """Import every valid row; unknown paths and classes are reported, not imported. Rows with an empty
    label (a batch not labeled yet) are counted and left alone."""
    report, rows = ImportReport(), []
    known, classes = store.image_ids_by_path(), set(store.classes)
    current = {row[0]: row[2] for row in store.current_labels()}
    unreadable = {p for p, _ in store.unreadable_images()}
    for line, raw_path, label in read_label_rows(csv_path):
        path = _normalise(raw_path, store.images_dir)
        if not label:
            report.blank += 1
        elif path not in known:
            why = "unreadable image" if path in unreadable else "not an image of this project"
            report.rejected.append((line, printable(raw_path), why))
        elif label not in classes:
            report.rejected.append((line, raw_path, f"unknown class {printable(repr(label), 100)}"))
        elif current.get(known[path]) == label:
            report.unchanged += 1
        else:
            rows.append((known[path], label, who))
            current[known[path]] = label
    store.add_labels(rows, source="import")  # one transaction: a kill or a lock leaves nothing half-imported
    report.imported = len(rows)
    return report


def export_labels(store: ProjectStore) -> tuple[str, int]:
    """Every current label as CSV text (path,label,who,at,source) and how many rows it has."""
    rows = [(path, label, who, at, source) for _, path, label, who, at, source in store.current_labels()]
    return csv_text(["path", "label", "who", "at", "source"], rows), len(rows)


def batch_csv(store: ProjectStore, batch: int) -> tuple[str, int]:
    """The queued images of ``batch`` as ``path,label`` CSV text with the label empty, to be filled in."""
    paths = store.pending_paths(batch)
    return csv_text(["path", "label"], [(path, "") for path in paths]), len(paths)
