"""`python -m infoflow`: the Hydra app over conf/config.yaml.

Exit status: 0 done, 1 bad input or a fault (one line on stderr: a bad value, a checkpoint that
does not fit, a full disk, a diverging network) or a failed job of a multirun, 130 / 143 / 129
stopped by SIGINT / SIGTERM / SIGHUP (:mod:`infoflow.signals`). Every run records how it ended in
``status.json`` in its directory.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

# Before wandb is imported anywhere: never wait on a network unless the user asks for it.
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from infoflow.rundir import RunRecord, register_resolvers, resume_hint  # noqa: E402
from infoflow.schema import register  # noqa: E402

register_resolvers()
register()
log = logging.getLogger("infoflow")


def run_single(cfg: DictConfig) -> float | None:
    """Train one run, recording ``running`` then ``completed`` / ``failed`` / ``interrupted``."""
    from hydra.core.hydra_config import HydraConfig

    from infoflow.errors import exit_for_user, one_line, run_errors, storage_error
    from infoflow.signals import RunInterrupted, received, stop_on_signals
    from infoflow.stopping import safe_point
    from infoflow.train import run

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    record = RunRecord(out, list(hc.overrides.task))
    try:
        record.claim()  # of two runs started into one folder, one is refused here
    except run_errors() as exc:
        exit_for_user(exc)
    with stop_on_signals(final=record.stopped_at_once):
        try:
            safe_point()  # a signal while Hydra started
            record.write("running")
            metrics = run(cfg)
        except run_errors() as exc:
            record.end("failed", error=one_line(exc))
            exit_for_user(exc)
        except RunInterrupted as exc:
            resume = resume_hint(out)
            record.end("interrupted", error=str(exc), checkpoint=resume)
            log.warning("%s; resume: %s", exc, f"ckpt_path={resume}" if resume else "no checkpoint")
            sys.exit(exc.exit_code)
        except OSError as exc:
            if (error := storage_error(exc)) is None:
                record.end("failed", error=f"{type(exc).__name__}: {one_line(exc)}")
                raise
            record.end("failed", error=one_line(error))
            exit_for_user(error)
        except BaseException as exc:
            record.end("failed", error=f"{type(exc).__name__}: {one_line(exc)}")
            raise
        if (late := received()) is not None:
            log.info("%s arrived as the run finished: completed", signal.Signals(late).name)
        record.end("completed", val_loss=metrics.get("val/loss"))
    return metrics.get("val/loss")


@hydra.main(version_base="1.3", config_path="pkg://infoflow.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    from infoflow.sweep import is_multirun, run_sweep_job
    from infoflow.train import run

    if not is_multirun():
        return run_single(cfg)
    return run_sweep_job(cfg, run)


def main() -> None:
    """The command line: mistyped keys and options are one line (:mod:`infoflow.cli`), then Hydra."""
    from infoflow.cli import prepare
    from infoflow.signals import RunInterrupted, stop_on_signals

    with stop_on_signals():  # from here on a stop signal is recorded, and acted on at safe points
        try:
            sys.argv = [sys.argv[0], *prepare(sys.argv[1:])]
            hydra_main()
        except RunInterrupted as exc:  # before a run began, or a sweep's job ending the sweep
            sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
