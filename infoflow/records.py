"""Tidy records: the one place everything a run measures is kept, and the only input of the figures,
the sweep report and the comparison.

Schema (:data:`RECORD_COLUMNS`), one row per value::

    seed, epoch, layer, estimator, quantity, value, stderr

* ``seed``: the seed of the run (of the ensemble member, once there are several).
* ``epoch``: completed training epochs — 0 before training, e after the e-th epoch.
* ``layer``: 1 = first hidden layer (T_1 of the papers); for gradients the weight layers, the
  read-out last; empty for a value of the whole network (losses, accuracies).
* ``estimator``: what produced the value — ``sp``, ``bin:<scheme>:<size>``,
  ``bin_noisy:<scheme>:<size>``, ``kde_upper``, ``kde_lower``, ``clustering``, ``gradients``,
  ``time`` (a callback's seconds spent measuring so far, quantity ``<callback>_seconds``); in
  ``training.csv`` the data split: ``train`` (noiseless pass over the training set, or noise on for
  ``*_noisy``), ``val``, or another validation loader's name.
* ``quantity``: ``I_XT``, ``I_TY``, ``h_T``, ``h_T_given_X``, ``H_T`` (nats); clustering scores
  (``distance_ratio``, ``silhouette``, ``cos_within_mean``, ...); gradient ``mean_norm``,
  ``std_norm``, ``snr``; training ``loss`` (nats), ``acc``, ``loss_noisy``, ``acc_noisy``.
* ``value``, ``stderr``: numbers; empty is NaN (no standard error given).

Two files share this schema and :func:`read_records`: ``information.csv`` (the measurements, at the
scheduled epochs) and ``training.csv`` (every epoch's losses and accuracies). They are apart
because their cadences differ: an SZT run trains thousands of epochs and measures a few dozen, so
the measurements stay a small file that the figures re-read cheaply while training, and "new
measurements?" is a change of that file alone. ``histograms.csv`` (:data:`HISTOGRAM_COLUMNS`) holds
activation histograms, whose rows are bins, and ``ib_curve.csv`` (:data:`IB_CURVE_COLUMNS`) the
reference IB curve; both go through the same writers and reader.

Appending (:func:`append_rows`) is one ``write`` per batch of rows, flushed to disk. A writer killed
mid-``write`` can leave a partial last line: the next append cuts it off first; :func:`read_records`
refuses it (``allow_partial_tail`` reads past it), so a damaged file is never read as whole.
Files rewritten whole (a sweep's tables, a comparison's summary) use :func:`write_csv_atomic`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from infoflow.errors import StorageError, storage_error
from infoflow.io import write_atomic
from infoflow.stopping import critical

RECORD_COLUMNS = ("seed", "epoch", "layer", "estimator", "quantity", "value", "stderr")
HISTOGRAM_COLUMNS = ("seed", "epoch", "layer", "representation", "bin_lo", "bin_hi", "count")
#: The optimal IB curve of the evaluation set's p(x, y), a reference the figures draw (nats).
IB_CURVE_COLUMNS = ("i_xt", "i_ty", "beta")
INFORMATION_FILE, TRAINING_FILE, HISTOGRAM_FILE = (
    "information.csv",
    "training.csv",
    "histograms.csv",
)
IB_CURVE_FILE = "ib_curve.csv"
#: Every member's final weights (``seeds`` and ``layer_<k>`` arrays, (K, out, in) each).
WEIGHTS_FILE = "weights.npz"


class RecordError(ValueError):
    """A record file that cannot be read; the message is one line naming the file and row."""


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


def _csv_text(rows: Iterable[Sequence], columns: Sequence[str], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {row!r} does not have the {len(columns)} columns {columns}")
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue()


def append_rows(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header written first if the file is new).

    All or nothing: a new file appears whole, with its header (an atomic write: a reader of a
    running run never finds it empty); a write that fails (a full disk) is cut back to the file
    as it was, and raises :class:`~infoflow.errors.StorageError` naming the file; a hard stop
    waits for the append (:func:`infoflow.stopping.critical`).
    """
    path = Path(path)
    try:
        if not path.exists() or path.stat().st_size == 0:
            write_atomic(path, _csv_text(rows, columns, header=True))
            return
        with critical():
            _drop_partial_tail(path)
            _append_whole(path, _csv_text(rows, columns, header=False))
    except OSError as exc:
        if isinstance(exc, StorageError) or storage_error(exc) is None:
            raise
        raise StorageError(path, exc) from exc


def _append_whole(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` and sync it, or leave the file as it was (no buffer that
    could write the rest later)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(text.encode())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # cutting back needs no space
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def write_csv_atomic(
    path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]
) -> Path:
    """Write a whole CSV atomically (:func:`infoflow.io.write_atomic`); returns the path."""
    return write_atomic(path, _csv_text(rows, columns, header=True))


# ---------------------------------------------------------------------------------------- reading


def _number(cell: str) -> float:
    return float(cell) if cell else math.nan


def _layer(cell: str) -> int | None:
    return int(cell) if cell else None


def _name(cell: str) -> str:
    if not cell:
        raise ValueError("empty name")
    return cell


def _count(cell: str) -> int:
    n = int(cell)
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n


_PARSERS: dict[str, Callable[[str], Any]] = {
    "seed": int, "epoch": _count, "layer": _layer, "estimator": _name, "quantity": _name,
    "value": _number, "stderr": _number, "representation": _name, "bin_lo": float,
    "bin_hi": float, "count": float, "i_xt": float, "i_ty": float, "beta": float,
}  # fmt: skip


def _lines(path: Path, allow_partial_tail: bool) -> list[str]:
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not a text file ({exc.reason})") from exc
    lines = text.split("\n")
    if lines[-1]:  # no newline at the end: a writer killed mid-row, or a cut file
        if not allow_partial_tail:
            raise RecordError(f"{path}, row {len(lines)}: incomplete last row {lines[-1][:40]!r}")
    return lines[:-1]


def read_records(
    path: str | os.PathLike,
    columns: Sequence[str] = RECORD_COLUMNS,
    *,
    allow_partial_tail: bool = False,
) -> list[dict[str, Any]]:
    """Every row of a record file as a dict with typed fields (ints; floats, NaN where empty;
    ``layer`` None where empty). ``seed`` is None in files written before records had seeds.

    Raises:
        RecordError: one line naming the file and row (line number, header = 1): a header that is
            not ``columns``, a row of the wrong width, a cell that is not what its column holds, or
            an incomplete last row (unless ``allow_partial_tail``: then it is skipped).
        OSError: the file cannot be read.
    """
    path = Path(path)
    lines = _lines(path, allow_partial_tail)
    if not lines:
        raise RecordError(f"{path}, row 1: empty file (no header)")
    header = next(csv.reader(lines[:1]))
    legacy = tuple(header) == tuple(c for c in columns if c != "seed")
    if tuple(header) != tuple(columns) and not legacy:
        raise RecordError(
            f"{path}, row 1: header {','.join(header)!r}, expected {','.join(columns)!r}"
        )
    out = []
    for number, cells in enumerate(csv.reader(lines[1:]), start=2):
        if len(cells) != len(header):
            raise RecordError(f"{path}, row {number}: {len(cells)} cells, expected {len(header)}")
        try:
            row = {c: _PARSERS[c](v) for c, v in zip(header, cells, strict=True)}
        except ValueError as exc:
            raise RecordError(f"{path}, row {number}: {exc}") from exc
        out.append({"seed": None, **row} if legacy else row)
    return out


def preferred_estimator(candidates: Sequence[str]) -> str | None:
    """The estimator that stands for I(X;T) among ``candidates`` (in their order): ``exact`` (a
    quantized network's), else ``sp``, else the first noiseless binned one, else the first noisy
    binned one, else the first; None if none.

    >>> preferred_estimator(["kde_upper", "bin_noisy:width:0.05", "bin:width:0.05"])
    'bin:width:0.05'
    >>> preferred_estimator(["bin:width:0.05", "exact"])
    'exact'
    """
    for pick in (
        [e for e in candidates if e == "exact"],
        [e for e in candidates if e == "sp"],
        [e for e in candidates if e.startswith("bin:")],
        [e for e in candidates if e.startswith("bin")],
        list(candidates),
    ):
        if pick:
            return pick[0]
    return None


# ----------------------------------------------------------------------------- names for loggers

_PREFIX = {"clustering": "cluster", "gradients": "grad"}


def metric_name(row: dict[str, Any]) -> str:
    """The name a record row has in Lightning's loggers (W&B, metrics.csv): ``train/loss``,
    ``info/sp/layer1/I_XT``, ``cluster/layer2/silhouette``, ``grad/layer1/snr``.

    >>> metric_name({"layer": 2, "estimator": "bin:width:0.05", "quantity": "H_T"})
    'info/bin:width:0.05/layer2/H_T'
    """
    est, q, layer = row["estimator"], row["quantity"], row["layer"]
    if layer is None:
        return f"{est}/{q}"
    prefix = _PREFIX.get(est, f"info/{est}")
    return f"{prefix}/layer{layer}/{q}"


def as_dicts(rows: Iterable[Sequence], columns: Sequence[str] = RECORD_COLUMNS) -> list[dict]:
    """Row tuples as the dicts :func:`read_records` returns (NaN for None values)."""
    out = []
    for row in rows:
        d = dict(zip(columns, row, strict=True))
        for c in ("value", "stderr"):
            if c in d and d[c] is None:
                d[c] = math.nan
        out.append(d)
    return out
