"""iter_binance: chunked == one-shot (bit-identical arrays, merged reports) on the real captures
(USD-M, COIN-M over two files, spot) with chunk sizes 1, small primes and hypothesis-drawn ones; tiny
internal buffers (lines straddle input pieces, parse buffers fill up mid-capture); the Python path for
lines the C parser hands back gives the same events; bad input anywhere is a DataError naming file and
line; progress; keep_pre_snapshot on the real captures."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lobsim.data.binance as bn
from lobsim import DataError, EventKind, Flag
from lobsim.book import depth_series
from lobsim.data.binance import iter_binance, read_binance
from lobsim.data.events import CROSSED_BOOK, NO_SNAPSHOT, OUT_OF_ORDER_TS, SEQUENCE_GAP
from test_tardis_stream import assert_stream_equal
from test_tardis_stream import check_chunked as _check_chunked

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
USDM = [DATA / "usdm" / "btcusdt_20240808.gz"]
CM = [DATA / "cm" / "btcusd_perp_20240808.gz", DATA / "cm" / "btcusd_perp_20240809.gz"]
SPOT = [DATA / "spot" / "btcusdt_20240808.gz", DATA / "spot" / "btcusdt_20240809.gz"]
CAPTURES = {"usdm": USDM, "cm": CM, "spot": SPOT}
MS = 1_000_000
PRE = int(Flag.PRE_SNAPSHOT)

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real Binance captures not found at {DATA}")


def check_chunked(paths, sizes, **kw):
    return _check_chunked(read_binance, iter_binance, paths, sizes=sizes, **kw)


_ONE = {}


def one_shot(name):
    if name not in _ONE:
        _ONE[name] = read_binance(CAPTURES[name])
    return _ONE[name]


def lines_of(paths, n=None):
    out = []
    for p in paths:
        with gzip.open(p, "rb") as fh:
            out += fh.readlines()
    return out[:n]


def write(path, lines, gz=True):
    raw = b"".join(lines)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


# -- real captures ------------------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("name", ["usdm", "cm", "spot"])
def test_real_capture_chunked_equals_one_shot(name):
    one = one_shot(name)
    assert len(one) > 300_000 and not one.report.counts
    for k in (7, 101, 4099, 65537):
        assert_stream_equal(one, list(iter_binance(CAPTURES[name], chunk_rows=k)), k)


@needs_data
@given(k=st.integers(1, 200_000))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_real_capture_random_chunk_sizes(k):
    assert_stream_equal(one_shot("cm"), list(iter_binance(CM, chunk_rows=k)), k)


@needs_data
def test_chunk_rows_1_on_prefixes(tmp_path):
    """Every event its own chunk: the usdm start (snapshot of 2,000 levels, buffered diffs) and a two-file
    COIN-M prefix (the files read in order)."""
    usdm = write(tmp_path / "u.gz", lines_of(USDM, 1500))
    one = check_chunked(usdm, [1, 2, 3])
    assert one.report.info["snapshots"] == 1 and one.report.info["diffs_buffered_until_snapshot"] == 2
    a = write(tmp_path / "a.gz", lines_of(CM[:1], 600))
    b = write(tmp_path / "b.gz", lines_of(CM[1:], 600))
    one = check_chunked([a, b], [1, 5])
    assert one.report.info["files"] == 2
    assert one.report.counts[SEQUENCE_GAP] == 1  # the files' cut ends do not chain


@needs_data
def test_tiny_internal_buffers_change_nothing(monkeypatch):
    """Input read in 4 kB pieces, parse buffers of 1,000 events / 64 messages: lines cross pieces, buffers
    fill mid-line, the snapshot line (2,000 levels) needs a bigger buffer; the result is the same."""
    tick = {"tick_size": "0.1", "lot_size": "1"}
    ref = read_binance(CM, **tick)
    monkeypatch.setattr(bn, "_PIECE", 4099)
    monkeypatch.setattr(bn, "_EV_CAP", 1000)
    monkeypatch.setattr(bn, "_MSG_CAP", 64)
    monkeypatch.setattr(bn, "_INFER_BYTES", 5000)
    small = check_chunked(CM, [997], **tick)
    assert small.array.tobytes() == ref.array.tobytes()
    assert small.report.to_dict() == ref.report.to_dict()


@needs_data
def test_python_path_gives_the_same_events(tmp_path):
    """The same messages written so that the C parser hands every line back (a non-ASCII escape in an extra
    field), or takes an unusual shape (bare messages, keys reversed, spaces): same events, same report."""
    src = lines_of(USDM, 3000)
    ref = read_binance(write(tmp_path / "ref.gz", src))
    slow, odd = [], []
    for line in src:
        ts, _, body = line.partition(b" ")
        msg = json.loads(body)
        slow.append(ts + b" " + json.dumps({**msg, "x": "\u00e9"}).encode() + b"\n")
        data = msg.get("data", msg)
        if "stream" in msg and msg["stream"].endswith("@bookTicker"):
            data = {**data, "e": "bookTicker"}
        odd.append(ts + b" " + json.dumps(dict(reversed(list(data.items())))).encode() + b"\r\n")
    for name, lines in (("slow", slow), ("odd", odd)):
        got = read_binance(write(tmp_path / f"{name}.gz", lines))
        assert got.array.tobytes() == ref.array.tobytes(), name
        assert got.report.counts == ref.report.counts
        info = dict(got.report.info)
        assert info == ref.report.info, name


@needs_data
@pytest.mark.parametrize("bad, match", [
    (b"garbage\n", "expected '<local ns> <json>'"),
    (b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"E":1,"U":1,"u":2,"b":[["ten","1"]],"a":[]}}\n',
     "not a decimal number"),
    (b'1723161255030314667 {"stream":"btcusdt@trade","data":{"E":1,"p":"61800.30","q":"-0.001","m":true}}\n',
     "trade size must be positive"),
    (b'1723161255030314667 {"stream":"btcusdt@trade","data":{"E":1,"p":"61800.30"\n', "bad JSON"),
    (b'1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"E":1,"U":1,"u":2,"b":[],"a":[["1.0"]]}}\n',
     "not \\[price, size\\]"),
])
def test_bad_line_deep_in_a_real_capture(tmp_path, bad, match):
    lines = lines_of(USDM, 6000)
    lines.insert(4999, bad)  # line 5000
    path = write(tmp_path / "bad.gz", lines)
    for strict in (False, True):
        with pytest.raises(DataError, match=match) as ei:
            for _ in iter_binance(path, chunk_rows=100, strict=strict):
                pass
        assert ei.value.file == str(path) and ei.value.line == 5000


@needs_data
def test_truncated_real_capture(tmp_path):
    raw = USDM[0].read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as ei:
        for _ in iter_binance(cut, chunk_rows=1000):
            pass
    assert ei.value.file == str(cut) and ei.value.line > 10_000


@needs_data
def test_later_finer_price_names_the_line_and_asks_for_the_tick(tmp_path, monkeypatch):
    monkeypatch.setattr(bn, "_INFER_BYTES", 1 << 16)
    lines = lines_of(USDM, 20000)
    ts = lines[15000].split(b" ")[0]
    lines[15000] = ts + b' {"stream":"btcusdt@trade","data":{"E":1,"T":1,"p":"61800.35","q":"0.006","m":false}}\n'
    path = write(tmp_path / "fine.gz", lines)
    with pytest.raises(DataError, match="pass tick_size=") as ei:
        read_binance(path)
    assert ei.value.line == 15001
    ev = read_binance(path, tick_size="0.01")
    assert str(ev.instrument.tick_size) == "0.01"


@needs_data
def test_progress_reaches_the_files_size():
    seen = []
    chunks = list(iter_binance(CM, chunk_rows=100_000, progress=seen.append))
    assert len(seen) >= len(chunks) + 1
    assert all(a <= b for a, b in zip(seen, seen[1:]))
    assert seen[-1] == sum(p.stat().st_size for p in CM)


# -- keep_pre_snapshot on the real captures -----------------------------------------------------


@needs_data
@pytest.mark.parametrize("name", ["usdm", "spot", "cm"])
def test_keep_pre_snapshot_real(name):
    one = one_shot(name)
    kept = read_binance(CAPTURES[name], keep_pre_snapshot=True)
    pre = (kept.array["flags"] & PRE) != 0
    rep = kept.report
    assert not rep.counts, str(rep)  # the pre-snapshot diffs chain among themselves: no gap
    n = rep.info["pre_snapshot_diffs_kept"]
    assert n == one.report.info["stale_diffs_dropped"] > 0 and rep.info["stale_diffs_dropped"] == 0
    # exactly the dropped diffs come back, flagged, all before the first snapshot's CLEAR
    assert kept.array[~pre].tobytes() == one.array.tobytes()
    assert int((pre & ((kept.array["flags"] & int(Flag.BATCH_END)) != 0)).sum()) == n
    first_clear = int(np.flatnonzero(kept.array["kind"] == EventKind.CLEAR)[0])
    assert pre.any() and np.flatnonzero(pre)[-1] < first_clear
    assert np.all(np.diff(kept.array["ts_exch"]) >= 0)
    assert_stream_equal(kept, list(iter_binance(CAPTURES[name], keep_pre_snapshot=True, chunk_rows=4099)), 4099)


@needs_data
def test_keep_pre_snapshot_continues_an_earlier_book():
    """COIN-M day 2 alone has no snapshot: by default its diffs are a no_snapshot anomaly; with
    keep_pre_snapshot they are flagged and, replayed after day 1, give the book of both days read together."""
    tick = {"tick_size": "0.1", "lot_size": "1"}
    both = read_binance(CM, **tick)
    day1 = read_binance(CM[0], **tick)
    plain = read_binance(CM[1], **tick)
    assert plain.report.counts[NO_SNAPSHOT] == plain.report.info["depth_diffs"]
    day2 = read_binance(CM[1], keep_pre_snapshot=True, **tick)
    assert not day2.report.counts
    d = day2.array[day2.array["kind"] == EventKind.SET_LEVEL]
    assert np.all(d["flags"] & PRE) and day2.report.info["pre_snapshot_diffs_kept"] == plain.report.info["depth_diffs"]
    joined = np.concatenate([day1.array, day2.array])
    joined["flags"] &= ~np.uint16(PRE)
    a = depth_series(joined, 50, batch_end_only=True)
    b = depth_series(both.array, 50, batch_end_only=True)
    for x, y in ((a.bid_px, b.bid_px), (a.bid_qty, b.bid_qty), (a.ask_px, b.ask_px), (a.ask_qty, b.ask_qty)):
        assert np.array_equal(x[-1], y[-1])
    assert a.bid_px[-1, 0] < a.ask_px[-1, 0]


# -- synthetic: the report contract with every anomaly ---------------------------------------------


def _msg(k, m):
    return f"{(1000 + k) * MS} {json.dumps(m, separators=(',', ':'))}\n".encode()


def _depth(E, U, u, pu, b, a, sym="BTCUSDT"):
    return {"stream": f"{sym.lower()}@depth@0ms",
            "data": {"e": "depthUpdate", "E": E, "s": sym, "U": U, "u": u, "pu": pu, "b": b, "a": a}}


def _trade(T, p, q, m, sym="BTCUSDT"):
    return {"stream": f"{sym.lower()}@trade", "data": {"e": "trade", "E": T, "T": T, "s": sym, "p": p, "q": q, "m": m}}


def _synthetic(n=400):
    """Stale diffs, a snapshot, then diffs with a gap, a duplicate, times going back, a crossed moment,
    blank lines, unknown streams, other-symbol trades, a second snapshot resyncing."""
    msgs = [_depth(1000, 90, 95, 89, [["100.0", "5"]], [])]
    msgs.append({"lastUpdateId": 100, "E": 1001, "bids": [["100.0", "2"], ["99.0", "1"]],
                 "asks": [["101.0", "3"], ["102.0", "1"]]})
    u = 100
    for i in range(n):
        E = 1002 + i - (3 if i % 37 == 5 else 0)
        U, pu = u + 1, u
        if i % 53 == 20:
            U, pu = u + 3, u + 2  # gap
        nu = U + 1
        px = f"{100 + (i % 7) * 0.5:.1f}"
        ask = [[f"{101 + (i % 5) * 0.5:.1f}", str(i % 4)]]
        if i == 77:
            ask = [["99.5", "1"]]  # crossed until the next diff removes it
        if i == 78:
            ask = [["99.5", "0"]]
        msgs.append(_depth(E, U, nu, pu, [[px, str(1 + i % 3)]], ask))
        if i % 41 == 10:
            msgs.append(_depth(E, U, nu, pu, [[px, "9"]], []))  # duplicate
        u = nu
        if i % 3 == 0:
            msgs.append(_trade(E - (5 if i % 29 == 3 else 0), px, "1", bool(i % 2)))
        if i % 50 == 7:
            msgs.append(_trade(E, "2000.0", "1", True, sym="ETHUSDT"))
            msgs.append({"stream": "btcusdt@kline_1m", "data": {"E": E}})
            msgs.append("")
        if i == 300:
            msgs.append({"lastUpdateId": u - 1, "E": E, "bids": [["100.0", "4"]], "asks": [["101.0", "2"]]})
    return b"".join(_msg(k, m) if m != "" else b"\n" for k, m in enumerate(msgs, 1))


@pytest.mark.parametrize("keep", [False, True])
def test_report_contract_synthetic(tmp_path, keep):
    path = tmp_path / "s.gz"
    path.write_bytes(gzip.compress(_synthetic()))
    one = check_chunked(path, [1, 2, 3, 5, 7, 11, 64], symbol="BTCUSDT", keep_pre_snapshot=keep)
    c = one.report.counts
    assert c[SEQUENCE_GAP] > 3 and c[OUT_OF_ORDER_TS] > 3 and c[CROSSED_BOOK] >= 1
    assert c["skipped:duplicate_diff"] > 3 and c["skipped:unknown_stream"] == 8
    info = one.report.info
    assert info["snapshots"] == 2 and info["other_symbol_lines_skipped"] == 8 and info["blank_lines"] == 8
    assert info["unknown_streams"] == {"btcusdt@kline_1m": 8}
    assert (info.get("pre_snapshot_diffs_kept", 0), info["stale_diffs_dropped"]) == ((1, 0) if keep else (0, 1))
    assert np.all(np.diff(one.array["ts_exch"]) >= 0)
    with pytest.raises(DataError) as ei:
        read_binance(path, symbol="BTCUSDT", strict=True, keep_pre_snapshot=keep)
    first = min(int(ex[0].split(":")[1]) for ex in one.report.examples.values())  # "<path>:<line>: ..."
    assert ei.value.line == first  # strict: the first anomaly in file order


@given(k=st.integers(1, 3000))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_report_contract_random_chunks(tmp_path_factory, k):
    path = tmp_path_factory.mktemp("s") / "s.gz"
    path.write_bytes(gzip.compress(_synthetic(200)))
    one = read_binance(path, symbol="BTCUSDT")
    assert_stream_equal(one, list(iter_binance(path, symbol="BTCUSDT", chunk_rows=k)), k)


def test_no_events_still_one_chunk(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(_msg(1, {"stream": "btcusdt@bookTicker", "data": {}})))
    chunks = list(iter_binance(path))
    assert len(chunks) == 1 and len(chunks[0]) == 0
    assert chunks[0].report.info["book_ticker_lines_skipped"] == 1


def test_gzip_members_padding_and_corruption(tmp_path):
    """Concatenated gzip members (cut anywhere, even mid-line) and zero padding read like one stream;
    garbage after a member or a corrupt member is a DataError naming the file."""
    text = _synthetic(120)
    ref = read_binance(write(tmp_path / "plain.txt", [text], gz=False), symbol="BTCUSDT")
    for cut in (1000, len(text) // 2, text.index(b"\n", 5000) + 1):
        path = tmp_path / f"m{cut}.gz"
        path.write_bytes(gzip.compress(text[:cut]) + gzip.compress(text[cut:]) + b"\0" * 7)
        got = read_binance(path, symbol="BTCUSDT")
        assert got.array.tobytes() == ref.array.tobytes()
        assert got.report.counts == ref.report.counts
    whole = gzip.compress(text)
    for name, raw in (("garbage", whole + b"garbage"),
                      ("crc", whole[:-8] + bytes([whole[-8] ^ 1]) + whole[-7:])):
        path = tmp_path / f"{name}.gz"
        path.write_bytes(raw)
        with pytest.raises(DataError, match="truncated or corrupt gzip") as ei:
            read_binance(path, symbol="BTCUSDT")
        assert ei.value.file == str(path)
