"""Models: networks infoflow trains and measures, and the LightningModule that trains them.

The public names: :class:`Network` (the interface), :class:`LayerOutput`, :class:`MLPEnsemble`,
:class:`NamedLayers` (any ``nn.Module`` measured at named layers), :class:`ClassifierModule`.
Models import no estimators and no callbacks.
"""

from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule
from infoflow.models.named_layers import NamedLayers
from infoflow.models.network import LayerOutput, Network

__all__ = ["ClassifierModule", "LayerOutput", "MLPEnsemble", "NamedLayers", "Network"]
