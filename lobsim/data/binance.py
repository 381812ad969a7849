"""Reader of Binance websocket captures (diff depth + trades) into normalized L2 events.

Input: gzip (or plain) text, one message a line, ``<local receive ns> <raw JSON>``,
as recorded from the combined-stream endpoint (``{"stream": ..., "data": ...}``;
bare messages are accepted too). Several files given in order continue one
another. Streams understood:

- ``<sym>@depth@0ms`` (futures: U, u, pu) / ``<sym>@depth@100ms`` or ``@depth``
  (spot: U, u): diff depth with absolute level sizes -> SET_LEVEL events, the
  last one of each diff flagged BATCH_END. ``"0.000"`` deletes a level.
- a REST depth snapshot line (``{"lastUpdateId": ..., "bids": ..., "asks": ...}``)
  -> CLEAR + SET_LEVEL flagged SNAPSHOT, the last one also BATCH_END.
- ``<sym>@trade`` / ``<sym>@aggTrade`` -> TRADE, side = aggressor
  (``m`` true: the buyer is the maker, so the seller aggressed -> -1).
- ``<sym>@bookTicker`` is the vendor's BBO, not a book event: skipped (counted in
  ``report.info``); ``read_binance_book_ticker`` returns it for verification.

Sequencing (Binance's documented procedure, applied to the whole capture):
diffs with ``u`` below the snapshot's ``lastUpdateId`` are stale and dropped;
the first diff kept must bridge the snapshot (futures ``U <= id <= u``, spot
``U <= id + 1 <= u``); after that futures chain on ``pu == previous u`` and spot
on ``U == previous u + 1``. A diff received *before* the snapshot line but not
stale is applied after the snapshot, as a live client buffering the stream
would, and its ``ts_local`` is raised to the snapshot's receive time (the local
book could not have used it earlier). A break in the chain is a SEQUENCE_GAP;
the reader keeps applying the diffs that follow (the captures carry no later
snapshot), so after a gap the book may be wrong until a later snapshot line
resynchronises it. A later snapshot line always resynchronises (CLEAR + levels
inserted before the first diff it bridges). Diffs with no snapshot at all are
kept and reported as ``no_snapshot`` (the book holds only what diffs touched).

Clocks: ``ts_local`` = the line prefix; ``ts_exch`` = ``E`` (event time, ms) for
depth diffs and ``T`` (trade time, ms) for trades. T is when the match
happened and is never later than the E of the diff that shows its effect, so a
trade sorts before the level change it caused (what the L2 queue model wants);
E of a trade message can trail that diff by tens of ms on COIN-M. A snapshot
takes min(its E, E of the diff it bridges). Within each stream the file order
is the venue order: a timestamp that goes backwards is raised to the previous
one and reported as out_of_order_timestamp. The two streams are then merged
stably by ts_exch, ties in file order; a diff's events stay contiguous.

After merging, the book is replayed in C (lobsim.book) and every
batch end with best bid >= best ask is reported as crossed_book.
``report.info["feed_latency_ms"]`` gives percentiles of ts_local - ts_exch; it
is negative when the recording host's clock lags the venue's (about -1.27 s on
the shared captures) and is not corrected here.

Instrument: given tick/lot sizes, else the finest decimal resolution actually
used by the prices / sizes in the capture (trailing zeros of the wire format
ignored, so spot ``"61837.63000000"`` gives 0.01): a power of ten, which can be
coarser than the venue's true tick if the capture never uses the finer digits.
"""
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import Locator, open_input
from lobsim.data.events import NO_SNAPSHOT, SEQUENCE_GAP, Events, ValidationReport, monotone_ts, report_crossed
from lobsim.errors import DataError
from lobsim.instrument import infer_instrument, parse_decimal_strings

__all__ = ["read_binance", "read_binance_book_ticker"]

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
_MAX_GAP_EXAMPLES = 5


@dataclass
class _Capture:
    """Result of `_load_binance`: the events plus, per event, the update id it belongs to.

    ``update_id[i]`` is the diff's final update id ``u`` for depth events, the
    snapshot's ``lastUpdateId`` for snapshot events and -1 for trades; it lets a
    caller line the book up with bookTicker messages (same ``u``).
    """

    events: Events
    update_id: np.ndarray


# -- line input ------------------------------------------------------------------


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


# -- decimals --------------------------------------------------------------------


def _pairs_to_strings(pool, owner_line, where):
    """A list of [price, size] pairs -> two str arrays; DataError naming the bad entry's line."""
    if not pool:
        return np.zeros(0, dtype="U1"), np.zeros(0, dtype="U1")
    try:
        arr = np.array(pool)
        ok = arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype.kind == "U"
    except ValueError:
        ok = False
    if not ok:
        for i, e in enumerate(pool):
            if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)):
                f, ln = where(owner_line[i])
                raise DataError(f"level entry {e!r} is not [price, size] strings", file=f, line=ln)
        raise DataError("malformed level entries", file=where(owner_line[0])[0])
    return arr[:, 0], arr[:, 1]


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


def _all_units(inst, groups, where):
    """Convert every (parsed, kind, owner lines) group; if some fail, name the earliest line."""
    out, errors = [], []
    for (scaled, scale), kind, owner in groups:
        try:
            out.append(_to_units(inst, scaled, scale, kind, owner, lambda g: (None, g)))
        except DataError as e:
            errors.append(e)
    if errors:
        e = min(errors, key=lambda x: x.line if x.line is not None else -1)
        f, ln = where(e.line) if e.line is not None else (e.file, None)
        raise DataError(e.reason, file=f, line=ln, detail=e.detail)
    return out


# -- main reader -----------------------------------------------------------------


def read_binance(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Read Binance websocket capture file(s) (given in order) -> `Events` of L2 events.

    See the module docstring for the streams, sequencing, clocks and instrument
    inference. O(lines); one json.loads per non-bookTicker line, the rest in numpy.
    """
    return _load_binance(paths, symbol=symbol, tick_size=tick_size, lot_size=lot_size, strict=strict).events


def _load_binance(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Like `read_binance`, but also returns each event's update id (`_Capture`); the tests use it to
    line the replayed book up with bookTicker."""
    paths = _as_paths(paths)
    want = symbol.upper() if symbol else None
    seen_symbol = []
    report = ValidationReport(source=",".join(str(p) for p in paths), strict=strict)

    # global line numbers (across files) keep file order; `where` maps back to (file, line)
    where = Locator()

    # depth diffs (columns)
    d_g, d_tl, d_E, d_U, d_u, d_pu, d_nb, d_na = [], [], [], [], [], [], [], []
    d_pool, d_owner = [], []
    # trades
    t_g, t_tl, t_T, t_m, t_px, t_qty = [], [], [], [], [], []
    # snapshots: dicts
    snaps = []
    n_ticker = n_lines = n_blank = n_other_symbol = 0
    unknown = {}
    futures = None

    for path in paths:
        gbase = where.add(path)
        ln = 0
        for ln, line in _iter_lines(path):
            n_lines += 1
            if not line.strip():
                n_blank += 1
                continue
            g = gbase + ln
            sp = line.find(b" ")
            if line.startswith(b'{"stream":"', sp + 1):  # cheap skip of bookTicker lines
                end = line.find(b'"', sp + 12, sp + 120)
                if end > 0 and line[sp + 12 : end].endswith(b"@bookTicker"):
                    n_ticker += 1
                    continue
            ts_local, body = _split(line, path, ln)
            kind, data = _classify(_loads(body, path, ln), path, ln)
            if kind == "depth":
                if not _check_symbol(data, want, seen_symbol, path, ln):
                    n_other_symbol += 1
                    continue
                has_pu = "pu" in data
                if futures is None:
                    futures = has_pu
                elif has_pu != futures:
                    raise DataError(
                        "depth diffs mix futures (with 'pu') and spot (without) formats", file=path, line=ln
                    )
                d_g.append(g)
                d_tl.append(ts_local)
                d_E.append(_ms(data, "E", path, ln))
                d_U.append(_int(data, "U", path, ln))
                d_u.append(_int(data, "u", path, ln))
                d_pu.append(_int(data, "pu", path, ln, -1) if futures else -1)
                b = _levels(data, "b", path, ln)
                a = _levels(data, "a", path, ln)
                d_nb.append(len(b))
                d_na.append(len(a))
                d_pool += b
                d_pool += a
                d_owner.append(len(b) + len(a))
            elif kind == "trade":
                if not _check_symbol(data, want, seen_symbol, path, ln):
                    n_other_symbol += 1
                    continue
                t_g.append(g)
                t_tl.append(ts_local)
                t_T.append(_ms(data, "T" if "T" in data else "E", path, ln))
                m = _field(data, "m", path, ln)
                if type(m) is not bool:
                    raise DataError(f"field 'm' is not a boolean: {m!r}", file=path, line=ln)
                t_m.append(m)
                t_px.append(_dec(data, "p", path, ln))
                t_qty.append(_dec(data, "q", path, ln))
            elif kind == "ticker":
                n_ticker += 1
            elif kind == "snapshot":
                if not _check_symbol(data, want, seen_symbol, path, ln, key="symbol"):
                    n_other_symbol += 1
                    continue
                bids = _levels(data, "bids", path, ln)
                asks = _levels(data, "asks", path, ln)
                e = _ms(data, "E", path, ln) if data.get("E") is not None else None
                last_id = _int(data, "lastUpdateId", path, ln)
                snaps.append({"g": g, "tl": ts_local, "id": last_id, "E": e, "bids": bids, "asks": asks})
            else:
                unknown[kind] = unknown.get(kind, 0) + 1
                report.skip("unknown_stream", file=path, line=ln, detail=kind)
        if ln == 0:
            raise DataError("empty file: no lines", file=path)
        where.end(ln)

    sym = want or (seen_symbol[0] if seen_symbol else None)
    info = report.info
    info.update(
        {
            "files": len(paths),
            "lines": n_lines,
            "depth_diffs": len(d_g),
            "trades": len(t_g),
            "snapshots": len(snaps),
            "book_ticker_lines_skipped": n_ticker,
            "venue": None if futures is None else ("futures" if futures else "spot"),
        }
    )
    if n_blank:
        info["blank_lines"] = n_blank
    if n_other_symbol:
        info["other_symbol_lines_skipped"] = n_other_symbol
    if unknown:
        info["unknown_streams"] = unknown

    # ---- numbers: parse every decimal in bulk --------------------------------
    nd = len(d_g)
    d_g = np.asarray(d_g, np.int64)
    d_owner = np.repeat(d_g, np.asarray(d_owner, np.int64))  # line of each level entry
    lp_s, lq_s = _pairs_to_strings(d_pool, d_owner, where)
    del d_pool
    s_pools, s_owner = [], []
    for s in snaps:
        s_pools += s["bids"]
        s_pools += s["asks"]
        s_owner.append(np.full(len(s["bids"]) + len(s["asks"]), s["g"], np.int64))
    s_owner = np.concatenate(s_owner) if s_owner else np.zeros(0, np.int64)
    sp_s, sq_s = _pairs_to_strings(s_pools, s_owner, where)
    t_g = np.asarray(t_g, np.int64)
    lp = _parse(lp_s, d_owner, where, "depth price")
    lq = _parse(lq_s, d_owner, where, "depth size")
    sp = _parse(sp_s, s_owner, where, "snapshot price")
    sq = _parse(sq_s, s_owner, where, "snapshot size")
    tp = _parse(np.asarray(t_px, dtype=str) if t_px else [], t_g, where, "trade price")
    tq = _parse(np.asarray(t_qty, dtype=str) if t_qty else [], t_g, where, "trade size")
    for (vals, _), owner, what in (
        (lp, d_owner, "depth price"),
        (sp, s_owner, "snapshot price"),
        (tp, t_g, "trade price"),
        (tq, t_g, "trade size"),
    ):
        bad = np.nonzero(vals <= 0)[0]
        if len(bad):
            f, ln = where(owner[bad[0]])
            raise DataError(f"{what} must be positive", file=f, line=ln)
    for (vals, _), owner, what in ((lq, d_owner, "depth size"), (sq, s_owner, "snapshot size")):
        bad = np.nonzero(vals < 0)[0]
        if len(bad):
            f, ln = where(owner[bad[0]])
            raise DataError(f"{what} is negative", file=f, line=ln)

    inst = infer_instrument(sym, tick_size, lot_size, [lp, sp, tp], [lq, sq, tq], report.info)
    lpx, lqty, spx, sqty, tpx, tqty = _all_units(
        inst,
        [(lp, "price", d_owner), (lq, "qty", d_owner), (sp, "price", s_owner), (sq, "qty", s_owner),
         (tp, "price", t_g), (tq, "qty", t_g)],
        where,
    )

    # ---- sequencing of the book stream ----------------------------------------
    d_tl = np.asarray(d_tl, np.int64)
    d_U = np.asarray(d_U, np.int64)
    d_u = np.asarray(d_u, np.int64)
    d_pu = np.asarray(d_pu, np.int64)
    d_ts = np.asarray(d_E, np.int64) * _MS
    spot_shift = 0 if futures or futures is None else 1

    # each snapshot goes before the first diff (at or after the previous snapshot's
    # place) that reaches its id; a snapshot superseded at the same place is dropped
    place = {}
    lo = 0
    for j, s in enumerate(snaps):
        thr = s["id"] + spot_shift
        hits = np.nonzero(d_u[lo:] >= thr)[0]
        k = lo + int(hits[0]) if len(hits) else nd
        if k in place:
            info["superseded_snapshots"] = info.get("superseded_snapshots", 0) + 1
        place[k] = j
        lo = k

    keep = np.zeros(nd, bool)
    synced = False
    last_u = None
    n_stale = n_dup = 0
    gaps = []  # (diff index, detail)
    after_gap = 0
    for i in range(nd):
        j = place.get(i)
        if j is not None:
            synced = True
            thr = snaps[j]["id"] + spot_shift
            if not d_U[i] <= thr <= d_u[i]:
                gaps.append((i, f"first diff after snapshot {snaps[j]['id']} has U={d_U[i]} u={d_u[i]}: "
                                f"updates between them were missed"))
            keep[i] = True
            last_u = d_u[i]
            continue
        if not synced and snaps:
            n_stale += 1  # before the first snapshot's id: superseded by it
            continue
        if last_u is not None:
            if d_u[i] <= last_u:
                n_dup += 1
                f, ln = where(d_g[i])
                report.skip("duplicate_diff", file=f, line=ln, detail=f"u={d_u[i]} <= previous u={last_u}")
                continue
            ok = d_pu[i] == last_u if futures else d_U[i] == last_u + 1
            if not ok:
                prev = f"pu={d_pu[i]}" if futures else f"U={d_U[i]}"
                gaps.append((i, f"{prev} does not follow previous u={last_u}"))
        if gaps:
            after_gap += 1
        keep[i] = True
        last_u = d_u[i]
    if not snaps and nd:
        f, ln = where(d_g[0])
        report.anomaly(NO_SNAPSHOT, file=f, line=ln, count=nd,
                       detail="no depth snapshot in the capture: the book holds only levels the diffs touched")
    for n, (i, detail) in enumerate(gaps):
        f, ln = where(d_g[i])
        if n < _MAX_GAP_EXAMPLES or n == len(gaps) - 1:
            report.anomaly(SEQUENCE_GAP, file=f, line=ln, detail=detail,
                           count=1 if n < _MAX_GAP_EXAMPLES else len(gaps) - _MAX_GAP_EXAMPLES)
    info["stale_diffs_dropped"] = n_stale
    if n_dup:
        info["duplicate_diffs_dropped"] = n_dup
    if gaps:
        info["diffs_applied_after_first_gap"] = after_gap

    # ---- timestamps -----------------------------------------------------------
    kept = np.nonzero(keep)[0]
    ts_fixed = np.empty(nd, np.int64)
    ts_fixed[kept] = monotone_ts(d_ts[kept], report, d_g[kept], where, "depth diff")
    tl_fixed = d_tl.copy()
    buffered = 0
    snap_rows = []  # (place k, snapshot j, ts_exch, merge key)
    for k, j in sorted(place.items()):
        s = snaps[j]
        cand = [] if s["E"] is None else [s["E"] * _MS]
        if k < nd:
            cand.append(ts_fixed[k])
            prev = kept[kept < k]
            lo_ts = ts_fixed[prev[-1]] if len(prev) else None
            key = 2 * int(d_g[k]) - 1
            # diffs received before this snapshot line wait for it locally
            later = np.nonzero(keep[k:] & (d_g[k:] < s["g"]))[0] + k
            buffered += len(later)
            tl_fixed[later] = np.maximum(tl_fixed[later], s["tl"])
        else:
            lo_ts = ts_fixed[kept[-1]] if len(kept) else None
            key = 2 * int(max(d_g[-1] if nd else 0, s["g"])) + 1
        ts = min(cand) if cand else s["tl"]
        if lo_ts is not None:
            ts = max(ts, lo_ts)
        snap_rows.append((k, j, ts, key))
    if buffered:
        info["diffs_buffered_until_snapshot"] = buffered
    t_ts = monotone_ts(np.asarray(t_T, np.int64) * _MS, report, t_g, where, "trade")

    # ---- events ---------------------------------------------------------------
    # depth levels of kept diffs
    d_cnt = np.asarray(d_nb, np.int64) + np.asarray(d_na, np.int64)
    d_of = np.repeat(np.arange(nd), d_cnt)
    starts = np.cumsum(d_cnt) - d_cnt
    pos = np.arange(len(d_of)) - starts[d_of]
    lsel = keep[d_of]
    lvl_side = np.where(pos < np.asarray(d_nb, np.int64)[d_of], 1, -1).astype(np.int8)
    last = pos == d_cnt[d_of] - 1
    info["empty_diffs"] = int(np.sum(keep & (d_cnt == 0)))

    parts = []  # (events, merge key, update ids, global lines)

    dv = np.nonzero(lsel)[0]
    ev = np.zeros(len(dv), EVENT_DTYPE)
    di = d_of[dv]
    ev["ts_exch"] = ts_fixed[di]
    ev["ts_local"] = tl_fixed[di]
    ev["price"] = lpx[dv]
    ev["qty"] = lqty[dv]
    ev["side"] = lvl_side[dv]
    ev["kind"] = EventKind.SET_LEVEL
    ev["flags"] = np.where(last[dv], int(Flag.BATCH_END), 0)
    parts.append((ev, 2 * d_g[di], d_u[di], d_g[di]))

    s_start = 0
    s_offsets = []
    for s in snaps:
        s_offsets.append(s_start)
        s_start += len(s["bids"]) + len(s["asks"])
    for _, j, ts, key in snap_rows:
        s = snaps[j]
        nb, na = len(s["bids"]), len(s["asks"])
        sl = slice(s_offsets[j], s_offsets[j] + nb + na)
        px, qt = spx[sl], sqty[sl]
        side = np.r_[np.ones(nb, np.int8), -np.ones(na, np.int8)]
        nz = qt > 0  # a zero level in a snapshot is no level
        if not nz.all():
            info["snapshot_zero_levels_dropped"] = info.get("snapshot_zero_levels_dropped", 0) + int((~nz).sum())
        px, qt, side = px[nz], qt[nz], side[nz]
        ev = np.zeros(1 + len(px), EVENT_DTYPE)
        ev["ts_exch"] = ts
        ev["ts_local"] = s["tl"]
        ev["kind"][0] = EventKind.CLEAR
        ev["kind"][1:] = EventKind.SET_LEVEL
        ev["price"][1:] = px
        ev["qty"][1:] = qt
        ev["side"][1:] = side
        ev["flags"] = int(Flag.SNAPSHOT)
        ev["flags"][-1] = int(Flag.SNAPSHOT | Flag.BATCH_END)
        n = len(ev)
        parts.append((ev, np.full(n, key, np.int64), np.full(n, s["id"], np.int64), np.full(n, s["g"], np.int64)))

    ev = np.zeros(len(t_g), EVENT_DTYPE)
    ev["ts_exch"] = t_ts
    ev["ts_local"] = np.asarray(t_tl, np.int64)
    ev["price"] = tpx
    ev["qty"] = tqty
    ev["side"] = np.where(np.asarray(t_m, bool), -1, 1)
    ev["kind"] = EventKind.TRADE
    parts.append((ev, 2 * t_g, np.full(len(ev), -1, np.int64), t_g))

    events = np.concatenate([p[0] for p in parts])
    okey = np.concatenate([p[1] for p in parts])
    uid = np.concatenate([p[2] for p in parts])
    order = np.lexsort((okey, events["ts_exch"]))  # stable: a batch's events keep their order
    events = events[order]
    uid = uid[order]
    eline = np.concatenate([p[3] for p in parts])[order]
    report_crossed(events, eline, report, where)

    info["events"] = len(events)
    if len(events):
        lat = events["ts_local"] - events["ts_exch"]
        p1, p50, p99 = np.percentile(lat, [1, 50, 99]) / 1e6
        info["feed_latency_ms"] = {k: round(float(v), 3) for k, v in (("p1", p1), ("median", p50), ("p99", p99))}
    return _Capture(Events(events, inst, report), uid)


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
