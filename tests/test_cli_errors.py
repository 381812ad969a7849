"""Every user error of the `lobsim` command is one line on stderr and an exit status, never a traceback.

Usage errors (bad option values) exit 2 with argparse's usage line and one
error line; data errors (missing, unreadable or malformed files) exit 1 with
one "lobsim: error: <file>: ..." line; Ctrl-C exits 130.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lobsim
from lobsim import EventKind
from lobsim.cli import main
from lobsim.data import Events, ValidationReport, write_parquet
from lobsim.data.store import ARROW_SCHEMA, COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
CONVERT_INPUTS = {"lobster": ["m.csv", "o.csv"], "dbn": ["x.dbn"], "binance": ["a.gz"], "tardis": ["b.csv"]}
BAD_SIZES = ["abc", "0", "-1", "NaN", "", "inf", "-inf", "1e-30", "1e30", "0.1234567890123456789", "1_0x"]


def usage_error(capsys, argv):
    """Run main(argv) expecting a usage error; return the error line."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def data_error(capsys, argv):
    """Run main(argv) expecting a data error (exit 1); return stderr, checked to be one line."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("lobsim: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("fmt", sorted(CONVERT_INPUTS))
@pytest.mark.parametrize("option", ["--tick-size", "--lot-size"])
@pytest.mark.parametrize("value", BAD_SIZES)
def test_convert_refuses_bad_sizes(capsys, tmp_path, fmt, option, value):
    argv = ["convert", fmt, *CONVERT_INPUTS[fmt], "-o", str(tmp_path / "o.parquet"), "--symbol", "X", option, value]
    line = usage_error(capsys, argv)
    assert option in line
    assert not (tmp_path / "o.parquet").exists()


def test_convert_good_sizes_pass_validation(capsys, tmp_path):
    # valid sizes get as far as the (missing) input file: a data error, not a usage error
    err = data_error(capsys, ["convert", "tardis", str(tmp_path / "b.csv"), "-o", str(tmp_path / "o.parquet"),
                              "--tick-size", "1e-2", "--lot-size", "0.001"])
    assert "b.csv" in err and "file not found" in err


@pytest.mark.parametrize("value", ["0", "-1", "99999999999999999999", "100000001", "abc", "", "1.5", "9" * 5000])
def test_replay_refuses_bad_batch_rows(capsys, value):
    line = usage_error(capsys, ["replay", str(SAMPLE), "--batch-rows", value])
    assert "--batch-rows" in line


@pytest.mark.parametrize("args", [
    ["--events", "-1"], ["--events", "0"], ["--events", "10000000001"], ["--events", "1e6"], ["--events", ""],
    ["--seed", "-1"], ["--seed", str(2**63)], ["--seed", "x"],
])
def test_generate_refuses_bad_counts_and_seeds(capsys, tmp_path, args):
    line = usage_error(capsys, ["generate", "-o", str(tmp_path / "g.parquet"), *args])
    assert args[0] in line
    assert not (tmp_path / "g.parquet").exists()


def test_convert_wrong_number_of_inputs_is_a_usage_error(capsys, tmp_path):
    out = str(tmp_path / "x.parquet")
    assert "lobster takes" in usage_error(capsys, ["convert", "lobster", "a", "b", "c", "-o", out])
    assert "lobster takes" in usage_error(capsys, ["convert", "lobster", "a.zip", "b.csv", "c.csv", "-o", out])
    assert "--symbol PAIR is required" in usage_error(capsys, ["convert", "kraken", "a.ws", "-o", out])
    assert "--symbol" in usage_error(capsys, ["convert", "dbn", "a", "--tick-size", "0.25", "-o", out])
    assert "tardis takes" in usage_error(capsys, ["convert", "tardis", "a", "b", "c", "-o", out])


def _file_with_metadata(path, raw):
    cols = [pa.array(lobsim.empty_events(1)[name]) for name in COLUMNS]
    pq.write_table(pa.table(cols, schema=ARROW_SCHEMA.with_metadata({b"lobsim": raw})), path)
    return path


@pytest.mark.parametrize("raw", [
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "abc", "lot_size": "1"}}',
    "[" * 100_000 + "]" * 100_000,
])
@pytest.mark.parametrize("command", ["replay", "info"])
def test_malformed_metadata_is_a_data_error(capsys, tmp_path, raw, command):
    path = _file_with_metadata(tmp_path / "meta.parquet", raw)
    err = data_error(capsys, [command, str(path)])
    assert str(path) in err and "metadata" in err


@pytest.mark.parametrize("command", ["replay", "info"])
def test_missing_file_directory_and_junk(capsys, tmp_path, command):
    assert str(tmp_path / "absent.parquet") in data_error(capsys, [command, str(tmp_path / "absent.parquet")])
    assert f"{tmp_path}: is a directory" in data_error(capsys, [command, str(tmp_path)])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1" + b"\0" * 100)
    assert str(junk) in data_error(capsys, [command, str(junk)])


@pytest.mark.parametrize("fmt", sorted(CONVERT_INPUTS))
def test_convert_missing_file_and_directory(capsys, tmp_path, fmt):
    out = str(tmp_path / "o.parquet")
    missing = str(tmp_path / CONVERT_INPUTS[fmt][0])
    assert missing in data_error(capsys, ["convert", fmt, missing, "-o", out])
    assert str(tmp_path) in data_error(capsys, ["convert", fmt, str(tmp_path), "-o", out])


def test_unwritable_output_is_a_data_error(capsys, tmp_path):
    err = data_error(capsys, ["generate", "-o", str(tmp_path / "no" / "dir.parquet"), "--events", "10"])
    assert "dir.parquet" in err
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert str(out_dir) in data_error(capsys, ["generate", "-o", str(out_dir), "--events", "10"])
    assert list(tmp_path.iterdir()) == [out_dir] and list(out_dir.iterdir()) == []  # no temporary left


def binance_like():
    """An L2 stream that starts like a Binance capture: a trade print and CLEAR before any SET_LEVEL."""
    a = lobsim.empty_events(6)
    a["ts_exch"] = a["ts_local"] = np.arange(6)
    a["kind"] = [EventKind.TRADE, EventKind.CLEAR] + [EventKind.SET_LEVEL] * 4
    a["side"] = [1, 0, 1, -1, 1, -1]
    a["price"] = [100, 0, 99, 101, 98, 102]
    a["qty"] = [1, 0, 5, 3, 7, 2]
    return Events(a, lobsim.Instrument("BTCUSDT", "0.1", "0.001"), ValidationReport(source="capture.gz"))


def write_without_book_type(ev, path, row_group_size):
    """A file as earlier lobsim versions (or other tools) wrote it: no "book_type" in the metadata."""
    import json

    meta = json.dumps({"version": 1, **ev.metadata()}).encode()
    table = pa.table([pa.array(ev.array[n]) for n in COLUMNS], schema=ARROW_SCHEMA.with_metadata({b"lobsim": meta}))
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize("legacy", [False, True], ids=["metadata", "scanned"])
@pytest.mark.parametrize("lenient", [False, True])
def test_replay_decides_l2_from_the_whole_file(capsys, tmp_path, legacy, lenient):
    path = tmp_path / "l2.parquet"
    if legacy:
        write_without_book_type(binance_like(), path, row_group_size=2)
    else:
        write_parquet(binance_like(), path, row_group_size=2)
    argv = ["replay", str(path), "--batch-rows", "2"] + (["--lenient"] if lenient else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 (L2); applied 6, rejected 0" in out
    assert "best bid:    9.9 x 0.005" in out and "best ask:    10.1 x 0.003" in out


def l3_with_bad_event(bad_index, n=20):
    """n L3 adds (ids 1..n, bids below asks) with a DELETE of an unknown id at `bad_index`."""
    a = lobsim.empty_events(n)
    a["ts_exch"] = a["ts_local"] = np.arange(n)
    a["kind"] = EventKind.ADD
    a["order_id"] = np.arange(1, n + 1)
    a["side"] = np.where(np.arange(n) % 2, 1, -1)
    a["price"] = np.where(np.arange(n) % 2, 100, 101)
    a["qty"] = 1
    a["flags"] = lobsim.Flag.BATCH_END
    a[bad_index]["kind"] = EventKind.DELETE
    a[bad_index]["order_id"] = 999_999
    return Events(a, lobsim.Instrument("X", "0.01"), ValidationReport())


def test_replay_error_names_file_and_absolute_event_index(capsys, tmp_path):
    path = tmp_path / "bad.parquet"
    write_parquet(l3_with_bad_event(13), path, row_group_size=4)
    err = data_error(capsys, ["replay", str(path), "--batch-rows", "3"])
    assert err.startswith(f"lobsim: error: {path}: event 13: "), err
    assert "999999" in err and "unknown order id" in err
    assert main(["replay", str(path), "--batch-rows", "3", "--lenient"]) == 0
    out = capsys.readouterr().out
    assert "applied 19, rejected 1" in out and "the first is event 13" in out


def test_replay_null_value_names_file_and_event(capsys, tmp_path):
    ev = binance_like()
    cols = [pa.array(ev.array[n]) for n in COLUMNS]
    qty = ev.array["qty"].tolist()
    qty[4] = None
    cols[COLUMNS.index("qty")] = pa.array(qty, type=pa.int64())
    path = tmp_path / "null.parquet"
    write_without_book_type(ev, path, 6)
    meta = pq.ParquetFile(path).metadata.metadata
    pq.write_table(pa.table(cols, schema=ARROW_SCHEMA.with_metadata(meta)), path, row_group_size=2)
    err = data_error(capsys, ["replay", str(path), "--batch-rows", "2"])
    assert err == f"lobsim: error: {path}: event 4: null value: column 'qty'\n"


def test_interrupt_and_out_of_memory_are_one_line(capsys, monkeypatch):
    import lobsim.data.store as store

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "iter_parquet", interrupted)
    assert main(["replay", str(SAMPLE)]) == 130
    assert capsys.readouterr().err == "lobsim: interrupted\n"

    def no_memory(*a, **k):
        raise MemoryError

    monkeypatch.setattr(store, "iter_parquet", no_memory)
    assert main(["replay", str(SAMPLE)]) == 1
    assert capsys.readouterr().err == "lobsim: error: out of memory (try a smaller --batch-rows)\n"


def run_cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "lobsim", *args], capture_output=True, text=True, env=env,
                          timeout=120, **kw)


@pytest.mark.parametrize("args,status", [
    (["convert", "binance", "a.gz", "-o", "x.parquet", "--tick-size", "abc"], 2),
    (["convert", "lobster", "a.zip", "-o", "x.parquet", "--lot-size", "NaN"], 2),
    (["replay", str(SAMPLE), "--batch-rows", "99999999999999999999"], 2),
    (["generate", "-o", "x.parquet", "--events", "-1"], 2),
    (["generate", "-o", "x.parquet", "--seed", str(2**63)], 2),
    (["replay", "missing.parquet"], 1),
    (["info", "."], 1),
])
def test_subprocess_prints_no_traceback(tmp_path, args, status):
    p = run_cli(*args, cwd=tmp_path)
    assert p.returncode == status, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip()
    assert not (tmp_path / "x.parquet").exists()


def test_subprocess_metadata_errors(tmp_path):
    for name, raw in [("abc.parquet", '{"version": 1, "instrument": {"symbol": "X", "tick_size": "abc", '
                                      '"lot_size": "1"}}'),
                      ("deep.parquet", "[" * 100_000 + "]" * 100_000)]:
        path = _file_with_metadata(tmp_path / name, raw)
        for command in ("replay", "info"):
            p = run_cli(command, str(path))
            assert p.returncode == 1 and "Traceback" not in p.stderr
            assert p.stderr.startswith(f"lobsim: error: {path}: ") and p.stderr.count("\n") == 1


def test_output_piped_into_head_is_not_an_error(tmp_path):
    """`lobsim info x | head -1`: the closed pipe ends the command quietly (status 141 like a shell's SIGPIPE)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONUNBUFFERED", None)  # buffered, as usual: the write fails at the final flush
    p = subprocess.Popen([sys.executable, "-m", "lobsim", "info", str(SAMPLE)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # the reader goes away before the first line
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == ""
