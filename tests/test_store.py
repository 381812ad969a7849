"""Parquet event store: exact round trip, metadata, chunked iteration, bad files."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lobsim
from lobsim.book import OrderBook
from lobsim.data import (
    Events,
    ValidationReport,
    iter_parquet,
    read_binance,
    read_dbn,
    read_lobster,
    read_metadata,
    read_parquet,
    read_tardis,
    synthetic,
    write_parquet,
)


@pytest.fixture(scope="module")
def events():
    ev = synthetic.generate_events(20_000, seed=3)
    ev.report.anomaly("unknown_order_id", line=12, detail="example")
    return ev


def test_round_trip_is_exact(tmp_path, events):
    path = tmp_path / "ev.parquet"
    write_parquet(events, path, row_group_size=4096)
    back = read_parquet(path)
    assert back.array.dtype == lobsim.EVENT_DTYPE
    assert back.array.tobytes() == events.array.tobytes()
    assert back.instrument == events.instrument
    assert back.report.counts == events.report.counts
    assert back.report.examples == events.report.examples
    ins, rep = read_metadata(path)
    assert ins.tick_size == events.instrument.tick_size and rep.total == 1


def test_chunked_iteration_replays_in_bounded_pieces(tmp_path, events):
    path = tmp_path / "ev.parquet"
    write_parquet(events, path, row_group_size=3000)
    chunks = list(iter_parquet(path, batch_rows=2500))
    assert max(len(c) for c in chunks) <= 2500 and len(chunks) >= 8
    assert np.concatenate(chunks).tobytes() == events.array.tobytes()
    whole, pieces = OrderBook(), OrderBook()
    whole.apply(events.array)
    for c in chunks:
        pieces.apply(c)
    assert all(np.array_equal(a, b) for a, b in zip(whole.depth(10), pieces.depth(10)))
    assert len(whole) == len(pieces) > 0


def test_empty_events_round_trip(tmp_path):
    ev = Events(lobsim.empty_events(0), lobsim.Instrument("X", "0.5", "1"), ValidationReport())
    write_parquet(ev, tmp_path / "e.parquet")
    assert len(read_parquet(tmp_path / "e.parquet")) == 0


def test_bad_files_name_the_problem(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(lobsim.DataError, match="junk.parquet.*Parquet"):
        read_parquet(junk)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), other)
    with pytest.raises(lobsim.DataError, match="missing columns"):
        read_parquet(other)
    cols = {name: pa.array(np.zeros(2, dtype=lobsim.EVENT_DTYPE.fields[name][0]))
            for name in lobsim.EVENT_DTYPE.names if name != "reserved"}
    cols["price"] = pa.array([1.5, 2.5])
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table(cols), wrong)
    with pytest.raises(lobsim.DataError, match="'price'"):
        read_parquet(wrong)
    cols["price"] = pa.array([1, 2], type=pa.int64())
    nometa = tmp_path / "nometa.parquet"
    pq.write_table(pa.table(cols), nometa)
    with pytest.raises(lobsim.DataError, match="no lobsim metadata"):
        read_parquet(nometa)
    for fn in (read_parquet, read_metadata, lambda p: next(iter_parquet(p))):
        with pytest.raises(lobsim.DataError, match="file not found") as ei:
            fn(tmp_path / "absent.parquet")
        assert ei.value.file == str(tmp_path / "absent.parquet")
    with pytest.raises(TypeError):
        write_parquet(np.zeros(1, dtype=lobsim.EVENT_DTYPE), tmp_path / "x.parquet")


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
READERS = {
    "lobster": lambda d: read_lobster(*sorted((d / "lobster" / "AAPL_10_head").glob("*_10.csv"))),
    "dbn-mbo": lambda d: read_dbn(d / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"),
    "dbn-mbp1": lambda d: read_dbn(next((d / "databento").glob("futures_mbp-1_*.dbn.zst"))),
    "binance": lambda d: read_binance(d / "binance" / "usdm" / "btcusdt_20240808.gz"),
    "tardis": lambda d: read_tardis(d / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"),
}


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the vendor captures in ../shared/data")
@pytest.mark.parametrize("reader", sorted(READERS))
def test_real_reader_round_trip(tmp_path, reader):
    ev = READERS[reader](SHARED)
    assert len(ev) > 0
    path = tmp_path / f"{reader}.parquet"
    write_parquet(ev, path, row_group_size=10_000)
    back = read_parquet(path)
    assert back.array.tobytes() == ev.array.tobytes()
    assert back.instrument == ev.instrument
    assert back.report.to_dict() == ev.report.to_dict()


def test_events_checks_its_array():
    inst = lobsim.Instrument("X", "0.01")
    base = np.zeros(4, dtype=lobsim.EVENT_DTYPE)
    base["price"] = [1, 2, 3, 4]
    strided = Events(base[::2], inst)  # made contiguous, same values
    assert strided.array.flags.c_contiguous and strided.array["price"].tolist() == [1, 3]
    with pytest.raises(TypeError, match="dtype"):
        Events(np.zeros(4, dtype=np.int64), inst)
    with pytest.raises(TypeError, match="numpy array"):
        Events([1, 2], inst)
    with pytest.raises(ValueError, match="1-dimensional"):
        Events(np.zeros((2, 2), dtype=lobsim.EVENT_DTYPE), inst)


# -- streaming writer, book type, metadata robustness -----------------------------------------

from lobsim import EventKind  # noqa: E402
from lobsim.data.store import ARROW_SCHEMA, COLUMNS, EventWriter, file_book_type  # noqa: E402


def binance_like():
    """An L2 stream that starts like a Binance capture: a trade print and CLEAR before any SET_LEVEL."""
    a = lobsim.empty_events(6)
    a["ts_exch"] = a["ts_local"] = np.arange(6)
    a["kind"] = [EventKind.TRADE, EventKind.CLEAR, EventKind.SET_LEVEL, EventKind.SET_LEVEL,
                 EventKind.SET_LEVEL, EventKind.SET_LEVEL]
    a["side"] = [1, 0, 1, -1, 1, -1]
    a["price"] = [100, 0, 99, 101, 98, 102]
    a["qty"] = [1, 0, 5, 3, 7, 2]
    return Events(a, lobsim.Instrument("BTCUSDT", "0.1", "0.001"), ValidationReport(source="capture.gz"))


def write_legacy(ev, path, row_group_size):
    """A file as earlier lobsim versions (or other tools) wrote it: metadata without "book_type"."""
    import json

    meta = json.dumps({"version": 1, **ev.metadata()}).encode()
    table = pa.table([pa.array(ev.array[name]) for name in COLUMNS], schema=ARROW_SCHEMA.with_metadata({b"lobsim": meta}))
    pq.write_table(table, path, row_group_size=row_group_size)


def test_book_type_is_stored_and_scanned_from_the_whole_file(tmp_path, events):
    ev = binance_like()
    write_parquet(ev, tmp_path / "l2.parquet", row_group_size=2)
    assert file_book_type(tmp_path / "l2.parquet") == "L2"
    assert pq.ParquetFile(tmp_path / "l2.parquet").metadata.num_row_groups == 3
    write_parquet(events, tmp_path / "l3.parquet")
    assert file_book_type(tmp_path / "l3.parquet") == "L3"
    # no "book_type" in the metadata: the kind column of every row group is scanned
    write_legacy(ev, tmp_path / "old_l2.parquet", row_group_size=2)
    assert file_book_type(tmp_path / "old_l2.parquet") == "L2"
    write_legacy(events, tmp_path / "old_l3.parquet", row_group_size=4096)
    assert file_book_type(tmp_path / "old_l3.parquet") == "L3"
    assert read_parquet(tmp_path / "old_l2.parquet").array.tobytes() == ev.array.tobytes()


def test_event_writer_streams_chunks_into_full_row_groups(tmp_path, events):
    path = tmp_path / "w.parquet"
    with EventWriter(path, events.instrument, events.report, row_group_size=3000) as w:
        for i in range(0, len(events), 777):  # chunks that do not divide the row group
            w.write(events.array[i:i + 777])
        w.write(lobsim.empty_events(0))
        assert not path.exists()  # written under a temporary name until closed
    assert w.rows == len(events)
    md = pq.ParquetFile(path).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [3000] * 6 + [2000]
    back = read_parquet(path)
    assert back.array.tobytes() == events.array.tobytes() and back.report.counts == events.report.counts
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(TypeError):
        w.write(np.zeros(3, dtype=np.int64))


def test_event_writer_failure_leaves_no_file_and_keeps_the_old_one(tmp_path, events):
    path = tmp_path / "keep.parquet"
    write_parquet(events, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with EventWriter(path, events.instrument) as w:
            w.write(events.array[:10])
            raise RuntimeError("interrupted")
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    with pytest.raises(OSError):
        EventWriter(tmp_path / "no" / "such" / "dir.parquet", events.instrument)


def _with_metadata(path, raw):
    cols = [pa.array(lobsim.empty_events(1)[name]) for name in COLUMNS]
    pq.write_table(pa.table(cols, schema=ARROW_SCHEMA.with_metadata({b"lobsim": raw})), path)
    return path


@pytest.mark.parametrize("raw", [
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "abc", "lot_size": "1"}}',
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "NaN", "lot_size": "1"}}',
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": 0.01, "lot_size": "1"}}',
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "0.01", "lot_size": [1]}}',
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "-1", "lot_size": "1"}}',
    '{"version": 1, "instrument": ["X"]}',
    '{"version": 1}',
    '{"version": 1, "instrument": {"symbol": "X", "tick_size": "0.01", "lot_size": "1"}, "report": [1]}',
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    "[1, 2]",
    "not json",
    '{"version": [[[[1]]]]}',
])
def test_corrupt_metadata_is_a_data_error_naming_the_file(tmp_path, raw):
    path = _with_metadata(tmp_path / "meta.parquet", raw)
    for fn in (read_metadata, read_parquet):
        with pytest.raises(lobsim.DataError) as e:
            fn(path)
        assert str(path) in str(e.value) and len(str(e.value)) < 400


def test_corrupt_book_type_is_a_data_error(tmp_path):
    path = _with_metadata(tmp_path / "bt.parquet", '{"version": 1, "instrument": {"symbol": "X", "tick_size": '
                                                   '"0.01", "lot_size": "1"}, "book_type": "L4"}')
    with pytest.raises(lobsim.DataError, match="bt.parquet.*book_type 'L4'"):
        file_book_type(path)


def test_huge_tick_size_in_metadata_round_trips_exactly(tmp_path):
    ins = lobsim.Instrument("X", "0.00000000000000000000000000000000000001")
    ev = Events(lobsim.empty_events(2), ins, ValidationReport())
    write_parquet(ev, tmp_path / "t.parquet")
    assert read_metadata(tmp_path / "t.parquet")[0] == ins


def test_directory_is_not_a_file(tmp_path):
    for fn in (read_parquet, read_metadata, file_book_type, lambda p: next(iter_parquet(p))):
        with pytest.raises(lobsim.DataError, match=f"{tmp_path}: is a directory"):
            fn(tmp_path)
