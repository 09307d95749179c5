"""Every experiment preset: composed, passing the config check, and run in-process with a tiny
budget.

MNIST presets run on a tiny MNIST-shaped dataset written to disk (no network); multirun presets run
one job of their grid (the compose API ignores ``hydra.mode``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infoflow.checks import check_config
from infoflow.records import read_records
from infoflow.train import run
from tests.conftest import CONF_DIR
from tests.test_mnist_config import TINY as TINY_MNIST
from tests.test_mnist_config import write_tiny_mnist

PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
MNIST = {p for p in PRESETS if p.startswith("mnist")}
#: One epoch, no W&B, no figures (drawing takes seconds a figure; tested on its own).
TINY = [
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~logger.wandb",
    "callbacks.plots=null",
]
#: Small SP and clustering budgets, for the callbacks a preset has switched on.
SMALL = {
    "information": ["n_inputs=16", "n_replicas=2", "n_mc=32"],
    "clustering": ["max_samples=20"],
}


def tiny(make_cfg, *overrides: str) -> list[str]:
    """TINY, and the small budgets of the measuring callbacks this config has."""
    cfg = make_cfg(*overrides)
    small = [
        f"callbacks.{name}.{setting}"
        for name, settings in SMALL.items()
        if (cfg.callbacks or {}).get(name) is not None
        for setting in settings
    ]
    return [*TINY, *small]


def test_the_presets_are_all_here():
    assert {"single_neuron", "goldfeld_szt_linear", "goldfeld_szt_orthonormal"} <= set(PRESETS)
    assert len(PRESETS) >= 11


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_every_preset_passes_the_config_check(make_cfg, preset):
    check_config(make_cfg(*([f"experiment={preset}"] if preset else [])))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_with_a_tiny_budget(make_cfg, tmp_path, preset):
    extra = []
    if preset in MNIST:
        write_tiny_mnist(tmp_path / "data")
        extra = [*TINY_MNIST, "dataset.download=false", "trainer.limit_train_batches=1"]
    if preset in ("tishby_szt_sweep", "quantized_szt", "tishby_depth"):  # validate every 10th
        extra = ["trainer.check_val_every_n_epoch=1", "ensemble.size=2"]
    chosen = [f"experiment={preset}", *extra]
    cfg = make_cfg(*chosen, *tiny(make_cfg, *chosen))
    metrics = run(cfg)
    out = Path(cfg.paths.output_dir)
    assert "train/loss" in metrics and (out / "checkpoints" / "last.ckpt").is_file()
    rows = read_records(out / "information.csv")
    assert {r["epoch"] for r in rows} >= {0, 1}
