import math
import os
import subprocess
import sys

from infoflow.records import INFORMATION_COLUMNS, append_rows, read_information, read_rows


def test_append_writes_header_once_and_round_trips(tmp_path):
    path = tmp_path / "information.csv"
    append_rows(path, INFORMATION_COLUMNS, [(0, 1, "sp", "I_XT", 8.25, 0.01)])
    append_rows(path, INFORMATION_COLUMNS, [(5, 2, "bin:tishby:30", "H_T", 1 / 3, None)])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(INFORMATION_COLUMNS) and len(lines) == 3
    rows = read_information(path)
    assert rows[0] == {
        "epoch": 0,
        "layer": 1,
        "estimator": "sp",
        "quantity": "I_XT",
        "value": 8.25,
        "stderr": 0.01,
    }
    assert rows[1]["value"] == 1 / 3 and math.isnan(rows[1]["stderr"])


def test_partial_last_line_is_skipped_then_cut_on_next_append(tmp_path):
    path = tmp_path / "information.csv"
    append_rows(path, INFORMATION_COLUMNS, [(0, 1, "sp", "I_XT", 1.0, 0.1)])
    with path.open("a") as f:
        f.write("3,1,sp,I_X")  # a writer killed mid-row
    assert len(read_rows(path)) == 1
    append_rows(path, INFORMATION_COLUMNS, [(4, 1, "sp", "I_XT", 2.0, 0.1)])
    assert [r["epoch"] for r in read_information(path)] == [0, 4]
    assert "I_X\n" not in path.read_text()


def test_rows_survive_a_killed_writer(tmp_path):
    """A process appending in a loop and killed with SIGKILL leaves only whole rows."""
    path = tmp_path / "information.csv"
    code = (
        "from infoflow.records import append_rows, INFORMATION_COLUMNS\n"
        "import sys\n"
        "for e in range(10**6):\n"
        "    append_rows(sys.argv[1], INFORMATION_COLUMNS, [(e, 1, 'sp', 'I_XT', e * 0.5, 0.1)] * 3)\n"
        "    print(e, flush=True) if e == 20 else None\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE)
    proc.stdout.readline()  # it has written at least 21 batches
    os.kill(proc.pid, 9)
    proc.wait()
    rows = read_information(path)
    assert len(rows) >= 63
    assert all(r["value"] == r["epoch"] * 0.5 and r["stderr"] == 0.1 for r in rows)


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path):
    import numpy as np

    path = tmp_path / "information.csv"
    append_rows(path, INFORMATION_COLUMNS, [(np.int64(2), 1, "sp", "I_XT", np.float64(-1.5), None)])
    assert read_information(path)[0]["value"] == -1.5 and read_information(path)[0]["epoch"] == 2
