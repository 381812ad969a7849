"""Binance websocket capture reader: synthetic captures (exact expectations) and the real
captures in shared/data/binance (book replayed in C must equal the vendor's bookTicker)."""
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag
from lobsim.book import LevelBook, depth_series
from lobsim.data.binance import _load_binance, iter_binance, read_binance, read_binance_book_ticker
from lobsim.data.events import NO_SNAPSHOT, OUT_OF_ORDER_TS, SEQUENCE_GAP

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
USDM = DATA / "usdm" / "btcusdt_20240808.gz"
CM = [DATA / "cm" / "btcusd_perp_20240808.gz", DATA / "cm" / "btcusd_perp_20240809.gz"]
SPOT = [DATA / "spot" / "btcusdt_20240808.gz", DATA / "spot" / "btcusdt_20240809.gz"]
MS = 1_000_000
SNAP, END = int(Flag.SNAPSHOT), int(Flag.BATCH_END)

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real Binance captures not found at {DATA}")


# -- synthetic capture helpers ------------------------------------------------------


def depth(E, U, u, pu, b, a, sym="BTCUSDT", spot=False):
    data = {"e": "depthUpdate", "E": E, "T": E, "s": sym, "U": U, "u": u, "b": b, "a": a}
    if not spot:
        data["pu"] = pu
    return {"stream": f"{sym.lower()}@depth@{'100' if spot else '0'}ms", "data": data}


def trade(T, p, q, m, sym="BTCUSDT"):
    return {"stream": f"{sym.lower()}@trade",
            "data": {"e": "trade", "E": T + 1, "T": T, "s": sym, "t": T, "p": p, "q": q, "m": m}}


def ticker(u, b, B, a, A, sym="BTCUSDT"):
    return {"stream": f"{sym.lower()}@bookTicker", "data": {"u": u, "s": sym, "b": b, "B": B, "a": a, "A": A}}


def snapshot(last_id, bids, asks, E=None):
    d = {"lastUpdateId": last_id}
    if E is not None:
        d["E"] = E
    d.update(bids=bids, asks=asks)
    return d


def local_ts(k):
    """Receive time of line k (1-based): 1000 ms + k ms + 0.5 ms."""
    return (1000 + k) * MS + 500_000


def write_capture(path, msgs, gz=True):
    lines = []
    for k, m in enumerate(msgs, 1):
        lines.append(m if isinstance(m, str) else f"{local_ts(k)} {json.dumps(m, separators=(',', ':'))}")
    raw = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def replay(events):
    """Tiny dict-based L2 tracker (independent of the C book): final (bids, asks) dicts."""
    book = {1: {}, -1: {}}
    for e in events:
        if e["kind"] == EventKind.CLEAR:
            book = {1: {}, -1: {}}
        elif e["kind"] == EventKind.SET_LEVEL:
            side = book[int(e["side"])]
            if e["qty"]:
                side[int(e["price"])] = int(e["qty"])
            else:
                side.pop(int(e["price"]), None)
    return book


def rows(ev):
    return [(int(e["kind"]), int(e["side"]), int(e["price"]), int(e["qty"]), int(e["flags"])) for e in ev]


# -- synthetic: sequencing and event layout ----------------------------------------------

FUT = [
    depth(1000, 90, 95, 89, [["100.0", "5.000"]], []),  # 1: stale (u < lastUpdateId)
    trade(1001, "100.5", "0.011", False),  # 2: buyer aggressed
    depth(1002, 96, 102, 95, [["100.0", "1.000"]], [["101.0", "0.000"]]),  # 3: bridges 100
    snapshot(100, [["100.0", "2.000"], ["99.5", "1.000"]], [["101.0", "3.000"], ["101.5", "1.000"]], E=1003),  # 4
    depth(1004, 103, 105, 102, [], [["101.5", "2.500"]]),  # 5
    ticker(105, "100.0", "1.000", "101.5", "2.500"),  # 6
    trade(1004, "101.5", "0.100", True),  # 7: seller aggressed, same ms as diff 5
]


def test_futures_snapshot_bridge_and_merge(tmp_path):
    cap = _load_binance(write_capture(tmp_path / "f.gz", FUT))
    ev, rep = cap.events.array, cap.events.report
    inst = cap.events.instrument
    assert (str(inst.tick_size), str(inst.lot_size)) == ("0.1", "0.001")
    assert inst.symbol == "BTCUSDT"
    CL, SL, TR = int(EventKind.CLEAR), int(EventKind.SET_LEVEL), int(EventKind.TRADE)
    assert rows(ev) == [
        (TR, 1, 1005, 11, 0),
        (CL, 0, 0, 0, SNAP),
        (SL, 1, 1000, 2000, SNAP),
        (SL, 1, 995, 1000, SNAP),
        (SL, -1, 1010, 3000, SNAP),
        (SL, -1, 1015, 1000, SNAP | END),
        (SL, 1, 1000, 1000, 0),  # the buffered bridging diff, after the snapshot
        (SL, -1, 1010, 0, END),
        (SL, -1, 1015, 2500, END),
        (TR, -1, 1015, 100, 0),  # tie at 1004 ms: file order puts the trade after diff 5
    ]
    assert list(ev["ts_exch"] // MS) == [1001, 1002, 1002, 1002, 1002, 1002, 1002, 1002, 1004, 1004]
    # the snapshot is used when it arrives; the diff received before it waits for it
    assert ev["ts_local"][1] == local_ts(4)
    assert ev["ts_local"][6] == ev["ts_local"][7] == local_ts(4)
    assert ev["ts_local"][8] == local_ts(5)
    assert list(cap.update_id) == [-1, 100, 100, 100, 100, 100, 102, 102, 105, -1]
    assert not rep, str(rep)
    assert rep.info["stale_diffs_dropped"] == 1
    assert rep.info["diffs_buffered_until_snapshot"] == 1
    assert rep.info["book_ticker_lines_skipped"] == 1
    assert rep.info["venue"] == "futures"
    book = replay(ev)
    assert book == {1: {1000: 1000, 995: 1000}, -1: {1015: 2500}}
    bt = read_binance_book_ticker(tmp_path / "f.gz", inst)
    assert bt.tolist() == [(105, local_ts(6), 1000, 1000, 1015, 2500)]


def test_keep_pre_snapshot_flags_the_stale_diff(tmp_path):
    path = write_capture(tmp_path / "f.gz", FUT)
    default = read_binance(path)
    ev = read_binance(path, keep_pre_snapshot=True)
    PRE = int(Flag.PRE_SNAPSHOT)
    # the diff received before the snapshot with u < lastUpdateId comes first, flagged; the rest is unchanged
    assert rows(ev.array[:1]) == [(int(EventKind.SET_LEVEL), 1, 1000, 5000, PRE | END)]
    assert ev.array[0]["ts_exch"] == 1000 * MS
    assert ev.array[1:].tobytes() == default.array.tobytes()
    assert ev.report.info["pre_snapshot_diffs_kept"] == 1 and ev.report.info["stale_diffs_dropped"] == 0
    assert not ev.report


def test_iter_binance_is_exported():
    import lobsim.data

    assert lobsim.data.iter_binance is iter_binance


def test_c_book_agrees_with_tracker(tmp_path):
    ev = read_binance(write_capture(tmp_path / "f.gz", FUT)).array
    with LevelBook() as b:
        b.apply(ev)
        assert b.best_bid() == (1000, 1000)
        assert b.best_ask() == (1015, 2500)


def test_spot_rules_and_gap(tmp_path):
    msgs = [
        depth(1000, 95, 100, None, [["10.00", "1.0"]], [], spot=True),  # 1: u == id: stale for spot
        snapshot(100, [["10.00", "2.0"]], [["10.10", "1.0"]]),  # 2 (spot snapshot has no E)
        depth(1002, 101, 103, None, [["10.00", "3.0"]], [], spot=True),  # 3: bridges id + 1
        depth(1003, 104, 106, None, [], [["10.10", "0.5"]], spot=True),  # 4: chains
        depth(1004, 108, 110, None, [["10.05", "1.0"]], [], spot=True),  # 5: gap (107 missing)
        depth(1005, 111, 111, None, [], [["10.20", "2.0"]], spot=True),  # 6: chains again
    ]
    path = write_capture(tmp_path / "s.gz", msgs)
    cap = _load_binance(path)
    rep = cap.events.report
    assert rep.info["venue"] == "spot"
    assert rep.info["stale_diffs_dropped"] == 1
    assert rep.counts[SEQUENCE_GAP] == 1
    assert rep.examples[SEQUENCE_GAP][0].startswith(f"{path}:5")
    assert rep.info["diffs_applied_after_first_gap"] == 2
    # after the gap the reader keeps applying (the book may be wrong until a new snapshot)
    assert replay(cap.events.array) == {1: {1000: 30, 1005: 10}, -1: {1010: 5, 1020: 20}}
    # snapshot ts_exch: spot snapshots carry no E, so the bridging diff's E is used
    assert cap.events.array["ts_exch"][0] == 1002 * MS
    with pytest.raises(DataError) as ei:
        read_binance(path, strict=True)
    assert ei.value.file == str(path) and ei.value.line == 5
    assert SEQUENCE_GAP in str(ei.value)


def test_bridge_failure_is_a_gap(tmp_path):
    msgs = [
        snapshot(100, [["10.0", "1"]], [["11.0", "1"]], E=999),
        depth(1000, 105, 107, 104, [["10.0", "2"]], []),  # U > id: updates 101..104 were missed
    ]
    cap = _load_binance(write_capture(tmp_path / "f.gz", msgs))
    assert cap.events.report.counts[SEQUENCE_GAP] == 1
    assert "missed" in cap.events.report.examples[SEQUENCE_GAP][0]


def test_second_snapshot_resyncs_after_gap(tmp_path):
    msgs = [
        snapshot(100, [["10.0", "1"]], [["11.0", "1"]], E=999),
        depth(1000, 99, 101, 98, [["10.0", "2"]], []),
        depth(1001, 103, 104, 102, [["9.0", "7"]], []),  # 3: gap (pu 102 != 101): 9.0 is bogus
        depth(1002, 105, 106, 104, [], [["11.0", "3"]]),  # 4: received before snapshot 2, u >= 105
        snapshot(105, [["10.0", "4"]], [["11.0", "2"], ["12.0", "1"]], E=1003),  # 5: resync
        depth(1004, 107, 108, 106, [["10.5", "1"]], []),  # 6
    ]
    cap = _load_binance(write_capture(tmp_path / "f.gz", msgs))
    ev, rep = cap.events.array, cap.events.report
    assert rep.counts[SEQUENCE_GAP] == 1
    assert rep.info["snapshots"] == 2
    assert replay(ev) == {1: {100: 4, 105: 1}, -1: {110: 3, 120: 1}}
    clears = np.nonzero(ev["kind"] == EventKind.CLEAR)[0]
    assert len(clears) == 2
    # the second snapshot sits right before the diff it bridges (line 4), whose local time waits for it
    after = ev[clears[1]:]
    assert list(cap.update_id[clears[1]:]) == [105] * 4 + [106, 108]
    assert after["ts_local"][4] == local_ts(5)
    assert np.all(np.diff(ev["ts_exch"]) >= 0)


def test_no_snapshot_keeps_diffs_and_reports(tmp_path):
    msgs = [depth(1000, 1, 2, 0, [["10.0", "1"]], []), depth(1001, 3, 4, 2, [], [["11.0", "1"]])]
    path = write_capture(tmp_path / "f.gz", msgs)
    ev = read_binance(path)
    assert ev.report.counts[NO_SNAPSHOT] == 2
    assert len(ev) == 2 and (ev.array["flags"] == END).all()
    with pytest.raises(DataError, match=NO_SNAPSHOT):
        read_binance(path, strict=True)


def test_out_of_order_exchange_time_is_reported_and_clamped(tmp_path):
    msgs = [
        snapshot(100, [["10.0", "1"]], [["11.0", "1"]], E=999),
        depth(1005, 100, 101, 99, [["10.0", "2"]], []),
        depth(1003, 102, 102, 101, [["10.0", "3"]], []),  # E goes back 2 ms
        trade(1006, "10.0", "1", True),
        trade(1004, "10.0", "1", True),  # T goes back
    ]
    path = write_capture(tmp_path / "f.gz", msgs)
    ev = read_binance(path)
    assert ev.report.counts[OUT_OF_ORDER_TS] == 2
    assert np.all(np.diff(ev.array["ts_exch"]) >= 0)
    with pytest.raises(DataError) as ei:
        read_binance(path, strict=True)
    assert ei.value.line == 3


def test_symbol_filter(tmp_path):
    msgs = [
        snapshot(100, [["10.0", "1"]], [["11.0", "1"]], E=999),
        depth(1000, 100, 101, 99, [["10.0", "2"]], []),
        trade(1001, "10.0", "1", False),
        trade(1002, "2000.0", "1", False, sym="ETHUSDT"),
    ]
    path = write_capture(tmp_path / "f.gz", msgs)
    with pytest.raises(DataError, match="several symbols") as ei:
        read_binance(path)
    assert ei.value.line == 4
    ev = read_binance(path, symbol="btcusdt")
    assert ev.instrument.symbol == "BTCUSDT"
    assert int((ev.array["kind"] == EventKind.TRADE).sum()) == 1
    assert ev.report.info["other_symbol_lines_skipped"] == 1


def test_given_instrument_and_off_grid_price(tmp_path):
    path = write_capture(tmp_path / "f.gz", FUT)
    ev = read_binance(path, tick_size="0.5", lot_size="0.001")
    assert str(ev.instrument.tick_size) == "0.5"
    assert ev.report.info["inferred"] == []
    assert replay(ev.array)[-1] == {203: 2500}
    with pytest.raises(DataError, match="not a multiple") as ei:
        read_binance(path, tick_size="1")
    assert ei.value.file == str(path) and ei.value.line == 2  # trade price 100.5


def test_plain_text_and_two_files(tmp_path):
    a = write_capture(tmp_path / "a.txt", FUT[:4], gz=False)
    b = write_capture(tmp_path / "b.gz", FUT[4:])
    one = _load_binance(write_capture(tmp_path / "all.gz", FUT))
    two = _load_binance([a, b])
    assert rows(one.events.array) == rows(two.events.array)
    assert not two.events.report


# -- bad input ---------------------------------------------------------------------------

GOOD = json.dumps(depth(1000, 1, 2, 0, [["10.0", "1"]], []), separators=(",", ":"))


@pytest.mark.parametrize(
    "line, match",
    [
        ("1723161255030314667" + GOOD, "expected '<local ns> <json>'"),
        ("17231612x5030314667 " + GOOD, "not an integer"),
        ("1723161255030314667 {\"stream\":", "bad JSON"),
        ("1723161255030314667 [1, 2]", "not an object"),
        ("1723161255030314667 " + GOOD.replace('"u":2,', ""), "missing field 'u'"),
        ("1723161255030314667 " + GOOD.replace('"E":1000', '"E":"1000"'), "field 'E' is not an integer"),
        ("1723161255030314667 " + GOOD.replace('"10.0"', '"ten"'), "not a decimal number"),
        ("1723161255030314667 " + GOOD.replace('["10.0","1"]', '["10.0"]'), "is not \\[price, size\\]"),
        ("1723161255030314667 " + GOOD.replace('"b":[', '"b":7,"x":['), "not a list"),
        ("1723161255030314667 " + GOOD.replace('"10.0","1"', '"-10.0","1"'), "must be positive"),
        ("1723161255030314667 " + GOOD.replace('"10.0","1"', '"10.0","-1"'), "negative"),
        ("1723161255030314667 " + json.dumps(trade(5, "1.0", "1", "yes")), "'m' is not a boolean"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, match):
    good = f"{local_ts(1)} " + json.dumps(snapshot(1, [["9.0", "1"]], [["11.0", "1"]]))
    path = write_capture(tmp_path / "bad.gz", [good, line])
    with pytest.raises(DataError, match=match) as ei:
        read_binance(path)
    assert ei.value.file == str(path)
    assert ei.value.line == 2


def test_truncated_gzip_names_file(tmp_path):
    msgs = [snapshot(1, [["9.0", "1"]], [["11.0", "1"]])] + [
        depth(1000 + i, 2 + i, 2 + i, 1 + i, [["10.0", str(i + 1)]], []) for i in range(2000)
    ]
    raw = write_capture(tmp_path / "full.gz", msgs).read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as ei:
        read_binance(cut)
    assert ei.value.file == str(cut)
    with pytest.raises(DataError, match="truncated"):
        read_binance_book_ticker(cut)


def test_missing_file(tmp_path):
    for fn in (read_binance, read_binance_book_ticker):
        with pytest.raises(DataError, match="file not found") as ei:
            fn(tmp_path / "nope.gz")
        assert ei.value.file == str(tmp_path / "nope.gz")


# -- real captures ---------------------------------------------------------------------------


def _count_lines(paths, needle):
    n = 0
    for p in paths:
        with gzip.open(p, "rb") as fh:
            n += sum(1 for line in fh if needle(line))
    return n


def _raw_capture(paths):
    """The capture's messages parsed line by line with json, without lobsim's reader: the
    first REST snapshot, (U, u, pu) of every depth diff, u of every bookTicker, trade counts."""
    out = SimpleNamespace(snapshot=None, diffs=[], ticker_u=[], trades=0, trade_sells=0)
    for p in paths:
        with gzip.open(p, "rt") as fh:
            for line in fh:
                msg = json.loads(line.partition(" ")[2])
                if "lastUpdateId" in msg:
                    out.snapshot = out.snapshot or msg
                    continue
                stream, d = msg["stream"], msg["data"]
                if "@depth" in stream:
                    out.diffs.append((d["U"], d["u"], d.get("pu")))
                elif stream.endswith("@bookTicker"):
                    out.ticker_u.append(d["u"])
                elif stream.endswith("@trade"):
                    out.trades += 1
                    out.trade_sells += d["m"] is True  # buyer is maker: the seller aggressed
    return out


def _raw_book_ticker_matches(raw):
    """How many bookTickers carry the update id of a point where the futures book is complete,
    derived from the raw messages by Binance's documented rules: the snapshot (lastUpdateId L)
    and every diff kept after it (diffs with u < L are dropped; the first kept one bridges L,
    U <= L <= u; each later one chains, pu == previous u). The rules are checked, not assumed."""
    last_id = raw.snapshot["lastUpdateId"]
    kept = [d for d in raw.diffs if d[1] >= last_id]
    assert kept and kept[0][0] <= last_id <= kept[0][1]
    assert all(b[2] == a[1] for a, b in zip(kept, kept[1:]))  # no gap: one book throughout
    ends = {u for _, u, _ in kept} | {last_id}
    return sum(u in ends for u in raw.ticker_u)


@pytest.fixture(scope="module")
def usdm_raw():
    if not USDM.exists():
        pytest.skip(f"{USDM} absent")
    return _raw_capture([USDM])


@pytest.fixture(scope="module")
def cm_raw():
    if not all(p.exists() for p in CM):
        pytest.skip("COIN-M captures absent")
    return _raw_capture(CM)


@pytest.fixture(scope="module")
def usdm():
    if not USDM.exists():
        pytest.skip(f"{USDM} absent")
    return _load_binance(USDM)


@pytest.fixture(scope="module")
def cm():
    if not all(p.exists() for p in CM):
        pytest.skip("COIN-M captures absent")
    return _load_binance(CM)


@pytest.fixture(scope="module")
def spot():
    if not all(p.exists() for p in SPOT):
        pytest.skip("spot captures absent")
    return _load_binance(SPOT)


def _ticker_check(cap, paths):
    """Replay the book in C at every diff end; compare with bookTicker at equal update ids."""
    ev = cap.events.array
    ds = depth_series(ev, 1, batch_end_only=True)
    u = cap.update_id[ds.index]
    row_of = {int(x): i for i, x in enumerate(u)}  # last row of each update id
    bt = read_binance_book_ticker(paths, cap.events.instrument)
    hit = np.array([int(x) in row_of for x in bt["update_id"]], bool)
    b = bt[hit]
    r = np.array([row_of[int(x)] for x in b["update_id"]], np.int64)
    bad_px = (ds.bid_px[r, 0] != b["bid_px"]) | (ds.ask_px[r, 0] != b["ask_px"])
    bad_qty = (ds.bid_qty[r, 0] != b["bid_qty"]) | (ds.ask_qty[r, 0] != b["ask_qty"])
    return b, int(bad_px.sum()), int(bad_qty.sum()), ds


@needs_data
def test_usdm_counts_and_layout(usdm, usdm_raw):
    rep, ev = usdm.events.report, usdm.events.array
    assert not rep, str(rep)
    # the reader's counts equal those of the raw lines parsed with json ...
    assert rep.info["depth_diffs"] == len(usdm_raw.diffs)
    assert rep.info["trades"] == usdm_raw.trades
    assert rep.info["book_ticker_lines_skipped"] == len(usdm_raw.ticker_u)
    # ... which are the figures shared/data/README.md states for this file
    assert (len(usdm_raw.diffs), usdm_raw.trades, len(usdm_raw.ticker_u)) == (6551, 21313, 66089)
    assert rep.info["snapshots"] == 1 and rep.info["venue"] == "futures"
    assert (str(usdm.events.instrument.tick_size), str(usdm.events.instrument.lot_size)) == ("0.1", "0.001")
    assert np.all(np.diff(ev["ts_exch"]) >= 0)
    kinds = ev["kind"]
    assert int((kinds == EventKind.TRADE).sum()) == usdm_raw.trades
    assert int((kinds == EventKind.CLEAR).sum()) == 1
    # one BATCH_END per applied diff plus the snapshot's
    applied = rep.info["depth_diffs"] - rep.info["stale_diffs_dropped"]
    assert int(((ev["flags"] & END) != 0).sum()) == applied + 1
    # a diff's events are contiguous: update ids of depth events never come back
    depth_ids = usdm.update_id[kinds != EventKind.TRADE]
    assert np.all(np.diff(depth_ids) >= 0)
    # aggressor side: m=true (buyer is maker) -> sell
    assert int(((kinds == EventKind.TRADE) & (ev["side"] == -1)).sum()) == usdm_raw.trade_sells
    # snapshot: a CLEAR then one level per entry of the REST snapshot (1000 a side), flagged,
    # first thing of the book stream
    snap = ev[(ev["flags"] & SNAP) != 0]
    levels = len(usdm_raw.snapshot["bids"]) + len(usdm_raw.snapshot["asks"])
    assert len(snap) == 1 + levels and levels == 2000 and snap[0]["kind"] == EventKind.CLEAR


@needs_data
def test_usdm_book_equals_book_ticker(usdm, usdm_raw):
    b, bad_px, bad_qty, ds = _ticker_check(usdm, USDM)
    # bookTickers whose update id ends a diff batch (or the snapshot), derived from the raw
    # JSON lines: 629 of 66,089 on this file
    assert len(b) == _raw_book_ticker_matches(usdm_raw) > 0
    assert bad_px == 0 and bad_qty == 0
    assert np.all(ds.bid_px[:, 0] < ds.ask_px[:, 0])


@needs_data
def test_cm_two_files_continue_and_match_book_ticker(cm, cm_raw):
    rep = cm.events.report
    assert not rep, str(rep)  # in particular no sequence gap at the file boundary
    assert rep.info["files"] == 2
    n_depth = _count_lines(CM, lambda ln: b"@depth" in ln[:60])
    assert rep.info["depth_diffs"] == n_depth
    b, bad_px, bad_qty, _ = _ticker_check(cm, CM)
    assert len(b) == _raw_book_ticker_matches(cm_raw) > 0  # derived from the raw lines: 1,885
    assert bad_px == 0 and bad_qty == 0
    with gzip.open(CM[1], "rb") as fh:
        start2 = int(fh.readline().split(b" ", 1)[0])
    assert int((b["ts_local"] >= start2).sum()) > 500  # matches in the second file too


@needs_data
def test_cm_second_file_alone_has_no_snapshot():
    if not CM[1].exists():
        pytest.skip("COIN-M capture absent")
    ev = read_binance(CM[1])
    assert ev.report.counts[NO_SNAPSHOT] == ev.report.info["depth_diffs"] > 0
    assert ev.report.counts[SEQUENCE_GAP] == 0


@needs_data
def test_spot_runs_and_report_is_sane(spot):
    rep, ev = spot.events.report, spot.events.array
    assert rep.info["venue"] == "spot"
    assert rep.counts[SEQUENCE_GAP] == 0 and rep.counts["crossed_book"] == 0
    assert rep.info["trades"] == _count_lines(SPOT, lambda ln: b"@trade" in ln[:60])
    assert rep.info["book_ticker_lines_skipped"] == _count_lines(SPOT, lambda ln: b"@bookTicker" in ln[:60])
    assert str(spot.events.instrument.tick_size) == "0.01"
    assert np.all(np.diff(ev["ts_exch"]) >= 0)
    # bookTicker is not exact truth on spot; at equal update ids it should still rarely differ
    b, bad_px, _, _ = _ticker_check(spot, SPOT)
    assert len(b) > 100 and bad_px <= 0.01 * len(b)


@needs_data
def test_feed_latency_is_plausible(usdm, cm):
    """ts_local - ts_exch: the capture host's clock runs ~1.27 s behind Binance's, so the
    raw difference is negative; what must hold is a bounded offset with small jitter."""
    for cap in (usdm, cm):
        ev = cap.events.array
        d = ev[(ev["kind"] == EventKind.SET_LEVEL) & ((ev["flags"] & SNAP) == 0)]
        lat = (d["ts_local"] - d["ts_exch"]) / 1e6  # ms
        p1, p50, p99 = np.percentile(lat, [1, 50, 99])
        assert abs(p50) < 5000
        assert p99 - p1 < 100  # feed jitter of tens of ms, not seconds
        info = cap.events.report.info["feed_latency_ms"]
        assert info["p1"] <= info["median"] <= info["p99"]


@needs_data
def test_real_capture_with_a_diff_removed(tmp_path):
    if not USDM.exists():
        pytest.skip("USD-M capture absent")
    with gzip.open(USDM, "rb") as fh:
        lines = [fh.readline() for _ in range(3000)]
    snap_at = next(i for i, ln in enumerate(lines) if b"lastUpdateId" in ln)
    depth_at = [i for i, ln in enumerate(lines) if b"@depth" in ln[:60] and i > snap_at + 5]
    drop = depth_at[10]
    nxt = depth_at[11]  # 1-based line of the next diff once one line before it is gone
    path = tmp_path / "gap.gz"
    path.write_bytes(gzip.compress(b"".join(lines[:drop] + lines[drop + 1 :])))
    ev = read_binance(path)
    assert ev.report.counts[SEQUENCE_GAP] == 1
    assert ev.report.examples[SEQUENCE_GAP][0].startswith(f"{path}:{nxt}:")
    with pytest.raises(DataError) as ei:
        read_binance(path, strict=True)
    assert ei.value.file == str(path) and ei.value.line == nxt
    intact = read_binance(_write(tmp_path / "ok.gz", lines))
    assert not intact.report, str(intact.report)


def _write(path, lines):
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


@needs_data
def test_book_ticker_helper_counts(usdm, usdm_raw):
    bt = read_binance_book_ticker(USDM, usdm.events.instrument)
    assert bt["update_id"].tolist() == usdm_raw.ticker_u  # every bookTicker line, in file order
    assert np.all(bt["bid_px"] < bt["ask_px"])
    assert np.all(np.diff(bt["update_id"]) > 0)
