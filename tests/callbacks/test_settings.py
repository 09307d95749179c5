"""Callbacks take their settings from the config: no constructor default may disagree with it."""

import inspect

from hydra.utils import get_class
from omegaconf import OmegaConf


def test_no_constructor_default_disagrees_with_the_config(make_cfg):
    callbacks = OmegaConf.to_container(make_cfg().callbacks, resolve=True)
    checked = 0
    for name, node in callbacks.items():
        if not node or not str(node["_target_"]).startswith("infoflow.callbacks."):
            continue
        params = inspect.signature(get_class(node["_target_"]).__init__).parameters
        for key, value in node.items():
            if key == "_target_":
                continue
            assert key in params, f"callbacks.{name}.{key}: no such argument"
            default = params[key].default
            if default is not inspect.Parameter.empty:
                assert default == value, (
                    f"callbacks.{name}.{key}: config {value!r}, default {default!r}"
                )
                checked += 1
    assert checked >= 3  # the plots callback's units and redraw spacing at least


def test_estimator_settings_have_no_defaults_to_disagree_with(make_cfg):
    from infoflow.callbacks.information import InformationCallback

    params = inspect.signature(InformationCallback.__init__).parameters
    for key in ("n_replicas", "n_inputs", "n_mc", "max_width", "seed", "n_points"):
        assert params[key].default is inspect.Parameter.empty, key
