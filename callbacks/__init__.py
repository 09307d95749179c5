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
"""

from infoflow.callbacks.binned import BinnedCallback
from infoflow.callbacks.clustering import ClusteringCallback
from infoflow.callbacks.exact import ExactCallback
from infoflow.callbacks.gradients import GradientPhasesCallback
from infoflow.callbacks.information import InformationCallback
from infoflow.callbacks.measurement import Measurement, measurement
from infoflow.callbacks.plots import PlotsCallback
from infoflow.callbacks.progress import EpochProgressBar
from infoflow.callbacks.protocol import LayerOutput, Measurable, Network
from infoflow.callbacks.representations import RepresentationsCallback
from infoflow.callbacks.schedule import ScheduledCallback, scheduled_epochs
from infoflow.callbacks.training import TrainingRecordCallback
from infoflow.callbacks.wandb_charts import WandbChartsCallback
from infoflow.callbacks.weights import FinalWeightsCallback

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
    "measurement",
    "scheduled_epochs",
]
