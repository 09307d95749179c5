"""What a setting accepts, declared once, in the signature that takes it.

A component states the values each argument takes with ``typing.Annotated``::

    @checked
    def __init__(self, *, n_replicas: Annotated[int, integer(2)] = 10): ...

:func:`checked` refuses a bad argument from Python with one ``ValueError`` line, and the config
check (:mod:`infoflow.checks`) reads the same :class:`Spec` s to refuse a bad config value with one
line naming its key, before a run writes anything. Plain Python: any module may import this one.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infoflow.errors import ConfigError, show_value


@dataclass(frozen=True)
class Spec:
    """What one setting accepts: a predicate and the words that say it."""

    ok: Callable[[Any], bool]
    allowed: str

    def check(self, key: str, value: Any) -> None:
        """Raise :class:`~infoflow.errors.ConfigError` naming the config key ``key``."""
        if not self.ok(_plain(value)):
            raise ConfigError(key, value, self.allowed)

    def or_null(self, meaning: str = "") -> Spec:
        return Spec(
            lambda v: v is None or self.ok(v),
            f"{self.allowed}, or null{' ' + meaning if meaning else ''}",
        )


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts (specs see what the constructor gets)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    """A finite real number (bools excluded: YAML's true would otherwise pass as 1)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, hi: int | None = None) -> Spec:
    """An integer in [lo, hi] (bools excluded: YAML's true would otherwise pass as 1).

    >>> integer(1).ok(3), integer(1).ok(0), integer(1).ok(True), integer(1).allowed
    (True, False, False, 'must be an integer >= 1')
    """
    if lo is not None and hi is not None:
        words = f"an integer in [{lo}, {hi}]"
    else:
        words = "an integer" + (f" >= {lo}" if lo is not None else "")
    return Spec(
        lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
        f"must be {words}",
    )


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Spec:
    """A finite number in the interval (bounds closed unless ``*_open``).

    >>> number(0, lo_open=True).allowed, number(0, 1, hi_open=True).ok(1.0)
    ('must be a finite number > 0', False)
    """

    def ok(v: Any) -> bool:
        if not _is_num(v):
            return False
        above = lo is None or (v > lo if lo_open else v >= lo)
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below

    if lo is not None and hi is not None:
        words = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        words = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        words = "a finite number"
    return Spec(ok, f"must be {words}")


def boolean() -> Spec:
    return Spec(lambda v: isinstance(v, bool), "must be true or false")


def choice(*values: Any) -> Spec:
    return Spec(
        lambda v: any(v == c and type(v) is type(c) for c in values),
        "allowed: " + ", ".join(str(c) for c in values),
    )


def text() -> Spec:
    return Spec(lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string")


def list_of(item: Spec, what: str, length: int | None = None, scalar: bool = False) -> Spec:
    """A non-empty list whose items pass ``item`` (of ``length`` items; a lone item if ``scalar``)."""

    def ok(v: Any) -> bool:
        if scalar and not isinstance(v, list | tuple):
            return item.ok(v)
        if not isinstance(v, list | tuple) or len(v) == 0:
            return False
        return (length is None or len(v) == length) and all(item.ok(x) for x in v)

    return Spec(ok, f"must be {what}")


def any_of(*specs: Spec, allowed: str) -> Spec:
    return Spec(lambda v: any(s.ok(v) for s in specs), allowed)


def _range_pair(v: Any) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(map(_is_num, v)) and v[0] < v[1]


RANGE = Spec(_range_pair, "must be [lo, hi] with finite lo < hi")
POSITIVE_INT = integer(1)
PROBABILITY = number(0, 1, lo_open=True)
SEED = integer(0, 2**32 - 1)


# ------------------------------------------------------------------- specs in signatures


def specs_of(fn: Callable) -> dict[str, Spec]:
    """The :class:`Spec` of every parameter of ``fn`` (a function or a class: its ``__init__``)
    annotated ``Annotated[type, spec]``.

    >>> from typing import Annotated
    >>> def f(n: Annotated[int, integer(2)] = 3, x: float = 1.0): ...
    >>> specs_of(f)["n"].allowed, "x" in specs_of(f)
    ('must be an integer >= 2', False)
    """
    fn = inspect.unwrap(fn.__init__ if inspect.isclass(fn) else fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):  # annotations naming what is not importable here
        return {}
    out = {}
    for name, hint in hints.items():
        extras = getattr(hint, "__metadata__", ())
        specs = [e for e in extras if isinstance(e, Spec)]
        if specs:
            out[name] = specs[0]
    return out


def checked(init: Callable) -> Callable:
    """Check a function's ``Annotated`` arguments on every call: a bad one is one ``ValueError``
    line (``name=value: what is allowed``).

    >>> from typing import Annotated
    >>> @checked
    ... def f(*, n: Annotated[int, integer(2)] = 3): return n
    >>> f(n=1)
    Traceback (most recent call last):
    ...
    ValueError: n=1: must be an integer >= 2
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, spec in specs_of(init).items():
            value = bound.arguments.get(name)
            if not spec.ok(_plain(value)):
                raise ValueError(f"{name}={show_value(value)}: {spec.allowed}")
        return init(*args, **kwargs)

    return wrapper
