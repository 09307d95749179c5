"""The command line a user meets, before Hydra takes over.

:func:`prepare` composes the config once with the command's overrides, the way Hydra is about to,
and turns what Hydra would answer with its raw error into one line and exit status 1:

* a key that does not exist (``trainer.max_epoch=5``, ``estimater.n_points=5``): the nearest valid
  keys (Hydra's own advice, ``+trainer.max_epoch=5``, would fail again);
* a group option that does not exist (``model=mlp2``): the options there are.

An argument of a component you named yourself (``model.net.width=64`` for your ``model.net``, whose
YAML lists only ``_target_``) is not a typo: it is passed on as ``++model.net.width=64``, so the
keys of your own classes need no ``+`` either (the config check then holds them against the
class's signature).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from infoflow.errors import fail
from infoflow.schema import parameters

CONFIG_MODULE = "infoflow.conf"
#: Hydra's flags that take a value (the next word, or after '=').
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name",
                "-cn", "--config-dir", "-cd", "--experimental-rerun"}  # fmt: skip
#: Flags after which no run is made (Hydra prints something and exits).
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--version", "--info", "-i",
               "--shell-completion", "-sc"}  # fmt: skip
_NOT_IN = re.compile(r"Key '([^']+)' (?:is )?not in")
_NO_OPTION = re.compile(r"Could not find '([^']+)'")


def split_arguments(argv: Sequence[str]) -> tuple[list[str], list[int]]:
    """(the flags and their values, the positions of the overrides) in ``argv``.

    >>> split_arguments(["-m", "seed=1,2", "--cfg", "job", "noise.beta=0.1"])
    (['-m', '--cfg', 'job'], [1, 4])
    """
    flags, overrides, skip = [], [], False
    for i, word in enumerate(argv):
        if skip:
            flags.append(word)
            skip = False
        elif word.startswith("-"):
            flags.append(word)
            skip = word in _VALUE_FLAGS
        else:
            overrides.append(i)
    return flags, overrides


def prepare(argv: Sequence[str]) -> list[str]:
    """``argv`` as Hydra should get it: unchanged, or with the arguments of user-named components
    written ``++key=value``. A key or option that does not exist exits 1 with one line."""
    argv = list(argv)
    flags, positions = split_arguments(argv)
    if any(f.split("=")[0] in _INFO_FLAGS for f in flags) or not positions:
        return argv
    search = _search_path(flags)
    for _ in range(len(positions) + 1):  # each round fixes one override or fails
        problem = _compose_error([*search, *(argv[i] for i in positions)])
        if problem is None:
            return argv
        fixed = _fix(problem, argv, positions, search)
        if fixed is None:
            sys.exit(fail(problem))
        argv = fixed
    return argv


def _search_path(flags: list[str]) -> list[str]:
    """The override that adds ``--config-dir`` (``-cd``) to the search path, as Hydra will.

    >>> _search_path(["-m", "--config-dir", "/my/conf"])
    ['hydra.searchpath=[file:///my/conf]']
    """
    dirs = []
    for i, flag in enumerate(flags):
        name, eq, value = flag.partition("=")
        if name in ("--config-dir", "-cd"):
            value = value if eq else (flags[i + 1] if i + 1 < len(flags) else "")
            dirs.append(f"file://{os.path.abspath(value)}")
    return [f"hydra.searchpath=[{','.join(dirs)}]"] if dirs else []


def _first_values(overrides: list[str]) -> list[str]:
    """A sweep's first job: every swept override at its first value."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for o in parsed:
        if o.is_sweep_override():
            out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        else:
            out.append(o.input_line)
    return out


def compose_config(overrides: list[str]) -> DictConfig:
    """The app's config with these overrides (Hydra's own node left out)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose("config", overrides=overrides)


def _compose_error(overrides: list[str]) -> str | None:
    """Hydra's complaint about these overrides, on one line, or None."""
    try:
        compose_config(_first_values(overrides))
    except (ConfigCompositionException, OverrideParseException) as exc:
        cause = exc.__cause__
        text = f"{exc} {cause}" if cause is not None and str(cause) not in str(exc) else str(exc)
        return " ".join(text.split())
    except Exception:  # noqa: BLE001 - anything else is Hydra's to report, as it will
        return None
    finally:
        GlobalHydra.instance().clear()
    return None


def _fix(
    problem: str, argv: list[str], positions: list[int], search: list[str]
) -> list[str] | None:
    """``argv`` with the override behind ``problem`` written ``++`` (an argument of a component
    the user named), or None after printing the one line that says what is wrong."""
    found = re.search(r"Could not (?:override|append to config)[^']*'([^']+)'", problem)
    missing = _NOT_IN.search(problem)
    if found and missing:
        key = found.group(1).lstrip("+~")
        where = next(i for i in positions if argv[i].lstrip("+~").startswith(f"{key}="))
        others = [argv[i] for i in positions if i != where]
        cfg = _compose_or_none([*search, *others])
        if cfg is not None and _takes_argument(cfg, key):
            return [*argv[:where], "++" + argv[where].lstrip("+"), *argv[where + 1 :]]
        value = argv[where].split("=", 1)[1]
        sys.exit(fail(_unknown_key_line(key, value, cfg)))
    option = _NO_OPTION.search(problem)
    if option:
        available = re.search(
            r"Available options in '[^']*':(.*?)(?:Config search path|$)", problem
        )
        names = available.group(1).split() if available else []
        group, _, name = option.group(1).rpartition("/")
        return sys.exit(
            fail(
                f"invalid config: {group}={name} (no such option; available: "
                f"{', '.join(names) or 'none'}; add your own with hydra.searchpath)"
            )
        )
    return None


def _compose_or_none(overrides: list[str]) -> DictConfig | None:
    try:
        return compose_config(_first_values(overrides))
    except Exception:  # noqa: BLE001
        return None
    finally:
        GlobalHydra.instance().clear()


def _takes_argument(cfg: DictConfig, key: str) -> bool:
    """Whether ``key``'s parent is a component whose target takes an argument of that name."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else None
    if (
        not isinstance(node, DictConfig)
        or "_target_" not in node
        or OmegaConf.is_missing(node, "_target_")
    ):
        return False
    try:
        params = parameters(str(node._target_))
    except LookupError:
        return True  # the class will be reported as not importable, naming its key
    return params is None or name in params


def _unknown_key_line(key: str, value: str, cfg: DictConfig | None) -> str:
    """'invalid config: K=V (no such key; did you mean A, B?)' among every key of ``cfg``."""
    from infoflow.checks import nearest

    keys: list[str] = []
    if cfg is not None:
        keys = [k for k in _dotted_keys(cfg) if k.count(".") == key.count(".")]
    near = nearest(key, keys)
    if not near and cfg is not None:  # e.g. a wrong group name: compare the last parts
        parent = key.rpartition(".")[0]
        siblings = [k for k in keys if k.rpartition(".")[0] == parent]
        near = nearest(key, siblings)
    near = near.replace(" (did you mean", "; did you mean").removesuffix(")")
    return f"invalid config: {key}={value} (no such key{near})"


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for k in node:
        child = node._get_node(k)
        path = f"{prefix}{k}"
        out.append(path)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            out += _dotted_keys(child, f"{path}.")
    return out
