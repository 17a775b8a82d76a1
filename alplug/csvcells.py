"""The tables alplug writes: CSV cells that a spreadsheet will not run, whole CSV files, and Markdown tables.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``=cmd|...``). OWASP's advice for CSV injection is to
prefix such a cell with a single quote, which spreadsheets show as text. alplug writes paths, class
names and annotator names that come from outside, so every CSV it writes goes through ``neutralise``,
and every CSV it reads back through ``restore``: an export re-imported changes nothing.

The rule is reversible for every string: a cell is prefixed when, after any leading quotes, it starts
with a trigger, and a prefixed cell loses exactly one quote on the way back.
"""
from __future__ import annotations

import csv
import io

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _needs_quote(text: str) -> bool:
    return text.lstrip("'").startswith(TRIGGERS)


def neutralise(value):
    """A cell as it is written: strings that a spreadsheet would run get a leading ``'``; numbers stay."""
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def restore(text: str) -> str:
    """The inverse of ``neutralise`` for a cell read back from a CSV alplug wrote."""
    if text.startswith("'") and _needs_quote(text[1:]):
        return text[1:]
    return text


def safe_rows(rows):
    """Rows (sequences or dicts) with every cell neutralised."""
    for row in rows:
        if isinstance(row, dict):
            yield {k: neutralise(v) for k, v in row.items()}
        else:
            yield [neutralise(v) for v in row]


def csv_text(header, rows) -> str:
    """A whole CSV file (``header`` then ``rows``), every cell neutralised: small files written at once,
    so that ``userfiles.atomic_write`` can put them in place whole or not at all."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([neutralise(h) for h in header])
    writer.writerows(safe_rows(rows))
    return buf.getvalue()


def markdown_table(header: list[str], rows) -> str:
    """A Markdown (GitHub) table, ``|`` in a cell escaped. Four lines of our own: tabulate's "github" format
    leaves a ``|`` in a cell as it is, which splits the cell."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])
