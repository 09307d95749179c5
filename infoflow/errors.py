"""Bad input as one line: the error type for config values, and the one formatter every CLI uses.

A user who typed a wrong value gets ``<prog>: error: <what>`` on stderr and exit status 1, never a
traceback (``HYDRA_FULL_ERROR=1`` asks for the traceback instead). Everything here is plain Python:
any module may import it without pulling in torch or Hydra.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Any, NoReturn

PROG = "infoflow"


class ConfigError(ValueError):
    """A bad config value; its message is one line naming the key, the value and what is allowed.

    >>> str(ConfigError("noise.beta", -1, "must be a number >= 0"))
    'invalid config: noise.beta=-1 (must be a number >= 0)'
    >>> str(ConfigError("trainer", ..., "Lightning refuses it: ..."))  # a whole node: no value
    'invalid config: trainer (Lightning refuses it: ...)'
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        shown = "" if value is ... else f"={show_value(value)}"
        super().__init__(one_line(f"invalid config: {key}{shown} ({allowed})"))
        self.key, self.value = key, value


class DataError(RuntimeError):
    """A data set that cannot be read or obtained (e.g. :class:`infoflow.data.mnist.MnistDataError`);
    its message is one line saying what and where. Defined here so that data modules can use
    :func:`one_line` without this module importing them."""


class ModelError(RuntimeError):
    """A network that cannot run on its data (a forward that fails or returns the wrong shape, a
    module that cannot be run as an ensemble); its message is one line saying what and why."""


class DivergenceError(ModelError):
    """Training diverged: a non-finite loss or representation; the message is one line naming
    the epoch and the members (seeds) that diverged.

    >>> str(DivergenceError(3, "training loss", {0: float("nan")}, 1))
    'training diverged in epoch 3: non-finite training loss (seed 0: nan)'
    >>> str(DivergenceError(0, "representations of T2", {1: "inf", 4: "nan"}, 5, when="by"))
    'training diverged by epoch 0: non-finite representations of T2 (2 of 5 members: seed 1: inf, seed 4: nan)'
    """

    def __init__(
        self, epoch: int, what: str, bad: dict[int, object], members: int, when: str = "in"
    ) -> None:
        listed = ", ".join(f"seed {seed}: {value}" for seed, value in bad.items())
        who = listed if members == 1 else f"{len(bad)} of {members} members: {listed}"
        super().__init__(f"training diverged {when} epoch {epoch}: non-finite {what} ({who})")
        self.epoch, self.seeds = epoch, list(bad)


class StorageError(OSError):
    """A file or folder the run needs cannot be written or made (a full disk, a path under a
    file, no permission); the message is one line naming the path and what is wrong.

    >>> import errno
    >>> str(StorageError("/out/information.csv", OSError(errno.ENOSPC, "No space left on device")))
    'cannot write /out/information.csv: No space left on device'
    """

    def __init__(self, path: object, cause: OSError | str, verb: str = "write") -> None:
        reason = cause if isinstance(cause, str) else (cause.strerror or one_line(cause))
        super().__init__(getattr(cause, "errno", None), f"cannot {verb} {path}: {reason}")
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror)


#: errno values that mean the storage, not the program: one line, not a traceback.
STORAGE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EIO", "EFBIG")
    if hasattr(errno, name)
)


def storage_error(exc: BaseException) -> StorageError | None:
    """``exc`` as a :class:`StorageError` if it is an ``OSError`` of the storage (a full disk, no
    permission, a path under a file), else None.

    >>> str(storage_error(OSError(errno.ENOSPC, "No space left on device", "/o/x.csv")))
    'cannot write /o/x.csv: No space left on device'
    >>> storage_error(ValueError("x")) is None
    True
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return StorageError(exc.filename or "a file of the run", exc)
    return None


# Exceptions that mean bad input or a fault outside the program (reported as one line, exit 1)
# rather than a bug.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, ModelError, StorageError)


def run_errors() -> tuple[type[Exception], ...]:
    """:data:`USER_ERRORS` and Lightning's ``MisconfigurationException``: bad input that shows only
    once training starts (``limit_train_batches=0.01`` of 13 batches is none). Imports Lightning."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    return (*USER_ERRORS, MisconfigurationException)


def show_value(value: Any) -> str:
    """A config value as the user would type it back: strings quoted, containers as plain lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return repr(value) if isinstance(value, str) else str(value)


def one_line(problem: object, limit: int = 500) -> str:
    """An exception (or any message) on one line, cut to ``limit`` characters; an exception
    without a message is named by its type.

    >>> one_line(ValueError("two\\n  lines"))
    'two lines'
    >>> one_line(KeyError())
    'KeyError'
    """
    text = " ".join(str(problem).split())
    if not text and isinstance(problem, BaseException):
        text = type(problem).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_line(problem: object, prog: str = PROG) -> str:
    """``<prog>: error: <problem on one line>``, the format of every bad-input message.

    >>> error_line(ConfigError("seed", "x", "must be an integer"))
    "infoflow: error: invalid config: seed='x' (must be an integer)"
    """
    return f"{prog}: error: {one_line(problem)}"


def fail(problem: object, prog: str = PROG) -> int:
    """Print the one line to stderr; returns the exit status 1 (for ``main() -> int`` CLIs)."""
    print(error_line(problem, prog), file=sys.stderr, flush=True)
    return 1


def exit_for_user(exc: BaseException) -> NoReturn:
    """One line and exit status 1 for bad input; ``HYDRA_FULL_ERROR=1`` prints the traceback too
    (here, not by re-raising: Hydra's callbacks turn an exception into a warning and go on)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exception(exc)
    sys.exit(fail(exc))
