import math
import os
import subprocess
import sys

import pytest

from infoflow.io import write_atomic
from infoflow.records import (
    HISTOGRAM_COLUMNS,
    RECORD_COLUMNS,
    RecordError,
    append_rows,
    metric_name,
    read_records,
    write_csv_atomic,
)


def test_append_writes_header_once_and_round_trips(tmp_path):
    path = tmp_path / "information.csv"
    append_rows(path, RECORD_COLUMNS, [(3, 0, 1, "sp", "I_XT", 8.25, 0.01)])
    append_rows(path, RECORD_COLUMNS, [(3, 5, None, "train", "loss", 1 / 3, None)])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(RECORD_COLUMNS) and len(lines) == 3
    rows = read_records(path)
    assert rows[0] == {
        "seed": 3,
        "epoch": 0,
        "layer": 1,
        "estimator": "sp",
        "quantity": "I_XT",
        "value": 8.25,
        "stderr": 0.01,
    }
    assert rows[1]["layer"] is None and rows[1]["value"] == 1 / 3 and math.isnan(rows[1]["stderr"])


def test_partial_last_line_is_refused_then_cut_on_next_append(tmp_path):
    path = tmp_path / "information.csv"
    append_rows(path, RECORD_COLUMNS, [(0, 0, 1, "sp", "I_XT", 1.0, 0.1)])
    with path.open("a") as f:
        f.write("0,3,1,sp,I_X")  # a writer killed mid-row
    with pytest.raises(RecordError, match=r"information.csv, row 3: incomplete"):
        read_records(path)
    assert len(read_records(path, allow_partial_tail=True)) == 1
    append_rows(path, RECORD_COLUMNS, [(0, 4, 1, "sp", "I_XT", 2.0, 0.1)])
    assert [r["epoch"] for r in read_records(path)] == [0, 4]
    assert "I_X\n" not in path.read_text()


def test_rows_survive_a_killed_writer(tmp_path):
    """A process appending in a loop and killed with SIGKILL leaves only whole rows."""
    path = tmp_path / "information.csv"
    code = (
        "from infoflow.records import append_rows, RECORD_COLUMNS\n"
        "import sys\n"
        "for e in range(10**6):\n"
        "    append_rows(sys.argv[1], RECORD_COLUMNS, [(1, e, 1, 'sp', 'I_XT', e * 0.5, 0.1)] * 3)\n"
        "    print(e, flush=True) if e == 20 else None\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    proc.stdout.readline()  # it has written at least 21 batches
    os.kill(proc.pid, 9)
    proc.wait()
    rows = read_records(path, allow_partial_tail=True)
    assert len(rows) >= 63
    assert all(r["value"] == r["epoch"] * 0.5 and r["stderr"] == 0.1 for r in rows)


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path):
    import numpy as np

    path = tmp_path / "information.csv"
    row = (np.int64(0), np.int64(2), 1, "sp", "I_XT", np.float64(-1.5), None)
    append_rows(path, RECORD_COLUMNS, [row])
    assert read_records(path)[0]["value"] == -1.5 and read_records(path)[0]["epoch"] == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("seed,epoch,layer,estimator,quantity,value,stderr\n0,1,1,sp,I_XT,abc,\n", "row 2"),
        ("seed,epoch,layer,estimator,quantity,value,stderr\n0,1,1,sp,I_XT,1.0\n", "row 2"),
        ("seed,epoch,layer,estimator,quantity,value,stderr\n0,1,1,sp,I_XT,1,\n0,-2,1,sp,I,1,\n",
         "row 3"),
        ("seed,epoch,layer,estimator,quantity,value,stderr\n0,1,1,,I_XT,1,\n", "row 2"),
        ("epoch,layer,value\n1,1,1\n", "row 1"),
        ("", "row 1"),
        ("seed,epoch,layer,estimator,quantity,value,stderr\n0,1,1,sp,I_XT,1,\n0,2,1,s", "row 3"),
    ],
)  # fmt: skip
def test_a_damaged_file_is_one_error_naming_file_and_row(tmp_path, text, where):
    path = tmp_path / "information.csv"
    path.write_text(text)
    with pytest.raises(RecordError) as err:
        read_records(path)
    message = str(err.value)
    assert message.startswith(f"{path}, {where}") and "\n" not in message


def test_files_from_before_seeds_are_read_with_seed_none(tmp_path):
    path = tmp_path / "information.csv"
    path.write_text("epoch,layer,estimator,quantity,value,stderr\n2,1,sp,I_XT,1.5,0.1\n")
    assert read_records(path) == [
        {"seed": None, "epoch": 2, "layer": 1, "estimator": "sp", "quantity": "I_XT",
         "value": 1.5, "stderr": 0.1}
    ]  # fmt: skip


def test_histograms_share_the_appender_and_reader(tmp_path):
    path = tmp_path / "histograms.csv"
    append_rows(path, HISTOGRAM_COLUMNS, [(1, 0, 2, "noiseless", -1.0, 0.5, 7)])
    assert read_records(path, HISTOGRAM_COLUMNS)[0]["count"] == 7.0


def test_metric_names_are_the_loggers_names():
    names = [
        metric_name({"layer": None, "estimator": "val", "quantity": "acc"}),
        metric_name({"layer": 1, "estimator": "sp", "quantity": "I_XT"}),
        metric_name({"layer": 2, "estimator": "clustering", "quantity": "silhouette"}),
        metric_name({"layer": 3, "estimator": "gradients", "quantity": "snr"}),
    ]
    assert names == [
        "val/acc",
        "info/sp/layer1/I_XT",
        "cluster/layer2/silhouette",
        "grad/layer3/snr",
    ]


def test_atomic_write_respects_umask_and_leaves_nothing_on_error(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_csv_atomic(tmp_path / "t.csv", ("a",), [(1,)])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_text() == "a\n1\n"

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "t.csv", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    assert path.read_text() == "a\n1\n"  # the old content stays
