"""Tests of the LOBSTER reader (lobsim.data.lobster).

Hand-written message/orderbook files pin the event mapping with expectations
worked out by hand; the vendor's samples in ../shared/data/lobster are replayed
through the C book (depth_series) and compared with the vendor's own book after
every message, and the events are checked against an independent reading of
the message file.
"""
import datetime
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from lobsim import DataError, EventKind, Flag, TradingStatus
from lobsim.book import depth_series
from lobsim.data import read_lobster
from lobsim.data.events import HALT, OUT_OF_ORDER_TS, UNKNOWN_ORDER_ID
from lobsim.data.lobster import SIZE_MISMATCH, SUBTICK_TRADE, SYNTHETIC_ID_BASE

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"LOBSTER sample data not found at {DATA}")

K = EventKind
SNAP, END, HID = int(Flag.SNAPSHOT), int(Flag.BATCH_END), int(Flag.HIDDEN)
S0 = SYNTHETIC_ID_BASE
NY = ZoneInfo("America/New_York")
STEM = "TEST_2012-06-21_34200000_57600000"
BOOK_KINDS = (K.ADD, K.REDUCE, K.DELETE, K.EXECUTE)


def midnight_ns(date):
    """UTC epoch ns of New York midnight on `date` (independent of the reader)."""
    return int(datetime.datetime(date.year, date.month, date.day, tzinfo=NY).timestamp()) * 10**9


def write_pair(tmp_path, messages, books, levels=1, stem=STEM):
    """Write a LOBSTER message/orderbook pair from lists of lines; return the message path."""
    m = tmp_path / f"{stem}_message_{levels}.csv"
    o = tmp_path / f"{stem}_orderbook_{levels}.csv"
    m.write_text("".join(line + "\n" for line in messages))
    o.write_text("".join(line + "\n" for line in books))
    return m


def rows(ev):
    """Events as tuples (kind, order_id, side, price, qty, flags) for exact comparison."""
    a = ev.array
    return [(int(k), int(i), int(s), int(p), int(q), int(f))
            for k, i, s, p, q, f in zip(a["kind"], a["order_id"], a["side"], a["price"], a["qty"], a["flags"])]


def batches(array):
    """Split an event array at BATCH_END flags -> list of slices."""
    ends = np.flatnonzero(array["flags"] & END)
    starts = np.r_[0, ends[:-1] + 1]
    return [slice(int(s), int(e) + 1) for s, e in zip(starts, ends)]


# --------------------------------------------------------------------------- hand-made files
# Level 1. Prices USD*10000 (1000000 = $100.00 = 10000 ticks of 0.01).
SCENARIO_MSGS = [
    "34200.000000001,1,1,10,1000000,1",  # add order 1: bid 100.00 x 10
    "34200.5,3,77,30,1000000,1",  # delete of order 77, never added: pre-existing liquidity
    "34201,4,1,10,1000000,1",  # order 1 executed in full: the bid level empties
    "34201.25,5,0,5,1000000,1",  # hidden execution: a print, no book change
    "34202,2,88,5,990000,1",  # partial cancel of unknown 88 at the revealed level 99.00
    "34203,7,0,0,-1,-1",  # trading halt
]
SCENARIO_BOOKS = [
    "1010000,50,1000000,40",
    "1010000,50,1000000,10",
    "1010000,50,990000,25",  # the vendor shows 99.00 x 25: depth no message carried
    "1010000,50,990000,25",
    "1010000,50,990000,20",
    "1010000,50,990000,20",
]


def test_scenario_events_exactly(tmp_path):
    ev = read_lobster(write_pair(tmp_path, SCENARIO_MSGS, SCENARIO_BOOKS))
    expected = [
        # seed = row 1 with message 1 undone: bid 100.00 x 30, ask 101.00 x 50
        (K.ADD, S0, 1, 10000, 30, SNAP),
        (K.ADD, S0 + 1, -1, 10100, 50, SNAP | END),
        (K.ADD, 1, 1, 10000, 10, END),
        (K.REDUCE, S0, 1, 10000, 30, END),  # unknown 77 consumed from the seed liquidity
        (K.EXECUTE, 1, 1, 10000, 10, 0),
        (K.TRADE, 1, -1, 10000, 10, 0),  # aggressor = -direction (a sell hit the bid)
        (K.ADD, S0 + 2, 1, 9900, 25, SNAP | END),  # revealed level
        (K.TRADE, 0, -1, 10000, 5, HID | END),
        (K.REDUCE, S0 + 2, 1, 9900, 5, END),
        (K.STATUS, 0, 0, 0, int(TradingStatus.HALT), END),
    ]
    assert rows(ev) == [tuple(int(x) for x in e) for e in expected]
    base = midnight_ns(datetime.date(2012, 6, 21))
    secs = [34200 * 10**9 + 1, 34200_500_000_000, 34201 * 10**9, 34201_250_000_000, 34202 * 10**9, 34203 * 10**9]
    per_event = [secs[0]] * 3 + [secs[1]] + [secs[2]] * 3 + secs[3:]
    assert ev.array["ts_exch"].tolist() == [base + s for s in per_event]
    assert (ev.array["ts_local"] == ev.array["ts_exch"]).all()
    # 2012-06-21 is daylight time: 09:30 New York = 13:30 UTC
    assert ev.array["ts_exch"][0] == int(datetime.datetime(2012, 6, 21, 13, 30, tzinfo=datetime.timezone.utc)
                                         .timestamp()) * 10**9 + 1
    r = ev.report
    assert r.counts[UNKNOWN_ORDER_ID] == 2 and r.counts[HALT] == 1 and r.total == 3
    assert r.info["depth_revealed"] == 1
    assert r.info["unknown_from_synthetic"] == 2
    assert r.info["rows"] == 6 and r.info["levels"] == 1
    assert r.info["symbol"] == "TEST" and r.info["date"] == "2012-06-21"
    assert ev.instrument.symbol == "TEST"
    d = depth_series(ev.array, 1, batch_end_only=True)
    assert d.bid_px[1:, 0].tolist() == [10000, 10000, 9900, 9900, 9900, 9900]
    assert d.bid_qty[1:, 0].tolist() == [40, 10, 25, 25, 20, 20]
    assert d.ask_qty[1:, 0].tolist() == [50] * 6


def test_scenario_strict_raises_on_first_unknown(tmp_path):
    path = write_pair(tmp_path, SCENARIO_MSGS, SCENARIO_BOOKS)
    with pytest.raises(DataError) as e:
        read_lobster(path, strict=True)
    assert e.value.line == 2 and e.value.reason == UNKNOWN_ORDER_ID
    assert str(path) in str(e.value) and "77" in str(e.value)


def test_zip_and_guessed_orderbook_read_the_same(tmp_path):
    path = write_pair(tmp_path, SCENARIO_MSGS, SCENARIO_BOOKS)
    ob = path.with_name(path.name.replace("_message_", "_orderbook_"))
    z = tmp_path / "LOBSTER_SampleFile_TEST_2012-06-21_1.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(ob, ob.name)
        zf.write(path, path.name)
        zf.writestr("ReadMe.txt", "not a LOBSTER file")
    a = read_lobster(path)
    b = read_lobster(path, ob)
    c = read_lobster(z)
    assert rows(a) == rows(b) == rows(c)
    assert (a.array == c.array).all()
    assert c.report.source.startswith(str(z)) and path.name in c.report.source


def test_stale_level_is_forgotten_and_its_later_messages_are_expected(tmp_path):
    # order 5 rests at 100.00; a better bid pushes 100.00 out of the level-1 view, where order 5 is
    # cut to 4 without a message; when 100.00 shows again the vendor says 4, not our 10
    msgs = [
        "34200.1,1,5,10,1000000,1",
        "34200.2,1,6,3,1005000,1",
        "34200.3,3,6,3,1005000,1",
        "34200.4,3,5,4,1000000,1",  # order 5 deleted with its true remaining 4
    ]
    books = [
        "1010000,50,1000000,10",
        "1010000,50,1005000,3",
        "1010000,50,1000000,4",
        "1010000,50,-9999999999,0",
    ]
    ev = read_lobster(write_pair(tmp_path, msgs, books))
    assert rows(ev) == [
        (K.ADD, S0, -1, 10100, 50, SNAP | END),
        (K.ADD, 5, 1, 10000, 10, END),
        (K.ADD, 6, 1, 10050, 3, END),
        (K.DELETE, 6, 1, 10050, 3, 0),
        (K.DELETE, 5, 1, 10000, 10, SNAP),  # forgotten: it changed out of view
        (K.ADD, S0 + 1, 1, 10000, 4, SNAP | END),  # what the vendor shows instead
        (K.REDUCE, S0 + 1, 1, 10000, 4, END),  # order 5's own delete takes it from there
    ]
    r = ev.report
    assert r.total == 0  # order 5 was added in the file: nothing unknown, nothing to warn about
    assert r.info["stale_levels_reset"] == 1 and r.info["stale_orders_forgotten"] == 1
    assert r.info["messages_on_forgotten_orders"] == 1
    d = depth_series(ev.array, 1, batch_end_only=True)
    assert d.bid_qty[1:, 0].tolist() == [10, 3, 4, 0]


def test_level_two_reveal_drops_vanished_level_and_adds_new_one(tmp_path):
    # order 2 rests at 99.00 (level 2); a better bid pushes 99.00 out of the level-2 view, where
    # order 2 is cancelled without a message; when the better bid goes, the vendor shows 100.00
    # and 98.00: 99.00 is gone and 98.00 is depth no message carried
    msgs = ["34200.1,1,2,10,990000,1", "34200.2,1,1,2,1005000,1", "34200.3,3,1,2,1005000,1"]
    books = [
        "1010000,5,1000000,10,9999999999,0,990000,10",
        "1010000,5,1005000,2,9999999999,0,1000000,10",
        "1010000,5,1000000,10,9999999999,0,980000,7",
    ]
    ev = read_lobster(write_pair(tmp_path, msgs, books, levels=2))
    r = rows(ev)
    assert r[:5] == [
        (K.ADD, S0, 1, 10000, 10, SNAP),  # seed: row 1 with message 1 undone
        (K.ADD, S0 + 1, -1, 10100, 5, SNAP | END),
        (K.ADD, 2, 1, 9900, 10, END),
        (K.ADD, 1, 1, 10050, 2, END),
        (K.DELETE, 1, 1, 10050, 2, 0),
    ]
    inferred = sorted((k, i, s, p, q, f & ~END) for k, i, s, p, q, f in r[5:])
    assert inferred == sorted([(K.DELETE, 2, 1, 9900, 10, SNAP), (K.ADD, S0 + 2, 1, 9800, 7, SNAP)])
    assert r[-1][5] & END and sum(f & END for *_, f in r) == 4 * END
    d = depth_series(ev.array, 2, batch_end_only=True)
    assert d.bid_px[1:].tolist() == [[10000, 9900], [10050, 10000], [10000, 9800]]
    assert d.bid_qty[1:].tolist() == [[10, 10], [2, 10], [10, 7]]
    info = ev.report.info
    assert info["depth_revealed"] == 1 and info["stale_levels_reset"] == 1 and info["stale_orders_forgotten"] == 1
    assert ev.report.total == 0


def test_unknown_execute_beyond_synthetic_forgets_stale_orders(tmp_path):
    # 100.00 holds seed 5 + order 2 (3). An unknown order executes 6: more than the synthetic 5,
    # so order 2 must be stale; it is forgotten into synthetic liquidity and the level drops by 6
    msgs = ["34200.1,1,2,3,1000000,1", "34200.2,4,99,6,1000000,1"]
    books = ["1010000,1,1000000,8", "1010000,1,1000000,2"]
    ev = read_lobster(write_pair(tmp_path, msgs, books))
    assert rows(ev)[3:] == [
        (K.DELETE, 2, 1, 10000, 3, SNAP),
        (K.ADD, S0 + 2, 1, 10000, 3, SNAP),
        (K.EXECUTE, S0, 1, 10000, 5, 0),
        (K.EXECUTE, S0 + 2, 1, 10000, 1, 0),
        (K.TRADE, 99, -1, 10000, 6, END),
    ]
    assert ev.report.counts[UNKNOWN_ORDER_ID] == 1
    assert ev.report.info["unknown_after_forgetting_stale"] == 1
    assert depth_series(ev.array, 1, batch_end_only=True).bid_qty[-1, 0] == 2


def test_size_mismatch_keeps_the_level_moving_by_the_message_size(tmp_path):
    msgs = ["34200.1,1,2,3,1000000,1", "34200.2,2,2,5,1000000,1"]  # cancels 5 of an order of 3
    books = ["1010000,1,1000000,13", "1010000,1,1000000,8"]
    ev = read_lobster(write_pair(tmp_path, msgs, books))
    assert ev.report.counts[SIZE_MISMATCH] == 1
    assert depth_series(ev.array, 1, batch_end_only=True).bid_qty[-1, 0] == 8
    with pytest.raises(DataError, match="line 2"):
        read_lobster(write_pair(tmp_path, msgs, books), strict=True)


def test_times_exact_ns_truncation_and_winter_offset(tmp_path):
    msgs = [
        "34200,1,1,1,1000000,1",  # no fraction
        "34200.123456789123,1,2,1,1000000,1",  # 12 decimals: truncated to ns
        "34200.1234567891234,1,3,1,1000000,1",  # 13 decimals: the slow exact path
        "34199.999999999,1,4,1,1000000,1",  # time goes back
        "34200.000000001,1,5,1,1000000,1",  # later than the row before, still before the latest time seen
    ]
    books = ["1010000,1,1000000,1", "1010000,1,1000000,2", "1010000,1,1000000,3", "1010000,1,1000000,4",
             "1010000,1,1000000,5"]
    ev = read_lobster(write_pair(tmp_path, msgs, books), date="2012-01-03")  # standard time
    base = midnight_ns(datetime.date(2012, 1, 3))
    assert base % (86400 * 10**9) == 5 * 3600 * 10**9  # New York midnight = 05:00 UTC in winter
    ts = ev.array["ts_exch"][ev.array["kind"] == K.ADD][-5:]  # after the seed's ask
    assert ts.tolist() == [base + 34200 * 10**9, base + 34200_123456789, base + 34200_123456789,
                           base + 34199_999999999, base + 34200_000000001]
    assert ev.report.info["timestamps_truncated_to_ns"] == 2
    assert ev.report.counts[OUT_OF_ORDER_TS] == 2  # rows 4 and 5 are before row 3's time
    assert ev.report.examples[OUT_OF_ORDER_TS][0].endswith(
        ":4: row earlier than the latest time seen before it (by 123456790 ns); kept in file order")
    assert ev.report.info["date"] == "2012-01-03"


def test_subtick_hidden_print_is_skipped_and_counted(tmp_path):
    msgs = ["34200.1,5,0,7,1000050,1", "34200.2,1,1,1,1000000,1"]
    books = ["1010000,1,1000000,1", "1010000,1,1000000,2"]
    path = write_pair(tmp_path, msgs, books)
    ev = read_lobster(path)
    assert ev.report.counts[f"skipped:{SUBTICK_TRADE}"] == 1
    assert len(batches(ev.array)) == 2  # seed + the add; the skipped print has no batch
    kept = read_lobster(path, tick_size="0.0001")  # the data's own resolution keeps it
    assert rows(kept)[2] == (K.TRADE, 0, -1, 1000050, 7, HID | END)
    with pytest.raises(DataError, match="line 1"):
        read_lobster(path, strict=True)


def test_lot_size_and_symbol_override(tmp_path):
    msgs = ["34200.1,1,1,200,1000000,1"]
    books = ["1010000,300,1000000,500"]
    ev = read_lobster(write_pair(tmp_path, msgs, books), lot_size="100", symbol="XYZ", tick_size="0.05")
    assert [r[4] for r in rows(ev)] == [3, 3, 2]  # seed bid 500-200=300 shares, ask 300, add 200
    assert ev.instrument.symbol == "XYZ" and [r[3] for r in rows(ev)] == [2000, 2020, 2000]
    with pytest.raises(DataError, match="multiple"):
        read_lobster(write_pair(tmp_path, ["34200.1,1,1,150,1000000,1"], books), lot_size="100")


# --------------------------------------------------------------------------- malformed input
GOOD_MSGS = ["34200.1,1,1,10,1000000,1", "34200.2,1,2,10,1000000,1", "34200.3,3,1,10,1000000,1"]
GOOD_BOOKS = ["1010000,5,1000000,10", "1010000,5,1000000,20", "1010000,5,1000000,10"]


@pytest.mark.parametrize(
    "line, bad, match",
    [
        (2, "34200.2,1,2,10,1000000", "expected 6 columns, got 5"),
        (3, "34200.3,3,1,10,1000000,1,7", "expected 6 columns, got 7"),
        (2, "34200.2,1,x2,10,1000000,1", "column 3"),
        (2, "34200.2,1,2,10,1000000,", "column 6"),
        (1, "34200.x,1,1,10,1000000,1", "column 1"),
        (2, "34200.2,9,2,10,1000000,1", "unknown message type 9"),
        (2, "34200.2,1,2,10,1000000,0", "bad direction 0"),
        (2, "34200.2,1,2,10,1000050,1", "not a multiple"),
        (2, "34200.2,1,2,0,1000000,1", "size 0"),
        (2, "34200.2,1,2,10,4611686018427387904,1", "out of range"),
        (2, "34200.2,1,1,10,1000000,1", "added twice"),
        (2, "", "empty line"),
    ],
)
def test_malformed_message_line(tmp_path, line, bad, match):
    msgs = list(GOOD_MSGS)
    msgs[line - 1] = bad
    path = write_pair(tmp_path, msgs, GOOD_BOOKS)
    with pytest.raises(DataError, match=match) as e:
        read_lobster(path)
    assert e.value.line == line and e.value.file == str(path)


@pytest.mark.parametrize("cut", ["34200.3,3,1,1", "34200.3,3,1,10,10000", "34200.3,3,1,10,1000000,"])
def test_truncated_last_line(tmp_path, cut):
    path = write_pair(tmp_path, GOOD_MSGS, GOOD_BOOKS)
    path.write_text("\n".join(GOOD_MSGS[:2] + [cut]))  # cut mid-field, no final newline
    with pytest.raises(DataError) as e:
        read_lobster(path)
    assert e.value.line == 3 and e.value.file == str(path)


def test_missing_final_newline_is_fine(tmp_path):
    path = write_pair(tmp_path, GOOD_MSGS, GOOD_BOOKS)
    path.write_text("\n".join(GOOD_MSGS))
    assert len(batches(read_lobster(path).array)) == 4


@pytest.mark.parametrize(
    "line, bad, match",
    [
        (2, "1010000,5,1000000", "expected 4 columns, got 3"),
        (3, "1010000,5,abc,10", "column 3"),
        (2, "1010000,-5,1000000,20", "malformed ask levels"),
        (2, "1010050,5,1000000,20", "malformed ask levels"),
    ],
)
def test_malformed_orderbook_line(tmp_path, line, bad, match):
    books = list(GOOD_BOOKS)
    books[line - 1] = bad
    path = write_pair(tmp_path, GOOD_MSGS, books)
    with pytest.raises(DataError, match=match) as e:
        read_lobster(path)
    assert e.value.line == line and e.value.file.endswith("_orderbook_1.csv")


def test_malformed_bid_levels_name_the_row_and_its_levels(tmp_path):
    """Asks are checked before bids; a level-2 entry needs an occupied level 1 above it."""
    msgs = GOOD_MSGS
    books = ["1010000,5,1000000,10,1020000,5,990000,1"] * 3
    books[2] = "1010000,5,1000000,0,1020000,5,990000,1"  # bid level 1 empty, level 2 occupied
    path = write_pair(tmp_path, msgs, books, levels=2)
    with pytest.raises(DataError, match="malformed bid levels") as e:
        read_lobster(path)
    assert e.value.line == 3 and "[1000000, 990000]" in str(e.value) and "[0, 1]" in str(e.value)
    books[1] = "1010000,5,1000000,10,1010000,5,990000,1"  # ask level 2 not above level 1
    path = write_pair(tmp_path, msgs, books, levels=2)
    with pytest.raises(DataError, match="malformed ask levels") as e:
        read_lobster(path)
    assert e.value.line == 2


def test_duplicate_add_names_the_first_second_add_in_file_order(tmp_path):
    msgs = ["34200.1,1,9,10,1000000,1", "34200.2,1,4,10,1000000,1", "34200.3,1,9,10,1000000,1",
            "34200.4,1,4,10,1000000,1"]
    path = write_pair(tmp_path, msgs, GOOD_BOOKS + GOOD_BOOKS[:1])
    with pytest.raises(DataError, match="order id 9 added twice") as e:
        read_lobster(path)
    assert e.value.line == 3


def test_corrupt_zip_member_is_a_data_error(tmp_path):
    """The member is parsed while it is unpacked; a bad CRC still names the member."""
    path = write_pair(tmp_path, GOOD_MSGS * 50, GOOD_BOOKS * 50)
    z = tmp_path / "sample.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.write(path, path.name)
        ob = path.with_name(path.name.replace("_message_", "_orderbook_"))
        zf.write(ob, ob.name)
    data = bytearray(z.read_bytes())
    at = data.find(b"34200.3,3,1,10,1000000,1")
    data[at:at + 5] = b"34209"  # stored (not compressed): still valid CSV, wrong CRC
    z.write_bytes(bytes(data))
    with pytest.raises(DataError, match="unreadable zip member") as e:
        read_lobster(z)
    assert path.name in str(e.value)


@pytest.mark.parametrize("nbooks", [2, 4])
def test_row_counts_differ(tmp_path, nbooks):
    books = (GOOD_BOOKS + [GOOD_BOOKS[-1]])[:nbooks]
    path = write_pair(tmp_path, GOOD_MSGS, books)
    with pytest.raises(DataError, match=f"orderbook has {nbooks} rows but the message file has 3") as e:
        read_lobster(path)
    assert e.value.line == min(nbooks, 3) + 1 and e.value.file.endswith("_orderbook_1.csv")


def test_empty_files(tmp_path):
    path = write_pair(tmp_path, [], GOOD_BOOKS)
    with pytest.raises(DataError, match="empty file") as e:
        read_lobster(path)
    assert e.value.file == str(path) and e.value.line == 1
    path = write_pair(tmp_path, GOOD_MSGS, [])
    with pytest.raises(DataError, match="empty file") as e:
        read_lobster(path)
    assert e.value.file.endswith("_orderbook_1.csv")


def test_level_count_must_match_name(tmp_path):
    path = write_pair(tmp_path, GOOD_MSGS, GOOD_BOOKS, levels=2)  # rows have 1 level
    with pytest.raises(DataError, match="file name says 2 levels but rows have 1"):
        read_lobster(path)


@pytest.mark.parametrize("drop", ["orderbook", "message", "both"])
def test_zip_missing_members(tmp_path, drop):
    path = write_pair(tmp_path, GOOD_MSGS, GOOD_BOOKS)
    z = tmp_path / "broken.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ReadMe.txt", "x")
        if drop not in ("message", "both"):
            zf.write(path, path.name)
        if drop not in ("orderbook", "both"):
            ob = path.with_name(path.name.replace("_message_", "_orderbook_"))
            zf.write(ob, ob.name)
    with pytest.raises(DataError) as e:
        read_lobster(z)
    msg = str(e.value)
    assert str(z) in msg
    for what in ("message", "orderbook"):
        assert (f"*_{what}_N.csv" in msg) == (drop in (what, "both"))


def test_missing_inputs(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_lobster(tmp_path / "nope_message_1.csv")
    m = tmp_path / f"{STEM}_message_1.csv"
    m.write_text(GOOD_MSGS[0] + "\n")
    with pytest.raises(DataError, match="orderbook file not given and not found"):
        read_lobster(m)
    plain = tmp_path / "messages.csv"
    plain.write_text(GOOD_MSGS[0] + "\n")
    ob = tmp_path / "book.csv"
    ob.write_text(GOOD_BOOKS[0] + "\n")
    with pytest.raises(DataError, match="pass date="):
        read_lobster(plain, ob)
    assert read_lobster(plain, ob, date="2012-06-21").report.info["symbol"] == "messages"


# --------------------------------------------------------------------------- vendor samples
SAMPLES = {
    "AMZN_5": ("LOBSTER_SampleFile_AMZN_2012-06-21_5.zip", 5),
    "AAPL_10_head": ("AAPL_10_head/AAPL_2012-06-21_34200000_57600000_message_10.csv", 10),
    "AMZN_1": ("LOBSTER_SampleFile_AMZN_2012-06-21_1.zip", 1),
    "AAPL_1": ("LOBSTER_SampleFile_AAPL_2012-06-21_1.zip", 1),
}


def _read_vendor_csvs(path):
    """The raw message columns (time as text) and orderbook matrix, read independently."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            m = zf.read(next(n for n in names if "_message_" in n))
            o = zf.read(next(n for n in names if "_orderbook_" in n))
    else:
        m = path.read_bytes()
        o = path.with_name(path.name.replace("_message_", "_orderbook_")).read_bytes()
    mt = pacsv.read_csv(io.BytesIO(m), read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                        convert_options=pacsv.ConvertOptions(column_types={"f0": pa.string()}))
    ot = pacsv.read_csv(io.BytesIO(o), read_options=pacsv.ReadOptions(autogenerate_column_names=True))
    msg = SimpleNamespace(
        time=mt.column(0).to_pylist(),
        typ=mt.column(1).to_numpy(), oid=mt.column(2).to_numpy(), size=mt.column(3).to_numpy(),
        px=mt.column(4).to_numpy(), dir=mt.column(5).to_numpy(),
    )
    book = np.column_stack([c.to_numpy() for c in ot.columns]).astype(np.int64)
    return msg, book


@pytest.fixture(scope="module", params=list(SAMPLES))
def sample(request):
    if not DATA.is_dir():
        pytest.skip(f"LOBSTER sample data not found at {DATA}")
    name, N = SAMPLES[request.param]
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    ev = read_lobster(path)
    msg, book = _read_vendor_csvs(path)
    kept = ~(np.isin(msg.typ, (5, 6)) & (msg.px % 100 != 0))  # sub-penny prints have no event
    depth = depth_series(ev.array, N, batch_end_only=True)
    vendor = book[kept]
    ask_px, ask_sz, bid_px, bid_sz = (vendor[:, j::4] for j in range(4))
    return SimpleNamespace(
        name=request.param, path=path, N=N, ev=ev, msg=msg, book=book, kept=kept, depth=depth,
        rows=np.flatnonzero(kept),
        vendor=SimpleNamespace(
            ask_px=np.where(ask_sz > 0, ask_px // 100, 0), ask_qty=ask_sz,
            bid_px=np.where(bid_sz > 0, bid_px // 100, 0), bid_qty=bid_sz,
        ),
    )


def _mismatch_by_level(s):
    d, v = s.depth, s.vendor
    assert d.bid_px.shape == (1 + len(s.rows), s.N)  # seed batch + one batch per kept message
    return ((d.bid_px[1:] != v.bid_px) | (d.bid_qty[1:] != v.bid_qty)
            | (d.ask_px[1:] != v.ask_px) | (d.ask_qty[1:] != v.ask_qty))


def _window_expansions(book, N):
    """Per row: did the vendor's top-N window reach deeper than in the row before (per side)?"""
    lo = np.where(book[:, 4 * N - 1] > 0, book[:, 4 * N - 2], np.iinfo(np.int64).min)
    hi = np.where(book[:, 4 * N - 3] > 0, book[:, 4 * N - 4], np.iinfo(np.int64).max)
    eb = np.r_[False, lo[1:] < lo[:-1]]
    ea = np.r_[False, hi[1:] > hi[:-1]]
    return lo, hi, eb, ea


@needs_data
def test_vendor_book_equals_replay_after_every_message(sample):
    """depth_series of the events == the vendor's top-N row after every message.

    Levels 1..N-1 must match on every row. At level N the vendor may show depth
    no message carried (a level below came into view): such rows could only be
    explained at rows where the vendor's window reached deeper. The reader sets
    exactly that newly exposed range from the vendor's row (see the next test
    for the proof that it touches nothing else), so level N matches too.
    """
    bad = _mismatch_by_level(sample)
    N = sample.N
    inner = np.flatnonzero(bad[:, : N - 1].any(axis=1))
    assert len(inner) == 0, f"{sample.name}: levels 1..{N - 1} differ at rows {sample.rows[inner[:5]] + 1}"
    _, _, eb, ea = _window_expansions(sample.book, N)
    level_n = np.flatnonzero(bad[:, N - 1])
    unexplained = level_n[~(eb | ea)[sample.rows[level_n]]]
    assert len(unexplained) == 0, f"level {N} differs at rows {sample.rows[unexplained[:5]] + 1}"
    print(f"\n{sample.name}: {len(level_n)} of {len(bad)} rows differ at level {N}")
    assert len(level_n) == 0
    # the seed batch: row 1 with message 1 undone, one synthetic ADD per level, last one ends the batch
    seed = sample.ev.array[batches(sample.ev.array)[0]]
    assert (seed["kind"] == K.ADD).all() and (seed["order_id"] >= S0).all()
    assert (seed["flags"] & SNAP).all() and seed["flags"][-1] & END and not (seed["flags"][:-1] & END).any()
    assert len(seed) <= 2 * N + 1


@needs_data
def test_inferred_events_only_at_message_level_or_revealed_range(sample):
    """Events not read from a message (SNAPSHOT) in a message's batch sit either at that
    message's own level (unknown ids, sizes that changed out of view) or in the price range
    the vendor's window newly exposed at that row; book events without SNAPSHOT are at the
    message's own level. So the vendor's rows feed only the depth no message carried."""
    a = sample.ev.array
    m = sample.msg
    bl = batches(a)
    nb = np.array([s.stop - s.start for s in bl])
    batch_of = np.repeat(np.arange(len(bl)), nb)
    ev_row = np.r_[np.full(nb[0], -1), np.repeat(sample.rows, nb[1:])]  # message row of each event
    msg_ev = ev_row >= 0
    r = ev_row[msg_ev]
    e = a[msg_ev]
    at_own_level = (e["side"] == m.dir[r]) & (e["price"] * 100 == m.px[r])
    is_book = np.isin(e["kind"], BOOK_KINDS)
    snap = (e["flags"] & SNAP) != 0
    assert at_own_level[is_book & ~snap].all()
    assert not (snap & ~is_book).any()
    lo, hi, eb, ea = _window_expansions(sample.book, sample.N)
    prev = np.maximum(r - 1, 0)
    raw = e["price"] * 100
    revealed = np.where(e["side"] > 0, eb[r] & (lo[r] <= raw) & (raw < lo[prev]),
                        ea[r] & (hi[prev] < raw) & (raw <= hi[r]))
    own_ok = at_own_level & np.isin(m.typ[r], (2, 3, 4))
    assert (own_ok | revealed)[snap].all()
    assert (snap & revealed & ~own_ok).sum() > 0  # the reveal path is exercised
    assert batch_of[-1] == len(sample.rows)


@needs_data
def test_message_mapping(sample):
    """Each message's batch, checked against the raw message columns."""
    a = sample.ev.array
    m = sample.msg
    bl = batches(a)[1:]
    t = m.typ[sample.rows]
    first = np.array([s.start for s in bl])
    last = np.array([s.stop - 1 for s in bl])
    size = np.array([s.stop - s.start for s in bl])
    r = sample.rows
    px_ticks = m.px[r] // 100
    # adds: exactly one ADD of the message's order
    adds = t == 1
    fa = a[first[adds]]
    assert (size[adds] == 1).all() and (fa["kind"] == K.ADD).all() and (fa["flags"] == END).all()
    assert (fa["order_id"] == m.oid[r][adds]).all() and (fa["qty"] == m.size[r][adds]).all()
    assert (fa["side"] == m.dir[r][adds]).all() and (fa["price"] == px_ticks[adds]).all()
    # hidden executions: a single HIDDEN TRADE print; the book does not move
    hid = t == 5
    fh = a[first[hid]]
    assert (size[hid] == 1).all() and (fh["kind"] == K.TRADE).all() and (fh["flags"] == HID | END).all()
    assert (fh["side"] == -m.dir[r][hid]).all() and (fh["qty"] == m.size[r][hid]).all()
    d = sample.depth
    j = np.flatnonzero(hid) + 1  # depth row of the batch (row 0 is the seed)
    for arr in (d.bid_px, d.bid_qty, d.ask_px, d.ask_qty):
        assert (arr[j] == arr[j - 1]).all()
    # visible executions: EXECUTE events totalling the size at the resting side, then one TRADE print
    batch_id = np.repeat(np.arange(len(bl)), size)
    body = a[first[0]:]
    exe_qty = np.bincount(batch_id, weights=np.where((body["kind"] == K.EXECUTE), body["qty"], 0),
                          minlength=len(bl))
    trades = np.bincount(batch_id, weights=body["kind"] == K.TRADE, minlength=len(bl))
    ex = t == 4
    assert (exe_qty[ex] == m.size[r][ex]).all() and (exe_qty[~ex] == 0).all()
    assert (trades[ex] == 1).all() and (trades[(t == 1) | (t == 2) | (t == 3) | (t == 7)] == 0).all()
    tr = body[body["kind"] == K.TRADE]
    tr_batch = batch_id[body["kind"] == K.TRADE]
    tx = tr[t[tr_batch] == 4]
    rx = r[tr_batch[t[tr_batch] == 4]]
    assert (tx["side"] == -m.dir[rx]).all() and (tx["qty"] == m.size[rx]).all()
    assert (tx["price"] == m.px[rx] // 100).all() and (tx["order_id"] == m.oid[rx]).all()
    assert (tx["flags"] & HID == 0).all()
    # known orders (added earlier in the file) keep their own id on REDUCE/DELETE/EXECUTE
    known_first = {}
    for row in np.flatnonzero(m.typ == 1):
        known_first.setdefault(int(m.oid[row]), int(row))
    for kind, ty in ((K.REDUCE, 2), (K.DELETE, 3), (K.EXECUTE, 4)):
        sel = np.flatnonzero(t == ty)
        own = body[(body["kind"] == kind) & ((body["flags"] & SNAP) == 0)]
        own_batch = batch_id[(body["kind"] == kind) & ((body["flags"] & SNAP) == 0)]
        real = own["order_id"] < S0
        assert (own["order_id"][real] == m.oid[r[own_batch[real]]]).all()
        assert all(int(m.oid[r[b]]) in known_first for b in own_batch[real])
        assert len(sel) >= real.sum()
    # every batch's last event carries BATCH_END, and only that one
    assert (a["flags"][last] & END).all() and (a["flags"] & END != 0).sum() == len(bl) + 1
    # synthetic ids never collide with LOBSTER ids
    assert m.oid.max() < S0


@needs_data
def test_report_counts_and_timestamps(sample):
    m = sample.msg
    rep = sample.ev.report
    n = len(m.typ)
    # unknown ids: cancels/executions whose id no earlier line added
    first_add = {}
    for row in np.flatnonzero(m.typ == 1):
        first_add.setdefault(int(m.oid[row]), int(row))
    refs = np.flatnonzero(np.isin(m.typ, (2, 3, 4)))
    unknown = [row for row in refs.tolist() if first_add.get(int(m.oid[row]), n) >= row]
    assert rep.counts[UNKNOWN_ORDER_ID] == len(unknown) > 0
    assert rep.examples[UNKNOWN_ORDER_ID][0].startswith(f"{rep.source}:{unknown[0] + 1}:")
    assert sum(rep.info[k] for k in ("unknown_from_synthetic", "unknown_after_forgetting_stale",
                                      "unknown_from_hidden_depth")) == len(unknown)
    assert rep.counts.get(f"skipped:{SUBTICK_TRADE}", 0) == int((~sample.kept).sum())
    assert rep.counts.get(HALT, 0) == int(((m.typ == 7) & (m.px == -1)).sum())
    assert rep.info["rows"] == n and rep.info["levels"] == sample.N
    assert rep.info["date"] == "2012-06-21" and rep.info["symbol"] == sample.name.split("_")[0]
    # timestamps: exact decimal text -> ns after New York midnight (sub-ns digits truncated)
    ns = []
    for s in m.time:
        sec, _, frac = s.partition(".")
        ns.append(int(sec) * 10**9 + int(frac[:9].ljust(9, "0")))
    ns = np.array(ns, dtype=np.int64)
    latest, late = -1, 0
    for t in ns.tolist():  # rows earlier than the latest time seen before them
        late += t < latest
        latest = max(latest, t)
    assert rep.counts.get(OUT_OF_ORDER_TS, 0) == late
    assert rep.info.get("timestamps_truncated_to_ns", 0) == sum(len(s.partition(".")[2]) > 9 for s in m.time)
    a = sample.ev.array
    ends = np.flatnonzero(a["flags"] & END)
    base = midnight_ns(datetime.date(2012, 6, 21))
    assert (a["ts_exch"][ends[1:]] == base + ns[sample.rows]).all()
    assert (a["ts_exch"][: ends[0] + 1] == base + ns[0]).all()
    assert (a["ts_local"] == a["ts_exch"]).all()


@needs_data
def test_strict_raises_at_first_unknown_id_with_file_and_line():
    path = DATA / SAMPLES["AAPL_10_head"][0]
    if not path.exists():
        pytest.skip(f"{path} not found")
    m, _ = _read_vendor_csvs(path)
    added = set()
    first = None
    for row, (t, i) in enumerate(zip(m.typ.tolist(), m.oid.tolist())):
        if t == 1:
            added.add(i)
        elif t in (2, 3, 4) and i not in added:
            first = row + 1
            break
    assert first is not None
    with pytest.raises(DataError) as e:
        read_lobster(path, strict=True)
    assert e.value.reason == UNKNOWN_ORDER_ID and e.value.line == first
    assert str(path) in str(e.value) and f"line {first}" in str(e.value)
