"""Safe points and critical sections: where long work may stop, and what must not be cut, without
knowing who asks.

Estimators and other long loops call :func:`safe_point` between units of work (a batch of
queries, a layer, a chunk of pairs, a member, a figure); the run's machinery registers a hook with
:func:`stop_hook` that raises when a stop signal has been recorded. Compiled code (numba, C
extensions) is never interrupted in the middle: a stop is acted on at the next safe point.

A write that must never be left half done (a record append, an atomic rename) runs inside
:func:`critical`: a hard stop (a second signal) waits until the outermost section ends, then the
hooks registered with :func:`after_critical` run. A file being written before it is renamed into
place (:func:`scratch`) is removed by a hard stop instead, so nothing half written is left and the
stop need not wait for a long write. This module imports nothing of infoflow, so pure code may
call it.

>>> calls = []
>>> with stop_hook(lambda: calls.append("checked")):
...     safe_point()
>>> safe_point(); calls  # outside: no hook
['checked']
>>> with critical():
...     in_critical()
True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_hooks: list[Callable[[], None]] = []
_after: list[Callable[[], None]] = []
_scratch: list[Path] = []
_depth = 0  # critical sections open, in any thread
_lock = threading.Lock()


def safe_point() -> None:
    """Call every registered stop hook (each may raise to stop the work)."""
    for hook in tuple(_hooks):
        hook()


@contextmanager
def stop_hook(fn: Callable[[], None]) -> Iterator[None]:
    """Register ``fn`` to be called at every :func:`safe_point` for the duration."""
    if not callable(fn):
        raise ValueError(f"a stop hook must be callable, got {fn!r}")
    _hooks.append(fn)
    try:
        yield
    finally:
        _hooks.remove(fn)


def in_critical() -> bool:
    """Whether a :func:`critical` section is open (in any thread)."""
    return _depth > 0


@contextmanager
def critical() -> Iterator[None]:
    """A section that a hard stop must not cut: it waits until the outermost section ends."""
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
        if last:
            for fn in tuple(_after):
                fn()


@contextmanager
def scratch(path: str | os.PathLike) -> Iterator[None]:
    """``path`` is a temporary file for the duration: a hard stop removes it (:func:`discard`)."""
    _scratch.append(Path(path))
    try:
        yield
    finally:
        _scratch.remove(Path(path))


def discard() -> None:
    """Remove every :func:`scratch` file (a hard stop's last act before the process ends)."""
    for path in tuple(_scratch):
        with suppress(OSError):
            path.unlink()


@contextmanager
def after_critical(fn: Callable[[], None]) -> Iterator[None]:
    """Register ``fn`` to be called each time the outermost :func:`critical` section ends."""
    _after.append(fn)
    try:
        yield
    finally:
        _after.remove(fn)
