"""read_dbn(status=): a status-schema file's STATUS events merged into a book stream by exchange time,
so halts reach the venue; chunked == one-shot; a file of another schema is refused."""
import numpy as np
import pytest

dbn = pytest.importorskip("databento_dbn")
pytest.importorskip("zstandard")

from lobsim import EventKind, TradingStatus  # noqa: E402
from lobsim.data.dbn import iter_dbn, read_dbn  # noqa: E402
from lobsim.data.events import collect  # noqa: E402
from lobsim.errors import DataError  # noqa: E402

from test_dbn_schemas import NS, TEST, mbp10_stream, write_mbp10  # noqa: E402

HALT, TRADING = 8, 7  # Databento status actions


def status_file(path, rows):
    """rows: (ts_event, action) of instrument 7 ("TEST")."""
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.STATUS, symbols=["TEST"], mappings=[])
    recs = []
    for ts, action in rows:
        r = dbn.StatusMsg(publisher_id=1, instrument_id=7, ts_event=ts, ts_recv=ts + 3,
                          is_trading=dbn.TriState("~"), is_quoting=dbn.TriState("~"))
        b = bytearray(bytes(r))
        b[24:26] = int(action).to_bytes(2, "little")
        recs.append(bytes(b))
    path.write_bytes(bytes(meta) + b"".join(recs))
    return path


def expected_merge(book, status):
    """Each STATUS after every book event whose running-max exchange time is <= its own (book first on ties)."""
    out, j = [], 0
    runmax = np.maximum.accumulate(book["ts_exch"])
    for i in range(len(book)):
        while j < len(status) and status[j]["ts_exch"] < runmax[i]:
            out.append(status[j])
            j += 1
        out.append(book[i])
    out.extend(status[j:])
    return np.array(out, dtype=book.dtype)


@pytest.fixture
def files(tmp_path):
    recs = mbp10_stream(1)
    book = write_mbp10(tmp_path / "book.dbn", recs)
    t0, t_mid, t_end = recs[0].ts_event, recs[len(recs) // 2].ts_event, recs[-1].ts_event
    st = status_file(tmp_path / "status.dbn", [
        (t0 - NS, TRADING),  # before the first book event
        (t_mid, HALT),  # equal to a book event's time: after it
        (t_mid + 1500, TRADING),  # between two book events
        (t_end + NS, HALT),  # after the last
    ])
    return book, st


def test_status_events_are_merged_by_exchange_time(files):
    book, st = files
    plain = read_dbn(book, instrument=TEST)
    status = read_dbn(st, instrument=TEST).array
    assert list(status["qty"]) == [TradingStatus.TRADING, TradingStatus.HALT, TradingStatus.TRADING,
                                   TradingStatus.HALT]
    merged = read_dbn(book, instrument=TEST, status=st)
    assert merged.array.tobytes() == expected_merge(plain.array, status).tobytes()
    kinds = merged.array["kind"]
    assert kinds[0] == EventKind.STATUS and kinds[-1] == EventKind.STATUS
    assert np.count_nonzero(kinds == EventKind.STATUS) == 4
    assert merged.report.info["status_events"] == 4 and merged.report.info["status_file"] == str(st)
    assert merged.report.counts == plain.report.counts


@pytest.mark.parametrize("chunk_rows", [1, 2, 7, 100, 1 << 20])
def test_status_merge_chunked_equals_one_shot(files, chunk_rows):
    book, st = files
    whole = read_dbn(book, instrument=TEST, status=st)
    got = collect(iter_dbn(book, instrument=TEST, status=st, chunk_rows=chunk_rows))
    assert got.array.tobytes() == whole.array.tobytes()
    assert got.report.counts == whole.report.counts


def test_status_merge_refuses_a_book_file_as_status(files):
    book, _ = files
    with pytest.raises(DataError, match="status-schema") as ei:
        read_dbn(book, instrument=TEST, status=book)
    assert str(book) in str(ei.value)


def test_a_merged_halt_reaches_the_venue(files):
    from lobsim import TimeInForce

    from test_venue_scenarios import drive, states

    book, st = files
    ev = read_dbn(book, instrument=TEST, status=st)
    halt = ev.array[(ev.array["kind"] == EventKind.STATUS) & (ev.array["qty"] == TradingStatus.HALT)][0]
    t_halt = int(halt["ts_exch"])  # the TRADING status follows 1500 ns later
    res, (during, after) = drive(ev, [(t_halt + 500, "buy", 1100, 1, TimeInForce.IOC),
                                      (t_halt + 3000, "buy", 1100, 1, TimeInForce.IOC)])
    assert states(res, during)[-1] == ("REJECTED", "HALTED")
    assert states(res, after)[-1][1] != "HALTED"


def test_convert_dbn_status_option(files, tmp_path, capsys):
    from lobsim.cli import main
    from lobsim.data import read_parquet

    book, st = files
    out = tmp_path / "merged.parquet"
    assert main(["convert", "dbn", str(book), "--symbol", "TEST", "--tick-size", "0.25", "--status", str(st),
                 "-o", str(out)]) == 0
    assert read_parquet(out).array.tobytes() == read_dbn(book, instrument=TEST, status=st).array.tobytes()
    with pytest.raises(SystemExit):
        main(["convert", "binance", "x.gz", "--status", str(st), "-o", str(out)])
    assert "--status is for dbn only" in capsys.readouterr().err
