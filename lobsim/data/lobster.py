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

This module parses (pyarrow, each zip member parsed while it is unpacked,
the two files concurrently), validates and reports; the sequential replay
and the event layout run in C (csrc/lobster.c, lob_lobster_replay), which
reads the numpy/arrow columns in place and writes the event array directly.
"""
import contextlib
import datetime as _dt
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lobsim._core import ERROR_NAMES, ffi, lib
from lobsim._types import EVENT_DTYPE
from lobsim.data._io import open_input, require_file
from lobsim.data.events import HALT, OUT_OF_ORDER_TS, UNKNOWN_ORDER_ID, Events, ValidationReport, below_running_max
from lobsim.errors import DataError
from lobsim.instrument import Instrument

__all__ = ["read_lobster"]

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


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def _parse_name(name):
    m = _NAME_RE.match(Path(name).name)
    return m.groupdict() if m else None


class _ZipMember:
    """A zip member: read() -> its bytes, open() -> a context-managed stream that unpacks as it is read.

    Each call opens its own handle, so the two files can be read concurrently.
    """

    def __init__(self, path, member):
        self.path, self.member = path, member

    def read(self):
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError) as e:
            raise DataError("unreadable zip member", file=f"{self.path}!{self.member}", detail=str(e)) from None

    @contextlib.contextmanager
    def open(self):
        with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as f:
            yield f


class _PlainFile:
    """A plain file with the same read() / open() interface as _ZipMember."""

    def __init__(self, path):
        self.path = path

    def read(self):
        with open_input(self.path) as f:
            return f.read()

    def open(self):
        return open_input(self.path)


def _load_inputs(message_csv, orderbook_csv):
    """Resolve the inputs -> (message source, message label, orderbook source, orderbook label, base name).

    The sources are _ZipMember / _PlainFile objects (read() -> bytes, open() -> stream).
    """
    message_csv = Path(message_csv)
    require_file(message_csv)
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
        return (_ZipMember(message_csv, msg_name), f"{message_csv}!{msg_name}",
                _ZipMember(message_csv, ob_name), f"{message_csv}!{ob_name}", Path(msg_name).name)
    with open(message_csv, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK" or message_csv.suffix.lower() == ".zip":  # zip magic, but no readable end of zip
        raise DataError("truncated or corrupt zip: its central directory (at the end) is missing or damaged",
                        file=message_csv)
    if orderbook_csv is None:
        guess = message_csv.with_name(message_csv.name.replace("_message_", "_orderbook_"))
        if guess == message_csv or not guess.is_file():
            raise DataError("orderbook file not given and not found beside the message file", file=message_csv)
        orderbook_csv = guess
    orderbook_csv = Path(orderbook_csv)
    require_file(orderbook_csv)
    return (_PlainFile(message_csv), str(message_csv), _PlainFile(orderbook_csv), str(orderbook_csv),
            message_csv.name)


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
            if not is_time and not -(2**63) <= int(f) < 2**63:
                raise DataError(f"column {col + 1}: {f} does not fit a 64-bit integer", file=file, line=no)
    raise DataError("unreadable CSV", file=file, detail=str(arrow_error))


def _read_csv(data, ncols, first_type):
    """Parse a header-less integer CSV (bytes or a binary stream) whose first column has type `first_type`.

    Raises pa.ArrowInvalid unchanged (the caller decides how to diagnose it).
    """
    names = [f"c{i}" for i in range(ncols)]
    types = {n: pa.int64() for n in names}
    types["c0"] = first_type
    return pacsv.read_csv(
        pa.BufferReader(data) if isinstance(data, bytes) else data,
        read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def _np(table, i):
    c = table.column(i)
    return (c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)).to_numpy()


def _stream_csv(src, ncols, first_type):
    """Parse `src` while it is unpacked (overlaps unzip and parsing) -> table, or None.

    None when the stream path fails in any way or yields no rows: the caller
    then reads the bytes and takes the checked path, which names the error.
    """
    try:
        with src.open() as f:
            table = _read_csv(f, ncols, first_type)
    except Exception:  # noqa: BLE001 - any failure: the bytes path reports it precisely
        return None
    return table if table.num_rows else None


def _read_messages(src, file):
    """-> (pyarrow table of the 6 columns, int64 ns after midnight, rows with sub-ns digits dropped)."""
    # fast exact path: the time as decimal(18, 12); its unscaled int is seconds * 1e12
    time_type = pa.decimal128(18, _TIME_SCALE)
    table = _stream_csv(src, 6, time_type)
    if table is None:
        data = src.read()
        if not data.strip():
            raise DataError("empty file", file=file, line=1)
        try:
            table = _read_csv(data, 6, time_type)
        except pa.ArrowInvalid:
            pass  # more than 12 decimals or malformed: the string path tells which
    if table is not None:
        col = table.column(0).combine_chunks()
        words = np.frombuffer(col.buffers()[1], dtype=np.int64)[2 * col.offset: 2 * (col.offset + len(col))]
        unscaled = words[0::2]
        neg = np.flatnonzero(words[1::2] != 0)  # negative times (the high word is the sign)
        if len(neg):
            i = int(neg[0])
            raise DataError(f"column 1: negative time {col[i].as_py()}", file=file, line=i + 1)
        div = 10 ** (_TIME_SCALE - 9)
        return table, unscaled // div, int(np.count_nonzero(unscaled % div))
    try:
        table = _read_csv(data, 6, pa.string())
    except pa.ArrowInvalid as e:
        _diagnose(data, 6, True, file, e)
    ns, truncated = _parse_times(table.column(0), file)
    return table, ns, truncated


def _read_orderbook(src, file, meta):
    """-> (levels, pyarrow table of 4 * levels int64 columns)."""
    if "levels" in meta:  # fast path: the column count the file name promises; checked below
        levels = int(meta["levels"])
        table = _stream_csv(src, 4 * levels, pa.int64()) if levels > 0 else None
        if table is not None:
            return levels, table
    data = src.read()
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
        return levels, _read_csv(data, ncols, pa.int64())
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


def _utc_ns(ns_after_midnight, date, file=None):
    """ns after local midnight (America/New_York wall clock) on `date` -> UTC epoch ns.

    DataError when the result would not fit int64 ns (years before 1677 or after 2262).
    """
    midnight = (date - _dt.date(1970, 1, 1)).days * 86_400 * 10**9
    hours = ns_after_midnight // (3600 * 10**9)
    lo, hi = int(hours.min()), int(hours.max())
    day = 86_400 * 10**9  # the NY offset is well under a day
    first, last = midnight + int(ns_after_midnight.min()) - day, midnight + int(ns_after_midnight.max()) + day
    if not (-(2**63) <= first and last < 2**63):
        raise DataError(f"timestamps on {date} do not fit int64 nanoseconds since 1970", file=file)
    base = _dt.datetime(date.year, date.month, date.day)
    try:
        table = np.array(  # UTC offset per wall-clock hour (NY switches on the hour)
            [int((base + _dt.timedelta(hours=h)).replace(tzinfo=_NY).utcoffset().total_seconds()) * 10**9
             for h in range(lo, hi + 1)],
            dtype=np.int64,
        )
    except OverflowError:
        raise DataError(f"timestamps on {date} are out of the supported date range", file=file) from None
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

    Cost: vectorized parsing and validation, then one C pass over the
    messages (csrc/lobster.c: live-order tracking and event layout), O(rows).
    """
    msg_src, msg_file, ob_src, ob_file, base_name = _load_inputs(message_csv, orderbook_csv)
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
        ob_job = pool.submit(_read_orderbook, ob_src, ob_file, meta)
        msg, ns, truncated = _read_messages(msg_src, msg_file)
        try:  # message-only work overlaps the orderbook's parse; its errors still come after the orderbook's
            prep, prep_error = _prepare_messages(msg, ns, instrument, date, msg_file), None
        except DataError as e:
            prep, prep_error = None, e
        levels, ob = ob_job.result()
    n = msg.num_rows
    if ob.num_rows != n:
        raise DataError(
            f"orderbook has {ob.num_rows} rows but the message file has {n}",
            file=ob_file,
            line=min(n, ob.num_rows) + 1,
        )

    if prep_error is not None:
        raise prep_error
    report = ValidationReport(source=msg_file, strict=strict)
    events = _build(prep, ob, levels, instrument, ob_file, report)
    if truncated:
        report.info["timestamps_truncated_to_ns"] = truncated
    report.info.update(rows=n, levels=levels, symbol=symbol, date=date.isoformat())
    return Events(events, instrument, report)


def _prepare_messages(msg, ns, instrument, date, msg_file):
    """Validate the message columns and find what needs no orderbook -> SimpleNamespace for _build."""
    n = msg.num_rows
    ts = _utc_ns(ns, date, msg_file)
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
    instrument.prices_from_scaled(np.where(priced & ~skip, raw_px, 0), PRICE_SCALE, where=msg_file)  # on tick?
    qty = instrument.qtys_from_scaled(np.where(priced, size, 0), 1, where=msg_file)

    # anomalies found vectorized
    found = []
    back = below_running_max(ts)
    if len(back):
        found.append((int(back[0]) + 1, OUT_OF_ORDER_TS, len(back),
                      f"{len(back)} rows earlier than the latest time seen before them"))
    halts = np.flatnonzero(status & (raw_px == -1))
    if len(halts):
        found.append((int(halts[0]) + 1, HALT, len(halts), f"{len(halts)} trading halt message(s)"))
    if skip.any():
        i = int(np.flatnonzero(skip)[0])
        found.append((i + 1, f"skipped:{SUBTICK_TRADE}", int(skip.sum()),
                      f"trade print at {raw_px[i]}/{PRICE_SCALE} is between ticks of {instrument.tick_size}"))
    return SimpleNamespace(ts=ts, typ=typ, oid=oid, raw_px=raw_px, qty=qty, direction=direction, skip=skip,
                           raw_tick=raw_tick, found=found, file=msg_file)


def _build(m, ob, N, instrument, ob_file, report):
    """Check the orderbook, run the replay on the prepared messages `m`, fill the report -> events."""
    raw_tick, found = m.raw_tick, m.found

    # orderbook columns in the file's order (ask px, ask size, bid px, bid size per level), validated
    blocks = _book_blocks(ob, N)
    _validate_book_rows(ob, blocks, N, raw_tick, ob_file)
    if instrument.lot_size != 1:  # sizes in lots (ask sizes first, then bid sizes, as errors go)
        cols = [_np(ob, c) for c in range(4 * N)]
        for c in [4 * j + 1 for j in range(N)] + [4 * j + 3 for j in range(N)]:
            cols[c] = instrument.qtys_from_scaled(cols[c], 1, where=ob_file)
        blocks = [cols]

    # the replay (C): live orders, synthetic liquidity, revealed depth, event layout
    scaled = instrument.tick_size * PRICE_SCALE
    mul, div = (1, int(scaled)) if scaled == scaled.to_integral_value() else (int(1 / scaled), 1)
    events, res = _replay(m.typ, m.oid, m.raw_px, m.qty, m.direction, m.ts, m.skip, blocks, N, raw_tick,
                          mul, div, report.strict, m.file)
    found.extend(_replay_anomalies(res))
    for line, reason, count, detail in sorted(found, key=lambda x: x[0]):
        report.anomaly(reason, line=line, count=count, detail=detail)
    report.info.update({k: getattr(res, k) for k in _STATS})
    return events


_STATS = ("unknown_from_synthetic", "unknown_after_forgetting_stale", "unknown_from_hidden_depth",
          "depth_revealed", "stale_levels_reset", "stale_orders_forgotten", "messages_on_forgotten_orders")


def _c_array(a, dtype, shape, keep):
    """`a` as a C-contiguous, aligned array of `dtype` and `shape` -> cdata pointer (kept alive in `keep`)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != shape:
        raise ValueError(f"replay input has shape {a.shape}, want {shape}")
    if a.ctypes.data % a.itemsize:
        a = a.copy()
    keep.append(a)
    return ffi.from_buffer("int64_t[]" if dtype == np.int64 else "uint8_t[]", a)


def _replay(typ, oid, raw_px, qty, direction, ts, skip, book, N, raw_tick, mul, div, strict, msg_file):
    """Run lob_lobster_replay over the messages and the orderbook `book` (row blocks, see _book_blocks)
    -> (EVENT_DTYPE array, lob_lobster_result).

    Output goes into a numpy buffer sized from a generous estimate; if the C
    side reports it too small, one retry with the exact size follows.
    """
    n = len(typ)
    keep = []
    inp = ffi.new("lob_lobster_input *")
    inp.n = n
    for field, a in (("type", typ), ("order_id", oid), ("raw_price", raw_px), ("qty", qty),
                     ("direction", direction), ("ts", ts)):
        setattr(inp, field, _c_array(a, np.int64, (n,), keep))
    inp.skip = _c_array(skip, np.uint8, (n,), keep)
    inp.book = _c_book(book, N, keep)[0]
    inp.raw_tick, inp.price_mul, inp.price_div, inp.strict = raw_tick, mul, div, int(bool(strict))
    res = ffi.new("lob_lobster_result *")
    cap = 2 * N + 2 + n + int(np.count_nonzero(typ == 4)) + n // 4 + 64
    for _ in range(2):
        out = np.empty(cap, dtype=EVENT_DTYPE)
        rc = lib.lob_lobster_replay(inp, ffi.cast("lob_event *", ffi.from_buffer(out)), cap, res)
        if rc != lib.LOB_ERR_CAPACITY:
            break
        cap = res.n_events
    line = res.error_row + 1 if res.error_row >= 0 else None
    if rc == lib.LOB_ERR_DUPLICATE_ORDER:
        raise DataError(f"order id {res.dup_id} added twice", file=msg_file, line=line)
    if rc == lib.LOB_ERR_NOMEM:
        raise MemoryError("LOBSTER replay: out of memory")
    if rc != lib.LOB_OK:
        raise DataError(f"replay rejected the input: {ERROR_NAMES.get(rc, rc)}", file=msg_file, line=line)
    m = res.n_events
    return (out[:m] if m * 4 >= cap * 3 else out[:m].copy()), res


def _replay_anomalies(res):
    """(line, reason, count, detail) of what the replay found, in the order the report lists them."""
    found = []
    if res.order_mismatch:
        found.append((res.order_mismatch_row + 1, ORDER_MISMATCH, res.order_mismatch,
                      f"{res.order_mismatch} messages name a known order at another side/price than its add "
                      f"(first: order {res.order_mismatch_id}); treated as unknown ids"))
    if res.seed_mismatch:
        found.append((1, SIZE_MISMATCH, 1, "message 1 adds more than orderbook row 1 shows"))
    first_mismatch = (f"order {res.size_mismatch_id}: message size {res.size_mismatch_qty}, "
                      f"tracked remaining {res.size_mismatch_remaining}")
    if res.stop_reason == lib.LOB_LOBSTER_STOP_SIZE_MISMATCH:  # strict: the run stopped there
        found.append((res.stop_row + 1, SIZE_MISMATCH, 1, first_mismatch))
        return found
    if res.size_mismatch:
        found.append((res.size_mismatch_row + 1, SIZE_MISMATCH, res.size_mismatch,
                      f"{res.size_mismatch} messages disagree with their order's tracked size "
                      f"(changed out of view); first: {first_mismatch}"))
    if res.removed:
        found.append((res.removed_row + 1, REMOVED_ORDER_ID, res.removed,
                      f"order {res.removed_id} (type {res.removed_type}) was already removed by its own "
                      f"messages; {res.removed} such messages, sizes taken from the level's synthetic liquidity"))
    if res.unknown_row >= 0:
        how = {k: getattr(res, k) for k in _STATS[:3]}
        total = sum(how.values()) or 1
        found.append((
            res.unknown_row + 1, UNKNOWN_ORDER_ID, total,
            f"order {res.unknown_id} (type {res.unknown_type}) was never added; {total} such cancels/executions "
            f"(orders resting before the start or outside the top levels), resolved: "
            + ", ".join(f"{v} {k[8:].replace('_', ' ')}" for k, v in how.items()),
        ))
    return found


def _book_blocks(ob, N):
    """The orderbook table as row blocks: per block, its 4 * N int64 columns.

    The blocks are the parser's chunks (zero-copy); columns are combined only
    if their chunks do not line up.
    """
    cols = [ob.column(c) for c in range(4 * N)]
    lens = [len(ch) for ch in cols[0].chunks]
    if any([len(ch) for ch in c.chunks] != lens for c in cols):
        return [[_np(ob, c) for c in range(4 * N)]]
    return [[c.chunk(b).to_numpy() for c in cols] for b, rows in enumerate(lens) if rows]


def _c_book(blocks, N, keep):
    """lob_lobster_book cdata for `blocks` (see _book_blocks); its memory is kept alive in `keep`."""
    rows = [len(b[0]) for b in blocks]
    if any(len(b) != 4 * N or any(len(c) != r for c in b) for b, r in zip(blocks, rows)):
        raise ValueError(f"orderbook blocks need {4 * N} columns of equal length")
    ptrs = [_c_array(c, np.int64, (r,), keep) for b, r in zip(blocks, rows) for c in b]
    book = ffi.new("lob_lobster_book *")
    book.levels, book.blocks = N, len(blocks)
    book.rows = c_rows = ffi.new("size_t[]", rows)
    book.columns = c_cols = ffi.new("const int64_t *[]", ptrs)
    keep += [c_rows, c_cols]
    return book


def _validate_book_rows(ob, blocks, N, raw_tick, ob_file):
    """Sizes >= 0; occupied levels positive, on the tick, strictly ordered, with no gap before them.

    The scan runs in C (lob_lobster_check_book); the first bad ask row is
    reported if there is one, else the first bad bid row.
    """
    keep = []
    book = _c_book(blocks, N, keep)
    bad_row, bad_side = ffi.new("int64_t *"), ffi.new("int *")
    rc = lib.lob_lobster_check_book(book, raw_tick, bad_row, bad_side)
    if rc == lib.LOB_OK:
        return
    if rc != lib.LOB_ERR_BAD_PRICE:
        raise DataError(f"orderbook check failed: {ERROR_NAMES.get(rc, rc)}", file=ob_file)
    i = int(bad_row[0])
    name, c0 = ("ask", 0) if bad_side[0] == lib.LOB_SIDE_ASK else ("bid", 2)
    raise DataError(
        f"malformed {name} levels (negative size, price off the tick, levels out of order or a gap)",
        file=ob_file,
        line=i + 1,
        detail=f"{name} prices {[ob.column(4 * j + c0)[i].as_py() for j in range(N)]} "
               f"sizes {[ob.column(4 * j + c0 + 1)[i].as_py() for j in range(N)]}",
    )


