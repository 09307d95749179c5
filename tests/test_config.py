"""Config composition: every override a user would try works without `+`, and bad values are caught."""

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from infoflow.checks import ConfigError, _callback_wiring, check_config
from infoflow.train import build_network
from tests.conftest import CONF_DIR

OVERRIDES = {
    "noise.beta=0.01": ("noise.beta", 0.01),
    "trainer.max_epochs=50": ("trainer.max_epochs", 50),
    "seed=3": ("seed", 3),
    "dataset.train_fraction=0.5": ("dataset.train_fraction", 0.5),
    "model.activation=relu": ("model.activation", "relu"),
    "model.hidden=[10,7,5]": ("model.hidden", [10, 7, 5]),
    "trainer.accelerator=cpu": ("trainer.accelerator", "cpu"),
    "trainer.limit_train_batches=20": ("trainer.limit_train_batches", 20),
    "paths.data_dir=/some/dir": ("paths.data_dir", "/some/dir"),
    "optimizer.lr=0.001": ("optimizer.lr", 0.001),
    "dataset.batch_size=512": ("dataset.batch_size", 512),
    "noise.at_eval=true": ("noise.at_eval", True),
    "model.orth_alpha=0.01": ("model.orth_alpha", 0.01),
    "callbacks.model_checkpoint.every_n_epochs=10": (
        "callbacks.model_checkpoint.every_n_epochs",
        10,
    ),
    "logger.wandb.project=other": ("logger.wandb.project", "other"),
}


@pytest.mark.parametrize("override", list(OVERRIDES))
def test_override_applies_without_plus(make_cfg, override):
    key, expected = OVERRIDES[override]
    cfg = make_cfg(override)
    value = cfg
    for part in key.split("."):
        value = value[part]
    assert (list(value) if key == "model.hidden" else value) == expected
    check_config(cfg)


def test_model_overrides_reach_the_network(make_cfg):
    cfg = make_cfg("model.hidden=[10,7,5]", "model.activation=relu", "noise.beta=0")
    net = build_network(cfg).member(0)
    assert [b[0].out_features for b in net.blocks] == [10, 7, 5]
    assert type(net.blocks[0][1]).__name__ == "ReLU" and net.beta == 0.0


def test_datamodule_from_config(make_cfg):
    dm = instantiate(make_cfg("dataset.train_fraction=0.5", "seed=2").dataset)
    assert dm.train_fraction == 0.5 and dm.seed == 2


# Bad values of every key: tests/test_fuzz_config.py. Here the rules beyond a single value.


def test_estimator_settings_live_in_one_place(make_cfg):
    """The callbacks take their estimator settings from estimator.*; setting one on a callback
    alone is refused with the key to set instead."""
    wiring = _callback_wiring()
    assert wiring["callbacks.binned.bin_size"] == "${estimator.bin_size}"
    assert wiring["callbacks.information.seed"] == "${seed}"
    assert not [k for k in wiring if k.endswith((".n_points", ".every_n_epochs"))]
    with pytest.raises(ConfigError, match=r"bin_size=\[0.1\] \(set by estimator.bin_size"):
        check_config(make_cfg("callbacks.binned.bin_size=[0.1]"))
    cfg = make_cfg("estimator.bin_size=[0.1]")
    check_config(cfg)
    assert list(cfg.callbacks.binned.bin_size) == [0.1]


def test_a_callback_may_keep_its_own_schedule(make_cfg):
    cfg = make_cfg("callbacks.clustering.n_points=5", "estimator.n_points=7")
    check_config(cfg)
    assert (cfg.callbacks.clustering.n_points, cfg.callbacks.binned.n_points) == (5, 7)


def test_components_take_only_their_constructors_arguments(make_cfg):
    with pytest.raises(ConfigError, match="it takes: max_fraction, min_interval_s, output_dir"):
        check_config(make_cfg("+callbacks.plots.colour=red"))
    check_config(make_cfg("+trainer.benchmark=true", "+optimizer.weight_decay=0.01"))


def test_options_manual_optimisation_rejects_are_not_offered(make_cfg):
    assert "gradient_clip_val" not in make_cfg().trainer
    with pytest.raises(ConfigError, match="optimises manually"):
        check_config(make_cfg("+trainer.gradient_clip_val=0.5"))


def test_keys_hydra_excludes_from_run_names_exist():
    """conf/hydra/default.yaml names keys to leave out of run names: each must exist (seed_offset
    did not)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    excluded = cfg.hydra.job.config.override_dirname.exclude_keys
    assert excluded and all(
        OmegaConf.select(cfg, k, default="absent") != "absent" for k in excluded
    )


def test_missing_checkpoint_is_reported(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path"):
        check_config(make_cfg(f"ckpt_path={tmp_path}/nope.ckpt"))
