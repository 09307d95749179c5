"""infoflow's Lightning callbacks: measure any LightningModule that offers two methods
(:class:`Measurable`: ``measured_network()`` and ``measurement_data()``) on a plain
``pytorch_lightning.Trainer``, and write tidy records (``information.csv``) and figures.

Measuring, on a schedule (``n_points`` log-spaced epochs and/or ``every_n_epochs``):
:class:`InformationCallback` (SP, noisy networks), :class:`BinnedCallback` (binned and KDE),
:class:`ExactCallback` (quantized networks),
:class:`ClusteringCallback`, :class:`RepresentationsCallback`, :class:`GradientPhasesCallback`.
Recording and drawing: :class:`FinalWeightsCallback`, :class:`PlotsCallback`,
:class:`WandbChartsCallback`; infoflow's own training module adds :class:`TrainingRecordCallback`
and :class:`EpochProgressBar`. Each takes an ``output_dir`` (default: the trainer's
``default_root_dir``) and its own settings; see ``examples/own_lightning_module.py``.

(The submodule ``measurement`` holds the function of that name that the callbacks share: it is
not a name of the package, where it would be the submodule or the function depending on what
was imported first.) The names load on first use (PEP 562), so that importing one callback module, as Hydra and the
config checks do, does not import every other one with torch and Lightning behind it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_HOME = {
    "BinnedCallback": "binned",
    "ClusteringCallback": "clustering",
    "EpochProgressBar": "progress",
    "ExactCallback": "exact",
    "FinalWeightsCallback": "weights",
    "GradientPhasesCallback": "gradients",
    "InformationCallback": "information",
    "LayerOutput": "protocol",
    "Measurable": "protocol",
    "Measurement": "measurement",
    "Network": "protocol",
    "PlotsCallback": "plots",
    "RepresentationsCallback": "representations",
    "ScheduledCallback": "schedule",
    "TrainingRecordCallback": "training",
    "WandbChartsCallback": "wandb_charts",
    "scheduled_epochs": "schedule",
}

__all__ = [
    "BinnedCallback",
    "ClusteringCallback",
    "EpochProgressBar",
    "ExactCallback",
    "FinalWeightsCallback",
    "GradientPhasesCallback",
    "InformationCallback",
    "LayerOutput",
    "Measurable",
    "Measurement",
    "Network",
    "PlotsCallback",
    "RepresentationsCallback",
    "ScheduledCallback",
    "TrainingRecordCallback",
    "WandbChartsCallback",
    "scheduled_epochs",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from infoflow.callbacks.binned import BinnedCallback
    from infoflow.callbacks.clustering import ClusteringCallback
    from infoflow.callbacks.exact import ExactCallback
    from infoflow.callbacks.gradients import GradientPhasesCallback
    from infoflow.callbacks.information import InformationCallback
    from infoflow.callbacks.measurement import Measurement
    from infoflow.callbacks.plots import PlotsCallback
    from infoflow.callbacks.progress import EpochProgressBar
    from infoflow.callbacks.protocol import LayerOutput, Measurable, Network
    from infoflow.callbacks.representations import RepresentationsCallback
    from infoflow.callbacks.schedule import ScheduledCallback, scheduled_epochs
    from infoflow.callbacks.training import TrainingRecordCallback
    from infoflow.callbacks.wandb_charts import WandbChartsCallback
    from infoflow.callbacks.weights import FinalWeightsCallback
