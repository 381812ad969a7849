"""Adversarial review of the JSON-lines readers (Binance, Bybit, Kraken): each line is parsed in C with a
Python fallback. The C parser can be switched off (`python_only`: every line handed back to Python, the
reference), so a line gives the same events, report and errors either way. Regression tests for the defects
found, differential checks on mutated real lines, and the streaming / container edge cases."""
import contextlib
import gzip
import json
import random
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import lobsim._core as core
from lobsim import DataError
from lobsim.data import binance as bn
from lobsim.data import bybit as bb
from lobsim.data import kraken as kr
from lobsim.data.events import collect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KRAKEN = DATA / "kraken" / "book1000_10pairs_head.ws"
BYBIT = DATA / "tardis" / "xrpusdt-ob500.data.zip"
BINANCE = DATA / "binance"
needs_kraken = pytest.mark.skipif(not KRAKEN.is_file(), reason=f"real Kraken capture not found at {KRAKEN}")
needs_bybit = pytest.mark.skipif(not BYBIT.is_file(), reason=f"Bybit sample not found at {BYBIT}")
needs_binance = pytest.mark.skipif(not (BINANCE / "usdm").is_dir(), reason=f"Binance captures not found at {BINANCE}")


# -- the Python path alone --------------------------------------------------------------------------

class _SlowLib:
    """lobsim._core.lib with one C line parser that hands every line back (the Python path)."""

    def __init__(self, lib, name, end, slow):
        self._lib, self._name, self._end, self._slow = lib, name, end, slow

    def __getattr__(self, k):
        if k == self._name:
            return lambda p, buf, n, *a: self._end if p.pos >= n else self._slow
        return getattr(self._lib, k)


@contextlib.contextmanager
def python_only(which):
    lib = core.lib
    name, end, slow = {"binance": ("bn_parse", lib.BN_END, lib.BN_SLOW), "bybit": ("bb_parse", lib.BB_END, lib.BB_SLOW),
                       "kraken": ("kr_parse", lib.KR_END, lib.KR_SLOW)}[which]
    slow_lib = _SlowLib(lib, name, end, slow)
    saved = bn.lib, bb.lib, core.lib
    if which == "binance":
        bn.lib = slow_lib
    elif which == "bybit":
        bb.lib = slow_lib
    else:
        core.lib = slow_lib  # kraken.py imports lib from lobsim._core when a reader starts
    try:
        yield
    finally:
        bn.lib, bb.lib, core.lib = saved


def outcome(fn):
    """-> ('ok', bytes, instrument, counts, examples, info) or ('DataError', reason, file, line, detail);
    any other exception propagates (never acceptable)."""
    try:
        ev = fn()
    except DataError as e:
        return ("DataError", e.reason, e.file, e.line, e.detail)
    r = ev.report
    return ("ok", ev.array.tobytes(), str(ev.instrument), dict(r.counts), dict(r.examples), r.info)


def same_both_ways(which, fn):
    """fn() with the C parser and with the Python path alone: identical outcomes; -> the outcome."""
    a = outcome(fn)
    with python_only(which):
        b = outcome(fn)
    assert a[0] == b[0], (a[:5], b[:5])
    if a[0] == "ok":
        for x, y, what in zip(a[1:], b[1:], ("events", "instrument", "counts", "examples", "info")):
            assert x == y, what
    else:
        assert a == b
    return a


def write(tmp_path, lines, name="cap.txt", end="\n"):
    p = tmp_path / name
    p.write_bytes("\n".join(lines).encode() + end.encode())
    return p


# -- Kraken ---------------------------------------------------------------------------------------

def kline(t, dicts, pair="XX/YY", channel="book-10", ensure_ascii=True):
    return f"{t}: " + json.dumps([7, *dicts, channel, pair], separators=(",", ":"), ensure_ascii=ensure_ascii)


KSNAP = {"as": [["1.5", "1.0", "9.5"]], "bs": [["1.4", "2.0", "9.25"]]}


@pytest.mark.parametrize("line, msg", [
    # a unicode digit is str.isdigit() but int() refuses it (ValueError) or reads it (Arabic-Indic)
    (kline("12.5", [{"a": []}], channel="book-\u00b2"), "channel name"),
    (kline("12.5", [{"a": []}], channel="book-\u00b2", ensure_ascii=False), "channel name"),
    (kline("12.5", [{"a": []}], channel="book-\u0661\u0660"), "channel name"),
    (kline("12.5", [{"a": [], "c": "\u00b2"}]), "checksum"),
    (kline("12.5", [{"a": [], "c": "\u0661"}], ensure_ascii=False), "checksum"),
    # beyond int64 (cffi OverflowError when handed to the C book)
    (kline("12.5", [{"a": []}], channel="book-99999999999999999999"), "channel name"),
    (kline("99999999999.5", [{"a": [["1.5", "1.0", "12.0"]]}]), "beyond int64"),
    (kline("12.5", [{"a": [["1.5", "1.0", "99999999999.5"]]}]), "timestamp"),
    (kline("12.5", [{"a": [["1.5", "1.0", "12.0"], ["1.6", "1.0", "99999999999.5", "r"]]}]), "timestamp"),
])
def test_kraken_bad_numbers_are_data_errors_naming_the_line(tmp_path, line, msg):
    path = write(tmp_path, [kline("10.0", [KSNAP]), line])
    out = same_both_ways("kraken", lambda: kr.read_kraken(path, "XX/YY"))
    assert out[0] == "DataError" and msg in out[1] + str(out[4]) and out[3] == 2, out


def test_kraken_checksum_beyond_int64_is_a_mismatch_not_ignored(tmp_path):
    """A checksum of 19+ digits cannot be a CRC32: it was silently not checked."""
    path = write(tmp_path, [kline("10.0", [KSNAP]), kline("11.0", [{"a": [["1.5", "2.0", "10.5"]], "c": "9" * 25}])])
    out = same_both_ways("kraken", lambda: kr.read_kraken(path, "XX/YY"))
    assert out[3] == {kr.CHECKSUM_MISMATCH: 1} and out[5]["checksums_checked"] == 1
    with pytest.raises(DataError, match="checksum") as e:
        kr.read_kraken(path, "XX/YY", strict=True)
    assert e.value.line == 2


# -- Bybit ----------------------------------------------------------------------------------------

def bmsg(kind, u, ts, b=(), a=(), topic="orderbook.50.XRPUSDT"):
    return json.dumps({"topic": topic, "type": kind, "ts": ts,
                       "data": {"s": topic.rpartition(".")[2], "b": [list(x) for x in b], "a": [list(x) for x in a],
                                "u": u}})


BSNAP = bmsg("snapshot", 1, 1733011200691, b=[("1.9531", "6203")], a=[("1.9532", "5")])
BDELTA = bmsg("delta", 2, 1733011200692, b=[("1.9531", "62")])


@pytest.mark.parametrize("lines, msg", [
    (["1733011200000000001 " + BSNAP, "9999999999999999999 " + BDELTA], "beyond int64"),
    (["1733011200.5: " + BSNAP, "99999999999: " + BDELTA], "beyond int64"),
    (["1733011200.5: " + BSNAP, "99999999999.5: " + BDELTA], "beyond int64"),
    ([BSNAP, bmsg("delta", 2, 1733011200692, topic="orderbook.\u00b2.XRPUSDT")], "orderbook.<depth>"),
    ([BSNAP, bmsg("delta", 2, 1733011200692, topic="orderbook.\u0665\u0660.XRPUSDT")], "orderbook.<depth>"),
    ([BSNAP, bmsg("delta", 2, 1733011200692, topic="orderbook.99999999999999999999.XRPUSDT")], "orderbook.<depth>"),
])
def test_bybit_bad_numbers_are_data_errors_naming_the_line(tmp_path, lines, msg):
    path = write(tmp_path, lines)
    out = same_both_ways("bybit", lambda: bb.read_bybit(path))
    assert out[0] == "DataError" and msg in out[1] and out[3] == 2, out


@pytest.mark.parametrize("which", ["kraken", "bybit"])
def test_thousands_of_digits_are_data_errors_or_read(tmp_path, which):
    """int() refuses strings of more than 4300 digits (ValueError): leading zeros are read, a huge value refused."""
    zeros = "0" * 5000 + "1.5"
    huge = "9" * 5000
    if which == "kraken":
        snap = {"as": [[zeros, "1.0", "9.5"]], "bs": [["1.4", "2.0", "9.25"]]}
        ok = write(tmp_path, [kline("10.0", [snap]), kline("11.0", [{"a": [["1.6", "2.0", "10.5"]]}])], "a.txt")
        bad = write(tmp_path, [kline("10.0", [KSNAP]), kline("11.0", [{"a": [[huge, "2.0", "10.5"]]}])], "b.txt")
        csum = write(tmp_path, [kline("10.0", [KSNAP]), kline("11.0", [{"a": [], "c": huge}])], "c.txt")
        read = lambda p: kr.read_kraken(p, "XX/YY")  # noqa: E731
    else:
        ok = write(tmp_path, [bmsg("snapshot", 1, 1733011200691, b=[(zeros, "6203")]), BDELTA], "a.txt")
        bad = write(tmp_path, [BSNAP, bmsg("delta", 2, 1733011200692, b=[(huge, "62")])], "b.txt")
        csum = write(tmp_path, [BSNAP, bmsg("delta", 2, 1733011200692, topic=f"orderbook.{huge}.XRPUSDT")], "c.txt")
        read = bb.read_bybit
    with python_only(which):  # the C parser takes the leading zeros itself
        ev = read(ok)
    assert ev.array.tobytes() == read(ok).array.tobytes()
    for p in (bad, csum):
        out = same_both_ways(which, lambda: read(p))
        if which == "kraken" and p == csum:
            assert out[3] == {kr.CHECKSUM_MISMATCH: 1}
        else:
            assert out[0] == "DataError" and out[3] == 2, out


# -- decimals: each value exact at its own scale ---------------------------------------------------

def bsnap(bids, asks, uid=50):
    return "1723161254206652067 " + json.dumps({"lastUpdateId": uid, "bids": bids, "asks": asks})


def bdiff(b, a, U=49, u=51, pu=48, tl=1723161254206652068, E=1723161255208):
    data = {"e": "depthUpdate", "E": E, "s": "BTCUSDT", "U": U, "u": u, "pu": pu, "b": b, "a": a}
    return f"{tl} " + json.dumps({"stream": "btcusdt@depth@0ms", "data": data})


def test_tick_coarser_than_a_values_decimals(tmp_path):
    """tick 0.25 and a price written "1.5" (6 ticks): the Python path refused it ("price unit 0.25 does not fit
    data scale 1/10") when the line had no value with more decimals; the C parser took it."""
    p = write(tmp_path, [bsnap([["61800.5", "1.0"]], [["61801.25", "2.0"]]), bdiff([["61800.5", "1.5"]], [])], "b.txt")
    out = same_both_ways("binance", lambda: bn.read_binance(p, tick_size="0.25"))
    assert out[0] == "ok" and out[3] == {}
    p = write(tmp_path, [kline("10.0", [{"as": [["1.75", "1.0", "9.5"]], "bs": [["1.25", "2.0", "9.25"]]}]),
                         kline("11.0", [{"b": [["1.5", "2.0", "10.5"]]}])], "k.txt")
    out = same_both_ways("kraken", lambda: kr.read_kraken(p, "XX/YY", tick_size="0.25"))
    assert out[0] == "ok"
    p = write(tmp_path, [BSNAP, bmsg("delta", 2, 1733011200692, b=[("1.5", "62")])], "y.txt")
    out = same_both_ways("bybit", lambda: bb.read_bybit(p, tick_size="0.0001", lot_size="0.25"))
    assert out[0] == "ok"


def test_values_of_one_line_need_no_common_scale(tmp_path):
    """A size of 99999999999.5 (11 whole digits) beside "0.00001000" in one line: parsed at one common scale
    it needed 19 digits and the Python path raised, while each value alone is exact (the C parser took it)."""
    p = write(tmp_path, [bsnap([["61800.5", "99999999999.5"], ["61800.4", "0.00001000"]], [["61801.2", "2.0"]]),
                         bdiff([["61800.5", "1.5"]], [])])
    out = same_both_ways("binance", lambda: bn.read_binance(p, tick_size="0.1", lot_size="0.00001"))
    assert out[0] == "ok" and out[3] == {}
    p = write(tmp_path, [kline("10.0", [{"as": [["1.75", "99999999999.5", "9.5"], ["1.8", "0.00001000", "9.5"]],
                                         "bs": [["1.25", "2.0", "9.25"]]}])], "k.txt")
    out = same_both_ways("kraken", lambda: kr.read_kraken(p, "XX/YY", lot_size="0.00001"))
    assert out[0] == "ok"


# -- Kraken: the pair at a second depth ------------------------------------------------------------

def kcrc(asks, bids):
    return str(kr.kraken_checksum(sorted(asks.items(), key=lambda kv: float(kv[0])),
                                  sorted(bids.items(), key=lambda kv: -float(kv[0]))))


def test_kraken_pair_at_a_second_depth_is_skipped(tmp_path):
    """A second subscription of the pair ("book-10" lines among "book-25" ones) is another book: its lines were
    applied to the first one (truncating it to 10 levels, checksums then failing) and the C book wrote the
    truncation's SET_LEVEL 0 events past its output buffer (heap overflow, see csrc/tests/test_kraken.c)."""
    asks = {f"{100 + i}.0": "1.0" for i in range(30)}
    bids = {f"{99 - i}.0": "1.0" for i in range(30)}
    snap = {"as": [[p, q, "9.5"] for p, q in asks.items()], "bs": [[p, q, "9.5"] for p, q in bids.items()]}
    lines = [kline("10.0", [snap], channel="book-25")]
    for side in (asks, bids):  # Kraken's book-25 drops the levels beyond the 25th
        for p in list(side)[25:]:
            del side[p]
    lines.append(kline("10.5", [{"a": [["100.0", "3.0", "10.4"]], "c": "1"}], channel="book-10"))
    asks["100.0"] = "2.0"
    lines.append(kline("11.0", [{"a": [["100.0", "2.0", "10.9"]], "c": kcrc(asks, bids)}], channel="book-25"))
    path = write(tmp_path, lines)
    out = same_both_ways("kraken", lambda: kr.read_kraken(path, "XX/YY", tick_size="0.1", lot_size="0.1"))
    assert out[0] == "ok" and out[3] == {"skipped:other_depth": 1}, out[3]
    assert out[5]["checksums_checked"] == 1 and out[5]["depth"] == 25 and out[5]["levels_truncated"] == 10
    ev = np.frombuffer(out[1], kr.EVENT_DTYPE)
    assert len(ev) == 1 + 60 + 10 + 1
    with pytest.raises(DataError, match="other_depth") as e:
        kr.read_kraken(path, "XX/YY", strict=True)
    assert e.value.line == 2


# -- containers -----------------------------------------------------------------------------------

def _members(data, k):
    step = len(data) // k
    return b"".join(gzip.compress(data[i * step:(i + 1) * step if i < k - 1 else len(data)]) for i in range(k))


@pytest.mark.parametrize("which", ["kraken", "bybit", "binance"])
def test_gzip_truncated_mid_member_names_the_first_line_not_read(tmp_path, which):
    """gzip of several members (split mid-line) reads as the plain text; truncated inside its last member, the
    DataError names the line after the last whole line decompressed (Kraken and Bybit said line 1: the piece
    read before the error was lost)."""
    lines = [kline(f"{10 + i}.0", [KSNAP if i == 0 else {"a": [["1.5", f"{i}.0", f"{9 + i}.5"]]}])
             for i in range(400)]
    if which == "bybit":
        lines = [BSNAP] + [bmsg("delta", 2 + i, 1733011200692 + i, b=[("1.9531", str(10 + i))]) for i in range(400)]
    elif which == "binance":
        lines = [bsnap([["61800.5", "1.0"]], [["61801.2", "2.0"]])] + [
            bdiff([["61800.5", f"{1 + i}.0"]], [], U=51 + i, u=51 + i, pu=50 + i, tl=1723161254206652068 + i)
            for i in range(400)]
    text = ("\n".join(lines) + "\n").encode()
    read = {"kraken": lambda p: kr.read_kraken(p, "XX/YY"), "bybit": bb.read_bybit, "binance": bn.read_binance}[which]
    plain, gz = write(tmp_path, lines, "plain.txt"), tmp_path / "cap.gz"
    gz.write_bytes(_members(text, 3))
    assert read(gz).array.tobytes() == read(plain).array.tobytes()
    full = gz.read_bytes()
    gz.write_bytes(full[:-30])  # inside the last member's deflate data
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        read(gz)
    whole = zlib.decompressobj(31)
    rest = full[:-30]
    done = b""
    while rest:  # the text a streaming inflate gets out of the truncated file
        done += whole.decompress(rest)
        rest = whole.unused_data
        if whole.eof and rest:
            whole = zlib.decompressobj(31)
        elif not whole.eof:
            break
    assert e.value.line == done.count(b"\n") + 1 > 300


# -- memory: the read-ahead for the first block is bounded ----------------------------------------

@pytest.mark.parametrize("which", ["kraken", "bybit"])
def test_first_block_read_ahead_is_bounded_without_a_snapshot(tmp_path, monkeypatch, which):
    """The first block waits for the pair's first snapshot: a capture without one (deltas only, or the pair
    absent) was read ahead whole into memory before the first event."""
    if which == "kraken":
        lines = [kline(f"{10 + i}.0", [{"a": [["1.5", f"{i + 1}.0", f"{9 + i}.5"]]}]) for i in range(3000)]
        read = lambda p, **kw: collect(kr.iter_kraken(p, "XX/YY", chunk_rows=64, **kw))  # noqa: E731
    else:
        lines = [bmsg("delta", 2 + i, 1733011200692 + i, b=[("1.9531", str(10 + i))]) for i in range(3000)]
        read = lambda p, **kw: collect(bb.iter_bybit(p, chunk_rows=64, **kw))  # noqa: E731
    path = write(tmp_path, lines)
    ref = read(path)
    pulled, at_infer = [0], []
    pieces, infer = kr._pieces, kr._PieceReader._infer

    def counting(*a, **k):
        for piece in pieces(*a, **k):
            pulled[0] += 1
            yield piece

    def noting(self, *a):
        at_infer.append(pulled[0])
        return infer(self, *a)

    monkeypatch.setattr(kr, "PIECE", 1000)
    monkeypatch.setattr(kr, "AHEAD", 5000)
    monkeypatch.setattr(kr, "_pieces", counting)
    monkeypatch.setattr(bb, "_pieces", counting)
    monkeypatch.setattr(kr._PieceReader, "_infer", noting)
    ev = read(path)
    assert at_infer[0] <= 6 < pulled[0]
    assert ev.array.tobytes() == ref.array.tobytes() and ev.report.counts == ref.report.counts
