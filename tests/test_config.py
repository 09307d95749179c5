"""Config composition: every override a user would try works without `+`, and bad values are caught."""

import pytest
from omegaconf import OmegaConf

from infoflow.build import build_datamodule, build_network
from infoflow.checks import ConfigError, check_config

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
    net = build_network(cfg)
    assert [w.shape[1] for w in net.weights()] == [10, 7, 5, 2]
    assert type(net.activation).__name__ == "ReLU" and net.beta == 0.0


def test_datamodule_from_config(make_cfg):
    dm = build_datamodule(make_cfg("dataset.train_fraction=0.5", "seed=2", "ensemble.size=2"))
    assert dm.train_fraction == 0.5 and dm.seeds == [2, 3]


# Bad values of every key: tests/test_fuzz_config.py. Here the rules beyond a single value.


def test_every_setting_has_one_name(make_cfg):
    """A callback's settings are its own keys; what infoflow sets from another key (folders,
    seeds, the noise) is not a key of the component, and setting it names the key to set."""
    cfg = make_cfg("callbacks.binned.bin_size=[0.1]", "callbacks.information.target_stderr=0.01")
    check_config(cfg)
    assert "estimator" not in cfg and "seed" not in cfg.callbacks.information
    assert "output_dir" not in cfg.callbacks.binned and "beta" not in cfg.model
    cases = {
        "+callbacks.binned.output_dir=x": "set by paths.output_dir",
        "+model.beta=0.1": "set by noise.beta",
        "+model.seeds=[1]": "set by seed and ensemble.size",
        "+dataset.seeds=[1]": "set by seed and ensemble.size",
    }
    for override, words in cases.items():
        with pytest.raises(ConfigError, match=words):
            check_config(make_cfg(override))


def test_a_callback_may_keep_its_own_schedule(make_cfg, tmp_path):
    from infoflow.build import build_callbacks

    cfg = make_cfg("callbacks.clustering.n_points=5", "schedule.n_points=7")
    check_config(cfg)
    by_name = {type(c).__name__: c for c in build_callbacks(cfg, tmp_path)}
    assert by_name["ClusteringCallback"].n_points == 5 and by_name["BinnedCallback"].n_points == 7


def test_components_take_only_their_constructors_arguments(make_cfg):
    with pytest.raises(ConfigError, match=r"not an argument of .*PlotsCallback"):
        check_config(make_cfg("++callbacks.plots.colour=red"))
    with pytest.raises(ConfigError, match=r"did you mean max_samples"):
        check_config(make_cfg("++callbacks.clustering.max_sample=3"))
    # every argument of Lightning's Trainer and torch's Adam is a key, no + needed
    check_config(make_cfg("trainer.benchmark=true", "optimizer.weight_decay=0.01"))


def test_options_manual_optimisation_rejects_are_refused(make_cfg):
    with pytest.raises(ConfigError, match="optimises manually"):
        check_config(make_cfg("trainer.gradient_clip_val=0.5"))


def test_lightning_refuses_its_own_bad_values_before_the_run(make_cfg):
    with pytest.raises(ConfigError, match=r"trainer.precision=17 \(must be 64 or 32 .*bf16-mixed"):
        check_config(make_cfg("trainer.precision=17"))  # its type hint
    with pytest.raises(
        ConfigError,
        match=r"config: trainer.strategy='nonsense' \(Lightning refuses it: You selected an invalid",
    ):
        check_config(make_cfg("trainer.strategy=nonsense"))  # its constructor
    with pytest.raises(ConfigError, match=r"trainer.max_epochs=0"):
        check_config(make_cfg("trainer.max_epochs=0"))


def test_two_settings_that_exclude_each_other(make_cfg):
    with pytest.raises(ConfigError, match="exactly one of bin_size and n_bins"):
        check_config(make_cfg("callbacks.binned.n_bins=30"))
    with pytest.raises(ConfigError, match="schedule.n_points"):
        check_config(make_cfg("schedule.n_points=null"))


def test_keys_hydra_excludes_from_run_names_exist():
    """conf/hydra/default.yaml names keys to leave out of run names: each must exist (seed_offset
    did not)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("infoflow.conf", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    excluded = cfg.hydra.job.config.override_dirname.exclude_keys
    assert excluded and all(
        OmegaConf.select(cfg, k, default="absent") != "absent" for k in excluded
    )


def test_missing_checkpoint_is_reported(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="ckpt_path"):
        check_config(make_cfg(f"ckpt_path={tmp_path}/nope.ckpt"))


def test_the_schema_read_from_source_is_the_imported_signature():
    """The structured configs come from each constructor's source (ast), so composing a config
    needs no torch; the keys and defaults are exactly those of the imported signature."""
    import inspect

    from omegaconf import MISSING

    from infoflow.schema import COMPONENTS, parameters, source_defaults

    for options in COMPONENTS.values():
        for target in options.values():
            read, imported = source_defaults(target), parameters(target)
            assert (read is None) == (imported is None), target
            if read is None:
                continue
            assert list(read) == list(imported), target
            for name, p in imported.items():
                want = MISSING if p.default is inspect.Parameter.empty else p.default
                if isinstance(want, int | float | str | bool | tuple | type(None)):
                    assert read[name] == want, (target, name)


@pytest.mark.slow
def test_a_bad_value_is_refused_without_importing_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, runpy; sys.argv = ['infoflow', 'noise.beta=-1'];\n"
        "try:\n    runpy.run_module('infoflow', run_name='__main__')\n"
        "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "False"], out.stdout + out.stderr
