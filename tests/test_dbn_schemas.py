"""Databento schemas beyond MBO/MBP-1/trades: mbp-10, cmbp-1, bbo-1s, cbbo-1s and status.

Layouts are checked field by field against databento_dbn's attribute decoding on the
fixtures of every DBN version; the L2 books rebuilt from the events (lobsim's LevelBook)
are compared with each record's own levels; status mapping against a hand-written table.
A synthetic MBP-10 stream (databento_dbn's own record classes) exercises level changes,
deletions, levels pushed out of the ten, clears, batches spanning records and chunk and
block boundaries.
"""
from pathlib import Path

import numpy as np
import pytest

from lobsim import DataError, EventKind, Flag, Instrument, TradingStatus

dbn = pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

import lobsim.data.dbn_decode as dbn_decode  # noqa: E402
from lobsim.book import depth_series  # noqa: E402
from lobsim.data.dbn import _records, iter_dbn, read_dbn, status_of  # noqa: E402
from lobsim.data.events import ValidationReport, collect  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "databento"
FIXTURES = DATA / "fixtures"
needs_data = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"Databento fixtures not found at {FIXTURES}")
ESH1 = Instrument("ESH1", "0.25")
K = EventKind
NS = 10**9
LAST = 128
TICK = 250_000_000  # 0.25 in DBN's 1e-9 units
CLASSES = {"mbp-10": "MBP10Msg", "cmbp-1": "CMBP1Msg", "bbo-1s": "BBOMsg", "cbbo-1s": "CBBOMsg", "status": "StatusMsg"}


def fixtures(schema):
    return sorted(FIXTURES.glob(f"test_data.{schema}.*"))


def attr_records(path):
    data = path.read_bytes()
    comp = dbn.Compression.ZSTD if data[:4] == b"\x28\xb5\x2f\xfd" else dbn.Compression.NONE
    return dbn.DBNDecoder(compression=comp).write_and_decode(data)[1:]


def _int(v):
    if v is None or isinstance(v, bool):  # a TriState attribute: True 'Y', False 'N', None '~'
        return ord({True: "Y", False: "N", None: "~"}[v])
    v = getattr(v, "value", v)
    return ord(v) if isinstance(v, str) else int(v)


@needs_data
@pytest.mark.parametrize("schema", list(CLASSES))
def test_layouts_match_databento_attributes(schema):
    paths = fixtures(schema)
    assert len(paths) == (4 if schema == "mbp-10" else 3)  # .dbn (v2), .v2 and .v3.dbn.zst; mbp-10 also .v1
    for path in paths:
        rec, recno = _records(path, CLASSES[schema])
        recs = attr_records(path)
        assert len(rec) == len(recs) and list(recno) == list(range(1, len(recs) + 1))
        top = [f for f in rec.dtype.names if not f.startswith("_") and f not in ("length", "levels")]
        lv_fields = [f for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct", "bid_pb", "ask_pb")]
        for f in top:
            if f in lv_fields:
                assert rec[f].tolist() == [_int(getattr(r.levels[0], f)) for r in recs], (path.name, f)
            else:
                assert rec[f].tolist() == [_int(getattr(r, f)) for r in recs], (path.name, f)
        if "levels" in rec.dtype.names:
            for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "bid_ct", "ask_ct"):
                assert rec["levels"][f].tolist() == [[getattr(lv, f) for lv in r.levels] for r in recs], f


def _levels_of(r, depth):
    """{'B': [(px, sz)...], 'A': [...]} of a record's defined levels (attribute decoding)."""
    out = {"B": [], "A": []}
    for lv in r.levels[:depth]:
        if lv.bid_px != dbn.UNDEF_PRICE and lv.bid_sz > 0:
            out["B"].append((lv.bid_px // TICK, lv.bid_sz))
        if lv.ask_px != dbn.UNDEF_PRICE and lv.ask_sz > 0:
            out["A"].append((lv.ask_px // TICK, lv.ask_sz))
    return out


def check_book_equals_records(ev, recs, depth, every_record=False):
    """The LevelBook rebuilt from the events equals each record's levels, and nothing beyond
    them, after every record flagged LAST (or every record): the book after the last event
    of that record or before it (records have distinct, increasing ts_recv = ts_local)."""
    a = ev.array
    ts = np.array([r.ts_recv for r in recs], np.int64)
    assert np.all(np.diff(ts) > 0)
    ds = depth_series(a, depth + 2)
    tl = a["ts_local"]
    ends = [r for r in recs if every_record or r.flags & LAST]
    marked = set()
    for r in ends:
        j = int(np.searchsorted(tl, r.ts_recv, side="right")) - 1
        got = {"B": [], "A": []}
        if j >= 0:
            got = {"B": [(int(p), int(q)) for p, q in zip(ds.bid_px[j], ds.bid_qty[j]) if q],
                   "A": [(int(p), int(q)) for p, q in zip(ds.ask_px[j], ds.ask_qty[j]) if q]}
            assert a["flags"][j] & Flag.BATCH_END
            marked.add(j)
        assert got == _levels_of(r, depth), r.ts_recv
    assert marked == set(np.flatnonzero(a["flags"] & Flag.BATCH_END).tolist())


@needs_data
@pytest.mark.parametrize("schema, depth, every", [("mbp-10", 10, False), ("cmbp-1", 1, False),
                                                  ("bbo-1s", 1, True), ("cbbo-1s", 1, True)])
def test_fixture_books_equal_the_records(schema, depth, every):
    evs = []
    for path in fixtures(schema):
        ev = read_dbn(path, instrument=ESH1)
        assert not ev.report, str(ev.report)
        check_book_equals_records(ev, attr_records(path), depth, every)
        assert (ev.array["kind"] == K.SET_LEVEL).all()
        evs.append(ev.array)
    assert all(np.array_equal(e, evs[0]) for e in evs[1:])  # the same across versions and compression


@needs_data
def test_mbp10_fixture_emits_only_changes():
    """The second record changes one bid size (level 2, 31 -> 30): one event after the first
    record's 20 levels."""
    ev = read_dbn(FIXTURES / "test_data.mbp-10.v3.dbn.zst", instrument=ESH1)
    a = ev.array
    assert len(a) == 21
    assert (a["side"][20], a["price"][20], a["qty"][20]) == (1, 14880, 30)
    assert list(a["flags"][[19, 20]]) == [Flag.BATCH_END, Flag.BATCH_END]


# --------------------------------------------------------------------------- status
STATUS_TABLE = [  # (action, is_trading, is_quoting) -> TradingStatus or None (not named: counted)
    (7, "Y", "Y", TradingStatus.TRADING),
    (1, "N", "Y", TradingStatus.QUOTING),
    (6, "Y", "Y", TradingStatus.TRADING),  # the tri-states decide over the action
    (8, "N", "N", TradingStatus.HALT),
    (9, "~", "~", TradingStatus.HALT),
    (10, "~", "~", TradingStatus.HALT),
    (12, "~", "~", TradingStatus.HALT),
    (15, "~", "~", TradingStatus.HALT),
    (3, "~", "~", TradingStatus.QUOTING),
    (2, "~", "~", TradingStatus.QUOTING),
    (4, "~", "~", TradingStatus.QUOTING),
    (7, "~", "~", TradingStatus.TRADING),
    (7, "N", "~", None),  # TRADING action but is_trading 'N': contradictory, not guessed
    (8, "N", "~", TradingStatus.HALT),
    (0, "~", "~", None),
    (11, "~", "~", None),
    (13, "~", "~", None),
    (14, "~", "~", None),
    (99, "~", "~", None),
    (99, "Y", "~", TradingStatus.TRADING),
]


@pytest.mark.parametrize("action, trading, quoting, want", STATUS_TABLE)
def test_status_mapping_table(action, trading, quoting, want):
    assert status_of(action, ord(trading), ord(quoting)) == want


@needs_data
def test_status_fixture():
    for path in fixtures("status"):
        ev = read_dbn(path)
        a = ev.array
        recs = attr_records(path)
        assert list(a["kind"]) == [K.STATUS] * 4
        # TRADING, PRE_OPEN (quoting), PRE_OPEN with NO_CANCEL (quoting), NEW_PRICE_INDICATION with is_trading Y
        assert list(a["qty"]) == [TradingStatus.TRADING, TradingStatus.QUOTING, TradingStatus.QUOTING,
                                  TradingStatus.TRADING]
        assert list(a["ts_exch"]) == [r.ts_event for r in recs] and list(a["ts_local"]) == [r.ts_recv for r in recs]
        assert (a["flags"] == Flag.BATCH_END).all() and (a["side"] == 0).all()
        assert ev.report.info["status_actions"] == {"TRADING": 1, "PRE_OPEN": 2, "NEW_PRICE_INDICATION": 1}
        assert not ev.report


def _status_file(tmp_path, rows):
    meta = dbn.Metadata(dataset="XNAS.ITCH", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.STATUS, symbols=["X"], mappings=[])
    recs = []
    for k, (action, trading, quoting) in enumerate(rows):
        r = dbn.StatusMsg(publisher_id=1, instrument_id=7, ts_event=NS + k, ts_recv=NS + k + 5,
                          is_trading=dbn.TriState(trading), is_quoting=dbn.TriState(quoting))
        b = bytearray(bytes(r))
        b[24:26] = int(action).to_bytes(2, "little")  # any u16, also values databento_dbn has no name for
        recs.append(bytes(b))
    p = tmp_path / "status.dbn"
    p.write_bytes(bytes(meta) + b"".join(recs))
    return p


def test_status_unknown_values_are_counted_not_guessed(tmp_path):
    p = _status_file(tmp_path, [(8, "~", "~"), (99, "~", "~"), (0, "~", "~"), (7, "~", "~")])
    ev = read_dbn(p)
    assert list(ev.array["qty"]) == [TradingStatus.HALT, TradingStatus.TRADING]
    assert ev.report.counts["skipped:status_unmapped"] == 2
    assert ev.report.info["status_actions"] == {"HALT": 1, "unknown(99)": 1, "NONE": 1, "TRADING": 1}
    with pytest.raises(DataError, match="status_unmapped") as ei:
        read_dbn(p, strict=True)
    assert ei.value.line == 2


# --------------------------------------------------------------------------- synthetic MBP-10
def mbp10_stream(seed, n=400):
    """Random but valid 10-level books, one record per change, with clears and multi-record batches."""
    rng = np.random.default_rng(seed)
    bids, asks = {}, {}
    recs, ts = [], 1_700_000_000 * NS
    for i in range(n):
        ts += 1000
        roll = rng.integers(0, 100)
        action = "A"
        if roll < 3:
            bids.clear()
            asks.clear()
            action = "R"
        else:
            book, side = (bids, "B") if rng.integers(0, 2) else (asks, "A")
            px = int(rng.integers(980, 1000)) if side == "B" else int(rng.integers(1000, 1020))
            if px in book and rng.integers(0, 3) == 0:
                del book[px]
                action = "C"
            else:
                book[px] = int(rng.integers(1, 50))
                action = "A" if rng.integers(0, 2) else "M"
        top_b = sorted(bids.items(), reverse=True)[:10]
        top_a = sorted(asks.items())[:10]
        levels = []
        for j in range(10):
            b = top_b[j] if j < len(top_b) else (None, 0)
            a = top_a[j] if j < len(top_a) else (None, 0)
            levels.append(dbn.BidAskPair(bid_px=b[0] * TICK if b[0] else dbn.UNDEF_PRICE, bid_sz=b[1], bid_ct=1,
                                         ask_px=a[0] * TICK if a[0] else dbn.UNDEF_PRICE, ask_sz=a[1], ask_ct=1))
        last = LAST if rng.integers(0, 4) else 0  # about a quarter of the records continue a batch
        if i == n - 1:
            last = LAST
        if rng.integers(0, 40) == 0:
            action = "T"
        recs.append(dbn.MBP10Msg(
            publisher_id=1, instrument_id=7, ts_event=ts, price=1000 * TICK, size=1,
            action={"A": dbn.Action.ADD, "C": dbn.Action.CANCEL, "M": dbn.Action.MODIFY, "R": dbn.Action.CLEAR,
                    "T": dbn.Action.TRADE}[action], side=dbn.Side.BID, depth=0, ts_recv=ts + 7, flags=last,
            levels=levels))
    return recs


def write_mbp10(path, recs):
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBP_10, symbols=["TEST"], mappings=[])
    path.write_bytes(bytes(meta) + b"".join(bytes(r) for r in recs))
    return path


TEST = Instrument("TEST", "0.25")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_mbp10_book_equals_every_batch(tmp_path, seed):
    recs = mbp10_stream(seed)
    p = write_mbp10(tmp_path / "s.mbp10.dbn", recs)
    ev = read_dbn(p, instrument=TEST)
    check_book_equals_records(ev, recs, 10)
    a = ev.array
    assert (a["qty"][a["kind"] == K.SET_LEVEL] == 0).any()  # deletions happen
    assert (a["kind"] == K.CLEAR).sum() == sum(1 for r in recs if str(r.action) in ("R", "Action.CLEAR"))
    # only changes: never a SET_LEVEL that repeats the level's current size
    current, repeats = {}, 0
    for e in a:
        if e["kind"] == K.CLEAR:
            current.clear()
        elif e["kind"] == K.SET_LEVEL:
            key = (int(e["side"]), int(e["price"]))
            repeats += current.get(key, 0) == int(e["qty"])
            current[key] = int(e["qty"])
    assert repeats == 0
    # chunked == one-shot, with chunk and block boundaries everywhere
    for rows in (1, 2, 7, 31):
        chunks = list(iter_dbn(p, instrument=TEST, chunk_rows=rows))
        assert np.concatenate([c.array for c in chunks]).tobytes() == a.tobytes()
        merged = ValidationReport.merged([c.report for c in chunks])
        assert merged.counts == ev.report.counts and merged.info == ev.report.info


@pytest.mark.parametrize("block_records", [1, 2, 5, 17])
def test_synthetic_mbp10_small_blocks(tmp_path, monkeypatch, block_records):
    recs = mbp10_stream(4, n=150)
    p = write_mbp10(tmp_path / "s.mbp10.dbn", recs)
    whole = read_dbn(p, instrument=TEST)
    size = block_records * 368 + 11
    monkeypatch.setattr(dbn_decode.DbnSource.blocks, "__defaults__", (size,))
    got = collect(iter_dbn(p, instrument=TEST, chunk_rows=3))
    assert got.array.tobytes() == whole.array.tobytes()
    assert got.report.info == whole.report.info and got.report.counts == whole.report.counts


def test_inferred_tick_from_the_first_block_then_a_finer_price(tmp_path, monkeypatch):
    """Without an instrument the tick is inferred from the first block; a later price off it
    is a DataError naming the record and asking for instrument=."""
    recs = mbp10_stream(5, n=60)
    lv = [dbn.BidAskPair(bid_px=999 * TICK + 10_000_000, bid_sz=1, bid_ct=1, ask_px=dbn.UNDEF_PRICE, ask_sz=0,
                         ask_ct=0)] + [dbn.BidAskPair()] * 9
    recs.append(dbn.MBP10Msg(publisher_id=1, instrument_id=7, ts_event=2 * 10**18, price=0, size=0,
                             action=dbn.Action.ADD, side=dbn.Side.BID, depth=0, ts_recv=2 * 10**18, flags=LAST,
                             levels=lv))
    p = write_mbp10(tmp_path / "t.dbn", recs)
    monkeypatch.setattr(dbn_decode.DbnSource.blocks, "__defaults__", (368 * 10,))
    with pytest.raises(DataError, match="not a multiple") as ei:
        read_dbn(p)
    assert ei.value.line == 61 and "instrument=" in str(ei.value)
