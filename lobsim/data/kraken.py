"""Reader of Kraken websocket v1 ``book`` channel captures into normalized L2 events, checked by
Kraken's own CRC32 checksum after every update.

Input: text (or gzip), one message a line, ``<unix seconds with fraction>: <json>``; lines
starting ``wss://`` (the connection line ``<->`` and what was sent ``<-``) are capture metadata
and skipped. Event messages (``systemStatus``, ``subscriptionStatus``, ``heartbeat``) are JSON
objects; book messages are lists ``[channelID, {...}, ({...},) "book-<depth>", "PAIR"]``. Several
pairs share one file: only the lines of ``pair`` are decoded (the others are skipped cheaply).

- The first book message of the pair (``as`` / ``bs``) is a snapshot -> CLEAR + SET_LEVEL flagged
  SNAPSHOT, the last one also BATCH_END. A later snapshot resynchronises the same way.
- Updates (``a`` / ``b``, an update with both arrives as two dicts in one message) -> one SET_LEVEL
  per entry in wire order (volume ``0.00000000`` deletes), the last event of the message flagged
  BATCH_END. Entries flagged ``"r"`` (republished) are applied like any update (Kraken's rule) and
  counted in ``report.info["republished_entries"]``; their (older) timestamps do not set ts_exch.
- Depth: the book is kept to the subscribed depth (from the channel name ``book-<depth>``, 10 for
  plain ``book``): after each message the levels beyond the depth-th on a side are dropped, as
  Kraken does, and a SET_LEVEL 0 is emitted for each (``report.info["levels_truncated"]``), so
  replaying the events rebuilds exactly the book the checksum was computed on.
- Checksum (``c`` in the last dict of an update): the top 10 asks (ascending) then the top 10 bids
  (descending), for each level the price string then the volume string with the decimal point
  removed and leading zeros stripped, all concatenated; CRC32 as an unsigned decimal string. It is
  computed on our book after every update carrying one; a difference is a ``checksum_mismatch``
  anomaly (strict raises DataError naming file and line). After a mismatch the book is not
  repaired (only a new snapshot would), so later mismatches may follow from the first.

Clocks: ``ts_local`` = the line's time (exact decimal, truncated to ns). ``ts_exch`` = the latest
entry timestamp of the message (non-republished entries; all entries if every one is
republished), shared by all events of the message; a time that goes backwards is raised to the
previous one and reported as out_of_order_timestamp.

Instrument: given tick/lot sizes, else the finest decimal resolution of the pair's prices and
volumes (trailing zeros ignored) in the first block of lines read (BLOCK_LINES, and at least up to
the pair's first snapshot): a later value off that grid raises a DataError naming file and line and
telling to pass tick_size= / lot_size=. Prices and sizes stay exact decimal strings until converted in
bulk, never floats.

Streaming: iter_kraken reads the capture line by line and converts blocks of BLOCK_LINES lines; the
book (for the depth and the checksums), the sync state, the running max of the exchange times and the
book of the crossed-book check carry over, so memory is bounded by the block and chunk sizes plus the
book. ``report.info["feed_latency_ms"]`` (ts_local - ts_exch percentiles) is measured on the first
block's messages. read_kraken is collect(iter_kraken(...)) with one chunk.
"""
import bisect
import json
import re
import zlib
from pathlib import Path

import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import disk_position, open_input
from lobsim.data.events import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, NO_SNAPSHOT, ChunkedOutput, collect, monotone_ts
from lobsim.errors import DataError
from lobsim.instrument import infer_instrument, parse_decimal_strings

__all__ = ["read_kraken", "iter_kraken", "kraken_checksum"]

CHECKSUM_MISMATCH = "checksum_mismatch"
BLOCK_LINES = 4096  # capture lines converted at a time (the first block also waits for the pair's snapshot)

_DEC = re.compile(r"[0-9]+(\.[0-9]+)?\Z")
_TIME = re.compile(rb"([0-9]{1,11})(?:\.([0-9]+))?: ")
_FRAC = 18  # book keys: decimal value * 10**18 (exact, Python ints)
_SNAP, _END = int(Flag.SNAPSHOT), int(Flag.BATCH_END)


def _ns(whole, frac):
    """Seconds '<whole>.<frac>' -> int ns (truncated below 1 ns)."""
    return int(whole) * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


def _fragment(s):
    return s.replace(".", "").lstrip("0")


def kraken_checksum(asks, bids):
    """Kraken's book checksum of (price, volume) string pairs: `asks` ascending, `bids` descending.

    Uses the first 10 of each; -> unsigned CRC32 as int.
    """
    parts = [_fragment(p) + _fragment(q) for p, q in list(asks)[:10]]
    parts += [_fragment(p) + _fragment(q) for p, q in list(bids)[:10]]
    return zlib.crc32("".join(parts).encode())


class _Side:
    """One side of the book: exact keys sorted best first, with each level's wire strings."""

    def __init__(self, sign):
        self.sign = sign  # +1 asks (ascending), -1 bids (descending); keys stored as sign * value
        self.keys = []
        self.frag = {}  # key -> checksum fragment
        self.px = {}  # key -> price string (for the truncation events)

    def clear(self):
        self.keys.clear()
        self.frag.clear()
        self.px.clear()

    def set(self, key, p, q, zero):
        """Set a level; -> False when a delete hits an absent level."""
        k = self.sign * key
        if zero:
            if k not in self.frag:
                return False
            del self.frag[k], self.px[k]
            del self.keys[bisect.bisect_left(self.keys, k)]
            return True
        if k not in self.frag:
            bisect.insort(self.keys, k)
        self.frag[k] = _fragment(p) + _fragment(q)
        self.px[k] = p
        return True

    def truncate(self, depth):
        """Drop the levels beyond `depth`; -> their price strings."""
        if len(self.keys) <= depth:
            return []
        gone = self.keys[depth:]
        del self.keys[depth:]
        out = [self.px.pop(k) for k in gone]
        for k in gone:
            del self.frag[k]
        return out

    def top(self, n=10):
        return "".join(self.frag[k] for k in self.keys[:n])


def _key(s, path, ln, what):
    """Validated decimal string -> exact int key (value * 10**18)."""
    if not isinstance(s, str) or not _DEC.match(s):
        raise DataError(f"{what} {s!r:.40} is not a decimal string", file=path, line=ln)
    whole, _, frac = s.partition(".")
    if len(frac) > _FRAC:
        raise DataError(f"{what} {s!r} has more than {_FRAC} fractional digits", file=path, line=ln)
    return int(whole + frac.ljust(_FRAC, "0"))


def _entries(v, path, ln, key):
    if not isinstance(v, list):
        raise DataError(f"field {key!r} is not a list of [price, volume, timestamp]", file=path, line=ln)
    for e in v:
        if not (isinstance(e, list) and 3 <= len(e) <= 4 and all(isinstance(x, str) for x in e)
                and (len(e) == 3 or e[3] == "r")):
            raise DataError(f"entry {e!r:.80} of {key!r} is not [price, volume, timestamp(, 'r')]",
                            file=path, line=ln)
    return v


def _depth(name, path, ln):
    if name == "book":
        return 10
    d = name[5:]
    if not name.startswith("book-") or not d.isdigit() or int(d) <= 0:
        raise DataError(f"channel name {name!r} is not 'book' or 'book-<depth>'", file=path, line=ln)
    return int(d)


def read_kraken(path, pair, *, tick_size=None, lot_size=None, strict=False):
    """Read a Kraken websocket v1 ``book`` capture -> `Events` (L2) of one `pair` (e.g. ``"XBT/CHF"``).

    See the module docstring. Every update's checksum is verified on the rebuilt book:
    ``report.info["checksums_checked"]`` / ``report.counts["checksum_mismatch"]``. One code path
    with `iter_kraken`.
    """
    return collect(iter_kraken(path, pair, tick_size=tick_size, lot_size=lot_size, strict=strict,
                               chunk_rows=MAX_CHUNK_ROWS))


def iter_kraken(path, pair, *, tick_size=None, lot_size=None, strict=False, chunk_rows=DEFAULT_CHUNK_ROWS,
                progress=None):
    """`read_kraken` as a stream of `Events` chunks of exactly `chunk_rows` events (the last may be shorter).

    The capture is read line by line and converted in blocks of BLOCK_LINES
    lines; the book, the checksum state and the running max of the times carry
    over (see the module docstring). `progress(bytes)`, if given, gets the
    bytes of the file on disk consumed so far (compressed bytes for gzip).
    """
    from lobsim.data.tardis import _Feed  # crossed-book check across blocks, progress, end-of-input notes

    path = Path(path)
    if not isinstance(pair, str) or not pair:
        raise ValueError(f"pair must be a Kraken pair name such as 'XBT/USD', got {pair!r}")
    out = ChunkedOutput(chunk_rows, str(path), strict)
    reader = _Reader(out, path, pair, tick_size, lot_size)
    with open_input(path) as stream:
        feed = _Feed(out, reader.where, progress, lambda: disk_position(stream))
        try:
            ln = 0
            try:
                for ln, raw in enumerate(stream, 1):
                    reader.line(ln, raw)
                    if reader.block_full():
                        yield from feed.add(*reader.events())
            except (EOFError, OSError, zlib.error) as e:
                raise DataError("truncated or corrupt gzip", file=path, line=ln + 1, detail=str(e)) from None
            yield from feed.add(*reader.finish())
            yield from feed.finish()
        finally:
            feed.close()


_COUNTS = ("lines", "book_messages", "other_lines_skipped", "event_messages", "checksums_checked")
_COUNTS_IF_ANY = ("capture_metadata_lines", "blank_lines", "republished_entries", "levels_truncated",
                  "deletes_of_absent_levels")


class _Reader:
    """The capture's lines -> blocks of events of one pair; the book and counters carry over."""

    def __init__(self, out, path, pair, tick_size, lot_size):
        self.out, self.path, self.pair = out, path, pair
        self.tick_size, self.lot_size = tick_size, lot_size
        self.tail = b'"' + json.dumps(pair).encode()[1:-1] + b'"]'
        self.asks, self.bids = _Side(1), _Side(-1)
        self.synced = False
        self.depth = None
        self.ts_max = None
        self.n_book = self.n_no_snap = 0
        self.first_no_snap = None
        self.counts = dict.fromkeys(_COUNTS + _COUNTS_IF_ANY, 0)
        self.keys = {}  # decimal string -> exact key (the same strings recur)
        self._new_block()

    def _new_block(self):
        # event columns: price string, qty string, side, kind, flags, line, message index
        self.e_px, self.e_qty, self.e_side, self.e_kind, self.e_flags, self.e_line, self.e_msg = ([] for _ in range(7))
        self.m_tl, self.m_tx, self.m_line = [], [], []  # per message: ts_local, ts_exch, line
        self.block_lines = 0
        self.block_levels = 0

    def where(self, g):
        return str(self.path), int(g)

    def block_full(self):
        if self.block_lines < BLOCK_LINES:
            return False
        # the instrument is inferred from the first block: it must hold the snapshot's levels
        return self.out.instrument is not None or (self.synced and self.block_levels > 0)

    def event(self, ln, side, px, qty, kind, flags):
        self.e_px.append(px)
        self.e_qty.append(qty)
        self.e_side.append(side)
        self.e_kind.append(kind)
        self.e_flags.append(flags)
        self.e_line.append(ln)
        self.e_msg.append(len(self.m_line))

    def line(self, ln, raw):
        path, c = self.path, self.counts
        c["lines"] += 1
        self.block_lines += 1
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            c["blank_lines"] += 1
            return
        if line.startswith(b"wss://") or line.startswith(b"ws://"):
            c["capture_metadata_lines"] += 1
            return
        m = _TIME.match(line)
        if m is None:
            raise DataError("malformed line: expected '<unix seconds>: <json>'", file=path, line=ln)
        body = line[m.end():]
        if body[:1] == b"[" and body.endswith(b'"]') and not body.endswith(self.tail):
            c["other_lines_skipped"] += 1  # another pair's (or another channel's) message
            return
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise DataError("bad JSON", file=path, line=ln, detail=str(e)[:200]) from None
        if isinstance(msg, dict):
            c["event_messages"] += 1
            if msg.get("event") == "subscriptionStatus" and msg.get("pair") == self.pair:
                sub = msg.get("subscription")
                info = self.out.report.info
                if (isinstance(sub, dict) and sub.get("name") == "book" and msg.get("status") == "subscribed"
                        and "subscribed_depth" not in info):
                    info["subscribed_depth"] = sub.get("depth")
            return
        if not (isinstance(msg, list) and 4 <= len(msg) <= 5 and isinstance(msg[-1], str)
                and isinstance(msg[-2], str) and all(isinstance(d, dict) for d in msg[1:-2])):
            raise DataError("book message is not [channelID, {...}, ({...},) channelName, pair]",
                            file=path, line=ln)
        if msg[-1] != self.pair:  # e.g. an escaped name the cheap test let through
            c["other_lines_skipped"] += 1
            return
        if not msg[-2].startswith("book"):
            c["other_lines_skipped"] += 1
            self.out.report.skip("other_channel", file=path, line=ln, detail=msg[-2])
            return
        depth = _depth(msg[-2], path, ln)
        if self.depth is None:
            self.out.report.info["depth"] = depth
        self.depth = depth
        self.book_message(ln, m, msg[1:-2], depth)

    def key(self, s, ln, what):
        k = self.keys.get(s) if isinstance(s, str) else None
        if k is None:
            k = _key(s, self.path, ln, what)
            if len(self.keys) > 1_000_000:
                self.keys.clear()
            self.keys[s] = k
        return k

    def book_message(self, ln, m, dicts, depth):
        path, c, asks, bids, key_of = self.path, self.counts, self.asks, self.bids, self.key
        ts_local = _ns(m.group(1), m.group(2).decode() if m.group(2) else "")
        n0 = len(self.e_px)
        snapshot = any("as" in d or "bs" in d for d in dicts)
        flags = _SNAP if snapshot else 0
        checksum = None
        stamps, r_stamps = [], []
        if snapshot:
            if any(k in d for d in dicts for k in ("a", "b")):
                raise DataError("message mixes a snapshot (as/bs) with updates (a/b)", file=path, line=ln)
            self.synced = True
            asks.clear()
            bids.clear()
            self.event(ln, 0, "0", "0", EventKind.CLEAR, _SNAP)
        elif not self.synced:
            self.n_no_snap += 1
            if self.first_no_snap is None:
                self.first_no_snap = ln
        for d in dicts:
            for k, v in d.items():
                if k == "c":
                    if not isinstance(v, str) or not v.isdigit():
                        raise DataError(f"checksum {v!r:.40} is not an unsigned decimal string", file=path, line=ln)
                    checksum = int(v)
                    continue
                if k in ("a", "as"):
                    book, side = asks, -1
                elif k in ("b", "bs"):
                    book, side = bids, 1
                else:
                    raise DataError(f"unknown field {k!r} in book message", file=path, line=ln)
                for e in _entries(v, path, ln, k):
                    p, q, t = e[0], e[1], e[2]
                    key = key_of(p, ln, "price")
                    if key == 0:
                        raise DataError(f"price {p!r} must be positive", file=path, line=ln)
                    zero = key_of(q, ln, "volume") == 0
                    tm = _DEC.match(t)
                    if tm is None or len(t.partition(".")[0]) > 11:
                        raise DataError(f"timestamp {t!r:.40} is not unix seconds", file=path, line=ln)
                    if len(e) == 4:
                        c["republished_entries"] += 1
                        r_stamps.append(t)
                    else:
                        stamps.append(t)
                    if not book.set(key, p, q, zero):
                        c["deletes_of_absent_levels"] += 1
                    self.event(ln, side, p, q, EventKind.SET_LEVEL, flags)
                    self.block_levels += 1
        for book, side in ((asks, -1), (bids, 1)):
            for p in book.truncate(depth):
                c["levels_truncated"] += 1
                self.event(ln, side, p, "0", EventKind.SET_LEVEL, flags)
        if checksum is not None and self.synced:
            c["checksums_checked"] += 1
            ours = zlib.crc32((asks.top() + bids.top()).encode())
            if ours != checksum:
                self.out.report.anomaly(CHECKSUM_MISMATCH, file=path, line=ln,
                                        detail=f"our book's checksum {ours} != Kraken's {checksum}")
        if len(self.e_px) == n0:
            return  # nothing in the message (no entries)
        self.e_flags[-1] |= _END
        stamps = stamps or r_stamps
        best = max(stamps, key=lambda s: _key(s, path, ln, "timestamp")) if stamps else None
        self.m_tl.append(ts_local)
        self.m_tx.append(_ns(*best.partition(".")[::2]) if best is not None else ts_local)
        self.m_line.append(ln)
        self.n_book += 1
        c["book_messages"] += 1

    def _note_counts(self):
        """The block's counters into the report (integers: merged chunk reports add them up)."""
        info = self.out.report.info
        for k, v in self.counts.items():
            if v or k in _COUNTS:
                info[k] = info.get(k, 0) + v
        self.counts = dict.fromkeys(self.counts, 0)

    def finish(self):
        """Notes of the end of the capture; -> the last block's (events, lines)."""
        if not self.n_book and not self.n_no_snap:
            raise DataError(f"no book message for pair {self.pair!r} in the capture", file=self.path)
        if self.n_no_snap:
            self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=self.first_no_snap, count=self.n_no_snap,
                                    detail="updates before any snapshot of the pair: the book holds only what "
                                           "they touched")
        return self.events()

    def events(self):
        """The block's events (with their lines) in ticks and lots; starts a new block."""
        path, out = self.path, self.out
        info = out.report.info
        if "pair" not in info and out.instrument is None:
            info["pair"] = self.pair
        self._note_counts()
        kind = np.asarray(self.e_kind, np.uint8)
        line = np.asarray(self.e_line, np.int64)
        lv = np.flatnonzero(kind == EventKind.SET_LEVEL)
        px = _parse(np.asarray(self.e_px, dtype=str)[lv], line[lv], path, "price")
        qty = _parse(np.asarray(self.e_qty, dtype=str)[lv], line[lv], path, "volume")
        if out.instrument is None:
            out.instrument = infer_instrument(self.pair, self.tick_size, self.lot_size, [px], [qty], info)
        inst = out.instrument
        ev = np.zeros(len(kind), EVENT_DTYPE)
        ev["kind"] = kind
        ev["side"] = np.asarray(self.e_side, np.int8)
        ev["flags"] = np.asarray(self.e_flags, np.uint16)
        ev["price"][lv] = _units(inst.prices_from_scaled, px, line[lv], path, "price", self.tick_size is None)
        ev["qty"][lv] = _units(inst.qtys_from_scaled, qty, line[lv], path, "volume", self.lot_size is None)
        msg = np.asarray(self.e_msg, np.int64)
        m_line = np.asarray(self.m_line, np.int64)
        tx = np.asarray(self.m_tx, np.int64)
        if self.ts_max is None:
            tx = monotone_ts(tx, out.report, m_line, self.where, "book message")
        else:
            tx = monotone_ts(np.r_[self.ts_max, tx], out.report, np.r_[0, m_line], self.where, "book message")[1:]
        tl = np.asarray(self.m_tl, np.int64)
        if len(tx):
            if self.ts_max is None:  # the first block's messages measure the feed's latency
                lat = (tl - tx) / 1e6
                info["feed_latency_ms"] = {k: round(float(v), 3) for k, v in
                                           zip(("p1", "median", "p99"), np.percentile(lat, [1, 50, 99]))}
            self.ts_max = int(tx[-1])
        ev["ts_exch"] = tx[msg]
        ev["ts_local"] = tl[msg]
        self._new_block()
        return ev, line


def _parse(strings, lines, path, what):
    try:
        return parse_decimal_strings(strings, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        raise DataError(f"{what}: {e.reason}", file=path, line=ln) from None


def _units(fn, parsed, lines, path, what, inferred):
    """fn (Instrument.prices_from_scaled / qtys_from_scaled) of parsed decimals; errors name the line,
    and a unit inferred from the start of the capture tells to pass it."""
    vals, scale = parsed
    try:
        return fn(vals, scale, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        name = "tick_size" if what == "price" else "lot_size"
        detail = (f"the {name} was inferred from the start of the capture; pass {name}= to read it"
                  if inferred else e.detail)
        raise DataError(e.reason, file=path, line=ln, detail=detail) from None
