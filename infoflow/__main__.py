"""`python -m infoflow`: the Hydra app over conf/config.yaml."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before wandb is imported anywhere: never wait on a network unless the user asks for it.
os.environ.setdefault("WANDB_MODE", "offline")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from infoflow.checks import register_resolvers  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
register_resolvers()


def user_error(exc: Exception) -> None:
    """One line and exit code 1 for bad input; HYDRA_FULL_ERROR=1 shows the traceback instead."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise exc
    print(f"infoflow: error: {exc}", file=sys.stderr)
    sys.exit(1)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from infoflow.errors import USER_ERRORS
    from infoflow.sweep import is_multirun, run_sweep_job
    from infoflow.train import run

    if is_multirun():  # a failing job is recorded in its status.json; the others go on
        return run_sweep_job(cfg, run, USER_ERRORS)
    try:
        metrics = run(cfg)
    except USER_ERRORS as exc:
        user_error(exc)
    return metrics.get("val/loss")


if __name__ == "__main__":
    main()
