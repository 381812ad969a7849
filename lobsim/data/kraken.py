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
  replaying the events rebuilds exactly the book the checksum was computed on. The depth is the one
  of the pair's first book message: lines of the pair at another depth (a second subscription, another
  book) are skipped and counted as ``skipped:other_depth``.
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
the pair's first snapshot, but no more than AHEAD bytes of text): a later value off that grid raises a DataError naming file and line and
telling to pass tick_size= / lot_size=. Prices and sizes stay exact decimal strings until converted in
bulk, never floats.

Streaming and speed: iter_kraken reads the capture in pieces of PIECE bytes; their lines are parsed,
applied to the book and checksummed in C (csrc/kraken.c, on the JSON / decimal / book-side primitives
of csrc/jsonlines.c shared with the Binance and Bybit readers; the checksum fragments are the digits of
the wire strings kept with each level). A first pass over the first block (BLOCK_LINES lines, and at
least up to the pair's first snapshot) only gathers the decimals seen (the tick / lot). A line the C
parser does not take exactly (event messages other than heartbeats, odd JSON, escapes, a bad or
off-grid value) is decoded by the Python code below, which raises the error naming its line or hands
the message to the same C book (kr_apply). The book, the sync state, the running max of the exchange
times and the book of the crossed-book check carry over, so memory is bounded by the piece and chunk
sizes plus the book. ``report.info["feed_latency_ms"]`` (ts_local - ts_exch percentiles) is measured on
the first block's messages. read_kraken is collect(iter_kraken(...)) with one chunk.
"""
import gzip
import json
import re
import zlib
from pathlib import Path

import numpy as np

from lobsim._types import EVENT_DTYPE, Flag
from lobsim.data._io import disk_position, open_input
from lobsim.data.events import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, NO_SNAPSHOT, ChunkedOutput, collect, monotone_ts
from lobsim.errors import DataError
from lobsim.instrument import _unit_parts, infer_instrument

__all__ = ["read_kraken", "iter_kraken", "kraken_checksum"]

CHECKSUM_MISMATCH = "checksum_mismatch"
BLOCK_LINES = 4096  # capture lines converted at a time (the first block also waits for the pair's snapshot)

_DEC = re.compile(r"[0-9]+(\.[0-9]+)?\Z")
_TIME = re.compile(rb"([0-9]{1,11})(?:\.([0-9]+))?: ")
_FRAC = 18  # book keys: decimal value * 10**18 (exact, Python ints)
_INT64_MAX = 2**63 - 1
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


def _key(s, path, ln, what):
    """Validated decimal string -> exact int key (value * 10**18)."""
    if not isinstance(s, str) or not _DEC.match(s):
        raise DataError(f"{what} {s!r:.40} is not a decimal string", file=path, line=ln)
    whole, _, frac = s.partition(".")
    if len(frac) > _FRAC:
        raise DataError(f"{what} {s!r:.60} has more than {_FRAC} fractional digits", file=path, line=ln)
    whole = whole.lstrip("0")
    if len(whole) > 19:  # no exact int64 value has more (and int() refuses thousands of digits)
        raise DataError(f"{what} {s!r:.40} is too large", file=path, line=ln)
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


def _digits_only(s):
    return s.isascii() and s.isdigit()


def _small_int(s):
    """ASCII digits -> int, or 2**63 past int64 (no int() of thousands of digits: Python refuses those)."""
    s = s.lstrip("0")
    return int(s or "0") if len(s) <= 19 else 2**63


def _depth(name, path, ln):
    if name == "book":
        return 10
    d = name[5:]  # ASCII digits only: str.isdigit() also takes '²' (int() refuses) and other scripts' digits
    if not (name.startswith("book-") and _digits_only(d) and 0 < _small_int(d) <= _INT64_MAX):
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

    The capture is read in pieces of PIECE bytes whose lines are parsed, applied
    to the book and checksummed in C (csrc/kraken.c; a line it does not take
    exactly goes through the Python decoder, which raises the error naming the
    line or hands the message to the same C book). The book, the checksum
    state and the running max of the times carry over (see the module
    docstring). `progress(bytes)`, if given, gets the bytes of the file on disk
    consumed so far (compressed bytes for gzip).
    """
    from lobsim.data.tardis import _Feed  # crossed-book check across blocks, progress, end-of-input notes

    path = Path(path)
    if not isinstance(pair, str) or not pair:
        raise ValueError(f"pair must be a Kraken pair name such as 'XBT/USD', got {pair!r}")
    out = ChunkedOutput(chunk_rows, str(path), strict)
    with open_input(path) as stream:
        reader = _Reader(out, path, pair, tick_size, lot_size)
        feed = _Feed(out, reader.where, progress, lambda: disk_position(stream))
        try:
            yield from reader.run(stream, feed)
            yield from feed.finish()
        finally:
            feed.close()
            reader.close()


_COUNTS = ("lines", "book_messages", "other_lines_skipped", "event_messages", "checksums_checked")
_COUNTS_IF_ANY = ("capture_metadata_lines", "blank_lines", "republished_entries", "levels_truncated",
                  "deletes_of_absent_levels")
PIECE = 4 << 20  # bytes of text parsed at a time
AHEAD = 64 << 20  # at most this much text is read ahead for the first block (memory bound without a snapshot)
_FLUSH = 1 << 16  # events held before they are handed on at the end of a piece
_MSG_DTYPE = np.dtype([("line", "<i8"), ("tx", "<i8"), ("tl", "<i8"), ("n_ev", "<i8")])
_NOTE_DTYPE = np.dtype([("line", "<i8"), ("ours", "<i8"), ("theirs", "<i8")])
_LEVEL_DTYPE = np.dtype([("px", "<i8"), ("qty", "<i8"), ("side", "<i8"), ("pd_lo", "<u8"), ("pd_hi", "<u8"),
                         ("qd_lo", "<u8"), ("qd_hi", "<u8")])


def _new_parser(scan, tail):
    from lobsim._core import ffi, lib

    p = ffi.new("kr_parser *")
    if lib.kr_init(p):
        raise MemoryError("kraken book")
    p.scan = scan
    if len(tail) < ffi.sizeof(p.tail):
        p.tail, p.tail_len = tail, len(tail)
    return p


def _pieces(stream, path, done, errors=(EOFError, OSError, zlib.error), what="truncated or corrupt gzip"):
    """Whole lines in pieces of about PIECE bytes: (data, n), the lines in data[:n]; done() = lines consumed
    (the line of a read error); `errors` raised by the stream -> DataError(what), after the whole lines read
    before it (read1: what a truncated gzip gave before its end is not lost with the error)."""
    rest = b""
    raw = getattr(stream, "raw", None)  # open_input's BufferedReader over a GzipFile: its read1 keeps what it gave
    read = raw.read1 if isinstance(raw, gzip.GzipFile) else getattr(stream, "read1", stream.read)
    while True:
        parts, size, err = [], 0, None
        try:
            while size < PIECE:
                part = read(PIECE - size)
                if not part:
                    break
                parts.append(part)
                size += len(part)
        except errors as e:
            err = e
        if not size and err is None:
            if rest:
                yield rest, len(rest)
            return
        data = b"".join([rest, *parts]) if rest or len(parts) > 1 else parts[0] if parts else b""
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data, cut
        if err is not None:
            raise DataError(what, file=path, line=done() + 1, detail=str(err)) from None


def _line_end(data, pos, n):
    end = data.find(b"\n", pos, n)
    return n if end < 0 else end + 1


def _digits(s):
    """A decimal string's digits without the point as (lo, hi): value = hi * 10**19 + lo (checksum fragment)."""
    hi, lo = divmod(int(s.replace(".", "").lstrip("0") or "0"), 10**19)
    return lo, min(hi, 2**64 - 1)


class _PieceReader:
    """What the C-backed readers of JSON lines (this one and bybit.py) share: the output buffers the C parser
    fills, the statistics of the lines the Python decoder takes during the first block's scan, and the
    instrument inferred from that scan, set on the real parser."""

    C_TYPES = ()  # the C record types of the message and note buffers

    def _level_units(self, levels, ln, size_name):
        """A Python-decoded message's levels (side, price string, size string, ...) -> a level array with
        px / qty in exact ticks / lots and side; errors name line `ln`."""
        lv = np.zeros(len(levels), self.LEVEL_DTYPE)
        if levels:
            lines, path, inst = np.full(len(levels), ln, np.int64), self.path, self.out.instrument
            px = _parse([x[1] for x in levels], lines, path, "price")
            qty = _parse([x[2] for x in levels], lines, path, size_name)
            lv["px"] = _units(inst.tick_size, px, lines, path, "price", self.tick_size is None)
            lv["qty"] = _units(inst.lot_size, qty, lines, path, size_name, self.lot_size is None)
            lv["side"] = [x[0] for x in levels]
        return lv

    def _message_times(self, msgs):
        """The messages' exchange times raised to the running max carried from earlier calls
        (OUT_OF_ORDER_TS reported); the caller moves self.ts_max on."""
        tx, m_line, report = msgs["tx"], msgs["line"], self.out.report
        if self.ts_max is None:
            return monotone_ts(tx, report, m_line, self.where, "book message")
        return monotone_ts(np.r_[self.ts_max, tx], report, np.r_[0, m_line], self.where, "book message")[1:]

    def _buffers(self, n_ev, n_msgs, n_notes):
        ffi = self.ffi
        self.ev = np.zeros(n_ev, EVENT_DTYPE)
        self.msgs = np.zeros(n_msgs, self.MSG_DTYPE)
        self.notes = np.zeros(n_notes, self.NOTE_DTYPE)
        msg_t, note_t = self.C_TYPES
        self.args = (ffi.cast(msg_t, ffi.from_buffer(self.msgs)), len(self.msgs),
                     ffi.cast("lob_event *", ffi.from_buffer(self.ev)), len(self.ev),
                     ffi.cast(note_t, ffi.from_buffer(self.notes)), len(self.notes))

    def _grow(self):
        """Twice the room, keeping what the buffers hold."""
        ev, msgs, notes = self.ev, self.msgs, self.notes
        self._buffers(2 * len(ev), 2 * len(msgs), 2 * len(notes))
        self.ev[:len(ev)], self.msgs[:len(msgs)], self.notes[:len(notes)] = ev, msgs, notes

    def _read_ahead(self, pieces):
        """Pieces scanned (`_scan`) until the first block ends -> (those pieces, the input's read error if one
        came before: raised by `_raise_read_error` once the lines read before it are parsed, naming the next)."""
        ahead, size = [], 0
        while True:
            try:
                piece = next(pieces)
            except StopIteration:
                return ahead, None
            except DataError as e:
                return ahead, e
            ahead.append(piece)
            size += piece[1]
            if self._scan(*piece) or size >= AHEAD:  # no snapshot in AHEAD bytes: the tick / lot from what was seen
                return ahead, None

    def _raise_read_error(self, e):
        if e is not None:
            raise DataError(e.reason, file=e.file, line=self.p.line + 1, detail=e.detail)

    @staticmethod
    def _scan_stats(s, levels):
        """Decimals of a decoded line's [(side, price, size), ...] into the scan parser's statistics."""
        from lobsim.data.binance import _wire_digits

        w, g = _wire_digits([x[1] for x in levels])
        s.px_wire, s.px_sig = max(s.px_wire, w), max(s.px_sig, g)
        w, g = _wire_digits([x[2] for x in levels])
        s.qty_wire, s.qty_sig = max(s.qty_wire, w), max(s.qty_sig, g)

    def _infer(self, symbol):
        """The instrument from the scan's statistics (tick/lot given or the finest decimals seen) -> out and
        the real parser's units."""
        s, info = self.s, self.out.report.info

        def parts(wire, sig):
            return [(np.array([10 ** (wire - sig)], np.int64), 10**wire)]

        inst = infer_instrument(symbol, self.tick_size, self.lot_size, parts(s.px_wire, s.px_sig),
                                parts(s.qty_wire, s.qty_sig), info)
        self.out.instrument = inst
        m, e = _unit_parts(inst.tick_size)
        mq, eq = _unit_parts(inst.lot_size)
        if max(m, mq) >= 2**63 or max(abs(e), abs(eq)) >= 2**31:
            raise DataError(f"tick/lot size {inst.tick_size}/{inst.lot_size} out of the reader's range", file=self.path)
        self.p.px_mant, self.p.px_exp, self.p.qty_mant, self.p.qty_exp = m, e, mq, eq


class _Reader(_PieceReader):
    """The capture's lines -> blocks of events of one pair: the C parser and book, the output buffers."""

    MSG_DTYPE, NOTE_DTYPE, LEVEL_DTYPE, C_TYPES = _MSG_DTYPE, _NOTE_DTYPE, _LEVEL_DTYPE, ("kr_msg *", "kr_note *")

    def __init__(self, out, path, pair, tick_size, lot_size):
        from lobsim._core import ffi, lib

        self.ffi, self.lib = ffi, lib
        self.out, self.path, self.pair = out, path, pair
        self.tick_size, self.lot_size = tick_size, lot_size
        self.tail = b'"' + json.dumps(pair).encode()[1:-1] + b'"]'
        self.p, self.s = _new_parser(0, self.tail), _new_parser(1, self.tail)
        self.ts_max = None
        self.n_book = 0
        self.first = True  # the next events() is the first block's
        self.depth_noted = False
        self.lines_done = 0
        self._buffers(1 << 16, 1 << 14, 1 << 10)

    def close(self):
        for p in (self.p, self.s):
            self.lib.kr_free(p)

    def where(self, g):
        return str(self.path), int(g)

    # -- the pieces of text -------------------------------------------------------------
    def run(self, stream, feed):
        pieces = _pieces(stream, self.path, lambda: self.p.line)
        ahead, failed = self._read_ahead(pieces)  # the first block: the tick / lot (and the decimals on the wire)
        self.out.report.info["pair"] = self.pair
        self._infer(self.pair)
        self.lib.kr_free(self.s)
        self.p.block_lines = BLOCK_LINES
        while ahead:
            yield from self._parse(*ahead.pop(0), feed)
        self._raise_read_error(failed)
        for data, n in pieces:
            yield from self._parse(data, n, feed)
        self._finish()
        yield from feed.add(*self.events())

    def _scan(self, data, n):
        """Decimal statistics of the first block's lines (data[:n]); -> True at its end."""
        s, lib, ffi = self.s, self.lib, self.ffi
        s.pos, s.block_lines = 0, BLOCK_LINES
        buf = ffi.from_buffer(data)
        while True:
            rc = lib.kr_parse(s, buf, n, ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, 0)
            if rc == lib.KR_BLOCK:
                return True
            if rc == lib.KR_END:
                return False
            end = _line_end(data, s.pos, n)
            d = self.decode(data[s.pos:end], s.line + 1, s)
            if d is not None:
                levels = d[5]
                self._scan_stats(s, levels)
                s.synced = s.synced or d[0]
                s.block_levels += len(levels)
            s.line += 1
            s.pos = end
            if s.line >= BLOCK_LINES and s.synced and s.block_levels > 0:
                return True

    def _parse(self, data, n, feed):
        p, lib, ffi = self.p, self.lib, self.ffi
        p.pos = 0
        buf = ffi.from_buffer(data)
        while True:
            rc = lib.kr_parse(p, buf, n, *self.args)
            self._notes()
            if rc == lib.KR_END:
                break
            if rc == lib.KR_BLOCK:  # the end of the first block: its events measure the feed's latency
                p.block_lines = 0
                yield from feed.add(*self.events())
            elif rc == lib.KR_FULL:
                if p.n_ev and not self.first:
                    yield from feed.add(*self.events())
                else:
                    self._grow()
            elif rc == lib.KR_SLOW:
                end = _line_end(data, p.pos, n)
                ln = p.line + 1
                d = self.decode(data[p.pos:end], ln, p)
                if d is not None:
                    if p.n_ev + 2 * len(d[5]) + 1 > len(self.ev) and p.n_ev and not self.first:
                        yield from feed.add(*self.events())
                    self._apply(ln, d)
                p.line += 1
                p.pos = end
                if p.block_lines and p.line >= p.block_lines and p.synced and p.block_levels > 0:
                    p.block_lines = 0
                    yield from feed.add(*self.events())
            else:
                raise MemoryError("kraken book")
        if p.n_ev >= _FLUSH and not self.first:
            yield from feed.add(*self.events())

    def _apply(self, ln, d):
        """A book message decoded in Python -> the C book (the same code as the fast path)."""
        snap, depth, checksum, tx, tl, levels = d
        p, lib, ffi = self.p, self.lib, self.ffi
        lv = self._level_units(levels, ln, "volume")
        if levels:
            lv["pd_lo"], lv["pd_hi"] = zip(*(_digits(x[1]) for x in levels))
            lv["qd_lo"], lv["qd_hi"] = zip(*(_digits(x[2]) for x in levels))
        while True:
            rc = lib.kr_apply(p, snap, depth, -1 if checksum is None else checksum, tx, tl, ln,
                              ffi.cast("kr_level *", ffi.from_buffer(lv)), len(lv), *self.args)
            self._notes()
            if rc == lib.KR_END:
                return
            if rc != lib.KR_FULL:
                raise MemoryError("kraken book")
            self._grow()

    def _notes(self):
        p = self.p
        if not self.depth_noted and p.depth0:
            self.out.report.info["depth"] = int(p.depth0)
            self.depth_noted = True
        for ln, ours, theirs in self.notes[:p.n_notes].tolist():
            self.out.report.anomaly(CHECKSUM_MISMATCH, file=self.path, line=ln,
                                    detail=f"our book's checksum {ours} != Kraken's {theirs}")
        p.n_notes = 0

    # -- one line the C parser left to Python -----------------------------------------------
    def decode(self, raw, ln, p):
        """Check one line -> None (nothing to apply: counted) or (snapshot, depth, checksum, tx, tl, levels)
        with levels [(side, price string, volume string)] in wire order. `p`: the scan's or the real pass's
        parser; only the real pass (p.scan == 0) counts what it sees."""
        path, real = self.path, not p.scan
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            p.blank_lines += real
            return None
        if line.startswith(b"wss://") or line.startswith(b"ws://"):
            p.capture_metadata_lines += real
            return None
        m = _TIME.match(line)
        if m is None:
            raise DataError("malformed line: expected '<unix seconds>: <json>'", file=path, line=ln)
        body = line[m.end():]
        if body[:1] == b"[" and body.endswith(b'"]') and not body.endswith(self.tail):
            p.other_lines_skipped += real  # another pair's (or another channel's) message
            return None
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise DataError("bad JSON", file=path, line=ln, detail=str(e)[:200]) from None
        if isinstance(msg, dict):
            p.event_messages += real
            if real and msg.get("event") == "subscriptionStatus" and msg.get("pair") == self.pair:
                sub = msg.get("subscription")
                info = self.out.report.info
                if (isinstance(sub, dict) and sub.get("name") == "book" and msg.get("status") == "subscribed"
                        and "subscribed_depth" not in info):
                    info["subscribed_depth"] = sub.get("depth")
            return None
        if not (isinstance(msg, list) and 4 <= len(msg) <= 5 and isinstance(msg[-1], str)
                and isinstance(msg[-2], str) and all(isinstance(d, dict) for d in msg[1:-2])):
            raise DataError("book message is not [channelID, {...}, ({...},) channelName, pair]",
                            file=path, line=ln)
        if msg[-1] != self.pair:  # e.g. an escaped name the cheap test let through
            p.other_lines_skipped += real
            return None
        if not msg[-2].startswith("book"):
            if real:
                p.other_lines_skipped += 1
                self.out.report.skip("other_channel", file=path, line=ln, detail=msg[-2])
            return None
        depth = _depth(msg[-2], path, ln)
        if p.depth0 and depth != p.depth0:  # a second subscription of the pair: another book
            if real:
                p.other_lines_skipped += 1
                self.out.report.skip("other_depth", file=path, line=ln,
                                     detail=f"{msg[-2]}: the pair's book is kept to its first depth, {p.depth0}")
            return None
        return self.book_message(ln, m, msg[1:-2], depth, p)

    def book_message(self, ln, m, dicts, depth, p):
        path = self.path
        ts_local = _ns(m.group(1), m.group(2).decode() if m.group(2) else "")
        if ts_local > _INT64_MAX:
            raise DataError(f"line time {m.group(0)[:-2].decode()!r} is beyond int64 nanoseconds", file=path, line=ln)
        snapshot = any("as" in d or "bs" in d for d in dicts)
        checksum = None
        stamps, r_stamps, levels = [], [], []
        if snapshot and any(k in d for d in dicts for k in ("a", "b")):
            raise DataError("message mixes a snapshot (as/bs) with updates (a/b)", file=path, line=ln)
        for d in dicts:
            for k, v in d.items():
                if k == "c":
                    if not isinstance(v, str) or not _digits_only(v):
                        raise DataError(f"checksum {v!r:.40} is not an unsigned decimal string", file=path, line=ln)
                    checksum = min(_small_int(v), _INT64_MAX)  # past int64: never a CRC32, still a mismatch
                    continue
                if k in ("a", "as"):
                    side = -1
                elif k in ("b", "bs"):
                    side = 1
                else:
                    raise DataError(f"unknown field {k!r} in book message", file=path, line=ln)
                for e in _entries(v, path, ln, k):
                    q, t = e[1], e[2]
                    if _key(e[0], path, ln, "price") == 0:
                        raise DataError(f"price {e[0]!r} must be positive", file=path, line=ln)
                    _key(q, path, ln, "volume")
                    tm = _DEC.match(t)
                    if tm is None or len(t.partition(".")[0]) > 11 or _ns(*t.partition(".")[::2]) > _INT64_MAX:
                        raise DataError(f"timestamp {t!r:.40} is not unix seconds", file=path, line=ln)
                    if len(e) == 4:
                        p.republished_entries += not p.scan
                        r_stamps.append(t)
                    else:
                        stamps.append(t)
                    levels.append((side, e[0], q))
        stamps = stamps or r_stamps
        best = max(stamps, key=lambda s: _key(s, path, ln, "timestamp")) if stamps else None
        tx = _ns(*best.partition(".")[::2]) if best is not None else ts_local
        return snapshot, depth, checksum, tx, ts_local, levels

    # -- blocks -> events ---------------------------------------------------------------
    def _finish(self):
        p = self.p
        if not self.n_book and not p.book_messages and not p.n_no_snap:
            raise DataError(f"no book message for pair {self.pair!r} in the capture", file=self.path)
        if p.n_no_snap:
            self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=p.first_no_snap, count=p.n_no_snap,
                                    detail="updates before any snapshot of the pair: the book holds only what "
                                           "they touched")

    def _note_counts(self):
        """The C counters into the report (integers: merged chunk reports add them up)."""
        p, info = self.p, self.out.report.info
        self.n_book += p.book_messages
        for k in _COUNTS + _COUNTS_IF_ANY:
            v = p.line - self.lines_done if k == "lines" else getattr(p, k)
            if v or k in _COUNTS:
                info[k] = info.get(k, 0) + v
            if k != "lines":
                setattr(p, k, 0)
        self.lines_done = p.line

    def events(self):
        """The events in the C buffers (with their lines), timestamps set; empties the buffers."""
        p, out = self.p, self.out
        info = out.report.info
        self._note_counts()
        n, m = p.n_ev, p.n_msgs
        ev = self.ev[:n].copy()
        msgs = self.msgs[:m]
        m_line, n_ev = msgs["line"], msgs["n_ev"]
        tx = self._message_times(msgs)
        tl = msgs["tl"]
        if len(tx):
            if self.ts_max is None:  # the first block's messages measure the feed's latency
                lat = (tl - tx) / 1e6
                info["feed_latency_ms"] = {k: round(float(v), 3) for k, v in
                                           zip(("p1", "median", "p99"), np.percentile(lat, [1, 50, 99]))}
            self.ts_max = int(tx[-1])
        self.first = False
        ev["ts_exch"] = np.repeat(tx, n_ev)
        ev["ts_local"] = np.repeat(tl, n_ev)
        line = np.repeat(m_line, n_ev)
        p.n_ev = p.n_msgs = 0
        return ev, line


def _parse(strings, lines, path, what):
    """Decimal strings (of lines[i]) -> `binance._decimals`; errors name the line."""
    from lobsim.data.binance import _decimals

    try:
        return _decimals(strings)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        raise DataError(f"{what}: {e.reason}", file=path, line=ln) from None


def _units(unit, parsed, lines, path, what, inferred):
    """Parsed decimals -> whole numbers of `unit` (the instrument's tick or lot size), exactly as the C parser
    converts them; errors name the line, and a unit inferred from the start of the capture tells to pass it."""
    from lobsim.data.binance import _exact_units

    try:
        return _exact_units(parsed, unit, "price" if what == "price" else "size")
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        name = "tick_size" if what == "price" else "lot_size"
        detail = (f"the {name} was inferred from the start of the capture; pass {name}= to read it"
                  if inferred else e.detail)
        raise DataError(e.reason, file=path, line=ln, detail=detail) from None
