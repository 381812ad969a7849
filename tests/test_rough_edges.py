"""Regression tests for the rough edges a new user hit (issue 10): one test (or a few) per fix."""
from pathlib import Path

import pytest

from lobsim.cli import main

from test_cli_errors import data_error

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "data" / "sample.parquet"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared vendor data not present")


@pytest.mark.parametrize("argv", [
    ["convert", "tardis", "{d}", "-o", "{o}"],
    ["convert", "binance", "{d}", "-o", "{o}"],
    ["convert", "lobster", "{d}", "-o", "{o}"],
    # read_dbn keeps "file not found" for a directory: tests/test_dbn.py::test_missing_file pins it
    ["convert", "dbn", "{d}", "-o", "{o}"],
    ["info", "{d}"],
    ["replay", "{d}"],
])
def test_directory_input_is_reported_as_a_directory(capsys, tmp_path, argv):
    d = tmp_path / "adir"
    d.mkdir()
    argv = [a.format(d=d, o=tmp_path / "o.parquet") for a in argv]
    err = data_error(capsys, argv)
    assert "is a directory" in err and "file not found" not in err


def test_sizes_print_as_plain_decimals_not_exponents(capsys, tmp_path):
    from decimal import Decimal

    from lobsim.data import read_parquet, write_parquet
    from lobsim.instrument import Instrument, infer_instrument, parse_decimal_strings, plain

    assert [plain(Decimal(s)) for s in ("1E+1", "10", "1e-4", "0.50", "100")] == ["10", "10", "0.0001", "0.5", "100"]
    info = {}
    infer_instrument("X", "0.5", "10", [parse_decimal_strings(["100", "200"])], [parse_decimal_strings(["10", "30"])],
                     info=info)
    assert info["tick_size"] == "0.5" and info["lot_size"] == "10"
    ev = read_parquet(SAMPLE)
    ev.instrument = Instrument("X", Decimal("1e2"), Decimal("1E+1"))
    path = tmp_path / "e.parquet"
    write_parquet(ev, path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(tick 100, lot 10)" in out and "E+" not in out


def test_readme_reader_example_names_only_files_in_the_shared_data():
    import re

    text = (ROOT / "README.md").read_text()
    block = text[text.index("ev = read_lobster("):]
    block = block[:block.index("```")]
    named = re.findall(r'"([^"]+\.(?:zip|zst|gz|csv))"', block)
    assert named, block
    assert "deribit_trades.csv" not in named
    if DATA.is_dir():
        present = {p.name for p in DATA.rglob("*") if p.is_file()}
        assert [n for n in named if n not in present] == []


def test_info_counts_unknown_kinds(capsys, tmp_path):
    from lobsim.data import Events, read_parquet, write_parquet

    ev = read_parquet(SAMPLE)
    a = ev.array.copy()
    a["kind"][[5, 9]] = 99
    path = tmp_path / "u.parquet"
    write_parquet(Events(a, ev.instrument, ev.report), path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "unknown(99)" in out and out.split("unknown(99)")[1].split()[0] == "2"
    kinds = out.split("(exchange clock, UTC)")[1].split("validation report")[0].splitlines()[2:]
    counted = sum(int(ln.split()[-1].replace(",", "")) for ln in kinds)
    assert counted == len(a)


@pytest.mark.parametrize("content", [b"", "gzip"])
def test_convert_binance_empty_file_is_an_error_and_writes_nothing(capsys, tmp_path, content):
    import gzip

    src = tmp_path / "empty.gz"
    src.write_bytes(gzip.compress(b"") if content == "gzip" else content)
    out = tmp_path / "o.parquet"
    err = data_error(capsys, ["convert", "binance", str(src), "-o", str(out)])
    assert str(src) in err and "empty" in err
    assert not out.exists()


@needs_data
def test_convert_with_zero_events_is_an_error_and_writes_nothing(capsys, tmp_path):
    import gzip

    src = tmp_path / "few.gz"
    with gzip.open(DATA / "binance" / "spot" / "btcusdt_20240808.gz") as f:
        src.write_bytes(gzip.compress(b"".join(f.readline() for _ in range(5))))
    out = tmp_path / "o.parquet"
    err = data_error(capsys, ["convert", "binance", str(src), "--symbol", "ETHUSDT", "-o", str(out)])
    assert "no events" in err and "nothing written" in err
    assert not out.exists()


ES_MBO = DATA / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"


@needs_data
def test_read_dbn_with_another_symbols_instrument_is_an_anomaly():
    pytest.importorskip("databento_dbn")
    from lobsim import DataError, Instrument
    from lobsim.data import read_dbn

    ev = read_dbn(ES_MBO, instrument=Instrument("NQ", "0.25"))
    assert ev.report.counts["symbol_mismatch"] == 1
    assert "'NQ'" in ev.report.examples["symbol_mismatch"][0] and "ESH4" in ev.report.examples["symbol_mismatch"][0]
    with pytest.raises(DataError, match="symbol_mismatch"):
        read_dbn(ES_MBO, instrument=Instrument("NQ", "0.25"), strict=True)
    for ok in ("ESH4", "ES", "ES.FUT"):
        assert read_dbn(ES_MBO, instrument=Instrument(ok, "0.25")).report.total == 0


def test_convert_dbn_symbol_without_tick_size_is_a_usage_error(capsys, tmp_path):
    out = tmp_path / "o.parquet"
    with pytest.raises(SystemExit) as e:
        main(["convert", "dbn", str(ES_MBO), "--symbol", "ES", "-o", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--symbol needs --tick-size" in err and "Traceback" not in err
    assert not out.exists()


@needs_data
def test_convert_passes_lobster_date(capsys, tmp_path):
    from lobsim.data import read_parquet

    src = DATA / "lobster" / "AAPL_10_head"
    msg, ob = tmp_path / "messages.csv", tmp_path / "book.csv"  # names that carry no date
    msg.write_bytes((src / "AAPL_2012-06-21_34200000_57600000_message_10.csv").read_bytes())
    ob.write_bytes((src / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv").read_bytes())
    out = tmp_path / "o.parquet"
    assert main(["convert", "lobster", str(msg), str(ob), "--symbol", "AAPL", "-o", str(out)]) == 1
    assert "date" in capsys.readouterr().err
    assert main(["convert", "lobster", str(msg), str(ob), "--symbol", "AAPL", "--date", "2012-06-21",
                 "-o", str(out)]) == 0
    ev = read_parquet(out)
    assert ev.report.info["date"] == "2012-06-21" and len(ev)
    assert str(ev.array["ts_exch"][0].astype("datetime64[ns]")).startswith("2012-06-21T13:30")  # 9:30 New York
    with pytest.raises(SystemExit) as e:
        main(["convert", "lobster", str(msg), str(ob), "--date", "21/06/2012", "-o", str(out)])
    assert e.value.code == 2


@needs_data
def test_convert_passes_dbn_definition_and_fills(capsys, tmp_path):
    pytest.importorskip("databento_dbn")
    from lobsim.data import read_dbn, read_parquet

    out = tmp_path / "o.parquet"
    mbp = DATA / "databento" / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
    definition = DATA / "databento" / "futures_definition.dbn.zst"
    assert main(["convert", "dbn", str(mbp), "--definition", str(definition), "-o", str(out)]) == 0
    ev = read_parquet(out)
    assert ev.instrument.symbol == "ESU4" and "definition" in ev.report.info["tick_size_source"]
    capsys.readouterr()
    assert main(["convert", "dbn", str(ES_MBO), "--fills", "ignore", "-o", str(out)]) == 0
    assert (read_parquet(out).array == read_dbn(ES_MBO, fills="ignore").array).all()
    assert len(read_parquet(out)) != len(read_dbn(ES_MBO))
    for bad in (["--fills", "ignore"], ["--definition", str(definition)]):
        with pytest.raises(SystemExit) as e:
            main(["convert", "tardis", "x.csv", *bad, "-o", str(out)])
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["convert", "dbn", str(mbp), "--definition", str(definition), "--symbol", "X", "--tick-size", "1",
              "-o", str(out)])


@needs_data
@pytest.mark.parametrize("keep", [0.5, 0.99, -10])
def test_truncated_lobster_zip_is_diagnosed_as_a_corrupt_zip(capsys, tmp_path, keep):
    from lobsim import DataError
    from lobsim.data import read_lobster

    raw = (DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_1.zip").read_bytes()
    cut = tmp_path / "LOBSTER_SampleFile_AMZN_2012-06-21_1.zip"
    cut.write_bytes(raw[:int(len(raw) * keep)] if keep > 0 else raw[:keep])
    with pytest.raises(DataError, match="corrupt zip") as ei:
        read_lobster(cut)
    assert "orderbook file not given" not in str(ei.value)
    err = data_error(capsys, ["convert", "lobster", str(cut), "-o", str(tmp_path / "o.parquet")])
    assert "corrupt zip" in err


@needs_data
@pytest.mark.parametrize("where", ["extra_field", "symbol_and_extra_field", "gzip"])
def test_tardis_bad_utf8_in_a_malformed_data_row_is_one_error_with_its_line(tmp_path, where):
    import gzip
    import subprocess
    import sys

    lines = (DATA / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv").read_bytes().split(b"\n")
    if where == "extra_field":
        lines[5] += b",\xff"
    else:
        lines[5] = lines[5].replace(b"deribit", b"der\xffbit", 1) + b",x"
    body = b"\n".join(lines)
    src = tmp_path / ("bad.csv.gz" if where == "gzip" else "bad.csv")
    src.write_bytes(gzip.compress(body) if where == "gzip" else body)
    p = subprocess.run([sys.executable, "-m", "lobsim.cli", "convert", "tardis", str(src), "-o",
                        str(tmp_path / "o.parquet")], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1
    assert "Exception ignored" not in p.stderr and "UnicodeDecodeError" not in p.stderr, p.stderr
    assert p.stderr.startswith(f"lobsim: error: {src}:line 6: expected 8 fields, got 9 (and invalid UTF-8)")
    assert p.stderr.count("\n") == 1


# Already fixed before this list was worked (commit 13075ef); pinned here as well, for the other commands.

@pytest.mark.parametrize("argv", [["info", str(SAMPLE)], ["replay", str(SAMPLE)], ["calibrate", str(SAMPLE)]])
def test_closed_output_pipe_is_quiet(argv):
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "lobsim.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=ROOT)
    p.stdout.close()  # like `| head` that has already exited
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err


@pytest.mark.parametrize("command", ["info", "calibrate"])
def test_parquet_null_is_reported_at_its_event_not_line_1(capsys, tmp_path, command):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lobsim.data import read_parquet, write_parquet

    path = tmp_path / "null.parquet"
    write_parquet(read_parquet(SAMPLE), path)
    meta = pq.ParquetFile(path).metadata.metadata
    t = pq.read_table(path)
    price = t.column("price").to_pylist()
    price[70_001] = None
    t = t.set_column(t.schema.get_field_index("price"), "price", pa.array(price, type=t.schema.field("price").type))
    pq.write_table(t.replace_schema_metadata(meta), path, row_group_size=65_536)
    err = data_error(capsys, [command, str(path)])
    assert err == f"lobsim: error: {path}: event 70001: null value: column 'price'\n"
