"""Cooperative stopping: long computations call :func:`safe_point` where stopping is safe.

A signal handler should only record that a stop was asked for; raising from it can land inside
compiled code (numba, C extensions), where the exception is swallowed or turned into a
``SystemError``. So the work itself checks, at points where nothing is half-done (between query
batches, layers, rounds of an estimator), by calling :func:`safe_point`; whoever runs the work
(the run machinery) registers a hook with :func:`stop_hook` that raises its own exception when a
stop has been flagged. With no hook registered a safe point does nothing (a few hundred
nanoseconds).

A leaf module: no imports from the rest of infoflow and no framework, so pure estimators can use
it.

Example:
    >>> class Stop(Exception): ...
    >>> flagged = []
    >>> def hook():
    ...     if flagged:
    ...         raise Stop
    >>> with stop_hook(hook):
    ...     safe_point()  # nothing flagged: returns
    ...     flagged.append(True)
    ...     try:
    ...         safe_point()
    ...     except Stop:
    ...         print("stopped")
    stopped
    >>> safe_point()  # the hook is gone
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["safe_point", "stop_hook"]

_HOOKS: list[Callable[[], None]] = []


def safe_point() -> None:
    """Call every registered stop hook, oldest first (each may raise)."""
    for fn in tuple(_HOOKS):  # a copy: a hook may register or remove hooks
        fn()


@contextmanager
def stop_hook(fn: Callable[[], None]) -> Iterator[Callable[[], None]]:
    """Register ``fn`` for the duration of the ``with`` block (nested hooks all run)."""
    if not callable(fn):
        raise ValueError(f"stop_hook needs a callable, got {type(fn).__name__}")
    _HOOKS.append(fn)
    try:
        yield fn
    finally:
        # remove this registration (the last one of fn: nested uses of one fn stay balanced)
        for i in range(len(_HOOKS) - 1, -1, -1):
            if _HOOKS[i] is fn:
                del _HOOKS[i]
                break
