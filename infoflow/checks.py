"""The config schema: every key a user can type, checked before training, one line per bad value.

:data:`SCHEMA` declares, for each key (``*`` stands for one path segment), what values it takes.
:func:`check_config` walks the composed config and checks every key the schema knows, then:

* **one place per setting**: a key wired to another setting (the callbacks' estimator settings are
  ``${estimator.*}`` in conf/callbacks/default.yaml, the components' ``seed`` and folders come from
  ``seed`` and ``paths.*``) may not be set on its own — the message names the key to set instead;
* **no unknown keys**: a component (``_target_``) takes only its constructor's arguments;
* the rules that tie keys together (a schedule needs epochs, one of ``bin_size`` and ``n_bins``,
  a GPU that exists, a checkpoint file that exists).

The app runs the checks before Hydra creates the run's directory (:class:`CheckBeforeRun`), so a
rejected command leaves nothing on disk; :func:`infoflow.train.run` runs them again for callers
that compose configs themselves (tests, notebooks).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from infoflow.errors import ConfigError, exit_for_user, one_line  # noqa: F401 - ConfigError re-exported
from infoflow.rundir import (  # noqa: F401 - register_resolvers re-exported
    check_unclaimed,
    process_rank,
    register_resolvers,
)

ACTIVATIONS = ("tanh", "relu", "leaky_relu", "linear")
BIN_SCHEMES = ("tishby", "width", "adaptive")
# Per-callback schedules may differ from the estimator group's (tishby_szt: clustering less often).
SCHEDULE_KEYS = ("n_points", "every_n_epochs")


# ------------------------------------------------------------------------------- value specs


@dataclass(frozen=True)
class Spec:
    """What one key accepts: a predicate and the words that say it."""

    ok: Callable[[Any], bool]
    allowed: str

    def check(self, key: str, value: Any) -> None:
        if not self.ok(value):
            raise ConfigError(key, value, self.allowed)

    def or_null(self, meaning: str = "") -> Spec:
        return Spec(
            lambda v: v is None or self.ok(v),
            f"{self.allowed}, or null{' ' + meaning if meaning else ''}",
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite real number (bools excluded: YAML's true would otherwise pass as 1)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Spec:
    """An integer in [lo, hi] (bools excluded: YAML's true would otherwise pass as 1).

    >>> integer(1).ok(3), integer(1).ok(0), integer(1).ok(True), integer(1).allowed
    (True, False, False, 'must be an integer >= 1')
    """
    if lo is not None and hi is not None:
        words = f"an integer in [{lo}, {hi}]"
    else:
        words = "an integer" + (f" >= {lo}" if lo is not None else "")
    return Spec(
        lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
        f"must be {words}",
    )


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Spec:
    """A finite number in the interval (bounds closed unless ``*_open``).

    >>> number(0, lo_open=True).allowed, number(0, 1, hi_open=True).ok(1.0)
    ('must be a finite number > 0', False)
    """

    def ok(v: Any) -> bool:
        if not _is_num(v):
            return False
        above = lo is None or (v > lo if lo_open else v >= lo)
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    if lo is not None and hi is not None:
        words = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        words = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        words = "a finite number"
    return Spec(ok, f"must be {words}")


def boolean() -> Spec:
    return Spec(lambda v: isinstance(v, bool), "must be true or false")


def choice(*values: Any) -> Spec:
    return Spec(
        lambda v: any(v == c and type(v) is type(c) for c in values),
        "allowed: " + ", ".join(str(c) for c in values),
    )


def text() -> Spec:
    return Spec(lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string")


def list_of(item: Spec, what: str, length: int | None = None, scalar: bool = False) -> Spec:
    """A non-empty list whose items pass ``item`` (of ``length`` items; a lone item if ``scalar``)."""

    def ok(v: Any) -> bool:
        if scalar and not isinstance(v, list | ListConfig):
            return item.ok(v)
        if not isinstance(v, list | ListConfig) or len(v) == 0:
            return False
        return (length is None or len(v) == length) and all(item.ok(x) for x in v)

    return Spec(ok, f"must be {what}")


def any_of(*specs: Spec, allowed: str) -> Spec:
    return Spec(lambda v: any(s.ok(v) for s in specs), allowed)


def _range_pair(v: Any) -> bool:
    return isinstance(v, list | ListConfig) and len(v) == 2 and all(map(_is_num, v)) and v[0] < v[1]


RANGE = Spec(_range_pair, "must be [lo, hi] with finite lo < hi")
POSITIVE_INT = integer(1)
PROBABILITY = number(0, 1, lo_open=True)
NOT_WITH_MANUAL_OPTIMISATION = Spec(
    lambda v: v is None,
    "not supported: the module optimises manually and Lightning rejects this option then",
)

# Every key a user can type, by group. `*` matches one segment (a callback's or a logger's name).
SCHEMA: dict[str, Spec] = {
    # top level
    "seed": integer(0, 2**32 - 1),
    "threads": POSITIVE_INT.or_null("(the CPUs this process may use)"),
    "ckpt_path": text().or_null("(train from scratch)"),
    # paths
    "paths.root_dir": text(),
    "paths.data_dir": text(),
    "paths.output_dir": text(),
    "paths.run_name": text().or_null(),
    "paths.sweep_name": text().or_null(),
    # noise
    "noise.beta": Spec(number(0).ok, "must be a number >= 0 and finite; 0 is deterministic"),
    "noise.at_eval": boolean(),
    # ensemble
    "ensemble.size": POSITIVE_INT,
    # datasets
    "dataset.batch_size": POSITIVE_INT,
    "dataset.seed": integer(0, 2**32 - 1),
    "dataset.train_fraction": number(0, 1, lo_open=True),
    "dataset.eval_on": choice("all", "train", "val"),
    "dataset.copies": POSITIVE_INT,
    "dataset.data_dir": text(),
    "dataset.val_size": POSITIVE_INT,
    "dataset.subset": POSITIVE_INT.or_null("for all"),
    "dataset.eval_size": POSITIVE_INT,
    "dataset.train_eval_size": POSITIVE_INT.or_null("for the whole training set"),
    "dataset.download": boolean(),
    "dataset.eval_batch_size": POSITIVE_INT,
    "dataset.ensemble_size": POSITIVE_INT,
    # models
    "model.in_features": POSITIVE_INT,
    "model.n_classes": integer(2),
    "model.hidden": list_of(POSITIVE_INT, "a non-empty list of positive integers, e.g. [10,7,5]"),
    "model.activation": choice(*ACTIVATIONS),
    "model.orth_alpha": Spec(number(0).ok, "must be a finite number >= 0; 0 is off"),
    "model.channels": list_of(POSITIVE_INT, "two positive integers, e.g. [32,64]", length=2),
    "model.fc_width": POSITIVE_INT,
    "model.kernel_size": Spec(
        lambda v: _is_int(v) and v >= 1 and v % 2 == 1, "must be an odd integer >= 1"
    ),
    "model.dropout": number(0, 1, hi_open=True),
    # optimizer
    "optimizer.lr": number(0, lo_open=True),
    "optimizer.weight_decay": number(0),
    "optimizer.eps": number(0, lo_open=True),
    "optimizer.betas": list_of(number(0, 1, hi_open=True), "two numbers in [0, 1)", length=2),
    "optimizer.amsgrad": boolean(),
    "optimizer._partial_": choice(True),
    # estimator settings (the callbacks take theirs from here)
    "estimator.n_points": integer(2).or_null(),
    "estimator.every_n_epochs": POSITIVE_INT.or_null(),
    "estimator.n_replicas": Spec(integer(2).ok, "must be an integer >= 2 (replicas per input)"),
    "estimator.n_inputs": POSITIVE_INT.or_null("(the whole evaluation set)"),
    "estimator.n_mc": integer(2).or_null("(aim at estimator.sp_target_stderr)"),
    "estimator.sp_target_stderr": Spec(
        number(0, lo_open=True).ok, "must be a number > 0 (nats; the stderr n_mc: null aims at)"
    ),
    "estimator.sp_max_width": POSITIVE_INT.or_null("(every layer)"),
    "estimator.bin_scheme": choice(*BIN_SCHEMES),
    "estimator.bin_size": list_of(
        number(0, lo_open=True), "a width > 0 or a list of them, e.g. [0.01,0.05]", scalar=True
    ).or_null(),
    "estimator.n_bins": list_of(
        integer(2), "an integer >= 2 or a list of them", scalar=True
    ).or_null(),
    "estimator.bin_range": RANGE.or_null("for [-1, 1]"),
    "estimator.binned_noisy": boolean(),
    "estimator.kde_noise_var": number(0, lo_open=True).or_null("(off)"),
    "estimator.cluster_samples": integer(2),
    # trainer (any other pytorch_lightning.Trainer argument may be added with +trainer.<arg>=)
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.accelerator": choice("cpu", "gpu", "cuda", "mps", "auto"),
    "trainer.devices": any_of(
        POSITIVE_INT,
        choice(-1, "auto"),
        list_of(integer(0), "a list of device indices"),
        allowed="must be an integer >= 1, -1 or auto (all), or a list of device indices",
    ),
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.strategy": text(),
    "trainer.precision": choice(
        "32-true", "32", 32, "64-true", "64", 64, "16-mixed", "bf16-mixed", "16-true", "bf16-true"
    ),
    "trainer.limit_train_batches": any_of(
        POSITIVE_INT, PROBABILITY, allowed="must be a fraction in (0, 1] or a batch count >= 1"
    ).or_null("(all)"),
    "trainer.limit_val_batches": any_of(
        integer(0), number(0, 1), allowed="must be a fraction in [0, 1] or a batch count >= 0"
    ).or_null("(all)"),
    "trainer.check_val_every_n_epoch": POSITIVE_INT.or_null(),
    "trainer.num_sanity_val_steps": integer(-1),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.enable_progress_bar": boolean(),
    "trainer.enable_model_summary": boolean(),
    "trainer.enable_checkpointing": boolean(),
    "trainer.deterministic": any_of(
        boolean(), choice("warn"), allowed="allowed: true, false, warn"
    ),
    "trainer.default_root_dir": text(),
    "trainer.benchmark": boolean().or_null(),
    "trainer.fast_dev_run": any_of(boolean(), integer(0), allowed="must be true, false or >= 0"),
    "trainer.gradient_clip_val": NOT_WITH_MANUAL_OPTIMISATION,
    "trainer.gradient_clip_algorithm": NOT_WITH_MANUAL_OPTIMISATION,
    "trainer.accumulate_grad_batches": Spec(lambda v: v == 1, NOT_WITH_MANUAL_OPTIMISATION.allowed),
    "trainer.max_steps": integer(-1),
    "trainer.min_epochs": integer(0).or_null(),
    "trainer.min_steps": integer(0).or_null(),
    "trainer.max_time": text().or_null("(no limit); e.g. 00:12:00:00"),
    "trainer.val_check_interval": any_of(
        POSITIVE_INT,
        PROBABILITY,
        allowed="must be a fraction in (0, 1] of an epoch or a batch count",
    ).or_null(),
    "trainer.limit_test_batches": any_of(
        integer(0), number(0, 1), allowed="must be a fraction in [0, 1] or a batch count >= 0"
    ),
    "trainer.limit_predict_batches": any_of(
        integer(0), number(0, 1), allowed="must be a fraction in [0, 1] or a batch count >= 0"
    ),
    "trainer.overfit_batches": any_of(
        integer(0), number(0, 1, hi_open=True), allowed="must be a fraction in [0, 1) or a count"
    ),
    "trainer.reload_dataloaders_every_n_epochs": integer(0),
    "trainer.detect_anomaly": boolean(),
    "trainer.inference_mode": boolean(),
    "trainer.barebones": boolean(),
    "trainer.sync_batchnorm": boolean(),
    "trainer.use_distributed_sampler": boolean(),
    "trainer.profiler": choice("simple", "advanced", "pytorch").or_null("(off)"),
    # loggers
    "logger.*.save_dir": text(),
    "logger.*.name": Spec(lambda v: v is None or isinstance(v, str), "must be a string or null"),
    "logger.*.version": Spec(
        lambda v: v is None or isinstance(v, str) or _is_int(v),
        "must be a string, an integer or null",
    ),
    "logger.*.project": text(),
    "logger.*.group": text().or_null(),
    "logger.*.entity": text().or_null(),
    "logger.*.log_model": any_of(boolean(), choice("all"), allowed="allowed: true, false, all"),
    "logger.*.offline": boolean(),
    "logger.*.tags": list_of(text(), "a list of strings"),
    "logger.*.quiet": boolean(),
    # callbacks: switched off, schedules, then each callback's own settings
    "callbacks.*": Spec(
        lambda v: v is None, "null switches a callback off; set its fields instead"
    ),
    "logger.*": Spec(lambda v: v is None, "null switches a logger off; set its fields instead"),
    "callbacks.*.output_dir": text(),
    "callbacks.*.n_points": integer(2).or_null(),
    "callbacks.*.every_n_epochs": integer(0).or_null(),  # model_checkpoint: 0 = only at the end
    "callbacks.*.seed": integer(0, 2**32 - 1),
    "callbacks.representations.n_bins": POSITIVE_INT,
    "callbacks.representations.value_range": RANGE.or_null("(each layer's own range)"),
    "callbacks.representations.snapshot_max_units": integer(0),
    "callbacks.plots.units": choice("bits", "nats"),
    "callbacks.plots.min_interval_s": number(0),
    "callbacks.plots.max_fraction": PROBABILITY,
    "callbacks.wandb_charts.estimator": text().or_null("(SP when measured)"),
    "callbacks.model_checkpoint.dirpath": text(),
    "callbacks.model_checkpoint.filename": text(),
    "callbacks.model_checkpoint.save_last": any_of(
        boolean(), choice("link"), allowed="allowed: true, false, link"
    ),
    "callbacks.model_checkpoint.save_top_k": integer(-1),
    "callbacks.model_checkpoint.enable_version_counter": boolean(),
    "callbacks.model_checkpoint.monitor": text().or_null(),
    "callbacks.progress_bar.refresh_rate": integer(0),
    "callbacks.progress_bar.metrics": list_of(text(), "a list of metric names"),
}
# Keys set through another one (the "one place" of that setting); the message names the source.
DERIVED: dict[str, str] = {
    "dataset.seed": "seed",
    "dataset.ensemble_size": "ensemble.size",
    "dataset.data_dir": "paths.data_dir",
    "trainer.default_root_dir": "paths.output_dir",
    "logger.*.save_dir": "paths.output_dir",
}


# ------------------------------------------------------------------------------------ checks


class _Missing:
    pass


def find_spec(key: str, schema: dict[str, Spec] = SCHEMA) -> Spec | None:
    """The spec of a dotted key, exact or through a ``*`` pattern.

    >>> find_spec("callbacks.information.n_points") is SCHEMA["callbacks.*.n_points"]
    True
    >>> find_spec("model.nonsense") is None
    True
    """
    if key in schema:
        return schema[key]
    parts = key.split(".")
    for pattern, spec in schema.items():
        pat = pattern.split(".")
        if len(pat) == len(parts) and all(p in ("*", k) for p, k in zip(pat, parts, strict=True)):
            return spec
    return None


def leaves(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, unresolved node) of every leaf under ``node``; null nodes are leaves."""
    for key in node:
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            yield from leaves(child, f"{path}.")
        else:
            yield path, child


def _is_interpolation(node: Any) -> bool:
    return isinstance(node._value(), str) and "${" in node._value()


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value of ``key``; an interpolation that fails is a ConfigError."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as exc:  # noqa: BLE001 - any resolver error: one line naming the key
        raise ConfigError(key, _raw(cfg, key), f"cannot resolve: {exc}") from None
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_config(cfg: DictConfig, here: bool = True) -> None:
    """Raise ConfigError for the first key whose value breaks the schema (the app's ``hydra``
    node, if present, is Hydra's own and is not checked). ``here=False`` skips what depends on the
    machine (GPUs): a sweep submitted from a login node runs its jobs elsewhere."""
    _check_one_place(cfg)
    # Values written out first: a bad `seed` is reported as itself, not as `dataset.seed`.
    keys = sorted(leaves(cfg), key=lambda kv: _is_interpolation(kv[1]))
    for key, _ in keys:
        spec = find_spec(key) if key.split(".")[0] != "hydra" else None
        if spec is not None:
            spec.check(key, _value(cfg, key))
    _check_components(cfg)
    _check_estimator(cfg)
    _check_szt_split(cfg)
    _check_mnist_sizes(cfg)
    _check_ensemble(cfg)
    for name, cb in (cfg.get("callbacks") or {}).items():
        if cb is not None and name != "model_checkpoint":
            _check_schedule(f"callbacks.{name}", cb)
    if here:
        _check_device(cfg)
    ckpt = cfg.get("ckpt_path")
    if ckpt is not None and not Path(ckpt).is_file():
        raise ConfigError("ckpt_path", ckpt, "must be an existing checkpoint file, or null")


@cache
def _callback_wiring() -> dict[str, str]:
    """``callbacks.<name>.<arg>`` -> the interpolation conf/callbacks/default.yaml gives it."""
    raw = OmegaConf.create(
        (resources.files("infoflow.conf") / "callbacks" / "default.yaml").read_text()
    )
    wired = {}
    for key, node in leaves(raw, "callbacks."):
        value = node._value()
        if (
            isinstance(value, str)
            and value.startswith("${")
            and key.split(".")[-1] not in SCHEDULE_KEYS
        ):
            wired[key] = value
    return wired


def _source(interpolation: str) -> str:
    """The key an interpolation reads.

    >>> _source("${estimator.bin_size}"), _source("${paths.output_dir}/checkpoints")
    ('estimator.bin_size', 'paths.output_dir')
    """
    return interpolation.removeprefix("${").split("}", 1)[0]


def _check_one_place(cfg: DictConfig) -> None:
    """A wired key keeps its wiring: its value is set where the wiring points."""
    for key, interpolation in _callback_wiring().items():
        node = _raw(cfg, key)
        if node is not _Missing and node != interpolation:
            raise ConfigError(
                key, _plain(cfg, key), f"set by {_source(interpolation)}: set that key instead"
            )
    for pattern, source in DERIVED.items():
        for key, node in leaves(cfg):
            if find_spec(key, {pattern: text()}) and node._value() != "${" + source + "}":
                raise ConfigError(key, _plain(cfg, key), f"set by {source}: set that key instead")


def _raw(cfg: DictConfig, key: str) -> Any:
    """The unresolved value at ``key`` (``${...}`` as written), or ``_Missing``."""
    *parents, last = key.split(".")
    node: Any = cfg
    for part in parents:
        node = node._get_node(part) if isinstance(node, DictConfig) and part in node else None
        if node is None or not isinstance(node, DictConfig) or node._is_none():
            return _Missing
    child = node._get_node(last) if last in node else None
    return _Missing if child is None else child._value()


def _plain(cfg: DictConfig, key: str) -> Any:
    try:
        return _value(cfg, key)
    except ConfigError:
        return _raw(cfg, key)


# ---------------------------------------------------------------- components and cross-key rules


@cache
def _parameters(target: str) -> frozenset[str] | None:
    """The keyword arguments ``target`` takes, or None when it takes any (``**kwargs``)."""
    module, _, name = target.rpartition(".")
    try:  # quietly: Hydra's locate logs its errors
        obj = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if not exc.name or not f"{module}.".startswith(f"{exc.name}."):
            raise  # the module exists but is broken: a bug, not bad input
        raise LookupError(f"no module {exc.name}") from None
    except (AttributeError, ValueError) as exc:
        raise LookupError(one_line(exc)) from None
    params = inspect.signature(obj).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def _components(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    for group in ("dataset", "model", "optimizer", "trainer"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            yield group, node
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, DictConfig):
                yield f"{group}.{name}", node


def _check_components(cfg: DictConfig) -> None:
    """Every component names an importable class and gives it only arguments it takes."""
    for prefix, node in _components(cfg):
        target = node.get("_target_")
        if target is None:
            raise ConfigError(f"{prefix}._target_", None, "every component needs a _target_ class")
        try:
            known = _parameters(str(target))
        except LookupError as exc:
            raise ConfigError(f"{prefix}._target_", target, f"cannot import it: {exc}") from None
        extra = [k for k in node if not k.startswith("_") and known is not None and k not in known]
        if prefix == "model":
            extra = [k for k in extra if k != "orth_alpha"]  # a training rule, read by train.py
        if extra:
            key = f"{prefix}.{extra[0]}"
            raise ConfigError(key, _plain(cfg, key), _takes(str(target), known or frozenset()))


def _takes(target: str, known: frozenset[str]) -> str:
    """What a component takes, short enough for one line."""
    names = sorted(known - {"self"})
    if len(names) <= 12:
        return f"not an argument of {target}; it takes: {', '.join(names)}"
    return f"not an argument of {target} (see help({target.rsplit('.', 1)[-1]}))"


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


def _check_szt_split(cfg: DictConfig) -> None:
    """The SZT split must leave a pattern to train on, and one to measure on when eval_on=val."""
    dataset = cfg.get("dataset")
    if dataset is None or not str(dataset.get("_target_", "")).endswith("SZTDataModule"):
        return
    from infoflow.data.szt import N_BITS

    n, fraction = 2**N_BITS, dataset.train_fraction
    n_train = int(round(fraction * n))  # as infoflow.data.datamodule.split_indices
    if n_train < 1:
        raise ConfigError(
            "dataset.train_fraction", fraction, f"leaves none of the {n} patterns to train on"
        )
    if dataset.get("eval_on") == "val" and n_train == n:
        raise ConfigError(
            "dataset.train_fraction",
            fraction,
            "leaves no validation pattern to measure on (eval_on=val)",
        )


def _check_mnist_sizes(cfg: DictConfig) -> None:
    """The evaluation images are drawn from the validation ones (sizes that must fit the data
    itself are checked when it is loaded)."""
    dataset = cfg.get("dataset")
    if dataset is None or "eval_size" not in dataset or "val_size" not in dataset:
        return
    if dataset.eval_size > dataset.val_size:
        raise ConfigError(
            "dataset.eval_size",
            dataset.eval_size,
            f"must be <= dataset.val_size={dataset.val_size} (drawn from the validation images)",
        )


def _check_schedule(prefix: str, node: DictConfig) -> None:
    """A schedule must name epochs: every_n_epochs >= 1 and/or n_points >= 2."""
    if "n_points" not in node and "every_n_epochs" not in node:
        return
    every, points = node.get("every_n_epochs"), node.get("n_points")
    if every is None and points is None:
        raise ConfigError(f"{prefix}.n_points", None, "a schedule needs n_points or every_n_epochs")
    if every is not None and not (_is_int(every) and every >= 1):
        raise ConfigError(f"{prefix}.every_n_epochs", every, "must be an integer >= 1, or null")


def _check_ensemble(cfg: DictConfig) -> None:
    """An ensemble needs a model built as one (an MLP), seeds that stay in range, and memory."""
    size = OmegaConf.select(cfg, "ensemble.size", default=1)
    if size == 1:
        return
    target = OmegaConf.select(cfg, "model._target_", default="")
    params = _parameters(target) if target else None
    if params is not None and "seeds" not in params:
        model = target.rsplit(".", 1)[-1]
        raise ConfigError(
            "ensemble.size",
            size,
            f"must be 1 for model {model}: only MLP models train as ensembles",
        )
    if cfg.get("seed", 0) + size - 1 > 2**32 - 1:
        raise ConfigError("ensemble.size", size, "seed + ensemble.size - 1 must be < 2**32")
    _check_ensemble_memory(cfg, size)


def _check_ensemble_memory(cfg: DictConfig, size: int) -> None:
    """The ensemble's largest allocations must fit in this machine's memory: its data (K copies of
    the splits) and one member's SP propagation (members are estimated one at a time)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    width = sum(OmegaConf.select(cfg, "model.hidden", default=[]) or [])
    n_in = OmegaConf.select(cfg, "model.in_features", default=1) or 1
    n_eval = 4096  # the SZT evaluation set at most
    data = size * 2 * n_eval * (n_in + 1) * 4  # training + evaluation splits, float32
    reps = size * n_eval * width * 4 * 3  # noiseless, pre-noise, noisy per member, float32
    n_replicas = OmegaConf.select(cfg, "estimator.n_replicas", default=0) or 0
    sp = n_eval * n_replicas * max(width, 1) * 8 * 4  # one member's centres, a few float64 copies
    need = data + reps + sp
    if need > available:
        raise ConfigError(
            "ensemble.size",
            size,
            f"needs about {need / 2**30:.1f} GiB at these estimator settings, "
            f"{available / 2**30:.1f} GiB is free; use fewer members",
        )


def _check_device(cfg: DictConfig) -> None:
    """GPUs asked for must be visible to torch (Lightning would fail after W&B has started)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(
            "trainer.accelerator", accelerator, "no CUDA GPU is visible to torch here; use cpu"
        )
    devices = OmegaConf.select(cfg, "trainer.devices")
    wanted = len(devices) if isinstance(devices, ListConfig) else devices
    if _is_int(wanted) and wanted > count:
        raise ConfigError("trainer.devices", devices, f"this machine has {count} GPU(s)")


# ------------------------------------------------------------------------ before Hydra writes


class CheckBeforeRun(Callback):
    """Hydra callback: check the config before Hydra creates a run's or a sweep's directory.

    Hydra makes the run directory and writes ``.hydra/`` and the log before the app starts, so a
    check in the app leaves a half-made run behind. ``on_run_start`` comes first: the config is
    checked there the way the app will see it (``paths.output_dir`` resolved as Hydra will), and a
    bad value ends the command with one line and exit 1 before anything is written.

    A multirun is refused at ``on_multirun_start`` when its first job's config is bad in a key the
    sweep does not vary (then every job would fail); a bad *swept* value fails only its own jobs,
    each recorded in its ``status.json``, while the others run (see :mod:`infoflow.sweep`).
    """

    def on_multirun_start(
        self, config: DictConfig, config_name: str | None = None, **kw: Any
    ) -> None:
        swept, first_job = _first_job(config)
        try:
            from hydra import compose

            sweep_dir = os.path.abspath(str(OmegaConf.select(config, "hydra.sweep.dir")))
            job = compose(config_name, [*first_job, f"paths.output_dir={sweep_dir}"])
        except Exception:  # noqa: BLE001 - e.g. a swept group option that does not exist: per job
            return
        try:
            check_config(job, here=False)  # the jobs may run on other machines (SLURM)
        except ConfigError as exc:
            if not any(exc.key == k or exc.key.startswith(f"{k}.") for k in swept):
                exit_for_user(exc)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.instance()
        before = hydra_cfg.cfg
        try:
            output_dir = os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir")))
            full = copy.deepcopy(config)
            with _writable(full.hydra.runtime):
                full.hydra.runtime.output_dir = output_dir
            hydra_cfg.set_config(full)
            task = copy.deepcopy(full)
            with _writable(task):
                del task["hydra"]
            check_config(task)
            if process_rank() == 0:  # DDP ranks started by Lightning share rank 0's directory
                check_unclaimed(output_dir)
        except ConfigError as exc:
            exit_for_user(exc)
        finally:
            hydra_cfg.cfg = before


def _first_job(config: DictConfig) -> tuple[set[str], list[str]]:
    """(the keys a multirun sweeps, the overrides of its first job), as Hydra's basic sweeper
    reads them: the preset's ``hydra.sweeper.params``, then the command line (later wins)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    by_key = {o.get_key_element(): o for o in OverridesParser.create().parse_overrides(lines)}
    swept = {k.split("@")[0].lstrip("+~") for k, o in by_key.items() if o.is_sweep_override()}
    first = [
        f"{k}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
        for k, o in by_key.items()
    ]
    return swept, first


@contextmanager
def _writable(node: DictConfig) -> Iterator[None]:
    """Hydra's nodes are read-only and closed; open one for an edit."""
    with read_write(node), open_dict(node):
        yield
