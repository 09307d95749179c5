"""The one atomic file write: every file infoflow rewrites whole goes through :func:`write_atomic`.

A reader (a viewer, another job, the plots callback) sees the old file or the new one, never half a
file: the content goes to a hidden temporary file in the same folder (same filesystem, so
``os.replace`` is atomic), which then replaces the target. The file gets the permissions of any
new file (0o666 less the umask; ``tempfile.mkstemp`` would give 0o600), and on any error the
temporary file is removed, so nothing is left behind; a hard stop (a second stop signal) removes
it too (:func:`infoflow.stopping.scratch`) and waits only for the rename. A full disk, a folder that cannot
be made or no permission is one :class:`~infoflow.errors.StorageError` naming the path.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from infoflow.errors import StorageError, storage_error
from infoflow.stopping import critical, scratch


def write_atomic(
    path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], object]
) -> Path:
    """Replace ``path`` atomically by ``content``: bytes, text (UTF-8), or a function that writes
    into the binary file it is given (``lambda f: np.savez(f, ...)``). Returns ``path``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_atomic(Path(d) / "a" / "x.txt", "hello\\n")
    ...     (p.read_text(), sorted(q.name for q in p.parent.iterdir()))
    ('hello\\n', ['x.txt'])
    """
    path = Path(path)
    try:
        _replace(path, content)
    except OSError as exc:
        if isinstance(exc, StorageError) or storage_error(exc) is None:
            raise
        raise StorageError(path, exc) from exc
    return path


def _replace(path: Path, content: bytes | str | Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    with scratch(tmp):  # a hard stop while it is written removes it
        try:
            with os.fdopen(fd, "wb") as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content.encode() if isinstance(content, str) else content)
                fh.flush()
                os.fsync(fh.fileno())
            with critical():  # a hard stop waits for the rename
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
