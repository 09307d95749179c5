"""Figures drawn from synthetic run directories (records written with ``records.append_rows``)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infoflow.plots import (
    PlotInputError,
    draw_all,
    histograms_figure,
    information_plane_figure,
    information_vs_epoch_figure,
    plane_filename,
    resolve_units,
)
from infoflow.plots.data import load_information, load_metrics
from infoflow.plots.scatter import pick_epochs
from infoflow.records import HISTOGRAM_COLUMNS, INFORMATION_COLUMNS, append_rows

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
BIN_ESTIMATORS = ("bin:tishby:30", "bin_noisy:width:0.05")


def _information_rows(epochs, widths):
    rows = []
    for e in epochs:
        t = math.log1p(e) / math.log1p(epochs[-1])
        for k, d in enumerate(widths, start=1):
            i_xt = math.log(4096) * (1 - 0.1 * k * t * (1 - t))
            i_ty = math.log(2) * t ** (1 / k)
            rows += [
                (e, k, "sp", "I_XT", i_xt, 0.02),
                (e, k, "sp", "I_TY", i_ty, 0.01),
                (e, k, "sp", "h_T", i_xt - d * 5, 0.02),
                (e, k, "sp", "h_T_given_X", -d * 5.0, None),
            ]
            for j, est in enumerate(BIN_ESTIMATORS):
                h = i_xt * (0.5 + 0.15 * j) - 0.05  # may go negative: drawn as is
                rows += [
                    (e, k, est, q, v, None) for q, v in (("H_T", h), ("I_XT", h), ("I_TY", i_ty))
                ]
    return rows


def _metrics(path: Path, epochs, widths) -> None:
    """Lightning-style metrics.csv: several partial rows per epoch."""
    grad = [
        f"grad/layer{k}/{m}"
        for k in range(1, len(widths) + 1)
        for m in ("mean_norm", "std_norm", "snr")
    ]
    clus = [
        f"cluster/layer{k}/{m}"
        for k in range(1, len(widths) + 1)
        for m in ("silhouette", "distance_ratio")
    ]
    cols = [
        "epoch",
        "step",
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "train/loss_noisy",
        *grad,
        *clus,
    ]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for e in epochs:
            loss = 0.69 * math.exp(-e / 20)
            w.writerow(
                {
                    "epoch": e,
                    "step": e * 13,
                    "train/loss": loss,
                    "train/acc": 1 - loss,
                    "val/loss": loss * 1.1,
                }
            )
            w.writerow({"epoch": e, "step": e * 13, "train/loss_noisy": loss * 1.05})
            w.writerow(
                {c: 1 / (e + 1) ** (0.5 + i % 3 / 4) for i, c in enumerate(grad)}
                | {"epoch": e, "step": e * 13}
            )
            w.writerow(
                {c: math.tanh(e / 30) + i / 10 for i, c in enumerate(clus)}
                | {"epoch": e, "step": e * 13}
            )


def _histograms(epochs, widths, rng):
    edges = np.linspace(-1, 1, 31)
    rows = []
    for e in epochs:
        for k in range(1, len(widths) + 1):
            for rep in ("noiseless", "noisy"):
                v = np.tanh(rng.normal(0, 0.3 + 0.1 * math.log1p(e), 500))
                counts, _ = np.histogram(v, edges)
                rows += [
                    (e, k, rep, float(lo), float(hi), int(c))
                    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
                ]
    return rows


def _snapshots(snap_dir: Path, epochs, widths, rng) -> None:
    snap_dir.mkdir()
    labels = rng.integers(0, 2, 200)
    for e in epochs:
        arrays = {"labels": labels}
        for k, d in enumerate(widths, start=1):
            centre = (labels[:, None] * 2 - 1) * math.log1p(e) / 5
            arrays[f"layer_{k}"] = np.tanh(centre + rng.normal(0, 0.3, (len(labels), d)))
        np.savez(snap_dir / f"epoch_{e:06d}.npz", **arrays)


def make_run(run: Path, epochs=(0, 2, 8, 40), widths=(5, 3, 2), *, szt=True) -> Path:
    """A complete synthetic run directory (every input the plots read)."""
    rng = np.random.default_rng(0)
    run.mkdir(parents=True, exist_ok=True)
    append_rows(run / "information.csv", INFORMATION_COLUMNS, _information_rows(epochs, widths))
    append_rows(run / "histograms.csv", HISTOGRAM_COLUMNS, _histograms(epochs, widths, rng))
    _metrics(run / "metrics.csv", epochs, widths)
    _snapshots(run / "snapshots", epochs, widths, rng)
    (run / "data").mkdir(exist_ok=True)  # the SZT IB curve is cached here: seed it (fast tests)
    np.savez(run / "data" / "szt_ib_curve.npz", **IB_CURVE)
    target = "infoflow.data.datamodule.SZTDataModule" if szt else "some.Other"
    (run / "config.yaml").write_text(
        f"dataset:\n  _target_: {target}\npaths:\n  data_dir: {run / 'data'}\n"
    )
    return run


IB_CURVE = {
    "i_xt": np.array([0.0, math.log(2), math.log(4096)]),
    "i_ty": np.array([0.0, math.log(2), math.log(2)]),
    "beta": np.array([0.0, np.inf, np.inf]),
}
EXPECTED = {
    *(plane_filename(e) for e in ("sp", *BIN_ESTIMATORS)),
    "information_vs_epoch.png",
    "binned_vs_epoch.png",
    "histograms.png",
    "scatter_layer2.png",  # 3 units
    "scatter_layer3.png",  # 2 units; layer 1 has 5 units: no scatter
    "gradients.png",
    "clustering.png",
}


def _assert_pngs(paths, expected) -> None:
    assert {p.name for p in paths} == expected
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, p


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("plots") / "run", szt=True)


def test_draw_all_writes_every_figure(run_dir):
    paths = draw_all(run_dir, strict=True)
    _assert_pngs(paths, EXPECTED)
    assert all(p.parent == run_dir / "plots" for p in paths)
    assert not [p for p in (run_dir / "plots").iterdir() if p.suffix != ".png"]  # no temp files


def test_plane_file_names_have_no_colons():
    assert plane_filename("bin:width:0.05") == "information_plane_bin_width_0.05.png"


def test_units_change_the_axis_labels_and_values(run_dir):
    rows = load_information(run_dir / "information.csv")
    bits = information_plane_figure(rows, "sp", units="bits").axes[0]
    nats = information_plane_figure(rows, "sp", units="nats").axes[0]
    assert bits.get_xlabel() == "I(X;T) [bits]" and nats.get_ylabel() == "I(T;Y) [nats]"
    xb, xn = bits.lines[0].get_xdata(), nats.lines[0].get_xdata()
    np.testing.assert_allclose(xb, np.asarray(xn) / math.log(2))
    fig = information_vs_epoch_figure(rows, load_metrics(run_dir / "metrics.csv"), units="nats")
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "I(X;T) [nats]", "I(T;Y) [nats]", "cross-entropy loss [nats]"
    ]  # fmt: skip


def test_units_default_comes_from_config(tmp_path):
    assert resolve_units(None, {}) == "bits"
    nats = {"callbacks": {"plots": {"units": "nats"}}}
    assert resolve_units(None, nats) == "nats"
    assert resolve_units("bits", nats) == "bits"  # the argument wins
    (tmp_path / "config.yaml").write_text("callbacks:\n  plots:\n    units: furlongs\n")
    with pytest.raises(ValueError, match="furlongs"):
        draw_all(tmp_path)


def test_metrics_merge_partial_rows_by_epoch(run_dir):
    m = load_metrics(run_dir / "metrics.csv")
    assert list(m["epoch"]) == [0, 2, 8, 40]
    assert np.isfinite(m["train/loss"]).all() and np.isfinite(m["train/loss_noisy"]).all()
    np.testing.assert_allclose(m["val/loss"], m["train/loss"] * 1.1)


def test_pick_epochs_log_spaced_with_ends():
    picked = pick_epochs(range(0, 10000, 7))
    assert len(picked) <= 6 and picked[0] == 0 and picked[-1] == 9996
    assert pick_epochs([3, 1, 2]) == [1, 2, 3]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infoflow.plot", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_draws_and_prints_paths(tmp_path):
    append_rows(
        tmp_path / "information.csv", INFORMATION_COLUMNS, _information_rows((0, 3, 30), (2, 2))
    )
    with (tmp_path / "metrics.csv").open("w") as f:
        f.write(
            "epoch,step,train/loss,val/loss\n0,5,0.7,0.71\n3,20,0.5,\n3,20,,0.55\n30,200,0.1,0.2\n"
        )
    res = _cli(str(tmp_path), "--units", "nats")
    assert res.returncode == 0, res.stderr
    printed = [Path(line) for line in res.stdout.splitlines()]
    expected = {plane_filename(e) for e in ("sp", *BIN_ESTIMATORS)}
    _assert_pngs(printed, expected | {"information_vs_epoch.png", "binned_vs_epoch.png"})


def test_cli_missing_dir_is_one_line_exit_1(tmp_path):
    res = _cli(str(tmp_path / "nope"))
    assert res.returncode == 1 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "nope" in res.stderr


def test_unparseable_information_csv_is_an_input_error(tmp_path):
    (tmp_path / "information.csv").write_text(
        "epoch,layer,estimator,quantity,value,stderr\nx,1,sp,I_XT,1,\n"
    )
    with pytest.raises(PlotInputError, match="information.csv"):
        draw_all(tmp_path)
    res = _cli(str(tmp_path))
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1


def test_only_metrics_still_draws(tmp_path):
    _metrics(tmp_path / "metrics.csv", (0, 1, 2, 5), (3, 2))
    paths = draw_all(tmp_path, strict=True)
    _assert_pngs(paths, {"information_vs_epoch.png", "gradients.png", "clustering.png"})


def test_empty_run_dir_draws_nothing(tmp_path):
    assert draw_all(tmp_path, strict=True) == []


def test_szt_plane_has_ib_curve_and_references(run_dir):
    from infoflow.plots import _ib_curve
    from infoflow.plots.data import load_config, szt_references

    curve = _ib_curve(load_config(run_dir / "config.yaml"))  # read from the seeded cache
    np.testing.assert_array_equal(curve[1], IB_CURVE["i_ty"])
    h_x, i_xy = szt_references()
    assert h_x == pytest.approx(math.log(4096)) and i_xy == pytest.approx(
        0.99916 * math.log(2), abs=1e-5
    )
    rows = load_information(run_dir / "information.csv")
    ax = information_plane_figure(
        rows, "sp", units="nats", h_x=h_x, i_xy=i_xy, ib_curve=curve
    ).axes[0]
    labels = {line.get_label() for line in ax.lines}
    assert {"optimal IB curve", "H(X)", "I(X;Y)", "T1", "T2", "T3"} <= labels


def test_negative_estimates_are_drawn_as_they_are():
    rows = [
        {
            "epoch": e,
            "layer": 1,
            "estimator": "kde_lower",
            "quantity": q,
            "value": v,
            "stderr": math.nan,
        }
        for e, v in ((0, -0.5), (10, 0.3))
        for q in ("I_XT", "I_TY")
    ]
    ax = information_plane_figure(rows, "kde_lower", units="nats").axes[0]
    assert list(ax.lines[0].get_xdata()) == [-0.5, 0.3]


def test_histograms_with_bins_that_change_between_epochs():
    rows = [
        {
            "epoch": e,
            "layer": 1,
            "representation": "noiseless",
            "bin_lo": lo,
            "bin_hi": lo + w,
            "count": c,
        }
        for e, w in ((0, 0.1), (5, 0.25))
        for lo, c in zip(np.arange(-1, 1, w), range(100), strict=False)
    ]
    fig = histograms_figure(rows)
    assert len(fig.axes[0].collections) == 2  # one column mesh per epoch
