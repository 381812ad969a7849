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
  by Binance's futures rules (see `_read_binance_depth_csv`).

All columns are read as text with pyarrow.csv and converted in bulk; prices
and sizes are parsed exactly (lobsim.instrument), so any bad value raises a
DataError naming the file, line and column (exponent notation such as
``1e-05`` is accepted in plain ASCII with at most 3 exponent digits; timestamps
must be non-negative and fit int64 nanoseconds; a UTF-8 BOM is skipped). Within each file the rows are in
venue order: an exchange timestamp that goes backwards is raised to the
previous one and reported (out_of_order_timestamp); all events of a batch get
the batch's last timestamp. Book and trade streams are merged stably by
ts_exch; at equal ts_exch trades go first (a trade explains the level decrease
published with it, which is what the L2 queue model needs).
"""
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data._io import Locator, open_input
from lobsim.data.events import NO_SNAPSHOT, SEQUENCE_GAP, Events, ValidationReport, monotone_ts, report_crossed
from lobsim.errors import DataError
from lobsim.instrument import infer_instrument, parse_decimal_strings

__all__ = ["read_tardis"]

_US = 1_000
_MS = 1_000_000
_INT64_MAX = 2**63 - 1
_BOM = b"\xef\xbb\xbf"
# exponent notation (e.g. '1e-05', as JavaScript prints small numbers) in strict ASCII; the exponent is capped
# at 3 digits so that expanding it to fixed point stays cheap (the result is range-checked afterwards)
_SCI_RE = r"^-?[0-9]+(\.[0-9]+)?[eE][-+]?[0-9]{1,3}$"
_SNAP = int(Flag.SNAPSHOT)
_END = int(Flag.BATCH_END)

_L2_COLS = ("symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount")
_TRADE_COLS = ("symbol", "timestamp", "local_timestamp", "side", "price", "amount")
_QUOTE_COLS = ("symbol", "timestamp", "local_timestamp", "bid_price", "bid_amount", "ask_price", "ask_amount")
_BDEPTH_COLS = ("symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type", "price", "qty", "pu")


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


class _Csv:
    """All columns of one CSV as numpy str arrays, blank lines dropped, line numbers kept.

    The file is registered with the reader's Locator `where`: `gline` are the
    rows' global line numbers, which `where` maps back to (file, line).
    """

    def __init__(self, path, required, where):
        self.path = Path(path)
        names = _header(self.path)
        missing = [c for c in required if c not in names]
        if missing:
            raise DataError(f"missing column {missing[0]!r}", file=self.path, line=1,
                            detail="header: " + ",".join(names))
        table = self._read(names)
        cols = {n: table.column(n) for n in names}
        blank = None
        for c in cols.values():
            e = pc.equal(c, "")
            blank = e if blank is None else pc.and_(blank, e)
        blank = blank.to_numpy(zero_copy_only=False) if blank is not None else np.zeros(0, bool)
        keep = ~blank
        self.blank_lines = int(blank.sum())
        self.line = (np.nonzero(keep)[0] + 2).astype(np.int64)  # header is line 1
        self.cols = {n: c.filter(pa.array(keep)) if self.blank_lines else c for n, c in cols.items()}
        self.n = len(self.line)
        self.where = where
        self.base = where.add(self.path, len(blank) + 1)

    @property
    def gline(self):
        """Global line number of each row (see Locator)."""
        return self.line + self.base

    def _read(self, names):
        convert = pv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        parse = pv.ParseOptions(ignore_empty_lines=False)
        try:
            with open_input(self.path, arrow=True) as src:
                return pv.read_csv(src, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as e:
            if "CSV parse error" not in str(e):
                if "UTF8" in str(e) or "UTF-8" in str(e):
                    raise DataError("invalid UTF-8", file=self.path, line=self._bad_utf8_line(),
                                    detail=str(e)) from None
                raise DataError("cannot read CSV", file=self.path, detail=str(e)) from None
        except (OSError, EOFError) as e:
            raise DataError("cannot read (truncated or corrupt gzip?)", file=self.path, detail=str(e)) from None
        # re-read single-threaded to learn the line of the malformed row; as Latin-1, which decodes any
        # byte, so a row that is also invalid UTF-8 cannot fail inside Arrow's callback (printed, not raised)
        bad = []

        def handler(row):
            bad.append(row)
            return "error"

        try:
            with open_input(self.path) as fh:
                pv.read_csv(fh, read_options=pv.ReadOptions(use_threads=False, encoding="latin-1"),
                            parse_options=pv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=handler),
                            convert_options=convert)
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
            raise DataError(f"expected {r.expected_columns} fields, got {r.actual_columns}{invalid}",
                            file=self.path, line=r.number, detail=text[:80])
        raise DataError("malformed CSV", file=self.path)

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
        """Exact (int64 scaled, scale) of a decimal column (rows in `mask` only)."""
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
            return parse_decimal_strings(s, line_offset=0)
        except DataError as e:
            if e.line is not None:
                raise self.err(e.reason.split(":")[0] or "not a decimal number", idx[e.line], name) from None
            i = _range_culprit(s)
            if i is not None:
                raise self.err(e.reason, idx[i], name) from None
            raise DataError(f"column {name!r}: {e.reason}", file=self.path) from None

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

    def select_symbol(self, want, seen):
        """Keep rows of the wanted symbol (or the only one present)."""
        if "symbol" not in self.cols:
            return
        if want is None:
            u = pc.unique(self.cols["symbol"]).to_pylist()
            if len(u) > 1:
                raise DataError(f"file holds several symbols ({', '.join(u[:5])}); pass symbol= to pick one",
                                file=self.path)
            if len(u):
                if seen and seen[0] != u[0]:
                    raise DataError(f"symbol {u[0]} differs from {seen[0]} of the other file", file=self.path)
                seen[:1] = [str(u[0])]
            return
        keep = pc.equal(pc.utf8_upper(self.cols["symbol"]), want.upper()).to_numpy(zero_copy_only=False)
        if not keep.all():
            k = pa.array(keep)
            self.cols = {n: c.filter(k) for n, c in self.cols.items()}
            self.line = self.line[keep]
            self.n = len(self.line)
        seen[:1] = [want]


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


def _positive(csv, name, parsed, what, allow_zero=False, mask=None):
    vals = parsed[0]
    bad = np.nonzero(vals < 0 if allow_zero else vals <= 0)[0]
    if len(bad):
        idx = np.arange(csv.n) if mask is None else np.nonzero(mask)[0]
        raise csv.err(f"{what} must be {'non-negative' if allow_zero else 'positive'}", idx[bad[0]], name)


def _batch_ts(ts, last_of_batch):
    """Every row gets the timestamp of its batch's last row (ts already monotone)."""
    ends = np.nonzero(last_of_batch)[0]
    batch = np.searchsorted(ends, np.arange(len(ts)))
    return ts[ends][batch]


def _merge(parts):
    """Concatenate (events, rank) parts and sort stably by (ts_exch, rank)."""
    ev = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, EVENT_DTYPE)
    rank = np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts]) if parts else np.zeros(0, np.int8)
    order = np.lexsort((rank, ev["ts_exch"]))
    return ev[order], order


def _finish(parts, symbol, tick_size, lot_size, prices, sizes, report):
    """Instrument from the parsed decimals, ticks/lots filled in, streams merged.

    prices / sizes: [((scaled, scale), (event array, event rows, path, column, line of each value))].
    """
    inst = infer_instrument(symbol, tick_size, lot_size, [p for p, _ in prices], [q for q, _ in sizes],
                            report.info)
    for field, fn, items in (("price", inst.prices_from_scaled, prices), ("qty", inst.qtys_from_scaled, sizes)):
        for (scaled, scale), (ev_arr, rows, path, col, lines) in items:
            ev_arr[field][rows] = _units(fn, scaled, scale, path, col, lines)
    events, order = _merge(parts)
    report.info["events"] = len(events)
    return inst, events, order


def _units(fn, scaled, scale, path, col, lines):
    """Scaled ints -> ticks / lots; a value off the tick / lot grid names its file, line, column."""
    try:
        return fn(scaled, scale, line_offset=0)
    except DataError as e:
        if e.line is not None:
            raise DataError(f"column {col!r}: {e.reason}", file=path, line=int(lines[e.line])) from None
        raise


# -- incremental_book_L2 + trades --------------------------------------------------


def read_tardis(incremental_book_l2_csv, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None,
                strict=False):
    """Tardis incremental_book_L2 CSV (+ optional trades CSV) -> `Events` of L2 events.

    The first file may also be a book_snapshot_N, quotes, trades or Binance
    depth CSV (detected from its header); None reads trades only. See the
    module docstring for batching, snapshots, clocks and ordering. O(rows),
    vectorized (pyarrow.csv + numpy).
    """
    fmt = None if incremental_book_l2_csv is None else _csv_format(incremental_book_l2_csv)
    if fmt == "binance_depth":
        if trades_csv is not None:
            raise ValueError("trades_csv is not supported with a Binance depth CSV")
        return _read_binance_depth_csv(incremental_book_l2_csv, symbol=symbol, tick_size=tick_size,
                                      lot_size=lot_size, strict=strict)
    if fmt in ("book_snapshot", "quotes"):
        return _read_book_snapshot(incremental_book_l2_csv, trades_csv, symbol=symbol, tick_size=tick_size,
                                         lot_size=lot_size, strict=strict)
    if fmt == "trades":
        if trades_csv is not None:
            raise ValueError("two trades files given")
        incremental_book_l2_csv, trades_csv = None, incremental_book_l2_csv
    if incremental_book_l2_csv is None and trades_csv is None:
        raise ValueError("no input file")
    files = [p for p in (incremental_book_l2_csv, trades_csv) if p is not None]
    report = ValidationReport(source=",".join(str(p) for p in files), strict=strict)
    seen = []
    where = Locator()
    parts, prices, sizes, eline = [], [], [], []

    if incremental_book_l2_csv is not None:
        book = _Csv(incremental_book_l2_csv, _L2_COLS, where)
        book.select_symbol(symbol, seen)
        ev, line = _l2_events(book, report, prices, sizes)
        parts.append((ev, 1))
        eline.append(line)
        report.info["book_rows"] = book.n
        if book.blank_lines:
            report.info["book_blank_lines"] = book.blank_lines
        if "exchange" in book.cols and book.n:
            report.info["exchange"] = str(book.str("exchange")[0])
    if trades_csv is not None:
        tr = _Csv(trades_csv, _TRADE_COLS, where)
        tr.select_symbol(symbol, seen)
        ev = _trade_events(tr, report, prices, sizes)
        parts.append((ev, 0))
        eline.append(tr.gline)
        report.info["trades"] = tr.n
        if tr.blank_lines:
            report.info["trade_blank_lines"] = tr.blank_lines

    inst, events, order = _finish(parts, symbol or (seen[0] if seen else None), tick_size, lot_size,
                                  prices, sizes, report)
    report_crossed(events, np.concatenate(eline)[order], report, where)
    return Events(events, inst, report)


def _l2_events(csv, report, prices, sizes):
    """incremental_book_L2 rows -> (events (CLEAR before each snapshot run), each event's global line)."""
    n = csv.n
    snap = csv.choice("is_snapshot", {"true": 1, "false": 0, "True": 1, "False": 0}).astype(bool)
    side = csv.choice("side", {"bid": 1, "ask": -1})
    ts = csv.timestamp("timestamp", _US)
    lts = csv.timestamp("local_timestamp", _US)
    px = csv.decimal("price")
    qty = csv.decimal("amount")
    _positive(csv, "price", px, "price")
    _positive(csv, "amount", qty, "amount", allow_zero=True)
    ts = monotone_ts(ts, report, csv.gline, csv.where, "book row")

    prev_snap = np.r_[False, snap[:-1]]
    snap_start = snap & ~prev_snap
    new_batch = np.ones(n, bool)
    if n:
        new_batch[1:] = (snap[1:] != snap[:-1]) | (~snap[1:] & ((ts[1:] != ts[:-1]) | (lts[1:] != lts[:-1])))
    last = np.r_[new_batch[1:], True] if n else np.zeros(0, bool)
    bts = _batch_ts(ts, last)
    blts = _batch_ts(lts, last)
    report.info["snapshots"] = int(snap_start.sum())
    report.info["book_batches"] = int(last.sum())

    # position of each row in the output: rows shift by the CLEARs inserted before them
    shift = np.cumsum(snap_start)
    pos = np.arange(n) + shift
    ev = np.zeros(n + int(shift[-1] if n else 0), EVENT_DTYPE)
    rows = ev[pos]  # copy; fill then write back
    rows["ts_exch"] = bts
    rows["ts_local"] = blts
    rows["side"] = side
    rows["kind"] = int(EventKind.SET_LEVEL)
    rows["flags"] = np.where(snap, _SNAP, 0) | np.where(last, _END, 0)
    ev[pos] = rows
    cpos = pos[snap_start] - 1
    ev["ts_exch"][cpos] = bts[snap_start]
    ev["ts_local"][cpos] = blts[snap_start]
    ev["kind"][cpos] = int(EventKind.CLEAR)
    ev["flags"][cpos] = _SNAP
    gline = csv.gline
    line = np.zeros(len(ev), np.int64)
    line[pos] = gline
    line[cpos] = gline[snap_start]
    prices.append((px, (ev, pos, csv.path, "price", csv.line)))
    sizes.append((qty, (ev, pos, csv.path, "amount", csv.line)))
    if snap.any() and not snap[0]:
        report.anomaly(NO_SNAPSHOT, file=csv.path, line=int(csv.line[0]), count=int(np.argmax(snap)),
                       detail="book rows before the first snapshot (the book is partial until it)")
    elif n and not snap.any():
        report.anomaly(NO_SNAPSHOT, file=csv.path, line=int(csv.line[0]), count=n,
                       detail="no snapshot rows: the book holds only levels the updates touched")
    return ev, line


def _trade_events(csv, report, prices, sizes):
    side = csv.choice("side", {"buy": 1, "sell": -1, "unknown": 0, "": 0})
    ts = csv.timestamp("timestamp", _US)
    lts = csv.timestamp("local_timestamp", _US)
    px = csv.decimal("price")
    qty = csv.decimal("amount")
    _positive(csv, "price", px, "price")
    _positive(csv, "amount", qty, "amount")
    ts = monotone_ts(ts, report, csv.gline, csv.where, "trade")
    ev = np.zeros(csv.n, EVENT_DTYPE)
    ev["ts_exch"] = ts
    ev["ts_local"] = lts
    ev["side"] = side
    ev["kind"] = int(EventKind.TRADE)
    rows = np.arange(csv.n)
    prices.append((px, (ev, rows, csv.path, "price", csv.line)))
    sizes.append((qty, (ev, rows, csv.path, "amount", csv.line)))
    if int((side == 0).sum()):
        report.info["trades_unknown_side"] = int((side == 0).sum())
    return ev


# -- book_snapshot_N / quotes ------------------------------------------------------


def _read_book_snapshot(path, trades_csv=None, *, symbol=None, tick_size=None, lot_size=None,
                              strict=False):
    """Tardis book_snapshot_N or quotes CSV (+ optional trades) -> `Events`.

    Each row is the full top-N book at that time: CLEAR + one SET_LEVEL per
    non-empty level (bids best first, then asks), all flagged SNAPSHOT, the
    last BATCH_END. Fine for top-of-book studies; queue estimates from it are
    coarse (the book is replaced each row).
    """
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
    files = [p for p in (path, trades_csv) if p is not None]
    report = ValidationReport(source=",".join(str(p) for p in files), strict=strict)
    seen = []
    where = Locator()
    csv = _Csv(path, required, where)
    csv.select_symbol(symbol, seen)
    n = csv.n
    ts = monotone_ts(csv.timestamp("timestamp", _US), report, csv.gline, where, "snapshot row")
    lts = csv.timestamp("local_timestamp", _US)

    # present[r, j]: level j of row r has a price; empty price and amount = no level
    present = np.zeros((n, len(levels)), bool)
    for j, (_, pcol, acol) in enumerate(levels):
        p_empty = csv.str(pcol) == ""
        a_empty = csv.str(acol) == ""
        mixed = np.nonzero(p_empty != a_empty)[0]
        if len(mixed):
            raise csv.err("price and amount must be both empty or both set", mixed[0], pcol)
        present[:, j] = ~p_empty
    count = 1 + present.sum(axis=1)
    start = np.cumsum(count) - count
    ev = np.zeros(int(count.sum()), EVENT_DTYPE)
    row_of = np.repeat(np.arange(n), count)
    ev["ts_exch"] = ts[row_of]
    ev["ts_local"] = lts[row_of]
    ev["flags"] = _SNAP
    ev["flags"][start + count - 1] |= _END
    ev["kind"] = int(EventKind.SET_LEVEL)
    ev["kind"][start] = int(EventKind.CLEAR)
    prices, sizes = [], []
    # slot of level j of row r = start[r] + 1 + (number of present levels before j in row r)
    slot = start[:, None] + np.cumsum(present, axis=1)
    for j, (side, pcol, acol) in enumerate(levels):
        m = present[:, j]
        rows = slot[m, j]
        ev["side"][rows] = side
        px = csv.decimal(pcol, m)
        qty = csv.decimal(acol, m)
        _positive(csv, pcol, px, "price", mask=m)
        _positive(csv, acol, qty, "amount", allow_zero=True, mask=m)
        prices.append((px, (ev, rows, csv.path, pcol, csv.line[m])))
        sizes.append((qty, (ev, rows, csv.path, acol, csv.line[m])))
    parts = [(ev, 1)]
    eline = [csv.gline[row_of]]
    report.info["snapshot_rows"] = n
    report.info["levels_per_row"] = len(levels) // 2 if len(levels) > 2 else 1
    if trades_csv is not None:
        tr = _Csv(trades_csv, _TRADE_COLS, where)
        tr.select_symbol(symbol, seen)
        parts.append((_trade_events(tr, report, prices, sizes), 0))
        eline.append(tr.gline)
        report.info["trades"] = tr.n
    inst, events, order = _finish(parts, symbol or (seen[0] if seen else None), tick_size, lot_size,
                                  prices, sizes, report)
    report_crossed(events, np.concatenate(eline)[order], report, where)
    return Events(events, inst, report)


# -- Binance historical depth CSV ------------------------------------------------------


def _read_binance_depth_csv(paths, *, symbol=None, tick_size=None, lot_size=None, strict=False):
    """Binance futures historical depth CSV(s) (snap / set rows), given in order -> `Events`.

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
    report = ValidationReport(source=",".join(str(p) for p in paths), strict=strict)
    seen = []
    where = Locator()
    cols = {k: [] for k in ("ts", "U", "u", "pu", "snap", "side", "g", "file")}
    pxs, qts = [], []
    csvs = []
    for fi, p in enumerate(paths):
        csv = _Csv(p, _BDEPTH_COLS, where)
        csv.select_symbol(symbol, seen)
        csvs.append(csv)
        cols["ts"].append(csv.timestamp("timestamp", _MS))
        cols["U"].append(csv.int("first_update_id"))
        cols["u"].append(csv.int("last_update_id"))
        cols["pu"].append(csv.int("pu"))
        cols["snap"].append(csv.choice("update_type", {"snap": 1, "set": 0}).astype(bool))
        cols["side"].append(csv.choice("side", {"b": 1, "a": -1}))
        cols["g"].append(csv.gline)
        cols["file"].append(np.full(csv.n, fi))
        px = csv.decimal("price")
        qty = csv.decimal("qty")
        _positive(csv, "price", px, "price")
        _positive(csv, "qty", qty, "qty", allow_zero=True)
        pxs.append(px)
        qts.append(qty)
    c = {k: np.concatenate(v) for k, v in cols.items()}
    n = len(c["ts"])

    inst = infer_instrument(symbol or (seen[0] if seen else None), tick_size, lot_size, pxs, qts, report.info)
    price = np.concatenate([_units(inst.prices_from_scaled, v, s, f.path, "price", f.line)
                            for f, (v, s) in zip(csvs, pxs)])
    qty = np.concatenate([_units(inst.qtys_from_scaled, v, s, f.path, "qty", f.line) for f, (v, s) in zip(csvs, qts)])

    # batches
    new = np.ones(n, bool)
    if n:
        new[1:] = ((c["snap"][1:] != c["snap"][:-1]) | (c["U"][1:] != c["U"][:-1]) | (c["u"][1:] != c["u"][:-1])
                   | (c["file"][1:] != c["file"][:-1]))
    starts = np.nonzero(new)[0]
    ends = np.r_[starts[1:], n]
    keep = np.ones(n, bool)
    clear_before = []
    synced = False
    snap_id = None
    last_u = None
    stale = 0
    gaps = 0
    for b0, b1 in zip(starts, ends):
        if c["snap"][b0]:
            synced, snap_id, last_u = True, c["u"][b0], None
            clear_before.append(b0)
            continue
        U, u, pu = c["U"][b0], c["u"][b0], c["pu"][b0]
        if synced and last_u is None:
            if u < snap_id:
                stale += 1
                keep[b0:b1] = False
                continue
            if not U <= snap_id <= u:
                gaps += 1
                f, ln = where(c["g"][b0])
                report.anomaly(SEQUENCE_GAP, file=f, line=ln,
                               detail=f"first update after snapshot {snap_id} has U={U} u={u}")
        elif last_u is not None and pu != last_u:
            gaps += 1
            f, ln = where(c["g"][b0])
            report.anomaly(SEQUENCE_GAP, file=f, line=ln, detail=f"pu={pu} does not follow previous u={last_u}")
        last_u = u
    n_set = int(np.sum(~c["snap"]))
    first_snap = int(np.argmax(c["snap"])) if c["snap"].any() else n
    if first_snap and n_set:
        f, ln = where(c["g"][0])
        report.anomaly(NO_SNAPSHOT, file=f, line=ln, count=int(np.sum(~c["snap"][:first_snap])),
                       detail="updates before any snapshot (the book is partial until one)")
    report.info.update({"rows": n, "snapshots": len(clear_before), "stale_batches_dropped": stale,
                        "local_clock": "none in data: ts_local = ts_exch"})

    ts = monotone_ts(c["ts"], report, c["g"], where, "depth row")
    last = np.zeros(n, bool)
    last[ends - 1] = True
    sel = np.nonzero(keep)[0]
    ncl = len(clear_before)
    ev = np.zeros(len(sel) + ncl, EVENT_DTYPE)
    # CLEARs go right before their snapshot rows
    shift = np.cumsum(np.isin(np.arange(n), clear_before))
    pos = sel + shift[sel] - np.cumsum(~keep)[sel]
    ev["ts_exch"][pos] = ts[sel]
    ev["ts_local"][pos] = ts[sel]
    ev["price"][pos] = price[sel]
    ev["qty"][pos] = qty[sel]
    ev["side"][pos] = c["side"][sel]
    ev["kind"][pos] = int(EventKind.SET_LEVEL)
    ev["flags"][pos] = np.where(c["snap"][sel], _SNAP, 0) | np.where(last[sel], _END, 0)
    cb = np.asarray(clear_before, np.int64)
    cpos = pos[np.searchsorted(sel, cb)] - 1 if ncl else cb
    ev["ts_exch"][cpos] = ts[cb]
    ev["ts_local"][cpos] = ts[cb]
    ev["kind"][cpos] = int(EventKind.CLEAR)
    ev["flags"][cpos] = _SNAP
    report.info["events"] = len(ev)
    eline = np.zeros(len(ev), np.int64)
    eline[pos] = c["g"][sel]
    eline[cpos] = c["g"][cb]
    report_crossed(ev, eline, report, where)
    return Events(ev, inst, report)

