"""What infoflow's measuring callbacks need from a LightningModule: two methods.

Any ``pytorch_lightning.LightningModule`` that has them can be measured on a plain
``pytorch_lightning.Trainer``::

    class MyModule(pl.LightningModule):
        def __init__(self):
            super().__init__()
            body = nn.Sequential(nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 4), nn.Tanh(),
                                 nn.Linear(4, 2))
            # Goldfeld et al.'s noise after body.1 and body.3 in training; measured there.
            self.net = NamedLayers(body, ["1", "3"], beta=0.05)

        def measured_network(self) -> Network:
            return self.net

        def measurement_data(self) -> tuple[Tensor, Tensor]:
            return self.x_eval, self.y_eval  # (n, ...) and (n,) integer labels

``NamedLayers`` (:mod:`infoflow.models.named_layers`) is the adapter that turns any module with
named layers into a :class:`~infoflow.models.network.Network`; a module you train yourself keeps
its own parameters and forward (``self.net(x[None])[0]`` gives its logits with the noise of
training mode). infoflow's own :class:`~infoflow.models.module.ClassifierModule` implements the
same two methods. See ``examples/own_lightning_module.py``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from infoflow.models.network import LayerOutput, Network

__all__ = ["LayerOutput", "Measurable", "Network"]


@runtime_checkable
class Measurable(Protocol):
    """A LightningModule the measuring callbacks can measure."""

    def measured_network(self) -> Network:
        """The K ≥ 1 networks to measure (a :class:`~infoflow.models.network.Network`)."""
        ...

    def measurement_data(self) -> tuple[Tensor, Tensor]:
        """The inputs and integer labels to measure on: (n, ...) and (n,) for one network, or
        every member's own, (K, n, ...) and (K, n); on the network's device."""
        ...
