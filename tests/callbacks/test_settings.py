"""Every callback setting has one name, one default and one place: the constructor's signature.

The config of a callback is generated from its signature (infoflow.schema), so the YAML may set
only what infoflow changes, and never restate a default (a restated default is a second place that
can drift from the first)."""

import inspect

from hydra.utils import get_class
from omegaconf import OmegaConf

from infoflow.schema import COMPONENTS, SET_BY, parameters
from infoflow.specs import specs_of


def test_every_callback_key_is_an_argument_of_its_constructor(make_cfg):
    callbacks = OmegaConf.to_container(make_cfg().callbacks, resolve=True)
    for name, node in callbacks.items():
        params = parameters(node["_target_"])
        keys = {k for k in node if not k.startswith("_")}
        assert keys <= set(params), (name, keys - set(params))
        assert not keys & set(SET_BY), name  # what infoflow sets is not a key
        # and every argument a user may set is a key: none needs a +
        assert keys == set(params) - set(SET_BY), (name, set(params) - set(SET_BY) - keys)


def test_the_yaml_restates_no_constructor_default():
    """conf/callbacks/default.yaml sets only values that differ from the constructors'."""
    from importlib import resources

    text = (resources.files("infoflow.conf") / "callbacks" / "default.yaml").read_text()
    raw = OmegaConf.to_container(OmegaConf.create(text))
    raw.pop("defaults", None)
    restated = []
    for name, node in raw.items():
        params = parameters(COMPONENTS["callbacks"][name])
        for key, value in (node or {}).items():
            default = params[key].default
            if isinstance(default, tuple):
                default = list(default)
            if value == default:
                restated.append(f"callbacks.{name}.{key}")
    assert restated == []


def test_infoflow_callbacks_declare_what_each_setting_allows():
    """Every argument of infoflow's measuring callbacks but the folder has a spec (the config
    check and the constructor refuse the same values with the same words)."""
    for name in ("information", "binned", "clustering", "representations", "training", "plots"):
        cls = get_class(COMPONENTS["callbacks"][name])
        params = [p for p in inspect.signature(cls).parameters if p != "output_dir"]
        missing = [p for p in params if p not in specs_of(cls)]
        assert missing == [], (name, missing)
