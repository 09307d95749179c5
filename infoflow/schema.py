"""The config schema: every key a user can type, with its default, type and meaning in one place.

* infoflow's plain groups (``noise``, ``ensemble``, ``schedule``, ``paths``) and the top-level keys
  are the dataclasses below; each field carries its allowed values (a :class:`~infoflow.specs.Spec`)
  and its meaning (``infoflow --help`` prints them).
* Every component (a node with ``_target_``: datasets, models, callbacks, the Trainer, loggers,
  the optimizer) takes its keys, defaults and allowed values from its own constructor's signature
  (``Annotated[type, spec]`` for infoflow's, type hints for Lightning's and torch's): a structured
  config is generated from the signature, not restated, so no key has two names and every
  argument can be set on the command line without ``+``.

Arguments infoflow sets itself from another key (:data:`SET_BY`: a component's output folder, the
members' seeds, the noise) are not keys of the component: each setting has one name.
:func:`register` puts all of it in Hydra's ConfigStore, where the YAML options of ``conf/``
extend it (``defaults: [/schema/<group>/<name>@_here_, _self_]``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import MISSING

from infoflow.specs import POSITIVE_INT, SEED, Spec, boolean, integer, number, text

#: Constructor arguments infoflow fills in itself, and the key that sets each.
SET_BY: dict[str, str] = {
    "seeds": "seed and ensemble.size",
    "beta": "noise.beta",
    "noise_at_eval": "noise.at_eval",
    "output_dir": "paths.output_dir",
    "dirpath": "paths.output_dir",
    "save_dir": "paths.output_dir",
    "default_root_dir": "paths.output_dir",
    "data_dir": "paths.data_dir",
    "callbacks": "the callbacks group",
    "logger": "the logger group",
    "params": "the model",
}

#: The components of conf/, by group and option: their schemas are generated from these.
COMPONENTS: dict[str, dict[str, str]] = {
    "dataset": {
        "szt": "infoflow.data.datamodule.SZTDataModule",
        "arrays": "infoflow.data.datamodule.ArraysDataModule",
        "mnist": "infoflow.data.datamodule.MnistDataModule",
        "single_neuron": "infoflow.data.single_neuron.SingleNeuronDataModule",
    },
    "model": {
        "mlp": "infoflow.models.mlp.MLPEnsemble",
        "named_layers": "infoflow.models.named_layers.NamedLayers",
    },
    "optimizer": {"adam": "torch.optim.Adam"},
    "trainer": {"trainer": "pytorch_lightning.Trainer"},
    "callbacks": {
        "training": "infoflow.callbacks.training.TrainingRecordCallback",
        "information": "infoflow.callbacks.information.InformationCallback",
        "binned": "infoflow.callbacks.binned.BinnedCallback",
        "exact": "infoflow.callbacks.exact.ExactCallback",
        "clustering": "infoflow.callbacks.clustering.ClusteringCallback",
        "representations": "infoflow.callbacks.representations.RepresentationsCallback",
        "gradients": "infoflow.callbacks.gradients.GradientPhasesCallback",
        "weights": "infoflow.callbacks.weights.FinalWeightsCallback",
        "plots": "infoflow.callbacks.plots.PlotsCallback",
        "wandb_charts": "infoflow.callbacks.wandb_charts.WandbChartsCallback",
        "model_checkpoint": "infoflow.checkpoint.ModelCheckpoint",
        "progress_bar": "infoflow.callbacks.progress.EpochProgressBar",
        "tqdm_progress_bar": "pytorch_lightning.callbacks.TQDMProgressBar",
    },
    "logger": {"csv": "pytorch_lightning.loggers.CSVLogger"},
}


def setting(default: Any, spec: Spec | None, meaning: str) -> Any:
    """A dataclass field: its default, allowed values and meaning, in one place."""
    kw = (
        {"default_factory": lambda: list(default)}
        if isinstance(default, list)
        else {"default": default}
    )
    return field(metadata={"spec": spec, "help": meaning}, **kw)


# ------------------------------------------------------------------------- plain groups


# Fields are typed Any: a value of the wrong type gets the one-line message of its spec, not
# OmegaConf's validation error; the spec says what is allowed.


@dataclass
class NoiseConfig:
    """Goldfeld et al.'s Gaussian noise after every measured layer."""

    beta: Any = setting(0.005, number(0), "std β of the noise; 0 is a deterministic network")
    at_eval: Any = setting(
        False, boolean(), "keep the noise on when reporting loss and accuracy (default: off)"
    )


@dataclass
class EnsembleConfig:
    """K networks trained and measured as one."""

    size: Any = setting(
        1, POSITIVE_INT, "K members, seeds seed … seed+K−1; member k is the single run of its seed"
    )


@dataclass
class ScheduleConfig:
    """When the measuring callbacks measure (each callback may keep its own)."""

    n_points: Any = setting(
        30,
        integer(2).or_null(),
        "log-spaced epochs unique(round(logspace(0, log10(max_epochs), n))) besides 0 and the last",
    )
    every_n_epochs: Any = setting(None, POSITIVE_INT.or_null(), "and/or every N epochs")


@dataclass
class PathsConfig:
    """Where things go (components get their folders from here)."""

    root_dir: Any = setting("${oc.env:INFOFLOW_ROOT,.}", text(), "outputs/ and data/ go here")
    data_dir: Any = setting("${paths.root_dir}/data", text(), "downloaded data sets (MNIST)")
    output_dir: Any = setting(
        "${hydra:runtime.output_dir}", text(), "this run's directory (Hydra makes a new one)"
    )


@dataclass
class RootConfig:
    """The top-level keys; the groups are composed into the fields typed Any."""

    seed: Any = setting(0, SEED, "seeds Python, NumPy and torch (also when 0); member k: seed + k")
    threads: Any = setting(
        1,
        POSITIVE_INT.or_null("(the CPUs this process may use)"),
        "torch threads for training; 1 is fastest for one tiny SZT net",
    )
    ckpt_path: Any = setting(
        None, text().or_null("(train from scratch)"), "a checkpoint to resume from"
    )
    paths: Any = MISSING
    dataset: Any = MISSING
    model: Any = MISSING
    noise: Any = MISSING
    ensemble: Any = MISSING
    schedule: Any = MISSING
    optimizer: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    experiment: Any = None


#: The dataclass of every plain group and of the top level (prefix "" ).
PLAIN_GROUPS: dict[str, type] = {
    "": RootConfig,
    "noise": NoiseConfig,
    "ensemble": EnsembleConfig,
    "schedule": ScheduleConfig,
    "paths": PathsConfig,
}


def plain_specs(prefix: str) -> dict[str, tuple[Spec | None, str]]:
    """(spec, meaning) of every key of a plain group (``""``: the top level)."""
    cls = PLAIN_GROUPS[prefix]
    return {
        f.name: (f.metadata["spec"], f.metadata["help"])
        for f in dataclasses.fields(cls)
        if "spec" in f.metadata
    }


# --------------------------------------------------------------------------- components


@cache
def parameters(target: str) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of ``target`` (a class: of its constructor, through the classes
    it passes ``**kwargs`` on to), or None when it takes any keyword. Raises ``LookupError``
    (one line) when ``target`` cannot be imported."""
    try:
        obj = get_object(target)
    except Exception as exc:  # noqa: BLE001 - Hydra wraps every import error
        cause = exc.__cause__ or exc
        raise LookupError(" ".join(str(cause).split()) or type(cause).__name__) from None
    found: dict[str, inspect.Parameter] = {}
    for fn in _signature_chain(obj):
        params = list(inspect.signature(fn).parameters.values())
        for p in params:
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self":
                found.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return found
    return None


def _signature_chain(obj: Any) -> list[Callable]:
    """The constructor of ``obj`` and of its bases, most derived first (``**kwargs`` goes up)."""
    if not inspect.isclass(obj):
        return [obj]
    return [c.__init__ for c in obj.__mro__ if "__init__" in vars(c) and c is not object]


def structured(target: str, partial: bool = False) -> type | None:
    """A dataclass of ``target`` 's keyword arguments with their defaults (``???`` where there is
    none), the ones infoflow sets (:data:`SET_BY`) left out; None when it takes ``**kwargs``.
    ``partial``: built as a function of what infoflow adds later (an optimizer of the model's
    parameters)."""
    params = parameters(target)
    if params is None:
        return None
    fields: list[tuple] = [("_target_", str, field(default=target))]
    if partial:
        fields.append(("_partial_", bool, field(default=True)))
    for name, p in params.items():
        if name in SET_BY:
            continue
        default = MISSING if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        if not _config_value(default):
            continue  # an object default (a Profiler, a timedelta): not a config key
        kw = (
            {"default_factory": (lambda d=default: list(d))}
            if isinstance(default, list)
            else {"default": default}
        )
        fields.append((name, Any, field(**kw)))
    return dataclasses.make_dataclass(f"{target.rsplit('.', 1)[-1]}Config", fields)


def _config_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, list) and all(_config_value(v) for v in value)


def register() -> None:
    """Put the schema in Hydra's ConfigStore (idempotent): ``schema/<group>/<option>`` for every
    component, the plain groups as their own ``default`` options, the root as ``root_schema``."""
    cs = ConfigStore.instance()
    cs.store(name="root_schema", node=RootConfig)
    for group, cls in PLAIN_GROUPS.items():
        if group:
            cs.store(group=group, name="default", node=cls)
    for group, options in COMPONENTS.items():
        for name, target in options.items():
            node = structured(target, partial=group == "optimizer")
            if node is not None:
                cs.store(group=f"schema/{group}", name=name, node=node)
