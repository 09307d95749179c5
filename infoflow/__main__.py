"""`python -m infoflow`: the Hydra app over conf/config.yaml.

Exit status: 0 done, 1 bad input (one line on stderr) or a failed job of a multirun, 130 / 143
stopped by SIGINT / SIGTERM. Every run records how it ended in ``status.json`` in its directory.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# Before wandb is imported anywhere: never wait on a network unless the user asks for it.
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from infoflow.rundir import register_resolvers  # noqa: E402
from infoflow.schema import register  # noqa: E402

register_resolvers()
register()
log = logging.getLogger("infoflow")


def run_single(cfg: DictConfig) -> float | None:
    """Train one run, recording ``running`` then ``completed`` / ``failed`` / ``interrupted``."""
    from hydra.core.hydra_config import HydraConfig

    from infoflow.errors import exit_for_user, one_line, run_errors
    from infoflow.rundir import RunRecord
    from infoflow.signals import RunInterrupted
    from infoflow.train import run

    hc = HydraConfig.get()
    record = RunRecord(hc.runtime.output_dir, list(hc.overrides.task))
    record.write("running")
    try:
        metrics = run(cfg)
    except run_errors() as exc:
        record.write("failed", error=one_line(exc))
        exit_for_user(exc)
    except RunInterrupted as exc:
        ckpt = Path(hc.runtime.output_dir) / "checkpoints" / "last.ckpt"
        resume = str(ckpt) if ckpt.is_file() else None
        record.write("interrupted", error=str(exc), checkpoint=resume)
        log.warning("%s; resume: %s", exc, f"ckpt_path={resume}" if resume else "no checkpoint yet")
        sys.exit(exc.exit_code)
    except BaseException as exc:
        record.write("failed", error=f"{type(exc).__name__}: {one_line(exc)}")
        raise
    record.write("completed", val_loss=metrics.get("val/loss"))
    return metrics.get("val/loss")


@hydra.main(version_base="1.3", config_path="pkg://infoflow.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from infoflow.signals import RunInterrupted, stop_on_signals
    from infoflow.sweep import is_multirun, run_sweep_job
    from infoflow.train import run

    with stop_on_signals():
        if not is_multirun():
            return run_single(cfg)
        try:  # a failing job is recorded in its status.json; the others go on
            return run_sweep_job(cfg, run)
        except RunInterrupted as exc:  # a stop signal ends the whole sweep
            sys.exit(exc.exit_code)


def main() -> None:
    """The command line: mistyped keys and options are one line (:mod:`infoflow.cli`), then Hydra."""
    from infoflow.cli import prepare

    sys.argv = [sys.argv[0], *prepare(sys.argv[1:])]
    hydra_main()


if __name__ == "__main__":
    main()
