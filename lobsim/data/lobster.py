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

Streaming: iter_lobster reads both files in blocks of whole lines (a few MB,
each zip member unpacked as it is read, the orderbook on a worker thread),
parses them in C and feeds them to a C replay (csrc/lobster.c,
lob_lobster_stream) that carries its state from block to block: the known
orders, the synthetic liquidity, the vendor's previous row and the running max
of times. The events do not depend on where the blocks or the chunks are cut,
and memory is bounded by the block and chunk sizes plus that state (about 40
bytes per distinct order id of the day). read_lobster is
collect(iter_lobster(...)) with one chunk.
"""
import collections
import contextlib
import datetime as _dt
import queue
import re
import struct
import threading
import zipfile
import zlib
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from lobsim._core import ERROR_NAMES, ffi, lib
from lobsim._types import EVENT_DTYPE
from lobsim.data._io import disk_position, fast_zlib, open_input, require_file
from lobsim.data.events import (
    DEFAULT_CHUNK_ROWS, HALT, MAX_CHUNK_ROWS, OUT_OF_ORDER_TS, UNKNOWN_ORDER_ID, ChunkedOutput, Events, collect,
)
from lobsim.errors import DataError
from lobsim.instrument import _EXACT, Instrument, _int_quotient

__all__ = ["read_lobster", "iter_lobster"]

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
BLOCK_BYTES = 1 << 21  # CSV bytes parsed per block (whole lines)
MAX_LINE_BYTES = 1 << 20  # a longer line is no LOBSTER row (an orderbook row of 10,000 levels is < 1 MiB)

_NY = ZoneInfo("America/New_York")
_NAME_RE = re.compile(
    r"^(?P<symbol>.+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<what>message|orderbook)_(?P<levels>\d+)\.csv$"
)
_MSG_MEMBER_RE = re.compile(r"_message_(\d+)\.csv$")
_OB_MEMBER_RE = re.compile(r"_orderbook_(\d+)\.csv$")
_INT_RE = re.compile(r"-?[0-9]+")
_TIME_RE = re.compile(r"[0-9]{1,6}(\.[0-9]+)?")
_PRICE_LIMIT = 1 << 61
_inflate = fast_zlib  # ISA-L's inflate and CRC-32 when isal is installed (see _Member)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, _inflate.error, OSError, EOFError, ValueError,
               RuntimeError)
_POOL, _POOL_SIZE = {}, 4  # parsed-row buffers kept for reuse (next blocks, next files), per column count


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def _parse_name(name):
    m = _NAME_RE.match(Path(name).name)
    return m.groupdict() if m else None


class _Member:
    """A stored or deflated zip member read as it is unpacked: read(n) -> up to n bytes (b"" at its end).

    Its size and CRC-32 are checked at the end (zipfile.BadZipFile if they
    differ). Inflate and CRC-32 are ISA-L's when the optional `isal` package
    is installed (about 3x zlib's inflate on LOBSTER message files, 10x its
    CRC), else zlib's. NotImplementedError for other compressions and
    encryption (zipfile then takes over).
    """

    _CHUNK = 1 << 18  # compressed bytes read at a time

    def __init__(self, path, info):
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 1:
            raise NotImplementedError
        self._fh = open(path, "rb")
        try:
            self._fh.seek(info.header_offset)
            head = self._fh.read(30)
            if len(head) != 30 or head[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            self._fh.seek(info.header_offset + 30 + name_len + extra_len)
        except BaseException:
            self._fh.close()
            raise
        self._info, self._left = info, info.compress_size
        deflated = info.compress_type == zipfile.ZIP_DEFLATED
        self._z = _inflate.decompressobj(-15) if deflated else None
        self._tail, self._crc, self._size, self._done = b"", 0, 0, False

    def consumed(self):
        return self._info.compress_size - self._left

    def read(self, n):
        parts, got = [], 0
        while got < n and not self._done:
            if not self._tail and self._left:
                self._tail = self._fh.read(min(self._CHUNK, self._left))
                if not self._tail:
                    raise EOFError(f"zip member {self._info.filename!r} is cut short")
                self._left -= len(self._tail)
            if self._z is None:
                data, self._tail = self._tail[:n - got], self._tail[n - got:]
            else:
                data = self._z.decompress(self._tail, n - got)
                self._tail = self._z.unconsumed_tail
            if data:
                parts.append(data)
                got += len(data)
                self._crc = _inflate.crc32(data, self._crc)
                self._size += len(data)
            elif not self._tail and not self._left:  # all input in, no more output
                self._done = True
                info = self._info
                if self._z is not None and not self._z.eof:
                    raise zipfile.BadZipFile(f"deflate stream of {info.filename!r} is cut short")
                if self._size != info.file_size or self._crc & 0xFFFFFFFF != info.CRC:
                    raise zipfile.BadZipFile(f"Bad CRC-32 or size for file {info.filename!r}")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self):
        self._fh.close()


class _Source:
    """One input file: a zip member (unpacked as it is read) or a plain / gzip file.

    `opened()` -> a context-managed binary stream (each call its own handle,
    so the two files can be read concurrently), `read(f, n)` reads from it
    naming the file in a DataError if the bytes cannot be read (bad zip CRC,
    corrupt gzip), `position(f)` -> bytes of the file on disk consumed so far
    (compressed bytes for a zip member or gzip file).
    """

    def __init__(self, path, member=None):
        self.path, self.member = path, member
        self.label = str(path) if member is None else f"{path}!{member}"
        self._what = "unreadable file" if member is None else "unreadable zip member"

    @contextlib.contextmanager
    def opened(self):
        with contextlib.ExitStack() as stack:
            try:
                if self.member is None:
                    f = stack.enter_context(open_input(self.path))
                else:
                    zf = stack.enter_context(zipfile.ZipFile(self.path))
                    try:
                        f = _Member(self.path, zf.getinfo(self.member))
                        stack.callback(f.close)
                    except NotImplementedError:
                        f = stack.enter_context(zf.open(self.member))
            except _ZIP_ERRORS as e:
                raise DataError(self._what, file=self.label, detail=str(e)) from None
            yield f

    def read(self, f, n):
        try:
            return f.read(n)
        except _ZIP_ERRORS as e:
            raise DataError(self._what, file=self.label, detail=str(e)) from None

    def position(self, f):
        if self.member is None:
            return disk_position(f)
        if isinstance(f, _Member):
            return f.consumed()
        try:  # a ZipExtFile: compressed bytes of the member left to read
            return int(f._orig_compress_size - f._compress_left)
        except (AttributeError, TypeError):
            return 0


def _load_inputs(message_csv, orderbook_csv):
    """Resolve the inputs -> (message source, orderbook source, base name of the message file)."""
    message_csv = Path(message_csv)
    require_file(message_csv)
    if zipfile.is_zipfile(message_csv):
        if orderbook_csv is not None:
            raise DataError("pass either a LOBSTER zip or two CSV paths, not a zip and a CSV", file=message_csv)
        try:
            with zipfile.ZipFile(message_csv) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        except _ZIP_ERRORS as e:
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
        return _Source(message_csv, msgs[0]), _Source(message_csv, obs[0]), Path(msgs[0]).name
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
    return _Source(message_csv), _Source(orderbook_csv), message_csv.name


# ---------------------------------------------------------------------------
# CSV blocks (parsed in C; Python only names the line of an error)
# ---------------------------------------------------------------------------
def _line_error(raw, no, ncols, time_first, file):
    """Raise the DataError for malformed CSV line number `no` (its bytes, without the newline)."""
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    if line.strip() == "":
        raise DataError("empty line", file=file, line=no)
    fields = line.split(",")
    if len(fields) != ncols:
        raise DataError(f"expected {ncols} columns, got {len(fields)}", file=file, line=no, detail=repr(line[:120]))
    for col, f in enumerate(fields):
        if time_first and col == 0:
            if not _TIME_RE.fullmatch(f):
                raise DataError(f"column 1: not a valid time: {f!r}", file=file, line=no,
                                detail="want seconds after midnight, up to 6 digits, with optional decimals")
        elif not _INT_RE.fullmatch(f):
            raise DataError(f"column {col + 1}: not a valid integer: {f!r}", file=file, line=no)
        elif not -(2**63) <= int(f) < 2**63:
            raise DataError(f"column {col + 1}: {f} does not fit a 64-bit integer", file=file, line=no)
    raise DataError("unreadable CSV line", file=file, line=no, detail=repr(line[:120]))


class _Blocks:
    """The rows of one LOBSTER CSV, parsed block by block.

    Iterate -> (int64 rows (n, ncols), times truncated, (min, max) of column
    0, first bad orderbook row of the block or -1, input bytes consumed up to
    the block's end). Reads BLOCK_BYTES at a time (never the whole file) and
    parses them in place (only a line cut by the block's end is copied);
    `rows` counts the rows read so far, `position()` the input bytes consumed
    (compressed bytes for a zip member or gzip file). A consumer done with a
    block's rows may hand them back with `recycle(rows)`: their memory then
    holds a later block, of this file or the next (fresh memory costs page
    faults; at most _POOL_SIZE buffers per column count are kept).
    """

    def __init__(self, src, ncols, time_first, raw_tick=None):
        self.src, self.file, self.ncols, self.time_first = src, src.label, ncols, time_first
        self.raw_tick = raw_tick  # orderbook: check each block's rows (lob_lobster_check_rows) as it is parsed
        self.rows, self._stream, self._final = 0, None, None
        self._free = _POOL.setdefault(ncols, collections.deque())
        self._res = ffi.new("lob_lobster_parsed *")

    def position(self):
        s = self._stream
        if self._final is not None:
            return self._final
        return 0 if s is None else self.src.position(s)

    def recycle(self, rows):
        if len(self._free) < _POOL_SIZE:
            self._free.append(rows.base if rows.base is not None else rows)

    def _buffer(self, rows):
        """An (at least rows, ncols) int64 array: a recycled one if one is large enough."""
        try:
            while True:
                buf = self._free.pop()
                if len(buf) >= rows:
                    return buf
        except IndexError:  # none left (another thread may pop too: no test-then-pop)
            return np.empty((rows + rows // 8, self.ncols), dtype=np.int64)

    def __iter__(self):
        src = self.src
        with src.opened() as f:
            self._stream = f
            try:
                carry, first = b"", True
                while True:
                    data = src.read(f, BLOCK_BYTES)
                    final = not data
                    if first and len(data) < BLOCK_BYTES and not data.strip():
                        raise DataError("empty file", file=self.file, line=1)
                    first = False
                    start = 0
                    if carry:  # complete the line the last block cut
                        nl = data.find(b"\n")
                        if nl < 0 and not final:
                            carry += data  # a line longer than a block
                            if len(carry) > MAX_LINE_BYTES:  # not a LOBSTER CSV: stop before reading it all
                                raise DataError(f"line longer than {MAX_LINE_BYTES:,} bytes: not a LOBSTER CSV row",
                                                file=self.file, line=self.rows + 1, detail=repr(carry[:60]))
                            continue
                        start = len(data) if nl < 0 else nl + 1
                    # rows: at most one per 2 * ncols - 1 bytes, plus the completed line (untouched memory is free)
                    out = self._buffer((len(data) - start) // (2 * self.ncols - 1) + 2)
                    parts = [self._parse(carry + data[:start], 0, final, out, 0)] if carry else []
                    n = parts[0][0] if parts else 0
                    parts.append(self._parse(data, start, final, out, n))
                    carry = data[start + parts[-1][1]:]
                    n += parts[-1][0]
                    if n:
                        rows, bounds = out[:n], [(lo, hi) for k, _, lo, hi in parts if k]
                        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
                        yield rows, self._truncated, (lo, hi), self._bad_row(rows), self.position()
                    if final:
                        return
            finally:
                self._final = src.position(f)

    def _parse(self, buf, start, final, out, row0):
        """Parse the whole lines of buf[start:] into out[row0:] -> (rows, bytes used, min, max of column 0).

        DataError at a malformed line. `self._truncated` gets the block's count of times truncated.
        """
        ncols, res = self.ncols, self._res
        rc = lib.lob_lobster_parse(ffi.from_buffer(buf) + start, len(buf) - start, int(final), ncols,
                                   int(self.time_first), ffi.cast("int64_t *", ffi.from_buffer(out)) + row0 * ncols,
                                   len(out) - row0, res)
        if rc != lib.LOB_OK:
            if rc != lib.LOB_ERR_CORRUPT:
                raise DataError(f"CSV parser failed: {ERROR_NAMES.get(rc, rc)}", file=self.file)
            at = start + res.consumed
            end = buf.find(b"\n", at)
            _line_error(buf[at:end if end >= 0 else len(buf)], self.rows + res.error_line + 1, ncols,
                        self.time_first, self.file)
        self.rows += res.rows
        self._truncated = (self._truncated if row0 else 0) + int(res.truncated)
        return res.rows, res.consumed, res.min0, res.max0

    def _bad_row(self, rows):
        if self.raw_tick is None:
            return -1
        bad_row, bad_side = ffi.new("int64_t *"), ffi.new("int *")
        rc = lib.lob_lobster_check_rows(ffi.cast("int64_t *", ffi.from_buffer(rows)), len(rows), self.ncols // 4,
                                        self.raw_tick, bad_row, bad_side)
        return -1 if rc == lib.LOB_OK else int(bad_row[0])


def _prefetch(blocks, depth=2):
    """Iterate `blocks` on a worker thread, `depth` items ahead (exceptions re-raised here, in order)."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        it = iter(blocks)
        try:
            for item in it:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((False, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="lobster-orderbook", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _levels_of(src, meta):
    """Levels of the orderbook file from its first line (checked against the file name's)."""
    with src.opened() as f:
        head = src.read(f, 1 << 16)
    if not head.strip():
        raise DataError("empty file", file=src.label, line=1)
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    ncols = first.count(b",") + 1
    if ncols % 4:
        raise DataError(f"orderbook rows need 4 columns per level, got {ncols}", file=src.label, line=1)
    levels = ncols // 4
    if "levels" in meta and int(meta["levels"]) != levels:
        raise DataError(f"file name says {meta['levels']} levels but rows have {levels}", file=src.label, line=1)
    return levels


# ---------------------------------------------------------------------------
# units and times
# ---------------------------------------------------------------------------
def _factor(unit, scale, what, where):
    """(mul, div): a value of `scale` units is value * mul or value / div of `unit` (exactly; one is 1)."""
    step = _EXACT.multiply(unit, Decimal(int(scale)))
    if step == step.to_integral_value():
        if step >= _PRICE_LIMIT:
            raise DataError(f"{what} unit {unit} is larger than any LOBSTER {what} (1/{scale} units below 2^61)",
                            file=where)
        return 1, int(step)
    try:
        factor = _int_quotient(Decimal(1), step)
    except OverflowError:
        factor = None
    if factor is None:
        raise DataError(f"{what} unit {unit} does not fit data scale 1/{scale}", file=where)
    return factor, 1


def _to_utc(ns, lo_ns, hi_ns, date, file=None):
    """In place: ns after local midnight (America/New_York wall clock) on `date`, in [lo_ns, hi_ns] -> UTC epoch ns.

    DataError when the result would not fit int64 ns (years before 1677 or after 2262).
    """
    hour = 3600 * 10**9
    midnight = (date - _dt.date(1970, 1, 1)).days * 86_400 * 10**9
    day = 86_400 * 10**9  # the NY offset is well under a day
    if not (-(2**63) <= midnight + lo_ns - day and midnight + hi_ns + day < 2**63):
        raise DataError(f"timestamps on {date} do not fit int64 nanoseconds since 1970", file=file)
    lo, hi = lo_ns // hour, hi_ns // hour
    base = _dt.datetime(date.year, date.month, date.day)
    try:
        table = np.array(  # UTC offset per wall-clock hour (NY switches on the hour)
            [int((base + _dt.timedelta(hours=h)).replace(tzinfo=_NY).utcoffset().total_seconds()) * 10**9
             for h in range(lo, hi + 1)],
            dtype=np.int64,
        )
    except OverflowError:
        raise DataError(f"timestamps on {date} are out of the supported date range", file=file) from None
    if (table == table[0]).all():
        ns += midnight - int(table[0])
    else:
        ns += midnight - table[ns // hour - lo]


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
    direction, empty file, row counts that differ, an order id added twice)
    raises DataError naming file and line (the first such line in file order).
    Anomalies (unknown ids, out-of-order times, halts, size mismatches) are
    counted in the report; `strict` raises on the first one.

    Cost: one streaming pass (see iter_lobster), O(rows); this is
    collect(iter_lobster(..., chunk_rows=MAX_CHUNK_ROWS)).
    """
    return collect(iter_lobster(message_csv, orderbook_csv, tick_size=tick_size, lot_size=lot_size, symbol=symbol,
                                date=date, strict=strict, chunk_rows=MAX_CHUNK_ROWS))


def iter_lobster(
    message_csv,
    orderbook_csv=None,
    *,
    tick_size="0.01",
    lot_size="1",
    symbol=None,
    date=None,
    strict=False,
    chunk_rows=DEFAULT_CHUNK_ROWS,
    progress=None,
):
    """read_lobster as a stream: Events chunks of exactly `chunk_rows` events (the last may be shorter).

    Same arguments and events as read_lobster (the chunks concatenate to its
    array, their reports merge into its report). Both files are read in
    blocks of whole lines; the replay's state (known orders, synthetic
    liquidity, the vendor's previous row, the latest time seen) carries over,
    so memory is bounded by the block and chunk sizes plus that state.
    `progress(bytes)`, if given, gets the input bytes consumed so far (both
    files, compressed bytes for a zip or gzip) before each chunk and at the end.
    Errors are raised when the reader reaches them: chunks before were valid.
    """
    msg_src, ob_src, base_name = _load_inputs(message_csv, orderbook_csv)
    msg_file, ob_file = msg_src.label, ob_src.label
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
    out = ChunkedOutput(chunk_rows, msg_file, strict, instrument)
    price_mul, price_div = _factor(instrument.tick_size, PRICE_SCALE, "price", msg_file)
    size_mul, size_div = _factor(instrument.lot_size, 1, "size", msg_file)
    levels = _levels_of(ob_src, meta)
    out.report.info.update(levels=levels, symbol=symbol, date=date.isoformat())
    stream = lib.lob_lobster_stream_new(levels, price_div, price_mul, price_div, size_mul, size_div, int(bool(strict)))
    if stream == ffi.NULL:
        raise MemoryError("LOBSTER replay: out of memory")
    stream = ffi.gc(stream, lib.lob_lobster_stream_free)
    ctx = _Context(instrument, msg_file, ob_file, levels, stream)

    msgs = _Blocks(msg_src, 6, True)
    obs = _Blocks(ob_src, 4 * levels, False, raw_tick=price_div)
    messages, book = _prefetch(msgs), _prefetch(obs)  # each file read and parsed on its own thread
    ob, off, bad = None, 0, -1  # the current orderbook block, the next row in it, its first bad row
    at = [0, 0]  # input bytes consumed up to the message block and the orderbook block being replayed

    def add(events):
        for chunk in out.add(events):
            if progress is not None:
                progress(at[0] + at[1])
            yield chunk

    try:
        for m, truncated, (lo, hi), _, at[0] in messages:
            _to_utc(m[:, 0], lo, hi, date, msg_file)
            if truncated:  # noted before the block's events are added (see ChunkedOutput)
                info = out.report.info
                info["timestamps_truncated_to_ns"] = info.get("timestamps_truncated_to_ns", 0) + truncated
            done, n = 0, len(m)
            while done < n:
                if ob is None or off == len(ob):
                    if ob is not None:
                        obs.recycle(ob)
                    ob, _, _, bad, at[1] = next(book, (None, 0, None, -1, at[1]))
                    off = 0
                    if ob is None:  # the orderbook ran out first: count the messages
                        for _ in messages:
                            pass
                        raise DataError(f"orderbook has {obs.rows} rows but the message file has {msgs.rows}",
                                        file=ob_file, line=min(obs.rows, msgs.rows) + 1)
                take = min(n - done, len(ob) - off)
                checked = not off <= bad < off + take
                events = ctx.feed(m[done:done + take], ob[off:off + take], checked, out)
                done += take
                off += take
                yield from add(events)
            msgs.recycle(m)
        if (ob is not None and off < len(ob)) or next(book, None) is not None:
            for _ in book:  # count the orderbook rows
                pass
            raise DataError(f"orderbook has {obs.rows} rows but the message file has {msgs.rows}", file=ob_file,
                            line=min(obs.rows, msgs.rows) + 1)
    finally:
        messages.close()
        book.close()
    if progress is not None:
        progress(msgs.position() + obs.position())
    yield from out.finish()


_STATS = ("unknown_from_synthetic", "unknown_after_forgetting_stale", "unknown_from_hidden_depth",
          "depth_revealed", "stale_levels_reset", "stale_orders_forgotten", "messages_on_forgotten_orders")


class _Context:
    """One replay: feeds blocks to the C stream, turns its findings into report entries and errors."""

    def __init__(self, instrument, msg_file, ob_file, levels, stream):
        self.instrument, self.msg_file, self.ob_file, self.levels = instrument, msg_file, ob_file, levels
        self.stream = stream
        self.res = ffi.new("lob_lobster_result *")
        self.rows = 0  # message rows fed so far

    def feed(self, m, ob, checked, out):
        """Replay message rows m with the vendor's rows ob (checked: they passed lob_lobster_check_rows)
        -> their events; notes anomalies in out.report."""
        n = len(m)
        cap = n + n // 2 + 2 * self.levels + 64
        ev = np.empty(cap, dtype=EVENT_DTYPE)
        res = self.res
        rc = lib.lob_lobster_stream_feed(self.stream, n, ffi.cast("int64_t *", ffi.from_buffer(m)),
                                         ffi.cast("int64_t *", ffi.from_buffer(ob)), int(checked),
                                         ffi.cast("lob_event *", ffi.from_buffer(ev)), cap, res)
        if rc != lib.LOB_OK:
            self._raise(rc, res, m, ob)
        total = res.n_events
        if total > cap:
            more = np.empty(total, dtype=EVENT_DTYPE)
            more[:cap] = ev
            lib.lob_lobster_stream_take(self.stream, ffi.cast("lob_event *", ffi.from_buffer(more[cap:])),
                                        total - cap)
            ev = more
        found = _anomalies(res, self.instrument)
        report = out.report
        for line, reason, count, detail in sorted(found, key=lambda x: x[0]):
            report.anomaly(reason, line=line, count=count, detail=detail)
        info = report.info
        info["rows"] = info.get("rows", 0) + n
        for k in _STATS:
            info[k] = info.get(k, 0) + getattr(res, k)
        self.rows += n
        return ev[:total]

    def _raise(self, rc, res, m, ob):
        if rc == lib.LOB_ERR_NOMEM:
            raise MemoryError("LOBSTER replay: out of memory")
        E = lib  # the LOB_LOBSTER_ERR_* codes
        err, row, v = res.error, res.error_row, res.error_value
        line = row + 1 if row >= 0 else None
        mf, inst = self.msg_file, self.instrument
        messages = {
            E.LOB_LOBSTER_ERR_TYPE: f"column 2: unknown message type {v}",
            E.LOB_LOBSTER_ERR_DIRECTION: f"column 6: bad direction {v} (want 1 or -1)",
            E.LOB_LOBSTER_ERR_SIZE: f"column 4: size {v} must be positive",
            E.LOB_LOBSTER_ERR_PRICE: f"column 5: price {v} must be positive",
            E.LOB_LOBSTER_ERR_PRICE_RANGE: f"column 5: price {v} is out of range",
            E.LOB_LOBSTER_ERR_ID: f"column 3: order id {v} must be positive",
            E.LOB_LOBSTER_ERR_ID_NEGATIVE: f"column 3: order id {v} must not be negative",
            E.LOB_LOBSTER_ERR_STATUS: f"column 5: halt price {v} (want -1, 0 or 1)",
            E.LOB_LOBSTER_ERR_DUPLICATE: f"order id {v} added twice",
            E.LOB_LOBSTER_ERR_OVERFLOW: "a level's total size overflows int64",
        }
        if err in messages:
            raise DataError(messages[err], file=mf, line=line)
        value = np.array([v], dtype=np.int64)
        if err in (E.LOB_LOBSTER_ERR_OFF_TICK, E.LOB_LOBSTER_ERR_PRICE_SCALE, E.LOB_LOBSTER_ERR_BOOK_SCALE):
            inst.prices_from_scaled(value, PRICE_SCALE, where=mf if err != E.LOB_LOBSTER_ERR_BOOK_SCALE
                                    else self.ob_file, line_offset=row + 1)
        if err in (E.LOB_LOBSTER_ERR_LOT, E.LOB_LOBSTER_ERR_BOOK_LOT):
            inst.qtys_from_scaled(value, 1, where=mf if err == E.LOB_LOBSTER_ERR_LOT else self.ob_file,
                                  line_offset=row + 1)
        if err == E.LOB_LOBSTER_ERR_BOOK:
            r = ob[row - self.rows]
            name, c0 = ("ask", 0) if res.error_col == lib.LOB_SIDE_ASK else ("bid", 2)
            N = self.levels
            raise DataError(
                f"malformed {name} levels (negative size, price off the tick, levels out of order or a gap)",
                file=self.ob_file, line=line,
                detail=f"{name} prices {[int(r[4 * j + c0]) for j in range(N)]} "
                       f"sizes {[int(r[4 * j + c0 + 1]) for j in range(N)]}",
            )
        raise DataError(f"replay rejected the input: {ERROR_NAMES.get(rc, rc)}", file=mf, line=line)


def _anomalies(res, instrument):
    """(line, reason, count, detail) of what one feed found."""
    found = []
    if res.out_of_order:
        found.append((res.out_of_order_row + 1, OUT_OF_ORDER_TS, res.out_of_order,
                      f"row earlier than the latest time seen before it (by "
                      f"{res.out_of_order_max - res.out_of_order_ts} ns); kept in file order"))
    if res.halts:
        found.append((res.halt_row + 1, HALT, res.halts, "trading halt message"))
    if res.skipped:
        found.append((res.skipped_row + 1, f"skipped:{SUBTICK_TRADE}", res.skipped,
                      f"trade print at {res.skipped_price}/{PRICE_SCALE} is between ticks of {instrument.tick_size}"))
    if res.seed_mismatch:
        found.append((1, SIZE_MISMATCH, 1, "message 1 adds more than orderbook row 1 shows"))
    if res.order_mismatch:
        found.append((res.order_mismatch_row + 1, ORDER_MISMATCH, res.order_mismatch,
                      f"order {res.order_mismatch_id} named at another side/price than its add; "
                      f"treated as an unknown id"))
    if res.size_mismatch:
        found.append((res.size_mismatch_row + 1, SIZE_MISMATCH, res.size_mismatch,
                      f"order {res.size_mismatch_id}: message size {res.size_mismatch_qty}, "
                      f"tracked remaining {res.size_mismatch_remaining} (changed out of view)"))
    if res.removed:
        found.append((res.removed_row + 1, REMOVED_ORDER_ID, res.removed,
                      f"order {res.removed_id} (type {res.removed_type}) was already removed by its own "
                      f"messages; its size is taken from the level's synthetic liquidity"))
    if res.unknown_row >= 0:
        total = sum(getattr(res, k) for k in _STATS[:3]) or 1
        found.append((res.unknown_row + 1, UNKNOWN_ORDER_ID, total,
                      f"order {res.unknown_id} (type {res.unknown_type}) was never added (it rested before "
                      f"the start or outside the top levels); taken from the level's synthetic liquidity"))
    return found
