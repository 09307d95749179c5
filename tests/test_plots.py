"""Figures drawn from synthetic run directories (records written with ``records.append_rows``)."""

from __future__ import annotations

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
from infoflow.plots.data import load_ib_curve, load_information, load_records, load_training
from infoflow.plots.scatter import pick_epochs
from infoflow.records import (
    HISTOGRAM_COLUMNS,
    IB_CURVE_COLUMNS,
    RECORD_COLUMNS,
    append_rows,
    write_csv_atomic,
)

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
BIN_ESTIMATORS = ("bin:tishby:30", "bin_noisy:width:0.05")


SEED = 4


def _information_rows(epochs, widths):
    rows = []
    for e in epochs:
        t = math.log1p(e) / math.log1p(epochs[-1])
        for k, d in enumerate(widths, start=1):
            i_xt = math.log(4096) * (1 - 0.1 * k * t * (1 - t))
            i_ty = math.log(2) * t ** (1 / k)
            rows += [
                (SEED, e, k, "sp", "I_XT", i_xt, 0.02),
                (SEED, e, k, "sp", "I_TY", i_ty, 0.01),
                (SEED, e, k, "sp", "h_T", i_xt - d * 5, 0.02),
                (SEED, e, k, "sp", "h_T_given_X", -d * 5.0, None),
            ]
            for j, est in enumerate(BIN_ESTIMATORS):
                h = i_xt * (0.5 + 0.15 * j) - 0.05  # may go negative: drawn as is
                rows += [
                    (SEED, e, k, est, q, v, None)
                    for q, v in (("H_T", h), ("I_XT", h), ("I_TY", i_ty))
                ]
    return rows


def _dynamics_rows(epochs, widths):
    """Gradient and clustering records, as the callbacks write them to information.csv."""
    rows = []
    for e in epochs:
        for k in range(1, len(widths) + 1):
            grad = [
                (m, 1 / (e + 1) ** (0.5 + i / 4))
                for i, m in enumerate(("mean_norm", "std_norm", "snr"))
            ]
            rows += [(SEED, e, k, "gradients", m, v, None) for m, v in grad]
            clus = (("silhouette", math.tanh(e / 30)), ("distance_ratio", 1 + math.tanh(e / 30)))
            rows += [(SEED, e, k, "clustering", m, v, None) for m, v in clus]
    return rows


def _training_rows(epochs):
    """training.csv: losses and accuracies per completed epoch (none at epoch 0)."""
    rows = []
    for e in epochs:
        loss = 0.69 * math.exp(-e / 20)
        for split, q, v in (
            ("train", "loss", loss),
            ("train", "acc", 1 - loss),
            ("val", "loss", loss * 1.1),
            ("train", "loss_noisy", loss * 1.05),
        ):
            rows.append((SEED, e, None, split, q, v, None))
    return rows


def _histograms(epochs, widths, rng):
    edges = np.linspace(-1, 1, 31)
    rows = []
    for e in epochs:
        for k in range(1, len(widths) + 1):
            for rep in ("noiseless", "noisy"):
                v = np.tanh(rng.normal(0, 0.3 + 0.1 * math.log1p(e), 500))
                counts, _ = np.histogram(v, edges)
                rows += [
                    (SEED, e, k, rep, float(lo), float(hi), int(c))
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
    info = _information_rows(epochs, widths) + _dynamics_rows(epochs, widths)
    append_rows(run / "information.csv", RECORD_COLUMNS, info)
    append_rows(run / "training.csv", RECORD_COLUMNS, _training_rows(epochs[1:]))
    append_rows(run / "histograms.csv", HISTOGRAM_COLUMNS, _histograms(epochs, widths, rng))
    _snapshots(run / "snapshots", epochs, widths, rng)
    curve = zip(*(IB_CURVE[c] for c in IB_CURVE_COLUMNS), strict=True)
    write_csv_atomic(run / "ib_curve.csv", IB_CURVE_COLUMNS, curve)
    target = "infoflow.data.datamodule.SZTDataModule" if szt else "some.Other"
    (run / "config.yaml").write_text(f"dataset:\n  _target_: {target}\n")
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
    "phases.csv",
}


def _assert_pngs(paths, expected) -> None:
    assert {p.name for p in paths} == expected
    for p in paths:
        data = p.read_bytes()
        if p.suffix == ".csv":
            assert data.startswith(b"measure,layer,n,n_seeds,mean,median,min,max\n"), p
        else:
            assert data.startswith(PNG) and len(data) > 1000, p


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("plots") / "run", szt=True)


def test_draw_all_writes_every_figure(run_dir):
    paths = draw_all(run_dir, strict=True)
    _assert_pngs(paths, EXPECTED)
    assert all(p.parent == run_dir / "plots" for p in paths)
    left = [p.name for p in (run_dir / "plots").iterdir() if p.suffix != ".png"]
    assert left == ["phases.csv"]  # and no temp files


def test_plane_file_names_have_no_colons():
    assert plane_filename("bin:width:0.05") == "information_plane_bin_width_0.05.png"


def test_units_change_the_axis_labels_and_values(run_dir):
    rows = load_information(run_dir / "information.csv")
    bits = information_plane_figure(rows, "sp", units="bits").axes[0]
    nats = information_plane_figure(rows, "sp", units="nats").axes[0]
    assert bits.get_xlabel() == "I(X;T) [bits]" and nats.get_ylabel() == "I(T;Y) [nats]"
    xb, xn = bits.lines[0].get_xdata(), nats.lines[0].get_xdata()
    np.testing.assert_allclose(xb, np.asarray(xn) / math.log(2))
    fig = information_vs_epoch_figure(rows, load_records(run_dir / "training.csv"), units="nats")
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


def test_training_records_become_columns_by_epoch(run_dir):
    m = load_training(run_dir / "training.csv")
    assert list(m["epoch"]) == [2, 8, 40]
    assert np.isfinite(m["train/loss"]).all() and np.isfinite(m["train/loss_noisy"]).all()
    np.testing.assert_allclose(m["val/loss"], m["train/loss"] * 1.1)
    assert "val/acc" not in m  # only what was recorded


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
    append_rows(tmp_path / "information.csv", RECORD_COLUMNS, _information_rows((0, 3, 30), (2, 2)))
    append_rows(tmp_path / "training.csv", RECORD_COLUMNS, _training_rows((1, 3, 30)))
    res = _cli(str(tmp_path), "--units", "nats")
    assert res.returncode == 0, res.stderr
    printed = [Path(line) for line in res.stdout.splitlines()]
    expected = {plane_filename(e) for e in ("sp", *BIN_ESTIMATORS)}
    _assert_pngs(
        printed, expected | {"information_vs_epoch.png", "binned_vs_epoch.png", "phases.csv"}
    )


def test_cli_missing_dir_is_one_line_exit_1(tmp_path):
    res = _cli(str(tmp_path / "nope"))
    assert res.returncode == 1 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "nope" in res.stderr


@pytest.mark.parametrize("name", ["information.csv", "training.csv", "histograms.csv"])
@pytest.mark.parametrize("damage", ["cell", "truncate"])
def test_a_damaged_record_is_one_line_naming_file_and_row(tmp_path, name, damage):
    run = make_run(tmp_path / "run", epochs=(0, 2), widths=(2,))
    path = run / name
    lines = path.read_text().splitlines(keepends=True)
    if damage == "cell":
        lines[2] = lines[2].replace(",", ",x", 1)  # the epoch is no number
    else:
        lines[2] = lines[2][:5]  # cut mid-row: the file ends there
        lines = lines[:3]
    path.write_text("".join(lines))
    with pytest.raises(PlotInputError, match=f"{name}, row 3"):
        draw_all(run)
    res = _cli(str(run))
    assert res.returncode == 1 and res.stdout == ""
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and f"{name}, row 3" in err[0], res.stderr


def test_only_training_and_dynamics_still_draws(tmp_path):
    append_rows(tmp_path / "training.csv", RECORD_COLUMNS, _training_rows((1, 2, 5)))
    append_rows(tmp_path / "information.csv", RECORD_COLUMNS, _dynamics_rows((0, 1, 2, 5), (3, 2)))
    paths = draw_all(tmp_path, strict=True)
    expected = {"information_vs_epoch.png", "gradients.png", "clustering.png", "phases.csv"}
    _assert_pngs(paths, expected)


def test_empty_run_dir_draws_nothing(tmp_path):
    assert draw_all(tmp_path, strict=True) == []


def test_szt_plane_has_ib_curve_and_references(run_dir):
    from infoflow.plots.data import szt_references

    curve = load_ib_curve(run_dir / "ib_curve.csv")
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


def test_plots_and_report_import_no_estimators_models_or_torch():
    """They read records only: drawing a run needs neither the estimators nor the models."""
    code = (
        "import sys, infoflow.plots, infoflow.plot, infoflow.report\n"
        "bad = [m for m in sys.modules if m.startswith(('infoflow.estimators', 'infoflow.models',"
        " 'torch'))]\n"
        "print(bad)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_a_sweep_folder_is_sent_to_the_report(tmp_path, capsys):
    from infoflow.plot import main
    from tests.test_report import beta_seed_sweep

    sweep = beta_seed_sweep(tmp_path, betas=(0.01,), seeds=(0, 1))
    assert main([str(sweep)]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert f"is a sweep's folder (2 runs), not a run's: python -m infoflow.report {sweep}" in err
    assert not (sweep / "plots").exists()
    job = next(p for p in sweep.iterdir() if p.name.startswith("0_"))
    assert main([str(job)]) == 0  # one of its runs still draws
    capsys.readouterr()
