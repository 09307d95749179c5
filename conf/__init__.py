"""infoflow's Hydra configs, installed as package data: ``python -m infoflow`` reads them through
``pkg://infoflow.conf``. Add your own groups and presets from a folder of yours with
``hydra.searchpath=[file:///path/to/conf]``."""
