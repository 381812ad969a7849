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
first block of messages read (the first snapshot at least): a later value off that grid raises a
DataError naming file and line and telling to pass tick_size= / lot_size=. Prices and sizes stay exact
decimal strings until converted in bulk, never floats.
"""
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import disk_position, open_input, require_file
from lobsim.data.events import (DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, NO_SNAPSHOT, SEQUENCE_GAP, ChunkedOutput,
                                collect, monotone_ts)
from lobsim.data.kraken import _key  # decimal string -> exact int key (value * 10**18)
from lobsim.data.tardis import _Feed
from lobsim.errors import DataError
from lobsim.instrument import infer_instrument, parse_decimal_strings

__all__ = ["read_bybit", "iter_bybit"]

SNAPSHOT_MISMATCH = "snapshot_mismatch"
BLOCK_LINES = 2000  # messages converted at a time (the first block also waits for the first snapshot)

_SNAP, _END, _PRE = int(Flag.SNAPSHOT), int(Flag.BATCH_END), int(Flag.PRE_SNAPSHOT)
_SET, _CLEAR = int(EventKind.SET_LEVEL), int(EventKind.CLEAR)
_SECONDS = re.compile(rb"([0-9]{1,11})(?:\.([0-9]{1,9})[0-9]*)?: ")
_NANOS = re.compile(rb"([0-9]{19}) ")


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

    The capture is read line by line and converted in blocks of BLOCK_LINES
    messages; the book (for the depth, the snapshot checks and the
    crossed-book check), the last update id and the running max of the
    timestamps are carried across blocks and chunks. `progress(bytes)`, if
    given, gets the bytes of the file on disk consumed so far.
    """
    if symbol is not None and (not isinstance(symbol, str) or not symbol):
        raise ValueError(f"symbol must be a Bybit symbol such as 'BTCUSDT', got {symbol!r}")
    path = Path(path)
    out = ChunkedOutput(chunk_rows, str(path), strict)
    reader = _Reader(out, path, symbol, tick_size, lot_size)
    with _Capture(path) as cap:
        feed = _Feed(out, reader.where, progress, cap.position)
        try:
            ln = 0
            try:
                for ln, raw in enumerate(cap.stream, 1):
                    reader.line(ln, raw)
                    if reader.block_full():
                        yield from feed.add(*reader.events())
            except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
                raise DataError("truncated or corrupt capture (zip/gzip)", file=path, line=ln + 1,
                                detail=str(e)) from None
            cap.eof = True
            yield from feed.add(*reader.finish())
            yield from feed.finish()
        finally:
            feed.close()


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


class _Reader:
    """The state of one capture: the book, the last update id, the events of the current block."""

    def __init__(self, out, path, symbol, tick_size, lot_size):
        self.out, self.path, self.want = out, path, symbol
        self.tick_size, self.lot_size = tick_size, lot_size
        self.symbol = symbol
        self.depth = None
        self.bids, self.asks = {}, {}  # price key -> (size key, price string)
        self.synced = False
        self.last_u = None
        self.ts_max = None
        self.local = None  # True: lines carry a local receive time
        self.px = self.qty = None
        self.n_lines = 0
        self.n_pre = 0
        self.n_msgs = 0
        self.keys = {}  # decimal string -> exact key (value * 10**18)
        self.first_pre = None
        self.counts = {}
        self._new_block()

    def _new_block(self):
        # per event: price string, size string, side, kind, flags, line, message index in the block
        self.e_px, self.e_qty, self.e_side, self.e_kind, self.e_flags, self.e_line, self.e_msg = (
            [], [], [], [], [], [], [])
        self.m_tx, self.m_tl, self.m_line = [], [], []  # per message with events

    def count(self, name, n=1):
        info = self.out.report.info
        info[name] = info.get(name, 0) + n

    def block_full(self):
        return len(self.m_line) >= BLOCK_LINES and (self.out.instrument is not None or self.synced)

    # -- one line ------------------------------------------------------------------
    def line(self, ln, raw):
        path = self.path
        self.n_lines += 1
        line = raw.strip()
        if not line:
            self.count("blank_lines")
            return
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
            line = line[m.end():]
        if self.local is None:
            self.local = local is not None
            self.out.report.info["ts_local"] = ("the capture's local receive time" if self.local else
                                                "ts_exch (the capture has no local receive time)")
        elif self.local != (local is not None):
            raise DataError("some lines carry a local receive time and others not", file=path, line=ln)
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise DataError("bad JSON", file=path, line=ln, detail=str(e)[:200]) from None
        if not isinstance(msg, dict):
            raise DataError("message is not a JSON object", file=path, line=ln)
        topic = msg.get("topic")
        if topic is None:
            self.count("control_messages")  # e.g. {"success": true, "op": "subscribe", ...}
            return
        if not isinstance(topic, str) or not topic.startswith("orderbook."):
            self.out.report.skip("other_topic", file=path, line=ln, detail=str(topic)[:60])
            return
        parts = topic.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) <= 0:
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
                self.count("other_symbol_messages")
                return
        elif self.symbol is None:
            self.symbol = sym
            self.out.report.info["symbol"] = sym
        elif sym != self.symbol:
            raise DataError(f"capture holds several symbols ({self.symbol}, {sym}); pass symbol= to pick one",
                            file=path, line=ln)
        if self.depth is None:
            self.depth = depth
            self.out.report.info["depth"] = depth
        elif depth != self.depth:
            raise DataError(f"topic depth {depth} differs from the earlier {self.depth}", file=path, line=ln)
        kind = msg.get("type")
        if kind not in ("snapshot", "delta"):
            raise DataError(f"field 'type' is {kind!r:.40}, not 'snapshot' or 'delta'", file=path, line=ln)
        u = data.get("u")
        if isinstance(u, bool) or not isinstance(u, int) or not 0 <= u < 2**63:
            raise DataError(f"update id 'u' is not a non-negative integer: {u!r:.40}", file=path, line=ln)
        ts = _ms(msg, "ts", path, ln)
        cts = _ms(msg, "cts", path, ln, required=False)
        levels = []
        keys = self.keys
        if len(keys) > 1_000_000:
            keys.clear()
        for key, side in (("b", 1), ("a", -1)):
            v = data.get(key, [])
            if not isinstance(v, list):
                raise DataError(f"field {key!r} is not a list of [price, size]", file=path, line=ln)
            for e in v:
                if not (isinstance(e, list) and len(e) == 2):
                    raise DataError(f"entry {e!r:.60} of {key!r} is not [price, size]", file=path, line=ln)
                p = keys.get(e[0])  # the same strings recur: exact keys memoized
                if p is None:
                    p = keys[e[0]] = _key(e[0], path, ln, "price")
                if p == 0:
                    raise DataError(f"price {e[0]!r} must be positive", file=path, line=ln)
                q = keys.get(e[1])
                if q is None:
                    q = keys[e[1]] = _key(e[1], path, ln, "size")
                levels.append((side, p, e[0], q, e[1]))
        self.count("messages")
        self.n_msgs += 1
        n0 = len(self.e_px)
        if kind == "snapshot":
            self.snapshot(ln, u, levels)
        else:
            self.delta(ln, u, levels)
        if len(self.e_px) > n0:
            self.e_flags[-1] |= _END
            self.m_tx.append(cts if cts is not None else ts)
            self.m_tl.append(local)
            self.m_line.append(ln)

    def event(self, ln, side, px, qty, kind, flags):
        self.e_px.append(px)
        self.e_qty.append(qty)
        self.e_side.append(side)
        self.e_kind.append(kind)
        self.e_flags.append(flags)
        self.e_line.append(ln)
        self.e_msg.append(len(self.m_line))

    def snapshot(self, ln, u, levels):
        self.count("snapshots")
        if self.synced:
            if u == self.last_u:
                self.count("snapshots_checked")
                self.check(ln, u, levels)
            else:
                self.count("snapshots_not_comparable")
                if u == 1:
                    self.count("restarts")
        self.synced = True
        self.last_u = u
        self.bids.clear()
        self.asks.clear()
        self.event(ln, 0, "0", "0", _CLEAR, _SNAP)
        for side, p, ps, q, qs in levels:
            book = self.bids if side == 1 else self.asks
            if q:
                book[p] = (q, ps)
            else:
                book.pop(p, None)
            self.event(ln, side, ps, qs, _SET, _SNAP)
        self.truncate(ln, _SNAP)

    def delta(self, ln, u, levels):
        flags = 0
        if not self.synced:
            self.n_pre += 1
            if self.first_pre is None:
                self.first_pre = ln
            flags = _PRE
        elif u != self.last_u + 1:
            self.out.report.anomaly(SEQUENCE_GAP, file=self.path, line=ln,
                                    detail=f"update id u={u} after u={self.last_u} (Bybit: resubscribe)")
        self.last_u = u
        for side, p, ps, q, qs in levels:
            book = self.bids if side == 1 else self.asks
            if q:
                book[p] = (q, ps)
            elif book.pop(p, None) is None:
                self.count("deletes_of_absent_levels")
            self.event(ln, side, ps, qs, _SET, flags)
        self.truncate(ln, flags)

    def truncate(self, ln, flags):
        for book, side, worst_first in ((self.bids, 1, False), (self.asks, -1, True)):
            extra = len(book) - self.depth
            if extra <= 0:
                continue
            gone = sorted(book, reverse=worst_first)[:extra]  # bids: lowest first; asks: highest first
            for p in gone:
                self.event(ln, side, book.pop(p)[1], "0", _SET, flags)
            self.count("levels_truncated", extra)

    def check(self, ln, u, levels):
        """Our book (rebuilt from the deltas) against a snapshot at the same update id."""
        snap = {1: {}, -1: {}}
        for side, p, _, q, _ in levels:
            if q:
                snap[side][p] = q
        for side, book, name in ((1, self.bids, "bid"), (-1, self.asks, "ask")):
            ours = {p: q for p, (q, _) in book.items()}
            if ours != snap[side]:
                diff = sorted(set(ours.items()) ^ set(snap[side].items()))
                self.out.report.anomaly(
                    SNAPSHOT_MISMATCH, file=self.path, line=ln,
                    detail=f"the {name} book rebuilt from the deltas differs from the snapshot at u={u} "
                           f"on {len({p for p, _ in diff})} levels")
                return

    # -- blocks -> events ---------------------------------------------------------------
    def finish(self):
        """Notes of the end of the capture; -> the last block's (events, lines)."""
        if not self.n_msgs:
            raise DataError("no order book message in the capture"
                            + (f" for symbol {self.want!r}" if self.want else ""), file=self.path)
        for k in ("messages", "snapshots"):
            self.count(k, 0)
        self.count("lines", self.n_lines)
        if self.n_pre:
            self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=self.first_pre, count=self.n_pre,
                                    detail="deltas before the first snapshot (kept, flagged PRE_SNAPSHOT)")
        got = self.events()
        if self.out.instrument is None:  # order book messages, but not one level in them
            empty = (np.zeros(0, np.int64), 1)
            self.out.instrument = infer_instrument(self.want or self.symbol, self.tick_size, self.lot_size,
                                                   [empty], [empty], self.out.report.info)
        return got

    def events(self):
        """The block's events (with their lines) in ticks and lots; starts a new block."""
        path = self.path
        if not self.e_px:
            return np.zeros(0, EVENT_DTYPE), np.zeros(0, np.int64)
        kind = np.asarray(self.e_kind, np.uint8)
        line = np.asarray(self.e_line, np.int64)
        lv = np.flatnonzero(kind == _SET)
        px = _parse(np.asarray(self.e_px, dtype=str)[lv], line[lv], path, "price")
        qty = _parse(np.asarray(self.e_qty, dtype=str)[lv], line[lv], path, "size")
        if self.out.instrument is None:
            self.out.instrument = infer_instrument(self.want or self.symbol, self.tick_size, self.lot_size,
                                                   [px], [qty], self.out.report.info)
            self.out.report.info["ts_exch"] = "cts (matching engine time; ts where absent)"
        inst = self.out.instrument
        ev = np.zeros(len(kind), EVENT_DTYPE)
        ev["kind"] = kind
        ev["side"] = np.asarray(self.e_side, np.int8)
        ev["flags"] = np.asarray(self.e_flags, np.uint16)
        ev["price"][lv] = _units(inst.prices_from_scaled, px, line[lv], path, "price", self.tick_size is None)
        ev["qty"][lv] = _units(inst.qtys_from_scaled, qty, line[lv], path, "size", self.lot_size is None)
        msg = np.asarray(self.e_msg, np.int64)
        m_line = np.asarray(self.m_line, np.int64)
        tx = np.asarray(self.m_tx, np.int64)
        where = self.where
        if self.ts_max is None:
            tx = monotone_ts(tx, self.out.report, m_line, where, "book message")
        else:
            tx = monotone_ts(np.r_[self.ts_max, tx], self.out.report, np.r_[0, m_line], where, "book message")[1:]
        if len(tx):
            self.ts_max = int(tx[-1])
        ev["ts_exch"] = tx[msg]
        ev["ts_local"] = np.asarray(self.m_tl, np.int64)[msg] if self.local else tx[msg]
        self._new_block()
        return ev, line

    def where(self, g):
        return str(self.path), int(g)


def _parse(strings, lines, path, what):
    try:
        return parse_decimal_strings(strings, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        raise DataError(f"{what}: {e.reason}", file=path, line=ln) from None


def _units(fn, parsed, lines, path, what, inferred):
    vals, scale = parsed
    try:
        return fn(vals, scale, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        name = "tick_size" if what == "price" else "lot_size"
        detail = (f"the {name} was inferred from the start of the capture; pass {name}= to read it"
                  if inferred else e.detail)
        raise DataError(e.reason, file=path, line=ln, detail=detail) from None
