"""MNIST + CNN: `model=mnist_cnn` alone brings MNIST and its settings; the presets; the data module
on a tiny MNIST-shaped dataset written as IDX files; one-batch CLI runs. No network anywhere."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from infoflow.build import build_datamodule, build_network
from infoflow.checks import check_config
from infoflow.data.datamodule import MnistDataModule, SZTDataModule
from infoflow.data.mnist import IDX_FILES, MnistDataError
from infoflow.plot import main as plot_main
from infoflow.rundir import register_resolvers
from tests.conftest import run_cli

N_TRAIN, N_TEST = 120, 40
# Sizes that fit the tiny dataset: 120 = 30 val + 90 train; train/* on 50 of the 90.
TINY = ["dataset.val_size=30", "dataset.eval_size=20", "dataset.train_eval_size=50"]


def write_tiny_mnist(directory: Path, seed: int = 0) -> None:
    """Random MNIST-shaped IDX files (raw, uncompressed) under their official names."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        a = arrays[key]
        header = (0x0800 | a.ndim).to_bytes(4, "big") + b"".join(
            d.to_bytes(4, "big") for d in a.shape
        )
        (directory / stem).write_bytes(header + a.tobytes())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    write_tiny_mnist(tmp_path / "data")
    return tmp_path / "data"


# --------------------------------------------------------------------------- composition


def test_model_alone_selects_mnist_and_its_settings(make_cfg):
    cfg = make_cfg("model=mnist_cnn", "noise.beta=0.01")
    assert cfg.dataset._target_ == "infoflow.data.datamodule.MnistDataModule"
    assert "data_dir" not in cfg.dataset and "seed" not in cfg.dataset  # set by paths, seed
    assert cfg.trainer.max_epochs == 10 and cfg.optimizer.lr == 1e-3 and cfg.threads is None
    assert cfg.callbacks.progress_bar is None
    assert cfg.callbacks.tqdm_progress_bar.refresh_rate == 10
    assert cfg.noise.beta == 0.01
    check_config(cfg)
    net = build_network(cfg)
    assert net.layer_names == ["block1", "block2", "block3"] and net.beta == 0.01
    assert net.weights()[-1].shape == (1, 10, 128)


def test_explicit_dataset_mnist_gives_the_same_config(make_cfg):
    assert make_cfg("model=mnist_cnn", "dataset=mnist") == make_cfg("model=mnist_cnn")


def test_szt_default_unchanged(make_cfg):
    cfg = make_cfg()
    assert cfg == make_cfg("model=szt", "dataset=szt")
    assert cfg.dataset._target_ == "infoflow.data.datamodule.SZTDataModule"
    assert cfg.model._target_ == "infoflow.models.mlp.MLPEnsemble"
    assert cfg.trainer.max_epochs == 1000 and cfg.optimizer.lr == 4e-3 and cfg.threads == 1
    assert cfg.callbacks.progress_bar._target_ == "infoflow.callbacks.progress.EpochProgressBar"


def test_command_line_still_wins_over_the_specialisation(make_cfg):
    cfg = make_cfg("model=mnist_cnn", "trainer.max_epochs=2", "threads=1", "optimizer.lr=0.01")
    assert (cfg.trainer.max_epochs, cfg.threads, cfg.optimizer.lr) == (2, 1, 0.01)


@pytest.mark.parametrize(
    ("experiment", "beta", "dropout"),
    [("mnist_deterministic", 0.0, 0.0), ("mnist_noisy", 0.01, 0.0), ("mnist_dropout", 0.0, 0.2)],
)
def test_experiment_presets(make_cfg, experiment, beta, dropout):
    cfg = make_cfg(f"experiment={experiment}")
    assert cfg.model.net._target_ == "infoflow.models.cnn.mnist_cnn"
    assert cfg.dataset._target_ == "infoflow.data.datamodule.MnistDataModule"
    assert (cfg.noise.beta, cfg.model.net.dropout) == (beta, dropout)
    assert cfg.threads is None and cfg.seed == 0
    check_config(cfg)


def test_compare_preset_sweeps_the_three_variants(tmp_path):
    register_resolvers()
    with initialize_config_module("infoflow.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["experiment=mnist_compare", f"paths.output_dir={tmp_path}"],
            return_hydra_config=True,
        )
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    variants = cfg.hydra.sweeper.params["experiment@_global_"].split(",")
    assert variants == ["mnist_deterministic", "mnist_noisy", "mnist_dropout"]
    assert cfg.model.net._target_ == "infoflow.models.cnn.mnist_cnn"


# Bad values of the MNIST keys: BAD_MNIST in tests/test_fuzz_config.py.


# --------------------------------------------------------------------------- data module


def test_mnist_datamodule_loaders(make_cfg, data_dir):
    dm = build_datamodule(make_cfg("model=mnist_cnn", *TINY, "dataset.batch_size=32"))
    assert isinstance(dm, MnistDataModule)
    dm.setup("fit")
    loaders = dm.val_dataloader()
    assert [loader.name for loader in loaders] == ["train", "val", "test"]
    assert [loader.x.shape[1] for loader in loaders] == [50, 30, N_TEST]
    assert dm.tensors["x_train"].shape == (1, 90, 1, 28, 28)
    # train/* is measured on the first 50 training images, a fixed subset of the shuffled set
    assert loaders[0].x.data_ptr() == dm.tensors["x_train"].data_ptr()
    assert len(dm.train_dataloader()) == 3 and dm.eval_set()[0].shape == (1, 20, 1, 28, 28)
    assert (data_dir / "mnist" / "mnist.npz").is_file()  # cached for the next run


def test_train_eval_null_uses_the_whole_training_set(make_cfg, data_dir):
    dm = build_datamodule(make_cfg("model=mnist_cnn", *TINY, "dataset.train_eval_size=null"))
    dm.setup("fit")
    assert dm.val_dataloader()[0].x.shape[1] == 90 and "x_train_eval" not in dm.tensors


def test_szt_loaders_unchanged():
    dm = SZTDataModule()
    dm.setup("fit")
    loaders = dm.val_dataloader()
    assert [loader.name for loader in loaders] == ["train", "val"]
    assert loaders[0].x is dm.tensors["x_train"] and loaders[0].x.shape[1] == 3277
    assert not {"x_test", "x_train_eval"} & set(dm.tensors)


def test_sizes_that_do_not_fit_the_data_are_a_data_error(make_cfg, data_dir):
    dm = build_datamodule(make_cfg("model=mnist_cnn", "dataset.val_size=500"))
    with pytest.raises(MnistDataError, match="val_size=500"):
        dm.setup("fit")


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_one_batch_cli_run(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "model=mnist_cnn",
        "noise.beta=0.01",
        *TINY,
        "dataset.download=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.enable_progress_bar=false",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert {"train/acc", "val/acc", "test/acc", "test/loss"} <= set(rows[0])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "config.yaml").is_file()
    # The callbacks, unchanged on MNIST: SP on the fc layer only (the conv layers are wider than
    # sp_max_width and skipped, with a reason), binned and KDE on every layer.
    info = list(csv.DictReader((run_dir / "information.csv").open()))
    layers = {
        e: {r["layer"] for r in info if r["estimator"] == e} for e in {r["estimator"] for r in info}
    }
    assert layers.pop("sp") == {"3"}
    assert layers.pop("gradients") == {"1", "2", "3", "4"}  # the weight layers, read-out last
    assert layers.pop("time") == {""}  # seconds spent measuring: a whole-run row
    assert layers.pop("ceiling") == {""}  # what SP's estimates can reach: whole-run rows
    assert not any(e.endswith("_beyond_ceiling") for e in {r["quantity"] for r in info})
    assert set(layers) == {
        "bin:width:0.05", "bin_noisy:width:0.05", "kde_upper", "kde_lower", "clustering"
    }  # fmt: skip
    assert all(v == {"1", "2", "3"} for v in layers.values())
    log = (run_dir / "infoflow.log").read_text()
    assert "SP information skipped for T1 (d=6272), T2 (d=3136)" in log
    assert "every one of the 20 inputs has its own bin" in log  # the saturation is said


@pytest.mark.slow
def test_compare_multirun_trains_the_three_variants_and_plot_compares_them(
    tmp_path, data_dir, capsys
):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "experiment=mnist_compare",
        *TINY,
        "callbacks.representations=null",
        "callbacks.plots=null",
        "dataset.download=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.enable_progress_bar=false",
        f"paths.data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = sorted(sweep.glob("*/config.yaml"))
    assert len(saved) == 3 and all((p.parent / "checkpoints/last.ckpt").is_file() for p in saved)
    setups = [OmegaConf.load(p) for p in saved]  # job order: deterministic, noisy, dropout
    assert [(c.noise.beta, c.model.net.dropout) for c in setups] == [
        (0.0, 0.0),
        (0.01, 0.0),
        (0.0, 0.2),
    ]
    # The comparison: the three trained nets on the same 20 evaluation images, layer by layer.
    assert plot_main(["--compare", str(sweep), "--samples", "12"]) == 0
    out = sweep / "compare"
    assert capsys.readouterr().out.split() == [
        str(out / name)
        for name in ("cosine_summary.csv", "cosine_histograms.png", "cosine_over_training.png")
    ]
    rows = list(csv.DictReader((out / "cosine_summary.csv").open()))
    labels = ["deterministic", "noisy β=0.01", "dropout p=0.2"]
    assert [(r["label"], r["layer"], r["pairs"]) for r in rows] == [
        (lab, str(k), pairs) for lab in labels for k in (1, 2, 3) for pairs in ("within", "between")
    ]
    # 12 images give 66 pairs, split alike for every net and layer: the same pairs everywhere.
    counts = {(r["layer"], r["pairs"]): set() for r in rows}
    for r in rows:
        counts[r["layer"], r["pairs"]].add(int(r["n_pairs"]))
    assert all(len(c) == 1 for c in counts.values())
    assert all(
        int(w["n_pairs"]) + int(b["n_pairs"]) == 66
        for w, b in zip(rows[::2], rows[1::2], strict=True)
    )


@pytest.mark.slow
def test_unwritable_data_dir_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "a_file").write_text("")  # a directory cannot be made under a file, even by root
    proc = run_cli(
        "model=mnist_cnn",
        f"paths.data_dir={tmp_path / 'a_file' / 'data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    # The data loads inside fit, after W&B has started (and may have printed its own warnings).
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("infoflow: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr[-2000:]
    assert "cannot write MNIST to" in errors[0] and "Traceback" not in proc.stderr
