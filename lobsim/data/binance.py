"""Reader of Binance websocket captures (diff depth + trades) into normalized L2 events.

Input: gzip (or plain) text, one message a line, ``<local receive ns> <raw JSON>``,
as recorded from the combined-stream endpoint (``{"stream": ..., "data": ...}``;
bare messages are accepted too). Several files given in order continue one
another (state carries over). Streams understood:

- ``<sym>@depth@0ms`` (futures: U, u, pu) / ``<sym>@depth@100ms`` or ``@depth``
  (spot: U, u): diff depth with absolute level sizes -> SET_LEVEL events, the
  last one of each diff flagged BATCH_END. ``"0.000"`` deletes a level.
- a REST depth snapshot line (``{"lastUpdateId": ..., "bids": ..., "asks": ...}``)
  -> CLEAR + SET_LEVEL flagged SNAPSHOT, the last one also BATCH_END.
- ``<sym>@trade`` / ``<sym>@aggTrade`` -> TRADE, side = aggressor
  (``m`` true: the buyer is the maker, so the seller aggressed -> -1).
- ``<sym>@bookTicker`` is the vendor's BBO, not a book event: skipped (counted in
  ``report.info``); ``read_binance_book_ticker`` returns it for verification.

Streaming: `iter_binance` yields `Events` chunks of ``chunk_rows`` events and
reads its input in blocks, in memory bounded by the chunk size plus the
reader's state; `read_binance` is the same reader in one chunk. Lines are
parsed in C (csrc/binance.c); a line the C parser does not take exactly
(unusual JSON, a bad field, a new symbol, an unknown stream) is handled by the
Python path below, which accepts it or raises DataError naming file and line.

Sequencing (Binance's documented procedure): diffs with ``u`` below the
snapshot's ``lastUpdateId`` are stale and dropped; the first diff kept must
bridge the snapshot (futures ``U <= id <= u``, spot ``U <= id + 1 <= u``);
after that futures chain on ``pu == previous u`` and spot on
``U == previous u + 1``. A diff received *before* the snapshot line but not
stale is applied after the snapshot, as a live client buffering the stream
would, and its ``ts_local`` is raised to the snapshot's receive time (the local
book could not have used it earlier). A snapshot line reaches back over the
diffs received before it up to ``_REACH`` events of them (and not before the
previous snapshot's place): the stream a REST request overlaps, far more than
any real request takes. A break in the chain is a SEQUENCE_GAP; the reader
keeps applying the diffs that follow, so after a gap the book may be wrong
until a later snapshot line resynchronises it (CLEAR + levels inserted before
the first diff it bridges). Diffs with no snapshot before them (none in the
capture, or more than ``_REACH`` events before the first one) are kept and
reported as ``no_snapshot`` (the book holds only what diffs touched).

``keep_pre_snapshot=True``: the diffs before the first snapshot (the stale ones
above, or all diffs of a capture without snapshot, e.g. a second day read
alone) are kept, flagged PRE_SNAPSHOT, for users who rebuild the book from an
earlier snapshot. They chain among themselves by the same rules (a break is a
sequence_gap, a repeat a skipped duplicate_diff); the first snapshot then
restarts the chain. They are counted in ``report.info["pre_snapshot_diffs_kept"]``
instead of ``stale_diffs_dropped`` / the ``no_snapshot`` anomaly.

Clocks: ``ts_local`` = the line prefix; ``ts_exch`` = ``E`` (event time, ms) for
depth diffs and ``T`` (trade time, ms) for trades. T is when the match
happened and is never later than the E of the diff that shows its effect, so a
trade sorts before the level change it caused (what the L2 queue model wants).
A snapshot takes min(its E, E of the diff it bridges). Within each stream the
file order is the venue order: a timestamp that goes backwards is raised to the
previous one and reported as out_of_order_timestamp. The two streams are then
merged stably by ts_exch, ties in file order; a diff's events stay contiguous.
(The merge holds at most ``_HOLD`` events waiting for the other stream; a
record later found earlier than what was already written is raised to it and
reported as out_of_order_timestamp: only a stream silent that long can do it.)

Every batch end after which the book (replayed in C, continued across chunks)
has best bid >= best ask is reported as crossed_book.
``report.info["feed_latency_ms"]`` gives percentiles (at 1 us resolution) of
ts_local - ts_exch over the events; it is negative when the recording host's
clock lags the venue's (about -1.27 s on the shared captures).

Instrument: given tick/lot sizes, else the finest decimal resolution used by the
prices / sizes in the first ``_INFER_BYTES`` of text (which holds the REST
snapshot on real captures; trailing zeros of the wire format ignored, so spot
``"61837.63000000"`` gives 0.01): a power of ten, which can be coarser than the
venue's true tick if the data never uses the finer digits. A later value that
is not a whole number of the inferred tick / lot is a DataError naming its
line and asking for tick_size= / lot_size=.
"""
import itertools
import json
import queue
import re
import threading
import zlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from lobsim._core import ffi, lib
from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import GZIP_MAGIC, Locator, fast_zlib, open_input, require_file
from lobsim.data.events import (
    DEFAULT_CHUNK_ROWS,
    MAX_CHUNK_ROWS,
    NO_SNAPSHOT,
    OUT_OF_ORDER_TS,
    SEQUENCE_GAP,
    ChunkedOutput,
    Events,
    collect,
    report_crossed,
)
from lobsim.errors import DataError
from lobsim.instrument import _unit_parts, infer_instrument, parse_decimal_strings

__all__ = ["read_binance", "iter_binance", "read_binance_book_ticker"]

BOOK_TICKER_DTYPE = np.dtype(
    [
        ("update_id", "<i8"),
        ("ts_local", "<i8"),
        ("bid_px", "<i8"),
        ("bid_qty", "<i8"),
        ("ask_px", "<i8"),
        ("ask_qty", "<i8"),
    ]
)
"""One bookTicker message: vendor BBO after update ``update_id``, prices in ticks, sizes in lots."""

_MS = 1_000_000
_INT64_MAX = 2**63 - 1
_MAX_MS = _INT64_MAX // _MS  # largest ms time whose ns value fits int64
_MAX_ID = _INT64_MAX - 1  # update ids: +1 (spot chaining) must still fit int64

_PIECE = 1 << 20  # bytes of decompressed text read at a time
_INFER_BYTES = 4 << 20  # text scanned for the tick / lot before the first events
_EV_CAP = 1 << 18  # events per parse buffer
_MSG_CAP = 1 << 16  # messages per parse buffer
_REACH = 1 << 18  # events of diffs received before a snapshot line that it can be placed before
_HOLD = 1 << 21  # events the time merge holds at most before writing the oldest

_DEPTH, _TRADE, _SNAPSHOT = int(lib.BN_DEPTH), int(lib.BN_TRADE), int(lib.BN_SNAPSHOT)
_PRE = int(Flag.PRE_SNAPSHOT)
_NO_SNAPSHOT = "no depth snapshot before these diffs: the book holds only levels the diffs touched"

# bn_msg of csrc/binance.h
_MSG_DTYPE = np.dtype(
    [("line", "<i8"), ("ts_local", "<i8"), ("ts", "<i8"), ("U", "<i8"), ("u", "<i8"), ("pu", "<i8"),
     ("ev_start", "<i8"), ("n_ev", "<i4"), ("n_zero", "<i4"), ("kind", "i1"), ("has_pu", "i1"), ("pad", "V6")]
)
assert _MSG_DTYPE.itemsize == ffi.sizeof("bn_msg")

# a diff waiting for its sequencing decision (the last _REACH events of them)
_PEND_DTYPE = np.dtype(
    [("g", "<i8"), ("tl", "<i8"), ("ts", "<i8"), ("U", "<i8"), ("u", "<i8"), ("pu", "<i8"), ("ev0", "<i8"),
     ("n", "<i8"), ("blk", "<i8"), ("di", "<i8"), ("sp", "<i8"), ("tlf", "<i8"), ("st", "i1")]
)
# a record (diff, snapshot or trade) waiting in the time merge
_REC_DTYPE = np.dtype(
    [("ts", "<i8"), ("key", "<i8"), ("tl", "<i8"), ("tl_new", "<i8"), ("g", "<i8"), ("uid", "<i8"),
     ("blk", "<i8"), ("ev0", "<i8"), ("n", "<i8"), ("fl", "<u2"), ("set_ts", "u1"), ("pad", "V5")]
)  # bn_rec of csrc/binance.h
assert _REC_DTYPE.itemsize == ffi.sizeof("bn_rec")


@dataclass
class _Capture:
    """Result of `_load_binance`: the events plus, per event, the update id it belongs to.

    ``update_id[i]`` is the diff's final update id ``u`` for depth events, the
    snapshot's ``lastUpdateId`` for snapshot events and -1 for trades; it lets a
    caller line the book up with bookTicker messages (same ``u``).
    """

    events: Events
    update_id: np.ndarray


# -- line input (Python path) ---------------------------------------------------------


def _as_paths(paths):
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no input files")
    return paths


def _iter_lines(path):
    """Yield (line_no, bytes line without newline); DataError on missing/unreadable/truncated input."""
    with open_input(path) as stream:
        ln = 0
        try:
            for ln, line in enumerate(stream, 1):
                yield ln, line.rstrip(b"\r\n")
        except (EOFError, OSError, zlib.error) as e:
            raise DataError("truncated or corrupt gzip", file=path, line=ln + 1, detail=str(e)) from None


def _split(line, path, ln):
    """'<ns> <json>' -> (ts_local, body bytes)."""
    sp = line.find(b" ")
    if sp <= 0:
        raise DataError("malformed line: expected '<local ns> <json>'", file=path, line=ln)
    head = line[:sp]
    if not head.isdigit():
        raise DataError(f"local timestamp {head[:30]!r} is not an integer", file=path, line=ln)
    if len(head) > 19 or int(head) > _INT64_MAX:
        raise DataError(f"local timestamp {head[:30]!r} is beyond int64 nanoseconds", file=path, line=ln)
    return int(head), line[sp + 1 :]


def _loads(body, path, ln):
    try:
        d = json.loads(body)
    except ValueError as e:
        raise DataError("bad JSON", file=path, line=ln, detail=str(e)) from None
    except RecursionError:
        raise DataError("bad JSON: nested too deeply", file=path, line=ln) from None
    if not isinstance(d, dict):
        raise DataError("JSON message is not an object", file=path, line=ln)
    return d


def _classify(d, path, ln):
    """-> (kind, payload): kind in 'depth', 'trade', 'ticker', 'snapshot', or the unknown stream name."""
    if "stream" in d:
        stream = d["stream"]
        data = d.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            raise DataError("combined-stream message without a 'data' object", file=path, line=ln)
        name = stream.partition("@")[2]
        if name.startswith("depth"):
            return "depth", data
        if name in ("trade", "aggTrade"):
            return "trade", data
        if name == "bookTicker":
            return "ticker", data
        return stream, data
    if "lastUpdateId" in d:
        return "snapshot", d
    e = d.get("e")
    if e == "depthUpdate":
        return "depth", d
    if e in ("trade", "aggTrade"):
        return "trade", d
    if e == "bookTicker" or ("u" in d and "B" in d and "A" in d):
        return "ticker", d
    return f"<unknown message e={e!r}>", d


def _field(d, key, path, ln):
    try:
        return d[key]
    except KeyError:
        raise DataError(f"missing field {key!r}", file=path, line=ln) from None


def _int(d, key, path, ln, lo=0, hi=_MAX_ID):
    """Integer field in [lo, hi] (default: an update id); DataError naming file and line otherwise."""
    v = _field(d, key, path, ln)
    if type(v) is not int:
        raise DataError(f"field {key!r} is not an integer: {v!r}", file=path, line=ln)
    if not lo <= v <= hi:
        raise DataError(f"field {key!r} = {v} is out of range [{lo}, {hi}]", file=path, line=ln)
    return v


def _ms(d, key, path, ln):
    """Millisecond time field: non-negative and small enough that its ns value fits int64."""
    return _int(d, key, path, ln, 0, _MAX_MS)


def _dec(d, key, path, ln):
    """Decimal field: must be a JSON string (a JSON number would go through float)."""
    v = _field(d, key, path, ln)
    if not isinstance(v, str):
        raise DataError(f"field {key!r} is not a decimal string: {v!r}", file=path, line=ln)
    return v


def _levels(d, key, path, ln):
    v = _field(d, key, path, ln)
    if not isinstance(v, list):
        raise DataError(f"field {key!r} is not a list of [price, size]", file=path, line=ln)
    return v


def _pairs(levels, path, ln):
    """[[price, size], ...] -> (prices, sizes) lists of str; DataError on any other entry."""
    for e in levels:
        if not (isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], str)):
            raise DataError(f"level entry {e!r:.80} is not [price, size] strings", file=path, line=ln)
    return [e[0] for e in levels], [e[1] for e in levels]


def _check_symbol(data, want, seen, path, ln, key="s"):
    """Return True if the message belongs to the wanted symbol (first one seen if none given)."""
    s = data.get(key)
    if s is None:
        return True
    if not isinstance(s, str):
        raise DataError(f"field {key!r} is not a string", file=path, line=ln)
    s = s.upper()
    if want is not None:
        return s == want
    if not seen:
        seen.append(s)
        return True
    if s != seen[0]:
        raise DataError(
            f"capture holds several symbols ({seen[0]}, {s}); pass symbol= to pick one", file=path, line=ln
        )
    return True


_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")  # parse_decimal_strings' grammar


def _decimals(strings):
    """Decimal strings -> [(numerator, fractional digits)], each value exactly numerator / 10**digits at its own
    scale (one common scale for a line could overflow int64 where every value fits: the C parser converts each
    alone). The rules of parse_decimal_strings: DataError(line = index) at the first string that is not
    -?digits[.digits], then at the first with more than 18 fractional digits, then more than 18 significant."""
    for i, s in enumerate(strings):
        if not isinstance(s, str) or not _DECIMAL.match(s):
            raise DataError(f"not a decimal number: {s!r:.60}", line=i)
    parts = [s.partition(".") for s in strings]
    for i, (_, _, frac) in enumerate(parts):
        if len(frac) > 18:
            raise DataError(f"more than 18 fractional digits: {strings[i]!r:.60}", line=i)
    out = []
    for i, (whole, _, frac) in enumerate(parts):
        whole = whole.lstrip("-0")
        if len(whole) + len(frac) > 18:
            raise DataError(f"decimal value too large for int64: {strings[i]!r:.60} has more than 18 significant "
                            f"digits", line=i)
        v = int(whole + frac or "0")
        out.append((-v if strings[i][0] == "-" else v, len(frac)))
    return out


def _exact_units(decimals, unit, what):
    """`_decimals` output -> int64 array of whole numbers of `unit` (a Decimal), exactly as the C parsers'
    jl_to_units; DataError(line = index, detail) at the first value that is not a multiple or overflows."""
    m, e = _unit_parts(unit)
    out = np.empty(len(decimals), np.int64)
    bad = []
    for i, (v, f) in enumerate(decimals):
        k = -f - e  # v * 10**k units of 10**e
        q, r = divmod(v * 10**k, m) if k >= 0 else divmod(v, m * 10**-k)
        if r:
            bad.append(i)
        elif not -_INT64_MAX <= q <= _INT64_MAX:
            raise DataError(f"{what} {_show(v, f)} is too large for int64 in units of {unit}", line=i)
        else:
            out[i] = q
    if bad:
        v, f = decimals[bad[0]]
        raise DataError(f"{what} {_show(v, f)} is not a multiple of {unit}", line=bad[0],
                        detail=f"{len(bad)} such values in all")
    return out


def _show(v, f):
    return str(Decimal(v).scaleb(-f))


def _wire_digits(strings):
    """(most fractional digits as written, most without trailing zeros) of decimal strings."""
    wire = sig = 0
    for s in strings:
        frac = s.partition(".")[2]
        wire = max(wire, len(frac))
        sig = max(sig, len(frac.rstrip("0")))
    return wire, sig


# -- the reader ------------------------------------------------------------------------


class _Truncated(Exception):
    pass


class _Reader:
    """One pass over the capture: C parse -> sequencing -> time merge -> event blocks.

    `run()` yields (events, update ids or None) blocks in output order and
    notes everything in `sink.report` (a ChunkedOutput's, replaced per chunk).
    """

    def __init__(self, paths, sink, *, symbol, tick_size, lot_size, keep_pre_snapshot, want_uid, progress):
        self.paths = paths
        self.sink = sink
        self.want = symbol.upper() if symbol else None
        self.seen = [self.want] if self.want else []
        self.tick_size, self.lot_size = tick_size, lot_size
        self.keep_pre = bool(keep_pre_snapshot)
        self.want_uid = want_uid
        self.progress = progress
        self.where = Locator()
        self.path = None
        self.gbase = 0
        self.inst = None
        self.p = ffi.new("bn_parser *")
        self.scan = ffi.new("bn_parser *")
        self.scan.scan = 1
        for p in (self.p, self.scan):
            p.symbol_filter = 1 if self.want else 0
        if self.want:
            self._set_symbol(self.want)
        self.msgs = np.zeros(_MSG_CAP, _MSG_DTYPE)
        self.msgs_c = ffi.cast("bn_msg *", ffi.from_buffer(self.msgs))
        self.ev_cap = _EV_CAP
        self.blocks = {}  # block id -> event buffer (referenced by pending diffs / merge records)
        self.blk = -1
        self._new_buffer()
        # sequencing state
        self.futures = None
        self.spot_shift = 0
        self.n_snaps = 0
        self.pend = np.zeros(0, _PEND_DTYPE)
        self.n_diffs = 0
        self.snaps = {}  # snapshot id -> dict
        self.pending = []  # snapshot ids waiting for a diff with u >= their id
        self.first_pending = False
        self.place_lo = 0  # diff index of the last snapshot placement
        self.snap_seen = False
        self.synced = False
        self.last_u = None
        self.n_gaps = 0
        self.d_max = None  # running max of kept diffs' ts_exch
        self.t_max = None  # running max of trades' ts_exch
        self.depth_seen = self.trade_seen = False
        self.last_depth_g = 0
        # time merge
        self.held = []
        self.held_n = 0
        self.floor = None
        self.book = None
        self.lat_v = np.zeros(0, np.int64)
        self.lat_c = np.zeros(0, np.int64)
        self.unknown = {}
        self.deferred = None  # strict: (line, error) of the earliest anomaly found
        self.disk_done = 0
        self.stream = None
        self.synced_counters = dict(blank=0, ticker=0, other_symbol=0)

    # -- report helpers
    @property
    def report(self):
        return self.sink.report

    def _add(self, key, n):
        if n:
            info = self.report.info
            info[key] = info.get(key, 0) + int(n)

    def _anomaly(self, g, reason, *, count=1, detail=None, skip=False):
        """Note an anomaly at global line g. Strict: the error is raised once no anomaly of an
        earlier line can still be found (diffs wait for their sequencing), so the first one in file order."""
        f, ln = self.where(g)
        try:
            (self.report.skip if skip else self.report.anomaly)(reason, file=f, line=ln, count=count, detail=detail)
        except DataError as e:
            self._defer(g, e)

    def _defer(self, g, e):
        if self.deferred is None or g < self.deferred[0]:
            self.deferred = (g, e)

    def _raise_deferred(self, final=False):
        if self.deferred is None:
            return
        g, e = self.deferred
        lo = [int(self.pend["g"][0])] if len(self.pend) else []
        lo += [int(r["g"][r["uid"] >= 0].min()) for r in self.held if (r["uid"] >= 0).any()]
        if final or not lo or min(lo) > g:
            raise e

    def _disk(self):
        return self.disk_done + (self.stream.tell() if self.stream is not None else 0)

    def _set_symbol(self, s):
        b = s.encode("ascii", "replace")[:63]
        for p in (self.p, self.scan):
            p.symbol = b
            p.symbol_len = len(b) if s.isascii() else 0

    def _symbol_ok(self, data, ln, key="s"):
        known = bool(self.seen)
        ok = _check_symbol(data, self.want, self.seen, self.path, ln, key)
        if not known and self.seen:
            self._set_symbol(self.seen[0])
        return ok

    # -- input
    def _pieces(self):
        """('file', path) / ('stream', _Inflater) / ('text', (bytes, length of its whole lines)) /
        ('eof', path) / ('error', detail)."""
        for path in self.paths:
            yield "file", path
            feed = _Inflater(path)
            try:
                yield "stream", feed
                carry = b""
                for what, piece in feed:
                    if what == "error":
                        yield "error", piece
                        return
                    data = carry + piece if carry else piece
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        carry = data
                        continue
                    carry = data[cut:]
                    yield "text", (data, cut)
                if carry:
                    yield "text", (carry, len(carry))
            finally:
                feed.close()
            yield "eof", path

    def run(self):
        info = self.report.info
        info["files"] = len(self.paths)
        for k in ("lines", "depth_diffs", "trades", "snapshots", "book_ticker_lines_skipped", "stale_diffs_dropped",
                  "empty_diffs", "events"):
            info[k] = 0
        info["venue"] = None
        if self.keep_pre:
            info["pre_snapshot_diffs_kept"] = 0
        pieces = self._pieces()
        ahead = self._infer(pieces)
        from lobsim.book import LevelBook

        with LevelBook() as self.book:
            for item in _chain(ahead, pieces):
                yield from self._step(*item)
            yield from self._finish()

    def _infer(self, pieces):
        """Scan the first _INFER_BYTES of text for the tick / lot; -> the pieces read ahead."""
        ahead, size = [], 0
        px = [0, 0]
        qty = [0, 0]
        path, base = None, 0
        loc = Locator()
        for item in pieces:
            ahead.append(item)
            what, val = item
            if what == "file":
                path = val
                base = loc.add(path)
                self.scan.line = base
            elif what == "eof":
                loc.end(self.scan.line - base)
            elif what == "text":
                size += val[1]
                self._scan_text(*val, path, base, px, qty)
                if size >= _INFER_BYTES:
                    break
            elif what == "error":
                break
        s = self.scan
        px = [max(px[0], s.px_wire), max(px[1], s.px_sig)]
        qty = [max(qty[0], s.qty_wire), max(qty[1], s.qty_sig)]

        def parts(wire, sig):
            return [(np.array([10 ** (wire - sig)], np.int64), 10**wire)]

        sym = self.want or (self.seen[0] if self.seen else None)
        self.inst = infer_instrument(sym, self.tick_size, self.lot_size, parts(*px), parts(*qty), self.report.info)
        self.sink.instrument = self.inst
        self.hint = {
            "price": " (tick size inferred from the start of the capture: pass tick_size=)"
            if self.tick_size is None else "",
            "size": " (lot size inferred from the start of the capture: pass lot_size=)"
            if self.lot_size is None else "",
        }
        m, e = _unit_parts(self.inst.tick_size)
        mq, eq = _unit_parts(self.inst.lot_size)
        self.fast = m <= _INT64_MAX and mq <= _INT64_MAX and abs(e) < 10**6 and abs(eq) < 10**6
        if self.fast:
            self.p.px_mant, self.p.px_exp, self.p.qty_mant, self.p.qty_exp = m, e, mq, eq
        return ahead

    def _scan_text(self, data, n, path, base, px, qty):
        s = self.scan
        s.pos = 0
        buf = ffi.from_buffer(data)
        while True:
            s.n_msgs = s.n_ev = 0
            rc = lib.bn_parse(s, buf, n, self.msgs_c, _MSG_CAP, ffi.NULL, 0)
            if rc == lib.BN_END:
                return
            if rc == lib.BN_FULL:
                continue  # only the message buffer filled up (scan writes no events)
            end, line = _line_at(data, s.pos, n)
            self.path = path
            ln = s.line + 1 - base
            d = self._decode(line, ln, dry=True)
            if d is not None:  # a bad value here would be the same error later: raise it now, not a bad tick
                self._scaled(d[4], f"{d[7]} price", ln, True)
                self._scaled(d[5], f"{d[7]} size", ln, d[0] == _TRADE)
                w, g = _wire_digits(d[4])
                px[0], px[1] = max(px[0], w), max(px[1], g)
                w, g = _wire_digits(d[5])
                qty[0], qty[1] = max(qty[0], w), max(qty[1], g)
            s.line += 1
            s.pos = end

    # -- one input item
    def _step(self, what, val):
        if what == "file":
            self.path = val
            self.gbase = self.where.add(val)
            self.p.line = self.gbase
        elif what == "stream":
            self.stream = val
        elif what == "text":
            self._parse_text(*val)
            if self.p.n_ev >= self.ev_cap // 2 or self.p.n_msgs >= _MSG_CAP // 2:
                yield from self._consume()
        elif what == "eof":
            lines = self.p.line - self.gbase
            if lines == 0:
                raise DataError("empty file: no lines", file=self.path)
            self.where.end(lines)
            self._add("lines", lines)
            self.disk_done += Path(self.path).stat().st_size
            self.stream = None
            if self.progress is not None:
                self.progress(self._disk())
        else:
            raise DataError("truncated or corrupt gzip", file=self.path, line=self.p.line - self.gbase + 1,
                            detail=val)

    def _parse_text(self, data, n):
        p = self.p
        p.pos = 0
        buf = ffi.from_buffer(data)
        while True:
            if self.fast:
                rc = lib.bn_parse(p, buf, n, self.msgs_c, _MSG_CAP, self.ev_c, self.ev_cap)
                if rc == lib.BN_END:
                    return
                if rc == lib.BN_FULL:
                    self._make_room(1 << 30)
                    continue
            elif p.pos >= n:
                return
            end, line = _line_at(data, p.pos, n)
            self._slow(line, p.line + 1 - self.gbase)
            p.line += 1
            p.pos = end

    def _new_buffer(self):
        self.blk += 1
        self.ev = np.empty(self.ev_cap, EVENT_DTYPE)
        self.ev_c = ffi.cast("lob_event *", ffi.from_buffer(self.ev))
        self.blocks[self.blk] = self.ev
        self.p.n_msgs = self.p.n_ev = 0

    def _make_room(self, n_ev):
        """Hand the parsed messages to sequencing and start new buffers (bigger if one line needs it)."""
        if self.p.n_msgs == 0 and self.p.n_ev == 0:
            self.ev_cap = max(2 * self.ev_cap, n_ev if n_ev < (1 << 30) else 2 * self.ev_cap)
            del self.blocks[self.blk]
            self._new_buffer()
            return
        self._take_messages()

    # -- the Python path for one line
    def _decode(self, line, ln, dry=False):
        """A line -> (kind, ts_local, ts, ids, prices, sizes, n_bids, side) or None (skipped); errors name it."""
        path = self.path
        if not line.strip():
            if not dry:
                self.p.blank += 1
            return None
        sp = line.find(b" ")
        if line.startswith(b'{"stream":"', sp + 1):  # the quick skip of bookTicker lines
            end = line.find(b'"', sp + 12, sp + 120)
            if end > 0 and line[sp + 12 : end].endswith(b"@bookTicker"):
                if not dry:
                    self.p.ticker += 1
                return None
        ts_local, body = _split(line, path, ln)
        kind, data = _classify(_loads(body, path, ln), path, ln)
        if kind == "depth":
            if not self._symbol_ok(data, ln):
                if not dry:
                    self.p.other_symbol += 1
                return None
            has_pu = "pu" in data
            E = _ms(data, "E", path, ln)
            U = _int(data, "U", path, ln)
            u = _int(data, "u", path, ln)
            pu = _int(data, "pu", path, ln, -1) if has_pu else -1
            bp, bq = _pairs(_levels(data, "b", path, ln), path, ln)
            ap, aq = _pairs(_levels(data, "a", path, ln), path, ln)
            return _DEPTH, ts_local, E * _MS, (U, u, pu, has_pu), bp + ap, bq + aq, len(bp), "depth", 0
        if kind == "trade":
            if not self._symbol_ok(data, ln):
                if not dry:
                    self.p.other_symbol += 1
                return None
            T = _ms(data, "T" if "T" in data else "E", path, ln)
            m = _field(data, "m", path, ln)
            if type(m) is not bool:
                raise DataError(f"field 'm' is not a boolean: {m!r}", file=path, line=ln)
            p, q = _dec(data, "p", path, ln), _dec(data, "q", path, ln)
            return _TRADE, ts_local, T * _MS, (-1, -1, -1, 0), [p], [q], 0, "trade", -1 if m else 1
        if kind == "ticker":
            if not dry:
                self.p.ticker += 1
            return None
        if kind == "snapshot":
            if not self._symbol_ok(data, ln, key="symbol"):
                if not dry:
                    self.p.other_symbol += 1
                return None
            bp, bq = _pairs(_levels(data, "bids", path, ln), path, ln)
            ap, aq = _pairs(_levels(data, "asks", path, ln), path, ln)
            E = _ms(data, "E", path, ln) * _MS if data.get("E") is not None else -1
            last_id = _int(data, "lastUpdateId", path, ln)
            return _SNAPSHOT, ts_local, E, (-1, last_id, -1, 0), bp + ap, bq + aq, len(bp), "snapshot", 0
        if not dry:
            self.unknown[kind] = self.unknown.get(kind, 0) + 1
            self.report.info["unknown_streams"] = dict(self.unknown)  # cumulative: the last chunk's is the total
            self._anomaly(self.gbase + ln, "unknown_stream", detail=kind, skip=True)
        return None

    def _scaled(self, strings, what, ln, positive):
        """Decimal strings of line ln -> `_decimals`; DataError naming the line if one is bad."""
        path = self.path
        try:
            vals = _decimals(strings)
        except DataError as e:
            raise DataError(f"{what}: {e.reason}", file=path, line=ln) from None
        if positive and any(v <= 0 for v, _ in vals):
            raise DataError(f"{what} must be positive", file=path, line=ln)
        if not positive and any(v < 0 for v, _ in vals):
            raise DataError(f"{what} is negative", file=path, line=ln)
        return vals

    def _units(self, strings, unit, what, ln, positive):
        path = self.path
        vals = self._scaled(strings, what, ln, positive)
        try:
            return _exact_units(vals, self.inst.tick_size if unit == "price" else self.inst.lot_size, unit)
        except DataError as e:
            raise DataError(e.reason + self.hint[unit], file=path, line=ln, detail=e.detail) from None

    def _slow(self, line, ln):
        d = self._decode(line, ln)
        if d is None:
            return
        kind, tl, ts, (U, u, pu, has_pu), prices, sizes, nb, what, side = d
        px = self._units(prices, "price", f"{what} price", ln, True)
        qty = self._units(sizes, "size", f"{what} size", ln, kind == _TRADE)
        n_zero = 0
        if kind == _SNAPSHOT:
            nz = qty > 0  # a zero level in a snapshot is no level
            n_zero = int((~nz).sum())
            sides = np.where(np.arange(len(px)) < nb, 1, -1)[nz]
            px, qty = px[nz], qty[nz]
            n = 1 + len(px)
        else:
            sides = np.where(np.arange(len(px)) < nb, 1, -1) if kind == _DEPTH else np.array([side])
            n = len(px)
        p = self.p
        if p.n_msgs >= _MSG_CAP or p.n_ev + n > self.ev_cap:
            self._make_room(n)
            if p.n_ev + n > self.ev_cap:
                self._make_room(n)
        i0 = p.n_ev
        ev = self.ev[i0 : i0 + n]
        ev[:] = 0
        ev["ts_local"] = tl
        if kind == _SNAPSHOT:
            ev["kind"] = EventKind.SET_LEVEL
            ev["kind"][0] = EventKind.CLEAR
            ev["price"][1:], ev["qty"][1:], ev["side"][1:] = px, qty, sides
            ev["flags"] = int(Flag.SNAPSHOT)
        else:
            ev["ts_exch"] = ts
            ev["kind"] = EventKind.TRADE if kind == _TRADE else EventKind.SET_LEVEL
            ev["price"], ev["qty"], ev["side"] = px, qty, sides
        if n and kind != _TRADE:
            ev["flags"][-1] |= int(Flag.BATCH_END)
        m = self.msgs[p.n_msgs]
        m["line"], m["ts_local"], m["ts"] = p.line + 1, tl, ts
        m["U"], m["u"], m["pu"] = U, u, pu
        m["ev_start"], m["n_ev"], m["n_zero"], m["kind"], m["has_pu"] = i0, n, n_zero, kind, has_pu
        p.n_msgs += 1
        p.n_ev += n

    # -- sequencing
    def _take_messages(self):
        """Sequence the parsed messages (in file order) and start new parse buffers."""
        p = self.p
        m = self.msgs[: p.n_msgs].copy()
        blk = self.blk
        self._new_buffer()
        self._sync_counters()
        if not len(m):
            return
        kind = m["kind"]
        trades = m[kind == _TRADE]
        if len(trades):
            self.trade_seen = True
            self._add("trades", len(trades))
            g = trades["line"]
            ts, self.t_max = self._monotone(trades["ts"], self.t_max, g, "trade")
            rec = np.zeros(len(trades), _REC_DTYPE)
            rec["ts"], rec["key"], rec["tl"], rec["tl_new"], rec["g"], rec["uid"] = ts, 2 * g, trades["ts_local"], -1, g, -1
            rec["blk"], rec["ev0"], rec["n"], rec["set_ts"] = blk, trades["ev_start"], 1, ts != trades["ts"]
            self._hold(rec)
        book = m[kind != _TRADE]
        if not len(book):
            return
        self.depth_seen = True
        depth = book["kind"] == _DEPTH
        self._check_venue(book[depth])
        self._add("depth_diffs", int(depth.sum()))
        self._add("snapshots", len(book) - int(depth.sum()))
        start = 0
        for i in np.flatnonzero(~depth).tolist():  # runs of diffs between snapshot lines
            if i > start:
                self._append(book[start:i], blk)
            self._on_snapshot(book[i], blk)
            start = i + 1
        if start < len(book):
            self._append(book[start:], blk)
        # decide the diffs no later snapshot line can reach
        n = self.pend["n"]
        if len(n):
            suffix = np.cumsum(n[::-1])[::-1]
            k = int(np.searchsorted(-suffix, -_REACH, side="left"))  # first row whose suffix <= _REACH
            if k:
                self._decide(k)

    def _sync_counters(self):
        """The parser's line counters (blank, bookTicker, other symbol) into the report."""
        for k, key in (("blank", "blank_lines"), ("ticker", "book_ticker_lines_skipped"),
                       ("other_symbol", "other_symbol_lines_skipped")):
            v = getattr(self.p, k)
            self._add(key, v - self.synced_counters[k])
            self.synced_counters[k] = v

    def _check_venue(self, d):
        if not len(d):
            return
        has_pu = d["has_pu"].astype(bool)
        if self.futures is None:
            self.futures = bool(has_pu[0])
            self.spot_shift = 0 if self.futures else 1
            self.report.info["venue"] = "futures" if self.futures else "spot"
        bad = np.flatnonzero(has_pu != self.futures)
        if len(bad):
            f, ln = self.where(int(d["line"][bad[0]]))
            raise DataError("depth diffs mix futures (with 'pu') and spot (without) formats", file=f, line=ln)

    def _append(self, d, blk):
        """Diffs (bn_msg rows, file order) join the pending window."""
        n = len(d)
        rows = np.zeros(n, _PEND_DTYPE)
        rows["g"], rows["tl"], rows["ts"] = d["line"], d["ts_local"], d["ts"]
        rows["U"], rows["u"], rows["pu"] = d["U"], d["u"], d["pu"]
        rows["ev0"], rows["n"], rows["blk"] = d["ev_start"], d["n_ev"], blk
        rows["di"] = np.arange(self.n_diffs, self.n_diffs + n)
        rows["sp"], rows["tlf"] = -1, -1
        self.n_diffs += n
        self.last_depth_g = int(d["line"][-1])
        i = 0
        while self.pending and i < n:  # snapshots waiting for the first diff that reaches their id
            hits = np.flatnonzero(rows["u"][i:] >= self._thr(self.pending[0]))
            j = i + int(hits[0]) if len(hits) else n
            if self.first_pending:
                rows["st"][i:j] = 1  # before the first snapshot's place: stale
            if j == n:
                break
            sid = self.pending.pop(0)
            while self.pending and rows["u"][j] >= self._thr(self.pending[0]):
                self._add("superseded_snapshots", 1)  # a later snapshot at the same place wins
                sid = self.pending.pop(0)
            rows["sp"][j] = sid
            self.place_lo = int(rows["di"][j])
            self.first_pending = False
            i = j + 1
        self.pend = np.concatenate([self.pend, rows]) if len(self.pend) else rows

    def _on_snapshot(self, s, blk):
        """A snapshot line: place it before the first diff within reach that it bridges (or a later one)."""
        pend = self.pend
        if len(pend):
            suffix = np.cumsum(pend["n"][::-1])[::-1]
            r0 = int(np.searchsorted(-suffix, -_REACH, side="left"))
            r0 = max(r0, int(np.searchsorted(pend["di"], self.place_lo)))
            if r0:
                self._decide(r0)
                pend = self.pend
        sid = self.n_snaps
        self.n_snaps += 1
        self.snaps[sid] = dict(g=int(s["line"]), tl=int(s["ts_local"]), id=int(s["u"]), E=int(s["ts"]), blk=blk,
                               ev0=int(s["ev_start"]), n=int(s["n_ev"]), n_zero=int(s["n_zero"]))
        thr = self._thr(sid)
        first = not self.snap_seen
        self.snap_seen = True
        if self.pending:
            self.pending.append(sid)
            return
        hits = np.flatnonzero(pend["u"] >= thr) if len(pend) else []
        if len(hits):
            k = int(hits[0])
            if pend["sp"][k] >= 0:
                self._add("superseded_snapshots", 1)
            pend["sp"][k] = sid
            self.place_lo = int(pend["di"][k])
            pend["tlf"][k:] = np.maximum(pend["tlf"][k:], self.snaps[sid]["tl"])
            if first:
                pend["st"][:k] = 1
        else:
            self.pending.append(sid)
            if first:
                if len(pend):
                    pend["st"][:] = 1
                self.first_pending = True

    def _thr(self, sid):
        """The update id the diff after snapshot `sid` must reach (spot: lastUpdateId + 1)."""
        return self.snaps[sid]["id"] + self.spot_shift

    def _decide(self, k):
        """Sequence the first k pending diffs (they can no longer move) and hand them to the merge."""
        rows, self.pend = self.pend[:k], self.pend[k:]
        fut = self.futures
        if not (rows["sp"] >= 0).any() and not rows["st"].any():
            u = rows["u"]
            prev = np.empty_like(u)
            prev[1:] = u[:-1]
            prev[0] = self.last_u if self.last_u is not None else u[0] - 1
            ok = (u > prev) & ((rows["pu"] == prev) if fut else (rows["U"] == prev + 1))
            if self.last_u is None:
                ok[0] = True
            if ok.all():
                self.last_u = int(u[-1])
                if self.n_gaps:
                    self._add("diffs_applied_after_first_gap", len(rows))
                fl = 0
                if not self.synced:
                    if self.keep_pre:
                        fl = _PRE
                        self._add("pre_snapshot_diffs_kept", len(rows))
                    else:
                        self._anomaly(int(rows["g"][0]), NO_SNAPSHOT, count=len(rows), detail=_NO_SNAPSHOT)
                self._emit_diffs(rows, fl)
                return
        self._decide_loop(rows)

    def _gap(self, g, detail):
        self.n_gaps += 1
        self._anomaly(g, SEQUENCE_GAP, detail=detail)

    def _decide_loop(self, rows):
        keep = np.zeros(len(rows), bool)
        fl = np.zeros(len(rows), np.uint16)
        snap_at = {}
        fut = self.futures
        shift = self.spot_shift
        no_snap = []
        for i in range(len(rows)):
            r = rows[i]
            U, u, pu, g = int(r["U"]), int(r["u"]), int(r["pu"]), int(r["g"])
            sid = int(r["sp"])
            if sid >= 0:
                s = self.snaps[sid]
                thr = s["id"] + shift
                self.synced = True
                if not U <= thr <= u:
                    self._gap(g, f"first diff after snapshot {s['id']} has U={U} u={u}: updates between them "
                                 f"were missed")
                keep[i] = True
                self.last_u = u
                snap_at[i] = sid
                continue
            pre = nosnap = False
            if r["st"]:
                if not self.keep_pre:
                    self._add("stale_diffs_dropped", 1)
                    continue
                pre = True
            elif not self.synced:
                pre, nosnap = self.keep_pre, not self.keep_pre
            if self.last_u is not None:
                if u <= self.last_u:
                    self._anomaly(g, "duplicate_diff", detail=f"u={u} <= previous u={self.last_u}", skip=True)
                    self._add("duplicate_diffs_dropped", 1)
                    continue
                ok = pu == self.last_u if fut else U == self.last_u + 1
                if not ok:
                    prev = f"pu={pu}" if fut else f"U={U}"
                    self._gap(g, f"{prev} does not follow previous u={self.last_u}")
            if self.n_gaps:
                self._add("diffs_applied_after_first_gap", 1)
            if pre:
                fl[i] = _PRE
                self._add("pre_snapshot_diffs_kept", 1)
            if nosnap:
                no_snap.append(g)
            keep[i] = True
            self.last_u = u
        if no_snap:
            self._anomaly(no_snap[0], NO_SNAPSHOT, count=len(no_snap), detail=_NO_SNAPSHOT)
        # emit in order, snapshots before the diff they were placed at
        start = 0
        for i in sorted(snap_at):
            sel = keep[start:i]
            self._emit_diffs(rows[start:i][sel], fl[start:i][sel])
            self._emit_snapshot(snap_at[i], rows[i])
            start = i
        sel = keep[start:]
        self._emit_diffs(rows[start:][sel], fl[start:][sel])

    def _monotone(self, ts, run_max, g, what):
        """ts raised to the running max (carried in run_max, and the merge floor); -> (fixed, new max)."""
        if not len(ts):
            return ts, run_max
        start = run_max if run_max is not None else ts[0]
        if self.floor is not None:
            start = max(start, self.floor)
        fixed = np.maximum.accumulate(np.concatenate(([start], ts)))[1:]
        bad = np.flatnonzero(ts < fixed)
        if len(bad):
            self._anomaly(
                int(g[bad[0]]), OUT_OF_ORDER_TS, count=len(bad),
                detail=f"{what} exchange time {int(ts[bad[0]])} ns before the previous {int(fixed[bad[0]])} ns; "
                       f"raised to it")
        return fixed, int(fixed[-1])

    def _emit_diffs(self, rows, fl):
        if not len(rows):
            return
        ts, self.d_max = self._monotone(rows["ts"], self.d_max, rows["g"], "depth diff")
        raised = rows["tlf"] > rows["tl"]
        self._add("diffs_buffered_until_snapshot", int((rows["tlf"] >= 0).sum()))
        self._add("empty_diffs", int((rows["n"] == 0).sum()))
        rec = np.zeros(len(rows), _REC_DTYPE)
        rec["ts"], rec["key"], rec["tl"], rec["g"], rec["uid"] = ts, 2 * rows["g"], rows["tl"], rows["g"], rows["u"]
        rec["tl_new"] = np.where(raised, rows["tlf"], -1)
        rec["blk"], rec["ev0"], rec["n"] = rows["blk"], rows["ev0"], rows["n"]
        rec["set_ts"] = ts != rows["ts"]
        rec["fl"] = fl
        self._hold(rec)

    def _emit_snapshot(self, sid, at=None):
        """The snapshot's record: before the diff row `at` it bridges, or at the end of the book stream."""
        s = self.snaps.pop(sid)
        cand = [] if s["E"] < 0 else [s["E"]]
        if at is not None:
            first_ts = int(at["ts"]) if self.d_max is None else max(self.d_max, int(at["ts"]))
            if self.floor is not None:
                first_ts = max(first_ts, self.floor)
            cand.append(first_ts)
            key = 2 * int(at["g"]) - 1
        else:
            key = 2 * max(self.last_depth_g, s["g"]) + 1
        ts = min(cand) if cand else s["tl"]
        lo = self.d_max if self.d_max is not None else self.floor
        if lo is not None:
            ts = max(ts, lo)
        self._add("snapshot_zero_levels_dropped", s["n_zero"])
        rec = np.zeros(1, _REC_DTYPE)
        rec["ts"], rec["key"], rec["tl"], rec["tl_new"], rec["g"], rec["uid"] = ts, key, s["tl"], -1, s["g"], s["id"]
        rec["blk"], rec["ev0"], rec["n"], rec["set_ts"] = s["blk"], s["ev0"], s["n"], True
        self._hold(rec)

    # -- time merge and output
    def _hold(self, rec):
        self.held.append(rec)
        self.held_n += int(rec["n"].sum())

    def _consume(self):
        """Emit the held records no later input can precede (or the oldest, past _HOLD)."""
        if self.p.n_msgs:
            self._take_messages()
        if self.held:
            inf = np.iinfo(np.int64).max
            f_d = (self.d_max if self.d_max is not None else -inf) if self.depth_seen else inf
            f_t = self.t_max if self.trade_seen else inf
            yield from self._flush(min(f_d, f_t))
        self._raise_deferred()

    def _flush(self, frontier, force_all=False):
        rec = np.concatenate(self.held) if len(self.held) > 1 else self.held[0]
        order = np.lexsort((rec["key"], rec["ts"]))
        rec = rec[order]
        k = len(rec) if force_all else int(np.searchsorted(rec["ts"], frontier, side="left"))
        if not force_all and self.held_n - int(rec["n"][:k].sum()) > _HOLD:
            # a stream silent for too long: write the oldest, later records below it are raised
            left = np.cumsum(rec["n"][::-1])[::-1]  # events from row i to the end
            k = max(k, int(np.searchsorted(-left, -(_HOLD // 2), side="left")))
            if k:
                self.floor = int(rec["ts"][k - 1])
                if self.depth_seen:
                    self.d_max = max(self.d_max, self.floor) if self.d_max is not None else self.floor
                if self.trade_seen:
                    self.t_max = max(self.t_max, self.floor)
        out, rest = rec[:k], rec[k:]
        self.held = [rest] if len(rest) else []
        self.held_n = int(rest["n"].sum()) if len(rest) else 0
        if len(out):
            yield from self._write(out)
        # buffers no longer referenced are freed
        live = {self.blk}
        for r in self.held:
            live.update(np.unique(r["blk"]).tolist())
        if len(self.pend):
            live.update(np.unique(self.pend["blk"]).tolist())
        for s in self.snaps.values():
            live.add(s["blk"])
        for b in list(self.blocks):
            if b not in live:
                del self.blocks[b]

    def _write(self, rec):
        n = rec["n"]
        total = int(n.sum())
        if not total:
            return
        b0 = int(rec["blk"].min())
        arrs = [self.blocks.get(b) for b in range(b0, int(rec["blk"].max()) + 1)]
        bufs = ffi.new("lob_event *[]", [ffi.NULL if a is None else ffi.from_buffer("lob_event[]", a) for a in arrs])
        lens = np.array([0 if a is None else len(a) for a in arrs], np.int64)
        ev = np.empty(total, EVENT_DTYPE)
        uid = np.empty(total, np.int64) if self.want_uid else None
        rec = np.ascontiguousarray(rec)
        got = lib.bn_gather(ffi.from_buffer("bn_rec[]", rec), len(rec), b0, bufs, ffi.from_buffer("int64_t[]", lens),
                            len(arrs), ffi.from_buffer("lob_event[]", ev), total,
                            ffi.NULL if uid is None else ffi.from_buffer("int64_t[]", uid))
        if got != total:
            raise AssertionError("binance reader bug: an event record outside its buffer")
        # the crossing check continues the book across blocks
        info = self.report.info
        before = info.get("batches_checked_for_crossing", 0)
        lines = _EventLines(rec["g"], n)
        try:
            report_crossed(ev, lines, self.report, self.where, book=self.book)
        except DataError as e:  # strict
            self._defer(lines.last, e)
        info["batches_checked_for_crossing"] = before + info.get("batches_checked_for_crossing", 0)
        self._add("events", total)
        # feed latency histogram (us), one entry per record weighted by its events
        tl = np.where(rec["tl_new"] >= 0, rec["tl_new"], rec["tl"])
        lat = (tl - rec["ts"] + 500) // 1000
        w = n > 0
        v, inv = np.unique(np.concatenate([self.lat_v, lat[w]]), return_inverse=True)
        c = np.zeros(len(v), np.int64)
        np.add.at(c, inv, np.concatenate([self.lat_c, n[w]]))
        self.lat_v, self.lat_c = v, c
        yield ev, uid

    def _finish(self):
        if self.p.n_msgs:
            self._take_messages()
        self._sync_counters()
        if len(self.pend):
            self._decide(len(self.pend))
        if self.pending:
            self._add("superseded_snapshots", len(self.pending) - 1)
            for sid in self.pending[:-1]:
                self.snaps.pop(sid)
            self._emit_snapshot(self.pending[-1])
            self.pending = []
        if self.held:
            yield from self._flush(None, force_all=True)
        info = self.report.info  # notes after the last block: iter_binance adds that block after them
        if self.lat_c.sum():
            cum = np.cumsum(self.lat_c)
            total = int(cum[-1])
            out = {}
            for name, q in (("p1", 1), ("median", 50), ("p99", 99)):
                pos = q / 100 * (total - 1)
                lo, hi = int(np.floor(pos)), int(np.ceil(pos))
                a = self.lat_v[np.searchsorted(cum, lo, side="right")]
                b = self.lat_v[np.searchsorted(cum, hi, side="right")]
                out[name] = round(float(a + (b - a) * (pos - lo)) / 1000, 3)
            info["feed_latency_ms"] = out
        self._raise_deferred(final=True)


class _Inflater:
    """A capture file's text (gzip, any number of members, or plain), decompressed ahead in a thread.

    Iterating gives ('data', bytes) pieces of at most _PIECE bytes, then ('error', detail) if the
    gzip stream is truncated or corrupt; `tell()` is the bytes of the file read so far. zlib
    releases the GIL, so decompression overlaps the parsing.
    """

    def __init__(self, path):
        require_file(path)
        try:
            self.fh = open(path, "rb")
        except OSError as e:
            raise DataError(f"cannot open: {e.strerror or e}", file=path) from None
        self.pos = 0
        self.queue = queue.Queue(maxsize=8)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def tell(self):
        return self.pos

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _run(self):
        try:
            for piece in self._inflate():
                if not self._put(("data", piece)):
                    return
            self._put(("end", None))
        except (EOFError, OSError, zlib.error, fast_zlib.error) as e:
            self._put(("error", str(e)))
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            self._put(("raise", e))

    def _inflate(self):
        fh = self.fh
        gz = fh.read(2) == GZIP_MAGIC
        fh.seek(0)
        if not gz:
            while piece := fh.read(_PIECE):
                self.pos = fh.tell()
                yield piece
            return
        d = None
        while raw := fh.read(1 << 18):
            self.pos = fh.tell()
            while raw:
                if d is None:  # a gzip member starts (zero padding between members is skipped)
                    raw = raw.lstrip(b"\0")
                    if not raw:
                        break
                    d = fast_zlib.decompressobj(31)
                out = d.decompress(raw, _PIECE)
                raw = d.unconsumed_tail
                while out:
                    yield out
                    out = d.decompress(b"", _PIECE) if len(out) == _PIECE and not raw and not d.eof else b""
                if d.eof:
                    raw, d = d.unused_data, None
        if d is not None:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    def __iter__(self):
        while True:
            what, val = self.queue.get()
            if what == "end":
                return
            if what == "raise":
                raise val
            yield what, val

    def close(self):
        self.stop.set()
        self.thread.join()
        self.fh.close()


class _EventLines:
    """lines[i] -> the global line of event i, computed on demand (report_crossed needs one)."""

    def __init__(self, g, n):
        self.g, self.ends = g, np.cumsum(n)
        self.last = None

    def __getitem__(self, i):
        self.last = int(self.g[int(np.searchsorted(self.ends, i, side="right"))])
        return self.last


def _line_at(data, pos, n):
    """(end of the line at pos in data[:n], past its newline; the line without its line break)."""
    nl = data.find(b"\n", pos, n)
    if nl < 0:
        nl = n
    return nl + 1, data[pos:nl].rstrip(b"\r\n")


def _chain(ahead, rest):
    """The items read ahead (released as they are used), then the rest."""
    ahead.reverse()
    while ahead:
        yield ahead.pop()
    yield from rest


# -- decimals of whole columns (bookTicker) --------------------------------------------


def _parse(strings, owner_line, where, what):
    """Decimal strings -> (int64 scaled, scale); errors name the file and line of the entry."""
    try:
        return parse_decimal_strings(strings, line_offset=0)
    except DataError as e:
        if e.line is not None and len(owner_line):
            f, ln = where(owner_line[e.line])
            raise DataError(f"{what}: {e.reason}", file=f, line=ln) from None
        raise DataError(f"{what}: {e.reason}", file=where(owner_line[0])[0] if len(owner_line) else None) from None


def _to_units(inst, scaled, scale, kind, owner_line, where):
    """Scaled ints -> ticks / lots, errors naming the line of the offending entry."""
    try:
        if kind == "price":
            return inst.prices_from_scaled(scaled, scale, line_offset=0)
        return inst.qtys_from_scaled(scaled, scale, line_offset=0)
    except DataError as e:
        if e.line is not None and len(owner_line):
            f, ln = where(owner_line[e.line])
            raise DataError(e.reason, file=f, line=ln, detail=e.detail) from None
        raise


# -- public API ------------------------------------------------------------------------


def iter_binance(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False, keep_pre_snapshot=False,
                 chunk_rows=DEFAULT_CHUNK_ROWS, progress=None):
    """Read Binance websocket capture file(s) (given in order) as `Events` chunks of `chunk_rows` events.

    See the module docstring for the streams, sequencing, clocks and instrument
    inference. `progress(bytes)` is called with the compressed bytes consumed
    so far (all files) after every chunk and at the end.
    """
    paths = _as_paths(paths)
    out = ChunkedOutput(chunk_rows, ",".join(str(p) for p in paths), strict)
    reader = _Reader(paths, out, symbol=symbol, tick_size=tick_size, lot_size=lot_size,
                     keep_pre_snapshot=keep_pre_snapshot, want_uid=False, progress=progress)
    prev = None
    for ev, _ in reader.run():
        if prev is not None:
            for chunk in out.add(prev):
                yield chunk
                if progress is not None:
                    progress(reader._disk())
        prev = ev
    if prev is not None:  # added last, so notes made at the end go into a chunk still to come
        for chunk in out.add(prev):
            yield chunk
            if progress is not None:
                progress(reader._disk())
    for chunk in out.finish():
        yield chunk
    if progress is not None:
        progress(reader._disk())


def read_binance(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False, keep_pre_snapshot=False):
    """Read Binance websocket capture file(s) (given in order) -> `Events` of L2 events (`iter_binance` in one chunk)."""
    return collect(iter_binance(paths, symbol=symbol, tick_size=tick_size, lot_size=lot_size, strict=strict,
                                keep_pre_snapshot=keep_pre_snapshot, chunk_rows=MAX_CHUNK_ROWS))


def _load_binance(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False, keep_pre_snapshot=False):
    """Like `read_binance`, but also returns each event's update id (`_Capture`); the tests use it to
    line the replayed book up with bookTicker."""
    paths = _as_paths(paths)
    out = ChunkedOutput(MAX_CHUNK_ROWS, ",".join(str(p) for p in paths), strict)
    reader = _Reader(paths, out, symbol=symbol, tick_size=tick_size, lot_size=lot_size,
                     keep_pre_snapshot=keep_pre_snapshot, want_uid=True, progress=None)
    evs, uids = [], []
    for ev, uid in reader.run():
        evs.append(ev)
        uids.append(uid)
    array = np.concatenate(evs) if evs else np.zeros(0, EVENT_DTYPE)
    events = collect(itertools.chain(out.add(array), out.finish()))
    return _Capture(events, np.concatenate(uids) if uids else np.zeros(0, np.int64))


# -- bookTicker ------------------------------------------------------------------


def read_binance_book_ticker(paths, instrument=None, *, symbol=None):
    """bookTicker messages of the capture -> BOOK_TICKER_DTYPE array, in file order.

    Prices / sizes are in ticks / lots of `instrument` (pass the Events'
    instrument to compare with a replayed book); without one, the finest
    resolution seen in the bookTicker values is used.
    """
    paths = _as_paths(paths)
    want = symbol.upper() if symbol else None
    seen = []
    u, tl, cols, owner = [], [], ([], [], [], []), []
    where = Locator()  # global line number -> (file, line)

    for path in paths:
        gbase = where.add(path)
        ln = 0
        for ln, line in _iter_lines(path):
            if b"bookTicker" not in line[:140] and b'"B"' not in line:
                continue
            if not line.strip():
                continue
            ts_local, body = _split(line, path, ln)
            kind, data = _classify(_loads(body, path, ln), path, ln)
            if kind != "ticker" or not _check_symbol(data, want, seen, path, ln):
                continue
            u.append(_int(data, "u", path, ln))
            tl.append(ts_local)
            for c, key in zip(cols, ("b", "B", "a", "A")):
                c.append(_dec(data, key, path, ln))
            owner.append(gbase + ln)
        where.end(ln)
    owner = np.asarray(owner, np.int64)
    out = np.zeros(len(u), BOOK_TICKER_DTYPE)
    out["update_id"] = u
    out["ts_local"] = tl
    names = ("bid price", "bid size", "ask price", "ask size")
    parsed = [_parse(np.asarray(c, dtype=str), owner, where, what) for c, what in zip(cols, names)]
    # same rules as read_binance: prices positive, sizes non-negative; name the earliest bad line
    bad = [(int(owner[b[0]]), what) for (vals, _), what in zip(parsed, names)
           for b in [np.nonzero(vals <= 0 if what.endswith("price") else vals < 0)[0]] if len(b)]
    if bad:
        g, what = min(bad)
        f, ln = where(g)
        raise DataError(f"{what} must be {'positive' if what.endswith('price') else 'non-negative'}", file=f, line=ln)
    if instrument is None:
        instrument = infer_instrument(want or (seen[0] if seen else None), None, None,
                                      [parsed[0], parsed[2]], [parsed[1], parsed[3]])
    for (vals, scale), name, kind in zip(parsed, ("bid_px", "bid_qty", "ask_px", "ask_qty"), ("price", "qty") * 2):
        out[name] = _to_units(instrument, vals, scale, kind, owner, where)
    return out
