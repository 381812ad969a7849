"""Tests of the Databento DBN reader (lobsim.data.dbn).

Synthetic DBN streams (built with databento_dbn's own record classes) pin the action
mapping; the real CME captures in ../shared/data/databento check it against an
independent replay of Databento's documented book semantics and the vendor's BBO.
"""
import datetime
import io
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag, Instrument, TradingStatus
from lobsim.data.events import CROSSED_BOOK, OUT_OF_ORDER_TS, SEQUENCE_GAP, UNKNOWN_ORDER_ID, collect

dbn = pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

from lobsim.book import LevelBook, OrderBook, depth_series  # noqa: E402
from lobsim.data.dbn import (  # noqa: E402
    MBO_DTYPE,
    MBP1_DTYPE,
    TRADE_DTYPE,
    _records,
    instrument_from_dbn,
    iter_dbn,
    read_dbn,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "databento"
ESH4 = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBP1 = DATA / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
TRADES = DATA / "futures_trades_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
DEFS = DATA / "futures_definition.dbn.zst"
FIXTURES = DATA / "fixtures"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"Databento sample data not found at {DATA}")

K = EventKind
NS = 10**9
LAST, SNAP, BAD_TS, MAYBE_BAD = 128, 32, 8, 4
OPEN_NS = 1703545200 * NS  # 2023-12-25 23:00:00 UTC, the CME Globex open of the ESH4 session


# --------------------------------------------------------------------------- synthetic DBN
_ACTION = {"A": dbn.Action.ADD, "C": dbn.Action.CANCEL, "M": dbn.Action.MODIFY, "T": dbn.Action.TRADE,
           "F": dbn.Action.FILL, "R": dbn.Action.CLEAR, "N": dbn.Action.NONE}
_SIDE = {"B": dbn.Side.BID, "A": dbn.Side.ASK, "N": dbn.Side.NONE}


def px(price):
    return int(Decimal(str(price)) * NS)


class Stream:
    """Builds a small DBN file record by record (timestamps increase by 1 us)."""

    def __init__(self, schema=dbn.Schema.MBO, iid=7):
        self.schema, self.iid, self.records, self.ts = schema, iid, [], 1_700_000_000 * NS

    def mbo(self, action, side, oid, price, size, flags=LAST, iid=None, ts=None):
        self.ts += 1000
        self.records.append(dbn.MBOMsg(
            publisher_id=1, instrument_id=self.iid if iid is None else iid,
            ts_event=self.ts if ts is None else ts, order_id=oid,
            price=px(price) if price is not None else dbn.UNDEF_PRICE, size=size,
            action=_ACTION[action], side=_SIDE[side], ts_recv=self.ts + 500, flags=flags))
        return self

    def mbp1(self, action, side, price, size, bid, ask, flags=LAST):
        """bid/ask: (price, size) of the vendor's best after the record, None = empty side."""
        self.ts += 1000
        bp, bs = (px(bid[0]), bid[1]) if bid else (dbn.UNDEF_PRICE, 0)
        ap, as_ = (px(ask[0]), ask[1]) if ask else (dbn.UNDEF_PRICE, 0)
        lvl = dbn.BidAskPair(bid_px=bp, ask_px=ap, bid_sz=bs, ask_sz=as_, bid_ct=1, ask_ct=1)
        self.records.append(dbn.MBP1Msg(
            publisher_id=1, instrument_id=self.iid, ts_event=self.ts, price=px(price), size=size,
            action=_ACTION[action], side=_SIDE[side], flags=flags, depth=0, ts_recv=self.ts + 500,
            levels=lvl))
        return self

    def raw(self, symbols=("TEST",), mappings=None):
        meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                            stype_out=dbn.SType.INSTRUMENT_ID, schema=self.schema, symbols=list(symbols),
                            mappings=mappings or [])
        return bytes(meta) + b"".join(bytes(r) for r in self.records)

    def write(self, path, compress=False, **kw):
        raw = self.raw(**kw)
        if compress:
            out = io.BytesIO()
            tc = dbn.Transcoder(out, dbn.Encoding.DBN, dbn.Compression.ZSTD)
            tc.write(raw)
            tc.finish()
            raw = out.getvalue()
        Path(path).write_bytes(raw)
        return path


def mapping(*pairs):
    day = datetime.date(2023, 11, 14)
    return [SimpleNamespace(raw_symbol=s, intervals=[SimpleNamespace(start_date=day, end_date=day, symbol=str(i))])
            for s, i in pairs]


TICK = Instrument("TEST", Decimal("0.25"))


def read(tmp_path, stream, name="s.dbn", **kw):
    path = stream.write(tmp_path / name)
    return read_dbn(path, instrument=kw.pop("instrument", TICK), **kw)


def rows(events):
    a = events.array
    return [(K(int(k)).name, int(o), int(p), int(q), int(s)) for k, o, p, q, s in
            zip(a["kind"], a["order_id"], a["price"], a["qty"], a["side"])]


# --------------------------------------------------------------------------- mapping
def test_basic_actions(tmp_path):
    s = (Stream().mbo("A", "B", 1, 100.00, 5).mbo("A", "A", 2, 100.25, 3)
         .mbo("C", "B", 1, 100.00, 2)  # partial cancel: 5 -> 3
         .mbo("M", "A", 2, 100.50, 4)
         .mbo("T", "N", 0, 100.25, 1)
         .mbo("C", "B", 1, 100.00, 3)  # the rest
         .mbo("R", "N", 0, None, 0))
    ev = read(tmp_path, s)
    assert rows(ev) == [("ADD", 1, 400, 5, 1), ("ADD", 2, 401, 3, -1), ("REDUCE", 1, 400, 2, 1),
                        ("MODIFY", 2, 402, 4, -1), ("TRADE", 0, 401, 1, 0), ("DELETE", 1, 400, 3, 1),
                        ("CLEAR", 0, 0, 0, 0)]
    assert (ev.array["flags"] == Flag.BATCH_END).all()
    assert not ev.report
    a = ev.array
    assert (a["ts_local"] - a["ts_exch"] == 500).all()


def test_fills_become_executions_and_reconcile(tmp_path):
    """T + F of resting orders, then Databento's C/M: EXECUTEs, C absorbed, M kept."""
    s = (Stream().mbo("A", "A", 1, 100.25, 5).mbo("A", "A", 2, 100.25, 3)
         .mbo("T", "B", 99, 100.25, 6, flags=0)
         .mbo("F", "A", 1, 100.25, 5, flags=0).mbo("F", "A", 2, 100.25, 1, flags=0)
         .mbo("C", "A", 1, 100.25, 5, flags=0).mbo("M", "A", 2, 100.25, 2, flags=LAST))
    ev = read(tmp_path, s)
    assert rows(ev) == [("ADD", 1, 401, 5, -1), ("ADD", 2, 401, 3, -1), ("TRADE", 99, 401, 6, 1),
                        ("EXECUTE", 1, 401, 5, -1), ("EXECUTE", 2, 401, 1, -1), ("MODIFY", 2, 401, 2, -1)]
    assert ev.array["flags"][-1] == Flag.BATCH_END
    assert ev.report.info["mbo_mapping"]["fill_executed"] == 2
    plain = read(tmp_path, s, fills="ignore")
    assert rows(plain) == [("ADD", 1, 401, 5, -1), ("ADD", 2, 401, 3, -1), ("TRADE", 99, 401, 6, 1),
                           ("DELETE", 1, 401, 5, -1), ("MODIFY", 2, 401, 2, -1)]
    for e in (ev, plain):
        with OrderBook() as book:
            book.apply(e.array)
            assert book.best_ask() == (401, 2) and len(book) == 1
            assert book.order(2).qty == 2


def test_record_without_events_moves_batch_end(tmp_path):
    """The C that only confirms an execution emits nothing: its LAST flag lands on the EXECUTE."""
    s = (Stream().mbo("A", "B", 1, 100, 2).mbo("F", "B", 1, 100, 2, flags=0).mbo("C", "B", 1, 100, 2))
    ev = read(tmp_path, s)
    assert [r[0] for r in rows(ev)] == ["ADD", "EXECUTE"]
    assert list(ev.array["flags"]) == [Flag.BATCH_END, Flag.BATCH_END]


def test_iceberg_refill_after_full_execution(tmp_path):
    """F of the whole displayed size then M back to a size: the order re-enters at the tail."""
    s = (Stream().mbo("A", "A", 1, 100, 1).mbo("A", "A", 2, 100, 4)
         .mbo("F", "A", 1, 100, 1, flags=0).mbo("M", "A", 1, 100, 1))
    ev = read(tmp_path, s)
    assert [r[0] for r in rows(ev)] == ["ADD", "ADD", "EXECUTE", "ADD"]
    with OrderBook() as book:
        book.apply(ev.array)
        assert book.order(1).orders_ahead == 1  # behind order 2 now
        assert book.best_ask() == (400, 5)


def test_fills_that_are_not_resting_executions(tmp_path):
    """Aggressor's own fill (price != its resting price), unknown id, too large: not emitted."""
    s = (Stream().mbo("A", "B", 1, 100.00, 1).mbo("A", "A", 2, 100.25, 1)
         .mbo("T", "B", 1, 100.25, 1, flags=0)
         .mbo("F", "B", 1, 100.25, 1, flags=0)  # order 1 rests at 100.00: its fill is as aggressor
         .mbo("F", "A", 2, 100.25, 1, flags=0)
         .mbo("F", "A", 3, 100.25, 1, flags=0)  # unknown
         .mbo("C", "B", 1, 100.00, 1, flags=0).mbo("C", "A", 2, 100.25, 1))
    ev = read(tmp_path, s)
    assert [r[0] for r in rows(ev)] == ["ADD", "ADD", "TRADE", "EXECUTE", "DELETE"]
    m = ev.report.info["mbo_mapping"]
    assert m["fill_not_at_resting_order"] == 1 and m["fill_unknown_order"] == 1
    assert not ev.report


def test_unknown_ids(tmp_path):
    s = Stream().mbo("A", "B", 1, 100, 1).mbo("C", "B", 5, 100, 1).mbo("M", "A", 6, 101, 2)
    ev = read(tmp_path, s)
    assert rows(ev) == [("ADD", 1, 400, 1, 1), ("ADD", 6, 404, 2, -1)]  # M of unknown id = add
    assert ev.report.counts[UNKNOWN_ORDER_ID] == 2
    with pytest.raises(DataError) as ei:
        read(tmp_path, s, strict=True)
    e = ei.value
    assert e.reason == UNKNOWN_ORDER_ID and e.line == 2 and "s.dbn" in str(e) and "record 2" in str(e)


def test_snapshot_without_last_flag_and_clock_checks(tmp_path):
    """Old Databento files end the start-of-day snapshot without F_LAST; snapshot ts_event
    is the order's own time (not checked for order); a live record going back is counted."""
    s = Stream()
    for oid, ts in ((1, 50), (2, 10)):  # snapshot ts_event out of order: fine
        s.mbo("A", "B", oid, 100, 1, flags=SNAP | BAD_TS, ts=ts)
    s.mbo("A", "A", 3, 101, 1, flags=LAST).mbo("A", "A", 4, 102, 1, flags=LAST, ts=s.ts - 5000)
    s.mbo("A", "A", 5, 103, 1, flags=LAST | MAYBE_BAD)
    ev = read(tmp_path, s)
    f = ev.array["flags"]
    assert list(f) == [Flag.SNAPSHOT, Flag.SNAPSHOT | Flag.BATCH_END] + [Flag.BATCH_END] * 3
    assert ev.report.info["snapshot_runs_without_last_flag"] == 1
    assert ev.report.counts[OUT_OF_ORDER_TS] == 1
    assert ev.report.counts[SEQUENCE_GAP] == 1
    assert list(ev.array["order_id"]) == [1, 2, 3, 4, 5]  # file order kept


def test_crossed_book_detection(tmp_path):
    """Crossed at a batch end: legitimate if the next print is an auction (no aggressor)."""
    pre = (Stream().mbo("A", "B", 1, 101, 1).mbo("A", "A", 2, 100, 1)
           .mbo("T", "N", 0, 100.5, 1, flags=0).mbo("C", "B", 1, 101, 1, flags=0).mbo("C", "A", 2, 100, 1))
    ev = read(tmp_path, pre)
    assert ev.report.info["crossed_batch_ends_preopen"] == 1 and not ev.report
    live = (Stream().mbo("A", "B", 1, 101, 1).mbo("A", "A", 2, 100, 1)
            .mbo("T", "B", 3, 100, 1, flags=0).mbo("C", "A", 2, 100, 1))
    ev = read(tmp_path, live)
    assert ev.report.counts[CROSSED_BOOK] == 1
    with pytest.raises(DataError, match=CROSSED_BOOK):
        read(tmp_path, live, strict=True)


def test_instrument_inference_and_tick_check(tmp_path):
    s = Stream().mbo("A", "B", 1, 3720.25, 1).mbo("A", "B", 2, 3720.25, 2)
    ev = read_dbn(s.write(tmp_path / "t.dbn", symbols=["ESZ3"], mappings=mapping(("ESZ3", 7))))
    assert ev.instrument == Instrument("ESZ3", Decimal("0.25"))  # not 3720.25: gcd includes 1.0
    assert "inferred" in ev.report.info["tick_size_source"]
    with pytest.raises(DataError, match="not a multiple") as ei:
        read_dbn(tmp_path / "t.dbn", instrument=Instrument("ESZ3", "0.5"))
    assert ei.value.line == 1 and "record 1" in str(ei.value)


def test_several_instruments_need_a_choice(tmp_path):
    s = Stream().mbo("A", "B", 1, 100, 1, iid=7).mbo("A", "B", 2, 200, 1, iid=8).mbo("A", "A", 3, 101, 1, iid=7)
    path = s.write(tmp_path / "two.dbn", symbols=["AAA", "BBB"], mappings=mapping(("AAA", 7), ("BBB", 8)))
    with pytest.raises(DataError, match="several instruments") as ei:
        read_dbn(path)
    assert "AAA" in str(ei.value) and "BBB" in str(ei.value)
    ev = read_dbn(path, instrument=Instrument("AAA", "0.25"))
    assert list(ev.array["order_id"]) == [1, 3] and ev.report.info["other_instrument_records"] == 1


def test_mbp1_top_of_book(tmp_path):
    """Each record's BBO becomes the one-level L2 book; a moved best clears the old price."""
    bbos = [((100, 5), (101, 3)), ((100, 4), (101, 3)), ((99.75, 2), (101, 3)),  # bid moves down
            ((99.75, 2), (100.5, 1)),  # ask moves down (improves)
            ((99.75, 2), (100.5, 1)),  # trade, unchanged
            (None, (100.5, 1))]  # bid side empty
    s = Stream(schema=dbn.Schema.MBP_1)
    for k, (b, a) in enumerate(bbos):
        s.mbp1("T" if k == 4 else "C", "B", 100.5, 1, b, a)
    ev = read(tmp_path, s)
    kinds = ev.array["kind"]
    assert (kinds == K.TRADE).sum() == 1
    removed = ev.array[(kinds == K.SET_LEVEL) & (ev.array["qty"] == 0)]
    assert sorted(zip(removed["side"].tolist(), removed["price"].tolist())) == [(-1, 404), (1, 399), (1, 400)]
    ds = depth_series(ev.array, 3, batch_end_only=True)
    assert len(ds.index) == len(bbos)
    for row, (b, a) in enumerate(bbos):
        want_b = [int(Decimal(str(b[0])) * 4), b[1]] if b else [0, 0]
        assert [ds.bid_px[row, 0], ds.bid_qty[row, 0]] == want_b
        assert [ds.ask_px[row, 0], ds.ask_qty[row, 0]] == [int(Decimal(str(a[0])) * 4), a[1]]
        assert ds.bid_qty[row, 1] == 0 and ds.ask_qty[row, 1] == 0  # never a stale second level


def test_compressed_equals_raw(tmp_path):
    s = Stream().mbo("A", "B", 1, 100, 5).mbo("A", "A", 2, 101, 1).mbo("C", "B", 1, 100, 2)
    raw = read_dbn(s.write(tmp_path / "a.dbn"), instrument=TICK)
    z = read_dbn(s.write(tmp_path / "a.dbn.zst", compress=True), instrument=TICK)
    assert (tmp_path / "a.dbn.zst").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert np.array_equal(raw.array, z.array)


def test_not_one_order_book(tmp_path):
    """Several venues in one MBO stream, or top-of-book-only MBO: refused, not mangled."""
    s = Stream().mbo("A", "B", 1, 100, 1)
    s.records.append(dbn.MBOMsg(publisher_id=2, instrument_id=7, ts_event=s.ts, order_id=2, price=px(100),
                                size=1, action=dbn.Action.ADD, side=dbn.Side.BID, ts_recv=s.ts, flags=LAST))
    with pytest.raises(DataError, match="several venues"):
        read(tmp_path, s)
    tob = Stream().mbo("A", "B", 1, 100, 1).mbo("A", "B", 0, 100.25, 5, flags=LAST | 64)
    with pytest.raises(DataError, match="TOB") as ei:
        read(tmp_path, tob)
    assert ei.value.line == 2


def test_mixed_record_types(tmp_path):
    """Heartbeats and status records inside an MBO stream: heartbeats counted, statuses converted in place,
    record numbers kept."""
    s = Stream().mbo("A", "B", 1, 100, 1)
    s.records.append(dbn.SystemMsg(ts_event=s.ts, msg="heartbeat"))
    s.records.append(dbn.StatusMsg(publisher_id=1, instrument_id=7, ts_event=s.ts, ts_recv=s.ts))  # names no state
    s.mbo("C", "B", 9, 100, 1).mbo("C", "B", 1, 100, 1)
    ev = read(tmp_path, s)
    assert [r[0] for r in rows(ev)] == ["ADD", "DELETE"]
    assert ev.report.info["other_records"] == {"SystemMsg": 1, "StatusMsg": 1}
    assert ev.report.counts["skipped:status_unmapped"] == 1
    assert ev.report.examples[UNKNOWN_ORDER_ID] == [f"{tmp_path / 's.dbn'}:4: record 4: cancel of unknown order id 9"]


def _status(stream, trading, iid=7):
    stream.records.append(dbn.StatusMsg(publisher_id=1, instrument_id=iid, ts_event=stream.ts, ts_recv=stream.ts + 1,
                                        is_trading=dbn.TriState(trading), is_quoting=dbn.TriState("N")))
    return stream


def test_status_records_in_a_book_stream_become_status_events_in_place(tmp_path):
    s = Stream().mbo("A", "B", 1, 100, 1)
    _status(s, "N")  # a halt between two batches
    s.mbo("A", "B", 2, 100, 1, flags=0)  # a batch of two records ...
    _status(s, "Y")  # ... with the resumption inside it
    _status(s, "N", iid=8)  # another instrument's: not ours
    s.mbo("A", "A", 3, 101, 1)
    ev = read(tmp_path, s)
    assert [r[0] for r in rows(ev)] == ["ADD", "STATUS", "ADD", "STATUS", "ADD"]
    a = ev.array
    assert list(a["qty"][[1, 3]]) == [TradingStatus.HALT, TradingStatus.TRADING]
    assert list(a["flags"]) == [Flag.BATCH_END, 0, 0, 0, Flag.BATCH_END]  # the status does not end the batch
    assert ev.report.info["other_instrument_records"] == 1
    for chunk_rows in (1, 2, 3):
        got = collect(iter_dbn(s.write(tmp_path / "s.dbn"), instrument=TICK, chunk_rows=chunk_rows))
        assert got.array.tobytes() == a.tobytes()


# --------------------------------------------------------------------------- bad input
def _some_mbo():
    s = Stream()
    for i in range(40):
        s.mbo("A", "B" if i % 2 else "A", i + 1, 100 - (i % 2) * 0.25, 1 + i % 3)
    return s


def test_bad_files_raise_data_error(tmp_path):
    stream = _some_mbo()
    raw = stream.raw()
    first = len(raw) - sum(len(bytes(r)) for r in stream.records)  # offset of record 1
    junk = np.random.default_rng(7).bytes(3000)
    short = bytearray(raw)
    short[first + 56] = 6  # record 2 claims to be 24 bytes long: databento_dbn panics
    cases = {
        "empty.dbn": b"",
        "random.dbn": junk,
        "text.dbn": b"ts,price\n1,2\n",
        "header_only.dbn": raw[:20],
        "cut_record.dbn": raw[:-10],
        "garbage_after_header.dbn": raw[:first] + bytes(range(256)) * 2,
        "short_length_field.dbn": bytes(short),
        "zstd_magic_then_junk.dbn.zst": b"\x28\xb5\x2f\xfd" + junk[:300],
    }
    z = io.BytesIO()
    tc = dbn.Transcoder(z, dbn.Encoding.DBN, dbn.Compression.ZSTD)
    tc.write(raw)
    tc.finish()
    zb = z.getvalue()
    cases["cut.dbn.zst"] = zb[: len(zb) // 2]
    corrupt = bytearray(zb)
    corrupt[len(zb) // 2] ^= 0xFF
    cases["bitflip.dbn.zst"] = bytes(corrupt)
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(DataError) as ei:
            read_dbn(p, instrument=TICK)
        assert name in str(ei.value), name
    with pytest.raises(DataError) as ei:
        read_dbn(tmp_path / "cut_record.dbn")
    assert ei.value.line == 40  # the record that is cut
    with pytest.raises(DataError) as ei:
        read_dbn(tmp_path / "short_length_field.dbn")
    assert ei.value.line in (1, 2)  # located to within a few records


def test_every_truncation_point_is_handled(tmp_path):
    """Cut a raw stream at every byte: Events (cut at a record boundary) or DataError, nothing else."""
    raw = Stream().mbo("A", "B", 1, 100, 1).mbo("C", "B", 1, 100, 1).raw()
    p = tmp_path / "cut.dbn"
    ok = 0
    for n in range(len(raw)):
        p.write_bytes(raw[:n])
        try:
            read_dbn(p, instrument=TICK)
            ok += 1
        except DataError:
            pass
    assert ok == 2  # header + 0 records, header + 1 record


def test_unsupported_schema(tmp_path):
    s = Stream(schema=dbn.Schema.STATISTICS)
    p = s.write(tmp_path / "stats.dbn")
    with pytest.raises(DataError, match="unsupported DBN schema 'statistics'") as ei:
        read_dbn(p)
    assert "stats.dbn" in str(ei.value)


def test_missing_file(tmp_path):
    for call in (lambda p: read_dbn(p), lambda p: instrument_from_dbn(p),
                 lambda p: read_dbn(_some_mbo().write(tmp_path / "ok.dbn"), instrument=p)):
        with pytest.raises(DataError, match="file not found") as ei:
            call(tmp_path / "nonexistent.dbn")
        assert ei.value.file is not None and "nonexistent.dbn" in str(ei.value.file)
    with pytest.raises(DataError, match="file not found"):
        read_dbn("/nonexistent")
    with pytest.raises(DataError, match="is a directory"):  # a directory is no file either
        read_dbn(tmp_path)


def test_missing_package_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "databento_dbn", None)
    with pytest.raises(ImportError, match=r"pip install 'lobsim\[databento\]'"):
        read_dbn(tmp_path / "whatever.dbn")


# --------------------------------------------------------------------------- real data
def _attr_records(path):
    """Records decoded by databento_dbn's attribute API (independent of our byte layout)."""
    data = path.read_bytes()
    comp = dbn.Compression.ZSTD if data[:4] == b"\x28\xb5\x2f\xfd" else dbn.Compression.NONE
    return dbn.DBNDecoder(compression=comp).write_and_decode(data)[1:]


def _ch(v):
    return str(getattr(v, "value", v))


def _raw_columns(recs):
    """Columns of attribute-decoded records, for counts derived without lobsim's reader."""
    return SimpleNamespace(
        action=np.array([_ch(r.action) for r in recs]),
        order_id=np.array([r.order_id for r in recs], np.uint64), flags=np.array([int(r.flags) for r in recs]),
        ts_recv=np.array([r.ts_recv for r in recs], np.int64),
    )


def _raw_batch_ends(raw):
    """Where Databento's book is observable: records flagged F_LAST, plus the snapshot's last
    record (the snapshot records carry SNAPSHOT but not LAST in this file)."""
    snap = (raw.flags & SNAP) != 0
    return ((raw.flags & LAST) != 0) | (snap & ~np.r_[snap[1:], False])


@pytest.fixture(scope="module")
def esh4():
    if not ESH4.exists():
        pytest.skip(f"{ESH4} not found")
    recs = _attr_records(ESH4)
    return {"execute": read_dbn(ESH4), "ignore": read_dbn(ESH4, fills="ignore"), "records": recs,
            "raw": _raw_columns(recs)}


@pytest.fixture(scope="module")
def databento_book(esh4):
    """Databento's documented MBO semantics, replayed from the attribute-decoded records
    (A adds, C subtracts its size, M sets price/size (unknown id: add), R clears, T/F do
    nothing): top 5 levels after every F_LAST record (and the snapshot's end)."""
    from sortedcontainers import SortedDict

    recs = esh4["records"]
    orders, books = {}, {"B": SortedDict(), "A": SortedDict()}

    def level(side, price, delta):
        lv = books[side]
        lv[price] = lv.get(price, 0) + delta
        if lv[price] == 0:
            del lv[price]

    out = []
    for i, r in enumerate(recs):
        a, s = _ch(r.action), _ch(r.side)
        if a == "A" or (a == "M" and r.order_id not in orders):
            orders[r.order_id] = [s, r.price, r.size]
            level(s, r.price, r.size)
        elif a == "C":
            o = orders[r.order_id]
            level(o[0], o[1], -r.size)
            o[2] -= r.size
            if o[2] == 0:
                del orders[r.order_id]
        elif a == "M":
            o = orders[r.order_id]
            level(o[0], o[1], -o[2])
            o[1], o[2] = r.price, r.size
            level(o[0], r.price, r.size)
        elif a == "R":
            orders.clear()
            books["B"].clear()
            books["A"].clear()
        nxt = recs[i + 1] if i + 1 < len(recs) else None
        snap_end = r.flags & SNAP and (nxt is None or not nxt.flags & SNAP)
        if r.flags & LAST or snap_end:
            b, k = books["B"], books["A"]
            bids = [b.peekitem(-1 - j) for j in range(min(5, len(b)))]
            asks = [k.peekitem(j) for j in range(min(5, len(k)))]
            # comparable only if the next record has a later ts_recv (events align by ts_local)
            out.append((r.ts_recv, bids, asks, nxt is None or nxt.ts_recv > r.ts_recv))
    return out


@needs_data
def test_esh4_layout_matches_databento_attributes(esh4):
    rec, recno = _records(ESH4, "MBOMsg")
    assert rec.dtype == MBO_DTYPE
    recs = esh4["records"]
    assert len(rec) == len(recs) and recno[0] == 1 and recno[-1] == len(recs)
    assert len(recs) == 68_792  # the file the data README describes (68,792 MBO records)
    for f in ("ts_event", "ts_recv", "order_id", "price", "size", "flags", "sequence", "instrument_id",
              "ts_in_delta", "channel_id"):
        assert rec[f].tolist() == [int(getattr(r, f)) for r in recs], f
    assert bytes(rec["action"]).decode() == "".join(_ch(r.action) for r in recs)
    assert bytes(rec["side"]).decode() == "".join(_ch(r.side) for r in recs)


@needs_data
def test_esh4_counts_match_readme(esh4):
    """The reader's counts equal counts taken from the records as databento_dbn decodes
    them (not through lobsim's reader); those in turn are the data README's figures."""
    raw = esh4["raw"]
    actions = dict(Counter(raw.action.tolist()))
    n_snap = int(((raw.flags & SNAP) != 0).sum())
    # every C/M in this file refers to an order added before it (the README says so; checked
    # here), so each A, M, C record gives one ADD, MODIFY, DELETE/REDUCE event when fills are ignored
    known, unknown = set(), 0
    for a, oid in zip(raw.action.tolist(), raw.order_id.tolist()):
        if a == "A":
            known.add(oid)
        elif a in "CM":
            unknown += oid not in known
    assert unknown == 0
    rep = esh4["execute"].report
    assert rep.info["actions"] == actions
    assert rep.info["snapshot_records"] == n_snap
    assert not rep, str(rep)  # no anomaly: zero unknown ids, no crossing after the open
    assert rep.counts[UNKNOWN_ORDER_ID] == 0
    plain = esh4["ignore"].array
    kinds = Counter(plain["kind"].tolist())
    assert kinds[K.ADD] == actions["A"] and kinds[K.MODIFY] == actions["M"] and kinds[K.TRADE] == actions["T"]
    assert kinds[K.DELETE] + kinds[K.REDUCE] == actions["C"] and kinds[K.EXECUTE] == 0
    assert kinds[K.REDUCE] == 0  # every CME cancel removes the whole order
    a = esh4["execute"].array
    assert ((a["flags"] & Flag.SNAPSHOT) != 0).sum() == n_snap
    assert not (raw.flags[n_snap:] & SNAP).any()  # the snapshot records come first, so ...
    assert a["flags"][n_snap - 1] & Flag.BATCH_END  # ... the snapshot's end is a batch end
    # the raw counts are the figures the data README states for this file
    assert actions == {"A": 29_216, "C": 17_999, "M": 12_233, "T": 2_973, "F": 6_371} and n_snap == 8_725


@needs_data
@pytest.mark.parametrize("mode", ["execute", "ignore"])
def test_esh4_book_equals_databento_at_every_batch(esh4, databento_book, mode):
    a = esh4[mode].array
    ds = depth_series(a, 5)
    tl = a["ts_local"]
    checked = 0
    for ts, bids, asks, comparable in databento_book:
        if not comparable:
            continue
        j = np.searchsorted(tl, ts, side="right") - 1
        ours_b = [(int(p) * 250_000_000, int(q)) for p, q in zip(ds.bid_px[j], ds.bid_qty[j]) if q]
        ours_a = [(int(p) * 250_000_000, int(q)) for p, q in zip(ds.ask_px[j], ds.ask_qty[j]) if q]
        assert (ours_b, ours_a) == (bids, asks), f"batch ending at ts_recv {ts}"
        checked += 1
    # How many batch ends were compared, derived from the raw records without the loop above
    # (nor lobsim's reader): batch ends (F_LAST or the snapshot's end) after which the next
    # record has a later ts_recv; at the others the next record shares the ts_recv, and our
    # events, aligned by ts_local = ts_recv, show the book after that record. On this file:
    # 44,208 of 47,023 batch ends.
    raw = esh4["raw"]
    assert np.all(np.diff(raw.ts_recv) >= 0)
    ends = _raw_batch_ends(raw)
    tie_end = np.r_[raw.ts_recv[1:] > raw.ts_recv[:-1], True]
    assert checked == int((ends & tie_end).sum())
    assert checked > 0.9 * ends.sum()  # the comparison covers nearly every batch end
    # the reader marks exactly one BATCH_END per raw batch end
    assert int(((a["flags"] & Flag.BATCH_END) != 0).sum()) == int(ends.sum())


@needs_data
def test_esh4_never_crossed_after_open(esh4, databento_book):
    a = esh4["execute"].array
    ds = depth_series(a, 1, batch_end_only=True)
    crossed = (ds.bid_qty[:, 0] > 0) & (ds.ask_qty[:, 0] > 0) & (ds.bid_px[:, 0] >= ds.ask_px[:, 0])
    ts = a["ts_exch"][ds.index]
    assert not crossed[ts >= OPEN_NS].any()
    assert crossed[ts < OPEN_NS].any()  # the pre-open is crossed: the check can fail
    assert esh4["execute"].report.info["crossed_batch_ends_preopen"] == int(crossed.sum())
    # final BBO equals the independent replay's last batch end (the README: 4810.00 / 4810.25)
    _, bids, asks, _ = databento_book[-1]
    assert (ds.bid_px[-1, 0], ds.ask_px[-1, 0]) == (bids[0][0] // 250_000_000, asks[0][0] // 250_000_000)
    assert (ds.bid_px[-1, 0], ds.ask_px[-1, 0]) == (19_240, 19_241)  # 4810.00 / 4810.25 in 0.25 ticks


@needs_data
def test_esh4_book_conserves_quantity(esh4):
    a = esh4["execute"].array
    with OrderBook() as book:
        res = book.apply(a)
        assert res.rejected == 0
        book.check()
        t = book.totals()
        assert t["added"] == t["resting"] + t["executed"] + t["cancelled"]
        assert t["executed"] == int(a["qty"][a["kind"] == K.EXECUTE].sum()) > 0
        assert len(book) == esh4["execute"].report.info["resting_orders_at_end"]
    fills = sum(r.size for r in esh4["records"] if _ch(r.action) == "F")
    assert t["executed"] <= fills


@needs_data
def test_esu4_mbp1_best_equals_vendor_after_every_record():
    ev = read_dbn(MBP1)
    assert not ev.report
    recs = _attr_records(MBP1)
    a = ev.array
    ds = depth_series(a, 2)
    assert not ds.bid_qty[:, 1].any() and not ds.ask_qty[:, 1].any()  # one level, never stale
    tl = a["ts_local"]
    checked = 0
    for i, r in enumerate(recs):
        if i + 1 < len(recs) and recs[i + 1].ts_recv == r.ts_recv:
            continue  # state is observable after the last record of a ts_recv tie
        j = np.searchsorted(tl, r.ts_recv, side="right") - 1
        lv = r.levels[0]
        assert (int(ds.bid_px[j, 0]) * 250_000_000, int(ds.bid_qty[j, 0])) == (lv.bid_px, lv.bid_sz), i
        assert (int(ds.ask_px[j, 0]) * 250_000_000, int(ds.ask_qty[j, 0])) == (lv.ask_px, lv.ask_sz), i
        checked += 1
    # Compared once per distinct ts_recv (the last record of each tie), derived from the raw
    # records' timestamps: on this file 2,188 of 2,288 records. The reader's events carry
    # ts_local = ts_recv (one record, an add that left the top of book as it was, gives none).
    ts_recv = np.array([r.ts_recv for r in recs], np.int64)
    assert np.all(np.diff(ts_recv) >= 0)
    assert checked == len(np.unique(ts_recv)) > 0.9 * len(recs)
    assert set(tl.tolist()) <= set(ts_recv.tolist())
    with LevelBook() as book:
        book.apply(a)
        lv = recs[-1].levels[0]
        assert book.best_bid() == (lv.bid_px // 250_000_000, lv.bid_sz)


@needs_data
def test_esu4_trades_and_definition():
    ev = read_dbn(TRADES, instrument=DEFS)
    a = ev.array
    raw = _attr_records(TRADES)  # 120 trade records: 66 with aggressor side B, 54 with A
    assert len(a) == len(raw) and (a["kind"] == K.TRADE).all()
    assert ev.instrument == Instrument("ESU4", Decimal("0.25"))
    assert "definition" in ev.report.info["tick_size_source"]
    assert a["side"].tolist() == [{"B": 1, "A": -1}[_ch(r.side)] for r in raw]
    assert Counter(a["side"].tolist()) == {1: 66, -1: 54}  # both aggressor sides occur
    # the same 120 trades appear as action T in the MBP-1 file of the same window
    m = read_dbn(MBP1, instrument=instrument_from_dbn(DEFS, "ESU4")).array
    t = m[m["kind"] == K.TRADE]
    for f in ("ts_exch", "ts_local", "price", "qty", "side"):
        assert np.array_equal(t[f], a[f]), f
    nq = instrument_from_dbn(DEFS, "NQU4")
    assert nq.symbol == "NQU4" and nq.tick_size == Decimal("0.25")
    with pytest.raises(DataError, match="cannot pick one"):
        instrument_from_dbn(DEFS)


@needs_data
def test_fixtures_decode_the_same_across_versions_and_compression():
    groups = {}
    for p in sorted(FIXTURES.glob("test_data.*")):
        schema = p.name.split(".")[1]
        if schema in ("mbp-10", "bbo-1s", "cbbo-1s", "cmbp-1", "status"):
            continue  # tests/test_dbn_schemas.py
        if schema not in ("mbo", "mbp-1", "trades", "tbbo"):
            with pytest.raises(DataError, match="unsupported DBN schema") as ei:
                read_dbn(p)
            assert p.name in str(ei.value)
            continue
        groups.setdefault(schema, []).append((p.name, read_dbn(p, instrument=Instrument("ESH1", "0.25"))))
    # Files per schema, as `ls fixtures/test_data.<schema>.*` shows: test_data.<schema>.dbn plus
    # .v1, .v2 and .v3.dbn.zst, and for mbo also an uncompressed .v3.dbn. Pinned so that a
    # missing file is noticed: every group below is compared across versions and compressions.
    assert {k: len(v) for k, v in groups.items()} == {"mbo": 5, "mbp-1": 4, "trades": 4, "tbbo": 4}
    for schema, evs in groups.items():
        first = evs[0][1].array
        for name, ev in evs[1:]:
            assert np.array_equal(ev.array, first), name
    # counts derived from the records as databento_dbn decodes them
    raw = {k: _attr_records(FIXTURES / v[0][0]) for k, v in groups.items()}
    # the MBO fixture is two cancels (C) of orders added before it starts: both unknown ids
    assert [_ch(r.action) for r in raw["mbo"]] == ["C", "C"]
    assert groups["mbo"][0][1].report.counts[UNKNOWN_ORDER_ID] == len(raw["mbo"]) == 2
    assert len(groups["mbo"][0][1]) == 0
    # one TRADE per trade record
    assert len(groups["trades"][0][1]) == len(raw["trades"]) == 2
    # MBP-1: one SET_LEVEL per side whose top level changed at an unchanged (or first) price;
    # here the first record sets bid and ask, the second changes only the ask size: 3 events
    state, changes = {"bid": None, "ask": None}, 0
    for r in raw["mbp-1"]:
        lv = r.levels[0]
        for sd, now in (("bid", (lv.bid_px, lv.bid_sz)), ("ask", (lv.ask_px, lv.ask_sz))):
            if now != state[sd]:
                assert state[sd] is None or state[sd][0] == now[0]  # no price move: 1 event each
                changes += 1
                state[sd] = now
    assert len(groups["mbp-1"][0][1]) == changes == 3


@needs_data
@pytest.mark.parametrize("cls, dtype, path", [("MBP1Msg", MBP1_DTYPE, MBP1), ("TradeMsg", TRADE_DTYPE, TRADES)])
def test_layouts_match_databento_attributes(cls, dtype, path):
    rec, _ = _records(path, cls)
    assert rec.dtype == dtype
    recs = _attr_records(path)
    for f in ("ts_event", "ts_recv", "price", "size", "flags", "sequence", "depth"):
        assert rec[f].tolist() == [int(getattr(r, f)) for r in recs], f
    if cls == "MBP1Msg":
        for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
            assert rec[f].tolist() == [int(getattr(r.levels[0], f)) for r in recs], f


@needs_data
def test_truncated_real_file(tmp_path):
    data = ESH4.read_bytes()
    for n in (len(data) // 2, len(data) - 7, 60):
        p = tmp_path / "cut.mbo.dbn.zst"
        p.write_bytes(data[:n])
        with pytest.raises(DataError, match="truncated") as ei:
            read_dbn(p)
        assert "cut.mbo.dbn.zst" in str(ei.value)


# --------------------------------------------------------------------------- MBO tracker vs Databento's rules
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lobsim.data.dbn as dbn_mod  # noqa: E402
from lobsim.data.events import ValidationReport  # noqa: E402


@st.composite
def mbo_records(draw):
    """Plausible MBO streams: mostly consistent with the book, with unknown ids, partial
    and oversized cancels, fills at and away from the order, iceberg-like refills, clears."""
    rows, book, next_id = [], {}, 1
    for _ in range(draw(st.integers(1, 50))):
        act = draw(st.sampled_from("AAACCMMFFFTRN" if book else "AAAACFTN"))
        last = draw(st.booleans())
        if act == "A":
            if book and draw(st.integers(0, 30)) == 0:
                oid = draw(st.sampled_from(sorted(book)))  # duplicate add
            else:
                oid, next_id = next_id, next_id + 1
            side, price, size = draw(st.sampled_from("BA")), draw(st.integers(396, 404)), draw(st.integers(1, 5))
            book[oid] = [side, price, size]
            rows.append(("A", oid, side, price, size, last))
        elif act in "CMF":
            known = book and draw(st.integers(0, 9)) > 0
            oid = draw(st.sampled_from(sorted(book))) if known else 1000 + draw(st.integers(0, 3))
            side, price, size = book.get(oid, ["B", 400, 1])
            if act == "C":
                c = draw(st.sampled_from([size, max(1, size - 1), size + 1, 1]))
                rows.append(("C", oid, side, price, c, last))
                if known:
                    book[oid][2] -= c
                    if book[oid][2] <= 0:
                        del book[oid]
            elif act == "M":
                new = [side, draw(st.integers(396, 404)), draw(st.integers(1, 5))]
                rows.append(("M", oid, side, new[1], new[2], last))
                book[oid] = new
            else:
                f_side = side if draw(st.integers(0, 5)) else draw(st.sampled_from("BAN"))
                f_price = price if draw(st.integers(0, 5)) else draw(st.integers(396, 404))
                rows.append(("F", oid, f_side, f_price, draw(st.integers(1, size + 1)), last))
        elif act == "T":
            rows.append(("T", draw(st.integers(0, 3)), draw(st.sampled_from("BAN")), draw(st.integers(396, 404)),
                         draw(st.integers(1, 5)), last))
        elif act == "R":
            book.clear()
            rows.append(("R", 0, "N", None, 0, last))
        else:
            rows.append(("N", 0, "N", None, 0, last))
    rec = np.zeros(len(rows), dtype=MBO_DTYPE)
    for i, (a, oid, side, price, size, last) in enumerate(rows):
        rec[i]["action"], rec[i]["side"], rec[i]["order_id"] = ord(a), ord(side), oid
        rec[i]["price"] = dbn.UNDEF_PRICE if price is None else price * 250_000_000
        rec[i]["size"], rec[i]["flags"] = size, LAST if last else 0
        rec[i]["ts_event"], rec[i]["ts_recv"] = 1000 * (i + 1), 1000 * (i + 1) + 7
    rec["length"], rec["rtype"] = 14, 160
    return rec


def _convert(rec, fills):
    report = ValidationReport(source="mem")
    out, ev_rec = dbn_mod._mbo_events(rec, np.arange(1, len(rec) + 1), TICK, report, fills)
    return out, ev_rec, report


def _databento_depth_after_each(rec):
    """Databento's own semantics, record by record: {side: {price: size}} after each."""
    orders, lv, out = {}, {"B": Counter(), "A": Counter()}, []
    for r in rec:
        a, oid, s, p, q = chr(r["action"]), int(r["order_id"]), chr(r["side"]), int(r["price"]), int(r["size"])
        if a == "A" or (a == "M" and oid not in orders):
            if oid in orders:  # duplicate add replaces the order
                o = orders.pop(oid)
                lv[o[0]][o[1]] -= o[2]
            orders[oid] = [s, p, q]
            lv[s][p] += q
        elif a == "C" and oid in orders:
            o = orders[oid]
            take = min(q, o[2])
            lv[o[0]][o[1]] -= take
            o[2] -= take
            if o[2] == 0:
                del orders[oid]
        elif a == "M":
            o = orders[oid]
            lv[o[0]][o[1]] -= o[2]
            o[1], o[2] = p, q
            lv[o[0]][p] += q
        elif a == "R":
            orders.clear()
            lv = {"B": Counter(), "A": Counter()}
        out.append({k: {p // 250_000_000: v for p, v in c.items() if v} for k, c in lv.items()})
    return out


def _depth_plus_pending_executions(rec, events, ev_rec):
    """Our book after each record, with the executions not yet reconciled by a later
    A/C/M of the same order (or an R) added back: Databento's book keeps those until then."""
    ds = depth_series(events, 60)
    pending = {}  # order id -> [side, price, executed qty]
    out, j = [], 0
    for i, r in enumerate(rec):
        a = chr(r["action"])
        if a == "R":
            pending.clear()
        elif a in "ACM":
            pending.pop(int(r["order_id"]), None)
        while j < len(ev_rec) and ev_rec[j] == i:
            e = events[j]
            if e["kind"] == K.EXECUTE:
                pending.setdefault(int(e["order_id"]), [int(e["side"]), int(e["price"]), 0])[2] += int(e["qty"])
            j += 1
        got = {"B": Counter(), "A": Counter()}
        if j:
            got = {"B": Counter({int(p): int(q) for p, q in zip(ds.bid_px[j - 1], ds.bid_qty[j - 1]) if q}),
                   "A": Counter({int(p): int(q) for p, q in zip(ds.ask_px[j - 1], ds.ask_qty[j - 1]) if q})}
        for sd, p, q in pending.values():
            got["B" if sd > 0 else "A"][p] += q
        out.append({k: {p: q for p, q in c.items() if q} for k, c in got.items()})
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rec=mbo_records(), fills=st.sampled_from(["execute", "ignore"]))
def test_mbo_tracker_equals_databento_rules(rec, fills):
    events, ev_rec, report = _convert(rec, fills)
    assert np.all(np.diff(ev_rec) >= 0) and len(ev_rec) == len(events)
    mapping = report.info["mbo_mapping"]
    n_fills = int((rec["action"] == ord("F")).sum())
    if fills == "ignore":
        assert not (events["kind"] == K.EXECUTE).any()
        assert mapping.get("fill_not_emitted", 0) == n_fills
    else:  # every F is executed or counted under one reason
        assert mapping.get("fill_executed", 0) == int((events["kind"] == K.EXECUTE).sum())
        assert sum(mapping.get(k, 0) for k in ("fill_executed", "fill_unknown_order", "fill_not_at_resting_order",
                                                "fill_exceeds_order")) == n_fills
    with OrderBook() as book:  # every event is valid for the C book
        res = book.apply(events, strict=False)
        assert res.rejected == 0, res
        book.check()
        # resting_orders_at_end counts Databento's orders; ours lack those fully executed
        # by fills whose C/M has not come yet
        assert len(book) <= report.info["resting_orders_at_end"]
        if fills == "ignore":
            assert len(book) == report.info["resting_orders_at_end"]
    if len(events):  # equal to Databento's book after every record (plus unreconciled executions)
        want = _databento_depth_after_each(rec)
        got = _depth_plus_pending_executions(rec, events, ev_rec)
        for i in range(len(rec)):
            assert got[i] == want[i], f"after record {i}"


@needs_data
def test_esh4_mbo_mapping_accounts_for_every_record(esh4):
    """Each A/M/C record gives exactly one event, except a C that only removes what fills
    already executed; each F is executed or counted under one reason."""
    acts = esh4["execute"].report.info["actions"]
    for mode in ("execute", "ignore"):
        ev = esh4[mode]
        m = ev.report.info["mbo_mapping"]
        kinds = Counter(ev.array["kind"].tolist())
        book_events = kinds[K.ADD] + kinds[K.MODIFY] + kinds[K.DELETE] + kinds[K.REDUCE]
        assert book_events == acts["A"] + acts["M"] + acts["C"] - m.get("cancel_absorbed_by_execute", 0)
        assert kinds[K.TRADE] == acts["T"] and kinds[K.EXECUTE] == m.get("fill_executed", 0)
        assert ev.report.info["resting_orders_at_end"] == esh4["execute"].report.info["resting_orders_at_end"]
    assert esh4["ignore"].report.info["mbo_mapping"] == {"fill_not_emitted": acts["F"]}
    m = esh4["execute"].report.info["mbo_mapping"]
    assert sum(m[k] for k in ("fill_executed", "fill_unknown_order", "fill_not_at_resting_order",
                              "fill_exceeds_order")) == acts["F"]
    assert m["fill_executed"] > 0.9 * acts["F"]  # most fills are executions of resting orders
