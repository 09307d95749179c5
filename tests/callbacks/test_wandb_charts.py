"""What W&B receives: the run's name, its summary, the information-plane chart and the figures as
they are redrawn, checked on the payload builders and on an offline W&B run's own file."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import wandb
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

from infoflow.callbacks.wandb_charts import WandbChartsCallback, information_charts, plane_rows
from infoflow.loggers import WandbLogger
from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, TRAINING_FILE, append_rows
from infoflow.rundir import register_resolvers, run_name
from infoflow.schema import register
from tests.conftest import wandb_records

# Two layers, two seeds, three epochs; layer 2 compresses after epoch 1.
XT = {1: [2.0, 3.0, 3.0], 2: [1.0, 2.5, 1.5]}
TY = {1: [0.1, 0.4, 0.6], 2: [0.05, 0.3, 0.5]}


def information_rows(seeds=(0, 1)):
    rows = []
    for seed in seeds:
        for layer in (1, 2):
            for i, epoch in enumerate((0, 1, 5)):
                rows.append((seed, epoch, layer, "sp", "I_XT", XT[layer][i] + seed, 0.01))
                rows.append((seed, epoch, layer, "sp", "I_TY", TY[layer][i], 0.01))
                rows.append((seed, epoch, layer, "bin:width:0.05", "I_XT", 9.0, None))
                rows.append((seed, epoch, layer, "bin:width:0.05", "I_TY", 0.69, None))
    return rows


def training_rows(seeds=(0, 1)):
    return [
        (seed, epoch, None, split, "acc", 0.5 + 0.1 * epoch + 0.01 * seed, None)
        for seed in seeds
        for epoch in (1, 5)
        for split in ("train", "val")
    ]


def as_dicts(rows):
    return [dict(zip(RECORD_COLUMNS, r, strict=True)) for r in rows]


def test_plane_has_one_line_per_layer_in_epoch_order_with_the_epoch_kept():
    rows = as_dicts(information_rows())
    plane = plane_rows(rows, "sp")
    assert plane == [
        ["T1", 0, 2.5, 0.1], ["T1", 1, 3.5, 0.4], ["T1", 5, 3.5, 0.6],
        ["T2", 0, 1.5, 0.05], ["T2", 1, 3.0, 0.3], ["T2", 5, 2.0, 0.5],
    ]  # fmt: skip  # means over the two seeds
    charts = information_charts(wandb, rows, "sp")
    chart = charts["information/plane_sp"]
    assert chart.spec.spec_name == "wandb/line/v0"
    assert chart.spec.fields == {"x": "I_XT", "y": "I_TY", "stroke": "layer"}
    assert chart.table.columns == ["layer", "epoch", "I_XT", "I_TY"]
    assert chart.table.data == plane
    series = charts["information/I_XT_vs_epoch_sp"]
    assert series.spec.spec_name == "wandb/lineseries/v0"
    assert series.table.data[:3] == [[0, "T1", 2.5], [1, "T1", 3.5], [5, "T1", 3.5]]
    assert "information/I_TY_vs_epoch_sp" in charts


def test_plane_skips_points_without_both_values_and_nan():
    rows = as_dicts([(0, 0, 1, "sp", "I_XT", 1.0, None), (0, 1, 1, "sp", "I_XT", 2.0, None),
                     (0, 1, 1, "sp", "I_TY", math.nan, None), (0, 0, 1, "sp", "I_TY", 0.2, None),
                     (0, 0, 10, "sp", "I_XT", 1.0, None), (0, 0, 10, "sp", "I_TY", 0.1, None)])  # fmt: skip
    assert plane_rows(rows, "sp") == [["T1", 0, 1.0, 0.2], ["T10", 0, 1.0, 0.1]]
    assert information_charts(wandb, rows, "kde_upper") == {}
    assert information_charts(wandb, rows, "sp")["information/I_XT_vs_epoch_sp"].table.data[-1] == [
        0, "T10", 1.0
    ]  # fmt: skip  # layers in numeric order: T10 after T1


@pytest.fixture
def hydra_app_overrides():
    """HydraConfig set as in ``python -m infoflow ARGS``: a composed config with its overrides."""
    register_resolvers()
    register()

    def _set(*overrides: str) -> None:
        with initialize_config_module("infoflow.conf", version_base="1.3"):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)

    yield _set
    HydraConfig.instance().cfg = None


def test_run_name_is_the_experiment_and_the_overrides(hydra_app_overrides):
    assert not HydraConfig.initialized() and run_name() == "default"  # tests, scripts
    hydra_app_overrides("experiment=goldfeld_szt", "noise.beta=0.01", "seed=3")
    assert run_name() == "goldfeld_szt noise.beta=0.01 seed=3"
    hydra_app_overrides("trainer.max_epochs=30", "paths.data_dir=/data", "ckpt_path=null")
    assert run_name() == "default trainer.max_epochs=30"  # paths and checkpoints left out
    hydra_app_overrides()
    assert run_name() == "default"


def png(path: Path, shade: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(path)


def items(protos) -> dict:
    """History or summary items as ``{key: value}`` (a nested item, e.g. an image's fields, under
    its top key as a dict)."""
    out: dict = {}
    for item in protos:
        value = json.loads(item.value_json)
        if item.key:
            out[item.key] = value
        else:
            *path, last = item.nested_key
            node = out
            for part in path:
                node = node.setdefault(part, {})
            node[last] = value
    return out


def records_by_type(run_dir: Path, timeout_s: float = 60.0) -> dict[str, list]:
    """The records of the run's offline file by type, once W&B's service has written them all
    (its ``exit`` record; ``wandb.finish`` may return before the file is flushed)."""
    (wandb_file,) = run_dir.glob("wandb/offline-run-*/*.wandb")
    deadline = time.monotonic() + timeout_s
    while True:
        out: dict[str, list] = {}
        for record in wandb_records(wandb_file):
            out.setdefault(record.WhichOneof("record_type"), []).append(record)
        if "exit" in out and "run" in out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_offline_run_gets_figures_as_redrawn_charts_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    logger = WandbLogger(project="infoflow-test", name="default seed=3", save_dir=str(tmp_path))
    assert "anonymous" not in logger._wandb_init  # no "anonymous setting has no effect" warning
    assert logger._wandb_init["settings"] == {"quiet": True, "silent": True}
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, global_step=0)
    cb = WandbChartsCallback(str(tmp_path))
    try:
        png(tmp_path / "plots" / "information_plane_sp.png", 0)
        trainer.global_step = 13
        cb.on_train_epoch_end(trainer, None)  # drawn: logged
        trainer.global_step = 26
        cb.on_train_epoch_end(trainer, None)  # unchanged: not again
        png(tmp_path / "plots" / "information_plane_sp.png", 255)
        os.utime(tmp_path / "plots" / "information_plane_sp.png", ns=(1, 1))  # a new mtime
        png(tmp_path / "plots" / "clustering.png", 9)
        trainer.global_step = 39
        append_rows(tmp_path / INFORMATION_FILE, RECORD_COLUMNS, information_rows())
        append_rows(tmp_path / TRAINING_FILE, RECORD_COLUMNS, training_rows())
        cb.on_train_end(trainer, None)  # redrawn figures, then charts and summary
    finally:
        wandb.finish()
    records = records_by_type(tmp_path)
    (run,) = records["run"]
    assert run.run.display_name == "default seed=3"
    history = [items(r.history.item) for r in records["history"]]
    figures = [(h["trainer/global_step"], sorted(k for k in h if k.startswith("figures/")))
               for h in history if any(k.startswith("figures/") for k in h)]  # fmt: skip
    assert figures == [
        (13, ["figures/information_plane_sp"]),
        (39, ["figures/clustering", "figures/information_plane_sp"]),
    ]
    final = history[-1]
    assert final["information/plane_sp_table"]["_type"] == "table-file"
    assert history[-2]["figures/clustering"]["_type"] == "image-file"
    assert {"information/table", "information/I_XT_vs_epoch_sp_table"} <= set(final)
    summary = {}
    for r in records["summary"]:
        summary.update(items(r.summary.update))
    assert summary["final/I_XT_estimator"] == "sp"
    assert summary["final/I_XT/layer2"] == pytest.approx(2.0)  # mean over seeds 1.5, 2.5
    assert summary["final/I_XT/layer2/min"] == 1.5 and summary["final/I_XT/layer2/max"] == 2.5
    assert summary["peak/I_XT/layer2"] == pytest.approx(3.0)
    assert summary["peak/epoch/layer2"] == 1
    assert summary["final/val_acc"] == pytest.approx(1.005)
    assert summary["final/epoch"] == 5
