"""Config composition: every override a user would try works without `+`, and bad values are caught."""

import pytest
from hydra.utils import instantiate

from infoflow.checks import ConfigError, check_config
from infoflow.train import build_network

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


def test_defaults_are_the_papers_szt_setup(make_cfg):
    cfg = make_cfg()
    assert cfg.seed == 0 and cfg.noise.beta == 0.005
    assert cfg.optimizer.lr == 4e-4 and cfg.dataset.batch_size == 256
    net = build_network(cfg)
    assert [b[0].out_features for b in net.blocks] == [10, 7, 5, 4, 3]
    assert net.head.out_features == 2 and net.beta == 0.005


def test_model_overrides_reach_the_network(make_cfg):
    cfg = make_cfg("model.hidden=[10,7,5]", "model.activation=relu", "noise.beta=0")
    net = build_network(cfg)
    assert [b[0].out_features for b in net.blocks] == [10, 7, 5]
    assert type(net.blocks[0][1]).__name__ == "ReLU" and net.beta == 0.0


def test_datamodule_from_config(make_cfg):
    dm = instantiate(make_cfg("dataset.train_fraction=0.5", "seed=2").dataset)
    assert dm.train_fraction == 0.5 and dm.seed == 2


BAD = {
    "noise.beta=-0.1": "noise.beta=-0.1",
    "dataset.train_fraction=0": "dataset.train_fraction=0",
    "dataset.train_fraction=1.5": "dataset.train_fraction=1.5",
    "model.hidden=[]": "model.hidden=[]",
    "model.hidden=[10,0,5]": "model.hidden=[10, 0, 5]",
    "model.activation=sigmoid": "model.activation='sigmoid'",
    "optimizer.lr=0": "optimizer.lr=0",
    "optimizer.lr=-1e-3": "optimizer.lr=-0.001",
    "dataset.batch_size=0": "dataset.batch_size=0",
    "trainer.max_epochs=0": "trainer.max_epochs=0",
    "model.orth_alpha=-1": "model.orth_alpha=-1",
    "threads=0": "threads=0",
}


@pytest.mark.parametrize("override", list(BAD))
def test_bad_values_give_one_line_naming_key_and_value(make_cfg, override):
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(override))
    message = str(err.value)
    assert "\n" not in message and BAD[override] in message
    assert "(" in message  # says what is allowed


def test_missing_checkpoint_is_reported(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path"):
        check_config(make_cfg(f"ckpt_path={tmp_path}/nope.ckpt"))
