"""Interop: Events.to_arrow / to_pandas, vectorized Instrument conversions, other tools' Parquet files,
and an Events taken wherever an event array is."""
import os
from decimal import Decimal

import numpy as np
import pytest

import lobsim
from lobsim import DataError, Instrument
from lobsim.book import LevelBook, OrderBook, depth_series
from lobsim.book._book import book_type_for
from lobsim.data import Events, ValidationReport, iter_parquet, read_parquet, synthetic, write_parquet

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

INST = Instrument("SYN", "0.01", "0.001")


@pytest.fixture(scope="module")
def ev():
    return Events(synthetic.generate(5_000, seed=3), INST, ValidationReport(source="synthetic"))


# -- Instrument: whole arrays both ways ------------------------------------------------------------

@pytest.mark.parametrize("tick", ["0.01", "0.5", "0.0000001", "25", "0.25"])
def test_vectorized_round_trip_is_exact(tick):
    inst = Instrument("X", tick, tick)
    ticks = np.random.default_rng(1).integers(-10**12, 10**12, 20_000)
    ticks[:3] = [0, 1, -1]
    prices = inst.ticks_to_prices(ticks)
    assert prices.dtype == np.float64
    assert np.array_equal(inst.prices_to_ticks(prices), ticks)
    assert np.array_equal(inst.qtys_to_lots(inst.lots_to_qtys(ticks)), ticks)
    # each float is the one nearest to the exact decimal (as float(Decimal) rounds it)
    for t, p in zip(ticks[:50], prices[:50]):
        assert p == float(inst.ticks_to_price(int(t)))
    dec = inst.ticks_to_prices(ticks[:50], dtype="decimal")
    assert list(dec) == [inst.ticks_to_price(int(t)) for t in ticks[:50]]
    assert np.array_equal(inst.prices_to_ticks(dec), ticks[:50])


def test_vectorized_inputs_agree_with_scalar():
    assert INST.prices_to_ticks(np.array([100.25, -0.03, 0.0])).tolist() == [10025, -3, 0]
    assert INST.prices_to_ticks(["100.25", "1", "-0.5"]).tolist() == [10025, 100, -50]
    assert INST.prices_to_ticks(np.array([1, 2], dtype=np.uint8)).tolist() == [100, 200]
    assert INST.prices_to_ticks([Decimal("1.23")]).tolist() == [123]
    assert INST.qtys_to_lots(np.array([0.001, 2.5])).tolist() == [1, 2500]
    assert INST.ticks_to_prices([10025]).tolist() == [100.25]


@pytest.mark.parametrize("bad, match", [
    (np.array([1.0, 0.1 + 0.2]), r"0\.30000000000000004 \(index 1\) is not a multiple"),
    (np.array([0.015]), "not a multiple of 0.01"),
    (np.array([np.nan]), "not finite"),
    (np.array([np.inf]), "not finite"),
    (np.array([1e300]), "too large"),
    (np.array([4.6116860184273879e16]), "more than one multiple"),   # floats there are 8 apart: no one tick
    (["1.001"], r"not a multiple of 0.01 \(index 0\)"),
    (["abc"], "not a decimal"),
    (np.array([2**64 - 1], dtype=np.uint64), "too large"),
    (np.array([2**62], dtype=np.int64), "too large"),
    (np.array([True]), "boolean"),
])
def test_vectorized_refuses_what_is_not_exact(bad, match):
    with pytest.raises(DataError, match=match):
        INST.prices_to_ticks(bad)


def test_ticks_to_prices_refuses_a_float_that_cannot_come_back():
    with pytest.raises(DataError, match="index 1.*dtype='decimal'"):
        INST.ticks_to_prices([1, 2**62])
    assert INST.ticks_to_prices([2**63 - 1], dtype="decimal")[0] == Decimal("92233720368547758.07")
    with pytest.raises(DataError, match="not an integer|must be integers"):
        INST.ticks_to_prices(np.array([1.5]))


# -- Events.to_arrow / to_pandas --------------------------------------------------------------------

def test_to_arrow_is_exact_and_reads_back(ev, tmp_path):
    t = ev.to_arrow()
    assert t.schema.field("price").type == pa.decimal128(38, 2)
    assert t.schema.field("qty").type == pa.decimal128(38, 3)
    assert t.schema.field("ts_exch").type == pa.timestamp("ns", tz="UTC")
    assert t.column("price")[0].as_py() == INST.ticks_to_price(int(ev.array["price"][0]))
    assert t.column("ts_local").cast(pa.int64()).to_numpy().tolist() == ev.array["ts_local"].tolist()
    for real in (True, False):
        p = tmp_path / f"arrow-{real}.parquet"
        pq.write_table(ev.to_arrow(real=real), p)
        back = read_parquet(p)  # the instrument comes from the schema metadata
        assert back.array.tobytes() == ev.array.tobytes()
        assert back.instrument == INST and back.report.source == "synthetic"
        assert np.concatenate(list(iter_parquet(p, 999))).tobytes() == ev.array.tobytes()


def test_to_arrow_decimals_beyond_int64_stay_exact():
    a = lobsim.empty_events(2)
    a["price"] = [2**63 - 1, -(2**63)]
    t = Events(a, Instrument("X", "0.05")).to_arrow()
    assert t.column("price").to_pylist() == [Decimal(2**63 - 1) * Decimal("0.05"), Decimal(-(2**63)) * Decimal("0.05")]


def test_to_pandas_real_columns(ev):
    pd = pytest.importorskip("pandas")
    df = ev.to_pandas()
    assert str(df["ts_exch"].dtype) == "datetime64[ns, UTC]"
    assert df["ts_exch"].astype("int64").tolist() == ev.array["ts_exch"].tolist()
    assert df["price"].dtype == np.float64 and df["order_id"].dtype == np.uint64
    assert np.array_equal(INST.prices_to_ticks(df["price"].to_numpy()), ev.array["price"])
    assert np.array_equal(INST.qtys_to_lots(df["qty"].to_numpy()), ev.array["qty"])
    assert df.attrs["instrument"] == INST.to_dict()
    dec = ev.to_pandas(decimal=True)
    assert dec["price"].iloc[0] == INST.ticks_to_price(int(ev.array["price"][0]))
    raw = ev.to_pandas(real=False)
    assert raw["price"].tolist() == ev.array["price"].tolist()
    assert isinstance(df, pd.DataFrame)


# -- read_parquet of other tools' files -------------------------------------------------------------

def test_pandas_written_file_reads_back_identically(ev, tmp_path):
    pytest.importorskip("pandas")
    df = ev.to_pandas()
    df["order_id"] = df["order_id"].astype("int64")  # what pandas gives from plain Python ints
    p = tmp_path / "pandas.parquet"
    df.to_parquet(p)
    with pytest.raises(DataError, match="no lobsim metadata.*'price' holds real values.*instrument="):
        read_parquet(p)
    back = read_parquet(p, instrument=INST)
    assert back.array.tobytes() == ev.array.tobytes() and back.instrument == INST
    assert back.report.info == {"lobsim_metadata": False}
    chunks = list(iter_parquet(p, 777, instrument=INST))
    assert np.concatenate(chunks).tobytes() == ev.array.tobytes()
    raw = ev.to_pandas(real=False)
    raw["order_id"] = raw["order_id"].astype("int64")
    raw["side"] = raw["side"].astype("int64")
    raw.to_parquet(tmp_path / "raw.parquet")
    assert read_parquet(tmp_path / "raw.parquet", instrument=INST).array.tobytes() == ev.array.tobytes()


def _cols(n=3):
    a = lobsim.empty_events(n)
    return {name: pa.array(a[name]) for name in lobsim.EVENT_DTYPE.names if name != "reserved"}


def test_foreign_casts_are_exact_or_refused(tmp_path):
    p = tmp_path / "f.parquet"
    cols = _cols()
    cols["ts_exch"] = pa.array([1, 2, 3], type=pa.timestamp("us"))
    cols["kind"] = pa.array([1, 1, 1], type=pa.int64())
    pq.write_table(pa.table(cols), p)
    got = read_parquet(p, instrument=INST).array
    assert got["ts_exch"].tolist() == [1000, 2000, 3000] and got["kind"].tolist() == [1, 1, 1]

    cols = _cols()
    cols["order_id"] = pa.array([1, -5, 2], type=pa.int64())
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="event 1: value does not fit uint64.*'order_id'.*-5"):
        read_parquet(p, instrument=INST)

    cols = _cols()
    cols["side"] = pa.array([1, 300, -1], type=pa.int64())
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="event 1: value does not fit int8"):
        read_parquet(p, instrument=INST)

    cols = _cols()
    cols["price"] = pa.array([1.0, 2.0, 2.005])
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match=r"event 2: column 'price' cannot be converted exactly.*2\.005"):
        read_parquet(p, instrument=INST)
    with pytest.raises(DataError, match="event 2"):
        list(iter_parquet(p, 2, instrument=INST))

    cols = _cols()
    cols["qty"] = pa.array([Decimal("1.000"), Decimal("0.0015"), Decimal("2")], type=pa.decimal128(10, 4))
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="event 1: column 'qty'"):
        read_parquet(p, instrument=INST)

    cols = _cols()
    cols["ts_local"] = pa.array(["a", "b", "c"])
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="wrong column type.*'ts_local'"):
        read_parquet(p, instrument=INST)

    cols = _cols()
    cols["ts_exch"] = pa.array([np.datetime64("2500-01-01", "s")] * 3, type=pa.timestamp("s"))
    pq.write_table(pa.table(cols), p)
    with pytest.raises(DataError, match="'ts_exch'.*int64 nanoseconds"):
        read_parquet(p, instrument=INST)


def test_instrument_must_match_a_lobsim_file(ev, tmp_path):
    p = tmp_path / "ev.parquet"
    write_parquet(ev, p)
    assert read_parquet(p, instrument=INST).array.tobytes() == ev.array.tobytes()
    with pytest.raises(DataError, match="differs"):
        read_parquet(p, instrument=Instrument("SYN", "0.05", "0.001"))
    with pytest.raises(TypeError):
        read_parquet(p, instrument="SYN")


# -- an Events wherever an event array is taken ---------------------------------------------------------

def test_events_accepted_where_arrays_are(ev):
    with OrderBook() as a, OrderBook() as b:
        assert a.apply(ev) == b.apply(ev.array)
        assert all(np.array_equal(x, y) for x, y in zip(a.depth(5), b.depth(5)))
    s1, s2 = depth_series(ev, 3, batch_end_only=True), depth_series(ev.array, 3, batch_end_only=True)
    assert all(np.array_equal(x, y) for x, y in zip(s1[:5], s2[:5]))
    assert book_type_for(ev) is OrderBook
    lv = lobsim.empty_events(1)
    lv["kind"], lv["side"], lv["price"], lv["qty"] = lobsim.EventKind.SET_LEVEL, 1, 100, 1
    assert book_type_for(Events(lv, INST)) is LevelBook
    with LevelBook() as book:
        book.apply(Events(lv, INST))
        assert book.best_bid() == (100, 1)


def test_backtest_takes_events(ev):
    from lobsim.sim import Backtest

    r1 = Backtest(ev, None)
    r2 = Backtest(ev.array, None, instrument=INST)
    assert r1.instrument == r2.instrument == INST


def test_backtest_streams_another_tools_parquet_file_with_instrument(tmp_path):
    """A file written by pyarrow directly (int64 order_id, no lobsim metadata) runs in a
    Backtest once instrument= is given, and is refused with a clear DataError without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lobsim import Backtest

    ev = read_parquet(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sample.parquet"))
    a = ev.array[:20_000]
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({n: a[n].astype(np.int64) if n == "order_id" else a[n] for n in a.dtype.names}), path)
    bt = Backtest(str(path), None, instrument=ev.instrument, chunk_events=4_096)
    while bt.elapse(10**12):
        pass
    assert bt.result().events == len(a) and bt.result().instrument == ev.instrument
    with pytest.raises(DataError, match="instrument="):
        Backtest(str(path), None)
