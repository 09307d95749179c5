"""Read a run directory into the plain structures the figure functions take.

* information rows: the dicts of :func:`infoflow.records.read_information`
  (epoch, layer, estimator, quantity, value, stderr; nats).
* metrics: ``dict[column, np.ndarray]`` merged by epoch (``"epoch"`` sorted, NaN where missing).
* histogram rows: dicts with epoch, layer (int), representation (str), bin_lo, bin_hi, count (float).
* snapshots: ``{epoch: {"labels": (n,), "layer_<k>": (n, d)}}``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from infoflow.records import read_information, read_rows

log = logging.getLogger(__name__)

SZT_INPUTS = 4096
SZT_POSITIVES = 2118
_SNAPSHOT = re.compile(r"^epoch_(\d+)\.npz$")


class PlotInputError(ValueError):
    """A run directory or one of its files that cannot be read (one-line message)."""


class Series(NamedTuple):
    """One layer's values of one (estimator, quantity) against epoch, sorted by epoch; nats."""

    epoch: np.ndarray
    value: np.ndarray
    stderr: np.ndarray


def load_information(path: str | os.PathLike) -> list[dict]:
    """``information.csv`` as typed rows; PlotInputError if it cannot be parsed."""
    try:
        return read_information(path)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error) as exc:
        raise PlotInputError(f"cannot parse {path}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise PlotInputError(f"cannot read {path}: {exc}") from exc


def bin_size(estimator: str) -> float:
    """The size in a binned estimator's name (``bin:width:0.05`` → 0.05; ``bin:tishby:30`` → 30),
    +inf where the name has none: a sort key that puts sizes in order."""
    try:
        return float(estimator.rsplit(":", 1)[-1])
    except ValueError:
        return float("inf")


def estimators_with(rows: Sequence[Mapping], *quantities: str) -> list[str]:
    """Estimators (in order of first appearance) that have rows for every one of ``quantities``."""
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["estimator"], set()).add(r["quantity"])
    return [est for est, qs in seen.items() if set(quantities) <= qs]


def series(rows: Sequence[Mapping], estimator: str, quantity: str) -> dict[int, Series]:
    """``{layer: Series}`` for one estimator and quantity (the last row wins on a repeated epoch)."""
    by_layer: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    for r in rows:
        if r["estimator"] == estimator and r["quantity"] == quantity:
            by_layer[int(r["layer"])][int(r["epoch"])] = (r["value"], r["stderr"])
    out = {}
    for layer in sorted(by_layer):
        pts = sorted(by_layer[layer].items())
        out[layer] = Series(
            epoch=np.array([e for e, _ in pts], dtype=np.int64),
            value=np.array([v for _, (v, _) in pts], dtype=float),
            stderr=np.array([s for _, (_, s) in pts], dtype=float),
        )
    return out


def _float(cell: str | None) -> float:
    try:
        return float(cell) if cell not in (None, "") else math.nan
    except ValueError:
        return math.nan


def load_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Lightning CSVLogger ``metrics.csv`` merged by epoch: the mean of each column's values.

    Rows holding only some columns (one row per logging call) are merged; ``"epoch"`` is sorted;
    a column without a value at an epoch is NaN there. Rows without an epoch are dropped.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlotInputError(f"cannot read {path}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "epoch" not in reader.fieldnames:
        raise PlotInputError(f"{path} has no 'epoch' column")
    sums: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    epochs: set[int] = set()
    for row in reader:
        epoch = _float(row.get("epoch"))
        if not math.isfinite(epoch):
            continue
        epochs.add(int(epoch))
        for col, cell in row.items():
            value = _float(cell) if isinstance(cell, str) else math.nan
            if col not in (None, "epoch", "step") and math.isfinite(value):
                sums[col][int(epoch)].append(value)
    order = sorted(epochs)
    out = {"epoch": np.array(order, dtype=np.int64)}
    for col, per_epoch in sums.items():
        out[col] = np.array([np.mean(per_epoch[e]) if e in per_epoch else np.nan for e in order])
    return out


def load_histograms(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``histograms.csv`` rows with typed fields; PlotInputError if it cannot be parsed."""
    try:
        return [
            {
                "epoch": int(r["epoch"]),
                "layer": int(r["layer"]),
                "representation": r["representation"],
                "bin_lo": float(r["bin_lo"]),
                "bin_hi": float(r["bin_hi"]),
                "count": float(r["count"]),
            }
            for r in read_rows(path)
        ]
    except (KeyError, ValueError, TypeError, OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PlotInputError(f"cannot parse {path}: {type(exc).__name__}: {exc}") from exc


def snapshot_epochs(snap_dir: str | os.PathLike) -> dict[int, Path]:
    """``{epoch: path}`` of the ``epoch_XXXXXX.npz`` files in ``snap_dir`` (empty if none)."""
    snap_dir = Path(snap_dir)
    if not snap_dir.is_dir():
        return {}
    found = {}
    for p in snap_dir.iterdir():
        m = _SNAPSHOT.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def load_snapshot(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of one snapshot file (``labels``, ``layer_<k>``)."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def load_config(path: str | os.PathLike) -> dict:
    """The run's resolved ``config.yaml`` as a dict; {} if missing or unreadable (logged)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        import yaml

        cfg = yaml.safe_load(path.read_text())
    except Exception as exc:  # any YAML or I/O error: plots still work without the config
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return cfg if isinstance(cfg, dict) else {}


def config_units(cfg: Mapping) -> str | None:
    """``callbacks.plots.units`` from the run's config, if set."""
    callbacks = cfg.get("callbacks")
    plots = callbacks.get("plots") if isinstance(callbacks, Mapping) else None
    return plots.get("units") if isinstance(plots, Mapping) else None


def is_szt(cfg: Mapping) -> bool:
    """Whether the run's dataset is the SZT task (``dataset._target_`` names it)."""
    dataset = cfg.get("dataset")
    target = dataset.get("_target_", "") if isinstance(dataset, Mapping) else ""
    return "szt" in str(target).lower()


def label_entropy(labels: np.ndarray) -> float:
    """Entropy of the empirical label distribution, nats (= I(X;Y) for labels that are f(X))."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def szt_references() -> tuple[float, float]:
    """(H(X), I(X;Y)) of the SZT task in nats: ln 4096 and H(Y) with 2118 positives."""
    p = SZT_POSITIVES / SZT_INPUTS
    return math.log(SZT_INPUTS), float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))


def cache_dir(cfg: Mapping) -> Path:
    """Where the SZT IB curve is cached: ``paths.data_dir`` if it is a writable folder, else
    ``$XDG_CACHE_HOME/infoflow`` (``~/.cache/infoflow``), else the system temp folder."""
    paths = cfg.get("paths")
    data_dir = paths.get("data_dir") if isinstance(paths, Mapping) else None
    if data_dir and Path(data_dir).is_dir() and os.access(data_dir, os.W_OK):
        return Path(data_dir)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "infoflow"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "infoflow"
