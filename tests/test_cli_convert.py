"""`lobsim convert` streaming: many inputs and globs in order, independent captures appended with a
CLEAR between them, the progress line (terminal only), nothing written on failure."""
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lobsim import EventKind
from lobsim.cli import ConvertProgress, main
from lobsim.data import read_binance, read_bybit, read_kraken, read_lobster, read_parquet

from test_cli_errors import data_error

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared vendor data (../shared/data) not present")
AAPL10 = DATA / "lobster" / "AAPL_10_head"
MSG = "AAPL_2012-06-21_34200000_57600000_message_10.csv"
OB = "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"


@needs_data
def test_glob_of_binance_files_is_read_in_name_order_as_one_stream(tmp_path, capsys):
    out = tmp_path / "cm.parquet"
    pattern = str(DATA / "binance" / "cm" / "btcusd_perp_2024080*.gz")  # quoted glob: expanded by lobsim
    assert main(["convert", "binance", pattern, "-o", str(out), "--chunk-rows", "100003"]) == 0
    files = sorted((DATA / "binance" / "cm").glob("btcusd_perp_2024080*.gz"))
    direct = read_binance(files)
    got = read_parquet(out)
    assert np.array_equal(got.array, direct.array)
    assert got.report.counts == direct.report.counts
    assert "events/s" in capsys.readouterr().out


def _lobster_zip(path, msg_lines, ob_lines):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(MSG, "\n".join(msg_lines) + "\n")
        z.writestr(OB, "\n".join(ob_lines) + "\n")


@needs_data
def test_independent_captures_are_appended_with_a_clear_between(tmp_path, capsys):
    msg = (AAPL10 / MSG).read_text().splitlines()
    ob = (AAPL10 / OB).read_text().splitlines()
    half = len(msg) // 2
    a, b = tmp_path / "a" / "day.zip", tmp_path / "b" / "day.zip"
    a.parent.mkdir()
    b.parent.mkdir()
    _lobster_zip(a, msg[:half], ob[:half])
    _lobster_zip(b, msg[half:], ob[half:])
    out = tmp_path / "both.parquet"
    assert main(["convert", "lobster", str(a), str(b), "-o", str(out)]) == 0
    first, second = read_lobster(a), read_lobster(b)
    got = read_parquet(out).array
    n1 = len(first.array)
    assert np.array_equal(got[:n1], first.array)
    assert got[n1]["kind"] == EventKind.CLEAR and got[n1]["ts_exch"] == second.array[0]["ts_exch"]
    assert np.array_equal(got[n1 + 1:], second.array)
    capsys.readouterr()
    # Given out of time order: refused, naming the input, and nothing written.
    out2 = tmp_path / "reversed.parquet"
    err = data_error(capsys, ["convert", "lobster", str(b), str(a), "-o", str(out2)])
    assert str(a) in err and "time order" in err
    assert not out2.exists()


@needs_data
def test_inputs_of_different_instruments_are_refused(tmp_path, capsys):
    amzn = DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_1.zip"
    aapl = DATA / "lobster" / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
    out = tmp_path / "x.parquet"
    err = data_error(capsys, ["convert", "lobster", str(amzn), str(aapl), "-o", str(out)])
    assert "instrument" in err and str(aapl) in err
    assert not out.exists()


def test_a_glob_matching_nothing_names_the_pattern(tmp_path, capsys):
    pattern = str(tmp_path / "nothing-*.gz")
    err = data_error(capsys, ["convert", "binance", pattern, "-o", str(tmp_path / "x.parquet")])
    assert pattern in err and "no file matches" in err


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_only_on_a_terminal(monkeypatch):
    clock = iter([0.0, 0.05, 0.5, 1.0, 1.01, 2.0])
    monkeypatch.setattr("lobsim.cli.time.perf_counter", lambda: next(clock))
    tty = _Tty()
    bar = ConvertProgress(200_000_000, stream=tty)  # t0 = 0.0
    bar(1_000_000, 10)  # 0.05 s: too soon, not drawn
    bar(50_000_000, 1_000_000)  # 0.5 s
    bar(100_000_000, 2_000_000)  # 1.0 s
    bar(150_000_000, 3_000_000)  # 1.01 s: within 0.1 s of the last line, not drawn
    bar.close()
    text = tty.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert " 25.0% 50.0/200.0 MB read  1,000,000 events written  2,000,000 events/s" in text
    assert " 50.0% 100.0/200.0 MB read  2,000,000 events written  2,000,000 events/s" in text
    pipe = io.StringIO()  # not a terminal: silent
    quiet = ConvertProgress(10, stream=pipe)
    quiet(5, 5)
    quiet.close()
    assert pipe.getvalue() == ""


@needs_data
@pytest.mark.parametrize("argv, read", [
    (["kraken", str(DATA / "kraken" / "book1000_10pairs_head.ws"), "--symbol", "XMR/USD"],
     lambda: read_kraken(DATA / "kraken" / "book1000_10pairs_head.ws", "XMR/USD")),
    (["bybit", str(DATA / "tardis" / "xrpusdt-ob500.data.zip")],
     lambda: read_bybit(DATA / "tardis" / "xrpusdt-ob500.data.zip")),
])
def test_convert_kraken_and_bybit_equal_their_readers(tmp_path, capsys, argv, read):
    out = tmp_path / "o.parquet"
    assert main(["convert", *argv, "-o", str(out), "--chunk-rows", "97"]) == 0
    direct = read()
    got = read_parquet(out)
    assert got.array.tobytes() == direct.array.tobytes() and got.instrument == direct.instrument
    assert got.report.counts == direct.report.counts
