"""Safe points: where long work may stop, without knowing who asks it to.

Estimators and other long loops call :func:`safe_point` between units of work (a batch of
queries, a layer, a chunk of pairs, a figure); the run's machinery registers a hook with
:func:`stop_hook` that raises when a stop signal has been recorded. Compiled code (numba, C
extensions) is never interrupted in the middle: a stop is acted on at the next safe point. This
module imports nothing of infoflow, so pure code may call it.

>>> calls = []
>>> with stop_hook(lambda: calls.append("checked")):
...     safe_point()
>>> safe_point(); calls  # outside: no hook
['checked']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_hooks: list[Callable[[], None]] = []


def safe_point() -> None:
    """Call every registered stop hook (each may raise to stop the work)."""
    for hook in tuple(_hooks):
        hook()


@contextmanager
def stop_hook(fn: Callable[[], None]) -> Iterator[None]:
    """Register ``fn`` to be called at every :func:`safe_point` for the duration."""
    _hooks.append(fn)
    try:
        yield
    finally:
        _hooks.remove(fn)
