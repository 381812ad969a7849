"""`lobsim calibrate DATA`: prints sigma, A, k with the fit quality; user errors are one line
(usage errors exit 2 naming the option, data errors exit 1 naming the file)."""
from pathlib import Path

import pytest

from lobsim import EventKind, Flag, Instrument, empty_events
from lobsim.cli import main
from lobsim.data import Events, ValidationReport, write_parquet

from test_cli_errors import data_error, usage_error

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"


def test_calibrate_prints_sigma_A_k_and_fit_quality(capsys):
    assert main(["calibrate", str(SAMPLE), "--interval-ms", "100"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in out.splitlines()}
    assert set(lines) == {"file", "instrument", "data", "sigma", "A", "k", "fit"}
    assert lines["instrument"].startswith("SYN (tick 0.01, lot 1)")
    assert lines["sigma"].split()[1] == "ticks/sqrt(s)" and "36 changes of the mid every 100 ms" in lines["sigma"]
    assert float(lines["sigma"].split()[0]) > 0
    assert float(lines["A"].split()[0]) > 0 and lines["A"].split()[1:3] == ["per", "s"]
    assert float(lines["k"].split()[0]) > 0 and lines["k"].split()[1:3] == ["per", "tick"]
    assert lines["fit"].startswith("R^2 0.") and "9,919 trade prints" in lines["fit"]
    # the same numbers as the library
    from lobsim.calibrate import calibrate

    cal = calibrate(SAMPLE, interval_ns=100_000_000)
    assert float(lines["sigma"].split()[0]) == pytest.approx(cal.sigma, rel=1e-5)
    assert float(lines["k"].split()[0]) == pytest.approx(cal.k, rel=1e-5)


def test_calibrate_default_interval_is_one_second(capsys):
    assert main(["calibrate", str(SAMPLE)]) == 0
    assert "from 3 changes of the mid every 1,000 ms" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["--interval-ms", "0"], ["--interval-ms", "-1"], ["--interval-ms", "1.5"], ["--interval-ms", "x"],
    ["--interval-ms", "86400001"], ["--min-count", "0"], ["--min-count", "abc"],
])
def test_calibrate_refuses_bad_options(capsys, args):
    assert args[0] in usage_error(capsys, ["calibrate", str(SAMPLE), *args])


def test_calibrate_missing_file_and_directory(capsys, tmp_path):
    assert str(tmp_path / "absent.parquet") in data_error(capsys, ["calibrate", str(tmp_path / "absent.parquet")])
    assert f"{tmp_path}: is a directory" in data_error(capsys, ["calibrate", str(tmp_path)])


def test_calibrate_too_little_data_is_a_data_error(capsys, tmp_path):
    err = data_error(capsys, ["calibrate", str(SAMPLE), "--interval-ms", "10000"])
    assert str(SAMPLE) in err and "sigma needs at least 2 changes" in err
    err = data_error(capsys, ["calibrate", str(SAMPLE), "--min-count", "1000"])
    assert str(SAMPLE) in err and "depth levels" in err
    # a book with no trade prints
    ev = empty_events(4)
    ev["ts_exch"] = ev["ts_local"] = [1, 2, 3_000_000_000, 4_000_000_000]
    ev["kind"] = EventKind.SET_LEVEL
    ev["side"] = [1, -1, 1, -1]
    ev["price"] = [100, 101, 100, 101]
    ev["qty"] = [5, 5, 6, 6]
    ev["flags"] = [0, Flag.BATCH_END, 0, Flag.BATCH_END]
    path = tmp_path / "notrades.parquet"
    write_parquet(Events(ev, Instrument("X", "0.01"), ValidationReport(source="test")), path)
    err = data_error(capsys, ["calibrate", str(path)])
    assert str(path) in err and "no trade prints" in err
    empty = tmp_path / "empty.parquet"
    write_parquet(Events(empty_events(0), Instrument("X", "0.01"), ValidationReport(source="test")), empty)
    assert "no events" in data_error(capsys, ["calibrate", str(empty)])


def test_calibrate_event_the_book_refuses_names_file_and_event(capsys, tmp_path):
    ev = empty_events(2)
    ev["ts_exch"] = ev["ts_local"] = [1, 2]
    ev["kind"] = [EventKind.DELETE, EventKind.ADD]
    ev["order_id"] = [5, 6]
    ev["side"] = 1
    ev["price"] = 100
    ev["qty"] = 1
    ev["flags"] = Flag.BATCH_END
    path = tmp_path / "bad.parquet"
    write_parquet(Events(ev, Instrument("X", "0.01"), ValidationReport(source="test")), path)
    err = data_error(capsys, ["calibrate", str(path)])
    assert str(path) in err and "event 0" in err and "unknown order id" in err
