"""Config validation with one-line messages, and the resolvers the configs use."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

ACTIVATIONS = ("tanh", "relu", "leaky_relu", "linear")


class ConfigError(ValueError):
    """A bad config value; its message is one line naming the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"invalid config: {key}={_show(value)} ({allowed})")


def _show(value: Any) -> str:
    if isinstance(value, DictConfig | ListConfig):
        return str(OmegaConf.to_container(value))
    return repr(value) if isinstance(value, str) else str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


# key -> (predicate, what is allowed). Keys absent from a config (another model's) are skipped.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be an integer"),
    "noise.beta": (lambda v: _is_number(v) and v >= 0, "must be a number >= 0; 0 is deterministic"),
    "noise.at_eval": (lambda v: isinstance(v, bool), "must be true or false"),
    "dataset.train_fraction": (lambda v: _is_number(v) and 0 < v <= 1, "must be in (0, 1]"),
    "dataset.batch_size": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
    "model.hidden": (
        lambda v: (
            isinstance(v, ListConfig | list)
            and len(v) > 0
            and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in v)
        ),
        "must be a non-empty list of positive integers, e.g. [10,7,5]",
    ),
    "model.activation": (lambda v: v in ACTIVATIONS, f"allowed: {', '.join(ACTIVATIONS)}"),
    "model.orth_alpha": (lambda v: _is_number(v) and v >= 0, "must be a number >= 0; 0 is off"),
    "optimizer.lr": (lambda v: _is_number(v) and v > 0, "must be a number > 0"),
    "threads": (
        lambda v: v is None or (isinstance(v, int) and v >= 1),
        "must be an integer >= 1, or null for torch's default",
    ),
    "trainer.max_epochs": (lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1"),
}

_MISSING = object()


def check_config(cfg: DictConfig, rules: dict = RULES) -> None:
    """Raise ConfigError for the first key whose value breaks its rule."""
    for key, (ok, allowed) in rules.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING and not ok(value):
            raise ConfigError(key, value, allowed)
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError("ckpt_path", ckpt, "must be an existing checkpoint file, or null")


def claim_run_dir(output_dir: str | os.PathLike) -> Path:
    """Mark ``output_dir`` as this run's, atomically; refuse a directory another run has claimed."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out / ".infoflow_run", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise ConfigError(
            "paths.output_dir", str(out), "already holds another run's results; choose a new one"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")
    return out


def _hydra_cfg() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name() -> str:
    """This run's command-line overrides (``noise.beta=0.01,seed=3``), or ``default``."""
    hc = _hydra_cfg()
    name = hc.job.override_dirname if hc is not None else ""
    return name or "default"


def sweep_name() -> str | None:
    """The sweep's identity (its directory's date and time) in a multirun, else None.

    ``hydra.sweep.dir`` is resolved once per sweep, so every job of one sweep gets the same name.
    """
    from hydra.types import RunMode

    hc = _hydra_cfg()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    sweep = Path(hc.sweep.dir)
    return f"{sweep.parent.name}_{sweep.name}"


def register_resolvers() -> None:
    for name, fn in {"infoflow.run_name": run_name, "infoflow.sweep_name": sweep_name}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
