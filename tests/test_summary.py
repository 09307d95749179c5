"""The end-of-run summary, from small records written here."""

from __future__ import annotations

import math

import pytest

from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, TRAINING_FILE, append_rows
from infoflow.summary import format_summary, read_summary, summarise, wandb_summary


def info(seed, epoch, layer, value, estimator="sp", quantity="I_XT"):
    return (seed, epoch, layer, estimator, quantity, value, None)


def acc(seed, epoch, split, value):
    return (seed, epoch, None, split, "acc", value, None)


def write_run(tmp_path, information, training):
    append_rows(tmp_path / INFORMATION_FILE, RECORD_COLUMNS, information)
    append_rows(tmp_path / TRAINING_FILE, RECORD_COLUMNS, training)
    return tmp_path


def test_one_seed_final_peak_and_accuracy_from_the_records(tmp_path):
    run = write_run(
        tmp_path,
        [info(0, 0, 1, 2.0), info(0, 5, 1, 3.5), info(0, 9, 1, 3.0), info(0, 0, 2, 1.0),
         info(0, 5, 2, 1.5), info(0, 9, 2, 1.6), info(0, 9, 1, 0.1, quantity="I_TY"),
         info(0, 9, 1, 9.9, estimator="bin:width:0.05")],
        [acc(0, 8, "train", 0.5), acc(0, 9, "train", 0.75), acc(0, 9, "val", 0.7),
         (0, 9, None, "train", "loss", 0.3, None)],
    )  # fmt: skip
    s = read_summary(run)
    assert s.estimator == "sp" and s.last_epoch == 9 and s.seeds == (0,)
    (t1, t2) = s.layers
    assert (t1.final.mean, t1.peak.mean, t1.peak_epochs) == (3.0, 3.5, (5, 5))
    assert (t2.final.mean, t2.peak.mean, t2.peak_epochs) == (1.6, 1.6, (9, 9))
    assert {k: v.mean for k, v in s.accuracy.items()} == {"train": 0.75, "val": 0.7}
    text = format_summary(s, run, wall_s=75.0, notes=["W&B offline run: x"])
    assert text.splitlines() == [
        "Summary: 9 epochs, seed 0, 1 min 15 s",
        "  I(X;T_l) in nats, SP estimator:",
        "    layer   final   peak (epoch)",
        "    T1      3.000   3.500 (5)",
        "    T2      1.600   1.600 (9)",
        "  accuracy: train 0.750, val 0.700",
        "  W&B offline run: x",
        f"Run directory: {run}",
    ]


def test_several_seeds_give_the_mean_and_the_min_max_range():
    rows = [
        {"seed": s, "epoch": e, "layer": 1, "estimator": "sp", "quantity": "I_XT", "value": v}
        for s, points in {0: [(0, 1.0), (4, 4.0), (8, 2.0)], 1: [(0, 1.0), (2, 3.0), (8, 3.0)],
                          2: [(0, 1.0), (4, 5.0), (8, 4.0)]}.items()
        for e, v in points
    ]  # fmt: skip
    training = [
        {"seed": s, "epoch": 8, "layer": None, "estimator": "val", "quantity": "acc", "value": v}
        for s, v in [(0, 0.8), (1, 0.9), (2, 1.0)]
    ]
    s = summarise(rows, training)
    (t1,) = s.layers
    assert (t1.final.mean, t1.final.lo, t1.final.hi, t1.final.n) == (3.0, 2.0, 4.0, 3)
    assert (t1.peak.mean, t1.peak.lo, t1.peak.hi) == (4.0, 3.0, 5.0)
    assert t1.peak_epochs == (2, 4)
    assert s.accuracy["val"].mean == pytest.approx(0.9)
    lines = format_summary(s, "d").splitlines()
    assert lines[0] == "Summary: 8 epochs, 3 seeds, mean [min–max]"
    assert lines[3] == "    T1      3.000 [2.000–4.000]   4.000 [3.000–5.000] (epochs 2–4)"
    assert lines[4] == "  accuracy: val 0.900 [0.800–1.000]"
    keys = wandb_summary(s)
    assert keys["final/I_XT/layer1"] == 3.0 and keys["final/I_XT/layer1/min"] == 2.0
    assert keys["peak/I_XT/layer1/max"] == 5.0 and keys["final/val_acc/max"] == 1.0


def test_without_sp_the_binned_estimate_is_named():
    rows = [
        {"seed": 0, "epoch": e, "layer": 1, "estimator": est, "quantity": "I_XT", "value": v}
        for est in ("bin_noisy:width:0.05", "bin:width:0.05", "kde_upper")
        for e, v in [(0, 1.0), (3, 2.0)]
    ]
    rows.append({**rows[0], "estimator": "sp", "value": math.nan})  # NaN: no SP estimate
    s = summarise(rows, [])
    assert s.estimator == "bin:width:0.05" and s.accuracy == {}
    text = format_summary(s, "d")
    assert "binned estimator bin:width:0.05 (no SP estimate" in text
    assert "accuracy" not in text and text.endswith("Run directory: d")
    assert wandb_summary(s)["final/I_XT_estimator"] == "bin:width:0.05"


def test_a_run_without_records_still_names_its_directory(tmp_path):
    s = read_summary(tmp_path)
    assert s.layers == () and s.last_epoch is None
    assert format_summary(s, tmp_path).splitlines() == [
        "Summary: no records",
        "  I(X;T_l): none in the records",
        f"Run directory: {tmp_path}",
    ]
    assert wandb_summary(s) == {}


def test_an_interrupted_writers_partial_row_is_skipped(tmp_path):
    run = write_run(tmp_path, [info(0, 0, 1, 2.0)], [acc(0, 1, "val", 0.5)])
    with (run / INFORMATION_FILE).open("a") as f:
        f.write("0,1,1,sp,I_X")  # cut mid-row
    assert read_summary(run).layers[0].final.mean == 2.0
