"""Tidy records on disk: append-only CSV files that an interrupted run leaves whole.

``information.csv`` holds one row per (epoch, layer, estimator, quantity):

    epoch, layer, estimator, quantity, value, stderr

``layer`` is the hidden layer's number, 1 = first hidden layer (T_1 of the papers); values and
standard errors are in nats; ``estimator`` is e.g. ``sp``, ``bin:tishby:30``, ``bin:width:0.05``,
``bin_noisy:width:0.05``, ``kde_upper``; ``quantity`` is e.g. ``I_XT``, ``I_TY``, ``h_T``,
``h_T_given_X``, ``H_T``. ``stderr`` is empty where an estimator gives none.

Rows are appended with one ``write`` per batch of rows and flushed to disk. A process killed in the
middle of a write can leave at most a partial last line: readers skip it, and the next append cuts it
off first, so no half-written row is ever read. Derived tables that are rewritten whole (a sweep's
report, a comparison's summary) go through :func:`write_csv_atomic` instead.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

INFORMATION_COLUMNS = ("epoch", "layer", "estimator", "quantity", "value", "stderr")
HISTOGRAM_COLUMNS = ("epoch", "layer", "representation", "bin_lo", "bin_hi", "count")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(float(value))  # shortest exact round-trip; float() drops numpy's repr
    return str(value)


def _drop_partial_tail(path: Path) -> None:
    """Cut a last line that has no newline (left by a killed writer)."""
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def append_rows(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header written first if the file is new)."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    new = not path.exists() or path.stat().st_size == 0
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer.writerow(columns)
    else:
        _drop_partial_tail(path)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {row!r} does not have the {len(columns)} columns {columns}")
        writer.writerow([_cell(v) for v in row])
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Every complete row of a CSV written by :func:`append_rows` (a partial last line is skipped)."""
    text = Path(path).read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def read_information(path: str | os.PathLike) -> list[dict]:
    """``information.csv`` as dicts with typed fields (epoch, layer: int; value, stderr: float)."""
    out = []
    for row in read_rows(path):
        out.append(
            {
                "epoch": int(row["epoch"]),
                "layer": int(row["layer"]),
                "estimator": row["estimator"],
                "quantity": row["quantity"],
                "value": float(row["value"]) if row["value"] else math.nan,
                "stderr": float(row["stderr"]) if row["stderr"] else math.nan,
            }
        )
    return out


def write_csv_atomic(
    path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]
) -> Path:
    """Write a CSV through a temporary file in the same folder and ``os.replace``; returns the path."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
