"""infoflow: information flow in neural networks during training."""

__version__ = "0.1.0"
