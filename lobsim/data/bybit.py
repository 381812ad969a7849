"""Reader of Bybit v5 public websocket ``orderbook.<depth>`` captures into normalized L2 events, with the
book rebuilt from the deltas checked against every later snapshot at the same update id.

Input: a text capture, one message a line (the format of Tardis' Bybit samples, e.g.
``2024-12-01_XRPUSDT_ob500.data``), plain, gzip, or a zip holding that one file. Each line is a JSON
message ``{"topic": "orderbook.500.XRPUSDT", "type": "snapshot"|"delta", "ts": <ms>, "cts": <ms>,
"data": {"s": symbol, "b": [[price, size], ...], "a": [...], "u": <update id>, "seq": <seq>}}``;
a line may start with the local receive time (``<unix ns> `` or ``<unix seconds[.fraction]>: ``).
Messages without a topic (subscription replies) are counted in ``report.info``; other topics
(e.g. publicTrade) are counted as ``skipped:other_topic``.

- ``snapshot``: CLEAR + one SET_LEVEL per level (bids then asks, wire order), all flagged SNAPSHOT,
  the last BATCH_END. It replaces the book: after a gap, a resubscription, or a service restart
  (Bybit then restarts ``u`` at 1; counted in ``report.info["restarts"]``).
- ``delta``: one SET_LEVEL per entry with the level's new absolute size (``"0"`` deletes), the last
  event of the message BATCH_END. ``u`` must be the previous message's ``u`` + 1; otherwise a
  ``sequence_gap`` anomaly (Bybit's rule is to resubscribe: the book may be wrong until the next
  snapshot; the reader keeps applying). Deltas before the first snapshot are kept, flagged
  PRE_SNAPSHOT, and counted as ``no_snapshot``.
- Depth: the book is kept to the topic's depth (500 for ``orderbook.500``) as Bybit keeps it: after a
  message, levels beyond the depth-th on a side are dropped with a SET_LEVEL 0 each
  (``report.info["levels_truncated"]``; 0 on the sample: Bybit deletes them itself).
- Snapshot consistency (Bybit's truth in the data): when a snapshot arrives with the same ``u`` as
  the last message applied, the book rebuilt from the deltas must equal it level for level
  (``report.info["snapshots_checked"]``; a difference is a ``snapshot_mismatch`` anomaly, strict
  raises); a snapshot at another id cannot be compared (``snapshots_not_comparable``).

Clocks: ``ts_exch`` = ``cts``, the matching engine's time of the book change (the time Bybit's trades
carry as ``T``), or ``ts`` (the time Bybit's gateway generated the message) when a message has no
``cts``; ``ts_local`` = the line's local receive time when the capture has one, else ``ts_exch``
(``report.info["ts_local"]`` says which). A ts_exch that goes backwards is raised to the previous one
and reported (out_of_order_timestamp).

Instrument: given tick/lot sizes, else the finest decimal resolution of the prices and sizes in the
first block of messages read (BLOCK_LINES messages with events, the first snapshot at least, but no more
than kraken.AHEAD bytes of text): a later value off that grid raises a DataError naming file and line and
telling to pass tick_size= / lot_size=.
Prices and sizes are converted exactly from their decimal strings to ticks / lots, never through floats.

Speed: the lines are parsed and applied to the book in C (csrc/bybit.c, the JSON and decimal primitives
shared with the Binance reader in csrc/jsonlines.c): a first pass over the first block only gathers the
decimals seen (the tick / lot), then every line is converted and applied. A line the C parser does not
take exactly (odd JSON, escapes, a bad or off-grid value, a new topic) is decoded by the Python code
below, which raises the error naming its line or hands the message to the same C book (bb_apply).
"""
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lobsim._core import ffi, lib
from lobsim._types import EVENT_DTYPE
from lobsim.data._io import disk_position, open_input, require_file
from lobsim.data.events import (DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, NO_SNAPSHOT, SEQUENCE_GAP, ChunkedOutput,
                                collect)
from lobsim.data.kraken import _INT64_MAX, _digits_only, _key, _line_end, _pieces, _PieceReader, _small_int
from lobsim.data.tardis import _Feed
from lobsim.errors import DataError

__all__ = ["read_bybit", "iter_bybit"]

SNAPSHOT_MISMATCH = "snapshot_mismatch"
BLOCK_LINES = 2000  # the tick / lot are inferred from the first block of this many messages (and its snapshot)
_FLUSH = 1 << 16  # events held before they are handed on at the end of a piece

_SECONDS = re.compile(rb"([0-9]{1,11})(?:\.([0-9]{1,9})[0-9]*)?: ")
_NANOS = re.compile(rb"([0-9]{19}) ")
_MSG_DTYPE = np.dtype([("line", "<i8"), ("tx", "<i8"), ("tl", "<i8"), ("n_ev", "<i8")])
_NOTE_DTYPE = np.dtype([("line", "<i8"), ("kind", "<i8"), ("a", "<i8"), ("b", "<i8"), ("c", "<i8")])
_LEVEL_DTYPE = np.dtype([("px", "<i8"), ("qty", "<i8"), ("side", "<i8")])
assert _MSG_DTYPE.itemsize == ffi.sizeof("bb_msg") and _NOTE_DTYPE.itemsize == ffi.sizeof("bb_note")
assert _LEVEL_DTYPE.itemsize == ffi.sizeof("bb_level")
_COUNTERS = ("blank_lines", "messages", "snapshots", "snapshots_checked", "snapshots_not_comparable", "restarts",
             "deletes_of_absent_levels", "levels_truncated")


def read_bybit(path, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Bybit v5 ``orderbook.<depth>`` capture (zip, gzip or plain) -> `Events` (L2) of one symbol.

    `symbol`: the symbol to keep (needed when the capture holds several). See
    the module docstring. One code path with `iter_bybit`.
    """
    return collect(iter_bybit(path, symbol=symbol, tick_size=tick_size, lot_size=lot_size, strict=strict,
                              chunk_rows=MAX_CHUNK_ROWS))


def iter_bybit(path, *, symbol=None, tick_size=None, lot_size=None, strict=False, chunk_rows=DEFAULT_CHUNK_ROWS,
               progress=None):
    """`read_bybit` as a stream of `Events` chunks of exactly `chunk_rows` events (the last may be shorter).

    The capture is read in pieces of PIECE bytes whose lines are parsed and
    applied to the book in C (csrc/bybit.c; lines it does not take exactly go
    through the Python decoder, which raises the error naming the line or
    hands the message to the same C book). The book (for the depth, the
    snapshot checks), the crossed-book check, the last update id and the
    running max of the timestamps carry across pieces and chunks.
    `progress(bytes)`, if given, gets the bytes of the file on disk consumed so far.
    """
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise ValueError(f"symbol must be a Bybit symbol such as 'BTCUSDT', got {symbol!r}")
    path = Path(path)
    out = ChunkedOutput(chunk_rows, str(path), strict)
    with _Capture(path) as cap:
        reader = _Reader(out, path, symbol, tick_size, lot_size)
        feed = _Feed(out, reader.where, progress, cap.position)
        try:
            yield from reader.run(cap, feed)
            yield from feed.finish()
        finally:
            feed.close()
            reader.close()


class _Capture:
    """The capture's lines as a binary stream: a zip's one member, gunzipped, or plain."""

    def __init__(self, path):
        require_file(path)
        self.path = path
        self._zip = None
        self.eof = False
        self.size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"PK\x03\x04":
            try:
                self._zip = zipfile.ZipFile(path)
                members = [m for m in self._zip.infolist() if not m.is_dir()]
                if len(members) != 1:
                    raise DataError(f"zip holds {len(members)} files; expected one capture "
                                    f"({', '.join(m.filename for m in members[:5])})", file=path)
                self.member = members[0].filename
                self.stream = self._zip.open(members[0])
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                if self._zip is not None:
                    self._zip.close()
                raise DataError("truncated or corrupt zip", file=path, detail=str(e)) from None
        else:
            self.stream = open_input(path)

    def position(self):
        if self.eof:
            return self.size
        if self._zip is not None:
            try:
                return int(self._zip.fp.tell())
            except (AttributeError, OSError, ValueError):
                return 0
        return disk_position(self.stream)

    def pieces(self, done):
        """Whole lines in pieces of about PIECE bytes: (data, n), the lines in data[:n] (see kraken._pieces)."""
        yield from _pieces(self.stream, self.path, done, (EOFError, OSError, zlib.error, zipfile.BadZipFile),
                           "truncated or corrupt capture (zip/gzip)")
        self.eof = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()
        if self._zip is not None:
            self._zip.close()


def _ms(msg, name, path, ln, required=True):
    v = msg.get(name)
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= (2**63 - 1) // 1_000_000:
        raise DataError(f"field {name!r} is not a time in ms: {v!r:.40}", file=path, line=ln)
    return v * 1_000_000


class _State:
    """What the decoder learns from the lines: the symbol, the depth, whether lines carry a local time."""

    def __init__(self, symbol):
        self.symbol, self.depth, self.local = symbol, None, None


def _new_parser(scan):
    p = ffi.new("bb_parser *")
    if lib.bb_init(p):
        raise MemoryError("bybit book")
    p.scan, p.local = scan, -1
    return p


class _Reader(_PieceReader):
    """The state of one capture: the C parser and book, the Python decoder's state, the output buffers."""

    MSG_DTYPE, NOTE_DTYPE, LEVEL_DTYPE, C_TYPES = _MSG_DTYPE, _NOTE_DTYPE, _LEVEL_DTYPE, ("bb_msg *", "bb_note *")
    ffi = ffi

    def __init__(self, out, path, symbol, tick_size, lot_size):
        self.out, self.path, self.want = out, path, symbol
        self.tick_size, self.lot_size = tick_size, lot_size
        self.st, self.scan_st = _State(symbol), _State(symbol)
        self.p, self.s = _new_parser(0), _new_parser(1)
        self.ts_max = None
        self.counts = {}
        self._buffers(1 << 17, 1 << 14, 1 << 10)

    def close(self):
        for p in (self.p, self.s):
            lib.bb_free(p)

    def count(self, name, n=1):
        info = self.out.report.info
        info[name] = info.get(name, 0) + n

    def where(self, g):
        return str(self.path), int(g)

    # -- the pieces of text -------------------------------------------------------------
    def run(self, cap, feed):
        pieces = cap.pieces(lambda: self.p.line)
        ahead, failed = self._read_ahead(pieces)  # the first block: the tick / lot (and the decimals on the wire)
        self._infer(self.want or self.scan_st.symbol)
        self.out.report.info["ts_exch"] = "cts (matching engine time; ts where absent)"
        lib.bb_free(self.s)
        while ahead:
            yield from self._parse(*ahead.pop(0), feed)
        self._raise_read_error(failed)
        for data, n in pieces:
            yield from self._parse(data, n, feed)
        self._finish()
        yield from feed.add(*self.events())

    def _scan(self, data, n):
        """Decimal statistics of the first block's lines (data[:n]); -> True at its end."""
        s = self.s
        s.pos, s.block_msgs = 0, BLOCK_LINES
        buf = ffi.from_buffer(data)
        while True:
            rc = lib.bb_parse(s, buf, n, ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, 0)
            if rc == lib.BB_BLOCK:
                return True
            if rc == lib.BB_END:
                return False
            end = _line_end(data, s.pos, n)
            d = self.decode(data[s.pos:end], s.line + 1, self.scan_st, s)
            if d is not None:
                snap, levels = d[0], d[5]
                self._scan_stats(s, levels)
                s.synced = s.synced or snap
                s.ev_msgs += bool(snap or levels)
            s.line += 1
            s.pos = end
            if s.ev_msgs >= BLOCK_LINES and s.synced:
                return True

    def _parse(self, data, n, feed):
        p = self.p
        p.pos = 0
        buf = ffi.from_buffer(data)
        while True:
            rc = lib.bb_parse(p, buf, n, *self.args)
            self._notes()
            if rc == lib.BB_END:
                break
            if rc == lib.BB_FULL:
                if p.n_ev:
                    yield from feed.add(*self.events())
                else:
                    self._grow()
            elif rc == lib.BB_SLOW:
                end = _line_end(data, p.pos, n)
                ln = p.line + 1
                d = self.decode(data[p.pos:end], ln, self.st, p)
                if d is not None:
                    if p.n_ev + 2 * len(d[5]) + 1 > len(self.ev) and p.n_ev:
                        yield from feed.add(*self.events())
                    self._apply(ln, d)
                p.line += 1
                p.pos = end
            else:
                raise MemoryError("bybit book")
        if p.n_ev >= _FLUSH:
            yield from feed.add(*self.events())

    def _apply(self, ln, d):
        """A message decoded in Python -> the C book (the same code as the fast path)."""
        snap, u, ts, cts, local, levels = d
        p = self.p
        lv = self._level_units(levels, ln, "size")
        while True:
            rc = lib.bb_apply(p, snap, u, cts if cts is not None else ts, -1 if local is None else local, ln,
                              ffi.cast("bb_level *", ffi.from_buffer(lv)), len(lv), *self.args)
            self._notes()
            if rc == lib.BB_END:
                return
            if rc != lib.BB_FULL:
                raise MemoryError("bybit book")
            self._grow()

    def _notes(self):
        p = self.p
        for no in self.notes[:p.n_notes].tolist():
            ln, kind, a, b, c = no
            if kind == lib.BB_NOTE_GAP:
                self.out.report.anomaly(SEQUENCE_GAP, file=self.path, line=ln,
                                        detail=f"update id u={a} after u={b} (Bybit: resubscribe)")
            else:
                name = "bid" if a == 1 else "ask"
                self.out.report.anomaly(
                    SNAPSHOT_MISMATCH, file=self.path, line=ln,
                    detail=f"the {name} book rebuilt from the deltas differs from the snapshot at u={b} on {c} levels")
        p.n_notes = 0

    # -- one line the C parser left to Python -----------------------------------------------
    def decode(self, raw, ln, st, p):
        """Check one line -> None (nothing to apply: counted) or (snapshot, u, ts, cts, local, levels) with
        levels [(side, price string, size string)], bids first. `st` / `p`: the scan's or the real pass's
        state; only the real pass (p.scan == 0) notes what it sees in the report."""
        path, real = self.path, not p.scan
        line = raw.strip()
        if not line:
            if real:
                p.blank_lines += 1
            return None
        local = None
        if line[:1] != b"{":
            m = _NANOS.match(line) or _SECONDS.match(line)
            if m is None:
                raise DataError("malformed line: expected a JSON message (optionally after its local receive time)",
                                file=path, line=ln, detail=repr(line[:60]))
            if m.re is _NANOS:
                local = int(m.group(1))
            else:
                local = int(m.group(1)) * 1_000_000_000 + int((m.group(2) or b"0").ljust(9, b"0"))
            if local > _INT64_MAX:
                raise DataError(f"local receive time {m.group(0)[:-1].decode()!r} is beyond int64 nanoseconds",
                                file=path, line=ln)
            line = line[m.end():]
        if st.local is None:
            st.local = local is not None
            p.local = int(st.local)
            if real:
                self.out.report.info["ts_local"] = ("the capture's local receive time" if st.local else
                                                    "ts_exch (the capture has no local receive time)")
        elif st.local != (local is not None):
            raise DataError("some lines carry a local receive time and others not", file=path, line=ln)
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError("bad JSON", file=path, line=ln, detail=str(e)[:200]) from None
        if not isinstance(msg, dict):
            raise DataError("message is not a JSON object", file=path, line=ln)
        topic = msg.get("topic")
        if topic is None:
            if real:
                self.count("control_messages")  # e.g. {"success": true, "op": "subscribe", ...}
            return None
        if not isinstance(topic, str) or not topic.startswith("orderbook."):
            if real:
                self.out.report.skip("other_topic", file=path, line=ln, detail=str(topic)[:60])
            return None
        parts = topic.split(".")
        if len(parts) != 3 or not _digits_only(parts[1]) or not 0 < _small_int(parts[1]) <= _INT64_MAX:
            raise DataError(f"topic {topic!r:.60} is not 'orderbook.<depth>.<symbol>'", file=path, line=ln)
        depth, sym = int(parts[1]), parts[2]
        data = msg.get("data")
        if not isinstance(data, dict):
            raise DataError("field 'data' is not an object", file=path, line=ln)
        s = data.get("s", sym)
        if s != sym:
            raise DataError(f"data.s {s!r:.40} differs from the topic's symbol {sym!r}", file=path, line=ln)
        if self.want is not None:
            if sym.upper() != self.want.upper():
                if real:
                    self.count("other_symbol_messages")
                return None
        elif st.symbol is None:
            st.symbol = sym
            if real:
                self.out.report.info["symbol"] = sym
        elif sym != st.symbol:
            raise DataError(f"capture holds several symbols ({st.symbol}, {sym}); pass symbol= to pick one",
                            file=path, line=ln)
        if st.depth is None:
            st.depth = depth
            p.depth = depth
            if real:
                self.out.report.info["depth"] = depth
        elif depth != st.depth:
            raise DataError(f"topic depth {depth} differs from the earlier {st.depth}", file=path, line=ln)
        kind = msg.get("type")
        if kind not in ("snapshot", "delta"):
            raise DataError(f"field 'type' is {kind!r:.40}, not 'snapshot' or 'delta'", file=path, line=ln)
        u = data.get("u")
        if isinstance(u, bool) or not isinstance(u, int) or not 0 <= u < 2**63:
            raise DataError(f"update id 'u' is not a non-negative integer: {u!r:.40}", file=path, line=ln)
        ts = _ms(msg, "ts", path, ln)
        cts = _ms(msg, "cts", path, ln, required=False)
        levels = []
        for key, side in (("b", 1), ("a", -1)):
            v = data.get(key, [])
            if not isinstance(v, list):
                raise DataError(f"field {key!r} is not a list of [price, size]", file=path, line=ln)
            for e in v:
                if not (isinstance(e, list) and len(e) == 2):
                    raise DataError(f"entry {e!r:.60} of {key!r} is not [price, size]", file=path, line=ln)
                if _key(e[0], path, ln, "price") == 0:
                    raise DataError(f"price {e[0]!r} must be positive", file=path, line=ln)
                _key(e[1], path, ln, "size")
                levels.append((side, e[0], e[1]))
        raw_topic = topic.encode()
        if len(raw_topic) < ffi.sizeof(p.topic) and topic.isascii():  # the C parser takes this topic's lines
            p.topic = raw_topic
            p.topic_len, p.sym_off = len(raw_topic), len(raw_topic) - len(sym.encode())
        return kind == "snapshot", u, ts, cts, local, levels

    # -- blocks -> events ---------------------------------------------------------------
    def _finish(self):
        """Notes of the end of the capture (before the last events are handed on)."""
        p = self.p
        if not p.messages and not self.counts.get("messages"):
            raise DataError("no order book message in the capture"
                            + (f" for symbol {self.want!r}" if self.want else ""), file=self.path)
        for k in ("messages", "snapshots"):
            self.count(k, 0)
        self.count("lines", p.line)
        self._counters()
        if p.n_pre:
            self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=p.first_pre, count=p.n_pre,
                                    detail="deltas before the first snapshot (kept, flagged PRE_SNAPSHOT)")

    def _counters(self):
        """The C counters into the report (integers: merged chunk reports add them up)."""
        p = self.p
        for k in _COUNTERS:
            v = getattr(p, k)
            if v:
                self.count(k, v)
                self.counts[k] = self.counts.get(k, 0) + v
                setattr(p, k, 0)

    def events(self):
        """The events in the C buffers (with their lines), timestamps set; empties the buffers."""
        p = self.p
        self._counters()
        n, m = p.n_ev, p.n_msgs
        if not n:
            return np.zeros(0, EVENT_DTYPE), np.zeros(0, np.int64)
        ev = self.ev[:n].copy()
        msgs = self.msgs[:m]
        m_line, n_ev = msgs["line"], msgs["n_ev"]
        tx = self._message_times(msgs)
        if len(tx):
            self.ts_max = int(tx[-1])
        ev["ts_exch"] = np.repeat(tx, n_ev)
        ev["ts_local"] = np.repeat(msgs["tl"], n_ev) if self.st.local else ev["ts_exch"]
        line = np.repeat(m_line, n_ev)
        p.n_ev = p.n_msgs = 0
        return ev, line
