"""Bad values across the schema: every one is one line naming the key, before anything is built.

The fast test checks each case in-process (compose + :func:`infoflow.checks.check_config`); the
slow one runs ``python -m infoflow <case>`` for one case of every group and the cross-key ones, in
an empty folder and asserts one line on stderr, exit status 1, no traceback and nothing left
on disk.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from infoflow.checks import ConfigError, check_config
from infoflow.rundir import register_resolvers
from infoflow.schema import register

# key -> bad values, as typed on the command line (a leading "+" adds a key the config lacks).
BAD: dict[str, list[str]] = {
    "seed": ["-1", "1.5", "abc", "true", "4294967296"],
    "threads": ["0", "-2", "1.5", "x"],
    "ckpt_path": ["/no/such.ckpt", "''"],
    "noise.beta": ["-1", "inf", "nan", "-inf", "x", "true", "[0.1]"],
    "noise.at_eval": ["maybe", "1"],
    "ensemble.size": ["0", "-1", "x"],
    "schedule.n_points": ["1", "0", "-3", "2.5"],
    "schedule.every_n_epochs": ["0", "-1", "x"],
    "dataset.batch_size": ["0", "-5", "1.5", "x"],
    "dataset.train_fraction": ["0", "1.5", "-0.1", "inf", "x", "0.0001"],
    "dataset.eval_on": ["x", "1"],
    "dataset.shuffle_labels": ["maybe"],
    "+dataset.seeds": ["[3]"],
    "model.hidden": ["[]", "[0]", "[10,-1]", "x", "[1.5]", "5"],
    "model.activation": ["sigmoid", "1", "''"],
    "model.orth_alpha": ["-1", "inf", "x"],
    "model.in_features": ["0", "x"],
    "model.n_classes": ["1"],
    "+model.beta": ["0.1"],
    "optimizer.lr": ["-1", "inf", "nan", "x"],
    "optimizer.weight_decay": ["-1"],
    "callbacks.information.n_replicas": ["1", "0", "x"],
    "callbacks.information.n_inputs": ["0", "-1", "1.5"],
    "callbacks.information.n_mc": ["1", "0"],
    "callbacks.information.max_width": ["0", "x"],
    "callbacks.information.target_stderr": ["0", "-1", "x"],
    "callbacks.information.n_points": ["1", "x"],
    "+callbacks.information.output_dir": ["/elsewhere"],
    "callbacks.binned.scheme": ["x", "1"],
    "callbacks.binned.bin_size": ["-1", "0", "[]", "[0.1,-1]", "inf", "x"],
    "callbacks.binned.value_range": ["[1,0]", "[0]", "x", "[0,inf]"],
    "callbacks.binned.noisy": ["x"],
    "callbacks.binned.kde_noise_var": ["0", "-1", "nan"],
    "callbacks.binned.every_n_epochs": ["0"],
    "callbacks.clustering.max_samples": ["1", "0", "x"],
    "callbacks.representations.n_bins": ["0"],
    "callbacks.training.every_n_epochs": ["0", "x"],
    "callbacks.plots.units": ["x"],
    "callbacks.plots.max_fraction": ["0", "2"],
    "callbacks.plots.min_interval_s": ["-1"],
    "callbacks.plots._target_": ["nope.Nope", "infoflow.callbacks.plots.Nope"],
    "+callbacks.plots.no_such_arg": ["1"],
    "callbacks.model_checkpoint.save_top_k": ["-2", "x"],
    "callbacks.model_checkpoint.every_n_epochs": ["-1"],
    "+callbacks.model_checkpoint.dirpath": ["/elsewhere"],
    "trainer.max_epochs": ["0", "-1", "2.5", "x"],
    "trainer.accelerator": ["x", "gpu", "tpu"],
    "trainer.devices": ["0", "x", "-2"],
    "trainer.num_nodes": ["0"],
    "trainer.precision": ["8", "x"],
    "trainer.limit_train_batches": ["1.5", "-1"],
    "trainer.limit_val_batches": ["-1", "1.5"],
    "trainer.check_val_every_n_epoch": ["0"],
    "trainer.num_sanity_val_steps": ["-2"],
    "trainer.log_every_n_steps": ["x"],
    "trainer.enable_progress_bar": ["x"],
    "trainer.enable_model_summary": ["2"],
    "trainer.deterministic": ["x"],
    "trainer.strategy": ["''"],
    "trainer.gradient_clip_val": ["1"],
    "trainer.accumulate_grad_batches": ["2"],
    "+trainer.no_such_option": ["1"],
    "+trainer.default_root_dir": ["/elsewhere"],
    "trainer.detect_anomaly": ["x"],
    "trainer.val_check_interval": ["1.5"],
    "trainer.profiler": ["x"],
    "logger.wandb.project": ["''"],
    "logger.wandb.log_model": ["x"],
    "+logger.csv.save_dir": ["/elsewhere"],
    "paths.data_dir": ["''"],
}
# Keys of the MNIST CNN, composed with model=mnist_cnn.
BAD_MNIST: dict[str, list[str]] = {
    "model.net.dropout": ["1.0", "-0.1"],
    "model.net.kernel_size": ["4", "0"],
    "model.net.channels": ["[32]", "[32,0]"],
    "model.net.fc_width": ["0"],
    "model.layers": ["[]", "[block9]"],
    "dataset.val_size": ["0"],
    "dataset.subset": ["0"],
    "dataset.eval_size": ["0"],
    "dataset.train_eval_size": ["0"],
    "dataset.download": ["maybe"],
}
# Values that are each fine but wrong together: (overrides, the key the message names).
BAD_TOGETHER = [
    (["callbacks.binned.n_bins=5"], "callbacks.binned.bin_size"),
    (["callbacks.binned.scheme=adaptive"], "callbacks.binned.bin_size"),
    (["schedule.n_points=null"], "schedule.n_points"),
    (["dataset.eval_on=val", "dataset.train_fraction=0.9999"], "dataset.train_fraction"),
    (["model=mnist_cnn", "dataset.val_size=100", "dataset.eval_size=200"], "dataset.eval_size"),
]


def _cases() -> list[tuple[list[str], str]]:
    cases = []
    for table, pre in ((BAD, []), (BAD_MNIST, ["model=mnist_cnn"])):
        for key, values in table.items():
            cases += [([*pre, f"{key}={v}"], key.lstrip("+")) for v in values]
    return cases + BAD_TOGETHER


CASES = _cases()


def test_the_fuzz_is_wide():
    keys = {key for _, key in CASES}
    assert len(keys) >= 60 and len(CASES) >= 150, (len(keys), len(CASES))


@pytest.fixture(scope="module")
def composed(tmp_path_factory) -> Callable[..., DictConfig]:
    """The config with ``overrides``: the groups they choose composed once (Hydra's compose takes
    ~0.1 s), then each key's value set as Hydra's parser reads it."""
    bases: dict[tuple[str, ...], DictConfig] = {}
    out = tmp_path_factory.mktemp("fuzz")
    register_resolvers()
    register()

    def _compose(*overrides: str) -> DictConfig:
        groups = tuple(o for o in overrides if "." not in o.split("=")[0])
        if groups not in bases:
            with initialize_config_module("infoflow.conf", version_base="1.3"):
                bases[groups] = compose("config", [*groups, f"paths.output_dir={out}"])
        cfg = copy.deepcopy(bases[groups])
        parser = OverridesParser.create()
        for line in overrides:
            if line in groups:
                continue
            override = parser.parse_override(line)
            with open_dict(cfg):
                OmegaConf.update(cfg, override.key_or_group, override.value(), force_add=True)
        return cfg

    return _compose


def test_setting_a_value_reads_it_as_the_command_line_does(composed, make_cfg):
    def raw(cfg: DictConfig) -> dict:
        return {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "paths"}

    for overrides, _ in CASES[::7]:
        assert raw(composed(*overrides)) == raw(make_cfg(*overrides)), overrides


@pytest.mark.parametrize(("overrides", "key"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_value_is_one_line_naming_the_key(composed, overrides, key):
    with pytest.raises(ConfigError) as err:
        check_config(composed(*overrides))
    message = str(err.value)
    named = f"invalid config: {key}=" in message or f"invalid config: {key} (" in message
    assert "\n" not in message and named, message
    assert message.endswith(")")  # says what is allowed


def _run(tmp: Path, overrides: list[str]) -> tuple[int, str, list[str]]:
    cwd = Path(tempfile.mkdtemp(prefix="case_", dir=tmp))  # an empty folder of its own
    env = {**os.environ, "WANDB_MODE": "disabled"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "infoflow", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stderr, [str(p) for p in cwd.rglob("*")]


#: The command-line plumbing (one line on stderr, exit 1, nothing on disk): the first case of every
#: group (plain keys, each component kind, Lightning's and torch's refusals, keys infoflow sets)
#: and every cross-key one; each value is checked in-process above.
CLI_CASES = list({key.lstrip("+").split(".")[0]: (o, key) for o, key in reversed(CASES)}.values())
CLI_CASES += [c for c in BAD_TOGETHER if c not in CLI_CASES]
CLI_CASES += [  # and one of each other way a value is refused
    (["trainer.accelerator=tpu"], "trainer.accelerator"),  # Lightning's constructor
    (["trainer.precision=8"], "trainer.precision"),  # Lightning's type hint
    (["+trainer.no_such_option=1"], "trainer.no_such_option"),  # not an argument
    (["+model.beta=0.1"], "model.beta"),  # set by noise.beta
    (["callbacks.plots._target_=nope.Nope"], "callbacks.plots._target_"),  # cannot import it
    (["model=mnist_cnn", "model.net.kernel_size=4"], "model.net.kernel_size"),  # a function's spec
]


@pytest.mark.slow
def test_bad_values_on_the_command_line(tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _run(tmp_path, c[0]), CLI_CASES))
    bad = []
    for (overrides, key), (code, err, left) in zip(CLI_CASES, results, strict=True):
        lines = err.strip().splitlines()
        one = len(lines) == 1 and lines[0].startswith(
            (
                f"infoflow: error: invalid config: {key}=",
                f"infoflow: error: invalid config: {key} (",
            )
        )
        if code != 1 or not one or "Traceback" in err or left:
            bad.append(f"{' '.join(overrides)}: exit {code}, left {left}, stderr {err[-300:]!r}")
    assert not bad, "\n".join(bad)
