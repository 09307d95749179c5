"""Build everything a run needs from its config, train, and always close the W&B run."""

from __future__ import annotations

import inspect
import logging
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from infoflow.checks import check_config
from infoflow.io import write_atomic
from infoflow.loggers import offline_runs, wandb_offline
from infoflow.models.ensemble import MLPEnsemble
from infoflow.models.module import ClassifierModule
from infoflow.models.network import NoisyNetwork
from infoflow.records import RecordError
from infoflow.rundir import claim_run_dir
from infoflow.signals import RunInterrupted, deferred
from infoflow.summary import format_summary, read_summary
from infoflow.threads import compute_threads

log = logging.getLogger(__name__)

# Each run owns a fresh directory (claim_run_dir), so the CSV logger's "not empty" warning is moot.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
# Intended: the module's transfer skips the copy for the tensors the datamodules keep on device.
warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device`")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


def _not_a_litlogger_tip(record: logging.LogRecord) -> bool:
    """Lightning's advertisement for its LitLogger, printed by every Trainer (no setting stops it)."""
    return "litlogger" not in str(record.msg)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_a_litlogger_tip)


def ensemble_seeds(cfg: DictConfig) -> list[int]:
    """The members' seeds: ``seed, seed + 1, …, seed + ensemble.size − 1``."""
    size = cfg.get("ensemble", {}).get("size", 1)
    return [cfg.seed + k for k in range(size)]


def build_network(cfg: DictConfig) -> MLPEnsemble | NoisyNetwork:
    """The network(s) of ``cfg.model`` with the noise of ``cfg.noise``: an :class:`MLPEnsemble` of
    ``ensemble.size`` members for a model that takes ``seeds``, else one :class:`NoisyNetwork`."""
    model_cfg = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k != "orth_alpha"])
    takes_seeds = "seeds" in inspect.signature(get_object(model_cfg._target_)).parameters
    extra = {"seeds": ensemble_seeds(cfg)} if takes_seeds else {}
    return instantiate(model_cfg, beta=cfg.noise.beta, noise_at_eval=cfg.noise.at_eval, **extra)


def build_module(cfg: DictConfig) -> ClassifierModule:
    return ClassifierModule(
        build_network(cfg),
        optimizer=instantiate(cfg.optimizer),
        orth_alpha=cfg.model.get("orth_alpha", 0.0),
        seed=cfg.seed,
    )


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry of a named dict of components; ``null`` entries are switched off."""
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    loggers = _instantiate_all(cfg.get("logger"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def resolved_config(cfg: DictConfig) -> dict:
    """The run's config as a plain dict, resolved, without Hydra's own node."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def _finish_wandb(exit_code: int = 0) -> None:
    wandb = sys.modules.get("wandb")  # not imported: no W&B logger, nothing to finish
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)  # 1: W&B shows the run as failed


def log_summary(out: Path, wall_s: float) -> None:
    """Log the run's summary (:mod:`infoflow.summary`, from its records) and where its W&B offline
    run is; the last line names the run directory. A damaged record only costs the summary."""
    try:
        summary = read_summary(out)
    except RecordError as exc:
        log.warning("no summary: %s\nRun directory: %s", exc, out)
        return
    wandb_runs = offline_runs(out) if wandb_offline() else []
    notes = [f"W&B offline run; upload: wandb sync {wandb_runs[-1]}"] if wandb_runs else []
    log.info("%s", format_summary(summary, out, wall_s, notes))


def run(cfg: DictConfig) -> dict[str, float]:
    """Train the configured network; returns the final epoch's metrics."""
    started = time.monotonic()
    check_config(cfg)
    # Under DDP every rank runs this with the same directory: rank 0 owns it and writes its files.
    rank_zero = rank_zero_only.rank == 0
    out = claim_run_dir(cfg.paths.output_dir) if rank_zero else Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    # null: the thread policy's count (what this process may use, its launcher share, the load)
    torch.set_num_threads(cfg.get("threads") or compute_threads())
    config = resolved_config(cfg)
    if rank_zero:
        write_atomic(out / "config.yaml", OmegaConf.to_yaml(config))
    try:
        datamodule = instantiate(cfg.dataset)
        module = build_module(cfg)
        trainer = build_trainer(cfg)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        with deferred():  # the final model, whatever the checkpoint callback's period; whole
            trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)
    except RunInterrupted as exc:
        _finish_wandb(exit_code=exc.exit_code)
        raise
    except BaseException:
        _finish_wandb(exit_code=1)
        raise
    finally:
        _finish_wandb()
    if rank_zero:
        log_summary(out, time.monotonic() - started)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
