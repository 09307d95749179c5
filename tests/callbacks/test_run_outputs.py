"""A whole tiny run with every callback: the files it leaves, resume, and the plot command."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from infoflow.plots import draw_all
from infoflow.plots.data import szt_references
from infoflow.records import IB_CURVE_COLUMNS, RECORD_COLUMNS, read_records
from infoflow.train import run

TINY = [
    "trainer.enable_progress_bar=false",
    "~logger.wandb",
    "model.hidden=[4,3]",
    "callbacks.information.n_replicas=4",
    "callbacks.information.n_inputs=256",
    "callbacks.information.n_mc=512",
    "schedule.n_points=2",
    "callbacks.binned.bin_size=[0.05,0.5]",
    "callbacks.binned.kde_noise_var=0.001",
    "callbacks.clustering.max_samples=200",
    "callbacks.plots.min_interval_s=100000",  # draw once, at the end
]


def _epochs(rows, estimator):
    return sorted({r["epoch"] for r in rows if r["estimator"] == estimator})


def test_run_leaves_records_metrics_and_figures(make_cfg):
    cfg = make_cfg(*TINY, "trainer.max_epochs=3", "seed=7")
    run(cfg)
    out = Path(cfg.paths.output_dir)
    csv_text = (out / "information.csv").read_text()
    assert csv_text.splitlines()[0] == ",".join(RECORD_COLUMNS)
    rows = read_records(out / "information.csv")
    assert {r["seed"] for r in rows} == {7}
    # n_points=2 over 3 epochs: logspace gives 1 and 3; epoch 0 is always there.
    for est in ("sp", "bin:width:0.05", "bin:width:0.5", "bin_noisy:width:0.05", "kde_upper"):
        assert _epochs(rows, est) == [0, 1, 3], est
    assert _epochs(rows, "clustering") == [0, 1, 3]
    assert _epochs(rows, "gradients") == [1, 3]  # epoch 0 has no gradients
    per_layer = [r for r in rows if r["estimator"] not in ("gradients", "time", "ceiling")]
    assert {r["layer"] for r in per_layer} == {1, 2}
    seconds = [r for r in rows if r["estimator"] == "time" and r["quantity"] == "sp_seconds"]
    assert [r["epoch"] for r in seconds] == [0, 1, 3] and seconds[-1]["layer"] is None
    assert 0 < seconds[0]["value"] <= seconds[-1]["value"]  # cumulative
    assert {r["layer"] for r in rows if r["estimator"] == "gradients"} == {1, 2, 3}  # + read-out
    training = read_records(out / "training.csv")
    assert {r["seed"] for r in training} == {7} and {r["layer"] for r in training} == {None}
    by_name = {(r["estimator"], r["quantity"]): [] for r in training}
    for r in training:
        by_name[(r["estimator"], r["quantity"])].append(r["epoch"])
    for name in ("loss", "acc"):  # completed epochs, as in information.csv; 0: before training
        assert by_name[("train", name)] == by_name[("val", name)] == [0, 1, 2, 3]
    # the training objective (noise on) exists only once an epoch has been trained
    assert by_name[("train", "loss_noisy")] == by_name[("train", "acc_noisy")] == [1, 2, 3]
    assert all(0 <= r["value"] <= 1 for r in training if r["quantity"].startswith("acc"))
    sp_ixt = [r for r in rows if r["estimator"] == "sp" and r["quantity"] == "I_XT"]
    assert all(r["stderr"] >= 0 for r in sp_ixt)
    # I(X;T) of a noisy layer is below the ceiling ln 4096 and above 0 (within errors).
    assert all(-0.1 < r["value"] < 8.32 for r in sp_ixt)

    with (out / "metrics.csv").open() as fh:  # a sink of the same rows: epochs agree
        metrics = list(csv.DictReader(fh))
    columns = set(metrics[0])
    assert sorted(int(r["epoch"]) for r in metrics if r.get("train/loss")) == [0, 1, 2, 3]
    for key in (
        "info/sp/layer1/I_XT",
        "info/bin:width:0.05/layer2/H_T",
        "cluster/layer2/silhouette",
        "grad/layer1/snr",
        "time/sp_seconds",
    ):
        assert key in columns, key
    pngs = {p.name for p in (out / "plots").glob("*.png")}
    assert "information_vs_epoch.png" in pngs and "information_plane_sp.png" in pngs
    assert sorted(p.name for p in (out / "snapshots").glob("*.npz")) == [
        "epoch_000000.npz",
        "epoch_000001.npz",
        "epoch_000003.npz",
    ]
    assert (out / "histograms.csv").is_file()
    # The IB curve of SZT's p(x, y): the diagonal up to H(Y), then flat up to H(X) = ln 4096.
    curve = read_records(out / "ib_curve.csv", IB_CURVE_COLUMNS)
    h_x, h_y = szt_references()
    assert curve[0]["i_xt"] == curve[0]["i_ty"] == 0.0
    assert curve[-1]["i_xt"] == pytest.approx(h_x) and curve[-1]["i_ty"] == pytest.approx(h_y)
    assert {"gradients.png", "clustering.png", "histograms.png"} <= pngs

    # The figures read only infoflow's records: without Lightning's metrics.csv they are the same.
    before = {p.name: p.read_bytes() for p in (out / "plots").glob("*.png")}
    (out / "metrics.csv").unlink()
    assert {p.name: p.read_bytes() for p in draw_all(out) if p.suffix == ".png"} == before

    proc = subprocess.run(
        [sys.executable, "-m", "infoflow.plot", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_resume_from_checkpoint_keeps_the_history(make_cfg, tmp_path):
    first = make_cfg(*TINY, "trainer.max_epochs=2", f"paths.output_dir={tmp_path}/first")
    run(first)
    ckpt = tmp_path / "first/checkpoints/last.ckpt"
    second = make_cfg(
        *TINY, "trainer.max_epochs=4", f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path}/second"
    )
    run(second)
    rows = read_records(tmp_path / "second/information.csv")
    # First run measured 0, 1, 2; the resumed one adds 4 (its schedule is 0, 1, 4) and
    # re-measures nothing it already had.
    assert _epochs(rows, "sp") == [0, 1, 2, 4]
    keys = [(r["seed"], r["epoch"], r["layer"], r["estimator"], r["quantity"]) for r in rows]
    assert len(keys) == len(set(keys))

    # Every row of the first run is carried over unchanged (grouped by callback, not by time).
    def canonical(rs):
        return {tuple(str(r[c]) for c in RECORD_COLUMNS) for r in rs}

    first_rows = read_records(tmp_path / "first/information.csv")
    assert canonical(first_rows) == canonical(r for r in rows if r["epoch"] <= 2)
    training = read_records(tmp_path / "second/training.csv")
    assert sorted({r["epoch"] for r in training}) == [0, 1, 2, 3, 4]  # 0: before training
    t_keys = [(r["seed"], r["epoch"], r["estimator"], r["quantity"]) for r in training]
    assert len(t_keys) == len(set(t_keys))  # no epoch twice
