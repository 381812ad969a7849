"""LOBSTER reader: NASDAQ L3 messages + the vendor's top-N book -> normalized L3 events.

LOBSTER ships, per ticker and day, a message file (time, type, order id, size,
price, direction) and an orderbook file whose row k is the visible top-N book
*after* message k. The message file only carries messages that touch the
visible top N levels, so a faithful replay needs both files:

* Seed: the book before message 1 is orderbook row 1 with message 1 undone,
  emitted first as ADDs of synthetic orders (one per level; ids
  SYNTHETIC_ID_BASE + n, bit 63 set, so they never collide with LOBSTER ids),
  flagged SNAPSHOT, the last one SNAPSHOT|BATCH_END.
* Unknown order ids (cancelled or executed but never added in the file: they
  rested before the start or outside the top N) are consumed from the synthetic
  liquidity at their price (REDUCE / EXECUTE of synthetic orders). If that pool
  is too small, the known orders at the level are provably partly stale
  (changed while the level was out of view): they are forgotten (DELETE) and
  replaced by one synthetic order of their total; only if that still does not
  cover the message is a synthetic hidden-depth order added first. Counted as
  UNKNOWN_ORDER_ID, with how each was resolved in ``report.info``.
* Revealed depth: when a visible level empties, the vendor's window (top N)
  reaches deeper and shows a level whose contents the messages never carried
  (orders added or changed while out of view). For the newly exposed price
  range only, the reader sets each level to the vendor's size (synthetic ADD,
  or removal of synthetic liquidity / forgetting stale known orders). All other
  book changes follow from the messages alone, and the replayed visible book
  equals the vendor's at every row. Counted in ``report.info`` (a property of
  every level-N file, not an anomaly).

Every event the reader infers instead of reading it from a message (seed,
revealed depth, stale-order removal, hidden-depth top-ups) carries SNAPSHOT.
Each message's last event carries BATCH_END: after the seed batch there is one
batch per message (except skipped prints, which have no event), and the book
after message k's batch is orderbook row k.

Message mapping: 1 ADD; 2 REDUCE; 3 DELETE; 4 EXECUTE (side = resting side)
then TRADE (aggressor = -direction); 5 TRADE flagged HIDDEN, no book change
(aggressor = -direction); 6 TRADE with side 0; 7 STATUS (price -1 HALT,
0 QUOTING, 1 TRADING). TRADE events carry the message's order id (LOBSTER
writes 0 for hidden executions).
"""
import contextlib
import datetime as _dt
import gc
import io
import re
import zipfile
from bisect import bisect_left, bisect_right
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from itertools import chain
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lobsim._types import EVENT_DTYPE, EventKind, Flag, TradingStatus
from lobsim.data.events import HALT, OUT_OF_ORDER_TS, UNKNOWN_ORDER_ID, Events, ValidationReport
from lobsim.errors import DataError
from lobsim.instrument import Instrument

__all__ = ["read_lobster", "SYNTHETIC_ID_BASE", "SIZE_MISMATCH", "ORDER_MISMATCH", "REMOVED_ORDER_ID",
           "SUBTICK_TRADE"]

SYNTHETIC_ID_BASE = 1 << 63
"""Synthetic order ids (seed, revealed depth, forgotten stale orders) are SYNTHETIC_ID_BASE + n."""

SIZE_MISMATCH = "size_mismatch"
"""Anomaly: a message's size disagrees with its known order's tracked remaining size."""
ORDER_MISMATCH = "order_mismatch"
"""Anomaly: a message names a known order id with another side or price than its add."""
REMOVED_ORDER_ID = "removed_order_id"
"""Anomaly: a message names an order that this file's own messages already removed."""
SUBTICK_TRADE = "subtick_trade_price"
"""Skip reason (skipped:subtick_trade_price): a trade print between ticks (NASDAQ midpoint)."""

PRICE_SCALE = 10_000  # LOBSTER prices are USD * 10000
_TIME_SCALE = 12  # fractional digits the fast time parser keeps (sub-ns digits are truncated)

_NY = ZoneInfo("America/New_York")
_NAME_RE = re.compile(
    r"^(?P<symbol>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<what>message|orderbook)_(?P<levels>\d+)\.csv$"
)
_MSG_MEMBER_RE = re.compile(r"_message_(\d+)\.csv$")
_OB_MEMBER_RE = re.compile(r"_orderbook_(\d+)\.csv$")
_POW10 = np.array([10**k for k in range(10)], dtype=np.int64)
_INT_RE = re.compile(r"-?[0-9]+")
_TIME_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
_I64_MIN, _I64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)

# inferred events are tuples (kind, order_id, side, raw price, lots, flags)
_ADD, _REDUCE, _DELETE, _EXECUTE = (int(k) for k in (EventKind.ADD, EventKind.REDUCE,
                                                      EventKind.DELETE, EventKind.EXECUTE))
_SNAP = int(Flag.SNAPSHOT)


class _StrictStop(Exception):
    """Strict mode found its first anomaly inside the replay; report it in line order."""


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def _parse_name(name):
    m = _NAME_RE.match(Path(name).name)
    return m.groupdict() if m else None


def _zip_reader(path, member):
    def read():
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read(member)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
            raise DataError("unreadable zip member", file=f"{path}!{member}", detail=str(e)) from None
    return read


def _load_inputs(message_csv, orderbook_csv):
    """Resolve the inputs -> (read messages, message label, read orderbook, orderbook label, base name).

    The readers are zero-argument callables returning the file's bytes (each
    opens its own handle, so the two files can be read concurrently).
    """
    message_csv = Path(message_csv)
    if not message_csv.is_file():
        raise DataError("file not found", file=message_csv)
    if zipfile.is_zipfile(message_csv):
        if orderbook_csv is not None:
            raise DataError("pass either a LOBSTER zip or two CSV paths, not a zip and a CSV", file=message_csv)
        try:
            with zipfile.ZipFile(message_csv) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
            raise DataError("unreadable zip", file=message_csv, detail=str(e)) from None
        msgs = [n for n in names if _MSG_MEMBER_RE.search(n)]
        obs = [n for n in names if _OB_MEMBER_RE.search(n)]
        missing = [w for w, found in (("*_message_N.csv", msgs), ("*_orderbook_N.csv", obs)) if not found]
        if missing:
            raise DataError(f"zip has no {' and no '.join(missing)} member", file=message_csv,
                            detail=f"members: {names[:10]}")
        if len(msgs) > 1 or len(obs) > 1:
            raise DataError("zip holds several LOBSTER files; extract them and pass one message/orderbook pair",
                            file=message_csv, detail=f"message files {msgs}, orderbook files {obs}")
        msg_name, ob_name = msgs[0], obs[0]
        return (_zip_reader(message_csv, msg_name), f"{message_csv}!{msg_name}",
                _zip_reader(message_csv, ob_name), f"{message_csv}!{ob_name}", Path(msg_name).name)
    if orderbook_csv is None:
        guess = message_csv.with_name(message_csv.name.replace("_message_", "_orderbook_"))
        if guess == message_csv or not guess.is_file():
            raise DataError("orderbook file not given and not found beside the message file", file=message_csv)
        orderbook_csv = guess
    orderbook_csv = Path(orderbook_csv)
    if not orderbook_csv.is_file():
        raise DataError("file not found", file=orderbook_csv)
    return message_csv.read_bytes, str(message_csv), orderbook_csv.read_bytes, str(orderbook_csv), message_csv.name


# ---------------------------------------------------------------------------
# CSV parsing (vectorized; a Python pass runs only to name the line of an error)
# ---------------------------------------------------------------------------
def _diagnose(data, ncols, time_first, file, arrow_error):
    """Find the first malformed line of a CSV the fast parser refused; raise DataError."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not start a line
    for no, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if line == "":
            raise DataError("empty line", file=file, line=no)
        fields = line.split(",")
        if len(fields) != ncols:
            raise DataError(f"expected {ncols} columns, got {len(fields)}", file=file, line=no,
                            detail=repr(line[:120]))
        for col, f in enumerate(fields):
            is_time = time_first and col == 0
            if not (_TIME_RE if is_time else _INT_RE).fullmatch(f):
                raise DataError(f"column {col + 1}: not a valid {'time' if is_time else 'integer'}: {f!r}",
                                file=file, line=no)
    raise DataError("unreadable CSV", file=file, detail=str(arrow_error))


def _read_csv(data, ncols, first_type, file):
    """Parse a header-less integer CSV whose first column has type `first_type`.

    Raises pa.ArrowInvalid unchanged (the caller decides how to diagnose it).
    """
    names = [f"c{i}" for i in range(ncols)]
    types = {n: pa.int64() for n in names}
    types["c0"] = first_type
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _np(table, i):
    c = table.column(i)
    return (c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)).to_numpy()


def _read_messages(data, file):
    """-> (pyarrow table of the 6 columns, int64 ns after midnight, rows with sub-ns digits dropped)."""
    if not data.strip():
        raise DataError("empty file", file=file, line=1)
    try:
        # fast exact path: the time as decimal(18, 12); its unscaled int is seconds * 1e12
        table = _read_csv(data, 6, pa.decimal128(18, _TIME_SCALE), file)
        col = table.column(0).combine_chunks()
        words = np.frombuffer(col.buffers()[1], dtype=np.int64)[2 * col.offset: 2 * (col.offset + len(col))]
        unscaled = words[0::2]
        neg = np.flatnonzero(words[1::2] != 0)  # negative times (the high word is the sign)
        if len(neg):
            i = int(neg[0])
            raise DataError(f"column 1: negative time {col[i].as_py()}", file=file, line=i + 1)
        div = 10 ** (_TIME_SCALE - 9)
        return table, unscaled // div, int(np.count_nonzero(unscaled % div))
    except pa.ArrowInvalid:
        pass  # more than 12 decimals or malformed: the string path tells which
    try:
        table = _read_csv(data, 6, pa.string(), file)
    except pa.ArrowInvalid as e:
        _diagnose(data, 6, True, file, e)
    ns, truncated = _parse_times(table.column(0), file)
    return table, ns, truncated


def _read_orderbook(read, file, meta):
    """-> (levels, pyarrow table of 4 * levels int64 columns)."""
    data = read()
    if not data.strip():
        raise DataError("empty file", file=file, line=1)
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    ncols = first.count(b",") + 1
    if ncols % 4:
        raise DataError(f"orderbook rows need 4 columns per level, got {ncols}", file=file, line=1)
    levels = ncols // 4
    if "levels" in meta and int(meta["levels"]) != levels:
        raise DataError(f"file name says {meta['levels']} levels but rows have {levels}", file=file, line=1)
    try:
        return levels, _read_csv(data, ncols, pa.int64(), file)
    except pa.ArrowInvalid as e:
        _diagnose(data, ncols, False, file, e)


def _parse_times(col, file):
    """'seconds[.fraction]' strings -> (int64 ns after midnight, count truncated), exactly."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    parts = pc.split_pattern(col, ".", max_splits=1)
    offsets = parts.offsets.to_numpy()
    has_frac = np.diff(offsets) == 2
    values = parts.values
    first = offsets[:-1]
    sec_s = values.take(pa.array(first))
    frac_s = values.take(pa.array(np.where(has_frac, first + 1, first)))
    ok = pc.and_(pc.utf8_is_digit(sec_s), pc.utf8_is_digit(frac_s)).to_numpy(zero_copy_only=False)
    sec_len = pc.utf8_length(sec_s).to_numpy()
    ok &= sec_len <= 6
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(f"column 1: not a valid time: {col[i].as_py()!r}", file=file, line=i + 1)
    secs = pc.cast(sec_s, pa.int64()).to_numpy()
    flen = pc.utf8_length(frac_s).to_numpy()
    truncated = int(np.count_nonzero((flen > 9) & has_frac))
    if truncated:
        frac_s = pc.utf8_slice_codeunits(frac_s, 0, 9)
        flen = np.minimum(flen, 9)
    frac = pc.cast(frac_s, pa.int64()).to_numpy() * _POW10[9 - flen]
    return secs * 10**9 + np.where(has_frac, frac, 0), truncated


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while the replay runs.

    The replay allocates some 10^5 small tuples and lists (inferred events,
    synthetic orders) that form no reference cycles; the collections their
    allocation triggers would cost about a fifth of a read.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _utc_ns(ns_after_midnight, date):
    """ns after local midnight (America/New_York wall clock) on `date` -> UTC epoch ns."""
    midnight = (date - _dt.date(1970, 1, 1)).days * 86_400 * 10**9
    hours = ns_after_midnight // (3600 * 10**9)
    lo, hi = int(hours.min()), int(hours.max())
    base = _dt.datetime(date.year, date.month, date.day)
    table = np.array(  # UTC offset per wall-clock hour (NY switches on the hour)
        [int((base + _dt.timedelta(hours=h)).replace(tzinfo=_NY).utcoffset().total_seconds()) * 10**9
         for h in range(lo, hi + 1)],
        dtype=np.int64,
    )
    off = table[0] if lo == hi or (table == table[0]).all() else table[hours - lo]
    return midnight + ns_after_midnight - off


# ---------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------
def read_lobster(
    message_csv,
    orderbook_csv=None,
    *,
    tick_size="0.01",
    lot_size="1",
    symbol=None,
    date=None,
    strict=False,
) -> Events:
    """Read a LOBSTER message + orderbook pair (or the vendor zip) into L3 events.

    `message_csv` is the message CSV (the orderbook CSV beside it is found by
    name if `orderbook_csv` is None) or the vendor zip holding both. Symbol,
    date and level count come from the LOBSTER file name unless given.
    Timestamps (seconds after New York midnight, up to ns decimals) become UTC
    epoch ns exactly (digits below 1 ns are truncated and counted in
    ``report.info``); ts_local = ts_exch. Book message prices must be
    multiples of `tick_size` (DataError otherwise); hidden or cross trade prints
    between ticks (NASDAQ midpoint executions) are skipped and counted as
    skipped:subtick_trade_price -- pass tick_size="0.0001" to keep them.

    Malformed input (column count, non-numeric field, unknown type, bad
    direction, empty file, row counts that differ) raises DataError naming
    file and line. Anomalies (unknown ids, out-of-order times, halts, size
    mismatches) are counted in the report; `strict` raises on the first one.

    Cost: vectorized parsing and layout plus one tight Python pass over the
    messages (dict-based live-order tracking), O(rows).
    """
    read_msg, msg_file, read_ob, ob_file, base_name = _load_inputs(message_csv, orderbook_csv)
    meta = _parse_name(base_name) or {}
    if symbol is None:
        symbol = meta.get("symbol") or Path(base_name).stem
    if date is None:
        if "date" not in meta:
            raise DataError("cannot tell the trading date from the file name; pass date=", file=msg_file)
        date = meta["date"]
    if isinstance(date, _dt.datetime):
        date = date.date()
    elif not isinstance(date, _dt.date):
        try:
            date = _dt.date.fromisoformat(str(date))
        except ValueError:
            raise DataError(f"bad date {date!r} (want YYYY-MM-DD)", file=msg_file) from None
    instrument = Instrument(symbol, Decimal(str(tick_size)), Decimal(str(lot_size)))

    # the orderbook is unpacked and parsed on a worker thread while this one does the messages
    # (zlib and pyarrow release the GIL)
    with ThreadPoolExecutor(max_workers=1) as pool:
        ob_job = pool.submit(_read_orderbook, read_ob, ob_file, meta)
        msg, ns, truncated = _read_messages(read_msg(), msg_file)
        levels, ob = ob_job.result()
    n = msg.num_rows
    if ob.num_rows != n:
        raise DataError(
            f"orderbook has {ob.num_rows} rows but the message file has {n}",
            file=ob_file,
            line=min(n, ob.num_rows) + 1,
        )

    report = ValidationReport(source=msg_file, strict=strict)
    with _gc_paused():
        events = _build(msg, ns, ob, levels, instrument, date, msg_file, ob_file, report)
    if truncated:
        report.info["timestamps_truncated_to_ns"] = truncated
    report.info.update(rows=n, levels=levels, symbol=symbol, date=date.isoformat())
    return Events(events, instrument, report)


def _build(msg, ns, ob, N, instrument, date, msg_file, ob_file, report):
    n = msg.num_rows
    ts = _utc_ns(ns, date)
    typ, oid, size, raw_px, direction = (_np(msg, j) for j in range(1, 6))

    def fail(mask, what):
        bad = np.flatnonzero(mask)
        if len(bad):
            i = int(bad[0])
            raise DataError(what(i), file=msg_file, line=i + 1, detail=f"{len(bad)} such rows in all")

    fail((typ < 1) | (typ > 7), lambda i: f"column 2: unknown message type {typ[i]}")
    fail((direction != 1) & (direction != -1), lambda i: f"column 6: bad direction {direction[i]} (want 1 or -1)")
    priced = typ <= 6
    fail(priced & (size <= 0), lambda i: f"column 4: size {size[i]} must be positive")
    fail(priced & (raw_px <= 0), lambda i: f"column 5: price {raw_px[i]} must be positive")
    # levels are keyed raw_price * 2 + side below: keep that inside int64
    fail(priced & (raw_px >= 1 << 61), lambda i: f"column 5: price {raw_px[i]} is out of range")
    fail((typ <= 4) & (oid <= 0), lambda i: f"column 3: order id {oid[i]} must be positive")
    fail(oid < 0, lambda i: f"column 3: order id {oid[i]} must not be negative")
    status = typ == 7
    fail(status & ((raw_px < -1) | (raw_px > 1)), lambda i: f"column 5: halt price {raw_px[i]} (want -1, 0 or 1)")

    # prices: book messages must sit on the tick; trade prints between ticks are skipped
    step = instrument.tick_size * PRICE_SCALE
    raw_tick = int(step) if step == step.to_integral_value() else 1
    skip = np.zeros(n, dtype=bool)
    if raw_tick > 1:
        skip = ((typ == 5) | (typ == 6)) & (raw_px % raw_tick != 0)
    px = instrument.prices_from_scaled(np.where(priced & ~skip, raw_px, 0), PRICE_SCALE, where=msg_file)
    qty = instrument.qtys_from_scaled(np.where(priced, size, 0), 1, where=msg_file)

    # orderbook matrix (sizes in lots), validated
    ask_px = np.column_stack([_np(ob, 4 * j) for j in range(N)])
    ask_sz = np.column_stack([_np(ob, 4 * j + 1) for j in range(N)])
    bid_px = np.column_stack([_np(ob, 4 * j + 2) for j in range(N)])
    bid_sz = np.column_stack([_np(ob, 4 * j + 3) for j in range(N)])
    _validate_book_rows(ask_px, ask_sz, bid_px, bid_sz, raw_tick, ob_file)
    if instrument.lot_size != 1:
        ask_sz = np.column_stack([instrument.qtys_from_scaled(c, 1, where=ob_file) for c in ask_sz.T])
        bid_sz = np.column_stack([instrument.qtys_from_scaled(c, 1, where=ob_file) for c in bid_sz.T])

    # anomalies found vectorized
    found = []
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        found.append((int(back[0]) + 2, OUT_OF_ORDER_TS, len(back), f"time goes back at {len(back)} rows"))
    halts = np.flatnonzero(status & (raw_px == -1))
    if len(halts):
        found.append((int(halts[0]) + 1, HALT, len(halts), f"{len(halts)} trading halt message(s)"))
    if skip.any():
        i = int(np.flatnonzero(skip)[0])
        found.append((i + 1, f"skipped:{SUBTICK_TRADE}", int(skip.sum()),
                      f"trade print at {raw_px[i]}/{PRICE_SCALE} is between ticks of {instrument.tick_size}"))

    # the replay: live orders, synthetic liquidity, revealed depth
    replay = _Replay(N, ask_px, ask_sz, bid_px, bid_sz, raw_tick, report.strict)
    replay.seed(int(typ[0]), int(raw_px[0]), int(qty[0]), int(direction[0]))
    loop_oid, added_before = _check_known_orders(typ, oid, raw_px, direction, msg_file, found)
    try:
        replay.run(typ, loop_oid, raw_px, qty, direction, added_before)
    except _StrictStop:
        pass
    found.extend(replay.anomalies)
    for line, reason, count, detail in sorted(found, key=lambda x: x[0]):
        report.anomaly(reason, line=line, count=count, detail=detail)
    report.info.update(replay.stats)
    return _assemble(replay, typ, oid, px, qty, direction, raw_px, ts, skip, instrument)


def _validate_book_rows(ask_px, ask_sz, bid_px, bid_sz, raw_tick, ob_file):
    """Sizes >= 0; occupied levels positive, on the tick, strictly ordered, with no gap before them."""
    for name, p, s in (("ask", ask_px, ask_sz), ("bid", bid_px, bid_sz)):
        occupied = s > 0
        bad = (s < 0) | (occupied & ((p <= 0) | (p >= 1 << 61)))
        if raw_tick > 1:
            bad |= occupied & (p % raw_tick != 0)
        if p.shape[1] > 1:
            d = np.diff(p, axis=1)
            wrong_order = (d <= 0) if name == "ask" else (d >= 0)
            bad[:, 1:] |= occupied[:, 1:] & (~occupied[:, :-1] | wrong_order)
        if bad.any():
            i = int(np.flatnonzero(bad.any(axis=1))[0])
            raise DataError(
                f"malformed {name} levels (negative size, price off the tick, levels out of order or a gap)",
                file=ob_file,
                line=i + 1,
                detail=f"{name} prices {p[i].tolist()} sizes {s[i].tolist()}",
            )


def _check_known_orders(typ, oid, raw_px, direction, msg_file, found):
    """Duplicate adds are malformed; a message whose known order sits elsewhere is an anomaly.

    Returns the order ids the replay uses (mismatching rows get an id that is
    never live, so their size is taken from the level's synthetic liquidity)
    and, per row, whether its order id was added on an earlier row.
    """
    adds = np.flatnonzero(typ == 1)
    add_ids = oid[adds]
    order = np.argsort(add_ids, kind="stable")
    sorted_ids = add_ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if len(dup):
        row = int(adds[order[dup[0] + 1]])
        raise DataError(f"order id {oid[row]} added twice", file=msg_file, line=row + 1)
    refs = np.flatnonzero((typ >= 2) & (typ <= 4))
    added_before = np.zeros(len(typ), dtype=bool)
    if not len(refs) or not len(adds):
        return oid, added_before
    j = np.minimum(np.searchsorted(sorted_ids, oid[refs]), len(sorted_ids) - 1)
    add_row = adds[order[j]]
    known = (sorted_ids[j] == oid[refs]) & (add_row < refs)
    added_before[refs] = known
    elsewhere = known & ((raw_px[add_row] != raw_px[refs]) | (direction[add_row] != direction[refs]))
    if not elsewhere.any():
        return oid, added_before
    rows = refs[elsewhere]
    found.append((int(rows[0]) + 1, ORDER_MISMATCH, len(rows),
                  f"{len(rows)} messages name a known order at another side/price than its add "
                  f"(first: order {oid[rows[0]]}); treated as unknown ids"))
    loop_oid = oid.copy()
    loop_oid[rows] = -1 - rows  # never a live id
    return loop_oid, added_before


class _Replay:
    """Tracks live known orders, level totals and synthetic liquidity over the messages.

    A level is keyed by raw_price * 2 + (1 if bid else 0). Only rows that need
    more than the plain message -> event translation are recorded: `repl[row]`
    replaces the message's book event, `extra[row]` is appended to its batch.
    """

    def __init__(self, N, ask_px, ask_sz, bid_px, bid_sz, raw_tick, strict):
        self.N = N
        self.ask_px, self.ask_sz, self.bid_px, self.bid_sz = ask_px, ask_sz, bid_px, bid_sz
        self.raw_tick = raw_tick
        self.strict = strict
        self.live = {}  # known order id -> remaining lots
        self.forgotten = set()  # known ids dropped as stale (their later messages are expected)
        self.tot = {}  # key -> our level total (lots)
        self.syn = {}  # key -> [[synthetic id, lots], ...], oldest first
        self.next_syn = SYNTHETIC_ID_BASE
        self.seed_events = []
        self.repl = {}
        self.extra = {}
        self.anomalies = []
        self.stats = dict(
            unknown_from_synthetic=0, unknown_after_forgetting_stale=0, unknown_from_hidden_depth=0,
            depth_revealed=0, stale_levels_reset=0, stale_orders_forgotten=0, messages_on_forgotten_orders=0,
        )

    # -- helpers -----------------------------------------------------------
    def _add_syn(self, key, side, p, q, evs):
        sid = self.next_syn
        self.next_syn += 1
        lst = self.syn.get(key)
        if lst is None:
            self.syn[key] = [[sid, q]]
        else:
            lst.append([sid, q])
        self.tot[key] = self.tot.get(key, 0) + q
        evs.append((_ADD, sid, side, p, q, _SNAP))

    def _forget_known(self, key, side, p, row, evs):
        """DELETE (SNAPSHOT) every live known order at `key` added up to `row`; return their total.

        The candidates are the adds at `key` (sorted by row) not scanned by an
        earlier forget at the same level.
        """
        g0 = bisect_left(self._add_keys, key)
        g1 = bisect_right(self._add_keys, key, g0)
        start = self._scanned.get(key, g0)
        end = bisect_right(self._add_rows, row, start, g1)
        self._scanned[key] = end
        live = self.live
        total = forgotten = 0
        for i in self._add_ids[start:end]:
            q = live.pop(i, None)
            if q is not None:
                total += q
                forgotten += 1
                self.forgotten.add(i)
                evs.append((_DELETE, i, side, p, q, _SNAP))
        self.stats["stale_orders_forgotten"] += forgotten
        self.tot[key] = self.tot.get(key, 0) - total
        return total

    def _consume(self, key, side, p, need, kind, row, evs):
        """Take `need` lots at `key` from synthetic orders with `kind` events; -> how it was resolved."""
        lst = self.syn.get(key)
        pool = sum(e[1] for e in lst) if lst else 0
        how = "unknown_from_synthetic"
        if pool < need:
            forgot = []
            total = self._forget_known(key, side, p, row, forgot)
            if total:
                evs.extend(forgot)
                self._add_syn(key, side, p, total, evs)
                pool += total
                how = "unknown_after_forgetting_stale"
            if pool < need:
                self._add_syn(key, side, p, need - pool, evs)
                how = "unknown_from_hidden_depth"
            lst = self.syn[key]
        self.tot[key] -= need
        while need:
            e = lst[0]
            q = e[1]
            if q <= need:
                evs.append((kind, e[0], side, p, q, 0))
                need -= q
                del lst[0]
            else:
                evs.append((kind, e[0], side, p, need, 0))
                e[1] = q - need
                need = 0
        return how

    def _set_level(self, key, side, p, target, row, evs):
        """Make our level at `key` hold `target` lots (the vendor's revealed size)."""
        ours = self.tot.get(key, 0)
        if target == ours:
            return
        if target > ours:
            self._add_syn(key, side, p, target - ours, evs)
            self.stats["depth_revealed"] += 1
            return
        self.stats["stale_levels_reset"] += 1
        lst = self.syn.get(key) or []
        if sum(e[1] for e in lst) < ours - target:  # known orders changed out of view: forget them
            forgot = []
            self._forget_known(key, side, p, row, forgot)
            evs.extend(forgot)
        excess = self.tot[key] - target
        while excess > 0:  # newest synthetic first
            e = lst[-1]
            take = min(e[1], excess)
            evs.append((_REDUCE, e[0], side, p, take, _SNAP))
            e[1] -= take
            excess -= take
            self.tot[key] -= take
            if e[1] == 0:
                lst.pop()
        if excess < 0:  # forgot more than the vendor lost: the rest still rests there
            self._add_syn(key, side, p, -excess, evs)

    # -- seed ----------------------------------------------------------------
    def seed(self, t0, p0, q0, d0):
        """Book before message 1 = orderbook row 1 with message 1 undone."""
        levels = {}
        for j in range(self.N):
            if self.bid_sz[0, j] > 0:
                levels[int(self.bid_px[0, j]) * 2 + 1] = int(self.bid_sz[0, j])
            if self.ask_sz[0, j] > 0:
                levels[int(self.ask_px[0, j]) * 2] = int(self.ask_sz[0, j])
        if 1 <= t0 <= 4:
            key = p0 * 2 + (1 if d0 > 0 else 0)
            have = levels.get(key, 0) + (-q0 if t0 == 1 else q0)
            if have < 0:
                self.anomalies.append((1, SIZE_MISMATCH, 1, "message 1 adds more than orderbook row 1 shows"))
                have = 0
            if have:
                levels[key] = have
            else:
                levels.pop(key, None)
        bids = sorted((k for k in levels if k & 1), reverse=True)
        asks = sorted(k for k in levels if not k & 1)
        for key in bids + asks:
            self._add_syn(key, 1 if key & 1 else -1, key >> 1, levels[key], self.seed_events)

    # -- main pass -------------------------------------------------------------
    def run(self, typ, oid, raw_px, qty, direction, added_before):
        n = len(typ)
        N = self.N
        keys = raw_px * 2 + (direction > 0)
        # adds grouped by level, in row order (for forgetting stale orders)
        adds = np.flatnonzero(typ == 1)
        order = np.argsort(keys[adds], kind="stable")  # adds are in row order: stable keeps it per level
        self._add_keys = keys[adds][order].tolist()
        self._add_rows = adds[order].tolist()
        self._add_ids = oid[adds][order].tolist()
        self._scanned = {}
        # rows whose visible window reaches deeper than the row before (per side)
        lo = np.where(self.bid_sz[:, N - 1] > 0, self.bid_px[:, N - 1], _I64_MIN)
        hi = np.where(self.ask_sz[:, N - 1] > 0, self.ask_px[:, N - 1], _I64_MAX)
        exp_bid = np.zeros(n, dtype=bool)
        exp_ask = np.zeros(n, dtype=bool)
        exp_bid[1:] = lo[1:] < lo[:-1]
        exp_ask[1:] = hi[1:] > hi[:-1]
        recon = np.flatnonzero(exp_bid | exp_ask)
        prev = np.maximum(recon - 1, 0)
        tick = self.raw_tick
        # simple: full window before and after, only the new level N lies below the old edge,
        # and the exposed range is short -> check the exposed ticks inline
        simple_bid = exp_bid[recon] & (lo[recon] != _I64_MIN) & (lo[prev] - lo[recon] <= 64 * tick)
        simple_ask = exp_ask[recon] & (hi[recon] != _I64_MAX) & (hi[recon] - hi[prev] <= 64 * tick)
        if N > 1:
            simple_bid &= self.bid_px[recon, N - 2] >= lo[prev]
            simple_ask &= self.ask_px[recon, N - 2] <= hi[prev]
        mode_bid = np.where(simple_bid, 1, np.where(exp_bid[recon], 2, 0))
        mode_ask = np.where(simple_ask, 1, np.where(exp_ask[recon], 2, 0))
        recon_args = list(zip(
            mode_bid.tolist(), lo[recon].tolist(), lo[prev].tolist(), self.bid_sz[recon, N - 1].tolist(),
            mode_ask.tolist(), hi[recon].tolist(), hi[prev].tolist(), self.ask_sz[recon, N - 1].tolist(),
        ))
        recon_rows = recon.tolist() + [n]
        ri = 0
        next_recon = recon_rows[0]
        set_level, reveal = self._set_level, self._reveal

        live, tot, repl = self.live, self.tot, self.repl
        live_get, tot_get, syn_get = live.get, tot.get, self.syn.get
        consume = self._consume
        strict = self.strict
        unknown_first = removed_first = None
        removed = 0
        forgotten = self.forgotten
        how_count = {"unknown_from_synthetic": 0, "unknown_after_forgetting_stale": 0,
                     "unknown_from_hidden_depth": 0}
        mismatch_first = None
        mismatches = 0
        for k, t, i, q, key in zip(range(n), typ.tolist(), oid.tolist(), qty.tolist(), keys.tolist()):
            if t == 1:
                live[i] = q
                tot[key] = tot_get(key, 0) + q
            elif t < 5:
                rem = live_get(i)
                if rem is not None:
                    if q < rem and t != 3:
                        live[i] = rem - q
                        tot[key] -= q
                    elif q == rem:
                        del live[i]
                        tot[key] -= q
                    else:  # the order changed out of view; move the level by the message's size
                        mismatches += 1
                        if mismatch_first is None:
                            mismatch_first = (k + 1, f"order {i}: message size {q}, tracked remaining {rem}")
                            if strict:
                                self.anomalies.append((k + 1, SIZE_MISMATCH, 1, mismatch_first[1]))
                                raise _StrictStop
                        del live[i]
                        tot[key] -= rem
                        side = 1 if key & 1 else -1
                        p = key >> 1
                        evs = [(_DELETE if t == 3 else (_REDUCE if t == 2 else _EXECUTE), i, side, p, rem, 0)]
                        if q > rem:
                            consume(key, side, p, q - rem, _EXECUTE if t == 4 else _REDUCE, k, evs)
                        else:  # deleted with less than tracked: the rest is still there
                            self._add_syn(key, side, p, rem - q, evs)
                        repl[k] = evs
                else:
                    lst = syn_get(key)
                    if lst and lst[0][1] >= q:  # fast path: the oldest synthetic order covers it
                        e = lst[0]
                        repl[k] = [(_EXECUTE if t == 4 else _REDUCE, e[0], 1 if key & 1 else -1, key >> 1, q, 0)]
                        if e[1] == q:
                            del lst[0]
                        else:
                            e[1] -= q
                        tot[key] -= q
                        how = "unknown_from_synthetic"
                    else:
                        evs = []
                        how = consume(key, 1 if key & 1 else -1, key >> 1, q, _EXECUTE if t == 4 else _REDUCE,
                                      k, evs)
                        repl[k] = evs
                    if i in forgotten:  # we dropped it as stale earlier: not a data anomaly
                        self.stats["messages_on_forgotten_orders"] += 1
                    elif i < 0:  # order_mismatch, reported already
                        pass
                    elif added_before[k]:
                        removed += 1
                        if removed_first is None:
                            removed_first = (k + 1, i, t)
                            if strict:
                                break
                    else:
                        how_count[how] += 1
                        if unknown_first is None:
                            unknown_first = (k + 1, i, t)
                            if strict:
                                break
            if k == next_recon:
                # the vendor's window reached deeper: set the newly exposed levels to its sizes
                evs = []
                eb, lo_k, lo_p, szb, ea, hi_k, hi_p, sza = recon_args[ri]
                if eb == 1:
                    if tot_get(lo_k * 2 + 1, 0) != szb:
                        set_level(lo_k * 2 + 1, 1, lo_k, szb, k, evs)
                    p = lo_k + tick
                    while p < lo_p:  # levels we hold that the vendor no longer shows
                        if tot_get(p * 2 + 1):
                            set_level(p * 2 + 1, 1, p, 0, k, evs)
                        p += tick
                elif eb:
                    reveal(1, lo_k, lo_p, k, evs)
                if ea == 1:
                    if tot_get(hi_k * 2, 0) != sza:
                        set_level(hi_k * 2, -1, hi_k, sza, k, evs)
                    p = hi_k - tick
                    while p > hi_p:
                        if tot_get(p * 2):
                            set_level(p * 2, -1, p, 0, k, evs)
                        p -= tick
                elif ea:
                    reveal(-1, hi_p + 1, hi_k + 1, k, evs)
                if evs:
                    self.extra[k] = evs
                ri += 1
                next_recon = recon_rows[ri]
        if mismatches:
            self.anomalies.append((mismatch_first[0], SIZE_MISMATCH, mismatches,
                                   f"{mismatches} messages disagree with their order's tracked size "
                                   f"(changed out of view); first: {mismatch_first[1]}"))
        if removed:
            line, i, t = removed_first
            self.anomalies.append((line, REMOVED_ORDER_ID, removed,
                                   f"order {i} (type {t}) was already removed by its own messages; "
                                   f"{removed} such messages, sizes taken from the level's synthetic liquidity"))
        if unknown_first is not None:
            total = sum(how_count.values()) or 1
            line, i, t = unknown_first
            self.anomalies.append((
                line, UNKNOWN_ORDER_ID, total,
                f"order {i} (type {t}) was never added; {total} such cancels/executions (orders resting "
                f"before the start or outside the top levels), resolved: "
                + ", ".join(f"{v} {k[8:].replace('_', ' ')}" for k, v in how_count.items()),
            ))
        self.stats.update(how_count)

    def _reveal(self, side, a, b, row, evs):
        """Prices in [a, b) on `side` just came into the vendor's view: our level := vendor size."""
        if side > 0:
            bit, vpx, vsz = 1, self.bid_px[row].tolist(), self.bid_sz[row].tolist()
        else:
            bit, vpx, vsz = 0, self.ask_px[row].tolist(), self.ask_sz[row].tolist()
        vendor = {p: s for p, s in zip(vpx, vsz) if s > 0 and a <= p < b}
        prices = set(vendor)
        tick = self.raw_tick
        tot = self.tot
        if b - a <= 64 * tick:
            for p in range(a + (-a) % tick, b, tick):
                if tot.get(p * 2 + bit):
                    prices.add(p)
        else:
            prices.update(key >> 1 for key, v in tot.items() if v and (key & 1) == bit and a <= (key >> 1) < b)
        for p in sorted(prices, reverse=side > 0):
            self._set_level(p * 2 + bit, side, p, vendor.get(p, 0), row, evs)


# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------
def _assemble(st, typ, oid, px, qty, direction, raw_px, ts, skip, instrument):
    """Seed batch, then one batch per message, into one EVENT_DTYPE array."""
    n = len(typ)
    repl_rows = np.fromiter(st.repl.keys(), dtype=np.int64, count=len(st.repl))
    repl_len = np.fromiter(map(len, st.repl.values()), dtype=np.int64, count=len(st.repl))
    extra_rows = np.fromiter(st.extra.keys(), dtype=np.int64, count=len(st.extra))
    extra_len = np.fromiter(map(len, st.extra.values()), dtype=np.int64, count=len(st.extra))
    count = np.where(typ == 4, 2, 1)
    count[skip] = 0  # a skipped print has no event and so no batch
    count[repl_rows] += repl_len - 1
    count[extra_rows] += extra_len
    nseed = max(len(st.seed_events), 1)
    start = np.empty(n + 1, dtype=np.int64)
    start[0] = nseed
    np.cumsum(count, out=start[1:])
    start[1:] += nseed
    out = np.zeros(int(start[-1]), dtype=EVENT_DTYPE)
    pos = start[:-1]
    side = direction.astype(np.int8)

    # the message's own event at its batch start
    plain = ~skip
    plain[repl_rows] = False
    rows = np.flatnonzero(plain)
    at = pos[rows]
    tk = typ[rows]
    kind_map = np.array([0, EventKind.ADD, EventKind.REDUCE, EventKind.DELETE, EventKind.EXECUTE,
                         EventKind.TRADE, EventKind.TRADE, EventKind.STATUS], dtype=np.uint8)
    is_status = tk == 7
    rp = raw_px[rows]
    status_qty = np.where(rp == -1, int(TradingStatus.HALT),
                          np.where(rp == 0, int(TradingStatus.QUOTING), int(TradingStatus.TRADING)))
    s = side[rows]
    out["kind"][at] = kind_map[tk]
    out["order_id"][at] = np.where(is_status, 0, oid[rows]).astype(np.uint64)
    out["price"][at] = np.where(is_status, 0, px[rows])
    out["qty"][at] = np.where(is_status, status_qty, qty[rows])
    out["side"][at] = np.where(tk <= 4, s, np.where(tk == 5, -s, 0)).astype(np.int8)
    out["flags"][at[tk == 5]] = Flag.HIDDEN

    # the TRADE print of each visible execution, after its book event(s)
    ex = np.flatnonzero(typ == 4)
    width = np.ones(n, dtype=np.int64)
    width[repl_rows] = repl_len
    tp = pos[ex] + width[ex]
    out["kind"][tp] = EventKind.TRADE
    out["order_id"][tp] = oid[ex].astype(np.uint64)
    out["price"][tp] = px[ex]
    out["qty"][tp] = qty[ex]
    out["side"][tp] = -side[ex]

    # inferred events: seed, replacements at the batch start, extras at the batch end
    # (positions vectorized: each row's events are consecutive from its first slot)
    first = np.concatenate([np.zeros(1 if st.seed_events else 0, dtype=np.int64), start[repl_rows],
                            start[extra_rows + 1] - extra_len])
    lens = np.concatenate([[len(st.seed_events)] if st.seed_events else np.zeros(0, dtype=np.int64),
                           repl_len, extra_len])
    evs = list(chain(st.seed_events, chain.from_iterable(st.repl.values()),
                     chain.from_iterable(st.extra.values())))
    if evs:
        ends = np.cumsum(lens)
        w = np.repeat(first - (ends - lens), lens) + np.arange(ends[-1])
        kinds, ids, sides, prices, qtys, flags = zip(*evs)
        out["kind"][w] = kinds
        out["order_id"][w] = np.array(ids, dtype=np.uint64)
        out["side"][w] = sides
        out["price"][w] = instrument.prices_from_scaled(np.array(prices, dtype=np.int64), PRICE_SCALE)
        out["qty"][w] = qtys
        out["flags"][w] = flags

    # clocks and batch ends
    t0 = ts[0] if n else 0
    out["ts_exch"][:nseed] = t0
    out["ts_exch"][nseed:] = np.repeat(ts, count)
    out["ts_local"] = out["ts_exch"]
    if not st.seed_events:  # an empty seed is still one batch: clear the book
        out["kind"][0] = EventKind.CLEAR
        out["flags"][0] = Flag.SNAPSHOT
    out["flags"][nseed - 1] |= np.uint16(Flag.BATCH_END)
    out["flags"][start[1:][count > 0] - 1] |= np.uint16(Flag.BATCH_END)
    return out
