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
