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


def _is_int(v: Any) -> bool:
    """An integer >= 1 (bools excluded: YAML's true would otherwise pass as 1)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


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
    # MNIST and its CNN (sizes that must fit the data, e.g. eval_size <= val_size, are checked
    # when the data is loaded).
    "dataset.val_size": (_is_int, "must be an integer >= 1"),
    "dataset.subset": (
        lambda v: v is None or _is_int(v),
        "must be an integer >= 1, or null for all",
    ),
    "dataset.eval_size": (_is_int, "must be an integer >= 1"),
    "dataset.train_eval_size": (
        lambda v: v is None or _is_int(v),
        "must be an integer >= 1, or null for the whole training set",
    ),
    "dataset.download": (lambda v: isinstance(v, bool), "must be true or false"),
    "model.channels": (
        lambda v: isinstance(v, ListConfig | list) and len(v) == 2 and all(_is_int(c) for c in v),
        "must be two positive integers, e.g. [32,64]",
    ),
    "model.fc_width": (_is_int, "must be an integer >= 1"),
    "model.kernel_size": (lambda v: _is_int(v) and v % 2 == 1, "must be an odd integer >= 1"),
    "model.dropout": (lambda v: _is_number(v) and 0 <= v < 1, "must be in [0, 1); 0 is off"),
}

_SCHEMES = ("tishby", "width", "adaptive")


def _positive_or_list(v: Any, kind: type) -> bool:
    values = list(v) if isinstance(v, ListConfig | list) else [v]
    return len(values) > 0 and all(
        isinstance(x, kind | int) and not isinstance(x, bool) and x > 0 for x in values
    )


RULES.update(
    {
        "estimator.n_replicas": (
            lambda v: isinstance(v, int) and v >= 2,
            "must be an integer >= 2 (replicas per input)",
        ),
        "estimator.n_inputs": (
            lambda v: v is None or (isinstance(v, int) and v >= 1),
            "null or >= 1",
        ),
        "estimator.n_mc": (lambda v: v is None or (isinstance(v, int) and v >= 2), "null or >= 2"),
        "estimator.bin_scheme": (lambda v: v in _SCHEMES, f"allowed: {', '.join(_SCHEMES)}"),
        "estimator.bin_size": (
            lambda v: v is None or _positive_or_list(v, float),
            "must be a width > 0 or a list of them, e.g. [0.01,0.05]",
        ),
        "estimator.n_bins": (
            lambda v: v is None or _positive_or_list(v, int),
            "must be an integer >= 1 or a list of them",
        ),
        "estimator.kde_noise_var": (
            lambda v: v is None or (_is_number(v) and v > 0),
            "null or > 0",
        ),
    }
)

_MISSING = object()


def check_config(cfg: DictConfig, rules: dict = RULES) -> None:
    """Raise ConfigError for the first key whose value breaks its rule."""
    for key, (ok, allowed) in rules.items():
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING and not ok(value):
            raise ConfigError(key, value, allowed)
    _check_estimator(cfg)
    for name, cb in (cfg.get("callbacks") or {}).items():
        if cb is not None:
            _check_schedule(f"callbacks.{name}", cb)
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError("ckpt_path", ckpt, "must be an existing checkpoint file, or null")


def _check_estimator(cfg: DictConfig) -> None:
    est = cfg.get("estimator")
    if est is None or "bin_size" not in est:
        return
    if (est.bin_size is None) == (est.get("n_bins") is None):
        raise ConfigError(
            "estimator.bin_size", est.bin_size, "give exactly one of bin_size and n_bins"
        )
    if est.bin_scheme == "adaptive" and est.bin_size is not None:
        raise ConfigError("estimator.bin_size", est.bin_size, "the adaptive scheme takes n_bins")
    _check_schedule("estimator", est)


def _check_schedule(prefix: str, node: DictConfig) -> None:
    """A schedule must name epochs: every_n_epochs >= 1 and/or n_points >= 2."""
    if "n_points" not in node and "every_n_epochs" not in node:
        return
    every, points = node.get("every_n_epochs"), node.get("n_points")
    if every is None and points is None:
        raise ConfigError(f"{prefix}.n_points", None, "a schedule needs n_points or every_n_epochs")
    if every is not None and not (isinstance(every, int) and every >= 1):
        raise ConfigError(f"{prefix}.every_n_epochs", every, "must be an integer >= 1, or null")
    if points is not None and not (isinstance(points, int) and points >= 2):
        raise ConfigError(f"{prefix}.n_points", points, "must be an integer >= 2, or null")


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
    from infoflow.sweep import job_dirname

    resolvers = {
        "infoflow.run_name": run_name,
        "infoflow.sweep_name": sweep_name,
        "infoflow.job_dirname": job_dirname,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
