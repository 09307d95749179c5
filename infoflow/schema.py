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

import ast
import dataclasses
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
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

    beta: Any = setting(
        0.005,
        Spec(number(0).ok, "must be a number >= 0 and finite; 0 is deterministic"),
        "std β of the noise; 0 is a deterministic network",
    )
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


#: A default that is not a literal (an object): the argument is no config key.
_OBJECT = object()


@cache
def source_defaults(target: str) -> dict[str, Any] | None:
    """``target`` 's keyword parameters and their defaults (``MISSING`` where there is none), read
    from its source with ``ast`` — its own signature, without importing it (torch and Lightning
    take seconds to import; composing a config or refusing a bad value should not); None when it
    takes ``**kwargs``. Falls back to importing it where the source cannot tell (a class that
    inherits its constructor, a compiled module)."""
    module, _, name = target.rpartition(".")
    try:
        node = _definition(module, name)
        fn = (
            node
            if isinstance(node, ast.FunctionDef)
            else next(
                b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"
            )
        )
    except (OSError, StopIteration, SyntaxError, ImportError, ValueError, LookupError):
        params = parameters(target)
        return (
            None
            if params is None
            else {n: MISSING if p.default is p.empty else p.default for n, p in params.items()}
        )
    if fn.args.kwarg is not None:
        return None
    a = fn.args
    positional = a.posonlyargs + a.args
    if isinstance(node, ast.ClassDef):
        positional = positional[1:]  # self
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(a.kwonlyargs, a.kw_defaults, strict=True),
    ]
    return {arg.arg: _literal(d) for arg, d in pairs}


def _definition(module: str, name: str, depth: int = 0) -> ast.ClassDef | ast.FunctionDef:
    """The class or function ``name`` of ``module``, following re-exports (``from .x import
    name`` in a package's ``__init__``) and, for a class without a constructor of its own, its
    first base class (``class ModelCheckpoint(pl.callbacks.ModelCheckpoint)``)."""
    tree = ast.parse(_source_file(module).read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            own = isinstance(node, ast.FunctionDef) or any(
                isinstance(b, ast.FunctionDef) and b.name == "__init__" for b in node.body
            )
            if own or not node.bases or depth >= 6:
                return node
            base = _imported_name(tree, module, ast.unparse(node.bases[0]))
            parent, _, base_name = base.rpartition(".")
            return _definition(parent, base_name, depth + 1)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and depth < 6:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    package = module.split(".")
                    if node.level:  # relative: from the module's package
                        is_package = _source_file(module).name == "__init__.py"
                        package = package[: len(package) - node.level + is_package]
                        source = ".".join([*package, *([node.module] if node.module else [])])
                    else:
                        source = node.module or ""
                    return _definition(source, alias.name, depth + 1)
    raise LookupError(f"{module}.{name}")


def _imported_name(tree: ast.Module, module: str, dotted: str) -> str:
    """A name as written in ``module`` (``pl.callbacks.ModelCheckpoint``) as a full dotted path,
    through the module's imports (``import pytorch_lightning as pl``)."""
    head, _, rest = dotted.partition(".")
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.asname or alias.name) == head:
                    return ".".join([alias.name, *([rest] if rest else [])])
        if isinstance(node, ast.ImportFrom) and not node.level:
            for alias in node.names:
                if (alias.asname or alias.name) == head:
                    return ".".join([node.module or "", alias.name, *([rest] if rest else [])])
    return f"{module}.{dotted}"


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return MISSING
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _OBJECT


def _source_file(module: str) -> Path:
    """The file of ``module``, found without running it (only its top-level package's spec is
    looked up; packages installed under another name, e.g. infoflow.callbacks, through theirs)."""
    parts = module.split(".")
    spec = importlib.util.find_spec(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        places = list(spec.submodule_search_locations or []) if spec else []
        here = [Path(p) / part for p in places]
        found = [f for d in here for f in (d / "__init__.py", d.with_suffix(".py")) if f.is_file()]
        spec = importlib.util.find_spec(".".join(parts[:i])) if not found else None
        if found and i == len(parts):
            return found[0]
        if found:
            spec = importlib.util.spec_from_file_location(".".join(parts[:i]), found[0])
            if found[0].name == "__init__.py":
                spec.submodule_search_locations = [str(found[0].parent)]
    if spec is None or spec.origin is None:
        raise ImportError(module)
    return Path(spec.origin)


def structured(target: str, partial: bool = False) -> type | None:
    """A dataclass of ``target`` 's keyword arguments with their defaults (``???`` where there is
    none), the ones infoflow sets (:data:`SET_BY`) left out; None when it takes ``**kwargs``.
    ``partial``: built as a function of what infoflow adds later (an optimizer of the model's
    parameters)."""
    params = source_defaults(target)
    if params is None:
        return None
    fields: list[tuple] = [("_target_", str, field(default=target))]
    if partial:
        fields.append(("_partial_", bool, field(default=True)))
    for name, default in params.items():
        if name in SET_BY or default is _OBJECT:
            continue
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
