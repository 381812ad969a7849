"""Tardis-style CSV readers: the fixtures in shared/data/tardis, synthetic files with exact
expectations, and bad input naming file, line and column."""
import csv
import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag
from lobsim.data.events import NO_SNAPSHOT, OUT_OF_ORDER_TS, SEQUENCE_GAP
from lobsim.data.tardis import _csv_format, _read_binance_depth_csv, _read_book_snapshot, read_tardis

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tardis"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"Tardis fixtures not found at {DATA}")

SNAP, END = int(Flag.SNAPSHOT), int(Flag.BATCH_END)
CL, SL, TR = int(EventKind.CLEAR), int(EventKind.SET_LEVEL), int(EventKind.TRADE)
L2_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"


def write(path, header, rows, gz=False):
    text = "\n".join([header, *rows]) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def rows(ev):
    return [(int(e["kind"]), int(e["side"]), int(e["price"]), int(e["qty"]), int(e["flags"])) for e in ev]


def replay_checked(events):
    """Dict-based L2 replay; returns (final book, number of batch ends after which it was crossed)."""
    book = {1: {}, -1: {}}
    crossed = 0
    for e in events:
        k = int(e["kind"])
        if k == CL:
            book = {1: {}, -1: {}}
        elif k == SL:
            side = book[int(e["side"])]
            if e["qty"]:
                side[int(e["price"])] = int(e["qty"])
            else:
                side.pop(int(e["price"]), None)
        if e["flags"] & END and book[1] and book[-1] and max(book[1]) >= min(book[-1]):
            crossed += 1
    return book, crossed


# -- synthetic incremental_book_L2 + trades ---------------------------------------------

BOOK_ROWS = [
    "x,BTC-X,1000,1100,true,bid,100.0,5",  # 2
    "x,BTC-X,1000,1100,true,bid,99.5,3",  # 3
    "x,BTC-X,1000,1100,true,ask,100.5,4",  # 4
    "x,BTC-X,2000,2100,false,ask,100.5,0",  # 5  batch: one message, two rows
    "x,BTC-X,2000,2100,false,ask,101.0,2",  # 6
    "x,BTC-X,3000,3100,false,bid,100.0,1",  # 7
    "x,BTC-X,4000,4100,true,bid,98.0,1",  # 8  resync snapshot after updates: CLEAR first
    "x,BTC-X,4000,4100,true,ask,98.5,6",  # 9
]
TRADE_ROWS = [
    "x,BTC-X,2000,2050,t1,buy,100.5,4",  # same exchange time as the batch at 2000: goes first
    "x,BTC-X,3500,3600,t2,sell,100.0,1",
    "x,BTC-X,3600,3650,t3,unknown,100.0,2",
]


def test_incremental_l2_snapshots_batches_and_trades(tmp_path):
    book = write(tmp_path / "book.csv", L2_HEADER, BOOK_ROWS)
    trades = write(tmp_path / "trades.csv", TRADES_HEADER, TRADE_ROWS)
    ev = read_tardis(book, trades)
    inst = ev.instrument
    assert (inst.symbol, str(inst.tick_size), str(inst.lot_size)) == ("BTC-X", "0.1", "1")
    t = int(Decimal(1) / inst.tick_size)  # ticks per unit

    def px(x):
        return int(Decimal(x) * t)

    assert rows(ev.array) == [
        (CL, 0, 0, 0, SNAP),
        (SL, 1, px("100.0"), 5, SNAP),
        (SL, 1, px("99.5"), 3, SNAP),
        (SL, -1, px("100.5"), 4, SNAP | END),
        (TR, 1, px("100.5"), 4, 0),
        (SL, -1, px("100.5"), 0, 0),
        (SL, -1, px("101.0"), 2, END),
        (SL, 1, px("100.0"), 1, END),
        (TR, -1, px("100.0"), 1, 0),
        (TR, 0, px("100.0"), 2, 0),
        (CL, 0, 0, 0, SNAP),
        (SL, 1, px("98.0"), 1, SNAP),
        (SL, -1, px("98.5"), 6, SNAP | END),
    ]
    assert list(ev.array["ts_exch"] // 1000) == [1000] * 4 + [2000] * 3 + [3000, 3500, 3600] + [4000] * 3
    assert ev.array["ts_local"][4] == 2050 * 1000  # microseconds -> ns
    assert not ev.report, str(ev.report)
    assert ev.report.info["snapshots"] == 2
    assert ev.report.info["trades_unknown_side"] == 1
    final, crossed = replay_checked(ev.array)
    assert final == {1: {px("98.0"): 1}, -1: {px("98.5"): 6}} and crossed == 0


def test_inferred_tick_is_the_finest_decimal_seen(tmp_path):
    ev = read_tardis(write(tmp_path / "b.csv", L2_HEADER, BOOK_ROWS))
    assert str(ev.instrument.tick_size) == "0.1"  # '99.5' needs one decimal
    assert ev.report.info["inferred"] == ["tick_size", "lot_size"]
    ev = read_tardis(write(tmp_path / "b.csv", L2_HEADER, BOOK_ROWS), tick_size="0.5")
    assert str(ev.instrument.tick_size) == "0.5"
    assert int(ev.array["price"][1]) == 200


def test_updates_before_first_snapshot_are_reported(tmp_path):
    path = write(tmp_path / "b.csv", L2_HEADER, ["x,BTC-X,5,6,false,bid,1.0,1", *BOOK_ROWS])
    ev = read_tardis(path)
    assert ev.report.counts[NO_SNAPSHOT] == 1
    with pytest.raises(DataError, match=NO_SNAPSHOT) as ei:
        read_tardis(path, strict=True)
    assert ei.value.line == 2


def test_out_of_order_timestamps(tmp_path):
    path = write(tmp_path / "b.csv", L2_HEADER, [*BOOK_ROWS[:4], "x,BTC-X,900,2200,false,bid,100.0,2"])
    ev = read_tardis(path)
    assert ev.report.counts[OUT_OF_ORDER_TS] == 1
    assert np.all(np.diff(ev.array["ts_exch"]) >= 0)
    with pytest.raises(DataError) as ei:
        read_tardis(path, strict=True)
    assert (ei.value.file, ei.value.line) == (str(path), 6)
    # counted: rows earlier than the latest time before them (both late rows, though only one steps back)
    path = write(tmp_path / "c.csv", L2_HEADER, [*BOOK_ROWS[:4], "x,BTC-X,900,2200,false,bid,100.0,2",
                                                 "x,BTC-X,950,2300,false,bid,100.0,3"])
    assert read_tardis(path).report.counts[OUT_OF_ORDER_TS] == 2


def test_crossed_book_is_counted(tmp_path):
    path = write(tmp_path / "b.csv", L2_HEADER, [*BOOK_ROWS[:3], "x,BTC-X,2000,2100,false,bid,101.0,2"])
    ev = read_tardis(path)
    assert ev.report.counts["crossed_book"] == 1
    assert f"{path}:5" in ev.report.examples["crossed_book"][0]


def test_gzip_csv_and_symbol_filter(tmp_path):
    other = [r.replace("BTC-X", "ETH-X") for r in BOOK_ROWS[:3]]
    path = write(tmp_path / "b.csv.gz", L2_HEADER, BOOK_ROWS + other, gz=True)
    with pytest.raises(DataError, match="several symbols"):
        read_tardis(path)
    ev = read_tardis(path, symbol="ETH-X")
    assert ev.instrument.symbol == "ETH-X" and len(ev) == 4


def test_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(L2_HEADER + "\n" + BOOK_ROWS[0] + "\n\n" + "x,BTC-X,1000,1100,true,bid,zz,3\n")
    with pytest.raises(DataError) as ei:
        read_tardis(path)
    assert ei.value.line == 4


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_row, match, column",
    [
        ("x,BTC-X,2000,2100,false,ask,1O1.0,2", "not a decimal number", "price"),
        ("x,BTC-X,2000,2100,false,ask,,2", "not a decimal number", "price"),
        ("x,BTC-X,2000,2100,false,ask,101.0,two", "not a decimal number", "amount"),
        ("x,BTC-X,2000,2100,false,buy,101.0,2", "unexpected value 'buy'", "side"),
        ("x,BTC-X,2000,2100,maybe,ask,101.0,2", "unexpected value 'maybe'", "is_snapshot"),
        ("x,BTC-X,2e3,2100,false,ask,101.0,2", "not an integer", "timestamp"),
        ("x,BTC-X,2000,,false,ask,101.0,2", "not an integer", "local_timestamp"),
        ("x,BTC-X,2000,2100,false,ask,-101.0,2", "must be positive", "price"),
        ("x,BTC-X,2000,2100,false,ask,101.0,-2", "must be non-negative", "amount"),
        ("x,BTC-X,2000,2100,false,ask,101.0", "expected 8 fields, got 7", None),
    ],
)
def test_bad_l2_row_names_file_line_and_column(tmp_path, bad_row, match, column):
    path = write(tmp_path / "bad.csv", L2_HEADER, [*BOOK_ROWS[:4], bad_row, *BOOK_ROWS[4:]])
    with pytest.raises(DataError, match=match) as ei:
        read_tardis(path)
    assert ei.value.file == str(path) and ei.value.line == 6
    if column:
        assert repr(column) in str(ei.value)


def test_bad_trade_side(tmp_path):
    trades = write(tmp_path / "t.csv", TRADES_HEADER, [TRADE_ROWS[0], "x,BTC-X,2,3,t9,ask,1.0,1"])
    with pytest.raises(DataError, match="'side': unexpected value 'ask'") as ei:
        read_tardis(None, trades)
    assert (ei.value.file, ei.value.line) == (str(trades), 3)


def test_missing_column_names_it(tmp_path):
    path = write(tmp_path / "b.csv", L2_HEADER.replace(",amount", ""), [r.rsplit(",", 1)[0] for r in BOOK_ROWS])
    with pytest.raises(DataError, match="unrecognised CSV header|missing column"):
        read_tardis(path)
    # a header that is recognisably L2 but lacks a column
    path = write(tmp_path / "c.csv", L2_HEADER.replace("local_timestamp,", ""),
                 [r.replace(",1100,", ",") for r in BOOK_ROWS[:3]])
    with pytest.raises(DataError, match="missing column 'local_timestamp'") as ei:
        read_tardis(path)
    assert (ei.value.file, ei.value.line) == (str(path), 1)


def test_truncated_gzip_and_empty_file(tmp_path):
    raw = gzip.compress(("\n".join([L2_HEADER] + BOOK_ROWS * 2000) + "\n").encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as ei:
        read_tardis(cut)
    assert ei.value.file == str(cut)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="no CSV header"):
        read_tardis(empty)
    with pytest.raises(DataError, match="file not found") as ei:
        read_tardis(tmp_path / "missing.csv")
    assert ei.value.file == str(tmp_path / "missing.csv")


# -- fixtures -----------------------------------------------------------------------------


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_data
def test_deribit_fixture():
    path = DATA / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    ev = read_tardis(path)
    src = _csv_rows(path)
    tick, lot = ev.instrument.tick_size, ev.instrument.lot_size
    assert ev.instrument.symbol == "BTC-PERPETUAL"
    a = ev.array
    assert a[0]["kind"] == CL and len(a) == len(src) + 1
    assert [int(x) for x in a["price"][1:]] == [int(Decimal(r["price"]) / tick) for r in src]
    assert [int(x) for x in a["qty"][1:]] == [int(Decimal(r["amount"]) / lot) for r in src]
    assert set(a["side"][1:]) == {-1 if r["side"] == "ask" else 1 for r in src}
    assert np.all(a["flags"] & SNAP) and int(np.sum(a["flags"] & END != 0)) == 1 and a["flags"][-1] & END
    assert list(a["ts_exch"][1:]) == [int(r["timestamp"]) * 1000 for r in src]
    assert list(a["ts_local"][1:]) == [int(r["local_timestamp"]) * 1000 for r in src]
    _, crossed = replay_checked(a)
    assert crossed == 0 and not ev.report


@needs_data
def test_bitmex_trades_fixture():
    path = DATA / "bitmex_trades_XBTUSD.csv"
    src = _csv_rows(path)
    for ev in (read_tardis(None, path), read_tardis(path)):  # detected from the header too
        a = ev.array
        assert len(a) == len(src) and np.all(a["kind"] == TR)
        assert list(a["side"]) == [{"buy": 1, "sell": -1}[r["side"]] for r in src]
        assert list(a["qty"]) == [int(Decimal(r["amount"]) / ev.instrument.lot_size) for r in src]


@needs_data
@pytest.mark.parametrize("name, depth", [("binance-futures_book_snapshot_5_BTCUSDT.csv", 5),
                                         ("binance-futures_book_snapshot_25_BTCUSDT.csv", 25)])
def test_book_snapshot_fixtures(name, depth):
    path = DATA / name
    assert _csv_format(path) == "book_snapshot"
    ev = read_tardis(path)
    src = _csv_rows(path)
    a = ev.array
    assert int(np.sum(a["kind"] == CL)) == len(src)
    assert len(a) == len(src) * (1 + 2 * depth)  # every level present in these files
    tick = ev.instrument.tick_size
    # replay row by row: best bid / ask equal the row's level 0
    book = {1: {}, -1: {}}
    n = 0
    for e in a:
        if e["kind"] == CL:
            book = {1: {}, -1: {}}
        else:
            book[int(e["side"])][int(e["price"])] = int(e["qty"])
        if e["flags"] & END:
            r = src[n]
            assert max(book[1]) == int(Decimal(r["bids[0].price"]) / tick)
            assert min(book[-1]) == int(Decimal(r["asks[0].price"]) / tick)
            assert len(book[1]) == len(book[-1]) == depth
            n += 1
    assert n == len(src) and not ev.report


@needs_data
def test_quotes_fixture():
    path = DATA / "huobi-dm-swap_quotes_BTC-USD.csv"
    ev = _read_book_snapshot(path)
    src = _csv_rows(path)
    a = ev.array
    assert len(a) == 3 * len(src)
    bids = a[(a["kind"] == SL) & (a["side"] == 1)]
    asks = a[(a["kind"] == SL) & (a["side"] == -1)]
    assert list(bids["qty"]) == [int(r["bid_amount"]) for r in src]
    assert list(asks["qty"]) == [int(r["ask_amount"]) for r in src]
    assert np.all(bids["price"] < asks["price"])


@needs_data
def test_binance_depth_csv_fixtures():
    snap, upd = DATA / "btcusdt-depth-snap.csv", DATA / "btcusdt-depth-update.csv"
    ev = read_tardis(snap)  # detected
    src = _csv_rows(snap)
    a = ev.array
    assert a[0]["kind"] == CL and len(a) == len(src) + 1
    assert np.all(a["flags"] & SNAP) and int(np.sum(a["flags"] & END != 0)) == 1
    assert list(a["ts_local"]) == list(a["ts_exch"])
    assert not ev.report
    alone = _read_binance_depth_csv(upd)
    assert alone.report.counts[NO_SNAPSHOT] == len(_csv_rows(upd))
    # the two fixtures do not chain (README): reading them in order must report the gap
    both = _read_binance_depth_csv([snap, upd])
    assert both.report.counts[SEQUENCE_GAP] == 1
    assert f"{upd}:2" in both.report.examples[SEQUENCE_GAP][0]


BD_HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"


def test_binance_depth_csv_sequencing(tmp_path):
    path = write(tmp_path / "d.csv", BD_HEADER, [
        "BTCUSDT,1000,100,100,b,snap,10.0,1.000,-1",
        "BTCUSDT,1000,100,100,a,snap,11.0,1.000,-1",
        "BTCUSDT,1001,90,95,b,set,10.0,9.000,89",  # stale: u < 100
        "BTCUSDT,1002,99,101,b,set,10.0,2.000,98",  # bridges 100
        "BTCUSDT,1002,99,101,a,set,11.0,0.000,98",
        "BTCUSDT,1003,102,103,a,set,11.5,3.000,101",  # chains
        "BTCUSDT,1004,105,106,b,set,9.5,1.000,104",  # gap: pu 104 != 103
    ])
    ev = _read_binance_depth_csv(path, lot_size="0.001")
    assert ev.report.info["stale_batches_dropped"] == 1
    assert ev.report.counts[SEQUENCE_GAP] == 1
    assert f"{path}:8" in ev.report.examples[SEQUENCE_GAP][0]
    final, crossed = replay_checked(ev.array)
    assert final == {1: {100: 2000, 95: 1000}, -1: {115: 3000}} and crossed == 0
    assert [int(f) for f in ev.array["flags"]] == [SNAP, SNAP, SNAP | END, 0, END, END, END]
    with pytest.raises(DataError) as ei:
        _read_binance_depth_csv(path, strict=True)
    assert ei.value.line == 8


def test_binance_depth_csv_names_file_and_line_across_files(tmp_path):
    a = write(tmp_path / "a.csv", BD_HEADER, ["BTCUSDT,1000,1,11,b,snap,100.0,1,0",
                                              "BTCUSDT,1000,1,11,a,snap,101.0,1,0"])
    b = write(tmp_path / "b.csv", BD_HEADER, ["BTCUSDT,2000,11,12,b,set,100.0,2,10",
                                              "BTCUSDT,1500,13,14,b,set,100.0,3,12"])
    ev = _read_binance_depth_csv([a, b])
    assert ev.report.counts == {OUT_OF_ORDER_TS: 1}
    assert ev.report.examples[OUT_OF_ORDER_TS][0].startswith(f"{b}:3:")
    with pytest.raises(DataError) as ei:
        _read_binance_depth_csv([a, b], strict=True)
    assert (ei.value.file, ei.value.line) == (str(b), 3)
