"""Training in-process: determinism with a seed, and the orthonormality rule during training."""

import csv

import torch

from infoflow.train import run

QUIET = [
    "trainer.max_epochs=3",
    "trainer.enable_progress_bar=false",
    "~logger.wandb",
    "callbacks.information=null",
    "callbacks.clustering=null",
    "callbacks.plots=null",
]


def _metrics(make_cfg, *overrides):
    cfg = make_cfg(*QUIET, *overrides)
    final = run(cfg)
    rows = list(csv.DictReader(open(f"{cfg.paths.output_dir}/metrics.csv")))
    # Wall-clock timings are the only columns two identical runs may not share.
    rows = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]
    return final, rows


def test_same_seed_same_metrics_different_seed_differs(make_cfg, tmp_path):
    a, rows_a = _metrics(make_cfg, "seed=0", f"paths.output_dir={tmp_path}/a")
    b, rows_b = _metrics(make_cfg, "seed=0", f"paths.output_dir={tmp_path}/b")
    c, _ = _metrics(make_cfg, "seed=1", f"paths.output_dir={tmp_path}/c")
    assert a == b and rows_a == rows_b
    assert a != c


def test_seed_zero_is_applied(make_cfg, tmp_path):
    torch.manual_seed(12345)
    a, _ = _metrics(make_cfg, "seed=0", f"paths.output_dir={tmp_path}/a")
    torch.manual_seed(999)
    b, _ = _metrics(make_cfg, "seed=0", f"paths.output_dir={tmp_path}/b")
    assert a == b


def test_training_lowers_the_loss(make_cfg, tmp_path):
    _, rows = _metrics(
        make_cfg, "trainer.max_epochs=30", "optimizer.lr=0.01", f"paths.output_dir={tmp_path}/a"
    )
    losses = [float(r["train/loss"]) for r in rows if r["train/loss"]]
    assert losses[-1] < losses[0] - 0.1
