"""iter_tardis: chunked == one-shot (bit-identical arrays, merged reports) on every Tardis fixture the
reader accepts and on large generated inputs read in small CSV blocks (so batches, snapshot runs and
the book/trades merge straddle blocks and chunks); progress; the streaming tick inference."""
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lobsim.data.tardis as tardis
from lobsim import DataError, EventKind
from lobsim.data.events import CROSSED_BOOK, NO_SNAPSHOT, OUT_OF_ORDER_TS, ValidationReport, collect
from lobsim.data.tardis import _iter_binance_depth_csv, _read_binance_depth_csv, iter_tardis, read_tardis

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tardis"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"Tardis fixtures not found at {DATA}")

L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
CHUNKS = [1, 2, 3, 5, 7, 11, 13, 97, 1000]


def assert_stream_equal(one, chunks, chunk_rows=None):
    """The chunked contract: every chunk but the last has chunk_rows events, the concatenation equals the
    one-shot array byte for byte, the instrument is the same, the merged report has the same counts, info and
    first example per reason."""
    assert chunks, "at least one chunk"
    if chunk_rows is not None:
        assert all(len(c) == chunk_rows for c in chunks[:-1]), [len(c) for c in chunks]
        assert 0 < len(chunks[-1]) <= chunk_rows or len(chunks) == 1
    whole = collect(iter(chunks))
    assert whole.array.tobytes() == one.array.tobytes()
    assert np.array_equal(whole.array, one.array)
    assert all(c.instrument == one.instrument for c in chunks)
    merged = ValidationReport.merged([c.report for c in chunks])
    assert merged.counts == one.report.counts
    assert merged.info == one.report.info
    for reason, ex in one.report.examples.items():
        assert merged.examples[reason][0] == ex[0]


def check_chunked(read, iterate, *args, sizes=CHUNKS, **kw):
    one = read(*args, **kw)
    for k in sizes:
        assert_stream_equal(one, list(iterate(*args, chunk_rows=k, **kw)), k)
    return one


FIXTURES = ["deribit_incremental_book_L2_BTC-PERPETUAL.csv", "binance-futures_book_snapshot_5_BTCUSDT.csv",
            "binance-futures_book_snapshot_25_BTCUSDT.csv", "bitmex_trades_XBTUSD.csv",
            "huobi-dm-swap_quotes_BTC-USD.csv", "btcusdt-depth-snap.csv", "btcusdt-depth-update.csv"]


@needs_data
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_chunked_equals_one_shot(name):
    one = check_chunked(read_tardis, iter_tardis, DATA / name)
    assert len(one)


@needs_data
def test_fixture_pairs_chunked():
    with pytest.raises(DataError, match="differs"):
        read_tardis(DATA / "deribit_incremental_book_L2_BTC-PERPETUAL.csv", DATA / "bitmex_trades_XBTUSD.csv")
    check_chunked(read_tardis, iter_tardis, DATA / "binance-futures_book_snapshot_5_BTCUSDT.csv",
                  DATA / "bitmex_trades_XBTUSD.csv", symbol="BTCUSDT")
    paths = [DATA / "btcusdt-depth-snap.csv", DATA / "btcusdt-depth-update.csv"]
    one = check_chunked(_read_binance_depth_csv, _iter_binance_depth_csv, paths)
    assert one.report.counts


# -- large generated inputs -------------------------------------------------------------------


def _big_inputs(tmp_path, n_book=6000, n_trades=2500, seed=3):
    """A book with snapshot runs (the first, then resyncs), multi-row batches, out-of-order times, a crossed
    moment and blank lines, and trades sharing many timestamps with book batches."""
    rnd = random.Random(seed)
    book = [L2_HEADER]
    t = 1_000_000
    rows = 0

    def snapshot(t):
        out = []
        for i in range(40):
            out.append(f"x,BTC-X,{t + (i % 3)},{t + 50},true,bid,{1000 - i * 0.5:.1f},{1 + i}")
            out.append(f"x,BTC-X,{t + (i % 3)},{t + 50},true,ask,{1000.5 + i * 0.5:.1f},{2 + i}")
        return out

    book += snapshot(t)
    while rows < n_book:
        t += rnd.choice([0, 1, 5, 100])
        if rnd.random() < 0.003:
            book += snapshot(t)
            t += 3
            continue
        k = rnd.choice([1, 1, 2, 3, 8])
        late = rnd.random() < 0.01
        for _ in range(k):
            side = rnd.choice(["bid", "ask"])
            px = (990 + rnd.randrange(0, 20) * 0.5) if side == "bid" else (1000.5 + rnd.randrange(0, 20) * 0.5)
            if rnd.random() < 0.002:
                px += 30 if side == "bid" else -30  # crosses the book for a moment
            ts = t - 7 if late else t
            book.append(f"x,BTC-X,{ts},{t + 40},false,{side},{px:.1f},{rnd.choice([0, 1, 2, 5, 10])}")
            rows += 1
        if rnd.random() < 0.002:
            book.append("")
    trades = [TRADES_HEADER]
    t2 = 1_000_000
    for i in range(n_trades):
        t2 += rnd.choice([0, 1, 2, 5, 100, 300])
        ts = t2 - 3 if rnd.random() < 0.01 else t2
        trades.append(f"x,BTC-X,{ts},{t2 + 30},t{i},{rnd.choice(['buy', 'sell', 'unknown'])},"
                      f"{1000 + rnd.randrange(-5, 5) * 0.5:.1f},{rnd.choice([1, 2, 3])}")
    b = tmp_path / "book.csv"
    b.write_text("\n".join(book) + "\n")
    tr = tmp_path / "trades.csv"
    tr.write_text("\n".join(trades) + "\n")
    return b, tr


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return _big_inputs(tmp_path_factory.mktemp("big"))


@pytest.fixture
def small_blocks(monkeypatch):
    """CSV blocks of ~1 KB: every batch / merge state crosses many blocks."""
    monkeypatch.setattr(tardis, "BLOCK_BYTES", 1024)


def test_big_input_is_what_it_should_be(big):
    ev = read_tardis(*big)
    a = ev.array
    assert ev.report.counts[OUT_OF_ORDER_TS] > 0 and ev.report.counts[CROSSED_BOOK] > 0
    assert ev.report.info["snapshots"] > 1 and ev.report.info["book_blank_lines"] > 0
    assert np.all(np.diff(a["ts_exch"]) >= 0)
    # at equal ts_exch, trades go first
    tr = a["kind"] == EventKind.TRADE
    same = a["ts_exch"][1:] == a["ts_exch"][:-1]
    assert not np.any(same & ~tr[:-1] & tr[1:])
    # the merge is a permutation of the two streams read alone
    book, trades = read_tardis(big[0]), read_tardis(None, big[1], tick_size="0.1", lot_size="1")
    assert len(a) == len(book) + len(trades)
    assert np.array_equal(a[~tr], book.array) and np.array_equal(a[tr], trades.array)


@pytest.mark.parametrize("chunk_rows", [1, 7, 13, 4099])
def test_big_chunked_equals_one_shot(big, small_blocks, chunk_rows):
    kw = {"tick_size": "0.1", "lot_size": "1"}  # tiny first blocks: no inference from them
    one = read_tardis(*big, **kw)
    assert_stream_equal(one, list(iter_tardis(*big, chunk_rows=chunk_rows, **kw)), chunk_rows)


def test_block_size_does_not_change_the_result(big, monkeypatch):
    kw = {"tick_size": "0.1", "lot_size": "1"}
    ref = read_tardis(*big, **kw)
    for size in (512, 1500, 8191, 1 << 16):
        monkeypatch.setattr(tardis, "BLOCK_BYTES", size)
        ev = read_tardis(*big, **kw)
        assert ev.array.tobytes() == ref.array.tobytes(), size
        assert ev.report.counts == ref.report.counts and ev.report.info == ref.report.info
        for reason, ex in ref.report.examples.items():
            assert ev.report.examples[reason][0] == ex[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_rows=st.integers(1, 5000), block=st.integers(300, 5000))
def test_big_chunked_random_sizes(big, monkeypatch, chunk_rows, block):
    monkeypatch.setattr(tardis, "BLOCK_BYTES", block)
    kw = {"tick_size": "0.1", "lot_size": "1"}
    one = read_tardis(*big, **kw)
    assert_stream_equal(one, list(iter_tardis(*big, chunk_rows=chunk_rows, **kw)), chunk_rows)


def test_trades_only_and_book_only_chunked(big, small_blocks):
    kw = {"tick_size": "0.1", "lot_size": "1"}
    check_chunked(read_tardis, iter_tardis, big[0], sizes=[1, 13, 5000], **kw)
    check_chunked(read_tardis, iter_tardis, None, big[1], sizes=[1, 13, 5000], **kw)


def test_progress_reaches_the_file_sizes(big, small_blocks, tmp_path):
    import gzip

    seen = []
    chunks = list(iter_tardis(*big, chunk_rows=1000, progress=seen.append))
    assert len(seen) >= len(chunks) and seen == sorted(seen)
    assert seen[-1] == sum(p.stat().st_size for p in big)
    gz = tmp_path / "book.csv.gz"
    gz.write_bytes(gzip.compress(big[0].read_bytes()))
    seen = []
    list(iter_tardis(gz, chunk_rows=1000, progress=seen.append))
    assert seen == sorted(seen) and seen[-1] == gz.stat().st_size


def test_no_snapshot_reported_once_across_blocks(tmp_path, small_blocks):
    rows = [f"x,BTC-X,{1000 + i},{1100 + i},false,bid,{100 + i % 7}.5,{i % 3}" for i in range(300)]
    path = tmp_path / "b.csv"
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    one = check_chunked(read_tardis, iter_tardis, path, sizes=[1, 17], tick_size="0.5")
    assert one.report.counts[NO_SNAPSHOT] == 300
    assert one.report.examples[NO_SNAPSHOT][0].startswith(f"{path}:2:")
    rows += [f"x,BTC-X,5000,5100,true,bid,99.5,{1 + i}" for i in range(100)]
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    one = check_chunked(read_tardis, iter_tardis, path, sizes=[1, 17], tick_size="0.5")
    assert one.report.counts[NO_SNAPSHOT] == 300 and one.report.info["snapshots"] == 1


def test_inferred_tick_from_the_first_block_and_a_later_finer_price(tmp_path, small_blocks):
    rows = [f"x,BTC-X,{1000 + i},{1100 + i},{'true' if i < 2 else 'false'},bid,{100 + i % 7}.5,1"
            for i in range(200)]
    rows.append("x,BTC-X,9000,9100,false,bid,100.25,1")
    path = tmp_path / "b.csv"
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match="pass tick_size=") as ei:
        read_tardis(path)
    assert (ei.value.file, ei.value.line) == (str(path), len(rows) + 1)
    ev = read_tardis(path, tick_size="0.05")
    assert str(ev.instrument.tick_size) == "0.05" and int(ev.array["price"][-1]) == 2005


def test_a_bad_row_in_a_later_block_names_its_line(tmp_path, small_blocks):
    rows = [f"x,BTC-X,{1000 + i},{1100 + i},false,bid,{100 + i % 7}.5,1" for i in range(300)]
    rows[250] = rows[250].replace(",bid,", ",bud,")
    path = tmp_path / "b.csv"
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match="unexpected value 'bud'") as ei:
        read_tardis(path)
    assert ei.value.line == 252
    rows[250] = rows[250].replace(",bud,", ",bid,") + ",extra"
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match="expected 8 fields, got 9") as ei:
        read_tardis(path)
    assert ei.value.line == 252


def test_symbol_change_in_a_later_block_is_several_symbols(tmp_path, small_blocks):
    rows = [f"x,BTC-X,{1000 + i},{1100 + i},false,bid,{100 + i % 7}.5,1" for i in range(300)]
    rows[280] = rows[280].replace("BTC-X", "ETH-X")
    path = tmp_path / "b.csv"
    path.write_text("\n".join([L2_HEADER, *rows]) + "\n")
    with pytest.raises(DataError, match=r"several symbols \(BTC-X, ETH-X\)"):
        read_tardis(path)
    ev = read_tardis(path, symbol="eth-x", tick_size="0.5")
    assert len(ev) == 1 and ev.instrument.symbol == "eth-x"
