"""Checking a composed config before a run writes anything: one line per bad value.

Every key's allowed values are declared once, where the key is defined (:mod:`infoflow.schema`:
the plain groups' dataclasses and the components' own signatures); :func:`check_config` applies
them, and adds only what involves several keys or the machine: a schedule that names epochs,
the rules of manual optimisation, data a split leaves, memory for an ensemble, GPUs that exist, a
checkpoint file that is there. Components are also built once, without side effects, where that
is cheap (the callbacks, the Trainer), so the checks their constructors make (Lightning's
included) refuse a bad value here, before Hydra creates the run's directory.

The app runs the checks before Hydra creates the run's directory (:class:`CheckBeforeRun`), so a
rejected command leaves nothing on disk; :func:`infoflow.train.run` runs them again for callers
that compose configs themselves (tests, notebooks).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import math
import os
import re
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, Union

from hydra.experimental.callback import Callback
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from infoflow.errors import USER_ERRORS, ConfigError, exit_for_user, one_line, show_value
from infoflow.rundir import check_unclaimed, check_writable, process_rank
from infoflow.schema import PLAIN_GROUPS, SET_BY, parameters, plain_specs
from infoflow.specs import integer, specs_of

#: Trainer arguments Lightning accepts when built and fails on mid-fit (a modulo by zero, a
#: negative count): the only Lightning values infoflow states itself.
LIGHTNING_LATER = {
    "check_val_every_n_epoch": integer(1).or_null(),
    "num_sanity_val_steps": integer(-1),
}
#: Keys of a component node that are Hydra's, not the component's.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
#: Trainer arguments that infoflow's manual optimisation cannot honour, and the value it needs.
MANUAL_OPTIMISATION = {"gradient_clip_val": None, "gradient_clip_algorithm": None,
                       "accumulate_grad_batches": 1}  # fmt: skip


# ------------------------------------------------------------------------------- reading


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value of ``key``; an interpolation that fails is a ConfigError."""
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
    except Exception as exc:  # noqa: BLE001 - any resolver error: one line naming the key
        raise ConfigError(key, _raw(cfg, key), f"cannot resolve: {one_line(exc)}") from None
    return (
        OmegaConf.to_container(value, resolve=True)
        if isinstance(value, DictConfig | ListConfig)
        else value
    )


def _raw(cfg: DictConfig, key: str) -> Any:
    """The unresolved value at ``key`` (``${...}`` as written)."""
    *parents, last = key.split(".")
    node: Any = cfg
    for part in parents:
        node = node._get_node(part) if isinstance(node, DictConfig) and part in node else None
        if node is None:
            return None
    child = node._get_node(last) if isinstance(node, DictConfig) and last in node else None
    return None if child is None else child._value()


def _missing(node: DictConfig, key: str) -> bool:
    return OmegaConf.is_missing(node, key)


def nearest(name: str, candidates: list[str]) -> str:
    """' (did you mean a, b?)' for the closest candidates, else ''.

    >>> nearest("max_epoch", ["max_epochs", "min_epochs", "max_steps"])
    ' (did you mean max_epochs, min_epochs?)'
    """
    close = difflib.get_close_matches(name, candidates, n=2, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# ------------------------------------------------------------------------------- the check


def check_config(cfg: DictConfig, here: bool = True) -> None:
    """Raise :class:`~infoflow.errors.ConfigError` for the first bad key (the app's ``hydra``
    node, if present, is Hydra's own and is not checked). ``here=False`` skips what depends on
    this machine (GPUs, files): a sweep submitted from a login node runs its jobs elsewhere."""
    for prefix in PLAIN_GROUPS:
        _check_plain(cfg, prefix)
    for prefix, node in components(cfg):
        check_component(prefix, node)
    _check_schedules(cfg)
    if here:
        _check_device(cfg)
    _check_trainer(cfg, build=here)  # Lightning checks its devices against this machine
    _check_split(cfg)
    _check_ensemble(cfg)
    _build_callbacks(cfg)
    _build_optimizer(cfg)
    _build_network(cfg)
    if here:
        _check_checkpoint(cfg)


def _check_checkpoint(cfg: DictConfig) -> None:
    """``ckpt_path`` must load and hold the weights of the configured network (names and shapes;
    the network is built once, cheaply): a missing, cut or foreign file is one line here."""
    ckpt = cfg.get("ckpt_path")
    if ckpt is None:
        return
    from infoflow.build import build_module
    from infoflow.checkpoint import checkpoint_problem

    try:
        expected = build_module(cfg).state_dict()
    except Exception:  # noqa: BLE001 - the model's own problems are named by _build_network
        expected = None
    problem = checkpoint_problem(ckpt, expected)
    if problem is not None:
        raise ConfigError("ckpt_path", ckpt, problem)


def _check_plain(cfg: DictConfig, prefix: str) -> None:
    node = OmegaConf.select(cfg, prefix) if prefix else cfg
    if not isinstance(node, DictConfig):
        return
    for name, (spec, _) in plain_specs(prefix).items():
        key = f"{prefix}.{name}" if prefix else name
        if name in node and spec is not None:
            spec.check(key, _value(cfg, key))


def components(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """(dotted key, node) of every component: the groups with a ``_target_``, each callback and
    logger, and the components inside them (``model.net``, ``dataset.arrays``)."""

    def walk(prefix: str, node: Any) -> Iterator[tuple[str, DictConfig]]:
        if not isinstance(node, DictConfig) or node._is_none():
            return
        if "_target_" in node:
            yield prefix, node
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_none():
                yield from walk(f"{prefix}.{key}", child)

    for group in ("dataset", "model", "optimizer", "trainer"):
        yield from walk(group, cfg.get(group))
    for group in ("callbacks", "logger"):
        for name, node in (cfg.get(group) or {}).items():
            yield from walk(f"{group}.{name}", node)


def check_component(prefix: str, node: DictConfig) -> None:
    """The target exists; every key is one of its arguments (not one infoflow sets), given (not
    ``???``) and allowed by its spec (infoflow's) or its type hint (Lightning's, torch's)."""
    if _missing(node, "_target_"):
        raise ConfigError(f"{prefix}._target_", "???", "required: the class or function to build")
    target = str(node._target_)
    try:
        params = parameters(target)
    except LookupError as exc:
        raise ConfigError(f"{prefix}._target_", target, f"cannot import it: {exc}") from None
    specs = specs_of(get_object(target))
    for key in node:
        if key in HYDRA_KEYS:
            continue
        full = f"{prefix}.{key}"
        if key in SET_BY:
            raise ConfigError(full, _raw(node, key), f"set by {SET_BY[key]}: set that key instead")
        if params is not None and key not in params:
            raise ConfigError(full, _raw(node, key), _not_an_argument(target, key, params))
        if _missing(node, key):
            raise ConfigError(full, "???", f"required: an argument of {target.rsplit('.', 1)[-1]}")
        value = _value(node, key)
        if key in specs:
            specs[key].check(full, value)
        elif params is not None and not _matches(value, _hint(target, key)):
            raise ConfigError(full, value, f"must be {_words(_hint(target, key))}")


def _not_an_argument(target: str, key: str, params: dict) -> str:
    names = sorted(n for n in params if n not in SET_BY)
    near = nearest(key, names)
    if near:
        return f"not an argument of {target}{near}"
    listed = ", ".join(names) if len(names) <= 12 else f"see help({target.rsplit('.', 1)[-1]})"
    return f"not an argument of {target}; it takes: {listed}"


# ----------------------------------------------------------- type hints of other libraries


def _hint(target: str, key: str) -> Any:
    param = (parameters(target) or {}).get(key)
    if param is None or param.annotation is param.empty:
        return Any
    hint = param.annotation
    if isinstance(hint, str):  # postponed annotations: resolve in the defining module
        obj = get_object(target)
        fn = obj.__init__ if isinstance(obj, type) else obj
        with contextlib.suppress(Exception):
            hint = typing.get_type_hints(fn).get(key, Any)
    return Any if isinstance(hint, str) else hint


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a type hint. A class of the library's own (a Tensor, a
    Profiler) is no config value; a hint made only of such classes is not judged."""
    if not _judged(hint):
        return True
    return _fits(value, hint)


def _judged(hint: Any) -> bool:
    """Whether a hint names something a config value can be (else it is not judged)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_judged(a) for a in args)
    return hint in CONFIG_TYPES or origin in (Literal, list, tuple, dict) or hint is type(None)


CONFIG_TYPES = (bool, int, float, str, list, tuple, dict)


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is typing.Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # a config value: finite (inf and nan are never meant as a setting)
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return False  # a class of the library's (a Profiler, a Tensor): no config value is one


def _words(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}  # fmt: skip
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    parts = []
    for a in args:
        if typing.get_origin(a) is Literal:
            parts += [show_value(v) for v in typing.get_args(a)]
        else:
            parts.append(
                names.get(a, "a list" if typing.get_origin(a) in (list, tuple) else str(a))
            )
    return " or ".join(dict.fromkeys(parts))


# ---------------------------------------------------------------------- cross-key rules


def _check_schedules(cfg: DictConfig) -> None:
    """Every measuring callback measures at some epochs: its own schedule or ``schedule``'s."""
    shared = cfg.get("schedule") or {}
    shared_set = shared.get("n_points") is not None or shared.get("every_n_epochs") is not None
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None or "n_points" not in node:
            continue
        own = node.get("n_points") is not None or node.get("every_n_epochs") is not None
        if not own and not shared_set:
            raise ConfigError(
                "schedule.n_points", None, f"a schedule needs n_points or every_n_epochs "
                f"(callbacks.{name} has none of its own)",
            )  # fmt: skip


def _check_trainer(cfg: DictConfig, build: bool = True) -> None:
    """What infoflow's training needs of the Trainer: a number of epochs (the schedules count
    them), and no option that manual optimisation rejects."""
    trainer = cfg.get("trainer")
    if trainer is None:
        return
    epochs = trainer.get("max_epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError("trainer.max_epochs", epochs, "must be an integer >= 1")
    for key, needed in MANUAL_OPTIMISATION.items():
        if key in trainer and trainer.get(key) != needed:
            raise ConfigError(
                f"trainer.{key}", trainer.get(key),
                "not supported: the module optimises manually and Lightning rejects this option then",
            )  # fmt: skip
    for key, spec in LIGHTNING_LATER.items():
        if key in trainer:
            spec.check(f"trainer.{key}", trainer.get(key))

    if not build:
        return

    def make(node: DictConfig) -> None:
        with _quiet_lightning():
            instantiate(node, logger=False, enable_checkpointing=False, default_root_dir=None)

    try:
        make(trainer)
    except Exception as exc:  # noqa: BLE001 - Lightning's own checks: one line naming the key
        raise refused("trainer", trainer, exc, "Lightning", make) from None


def refused(
    prefix: str, node: DictConfig, exc: BaseException, who: str = "", build: Any = None
) -> ConfigError:
    """A constructor's refusal as one line (Hydra's "Error in call to target" wrapper left out),
    named after the key to blame: the one whose default makes ``build(node)`` succeed, else the
    one its message mentions."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    text = one_line(cause)
    key = _culprit(node, build) if build is not None else None
    if key is None:
        keys = sorted((k for k in node if k not in HYDRA_KEYS), key=len, reverse=True)
        key = next((k for k in keys if re.search(rf"\b{re.escape(k)}\b", text)), None)
    said = f"{who} refuses it: {text}" if who else text
    if key is None:
        return ConfigError(prefix, ..., said)
    return ConfigError(f"{prefix}.{key}", _raw(node, key), said)


def _culprit(node: DictConfig, build: Any) -> str | None:
    """The key of ``node`` that, put back to its constructor default, lets ``build`` succeed."""
    params = parameters(str(node._target_)) or {}
    for key in node:
        p = params.get(key)
        if key in HYDRA_KEYS or p is None or p.default is p.empty or node.get(key) == p.default:
            continue
        trial = copy.deepcopy(node)
        with _writable(trial):
            trial[key] = p.default
        try:
            build(trial)
        except Exception:  # noqa: BLE001 - still refused: not this key alone
            continue
        return key
    return None


def _build_callbacks(cfg: DictConfig) -> None:
    """Build every callback once (their constructors touch no file): a value their own checks
    refuse (two settings that exclude each other, Lightning's checkpoint options) is one line."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        try:
            instantiate(node)
        except Exception as exc:  # noqa: BLE001 - the constructor's message, one line
            raise refused(f"callbacks.{name}", node, exc) from None


def _build_optimizer(cfg: DictConfig) -> None:
    """Build the optimizer on a dummy parameter: torch's own checks (a negative rate) here."""
    node = cfg.get("optimizer")
    if node is None:
        return
    import torch

    def build(n: DictConfig) -> None:
        instantiate(n)([torch.zeros(1, requires_grad=True)])

    try:
        build(node)
    except Exception as exc:  # noqa: BLE001
        raise refused("optimizer", node, exc, "torch", build) from None


def _build_network(cfg: DictConfig) -> None:
    """Build one member of the network (a module's named layers must exist) and, when the data is
    at hand without a download, run it on two inputs (a forward that fails or returns the wrong
    shape is one line here, before the run's directory exists)."""
    from infoflow.errors import ModelError
    from infoflow.models.module import check_network

    model = cfg.get("model")
    if model is None:
        return
    try:
        net = instantiate(
            model, seeds=[cfg.seed], beta=cfg.noise.beta, noise_at_eval=cfg.noise.at_eval
        )
    except Exception as exc:  # noqa: BLE001 - the model's own refusal, named after its key
        raise refused("model", model, exc) from None
    data = _peek_data(cfg)
    if data is not None:
        x, y = data
        try:
            check_network(net, x[None], int(y.max()) + 1)
        except ModelError as exc:
            raise ConfigError("model", ..., str(exc).removeprefix("model: ")) from None


def _peek_data(cfg: DictConfig) -> tuple | None:
    """Two evaluation inputs and their labels, if the dataset has them at hand (no download)."""
    from infoflow.errors import DataError

    dataset = cfg.get("dataset")
    if dataset is None:
        return None
    try:
        from infoflow.build import build_datamodule

        return build_datamodule(cfg).peek()
    except DataError:
        raise  # already one line naming the key and the file
    except Exception as exc:  # noqa: BLE001 - the datamodule's own refusal, named after its key
        raise refused("dataset", dataset, exc) from None


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's setup lines (GPU available, ...) while a Trainer is built to check."""
    names = ["pytorch_lightning", "lightning_fabric", "lightning.pytorch"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _check_split(cfg: DictConfig) -> None:
    """A train/validation split must leave an example to train on, and one to measure on when
    eval_on=val (SZT: 4096 patterns; arrays and MNIST are checked when loaded)."""
    dataset = cfg.get("dataset")
    if dataset is None:
        return
    if "eval_size" in dataset and "val_size" in dataset and dataset.eval_size > dataset.val_size:
        raise ConfigError(
            "dataset.eval_size", dataset.eval_size,
            f"must be <= dataset.val_size={dataset.val_size} (drawn from the validation images)",
        )  # fmt: skip
    if not str(dataset.get("_target_", "")).endswith("SZTDataModule"):
        return
    n, fraction = 4096, dataset.train_fraction
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


def _check_ensemble(cfg: DictConfig) -> None:
    """Seeds that stay in range, and memory for the ensemble's data and SP samples."""
    size = OmegaConf.select(cfg, "ensemble.size", default=1)
    if cfg.get("seed", 0) + size - 1 > 2**32 - 1:
        raise ConfigError("ensemble.size", size, "seed + ensemble.size - 1 must be < 2**32")
    if size > 1:
        _check_ensemble_memory(cfg, size)


def _check_ensemble_memory(cfg: DictConfig, size: int) -> None:
    """The ensemble's largest allocations must fit in this machine's memory: its data (K copies of
    the splits) and the SP samples of every member (propagated together)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    width = sum(OmegaConf.select(cfg, "model.hidden", default=[]) or [])
    n_in = OmegaConf.select(cfg, "model.in_features", default=1) or 1
    n_eval = 4096  # the SZT evaluation set at most
    data = size * 2 * n_eval * (n_in + 1) * 4  # training + evaluation splits, float32
    reps = size * n_eval * width * 4 * 3  # noiseless, pre-noise, noisy per member, float32
    sp_on = OmegaConf.select(cfg, "callbacks.information") is not None
    n_replicas = (
        OmegaConf.select(cfg, "callbacks.information.n_replicas", default=0) if sp_on else 0
    )
    sp = size * n_eval * (n_replicas or 0) * max(width, 1) * 4 * 2  # samples + one member's copy
    need = data + reps + sp
    if need > available:
        raise ConfigError(
            "ensemble.size",
            size,
            f"needs about {need / 2**30:.1f} GiB at these settings, "
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
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > count:
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
        try:
            check_writable(os.path.abspath(str(OmegaConf.select(config, "hydra.sweep.dir"))))
        except USER_ERRORS as exc:
            exit_for_user(exc)
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
        except USER_ERRORS as exc:  # data or model refused: every job would fail
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
                check_writable(output_dir)
                check_unclaimed(output_dir)
        except USER_ERRORS as exc:
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
