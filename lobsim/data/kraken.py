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

Instrument: given tick/lot sizes, else the finest decimal resolution the pair's strings use
(trailing zeros ignored). Prices and sizes stay exact decimal strings until converted in bulk.
"""
import bisect
import json
import re
import zlib
from pathlib import Path

import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import open_input
from lobsim.data.events import NO_SNAPSHOT, Events, ValidationReport, monotone_ts, report_crossed
from lobsim.errors import DataError
from lobsim.instrument import infer_instrument, parse_decimal_strings

__all__ = ["read_kraken", "kraken_checksum"]

CHECKSUM_MISMATCH = "checksum_mismatch"

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
    ``report.info["checksums_checked"]`` / ``report.counts["checksum_mismatch"]``.
    """
    path = Path(path)
    if not isinstance(pair, str) or not pair:
        raise ValueError(f"pair must be a Kraken pair name such as 'XBT/USD', got {pair!r}")
    report = ValidationReport(source=str(path), strict=strict)
    tail = b'"' + json.dumps(pair).encode()[1:-1] + b'"]'

    asks, bids = _Side(1), _Side(-1)
    # event columns: price string, qty string, side, kind, flags, line, message index
    e_px, e_qty, e_side, e_kind, e_flags, e_line, e_msg = [], [], [], [], [], [], []
    m_tl, m_tx, m_line = [], [], []  # per message: ts_local, ts_exch (None: none seen), line
    n_lines = n_meta = n_other = n_events_msgs = n_checked = n_republished = n_absent = n_trunc = 0
    n_blank = n_no_snap = 0
    first_no_snap = None
    pairs_seen = set()
    synced = False
    depth_seen = None

    with open_input(path) as stream:
        ln = 0
        try:
            for ln, raw in enumerate(stream, 1):
                n_lines += 1
                line = raw.rstrip(b"\r\n")
                if not line.strip():
                    n_blank += 1
                    continue
                if line.startswith(b"wss://") or line.startswith(b"ws://"):
                    n_meta += 1
                    continue
                m = _TIME.match(line)
                if m is None:
                    raise DataError("malformed line: expected '<unix seconds>: <json>'", file=path, line=ln)
                body = line[m.end():]
                if body[:1] == b"[" and body.endswith(b'"]') and not body.endswith(tail):
                    n_other += 1  # another pair's (or another channel's) message
                    continue
                try:
                    msg = json.loads(body)
                except (ValueError, RecursionError) as e:
                    raise DataError("bad JSON", file=path, line=ln, detail=str(e)[:200]) from None
                if isinstance(msg, dict):
                    n_events_msgs += 1
                    if msg.get("event") == "subscriptionStatus" and msg.get("pair") == pair:
                        sub = msg.get("subscription")
                        if isinstance(sub, dict) and sub.get("name") == "book" and msg.get("status") == "subscribed":
                            report.info["subscribed_depth"] = sub.get("depth")
                    continue
                if not (isinstance(msg, list) and 4 <= len(msg) <= 5 and isinstance(msg[-1], str)
                        and isinstance(msg[-2], str) and all(isinstance(d, dict) for d in msg[1:-2])):
                    raise DataError("book message is not [channelID, {...}, ({...},) channelName, pair]",
                                    file=path, line=ln)
                if msg[-1] != pair:  # e.g. an escaped name the cheap test let through
                    pairs_seen.add(msg[-1])
                    n_other += 1
                    continue
                if not msg[-2].startswith("book"):
                    n_other += 1
                    report.skip("other_channel", file=path, line=ln, detail=msg[-2])
                    continue
                depth = _depth(msg[-2], path, ln)
                depth_seen = depth
                dicts = msg[1:-2]
                ts_local = _ns(m.group(1), m.group(2).decode() if m.group(2) else "")
                mi = len(m_tl)
                n0 = len(e_px)
                snapshot = any("as" in d or "bs" in d for d in dicts)
                checksum = None
                stamps, r_stamps = [], []
                if snapshot:
                    if any(k in d for d in dicts for k in ("a", "b")):
                        raise DataError("message mixes a snapshot (as/bs) with updates (a/b)", file=path, line=ln)
                    synced = True
                    asks.clear()
                    bids.clear()
                    e_px.append("0"); e_qty.append("0"); e_side.append(0)
                    e_kind.append(EventKind.CLEAR); e_flags.append(_SNAP); e_line.append(ln); e_msg.append(mi)
                elif not synced:
                    n_no_snap += 1
                    if first_no_snap is None:
                        first_no_snap = ln
                for d in dicts:
                    for k, v in d.items():
                        if k == "c":
                            if not isinstance(v, str) or not v.isdigit():
                                raise DataError(f"checksum {v!r:.40} is not an unsigned decimal string",
                                                file=path, line=ln)
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
                            key = _key(p, path, ln, "price")
                            if key == 0:
                                raise DataError(f"price {p!r} must be positive", file=path, line=ln)
                            zero = _key(q, path, ln, "volume") == 0
                            tm = _DEC.match(t)
                            if tm is None or len(t.partition(".")[0]) > 11:
                                raise DataError(f"timestamp {t!r:.40} is not unix seconds", file=path, line=ln)
                            if len(e) == 4:
                                n_republished += 1
                                r_stamps.append(t)
                            else:
                                stamps.append(t)
                            if not book.set(key, p, q, zero):
                                n_absent += 1
                            e_px.append(p); e_qty.append(q); e_side.append(side)
                            e_kind.append(EventKind.SET_LEVEL); e_flags.append(_SNAP if snapshot else 0)
                            e_line.append(ln); e_msg.append(mi)
                for book, side in ((asks, -1), (bids, 1)):
                    for p in book.truncate(depth):
                        n_trunc += 1
                        e_px.append(p); e_qty.append("0"); e_side.append(side)
                        e_kind.append(EventKind.SET_LEVEL); e_flags.append(_SNAP if snapshot else 0)
                        e_line.append(ln); e_msg.append(mi)
                if checksum is not None and synced:
                    n_checked += 1
                    ours = zlib.crc32((asks.top() + bids.top()).encode())
                    if ours != checksum:
                        report.anomaly(CHECKSUM_MISMATCH, file=path, line=ln,
                                       detail=f"our book's checksum {ours} != Kraken's {checksum}")
                if len(e_px) == n0:
                    continue  # nothing in the message (no entries)
                e_flags[-1] |= _END
                stamps = stamps or r_stamps
                best = max(stamps, key=lambda s: _key(s, path, ln, "timestamp")) if stamps else None
                m_tl.append(ts_local)
                m_tx.append(_ns(*best.partition(".")[::2]) if best is not None else ts_local)
                m_line.append(ln)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError("truncated or corrupt gzip", file=path, line=ln + 1, detail=str(e)) from None

    info = report.info
    info.update({"pair": pair, "lines": n_lines, "book_messages": len(m_tl), "other_lines_skipped": n_other,
                 "event_messages": n_events_msgs, "checksums_checked": n_checked, "depth": depth_seen})
    if n_meta:
        info["capture_metadata_lines"] = n_meta
    if n_blank:
        info["blank_lines"] = n_blank
    if n_republished:
        info["republished_entries"] = n_republished
    if n_trunc:
        info["levels_truncated"] = n_trunc
    if n_absent:
        info["deletes_of_absent_levels"] = n_absent
    if not m_tl and not n_no_snap:
        raise DataError(f"no book message for pair {pair!r} in the capture", file=path)
    if n_no_snap:
        report.anomaly(NO_SNAPSHOT, file=path, line=first_no_snap, count=n_no_snap,
                       detail="updates before any snapshot of the pair: the book holds only what they touched")

    # ---- exact decimals -> ticks / lots, in bulk -------------------------------------
    e_line = np.asarray(e_line, np.int64)
    e_kind = np.asarray(e_kind, np.uint8)
    lv = np.flatnonzero(e_kind == EventKind.SET_LEVEL)
    px_s = np.asarray(e_px, dtype=str)[lv]
    qty_s = np.asarray(e_qty, dtype=str)[lv]
    px = _parse(px_s, e_line[lv], path, "price")
    qty = _parse(qty_s, e_line[lv], path, "volume")
    inst = infer_instrument(pair, tick_size, lot_size, [px], [qty], info)
    ticks = _units(inst, px, "price", e_line[lv], path)
    lots = _units(inst, qty, "qty", e_line[lv], path)

    ev = np.zeros(len(e_kind), EVENT_DTYPE)
    e_msg = np.asarray(e_msg, np.int64)
    m_line = np.asarray(m_line, np.int64)
    ev["ts_local"] = np.asarray(m_tl, np.int64)[e_msg]
    tx = monotone_ts(np.asarray(m_tx, np.int64), report, m_line, lambda g: (str(path), int(g)), "book message")
    ev["ts_exch"] = tx[e_msg]
    ev["kind"] = e_kind
    ev["side"] = np.asarray(e_side, np.int8)
    ev["flags"] = np.asarray(e_flags, np.uint16)
    ev["price"][lv] = ticks
    ev["qty"][lv] = lots
    report_crossed(ev, e_line, report, lambda g: (str(path), int(g)))
    info["events"] = len(ev)
    if len(m_tl):
        lat = (np.asarray(m_tl, np.int64) - tx) / 1e6
        info["feed_latency_ms"] = {k: round(float(v), 3) for k, v in
                                   zip(("p1", "median", "p99"), np.percentile(lat, [1, 50, 99]))}
    return Events(ev, inst, report)


def _parse(strings, lines, path, what):
    try:
        return parse_decimal_strings(strings, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        raise DataError(f"{what}: {e.reason}", file=path, line=ln) from None


def _units(inst, parsed, kind, lines, path):
    vals, scale = parsed
    try:
        if kind == "price":
            return inst.prices_from_scaled(vals, scale, line_offset=0)
        return inst.qtys_from_scaled(vals, scale, line_offset=0)
    except DataError as e:
        ln = int(lines[e.line]) if e.line is not None and len(lines) else None
        raise DataError(e.reason, file=path, line=ln, detail=e.detail) from None
