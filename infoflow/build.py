"""Building what a run needs from its config: the network, the data, the LightningModule, the
callbacks, the loggers and the Trainer.

infoflow gives each component what it sets itself (:data:`infoflow.schema.SET_BY`): the members'
seeds, the noise, the output folders; the config holds everything else, one name per setting.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from infoflow.checkpoint import use_atomic_saves
from infoflow.models.module import ClassifierModule
from infoflow.models.network import Network
from infoflow.rundir import run_name, sweep_name
from infoflow.schema import parameters
from infoflow.stopping import safe_point


def ensemble_seeds(cfg: DictConfig) -> list[int]:
    """The members' seeds: ``seed, seed + 1, …, seed + ensemble.size − 1``."""
    return [cfg.seed + k for k in range(cfg.ensemble.size)]


def owned_arguments(target: str, out: Path) -> dict[str, str]:
    """The folders infoflow gives a component (:data:`infoflow.schema.SET_BY`): its output folder,
    a checkpoint folder, a logger's save folder, for the arguments ``target`` takes."""
    folders = {"output_dir": out, "dirpath": out / "checkpoints", "save_dir": out}
    params = parameters(target) or {}
    return {name: str(path) for name, path in folders.items() if name in params}


def build_network(cfg: DictConfig) -> Network:
    """The ``ensemble.size`` networks of ``cfg.model`` with the noise of ``cfg.noise``."""
    return instantiate(
        cfg.model, seeds=ensemble_seeds(cfg), beta=cfg.noise.beta, noise_at_eval=cfg.noise.at_eval
    )


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data of ``cfg.dataset``, one split per member (and MNIST's folder from ``paths``)."""
    extra: dict = {"seeds": ensemble_seeds(cfg)}
    if "data_dir" in (parameters(cfg.dataset._target_) or {}):
        extra["data_dir"] = cfg.paths.data_dir
    return instantiate(cfg.dataset, **extra)


def build_module(cfg: DictConfig) -> ClassifierModule:
    return ClassifierModule(build_network(cfg), optimizer=instantiate(cfg.optimizer))


def build_callbacks(cfg: DictConfig, out: Path) -> list[pl.Callback]:
    """Every callback of the named dict (``null``: switched off), with its folder; a measuring
    callback without a schedule of its own measures on ``cfg.schedule``."""
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if node is None:
            continue
        extra: dict = owned_arguments(node._target_, out)
        params = parameters(node._target_) or {}
        own = node.get("n_points") is not None or node.get("every_n_epochs") is not None
        if "n_points" in params and "every_n_epochs" in params and not own:
            extra |= {
                "n_points": cfg.schedule.n_points,
                "every_n_epochs": cfg.schedule.every_n_epochs,
            }
        callbacks.append(instantiate(node, **extra))
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    return callbacks


def build_loggers(cfg: DictConfig, out: Path) -> list:
    """Every logger of the named dict, saving into the run directory; W&B named after the run
    (its experiment and overrides) and grouped by sweep unless given a name and group."""
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if node is None:
            continue
        extra: dict = owned_arguments(node._target_, out)
        if str(node._target_).endswith("WandbLogger"):
            extra |= {"save_dir": str(out), "name": node.get("name") or run_name()}
            extra |= {"group": node.get("group") or sweep_name()}
        loggers.append(instantiate(node, **extra))
    return loggers


class SafePoints(pl.Callback):
    """The trainer's safe points (:func:`infoflow.stopping.safe_point`): after every training and
    validation step and at the end of every epoch, a stop signal recorded meanwhile stops the
    run. Lightning's own SIGTERM check comes after these hooks; it knows no SIGINT or SIGHUP."""

    def on_train_batch_end(self, *args: object, **kwargs: object) -> None:
        safe_point()

    def on_validation_batch_end(self, *args: object, **kwargs: object) -> None:
        safe_point()

    def on_train_epoch_end(self, *args: object, **kwargs: object) -> None:
        safe_point()


def build_trainer(cfg: DictConfig, out: Path) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the callbacks and loggers, the trainer's safe points
    (:class:`SafePoints`, always) and checkpoints saved whole
    (:func:`infoflow.checkpoint.use_atomic_saves`)."""
    loggers = build_loggers(cfg, out)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*build_callbacks(cfg, out), SafePoints()],
        logger=loggers or False,
        default_root_dir=str(out),
    )
    use_atomic_saves(trainer)
    return trainer
