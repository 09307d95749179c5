"""Build everything a run needs from its config, train, and always close the W&B run."""

from __future__ import annotations

import logging
import signal
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from infoflow.build import build_datamodule, build_module, build_trainer
from infoflow.checks import check_config
from infoflow.io import write_atomic
from infoflow.loggers import offline_runs, wandb_offline
from infoflow.records import RecordError
from infoflow.rundir import claim_run_dir
from infoflow.signals import RunInterrupted
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
        datamodule = build_datamodule(cfg)
        module = build_module(cfg)
        trainer = build_trainer(cfg, out)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        # The final model, whatever the checkpoint callback's period; whole (atomic saves).
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)
    except SIGTERMException as exc:  # Lightning's own SIGTERM check, if it came first
        _finish_wandb(exit_code=128 + signal.SIGTERM)
        raise RunInterrupted(signal.SIGTERM) from exc
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
