"""Every experiment preset: composed, covered by the schema, and run in-process with a tiny budget.

MNIST presets run on a tiny MNIST-shaped dataset written to disk (no network); multirun presets run
one job of their grid (the compose API ignores ``hydra.mode``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from infoflow.checks import _callback_wiring, check_config, find_spec, leaves
from infoflow.records import read_records
from infoflow.train import run
from tests.conftest import CONF_DIR
from tests.test_mnist_config import TINY as TINY_MNIST
from tests.test_mnist_config import write_tiny_mnist

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
MNIST = {p for p in PRESETS if p.startswith("mnist")}
TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~logger.wandb",
    "estimator.n_inputs=16",
    "estimator.n_replicas=2",
    "estimator.n_mc=32",
    "estimator.cluster_samples=20",
    "callbacks.plots=null",  # drawing takes seconds a figure; tested on its own
]


def test_the_presets_are_all_here():
    assert {"single_neuron", "goldfeld_szt_linear", "goldfeld_szt_orthonormal"} <= set(PRESETS)
    assert len(PRESETS) >= 11


def _unchecked(cfg: DictConfig) -> list[str]:
    """Leaf keys that no schema entry, wiring or ``_target_`` accounts for."""
    wired = set(_callback_wiring())
    return [
        key
        for key, _ in leaves(cfg)
        if find_spec(key) is None and key not in wired and not key.split(".")[-1].startswith("_")
    ]


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_every_key_of_every_preset_is_in_the_schema(make_cfg, preset):
    cfg = make_cfg(*([f"experiment={preset}"] if preset else []))
    assert _unchecked(cfg) == []
    check_config(cfg)  # and the preset's own values pass it


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_with_a_tiny_budget(make_cfg, tmp_path, preset):
    extra = []
    if preset in MNIST:
        write_tiny_mnist(tmp_path / "data")
        extra = [*TINY_MNIST, "dataset.download=false", "trainer.limit_train_batches=1"]
    if preset == "tishby_szt_sweep":  # validates every 10th epoch: the one epoch here is not one
        extra = ["trainer.check_val_every_n_epoch=1", "ensemble.size=2"]
    cfg = make_cfg(f"experiment={preset}", *TINY, *extra)
    metrics = run(cfg)
    out = Path(cfg.paths.output_dir)
    assert "train/loss" in metrics and (out / "checkpoints" / "last.ckpt").is_file()
    rows = read_records(out / "information.csv")
    assert {r["epoch"] for r in rows} >= {0, 1}
