"""Readers of Tardis-style CSV exports (and Binance's historical depth CSVs) into L2 events.

Formats (detected from the header, so `read_tardis` accepts any of them):

- ``incremental_book_L2``: exchange, symbol, timestamp, local_timestamp,
  is_snapshot, side (bid/ask), price, amount (absolute level size, 0 deletes).
  Timestamps are microseconds. A run of ``is_snapshot=true`` rows is one full
  snapshot: CLEAR, then its levels flagged SNAPSHOT, the last one BATCH_END
  (a run after non-snapshot rows is a resync, e.g. after a reconnect). Other
  rows form one batch per run of equal (timestamp, local_timestamp): Tardis
  writes one exchange message that way.
- ``trades``: exchange, symbol, timestamp, local_timestamp, id, side
  (buy/sell/unknown = aggressor), price, amount -> TRADE events.
- ``book_snapshot_N`` (``asks[i].price``, ``asks[i].amount``, ``bids[i]...``)
  and ``quotes`` (bid/ask price/amount): each row a full top-N book -> CLEAR +
  SET_LEVEL batch flagged SNAPSHOT (empty levels are left out).
- Binance historical depth CSV (symbol, timestamp (ms), first_update_id,
  last_update_id, side a/b, update_type snap/set, price, qty, pu), sequenced
  by Binance's futures rules (see `_iter_binance_depth_csv`).

All columns are read as text with pyarrow.csv, in blocks of a few MB
(`iter_tardis` streams: memory is bounded by the block and chunk sizes, not
the file), and converted in bulk (C column kernels, csrc/tardis.c, for
incremental_book_L2 and trades); prices and sizes are parsed exactly, so any
bad value raises a DataError naming the file, line and column (exponent
notation such as ``1e-05`` is accepted in plain ASCII with at most 3 exponent
digits; timestamps must be non-negative and fit int64 nanoseconds; a UTF-8
BOM is skipped). Within each file the rows are in venue order: an exchange
timestamp that goes backwards is raised to the previous one and reported
(out_of_order_timestamp); all events of a batch get the batch's last
timestamp. Book and trade streams are merged stably by ts_exch; at equal
ts_exch trades go first (a trade explains the level decrease published with
it, which is what the L2 queue model needs).

Instrument: given tick/lot sizes, else inferred (the finest decimal
resolution used) from the first block of each file (the first ~4 MB: for a
book file the snapshot and what follows it). A later price or size that is
not a whole number of that tick / lot raises a DataError naming file and line
and telling to pass tick_size= / lot_size=. ``report.info``'s
``price_decimals_on_wire`` / ``size_decimals_on_wire`` describe that sample.
"""
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import GZIP_MAGIC, Locator, open_input, require_file
from lobsim.data.events import (DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, NO_SNAPSHOT, SEQUENCE_GAP, ChunkedOutput,
                                ValidationReport, collect, monotone_ts, report_crossed)
from lobsim.errors import DataError
from lobsim.instrument import _int_quotient, infer_instrument, parse_decimal_strings

__all__ = ["read_tardis", "iter_tardis"]

_US = 1_000
_MS = 1_000_000
_INT64_MAX = 2**63 - 1
_BOM = b"\xef\xbb\xbf"
# exponent notation (e.g. '1e-05', as JavaScript prints small numbers) in strict ASCII; the exponent is capped
# at 3 digits so that expanding it to fixed point stays cheap (the result is range-checked afterwards)
_SCI_RE = r"^-?[0-9]+(\.[0-9]+)?[eE][-+]?[0-9]{1,3}$"
_SNAP = int(Flag.SNAPSHOT)
_END = int(Flag.BATCH_END)
_SET, _CLEAR, _TRADE = int(EventKind.SET_LEVEL), int(EventKind.CLEAR), int(EventKind.TRADE)
BLOCK_BYTES = 4 << 20  # CSV bytes parsed at a time (pyarrow block size)
_FILE_LINES = 1 << 40  # global line numbers: file k's line n is k * (_FILE_LINES + 1) + n (see Locator)

_L2_COLS = ("symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount")
_TRADE_COLS = ("symbol", "timestamp", "local_timestamp", "side", "price", "amount")
_QUOTE_COLS = ("symbol", "timestamp", "local_timestamp", "bid_price", "bid_amount", "ask_price", "ask_amount")
_BDEPTH_COLS = ("symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type", "price", "qty", "pu")
_SNAP_CHOICES = {"true": 1, "false": 0, "True": 1, "False": 0}
_L2_SIDES = {"bid": 1, "ask": -1}
_TRADE_SIDES = {"buy": 1, "sell": -1, "unknown": 0, "": 0}


def _lib():
    from lobsim._core import ffi, lib

    return ffi, lib


# -- CSV input -------------------------------------------------------------------


def _header(path):
    try:
        with open_input(path) as fh:
            first = fh.readline()
    except (OSError, EOFError) as e:
        raise DataError("cannot read (truncated or corrupt gzip?)", file=path, detail=str(e)) from None
    if first.startswith(_BOM):
        first = first[len(_BOM):]
    try:
        names = first.decode("utf-8").strip().split(",")
    except UnicodeDecodeError as e:
        raise DataError("not a text CSV (invalid UTF-8 in the header)", file=path, line=1, detail=str(e)) from None
    if not first.strip() or not all(names):
        raise DataError("no CSV header", file=path, line=1)
    dup = [n for i, n in enumerate(names) if n in names[:i]]
    if dup:
        raise DataError(f"duplicate column {dup[0]!r} in the header", file=path, line=1,
                        detail="header: " + ",".join(names))
    return names


def _csv_format(path):
    """Which CSV format the header says: 'incremental_book_L2', 'trades', 'book_snapshot',
    'quotes' or 'binance_depth'; DataError if none fits."""
    names = set(_header(path))
    if "is_snapshot" in names:
        return "incremental_book_L2"
    if "first_update_id" in names and "update_type" in names:
        return "binance_depth"
    if "asks[0].price" in names or "bids[0].price" in names:
        return "book_snapshot"
    if "bid_price" in names and "ask_price" in names:
        return "quotes"
    if {"side", "price", "amount"} <= names:
        return "trades"
    raise DataError("unrecognised CSV header", file=path, line=1, detail=",".join(sorted(names)))


class _CsvStream:
    """One CSV read block by block (pyarrow.csv.open_csv), every column as text.

    `next_block()` -> the next block as a `_Csv` (blank lines dropped, line
    numbers kept) or, with raw=True, the pyarrow RecordBatch with its first
    line; None at the end. The file is registered with the reader's Locator
    `where` (global line numbers). `position()` is the number of bytes of the
    file on disk consumed so far (compressed bytes for gzip).
    """

    def __init__(self, path, required, where, symbol=None, seen=None):
        self.path = Path(path)
        self.names = _header(self.path)
        missing = [c for c in required if c not in self.names]
        if missing:
            raise DataError(f"missing column {missing[0]!r}", file=self.path, line=1,
                            detail="header: " + ",".join(self.names))
        self.where = where
        self.base = where.add(self.path, _FILE_LINES)
        self.want = symbol
        self.seen = [] if seen is None else seen  # the symbol of the files read (shared by a reader's files)
        self.symbol = None  # this file's symbol
        self.rows = 0  # CSV rows read (blank ones included)
        self.blank_lines = 0
        self.done = False
        self._convert = pv.ConvertOptions(column_types={n: pa.string() for n in self.names},
                                          strings_can_be_null=False, quoted_strings_can_be_null=False)
        require_file(self.path)
        try:
            with open(self.path, "rb") as fh:
                gz = fh.read(2) == GZIP_MAGIC
            self._raw = pa.OSFile(str(self.path))
        except OSError as e:
            raise DataError(f"cannot open: {e.strerror or e}", file=self.path) from None
        stream = pa.CompressedInputStream(self._raw, "gzip") if gz else self._raw
        def open_csv():
            try:
                return pv.open_csv(stream, read_options=pv.ReadOptions(block_size=BLOCK_BYTES),
                                   parse_options=pv.ParseOptions(ignore_empty_lines=False),
                                   convert_options=self._convert)
            except pa.ArrowInvalid as e:  # a header (checked above) and no newline: no rows
                if "Empty CSV file" in str(e):
                    return None
                raise

        try:
            self._reader = self._call(open_csv)
        except BaseException:
            self._raw.close()
            raise

    def position(self):
        if self.done:
            return self._end
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self):
        if not self.done:
            self._end = self.position()
            self.done = True
        self._raw.close()

    def next_batch(self):
        """(RecordBatch, line of its first row) or None at the end."""
        if self.done:
            return None
        batch = None if self._reader is None else self._call(self._reader.read_next_batch)
        if batch is None:
            self.close()
            return None
        first = self.rows + 2  # the header is line 1
        self.rows += batch.num_rows
        return batch, first

    def next_block(self):
        """The next block as a `_Csv` (symbol selected), or None at the end."""
        got = self.next_batch()
        if got is None:
            return None
        batch, first = got
        csv = _Csv(self.path, {n: batch.column(n) for n in self.names}, first, self.where, self.base)
        self.blank_lines += csv.blank_lines
        self.select_symbol(csv)
        return csv

    def _call(self, fn):
        try:
            return fn()
        except StopIteration:
            return None
        except pa.ArrowInvalid as e:
            if "CSV parse error" not in str(e):
                if "UTF8" in str(e) or "UTF-8" in str(e):
                    raise DataError("invalid UTF-8", file=self.path, line=self._bad_utf8_line(),
                                    detail=str(e)) from None
                raise DataError("cannot read CSV", file=self.path, detail=str(e)) from None
        except (OSError, EOFError) as e:
            raise DataError("cannot read (truncated or corrupt gzip?)", file=self.path, detail=str(e)) from None
        raise self._malformed()

    def _malformed(self):
        """DataError naming the first malformed row (error path: re-reads the file single-threaded, as
        Latin-1, which decodes any byte, so a row that is also invalid UTF-8 cannot fail inside Arrow's
        callback (printed, not raised))."""
        bad = []

        def handler(row):
            bad.append(row)
            return "error"

        try:
            with open_input(self.path) as fh:
                reader = pv.open_csv(fh, read_options=pv.ReadOptions(use_threads=False, encoding="latin-1",
                                                                     block_size=BLOCK_BYTES),
                                     parse_options=pv.ParseOptions(ignore_empty_lines=False,
                                                                   invalid_row_handler=handler),
                                     convert_options=self._convert)
                for _ in reader:
                    pass
        except (pa.ArrowInvalid, OSError, EOFError):
            pass
        if bad:
            r = bad[0]
            text = r.text or ""
            raw = text.encode("latin-1")  # the row's bytes back
            try:
                raw.decode("utf-8")
                invalid = ""
            except UnicodeDecodeError:
                invalid, text = " (and invalid UTF-8)", repr(raw)
            return DataError(f"expected {r.expected_columns} fields, got {r.actual_columns}{invalid}",
                             file=self.path, line=r.number, detail=text[:80])
        return DataError("malformed CSV", file=self.path)

    def _bad_utf8_line(self):
        """Physical line number of the first line that is not valid UTF-8 (error path only), or None."""
        try:
            with open_input(self.path) as fh:
                for number, raw in enumerate(fh, 1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError:
                        return number
        except (OSError, EOFError):
            pass
        return None

    def check_symbol(self, found, csv=None):
        """`found`: the distinct symbols of a block (wanted symbol None), `csv` the block (to name the
        line of an error). Sets this file's symbol; DataError if the file holds several, or not the
        other file's."""
        found = [str(s) for s in found]

        def line_other_than(symbol):  # the first line of the block whose symbol is not `symbol`
            if csv is None:
                return None
            other = pc.not_equal(csv.cols["symbol"], symbol).to_numpy(zero_copy_only=False)
            return int(csv.line[np.argmax(other)]) if other.any() else None

        if self.symbol is not None:
            others = [s for s in found if s != self.symbol]
            if others:
                u = [self.symbol, *others]
                raise DataError(f"file holds several symbols ({', '.join(u[:5])}); pass symbol= to pick one",
                                file=self.path, line=line_other_than(self.symbol))
            return
        if len(found) > 1:
            first = csv.cols["symbol"][0].as_py() if csv is not None and csv.n else found[0]
            raise DataError(f"file holds several symbols ({', '.join(found[:5])}); pass symbol= to pick one",
                            file=self.path, line=line_other_than(first))
        if found:
            if self.seen and self.seen[0] != found[0]:
                raise DataError(f"symbol {found[0]} differs from {self.seen[0]} of the other file", file=self.path,
                                line=int(csv.line[0]) if csv is not None and csv.n else None)
            self.symbol = found[0]
            self.seen[:1] = [found[0]]

    def select_symbol(self, csv):
        """Keep the rows of the wanted symbol (or check the file holds one)."""
        if "symbol" not in csv.cols:
            return
        if self.want is None:
            self.check_symbol(pc.unique(csv.cols["symbol"]).to_pylist(), csv)
            return
        keep = pc.equal(pc.utf8_upper(csv.cols["symbol"]), self.want.upper()).to_numpy(zero_copy_only=False)
        if not keep.all():
            k = pa.array(keep)
            csv.cols = {n: c.filter(k) for n, c in csv.cols.items()}
            csv.line = csv.line[keep]
            csv.n = len(csv.line)
        self.seen[:1] = [self.want]


class _Csv:
    """The columns of one block of CSV rows (pyarrow string arrays), blank lines dropped, line numbers kept.

    `gline` are the rows' global line numbers, which the Locator `where` maps back to (file, line).
    """

    def __init__(self, path, cols, first_line, where, base):
        self.path = Path(path)
        blank = None
        for c in cols.values():
            e = pc.equal(c, "")
            blank = e if blank is None else pc.and_(blank, e)
        n = len(next(iter(cols.values()))) if cols else 0
        blank = blank.to_numpy(zero_copy_only=False) if blank is not None else np.zeros(n, bool)
        keep = ~blank
        self.blank_lines = int(blank.sum())
        self.line = (np.nonzero(keep)[0] + first_line).astype(np.int64)
        self.cols = {n: c.filter(pa.array(keep)) if self.blank_lines else c for n, c in cols.items()}
        self.n = len(self.line)
        self.where = where
        self.base = base

    @property
    def gline(self):
        """Global line number of each row (see Locator)."""
        return self.line + self.base

    def err(self, what, idx, column=None):
        i = int(idx)
        col = f" in column {column!r}" if column else ""
        value = "" if column is None else f": {str(self.str(column)[i])!r}"
        return DataError(f"{what}{col}{value}", file=self.path, line=int(self.line[i]))

    def str(self, name):
        return self.cols[name].to_numpy(zero_copy_only=False).astype(str)

    def int(self, name):
        c = self.cols[name]
        ok = pc.and_(pc.match_substring_regex(c, r"^-?[0-9]+$"), pc.less_equal(pc.utf8_length(c), 18))
        ok = ok.to_numpy(zero_copy_only=False)
        if not ok.all():
            raise self.err("not an integer", np.nonzero(~ok)[0][0], name)
        return pc.cast(c, pa.int64()).to_numpy()

    def timestamp(self, name, unit):
        """Integer epoch timestamp column in `unit` ns -> int64 ns; negative or out-of-range values
        (whose product would wrap int64) raise DataError naming the line and column."""
        v = self.int(name)
        bad = np.nonzero((v < 0) | (v > _INT64_MAX // unit))[0]
        if len(bad):
            i = bad[0]
            raise self.err("negative timestamp" if v[i] < 0 else "timestamp out of range", i, name)
        return v * unit

    def decimal(self, name, mask=None):
        """Exact (int64 mantissas, int8 decimals) of a decimal column (rows in `mask` only):
        value = mantissa / 10**decimals (here one scale for all, what parse_decimal_strings finds)."""
        s = self.str(name)
        idx = np.arange(self.n) if mask is None else np.nonzero(mask)[0]
        s = s[idx]
        sci = np.char.find(np.char.lower(s), "e") >= 0 if len(s) else np.zeros(0, bool)
        if sci.any():  # e.g. '1e-05': check the strict grammar, then rewrite those few exactly in fixed point
            where = np.nonzero(sci)[0]
            ok = pc.match_substring_regex(pa.array(s[where], pa.string()), _SCI_RE).to_numpy(zero_copy_only=False)
            if not ok.all():
                raise self.err("not a decimal number", idx[where[np.argmin(ok)]], name)
            s = s.astype(object)
            for i in where:
                s[i] = format(Decimal(s[i]), "f")
            s = s.astype(str)
        try:
            scaled, scale = parse_decimal_strings(s, line_offset=0)
        except DataError as e:
            if e.line is not None:
                raise self.err(e.reason.split(":")[0] or "not a decimal number", idx[e.line], name) from None
            i = _range_culprit(s)
            if i is not None:
                raise self.err(e.reason, idx[i], name) from None
            raise DataError(f"column {name!r}: {e.reason}", file=self.path) from None
        return scaled, np.full(len(scaled), len(str(scale)) - 1, np.int8)

    def choice(self, name, mapping):
        """Map a text column through `mapping` (str -> int); DataError on any other value."""
        c = self.cols[name]
        out = np.zeros(self.n, np.int64)
        ok = np.zeros(self.n, bool)
        for k, v in mapping.items():
            m = pc.equal(c, k).to_numpy(zero_copy_only=False)
            out[m] = v
            ok |= m
        if not ok.all():
            i = int(np.nonzero(~ok)[0][0])
            raise DataError(f"column {name!r}: unexpected value {c[i].as_py()!r} (expected one of {sorted(mapping)})",
                            file=self.path, line=int(self.line[i]))
        return out


def _range_culprit(s):
    """Index of the first (grammatical) decimal string that cannot share an int64 scale with the
    others: more than 18 fractional digits, or too many digits at the column's scale; else None."""
    if not len(s):
        return None
    dot = np.char.find(s, ".")
    length = np.char.str_len(s)
    frac = np.where(dot >= 0, length - dot - 1, 0)
    whole = np.where(dot >= 0, dot, length)
    bad = np.nonzero(frac > 18)[0]
    if len(bad):
        return int(bad[0])
    bad = np.nonzero(whole + frac.max() > 18)[0]
    return int(bad[0]) if len(bad) else None


def _arrow_strings(arr):
    """(int32 offsets[n + 1], data buffer) of an Arrow string array (its slice offset applied)."""
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], np.int32, len(arr) + 1, arr.offset * 4) if len(arr) else np.zeros(1, np.int32)
    data = bufs[2] if bufs[2] is not None and bufs[2].size else b"\0"
    return off, data


def _ptr(ffi, ctype, a):
    return ffi.cast(ctype, ffi.from_buffer(a))


def _ptrs(ffi, off, data):
    return _ptr(ffi, "int32_t *", off), ffi.cast("uint8_t *", ffi.from_buffer(data))


def _positive(csv, name, parsed, what, allow_zero=False, mask=None):
    vals = parsed[0]
    bad = np.nonzero(vals < 0 if allow_zero else vals <= 0)[0]
    if len(bad):
        idx = np.arange(csv.n) if mask is None else np.nonzero(mask)[0]
        raise csv.err(f"{what} must be {'non-negative' if allow_zero else 'positive'}", idx[bad[0]], name)


# -- exact units -------------------------------------------------------------------------


class _Units:
    """Exact ticks (or lots) of values given as (mantissa, decimals): one C pass (tardis_units).

    For each number of decimals f the unit is either a multiple of 10**-f (divide the mantissa) or finer
    (multiply): the rules of Instrument._scaled_to_units, whose message names a value that does not convert.
    """

    def __init__(self, inst, field, inferred):
        price = field == "price"
        unit = inst.tick_size if price else inst.lot_size
        self.fn = inst.prices_from_scaled if price else inst.qtys_from_scaled
        self.name = "tick_size" if price else "lot_size"
        self.inferred = inferred
        self.div = np.zeros(19, np.int64)
        self.mul = np.zeros(19, np.int64)
        for f in range(19):
            step = unit.scaleb(f)
            if step == step.to_integral_value():
                if step <= _INT64_MAX:
                    self.div[f] = int(step)
                continue
            try:
                q = _int_quotient(Decimal(1), step)
            except OverflowError:
                q = None
            if q is not None and q <= _INT64_MAX:
                self.mul[f] = q

    def __call__(self, mant, fd, path, column, lines):
        ffi, lib = _lib()
        out = np.empty(len(mant), np.int64)
        if not len(mant):
            return out
        bad = lib.tardis_units(_ptr(ffi, "int64_t *", mant), _ptr(ffi, "int8_t *", fd), len(mant),
                               _ptr(ffi, "int64_t *", self.div), _ptr(ffi, "int64_t *", self.mul),
                               _ptr(ffi, "int64_t *", out))
        if bad < 0:
            return out
        try:
            self.fn(mant[bad:bad + 1], 10 ** int(fd[bad]), line_offset=0)
            reason = f"value {mant[bad]}e-{fd[bad]} does not convert"  # not reached: fn raises
        except DataError as e:
            reason = e.reason
        detail = None
        if self.inferred:
            detail = (f"the {self.name} was inferred from the start of the data; pass {self.name}= "
                      f"(the instrument's true {self.name.replace('_', ' ')}) to read this file")
        raise DataError(f"column {column!r}: {reason}", file=path, line=int(lines[bad]), detail=detail)


def _sample(mant, fd, path, lines):
    """(mant, fd) values -> [(scaled, scale)] at their finest scale, for infer_instrument."""
    if not len(mant):
        return []
    top = int(fd.max())
    mult = (10 ** (top - fd.astype(np.int64))).astype(np.int64)
    over = np.flatnonzero(np.abs(mant) > _INT64_MAX // mult)
    if len(over):
        i = int(over[0])
        raise DataError(f"decimal value {Decimal(int(mant[i])).scaleb(-int(fd[i]))} cannot share one int64 scale "
                        f"(10^{top}) with the other values", file=path, line=int(lines[i]),
                        detail="pass tick_size= and lot_size=")
    return [(mant * mult, 10**top)]


class _Choices:
    """A str -> int8 mapping laid out for tardis_choice."""

    def __init__(self, mapping):
        self.mapping = mapping
        keys = [k.encode() for k in mapping]
        self.off = np.cumsum([0] + [len(k) for k in keys]).astype(np.int32)
        self.data = b"".join(keys) or b"\0"
        self.values = np.array(list(mapping.values()), np.int8)


_SNAP_C, _L2_SIDES_C, _TRADE_SIDES_C = _Choices(_SNAP_CHOICES), _Choices(_L2_SIDES), _Choices(_TRADE_SIDES)


class _Fast:
    """C conversions of one RecordBatch's columns; each returns None when a row is refused
    (the caller then takes the exact, slower path for the block)."""

    def __init__(self, batch):
        self.batch = batch
        self.n = batch.num_rows
        self.ffi, self.lib = _lib()

    def col(self, name):
        return _ptrs(self.ffi, *_arrow_strings(self.batch.column(name)))

    def ints(self, name, unit):
        out = np.empty(self.n, np.int64)
        ok = self.lib.tardis_ints(*self.col(name), self.n, _INT64_MAX // unit, unit, _ptr(self.ffi, "int64_t *", out))
        return out if ok < 0 else None

    def choice(self, name, ch):
        out = np.empty(self.n, np.int8)
        ok = self.lib.tardis_choice(*self.col(name), self.n, _ptr(self.ffi, "int32_t *", ch.off),
                                    self.ffi.cast("uint8_t *", self.ffi.from_buffer(ch.data)), len(ch.values),
                                    _ptr(self.ffi, "int8_t *", ch.values), _ptr(self.ffi, "int8_t *", out))
        return out if ok < 0 else None

    def decimals(self, name, positive):
        mant, fd = np.empty(self.n, np.int64), np.empty(self.n, np.int8)
        ok = self.lib.tardis_decimals(*self.col(name), self.n, 1 if positive else 0, _ptr(self.ffi, "int64_t *", mant),
                                      _ptr(self.ffi, "int8_t *", fd))
        return (mant, fd) if ok < 0 else None

    def symbol(self, src):
        """True if every row has the file's (or the wanted) symbol; sets the file's symbol."""
        if "symbol" not in src.names or not self.n:
            return True
        arr = self.batch.column("symbol")
        s0 = arr[0].as_py()
        if src.want is None:
            if src.symbol is None and src.seen and src.seen[0] != s0:
                return False
            target = src.symbol or s0
        elif s0.upper() != src.want.upper():
            return False
        else:
            target = s0
        t = target.encode()
        if self.lib.tardis_all_equal(*self.col("symbol"), self.n, self.ffi.from_buffer(t or b"\0"), len(t)) >= 0:
            return False
        if src.want is None:
            src.check_symbol([s0])
        else:
            src.seen[:1] = [src.want]
        return True


class _Rows:
    """Parsed rows of one block: int64 ns times, sides, exact (mantissa, decimals) prices and sizes,
    line numbers in the file."""

    def __init__(self, line, ts, lts, side, price, amount, snap=None):
        self.line, self.ts, self.lts, self.side = line, ts, lts, side
        self.price, self.amount, self.snap = price, amount, snap
        self.n = len(line)


# -- streams of events ---------------------------------------------------------------------


def _add(info, key, value):
    info[key] = info.get(key, 0) + int(value)


def _concat(a, b):
    return b if not len(a) else np.concatenate([a, b])


class _Stream:
    """One input file turned into events as it is read, in ts_exch order.

    `pull()` reads and converts the next block; the events ready to be merged
    are in `ev` / `ln` (their global line numbers); no later event of this file
    has a ts_exch below `hi`; `done` at the end of the file. `rank` orders
    streams at equal ts_exch (trades 0 before book 1).
    """

    rank = 1
    what = "row"

    def __init__(self, out):
        self.out = out
        self.hi = -1
        self.done = False
        self.ev = np.zeros(0, EVENT_DTYPE)
        self.ln = np.zeros(0, np.int64)
        self.queue = []
        self.ts_max = None
        self.px = self.qty = None  # _Units, set once the instrument is known

    # subclasses: read() -> parsed block or None at the end; convert(block); finish(); samples(block)
    def sample(self):
        """Read ahead until a block holds rows (or the file ends); -> (prices, sizes) lists of (scaled, scale)."""
        prices, sizes = [], []
        while True:
            blk = self.read()
            if blk is None:
                break
            self.queue.append(blk)
            p, q = self.samples(blk)
            prices += p
            sizes += q
            if blk.n:
                break
        return prices, sizes

    def pull(self):
        blk = self.queue.pop(0) if self.queue else (None if self.done else self.read())
        if blk is None:
            self.finish()
            self.done = True
            return
        self.convert(blk)

    def take(self, n):
        ev, ln = self.ev[:n], self.ln[:n]
        self.ev, self.ln = self.ev[n:], self.ln[n:]
        return ev, ln

    def ready(self, ev, ln):
        self.ev = _concat(self.ev, ev)
        self.ln = _concat(self.ln, ln)

    def monotone(self, ts, gl):
        """ts raised to the running max of the file (carried across blocks), reported."""
        rep = self.out.report
        if self.ts_max is None:
            fixed = monotone_ts(ts, rep, gl, self.where, self.what)
        elif len(ts):
            fixed = monotone_ts(np.r_[self.ts_max, ts], rep, np.r_[0, gl], self.where, self.what)[1:]
        else:
            fixed = ts
        if len(fixed):
            self.ts_max = int(fixed[-1])
            self.hi = max(self.hi, self.ts_max)
        return fixed

    def position(self):
        return self.src.position()

    def close(self):
        self.src.close()


class _CsvRowStream(_Stream):
    """A Tardis incremental_book_L2 or trades CSV: C fast path, exact slow path per block."""

    def __init__(self, out, path, required, where, symbol, seen):
        super().__init__(out)
        self.src = _CsvStream(path, required, where, symbol, seen)
        self.where = where
        self.path = self.src.path

    def read(self):
        got = self.src.next_batch()
        if got is None:
            return None
        batch, first = got
        rows = self.fast(batch, first)
        if rows is None:
            csv = _Csv(self.path, {n: batch.column(n) for n in self.src.names}, first, self.where, self.src.base)
            self.src.blank_lines += csv.blank_lines
            self.src.select_symbol(csv)
            rows = self.slow(csv)
            self.count(rows, csv.blank_lines, csv)
        else:
            self.count(rows, 0, batch)
        return rows

    def samples(self, rows):
        return (_sample(*rows.price, self.path, rows.line), _sample(*rows.amount, self.path, rows.line))

    @staticmethod
    def rows(csv, side, zero_amount_ok, snap=None):
        """The exact (slow) path's checks after the side column, in the order the columns are checked."""
        ts = csv.timestamp("timestamp", _US)
        lts = csv.timestamp("local_timestamp", _US)
        px = csv.decimal("price")
        qty = csv.decimal("amount")
        _positive(csv, "price", px, "price")
        _positive(csv, "amount", qty, "amount", allow_zero=zero_amount_ok)
        return _Rows(csv.line, ts, lts, side.astype(np.int8), px, qty, snap)

    def units(self, rows, price_col, amount_col):
        return (self.px(*rows.price, self.path, price_col, rows.line),
                self.qty(*rows.amount, self.path, amount_col, rows.line))


class _BookL2(_CsvRowStream):
    """incremental_book_L2: batches (a snapshot run, or a run of equal (timestamp, local_timestamp)) may
    span blocks: the last batch of a block waits for the next block (or the end)."""

    what = "book row"

    def __init__(self, out, path, where, symbol, seen):
        super().__init__(out, path, _L2_COLS, where, symbol, seen)
        self.pending = None  # dict of row arrays of the batch not known to be complete
        self.seen_snapshot = False
        self.pre_snapshot = 0
        self.first_line = None
        self.exchange = "exchange" in self.src.names

    def fast(self, batch, first):
        f = _Fast(batch)
        if not f.symbol(self.src):
            return None
        ts, lts = f.ints("timestamp", _US), f.ints("local_timestamp", _US)
        snap, side = f.choice("is_snapshot", _SNAP_C), f.choice("side", _L2_SIDES_C)
        price, amount = f.decimals("price", True), f.decimals("amount", False)
        if any(x is None for x in (ts, lts, snap, side, price, amount)):
            return None
        return _Rows(np.arange(first, first + f.n, dtype=np.int64), ts, lts, side, price, amount, snap.astype(bool))

    def slow(self, csv):
        snap = csv.choice("is_snapshot", _SNAP_CHOICES).astype(bool)
        return self.rows(csv, csv.choice("side", _L2_SIDES), True, snap)

    def count(self, rows, blank, src):
        info = self.out.report.info
        _add(info, "book_rows", rows.n)
        if blank:
            _add(info, "book_blank_lines", blank)
        if self.exchange and rows.n:
            col = src.cols["exchange"] if isinstance(src, _Csv) else src.column("exchange")
            info["exchange"] = str(col[0].as_py())
            self.exchange = False  # the first row's, once

    def convert(self, rows):
        gl = rows.line + self.src.base
        ts = self.monotone(rows.ts, gl)
        px, qty = self.units(rows, "price", "amount")
        new = {"ts": ts, "lts": rows.lts, "snap": rows.snap, "side": rows.side, "px": px, "qty": qty,
               "line": rows.line}
        p = self.pending
        self.pending = new if p is None else {k: _concat(p[k], new[k]) for k in p}
        self.batches(final=False)

    def finish(self):
        if self.pending is not None:
            self.batches(final=True)
        info = self.out.report.info
        for k in ("book_rows", "snapshots", "book_batches"):
            _add(info, k, 0)
        if not self.seen_snapshot and self.pre_snapshot:
            self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=self.first_line, count=self.pre_snapshot,
                                    detail="no snapshot rows: the book holds only levels the updates touched")

    def batches(self, final):
        r = self.pending
        n = len(r["ts"])
        if not n:
            return
        snap, ts, lts = r["snap"], r["ts"], r["lts"]
        new_batch = np.ones(n, bool)
        new_batch[1:] = (snap[1:] != snap[:-1]) | (~snap[1:] & ((ts[1:] != ts[:-1]) | (lts[1:] != lts[:-1])))
        cut = n if final else int(np.flatnonzero(new_batch)[-1])
        self.pending = {k: v[cut:] for k, v in r.items()} if cut < n else None
        if cut:
            self.events({k: v[:cut] for k, v in r.items()}, new_batch[:cut])

    def events(self, r, new_batch):
        """Complete batches -> events (CLEAR before each snapshot run)."""
        n = len(r["ts"])
        snap = r["snap"]
        last = np.r_[new_batch[1:], True]
        any_snap = bool(snap.any())
        info = self.out.report.info
        _add(info, "book_batches", np.count_nonzero(last))
        if not self.seen_snapshot:
            if self.first_line is None:
                self.first_line = int(r["line"][0])
            self.pre_snapshot += int(np.argmax(snap)) if any_snap else n
            if any_snap:
                self.seen_snapshot = True
                if self.pre_snapshot:
                    self.out.report.anomaly(NO_SNAPSHOT, file=self.path, line=self.first_line,
                                            count=self.pre_snapshot,
                                            detail="book rows before the first snapshot (the book is partial until it)")
        gl = r["line"] + self.src.base
        if not any_snap:  # batches are runs of equal (timestamp, local_timestamp): no time to spread
            _add(info, "snapshots", 0)
            ev = np.zeros(n, EVENT_DTYPE)
            ev["kind"] = _SET
            ev["ts_exch"] = r["ts"]
            ev["ts_local"] = r["lts"]
            ev["side"] = r["side"]
            ev["price"] = r["px"]
            ev["qty"] = r["qty"]
            ev["flags"] = last.view(np.uint8) * np.uint16(_END)
            self.ready(ev, gl)
            return
        # a snapshot run's rows may differ in time: every row gets its batch's last time
        ends = np.flatnonzero(last)
        batch = np.cumsum(new_batch) - 1
        bts = r["ts"][ends][batch]
        blts = r["lts"][ends][batch]
        snap_start = snap & new_batch
        _add(info, "snapshots", np.count_nonzero(snap_start))
        # position of each row in the output: rows shift by the CLEARs inserted before them
        shift = np.cumsum(snap_start)
        pos = np.arange(n) + shift
        ev = np.zeros(n + int(shift[-1]), EVENT_DTYPE)
        ev["kind"] = _SET
        ev["ts_exch"][pos] = bts
        ev["ts_local"][pos] = blts
        ev["side"][pos] = r["side"]
        ev["price"][pos] = r["px"]
        ev["qty"][pos] = r["qty"]
        ev["flags"][pos] = np.where(snap, _SNAP, 0) | np.where(last, _END, 0)
        line = np.empty(len(ev), np.int64)
        line[pos] = gl
        cpos = pos[snap_start] - 1
        ev["ts_exch"][cpos] = bts[snap_start]
        ev["ts_local"][cpos] = blts[snap_start]
        ev["kind"][cpos] = _CLEAR
        ev["flags"][cpos] = _SNAP
        line[cpos] = gl[snap_start]
        self.ready(ev, line)


class _Trades(_CsvRowStream):
    rank = 0
    what = "trade"

    def __init__(self, out, path, where, symbol, seen):
        super().__init__(out, path, _TRADE_COLS, where, symbol, seen)

    def fast(self, batch, first):
        f = _Fast(batch)
        if not f.symbol(self.src):
            return None
        side = f.choice("side", _TRADE_SIDES_C)
        ts, lts = f.ints("timestamp", _US), f.ints("local_timestamp", _US)
        price, amount = f.decimals("price", True), f.decimals("amount", True)
        if any(x is None for x in (ts, lts, side, price, amount)):
            return None
        return _Rows(np.arange(first, first + f.n, dtype=np.int64), ts, lts, side, price, amount)

    def slow(self, csv):
        return self.rows(csv, csv.choice("side", _TRADE_SIDES), False)

    def count(self, rows, blank, src):
        info = self.out.report.info
        _add(info, "trades", rows.n)
        if blank:
            _add(info, "trade_blank_lines", blank)
        unknown = int(np.count_nonzero(rows.side == 0))
        if unknown:
            _add(info, "trades_unknown_side", unknown)

    def convert(self, rows):
        gl = rows.line + self.src.base
        ts = self.monotone(rows.ts, gl)
        px, qty = self.units(rows, "price", "amount")
        ev = np.zeros(rows.n, EVENT_DTYPE)
        ev["ts_exch"] = ts
        ev["ts_local"] = rows.lts
        ev["side"] = rows.side
        ev["kind"] = _TRADE
        ev["price"] = px
        ev["qty"] = qty
        self.ready(ev, gl)

    def finish(self):
        _add(self.out.report.info, "trades", 0)


# -- driving the streams ----------------------------------------------------------------------


class _Feed:
    """Where a streaming reader puts its events: counts them (info "events"), runs the crossed-book check
    on a LevelBook carried across blocks, and feeds the ChunkedOutput `out`, calling progress(position())
    once per chunk and at the end. The last event is held back until `finish`, so what the reader notes at
    the very end still reaches a chunk (ChunkedOutput.finish yields nothing when it holds nothing)."""

    def __init__(self, out, where, progress, position, check_crossed=True):
        from lobsim.book import LevelBook

        self.out, self.where, self.progress, self.position = out, where, progress, position
        self.lb = LevelBook() if check_crossed else None
        self.last = None

    def add(self, ev, lines):
        if not len(ev):
            return
        out = self.out
        _add(out.report.info, "events", len(ev))
        if self.lb is not None:
            tmp = ValidationReport(source=out.report.source, strict=out.report.strict)
            report_crossed(ev, lines, tmp, self.where, book=self.lb)
            out.report.merge(tmp)
        held, self.last = self.last, ev[-1:]
        if held is not None:
            yield from self._chunks(out.add(held))
        yield from self._chunks(out.add(ev[:-1]))

    def finish(self):
        _add(self.out.report.info, "events", 0)
        if self.last is not None:
            yield from self._chunks(self.out.add(self.last))
            self.last = None
        yield from self._chunks(self.out.finish())
        if self.progress is not None:
            self.progress(self.position())
        self.close()

    def close(self):
        if self.lb is not None:
            self.lb.close()
            self.lb = None

    def _chunks(self, chunks):
        for chunk in chunks:
            if self.progress is not None:
                self.progress(self.position())
            yield chunk


def _drive(out, streams, where, symbol, tick_size, lot_size, progress, check_crossed=True):
    """Infer the instrument from the first block of each stream, then merge the streams' events
    (stably by (ts_exch, rank)) and yield them as chunks (see _Feed)."""

    def position():
        return sum(s.position() for s in streams)

    try:
        prices, sizes = [], []
        for s in streams:
            p, q = s.sample()
            prices += p
            sizes += q
        seen = next((s.src.seen for s in streams if getattr(s, "src", None) is not None), [])
        sym = symbol or (seen[0] if seen else None)
        inst = infer_instrument(sym, tick_size, lot_size, prices, sizes, out.report.info)
        out.instrument = inst
        for s in streams:
            s.px = _Units(inst, "price", tick_size is None)
            s.qty = _Units(inst, "qty", lot_size is None)
        feed = _Feed(out, where, progress, position, check_crossed)
        try:
            while True:
                live = [s for s in streams if not s.done]
                if not live:
                    break
                min(live, key=lambda s: (s.hi, -s.rank)).pull()
                if len(streams) == 1:
                    yield from feed.add(*streams[0].take(len(streams[0].ev)))
                    continue
                book, trades = streams
                nb = len(book.ev) if trades.done else int(np.searchsorted(book.ev["ts_exch"], trades.hi, "left"))
                nt = len(trades.ev) if book.done else int(np.searchsorted(trades.ev["ts_exch"], book.hi, "right"))
                (be, bl), (te, tl) = book.take(nb), trades.take(nt)
                if len(be) and len(te):
                    ev, ln = np.concatenate([be, te]), np.concatenate([bl, tl])
                    rank = np.r_[np.ones(len(be), np.int8), np.zeros(len(te), np.int8)]
                    order = np.lexsort((rank, ev["ts_exch"]))
                    ev, ln = ev[order], ln[order]
                else:
                    ev, ln = (be, bl) if len(be) else (te, tl)
                yield from feed.add(ev, ln)
            yield from feed.finish()
        finally:
            feed.close()
    finally:
        for s in streams:
            s.close()


# -- incremental_book_L2 + trades --------------------------------------------------


def read_tardis(incremental_book_l2_csv, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None,
                strict=False):
    """Tardis incremental_book_L2 CSV (+ optional trades CSV) -> `Events` of L2 events.

    The first file may also be a book_snapshot_N, quotes, trades or Binance
    depth CSV (detected from its header); None reads trades only. See the
    module docstring for batching, snapshots, clocks and ordering. One code
    path with `iter_tardis` (the whole input as one chunk).
    """
    return collect(iter_tardis(incremental_book_l2_csv, trades_csv, symbol=symbol, tick_size=tick_size,
                               lot_size=lot_size, strict=strict, chunk_rows=MAX_CHUNK_ROWS))


def iter_tardis(incremental_book_l2_csv, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None,
                strict=False, chunk_rows=DEFAULT_CHUNK_ROWS, progress=None):
    """`read_tardis` as a stream: yields `Events` chunks of exactly `chunk_rows` events (the last may be
    shorter; at least one chunk), each with the report of what was noted since the previous chunk.

    The CSVs are read in blocks of BLOCK_BYTES; the reader's state (a batch
    or snapshot run not yet complete, the running max of each file's
    timestamps, the merge position of the book and trades files, the book of
    the crossed-book check) is carried across blocks and chunks, so the
    concatenated chunks equal `read_tardis` exactly and memory is bounded by
    the block and chunk sizes. `progress(bytes)`, if given, is called with the
    bytes of the input files (as stored on disk) consumed so far.
    """
    fmt = None if incremental_book_l2_csv is None else _csv_format(incremental_book_l2_csv)
    opts = {"symbol": symbol, "tick_size": tick_size, "lot_size": lot_size, "strict": strict,
            "chunk_rows": chunk_rows, "progress": progress}
    if fmt == "binance_depth":
        if trades_csv is not None:
            raise ValueError("trades_csv is not supported with a Binance depth CSV")
        yield from _iter_binance_depth_csv(incremental_book_l2_csv, **opts)
        return
    if fmt in ("book_snapshot", "quotes"):
        yield from _iter_book_snapshot(incremental_book_l2_csv, trades_csv, **opts)
        return
    if fmt == "trades":
        if trades_csv is not None:
            raise ValueError("two trades files given")
        incremental_book_l2_csv, trades_csv = None, incremental_book_l2_csv
    if incremental_book_l2_csv is None and trades_csv is None:
        raise ValueError("no input file")
    files = [p for p in (incremental_book_l2_csv, trades_csv) if p is not None]
    out = ChunkedOutput(chunk_rows, ",".join(str(p) for p in files), strict)
    seen = []
    where = Locator()
    streams = []
    try:
        if incremental_book_l2_csv is not None:
            streams.append(_BookL2(out, incremental_book_l2_csv, where, symbol, seen))
        if trades_csv is not None:
            streams.append(_Trades(out, trades_csv, where, symbol, seen))
    except BaseException:
        for s in streams:
            s.close()
        raise
    yield from _drive(out, streams, where, symbol, tick_size, lot_size, progress,
                      check_crossed=incremental_book_l2_csv is not None)


# -- book_snapshot_N / quotes ------------------------------------------------------


class _Snapshots(_Stream):
    """Tardis book_snapshot_N or quotes rows: each row a complete batch."""

    what = "snapshot row"

    def __init__(self, out, path, where, symbol, seen):
        super().__init__(out)
        names = _header(path)
        if "bid_price" in names:
            levels = [(1, "bid_price", "bid_amount"), (-1, "ask_price", "ask_amount")]
            required = _QUOTE_COLS
        else:
            depth = 0
            while f"bids[{depth}].price" in names or f"asks[{depth}].price" in names:
                depth += 1
            if not depth:
                raise DataError("not a book_snapshot CSV (no bids[0].price / asks[0].price)", file=path, line=1)
            levels = [(1, f"bids[{i}].price", f"bids[{i}].amount") for i in range(depth)]
            levels += [(-1, f"asks[{i}].price", f"asks[{i}].amount") for i in range(depth)]
            required = ("symbol", "timestamp", "local_timestamp", *(c for _, p, a in levels for c in (p, a)))
        self.levels = levels
        self.where = where
        self.src = _CsvStream(path, required, where, symbol, seen)
        self.path = self.src.path
        out.report.info["levels_per_row"] = len(levels) // 2 if len(levels) > 2 else 1

    def read(self):
        csv = self.src.next_block()
        if csv is None:
            return None
        ts = csv.timestamp("timestamp", _US)
        lts = csv.timestamp("local_timestamp", _US)
        # present[r, j]: level j of row r has a price; empty price and amount = no level
        present = np.zeros((csv.n, len(self.levels)), bool)
        for j, (_, pcol, acol) in enumerate(self.levels):
            p_empty = csv.str(pcol) == ""
            a_empty = csv.str(acol) == ""
            mixed = np.nonzero(p_empty != a_empty)[0]
            if len(mixed):
                raise csv.err("price and amount must be both empty or both set", mixed[0], pcol)
            present[:, j] = ~p_empty
        values = []
        for j, (_, pcol, acol) in enumerate(self.levels):
            m = present[:, j]
            px = csv.decimal(pcol, m)
            qty = csv.decimal(acol, m)
            _positive(csv, pcol, px, "price", mask=m)
            _positive(csv, acol, qty, "amount", allow_zero=True, mask=m)
            values.append((px, qty, csv.line[m]))
        _add(self.out.report.info, "snapshot_rows", csv.n)
        rows = _Rows(csv.line, ts, lts, None, None, None)
        rows.present, rows.values = present, values
        return rows

    def samples(self, rows):
        prices, sizes = [], []
        for px, qty, line in rows.values:
            prices += _sample(*px, self.path, line)
            sizes += _sample(*qty, self.path, line)
        return prices, sizes

    def convert(self, rows):
        gl = rows.line + self.src.base
        ts = self.monotone(rows.ts, gl)
        present = rows.present
        count = 1 + present.sum(axis=1)
        start = np.cumsum(count) - count
        ev = np.zeros(int(count.sum()), EVENT_DTYPE)
        row_of = np.repeat(np.arange(rows.n), count)
        ev["ts_exch"] = ts[row_of]
        ev["ts_local"] = rows.lts[row_of]
        ev["flags"] = _SNAP
        ev["flags"][start + count - 1] |= _END
        ev["kind"] = _SET
        ev["kind"][start] = _CLEAR
        # slot of level j of row r = start[r] + 1 + (number of present levels before j in row r)
        slot = start[:, None] + np.cumsum(present, axis=1)
        for j, (side, pcol, acol) in enumerate(self.levels):
            at = slot[present[:, j], j]
            px, qty, line = rows.values[j]
            ev["side"][at] = side
            ev["price"][at] = self.px(*px, self.path, pcol, line)
            ev["qty"][at] = self.qty(*qty, self.path, acol, line)
        self.ready(ev, gl[row_of])

    def finish(self):
        _add(self.out.report.info, "snapshot_rows", 0)


def _read_book_snapshot(path, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Tardis book_snapshot_N or quotes CSV (+ optional trades) -> `Events` (see `_iter_book_snapshot`)."""
    return collect(_iter_book_snapshot(path, trades_csv, symbol=symbol, tick_size=tick_size, lot_size=lot_size,
                                       strict=strict, chunk_rows=MAX_CHUNK_ROWS))


def _iter_book_snapshot(path, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None, strict=False,
                        chunk_rows=DEFAULT_CHUNK_ROWS, progress=None):
    """Tardis book_snapshot_N or quotes CSV (+ optional trades) -> `Events` chunks.

    Each row is the full top-N book at that time: CLEAR + one SET_LEVEL per
    non-empty level (bids best first, then asks), all flagged SNAPSHOT, the
    last BATCH_END. Fine for top-of-book studies; queue estimates from it are
    coarse (the book is replaced each row).
    """
    files = [p for p in (path, trades_csv) if p is not None]
    out = ChunkedOutput(chunk_rows, ",".join(str(p) for p in files), strict)
    seen = []
    where = Locator()
    streams = [_Snapshots(out, path, where, symbol, seen)]
    try:
        if trades_csv is not None:
            streams.append(_Trades(out, trades_csv, where, symbol, seen))
    except BaseException:
        streams[0].close()
        raise
    yield from _drive(out, streams, where, symbol, tick_size, lot_size, progress)


# -- Binance historical depth CSV ------------------------------------------------------


class _BinanceDepth(_Stream):
    """Binance futures depth CSV rows of one or more files read in order; batches may span blocks and
    end at a file's end."""

    what = "depth row"

    def __init__(self, out, paths, where, symbol):
        super().__init__(out)
        self.paths, self.where, self.symbol, self.seen = paths, where, symbol, []
        self.fi = 0
        self.bytes_done = 0
        self.src = _CsvStream(paths[0], _BDEPTH_COLS, where, symbol, self.seen)
        self.pending = None
        self.synced, self.snap_id, self.last_u = False, None, None
        self.seen_snapshot, self.pre_snapshot, self.first_g = False, 0, None
        out.report.info["local_clock"] = "none in data: ts_local = ts_exch"

    def position(self):
        return self.bytes_done + self.src.position()

    def read(self):
        while True:
            csv = self.src.next_block()
            if csv is not None:
                break
            self.fi += 1
            if self.fi == len(self.paths):
                return None
            self.bytes_done += self.src.position()
            self.src = _CsvStream(self.paths[self.fi], _BDEPTH_COLS, self.where, self.symbol, self.seen)
        rows = _Rows(csv.line, csv.timestamp("timestamp", _MS), None, None, None, None)
        rows.gl = csv.gline
        rows.U, rows.u, rows.pu = csv.int("first_update_id"), csv.int("last_update_id"), csv.int("pu")
        rows.snap = csv.choice("update_type", {"snap": 1, "set": 0}).astype(bool)
        rows.side = csv.choice("side", {"b": 1, "a": -1}).astype(np.int8)
        rows.price, rows.amount = csv.decimal("price"), csv.decimal("qty")
        rows.file = np.full(csv.n, self.fi)
        rows.path = self.src.path
        _positive(csv, "price", rows.price, "price")
        _positive(csv, "qty", rows.amount, "qty", allow_zero=True)
        _add(self.out.report.info, "rows", csv.n)
        return rows

    def samples(self, rows):
        return _sample(*rows.price, rows.path, rows.line), _sample(*rows.amount, rows.path, rows.line)

    def convert(self, rows):
        ts = self.monotone(rows.ts, rows.gl)
        new = {"ts": ts, "U": rows.U, "u": rows.u, "pu": rows.pu, "snap": rows.snap, "side": rows.side,
               "px": self.px(*rows.price, rows.path, "price", rows.line),
               "qty": self.qty(*rows.amount, rows.path, "qty", rows.line), "g": rows.gl, "file": rows.file}
        p = self.pending
        self.pending = new if p is None else {k: _concat(p[k], new[k]) for k in p}
        r = self.pending
        n = len(r["ts"])
        if not n:
            return
        new_batch = np.ones(n, bool)
        new_batch[1:] = ((r["snap"][1:] != r["snap"][:-1]) | (r["U"][1:] != r["U"][:-1])
                         | (r["u"][1:] != r["u"][:-1]) | (r["file"][1:] != r["file"][:-1]))
        cut = int(np.flatnonzero(new_batch)[-1])
        self.pending = {k: v[cut:] for k, v in r.items()}
        if cut:
            self.events({k: v[:cut] for k, v in r.items()}, new_batch[:cut])

    def finish(self):
        r = self.pending
        if r is not None and len(r["ts"]):
            new_batch = np.ones(len(r["ts"]), bool)
            new_batch[1:] = ((r["snap"][1:] != r["snap"][:-1]) | (r["U"][1:] != r["U"][:-1])
                             | (r["u"][1:] != r["u"][:-1]) | (r["file"][1:] != r["file"][:-1]))
            self.events(r, new_batch)
        self.pending = None
        info = self.out.report.info
        for k in ("rows", "snapshots", "stale_batches_dropped"):
            _add(info, k, 0)
        if not self.seen_snapshot and self.pre_snapshot:
            self._no_snapshot()

    def _no_snapshot(self):
        f, ln = self.where(self.first_g)
        self.out.report.anomaly(NO_SNAPSHOT, file=f, line=ln, count=self.pre_snapshot,
                                detail="updates before any snapshot (the book is partial until one)")

    def events(self, r, new_batch):
        """Complete batches -> events, sequenced by Binance's futures rules."""
        n = len(r["ts"])
        report = self.out.report
        starts = np.flatnonzero(new_batch)
        ends = np.r_[starts[1:], n]
        keep = np.ones(n, bool)
        clear = np.zeros(n, bool)
        stale = 0
        snap = r["snap"]
        for b0, b1 in zip(starts.tolist(), ends.tolist()):
            if snap[b0]:
                self.synced, self.snap_id, self.last_u = True, int(r["u"][b0]), None
                clear[b0] = True
                continue
            U, u, pu = int(r["U"][b0]), int(r["u"][b0]), int(r["pu"][b0])
            if self.synced and self.last_u is None:
                if u < self.snap_id:
                    stale += 1
                    keep[b0:b1] = False
                    continue
                if not U <= self.snap_id <= u:
                    f, ln = self.where(r["g"][b0])
                    report.anomaly(SEQUENCE_GAP, file=f, line=ln,
                                   detail=f"first update after snapshot {self.snap_id} has U={U} u={u}")
            elif self.last_u is not None and pu != self.last_u:
                f, ln = self.where(r["g"][b0])
                report.anomaly(SEQUENCE_GAP, file=f, line=ln, detail=f"pu={pu} does not follow previous u={self.last_u}")
            self.last_u = u
        info = report.info
        _add(info, "snapshots", clear.sum())
        _add(info, "stale_batches_dropped", stale)
        if not self.seen_snapshot:
            if self.first_g is None:
                self.first_g = int(r["g"][0])
            if snap.any():
                self.seen_snapshot = True
                self.pre_snapshot += int(np.argmax(snap))
                if self.pre_snapshot:
                    self._no_snapshot()
            else:
                self.pre_snapshot += n
        last = np.zeros(n, bool)
        last[ends - 1] = True
        # output: a CLEAR right before each snapshot batch, then the kept rows
        per_row = keep.astype(np.int64) + clear
        pos = np.cumsum(per_row) - 1
        sel = np.flatnonzero(keep)
        at = pos[sel]
        ev = np.zeros(int(per_row.sum()), EVENT_DTYPE)
        ev["ts_exch"][at] = r["ts"][sel]
        ev["ts_local"][at] = r["ts"][sel]
        ev["price"][at] = r["px"][sel]
        ev["qty"][at] = r["qty"][sel]
        ev["side"][at] = r["side"][sel]
        ev["kind"][at] = _SET
        ev["flags"][at] = np.where(snap[sel], _SNAP, 0) | np.where(last[sel], _END, 0)
        line = np.empty(len(ev), np.int64)
        line[at] = r["g"][sel]
        cb = np.flatnonzero(clear)
        cpos = pos[cb] - 1
        ev["ts_exch"][cpos] = r["ts"][cb]
        ev["ts_local"][cpos] = r["ts"][cb]
        ev["kind"][cpos] = _CLEAR
        ev["flags"][cpos] = _SNAP
        line[cpos] = r["g"][cb]
        self.ready(ev, line)


def _read_binance_depth_csv(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Binance futures historical depth CSV(s) -> `Events` (see `_iter_binance_depth_csv`)."""
    return collect(_iter_binance_depth_csv(paths, symbol=symbol, tick_size=tick_size, lot_size=lot_size,
                                           strict=strict, chunk_rows=MAX_CHUNK_ROWS))


def _iter_binance_depth_csv(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False,
                            chunk_rows=DEFAULT_CHUNK_ROWS, progress=None):
    """Binance futures historical depth CSV(s) (snap / set rows), given in order -> `Events` chunks.

    Columns: symbol, timestamp (ms), first_update_id, last_update_id, side
    (a/b), update_type (snap/set), price, qty, pu. A run of rows with the same
    (update_type, first_update_id, last_update_id) is one batch. A snap batch
    is CLEAR + SET_LEVEL flagged SNAPSHOT; set batches follow Binance's futures
    rules: stale ones (last_update_id below the snapshot's id) are dropped, the
    first one must bridge the snapshot (first_update_id <= id <= last_update_id)
    and the rest chain on pu == previous last_update_id (else SEQUENCE_GAP; the
    reader keeps applying). The files carry no local clock: ts_local = ts_exch.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    out = ChunkedOutput(chunk_rows, ",".join(str(p) for p in paths), strict)
    where = Locator()
    stream = _BinanceDepth(out, paths, where, symbol)
    yield from _drive(out, [stream], where, symbol, tick_size, lot_size, progress)
