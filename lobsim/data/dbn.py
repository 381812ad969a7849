"""Databento DBN reader: MBO -> L3 events; MBP-1, MBP-10, CMBP-1, BBO and CBBO -> L2 events;
trades -> prints; status -> STATUS events.

``iter_dbn`` streams: the file (raw or zstd, multi-frame) is decompressed in blocks of a
few MB (``zstandard``), its records are viewed as numpy structured arrays straight from
the bytes (lobsim/data/dbn_decode.py; ``databento-dbn`` decodes only the metadata
header), converted block by block with every piece of state carried over (live orders,
fills awaiting their C/M, the open batch, the previous record's levels, the running
clock maximum, the book of the crossed-book check), and cut into Events chunks of
exactly ``chunk_rows`` events. ``read_dbn`` is ``collect(iter_dbn(...))``. The MBO
order tracker runs in C (csrc/dbn.c: lob_dbn_mbo_run); the other schemas are vectorized.
Memory: one block, one chunk and the live orders, whatever the file size.

Mapping (MBO, the venue's sequence order = file order, never re-sorted):

- ``A`` -> ADD. ``R`` -> CLEAR. ``T`` -> TRADE, side = aggressor ('N' -> 0).
- ``C`` -> DELETE when it removes the order's whole remaining size (every C in CME
  data does: C carries the order's full remaining size, verified on the ESH4 capture),
  REDUCE by the cancelled size otherwise. A C of an unknown order id is counted
  (UNKNOWN_ORDER_ID) and skipped.
- ``M`` -> MODIFY (absolute price and size). An M of an unknown id is counted and
  applied as an ADD, as Databento's own reference book does.
- ``F`` (a fill) does not change Databento's book: the C or M of the same order later
  in the same batch does. With ``fills="execute"`` (default) a fill of a resting order
  (known id, same side and price, size <= what is left) becomes an EXECUTE at the F's
  place in the stream, and the following C/M is reconciled against it (a C that only
  removes what was executed emits nothing; an M after a full execution re-adds the
  order, e.g. an iceberg refill). So L3 queue logic sees executions as executions, not
  as cancels, and the book after every batch is identical to Databento's. Other F
  records (the aggressor's own fill, auction fills at a price other than the order's)
  are not emitted; report.info counts them. ``fills="ignore"`` emits no EXECUTE and
  maps C/M literally. Note: one trade then appears both as a TRADE print (from T) and
  as EXECUTE(s) of the resting orders; sum volume from one of the two, not both.
- Flags: F_LAST -> BATCH_END on the record's last emitted event (or on the previous
  emitted event when the record emits none); F_SNAPSHOT -> SNAPSHOT; a snapshot run
  that ends without F_LAST (Databento files before 2024-02-10) gets a BATCH_END at its
  end. F_BAD_TS_RECV is counted in info; F_MAYBE_BAD_BOOK is a SEQUENCE_GAP anomaly.
- Undefined prices (UNDEF_PRICE, INT64_MAX): an A, M or F without a price cannot be
  placed on or matched against a book, so it is a DataError naming the record (turning
  it into price 0, or dropping it and every later record of that order, would both
  corrupt the book silently). A T without a price (a print some venues send for certain
  auction or off-book trades) changes no book and has no usable price: it is skipped
  and counted as skipped:trade_without_price (strict mode raises). C, R and N may carry
  UNDEF: their own price is never used (a C takes the tracked order's price).
- Clocks: ts_exch = ts_event, ts_local = ts_recv. Both are u64 in DBN; a value of
  2**63 or more (in practice UNDEF_TIMESTAMP, u64::MAX: "no time") does not fit the
  int64 ns of an event and is a DataError naming the record and field, in every
  schema: an event needs both clocks and the reader will not invent one. Snapshot records carry the order's
  old ts_event and the snapshot time as ts_recv; they are excluded from the
  out-of-order count, live records with ts_event below an earlier live one are counted
  (OUT_OF_ORDER_TS) but never reordered.

MBP-1 carries the vendor's best bid/offer after each record; it becomes a one-level L2
book: SET_LEVEL events for the sides whose BBO changed (the old best level set to 0
first when the best price moved), so the L2 best equals the vendor BBO after every
record; UNDEF_PRICE in the bid/ask columns means "no level" on that side. Action T
becomes a TRADE. Trades (and TBBO) files give TRADE events only. T records without a
price are skipped and counted there too (as in MBO); other MBP-1 actions' own price
field is not used and may be UNDEF.

MBP-10 (and CMBP-1, the consolidated MBP-1) carry the vendor's book after each record:
each side's levels are compared with the previous record's and only the changes become
SET_LEVEL events (a price no longer among the record's levels -> qty 0, a new price or a
new size -> the size; UNDEF_PRICE or size 0 is "no level"), so the L2 book after every
record is the record's levels exactly -- a level pushed out of the ten shown is deleted
too (the window is the vendor's). Per record: CLEAR (action R: the previous levels do not
carry over), TRADE (action T), bid deletions, bid sets, ask deletions, ask sets. Flags and
batch ends as for MBP-1.

BBO-1s/1m and CBBO-1s/1m are samples of the top of book at interval ends: the same
top-level diff (a moved price deletes the old top first), and every record ends a batch
(each is a complete state); their price/size/side fields (the last trade of the interval)
are not emitted, since they are not individual prints. TBBO and TCBBO give TRADE events.

Status records (schema status) become STATUS events (qty = lobsim.TradingStatus, side 0,
price 0, BATCH_END each): is_trading 'Y' -> TRADING; is_trading 'N' with is_quoting 'Y' ->
QUOTING, with 'N' -> HALT; when those are '~' (not available) the action decides:
TRADING -> TRADING; PRE_OPEN, PRE_CROSS, QUOTING, CROSS, ROTATION, NEW_PRICE_INDICATION ->
QUOTING; HALT, PAUSE, SUSPEND, CLOSE, NOT_AVAILABLE_FOR_TRADING -> HALT. NONE, PRE_CLOSE,
POST_CLOSE, SSR_CHANGE, unknown action values and a TRADING action contradicted by
is_trading 'N' name no state: skipped and counted (skipped:status_unmapped), never
guessed. report.info["status_actions"] counts the actions by name. reason and
trading_event change no state and are not converted. Status records inside another
schema's stream (a book file) become STATUS events in place, by record order, with no
BATCH_END (a status between two records of one batch does not end it).

Streaming: a file's instrument and (when inferred) tick are settled on its first block
(4 MiB of records); an inferred tick that a later price does not fit is a DataError naming
the record and asking for instrument=; a new instrument id in a later block is filtered
out and counted when an Instrument/definition was given, else a DataError (several
instruments).

After conversion the book is replayed (lobsim.book.depth_series) and every batch end
with bid >= ask is counted: crossings followed by an aggressor-less trade (the opening
auction print uncrossing a pre-open book) go to info as pre-open crossings, others are
CROSSED_BOOK anomalies.
"""
from datetime import datetime, timezone
from decimal import Decimal
from math import gcd
from pathlib import Path

import numpy as np

from lobsim._core import ffi, lib
from lobsim._types import EVENT_DTYPE, EventKind, Flag, TradingStatus, empty_events
from lobsim.data._io import require_file
from lobsim.data.dbn_decode import (  # noqa: F401 - the layouts are part of this module's interface
    BBO_DTYPE,
    CBBO_DTYPE,
    CMBP1_DTYPE,
    MBO_DTYPE,
    MBP1_DTYPE,
    MBP10_DTYPE,
    STATUS_DTYPE,
    TRADE_DTYPE,
    DTYPE_OF_CLASS,
    ZSTD_MAGIC,
    DbnSource,
    require_dbn,
    zstd_problem,
)
from lobsim.data.events import (
    CROSSED_BOOK,
    DEFAULT_CHUNK_ROWS,
    MAX_CHUNK_ROWS,
    MAX_EXAMPLES,
    OUT_OF_ORDER_TS,
    SEQUENCE_GAP,
    SKIPPED,
    UNKNOWN_ORDER_ID,
    ChunkedOutput,
    ValidationReport,
    collect,
    crossed_batch_ends,
)
from lobsim.errors import DataError
from lobsim.instrument import Instrument, plain

__all__ = ["read_dbn", "iter_dbn", "instrument_from_dbn"]

# Anomaly reasons specific to this reader (each has one clear meaning).
DUPLICATE_ORDER_ID = "duplicate_order_id"  # A of an id that is still resting
CANCEL_EXCEEDS_ORDER = "cancel_exceeds_order"  # C larger than the order's remaining size
REPLAY_REJECTED = "replay_rejected"  # the reader's own verification replay refused events
SYMBOL_MISMATCH = "symbol_mismatch"
STATUS_UNMAPPED = "status_unmapped"  # skipped:<this>, a status record with no trading state lobsim can name

PRICE_SCALE = 10**9  # DBN prices are int64 in units of 1e-9
UNDEF_PRICE = 2**63 - 1
UNDEF_TIMESTAMP = 2**64 - 1
_INT64_MAX = 2**63 - 1
TRADE_WITHOUT_PRICE = "trade_without_price"  # skipped:<this>, a T record with UNDEF_PRICE

# DBN flag bits (databento_dbn.F_*)
F_LAST, F_TOB, F_SNAPSHOT, F_BAD_TS_RECV, F_MAYBE_BAD_BOOK = 128, 64, 32, 8, 4

# action / side characters as bytes
_A, _C, _M, _R, _T, _F, _N = (ord(c) for c in "ACMRTFN")
_SIDE_B, _SIDE_A = ord("B"), ord("A")

# schema -> (record class, converter kind)
_SCHEMAS = {
    "mbo": ("MBOMsg", "mbo"), "mbp-1": ("MBP1Msg", "levels"), "mbp-10": ("MBP10Msg", "levels"),
    "cmbp-1": ("CMBP1Msg", "levels"), "bbo-1s": ("BBOMsg", "bbo"), "bbo-1m": ("BBOMsg", "bbo"),
    "cbbo-1s": ("CBBOMsg", "bbo"), "cbbo-1m": ("CBBOMsg", "bbo"), "tbbo": ("MBP1Msg", "trades"),
    "tcbbo": ("CMBP1Msg", "trades"), "trades": ("TradeMsg", "trades"), "status": ("StatusMsg", "status"),
}
# schema of a stream without one in its metadata, from its records' class
_SCHEMA_OF_CLASS = {"MBOMsg": "mbo", "MBP1Msg": "mbp-1", "MBP10Msg": "mbp-10", "CMBP1Msg": "cmbp-1",
                    "BBOMsg": "bbo-1s", "CBBOMsg": "cbbo-1s", "TradeMsg": "trades", "StatusMsg": "status"}

_require_dbn = require_dbn


def _add(report, key, n):
    """Add n to an integer info value (integer info values add up when chunk reports merge)."""
    report.info[key] = report.info.get(key, 0) + int(n)


# --------------------------------------------------------------------------- instrument
def _schema_name(metadata):
    s = metadata.schema
    if s is None:
        return None
    return str(getattr(s, "value", s)).lower()


def _symbol_matches(given, known):
    """True if `given` (ESH4, ES, ES.FUT, ES.c.0) names one of the data's symbols `known`."""
    root = given.split(".")[0].upper()
    return any(k.upper() == given.upper() or k.split(".")[0].upper().startswith(root) for k in known)


def _symbols_by_id(metadata):
    """instrument_id -> the query symbol(s) mapped to it in the metadata."""
    out = {}
    for raw, intervals in (metadata.mappings or {}).items():
        for iv in intervals:
            sym = iv["symbol"] if isinstance(iv, dict) else getattr(iv, "symbol", None)
            try:
                iid = int(sym)
            except (TypeError, ValueError):
                continue
            out.setdefault(iid, [])
            if raw not in out[iid]:
                out[iid].append(raw)
    return out


def _decoder_failure(e):
    """True for what databento_dbn raises on malformed input: DBNError, RuntimeError
    (zstd), and pyo3's PanicException, which derives from BaseException."""
    return isinstance(e, Exception) or type(e).__name__ == "PanicException"


def _definition_records(path, dbn):
    """Records of a (small) DBN definition file as databento_dbn objects; DataError if malformed."""
    path = Path(path)
    require_file(path)
    data = path.read_bytes()
    if not data:
        raise DataError("empty file, not DBN", file=path)
    magic = int.from_bytes(data[:4].ljust(4, b"\0"), "little")
    if magic == ZSTD_MAGIC or magic & 0xFFFFFFF0 == 0x184D2A50:
        with open(path, "rb") as f:
            problem = zstd_problem(f, len(data))
        if problem:
            raise DataError("truncated or corrupt zstd stream", file=path, detail=problem)
        comp = dbn.Compression.ZSTD
    elif data[:3] == b"DBN":
        comp = dbn.Compression.NONE
    else:
        raise DataError("not a DBN file", file=path, detail=f"starts with {data[:4]!r}, neither b'DBN' nor the zstd magic")
    dec = dbn.DBNDecoder(compression=comp, upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    try:
        recs = dec.write_and_decode(data)
    except BaseException as e:  # noqa: B036 - see _decoder_failure
        if not _decoder_failure(e):
            raise
        raise DataError("DBN decoding failed", file=path, detail=str(e)) from None
    if not recs or not isinstance(recs[0], dbn.Metadata):
        raise DataError("truncated DBN file: no complete metadata header", file=path)
    return recs[0], recs[1:]


def _definitions(path, dbn):
    """instrument_id -> (raw_symbol, min_price_increment) from a DBN definition file."""
    meta, recs = _definition_records(path, dbn)
    out = {}
    for r in recs:
        if hasattr(r, "min_price_increment") and hasattr(r, "raw_symbol"):
            out[int(r.instrument_id)] = (str(r.raw_symbol), int(r.min_price_increment))
    if not out:
        raise DataError("no instrument definitions in file", file=path, detail=f"schema {_schema_name(meta)}")
    return out


def _tick_from_increment(inc):
    return Decimal(int(inc)).scaleb(-9).normalize()


def instrument_from_dbn(path, symbol=None, *, instrument_id=None):
    """Instrument (symbol, tick = min_price_increment, lot 1) from a DBN definition file.

    Picks the definition whose raw symbol equals `symbol` (or whose id equals
    `instrument_id`); with neither, the file must define exactly one instrument.
    """
    dbn = _require_dbn()
    defs = _definitions(path, dbn)
    if instrument_id is not None:
        hit = [i for i in defs if i == int(instrument_id)]
    elif symbol is not None:
        hit = [i for i, (s, _) in defs.items() if s == symbol]
    else:
        hit = list(defs)
    if len(hit) != 1:
        have = ", ".join(f"{s} (id {i})" for i, (s, _) in sorted(defs.items()))
        want = symbol if symbol is not None else instrument_id
        raise DataError("cannot pick one instrument definition", file=path,
                        detail=f"wanted {want!r}; file defines {have}")
    sym, inc = defs[hit[0]]
    if inc <= 0 or inc == UNDEF_PRICE:
        raise DataError("definition has no usable min_price_increment", file=path, detail=sym)
    return Instrument(sym, _tick_from_increment(inc), Decimal(1))


def _infer_tick(prices):
    """Largest tick (1e-9 units) dividing every price and 1.0: gcd of the distinct prices
    and of PRICE_SCALE, so one repeated price (3720.25) gives 0.25, not 3720.25. Never
    wrong (every price is a multiple), but coarser than the venue's tick when few
    prices were seen, and at most 1.0 (a tick of 5 is inferred as 1)."""
    u = np.abs(prices[(prices != UNDEF_PRICE) & (prices != 0)])
    if len(u) == 0:
        return PRICE_SCALE
    return max(gcd(int(np.gcd.reduce(u)), PRICE_SCALE), 1)


def _price_columns(rec):
    """Every price column of a record array, flattened (for tick inference)."""
    cols = [rec[f].ravel() for f in ("price", "bid_px", "ask_px") if f in rec.dtype.names]
    if "levels" in rec.dtype.names:
        cols += [rec["levels"]["bid_px"].ravel(), rec["levels"]["ask_px"].ravel()]
    return np.concatenate(cols).astype(np.int64) if cols else np.zeros(0, np.int64)


class _Selection:
    """Which instrument's records are converted, and the Instrument (given, definition or inferred).

    Settled on the first block with records: a file whose first block holds several
    instrument ids needs an Instrument (or definition) whose symbol picks one; later
    blocks' other ids are filtered out and counted (other_instrument_records) -- or,
    when nothing was given to choose by, are a DataError (the file holds several
    instruments). An inferred tick comes from the first block's prices.
    """

    def __init__(self, meta, instrument, path, dbn):
        self.meta, self.instrument, self.path = meta, instrument, path
        self.by_id = _symbols_by_id(meta)
        self.definition = None
        if instrument is not None and not isinstance(instrument, Instrument):
            self.definition = _definitions(instrument, dbn)  # a path to a definition file
        self.inst = None
        self.chosen = None
        self.inferred = None  # records the inferred tick came from

    def settle(self, rec, recno, report):
        path, meta, instrument = self.path, self.meta, self.instrument
        by_id, definition = self.by_id, self.definition
        iid = rec["instrument_id"]
        ids = iid[:1] if len(iid) and (iid == iid[0]).all() else np.unique(iid)
        chosen = None
        if len(ids) > 1:
            want = instrument.symbol if isinstance(instrument, Instrument) else None
            hits = [int(i) for i in ids if want is not None and want in by_id.get(int(i), [])]
            if definition is not None:
                hits = [int(i) for i in ids if int(i) in definition]
            if len(hits) != 1:
                have = ", ".join(f"{int(i)} ({'/'.join(by_id.get(int(i), ['?']))})" for i in ids)
                raise DataError("file holds several instruments; pass an Instrument whose symbol picks one",
                                file=path, detail=f"instrument ids: {have}")
            chosen = hits[0]
        elif len(ids) == 1:
            chosen = int(ids[0])
        self.chosen = chosen
        report.info["instrument_id"] = chosen
        symbols = by_id.get(chosen, []) if chosen is not None else []
        data_symbol = symbols[0] if len(symbols) == 1 else (
            meta.symbols[0] if len(meta.symbols or []) == 1 else (str(chosen) if chosen is not None else ""))
        report.info["symbol_in_data"] = data_symbol
        if isinstance(instrument, Instrument):
            inst = instrument
            report.info["tick_size_source"] = "given"
            known = {str(x) for x in list(symbols) + list(meta.symbols or []) if x} - {"ALL_SYMBOLS", str(chosen)}
            if known and inst.symbol and not _symbol_matches(inst.symbol, known):
                report.anomaly(SYMBOL_MISMATCH, file=path,
                               detail=f"instrument symbol {inst.symbol!r} but the data is {'/'.join(sorted(known))}")
        elif definition is not None:
            if chosen in definition:
                sym, inc = definition[chosen]
            else:
                match = [v for v in definition.values() if v[0] == data_symbol]
                if len(match) != 1:
                    raise DataError("definition file has no definition for this data", file=path,
                                    detail=f"instrument id {chosen}, symbol {data_symbol!r}")
                sym, inc = match[0]
            inst = Instrument(sym, _tick_from_increment(inc), Decimal(1))
            report.info["tick_size_source"] = f"definition file {instrument}"
        else:
            mine = rec if len(ids) <= 1 else rec[iid == chosen]
            tick = _infer_tick(_price_columns(mine))
            inst = Instrument(data_symbol or "UNKNOWN", _tick_from_increment(tick), Decimal(1))
            self.inferred = len(mine)
            report.info["tick_size_source"] = ("inferred: gcd of the prices of the first block of records; pass an "
                                               "Instrument or a definition file to be sure")
        report.info["tick_size"] = plain(inst.tick_size)
        self.inst = inst
        return inst

    def filter(self, rec, recno, report):
        """This block's records of the chosen instrument."""
        iid = rec["instrument_id"]
        if not len(rec) or (iid == self.chosen).all():
            return rec, recno
        keep = iid == self.chosen
        if self.instrument is None and self.chosen is not None:
            k = int(recno[np.argmax(~keep)])
            raise DataError("file holds several instruments; pass an Instrument whose symbol picks one",
                            file=self.path, line=k,
                            detail=f"record {k}: instrument id {int(iid[np.argmax(~keep)])}, after only "
                                   f"{self.chosen} in the first block")
        _add(report, "other_instrument_records", np.count_nonzero(~keep))
        return rec[keep], recno[keep]


# --------------------------------------------------------------------------- conversions shared by the schemas
def _check_timestamps(rec, recno, path):
    """DataError for the first record whose ts_event or ts_recv (u64) does not fit int64
    ns: UNDEF_TIMESTAMP (u64::MAX, no time) or any value >= 2**63; a plain cast would
    make it a negative time."""
    first = None
    for field in ("ts_event", "ts_recv"):
        bad = np.nonzero(rec[field] > np.uint64(_INT64_MAX))[0]
        if len(bad) and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), field)
    if first is None:
        return
    i, field = first
    v = int(rec[field][i])
    n = int(recno[i])
    what = "UNDEF_TIMESTAMP (u64::MAX, undefined)" if v == UNDEF_TIMESTAMP else "beyond int64 nanoseconds"
    raise DataError(f"{field} out of range", file=path, line=n,
                    detail=f"record {n}: {field} = {v} is {what}; timestamps must be below 2**63")


def _ticks(inst, raw, recno, path, undef_ok=False, what="price"):
    """1e-9 prices -> ticks. UNDEF_PRICE becomes 0 where undef_ok (True or a bool mask:
    columns whose undefined entries are never used) and is a DataError elsewhere.
    DataError names the record."""
    raw = np.asarray(raw, dtype=np.int64)
    undef = raw == UNDEF_PRICE
    bad = np.nonzero(undef & ~np.asarray(undef_ok, dtype=bool))[0]
    if len(bad):
        n = int(recno[bad[0]])
        raise DataError(f"undefined {what} (UNDEF_PRICE)", file=path, line=n,
                        detail=f"record {n}: {what} is UNDEF_PRICE ({UNDEF_PRICE}) where a price is required"
                               + (f" ({len(bad)} such records)" if len(bad) > 1 else ""))
    vals = np.where(undef, 0, raw) if undef.any() else raw
    try:
        return inst.prices_from_scaled(vals, PRICE_SCALE, where=path)
    except DataError as e:
        if e.line is not None:  # array index + 1 -> record number
            n = int(recno[e.line - 1])
            raise DataError(e.reason, file=path, line=n, detail=f"record {n}; {e.detail}") from None
        raise


def _lots(inst, raw, recno, path):
    raw = np.asarray(raw, dtype=np.int64)
    try:
        return inst.qtys_from_scaled(raw, 1, where=path)
    except DataError as e:
        if e.line is not None:
            n = int(recno[e.line - 1])
            raise DataError(e.reason, file=path, line=n, detail=f"record {n}; {e.detail}") from None
        raise


def _side_codes(side_chars):
    """'B' -> +1, 'A' -> -1, anything else ('N') -> 0."""
    return np.where(side_chars == _SIDE_B, 1, np.where(side_chars == _SIDE_A, -1, 0)).astype(np.int8)


def _batch_end_positions(ev_rec, last_mask):
    """Event index carrying BATCH_END for every record in last_mask: the record's last
    emitted event, or the closest earlier event when the record emitted none (-1: an
    event of an earlier block)."""
    recs = np.nonzero(last_mask)[0]
    pos = np.searchsorted(ev_rec, recs, side="right") - 1  # non-decreasing
    return np.unique(pos)


class _BatchEnds:
    """Batch ends of the vectorized schemas across blocks: F_LAST (or every record), plus the end
    of a snapshot run that lacks F_LAST (Databento files before 2024-02-10), which is known only
    at the next record -- possibly in the next block."""

    def __init__(self, snapshot_runs=True, every_record=False):
        self.snapshot_runs, self.every_record = snapshot_runs, every_record
        self.open_run = False
        self.open_batch = False  # the last record so far did not end its batch
        self.any_event = False

    def flags(self, flags, ev_rec, report):
        """-> (event flags, mark_prev: a batch ends on an event of an earlier block)."""
        n = len(flags)
        last = np.ones(n, bool) if self.every_record else (flags & F_LAST) != 0
        mark_prev = False
        snap = (flags & F_SNAPSHOT) != 0
        if self.snapshot_runs and n:
            missing = snap & ~np.r_[snap[1:], True] & ~last  # the last record's run end is undetermined
            runs = int(np.count_nonzero(missing))
            if self.open_run and not snap[0]:
                mark_prev, runs = True, runs + 1
            if runs:
                _add(report, "snapshot_runs_without_last_flag", runs)
            self.open_run = bool(snap[-1] and not last[-1])
            last = last | missing
        if n:
            self.open_batch = not last[-1]
        fl = np.zeros(len(ev_rec), dtype=np.uint16)
        fl[(flags[ev_rec] & F_SNAPSHOT) != 0] |= np.uint16(Flag.SNAPSHOT)
        pos = _batch_end_positions(ev_rec, last)
        if len(pos) and pos[0] < 0:
            mark_prev, pos = True, pos[1:]
        fl[pos] |= np.uint16(Flag.BATCH_END)
        mark_prev = mark_prev and self.any_event
        self.any_event = self.any_event or len(ev_rec) > 0
        return fl, mark_prev

    def finish(self, report):
        if self.open_run:
            self.open_run = False
            _add(report, "snapshot_runs_without_last_flag", 1)
            return self.any_event
        return _close_open_batch(self.open_batch and self.any_event, report)


def _close_open_batch(open_batch, report):
    """At the end of the stream: a batch still open (its last record lacks F_LAST: a file cut inside
    an event, or F_LAST never set) ends on the last event, counted as info batch_open_at_end."""
    if open_batch:
        _add(report, "batch_open_at_end", 1)
    return open_batch


def _iso(ns):
    return datetime.fromtimestamp(int(ns) // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + \
        f".{int(ns) % 10**9:09d}Z"


class _Clock:
    """Live records whose ts_event goes back in time (counted, never reordered), ts_recv
    decreases, and MAYBE_BAD_BOOK flags, carried across blocks."""

    def __init__(self):
        self.runmax = None  # latest live ts_event so far
        self.last_recv = None

    def check(self, rec, recno, report):
        if not len(rec):
            return
        has_flags = "flags" in rec.dtype.names
        flags = rec["flags"] if has_flags else np.zeros(len(rec), np.uint8)
        live = (flags & F_SNAPSHOT) == 0
        te = rec["ts_event"].astype(np.int64)[live]
        if len(te):
            ext = te if self.runmax is None else np.r_[self.runmax, te]
            runmax = np.maximum.accumulate(ext)
            back = np.nonzero(ext[1:] < runmax[:-1])[0] + 1  # positions in ext
            if len(back):
                j = int(back[0]) - (0 if self.runmax is None else 1)  # position in te
                k = int(recno[live][j])
                report.anomaly(OUT_OF_ORDER_TS, line=k, count=len(back),
                               detail=f"record {k}: ts_event {_iso(ext[back[0]])} before an earlier record's "
                                      f"{_iso(runmax[back[0] - 1])} (file order kept)")
            self.runmax = int(runmax[-1])
        tr = rec["ts_recv"].astype(np.int64)
        ext = tr if self.last_recv is None else np.r_[self.last_recv, tr]
        _add(report, "ts_recv_decreases", np.count_nonzero(np.diff(ext) < 0))
        self.last_recv = int(tr[-1])
        if has_flags:
            gap = np.nonzero(flags & F_MAYBE_BAD_BOOK)[0]
            if len(gap):
                k = int(recno[gap[0]])
                report.anomaly(SEQUENCE_GAP, line=k, count=len(gap),
                               detail=f"record {k}: flag MAYBE_BAD_BOOK (vendor saw an unrecoverable gap)")


class _Crossed:
    """Replay at batch ends (a book kept across blocks); count books with best bid >= best ask.

    A crossing whose next trade print has no aggressor (an auction uncross, e.g. the
    CME open) is a legitimate pre-open crossing and goes to info; any other is a
    CROSSED_BOOK anomaly. A crossing waits for its next print, possibly in a later block.
    """

    def __init__(self, level_book):
        from lobsim.book import LevelBook, OrderBook

        self.book = LevelBook() if level_book else OrderBook()
        self.base = 0  # events checked before
        self.pending = []  # crossings waiting for a print: (event index, recno, ts, bid, ask)
        self.span = None

    def close(self):
        self.book.close()

    def _resolve(self, crossings, preopen, report):
        pre = [c for c, p in zip(crossings, preopen) if p]
        bad = [c for c, p in zip(crossings, preopen) if not p]
        if pre:
            first = pre[0][2] if self.span is None else self.span[0]
            self.span = (first, pre[-1][2])
            report.info["crossed_preopen_span"] = f"{_iso(self.span[0])} .. {_iso(self.span[1])}"
        if bad:
            j, k, ts, b, a = bad[0]
            report.anomaly(CROSSED_BOOK, count=len(bad), line=k,
                           detail=f"record {k} (event {j}) at {_iso(ts)}: bid {b} >= ask {a} (ticks) after a batch")
        return len(pre)

    def check(self, arr, recnos, report):
        idx, bid_px, ask_px, checked, rejected, first_rejected = crossed_batch_ends(arr, self.book)
        base, self.base = self.base, self.base + len(arr)
        if checked:
            _add(report, "batch_ends_checked", checked)
        if rejected:  # our own events refused by the book: a reader bug or bad data
            report.anomaly(REPLAY_REJECTED, count=rejected, line=int(recnos[first_rejected]),
                           detail=f"the verification replay refused {rejected} events, first event "
                                  f"{base + first_rejected}")
        trades = np.nonzero(arr["kind"] == EventKind.TRADE)[0]
        n_pre = 0
        if self.pending and len(trades):
            waiting, self.pending = self.pending, []
            n_pre += self._resolve(waiting, [arr["side"][trades[0]] == 0] * len(waiting), report)
        if len(idx):
            nxt = np.searchsorted(trades, idx, side="right")  # the first print after each crossing
            has_next = nxt < len(trades)
            found = [(base + int(j), int(recnos[j]), int(arr["ts_exch"][j]), int(b), int(a))
                     for j, b, a in zip(idx, bid_px, ask_px)]
            now = [c for c, h in zip(found, has_next) if h]
            pre = [bool(arr["side"][trades[k]] == 0) for k, h in zip(nxt, has_next) if h]
            n_pre += self._resolve(now, pre, report)
            self.pending += [c for c, h in zip(found, has_next) if not h]
        if checked or n_pre:
            _add(report, "crossed_batch_ends_preopen", n_pre)

    def finish(self, report):
        if self.pending:  # no print after them: not an auction uncross
            waiting, self.pending = self.pending, []
            self._resolve(waiting, [False] * len(waiting), report)


class _Pipeline:
    """Passes events on to the ChunkedOutput, holding back the last one: a later record (in the
    next block) may put BATCH_END on it. Runs the crossed-book check on what it passes on."""

    def __init__(self, out, crossed, status=None):
        self.out, self.crossed = out, crossed
        self.tail = None
        self.status = status  # STATUS events of a status file to merge in (read_dbn status=), or None
        self.runmax = None  # latest ts_exch of the book events passed on so far
        self.in_stream = _empty()[:2]  # STATUS events of the stream's own status records, their record numbers

    def add_stream_status(self, ev, recnos):
        """STATUS events of status records found in the book stream: placed by record number."""
        if len(ev):
            self.in_stream = (np.concatenate([self.in_stream[0], ev]), np.concatenate([self.in_stream[1], recnos]))

    def _commit(self, arr, recnos):
        if not len(arr):
            return
        if self.crossed is not None:
            self.crossed.check(arr, recnos, self.out.report)
        _add(self.out.report, "events", len(arr))
        st, st_recno = self.in_stream
        if len(st):  # those recorded before this piece's last record go before the first later book event
            n = int(np.searchsorted(st_recno, recnos[-1], side="left"))
            if n:
                arr = np.insert(arr, np.searchsorted(recnos, st_recno[:n]), st[:n])
                self.in_stream = (st[n:], st_recno[n:])
        if self.status is not None and len(self.status):
            arr = self._merge_status(arr)
        yield from self.out.add(arr)

    def _merge_status(self, arr):
        """Put each STATUS event after every book event up to its exchange time (ties: book first).
        One at or after this piece's latest time waits: the next piece may hold equal times."""
        runmax = np.maximum.accumulate(arr["ts_exch"] if self.runmax is None else
                                       np.maximum(arr["ts_exch"], self.runmax))
        self.runmax = int(runmax[-1])
        n = int(np.searchsorted(self.status["ts_exch"], self.runmax, side="left"))
        if not n:
            return arr
        due, self.status = self.status[:n], self.status[n:]
        return np.insert(arr, np.searchsorted(runmax, due["ts_exch"], side="right"), due)

    def push(self, ev, recnos, mark_prev):
        if mark_prev and self.tail is not None:
            self.tail[0]["flags"] |= np.uint16(Flag.BATCH_END)
        if not len(ev):
            return
        if self.tail is not None:
            yield from self._commit(*self.tail)
        yield from self._commit(ev[:-1], recnos[:-1])
        self.tail = (ev[-1:].copy(), recnos[-1:])

    def finish(self, mark_prev):
        if mark_prev and self.tail is not None:
            self.tail[0]["flags"] |= np.uint16(Flag.BATCH_END)
        if self.tail is not None:
            yield from self._commit(*self.tail)
            self.tail = None
        if len(self.in_stream[0]):  # the stream's status records after its last book record
            yield from self.out.add(self.in_stream[0])
            self.in_stream = _empty()[:2]
        if self.status is not None and len(self.status):  # after the last book event
            yield from self.out.add(self.status)
            self.status = None
        if self.crossed is not None:
            self.crossed.finish(self.out.report)


def _report_notes(report, notes):
    """notes: (first record number, reason, count, [(record number, detail), ...]) per reason.
    Strict: the earliest raises. Otherwise the first few are reported one by one
    (examples), the rest as one count."""
    notes = sorted((n for n in notes if n[2]), key=lambda t: t[0])
    if not notes:
        return
    if report.strict:
        _, reason, _, ex = notes[0]
        report.anomaly(reason, line=ex[0][0], detail=f"record {ex[0][0]}: {ex[0][1]}")  # raises
    for _, reason, count, ex in notes:
        ex = ex[:MAX_EXAMPLES]
        for k, det in ex:
            report.anomaly(reason, line=k, detail=f"record {k}: {det}")
        if count > len(ex):
            report.anomaly(reason, line=ex[-1][0], detail=f"record {ex[-1][0]}: {ex[-1][1]}", count=count - len(ex))


def _action_counts(counts):
    """{'A': count, ...} of the action characters counted (a 256-entry bincount)."""
    return {chr(k): int(counts[k]) for k in np.nonzero(counts)[0]}


def _trades_with_price(mask, rec, recno, report):
    """mask without the records whose price is UNDEF_PRICE; those are counted as
    skipped:trade_without_price (strict: DataError at the first)."""
    undef = np.nonzero(mask & (rec["price"] == UNDEF_PRICE))[0]
    if len(undef):
        n = int(recno[undef[0]])
        report.skip(TRADE_WITHOUT_PRICE, line=n, count=len(undef),
                    detail=f"record {n}: trade with UNDEF_PRICE (no price), not emitted")
        mask = mask.copy()
        mask[undef] = False
    return mask


def _empty():
    return empty_events(0), np.zeros(0, np.int64), False


# --------------------------------------------------------------------------- MBO
_NOTE_REASONS = [  # lob_dbn_mbo_result.notes index -> (reason, detail(a, b, c))
    (UNKNOWN_ORDER_ID, lambda a, b, c: f"cancel of unknown order id {a}"),
    (UNKNOWN_ORDER_ID, lambda a, b, c: f"modify of unknown order id {a} (applied as an add)"),
    (CANCEL_EXCEEDS_ORDER, lambda a, b, c: f"cancel of {b} from order {a} of {c}"),
    (DUPLICATE_ORDER_ID, lambda a, b, c: f"add of resting order id {a}"),
    (f"{SKIPPED}:add_without_side_or_size", lambda a, b, c: f"add of order {a} side {chr(b)} size {c}"),
    (f"{SKIPPED}:unknown_action", lambda a, b, c: f"action {b!r}"),
    (f"{SKIPPED}:{TRADE_WITHOUT_PRICE}", lambda a, b, c: f"trade of size {b} with UNDEF_PRICE (no price), not emitted"),
]
_COUNT_NAMES = ["cancel_absorbed_by_execute", "readded_after_execute", "cancel_below_executed", "modify_side_change",
                "modify_to_zero", "fill_not_emitted", "fill_unknown_order", "fill_not_at_resting_order",
                "fill_exceeds_order", "fill_executed", "fills_unreconciled_at_batch_end", "none_action"]
_SNAPSHOT_RUNS = 12  # LOB_DBN_SNAPSHOT_RUNS_WITHOUT_LAST


class _Mbo:
    """MBO -> L3 events: checks vectorized per block, the order tracker in C (csrc/dbn.c),
    whose state (live orders, fills awaiting their C/M, the open batch) spans the blocks."""

    level_book = False

    def __init__(self, inst, path, fills):
        self.inst, self.path, self.fills = inst, path, fills
        p = ffi.new("lob_dbn_mbo **")
        rc = lib.lob_dbn_mbo_new(p, 1 if fills == "execute" else 0)
        if rc != lib.LOB_OK:
            raise MemoryError("DBN MBO tracker: out of memory")
        self.t = ffi.gc(p[0], lib.lob_dbn_mbo_free)
        self.res = ffi.new("lob_dbn_mbo_result *")
        self.actions = np.zeros(256, np.int64)
        self.counts = np.zeros(len(_COUNT_NAMES), np.int64)
        self.publisher = None
        self.open_batch = False  # the last record so far lacks F_LAST
        self.any_event = False

    def _mapping(self, report):
        report.info["fill_handling"] = self.fills
        report.info["mbo_mapping"] = {k: int(v) for k, v in sorted(zip(_COUNT_NAMES, self.counts.tolist())) if v}

    def _take_counts(self, report):
        res = self.res
        self.counts += np.frombuffer(ffi.buffer(res.counts), np.int64)[:len(_COUNT_NAMES)]
        if res.counts[_SNAPSHOT_RUNS]:
            _add(report, "snapshot_runs_without_last_flag", res.counts[_SNAPSHOT_RUNS])

    def block(self, rec, recno, report):
        path, inst = self.path, self.inst
        n = len(rec)
        if not n:
            return _empty()
        flags, act = rec["flags"], rec["action"]
        pubs = rec["publisher_id"]
        if self.publisher is None:
            self.publisher = int(pubs[0])
        if not (pubs == self.publisher).all():
            raise DataError("MBO from several venues (publisher ids) for one instrument", file=path,
                            detail=f"publisher ids {sorted(set(pubs.tolist()) | {self.publisher})}: one order book "
                                   "per venue; split the file by publisher_id first")
        tob = np.nonzero(flags & F_TOB)[0]
        if len(tob):
            k = int(recno[tob[0]])
            raise DataError("MBO records flagged TOB (a top-of-book-only venue) are not order-by-order data",
                            file=path, line=k, detail=f"record {k}: such an add replaces the whole side")
        self.actions += np.bincount(act, minlength=256)
        report.info["actions"] = _action_counts(self.actions)
        _add(report, "snapshot_records", np.count_nonzero(flags & F_SNAPSHOT))
        _add(report, "bad_ts_recv_records", np.count_nonzero(flags & F_BAD_TS_RECV))
        # validates every price against the tick; A/M/F need one (module docstring)
        needs = (act == _A) | (act == _M) | (act == _F)
        _ticks(inst, rec["price"], recno, path, undef_ok=~needs, what="price of an A/M/F record")
        _lots(inst, rec["size"], recno, path)  # and every size against the lot
        rec = np.ascontiguousarray(rec)
        cap = 2 * n
        events = np.empty(cap, dtype=EVENT_DTYPE)
        ev_rec = np.empty(cap, dtype=np.int64)
        rc = lib.lob_dbn_mbo_run(self.t, ffi.from_buffer(rec), n, rec.dtype.itemsize,
                                 ffi.cast("lob_event *", ffi.from_buffer(events)),
                                 ffi.cast("int64_t *", ffi.from_buffer(ev_rec)), cap, self.res)
        if rc == lib.LOB_ERR_NOMEM:
            raise MemoryError("DBN MBO tracker: out of memory")
        if rc != lib.LOB_OK:
            raise AssertionError(f"lob_dbn_mbo_run failed ({rc})")
        res = self.res
        m = int(res.n_events)
        self.open_batch = not int(flags[-1]) & F_LAST
        self.any_event = self.any_event or m > 0
        ev = events[:m] if 4 * m >= 3 * cap else events[:m].copy()
        ev_rec = ev_rec[:m]
        self._take_counts(report)
        notes = {}
        for code, (reason, det) in enumerate(_NOTE_REASONS):
            count = int(res.note_count[code])
            if not count:
                continue
            ex = [(int(recno[x.record]), det(int(x.a), int(x.b), int(x.c)))
                  for x in (res.notes[code][k] for k in range(res.note_n[code]))]
            first, _, c0, ex0 = notes.get(reason, (None, reason, 0, []))
            ex = sorted(ex0 + ex)
            notes[reason] = (ex[0][0], reason, c0 + count, ex)
        _report_notes(report, notes.values())
        self._mapping(report)
        if m:
            ev["price"] = inst.prices_from_scaled(ev["price"], PRICE_SCALE, where=path)
            ev["qty"] = inst.qtys_from_scaled(ev["qty"], 1, where=path)
        return ev, recno[ev_rec], bool(res.mark_prev)

    def finish(self, report):
        lib.lob_dbn_mbo_finish(self.t, self.res)
        self._take_counts(report)
        self._mapping(report)
        report.info["resting_orders_at_end"] = int(self.res.resting)
        if self.res.counts[_SNAPSHOT_RUNS]:  # an open snapshot run: closed (and counted) by the tracker
            return bool(self.res.mark_prev)
        return _close_open_batch(self.open_batch and self.any_event, report) or bool(self.res.mark_prev)


# --------------------------------------------------------------------------- L2 schemas
def _level_columns(rec, depth):
    """(bid px, bid sz, ask px, ask sz) of a record array as (n, depth) int64 arrays."""
    src = rec["levels"] if depth > 1 else rec
    cols = [np.asarray(src[f], dtype=np.int64).reshape(len(rec), depth) for f in ("bid_px", "bid_sz", "ask_px", "ask_sz")]
    return cols


class _Levels:
    """MBP-1, MBP-10, CMBP-1 (action records with the vendor's book after each), BBO and CBBO
    (interval samples of the top of book) -> L2 events.

    Each side's levels are compared with the previous record's (carried across blocks): a
    level no longer present becomes SET_LEVEL qty 0, a new level or a changed size a
    SET_LEVEL with the record's size; so the L2 book after every record is the record's
    levels exactly (a level pushed out of the 10 shown is deleted too). Action R is a CLEAR
    (the book before the record's levels is empty), action T a TRADE. Per record: CLEAR,
    TRADE, bid deletions, bid sets, ask deletions, ask sets.
    """

    level_book = True

    def __init__(self, inst, path, depth, actions, every_record):
        self.inst, self.path, self.depth, self.actions = inst, path, depth, actions
        self.ends = _BatchEnds(snapshot_runs=not every_record, every_record=every_record)
        self.prev = [np.full(depth, UNDEF_PRICE, np.int64), np.zeros(depth, np.int64)] * 2  # bid px/sz, ask px/sz
        self.prev_ticks = [np.zeros(depth, np.int64)] * 2
        self.action_counts = np.zeros(256, np.int64)

    def block(self, rec, recno, report):
        n, d, inst, path = len(rec), self.depth, self.inst, self.path
        if not n:
            return _empty()
        zeros = np.zeros(n, dtype=np.int64)
        cols = []  # per candidate column: (mask, kind, side, price ticks, qty lots), each (n,)
        if self.actions:
            act = rec["action"]
            self.action_counts += np.bincount(act, minlength=256)
            report.info["actions"] = _action_counts(self.action_counts)
            is_r = act == _R
            cols.append((is_r, EventKind.CLEAR, zeros, zeros, zeros))
            is_t = _trades_with_price(act == _T, rec, recno, report)
            # undefined prices only where unused: non-T records and skipped T records
            cols.append((is_t, EventKind.TRADE, _side_codes(rec["side"]).astype(np.int64),
                         _ticks(inst, rec["price"], recno, path, undef_ok=True), _lots(inst, rec["size"], recno, path)))
        else:
            is_r = np.zeros(n, bool)
        rn = np.repeat(recno, d)
        levels = _level_columns(rec, d)
        for s, sd in ((0, 1), (1, -1)):
            px, sz = levels[2 * s], levels[2 * s + 1]
            ticks = _ticks(inst, px.ravel(), rn, path, undef_ok=True).reshape(n, d)
            lots = _lots(inst, sz.ravel(), rn, path).reshape(n, d)
            live = (px != UNDEF_PRICE) & (sz > 0)
            px = np.where(live, px, UNDEF_PRICE)
            sz = np.where(live, sz, 0)
            prev_px = np.concatenate([self.prev[2 * s][None], px[:-1]])
            prev_sz = np.concatenate([self.prev[2 * s + 1][None], sz[:-1]])
            prev_tk = np.concatenate([self.prev_ticks[s][None], ticks[:-1]])
            prev_px[is_r] = UNDEF_PRICE  # a clear empties the book before this record's levels
            prev_sz[is_r] = 0
            prev_def = prev_px != UNDEF_PRICE
            if d == 1:
                moved = px[:, 0] != prev_px[:, 0]
                gone = (moved & prev_def[:, 0])[:, None]
                new = (live[:, 0] & (moved | (sz[:, 0] != prev_sz[:, 0])))[:, None]
            else:
                eq = (prev_px[:, :, None] == px[:, None, :]) & prev_def[:, :, None] & live[:, None, :]
                gone = prev_def & ~eq.any(2)
                had = (eq * prev_sz[:, :, None]).sum(1)  # the previous size at each current price (0: new)
                new = live & (~eq.any(1) | (sz != had))
            sides = np.full(n, sd, dtype=np.int64)
            for j in range(d):
                cols.append((gone[:, j], EventKind.SET_LEVEL, sides, prev_tk[:, j], zeros))
            for j in range(d):
                cols.append((new[:, j], EventKind.SET_LEVEL, sides, ticks[:, j], lots[:, j]))
            self.prev[2 * s], self.prev[2 * s + 1], self.prev_ticks[s] = px[-1], sz[-1], ticks[-1]
        mask = np.stack([c[0] for c in cols], axis=1)
        r, c = np.nonzero(mask)  # row-major: record order, then column order
        out = empty_events(len(r))
        out["ts_exch"] = rec["ts_event"][r]
        out["ts_local"] = rec["ts_recv"][r]
        out["kind"] = np.array([int(col[1]) for col in cols], dtype=np.uint8)[c]
        out["side"] = np.stack([col[2] for col in cols], axis=1)[r, c]
        out["price"] = np.stack([col[3] for col in cols], axis=1)[r, c]
        out["qty"] = np.stack([col[4] for col in cols], axis=1)[r, c]
        fl, mark_prev = self.ends.flags(rec["flags"], r, report)
        out["flags"] = fl
        _add(report, "snapshot_records", np.count_nonzero(rec["flags"] & F_SNAPSHOT))
        return out, recno[r], mark_prev

    def finish(self, report):
        return self.ends.finish(report)


class _Trades:
    """Trades / TBBO / TCBBO -> TRADE events (side = aggressor, 'N' -> 0); records without a
    price are skipped and counted."""

    level_book = None  # no book to check

    def __init__(self, inst, path, schema):
        self.inst, self.path, self.schema = inst, path, schema
        self.ends = _BatchEnds(snapshot_runs=False)

    def block(self, rec, recno, report):
        inst, path = self.inst, self.path
        if self.schema in ("tbbo", "tcbbo"):
            report.info["note"] = f"{self.schema}: only the trades are converted (its BBO is the one before each trade)"
        if not len(rec):
            return _empty()
        ev_rec = np.nonzero(_trades_with_price(np.ones(len(rec), dtype=bool), rec, recno, report))[0]
        out = empty_events(len(ev_rec))
        out["ts_exch"] = rec["ts_event"][ev_rec]
        out["ts_local"] = rec["ts_recv"][ev_rec]
        out["kind"] = EventKind.TRADE
        out["side"] = _side_codes(rec["side"][ev_rec])
        out["price"] = _ticks(inst, rec["price"][ev_rec], recno[ev_rec], path)
        out["qty"] = _lots(inst, rec["size"][ev_rec], recno[ev_rec], path)
        bad = rec["action"] != _T
        if bad.any():
            _add(report, "non_trade_actions", np.count_nonzero(bad))
        fl, mark_prev = self.ends.flags(rec["flags"], ev_rec, report)
        out["flags"] = fl & np.uint16(Flag.BATCH_END)  # prints carry no snapshot flag
        return out, recno[ev_rec], mark_prev

    def finish(self, report):
        return self.ends.finish(report)


# Status records -> lobsim.TradingStatus (module docstring, "Status").
_YES, _NO = ord("Y"), ord("N")
_STATUS_ACTION_NAMES = {0: "NONE", 1: "PRE_OPEN", 2: "PRE_CROSS", 3: "QUOTING", 4: "CROSS", 5: "ROTATION",
                        6: "NEW_PRICE_INDICATION", 7: "TRADING", 8: "HALT", 9: "PAUSE", 10: "SUSPEND",
                        11: "PRE_CLOSE", 12: "CLOSE", 13: "POST_CLOSE", 14: "SSR_CHANGE",
                        15: "NOT_AVAILABLE_FOR_TRADING"}
_STATUS_OF_ACTION = {  # used only when is_trading / is_quoting do not say (NOT_AVAILABLE '~')
    7: TradingStatus.TRADING,
    1: TradingStatus.QUOTING, 2: TradingStatus.QUOTING, 3: TradingStatus.QUOTING, 4: TradingStatus.QUOTING,
    5: TradingStatus.QUOTING, 6: TradingStatus.QUOTING,
    8: TradingStatus.HALT, 9: TradingStatus.HALT, 10: TradingStatus.HALT, 12: TradingStatus.HALT,
    15: TradingStatus.HALT,
}


def status_of(action, is_trading, is_quoting):
    """The lobsim.TradingStatus of one status record's fields, or None when they name none.

    is_trading 'Y' -> TRADING; is_trading 'N' with is_quoting 'Y' -> QUOTING, with 'N' ->
    HALT; otherwise (either is '~', not available) the action decides: TRADING ->
    TRADING; PRE_OPEN, PRE_CROSS, QUOTING, CROSS, ROTATION, NEW_PRICE_INDICATION ->
    QUOTING (orders accepted, no continuous matching); HALT, PAUSE, SUSPEND, CLOSE,
    NOT_AVAILABLE_FOR_TRADING -> HALT; NONE, PRE_CLOSE, POST_CLOSE, SSR_CHANGE and unknown
    values -> None (no state named: counted, not guessed).
    """
    if is_trading == _YES:
        return TradingStatus.TRADING
    if is_trading == _NO and is_quoting in (_YES, _NO):
        return TradingStatus.QUOTING if is_quoting == _YES else TradingStatus.HALT
    st = _STATUS_OF_ACTION.get(int(action))
    if st is not None and is_trading == _NO and st == TradingStatus.TRADING:
        return None  # contradicts is_trading 'N'
    return st


class _Status:
    """Status records -> STATUS events (qty = lobsim.TradingStatus), each its own batch."""

    level_book = None

    def __init__(self, inst, path):
        self.inst, self.path = inst, path
        self.actions = {}

    def block(self, rec, recno, report):
        if not len(rec):
            return _empty()
        act, trd, quo = rec["action"], rec["is_trading"], rec["is_quoting"]
        for a, c in zip(*np.unique(act, return_counts=True)):
            name = _STATUS_ACTION_NAMES.get(int(a), f"unknown({int(a)})")
            self.actions[name] = self.actions.get(name, 0) + int(c)
        report.info["status_actions"] = dict(self.actions)
        ev_n = np.array([int(status_of(a, t, q) or 0) for a, t, q in zip(act.tolist(), trd.tolist(), quo.tolist())],
                        dtype=np.int64)
        skip = np.nonzero(ev_n == 0)[0]
        if len(skip):
            i = int(skip[0])
            k = int(recno[i])
            report.skip(STATUS_UNMAPPED, line=k, count=len(skip),
                        detail=f"record {k}: action {_STATUS_ACTION_NAMES.get(int(act[i]), int(act[i]))}, "
                               f"is_trading {chr(trd[i])!r}, is_quoting {chr(quo[i])!r} name no trading state")
        ev_rec = np.nonzero(ev_n)[0]
        out = empty_events(len(ev_rec))
        out["ts_exch"] = rec["ts_event"][ev_rec]
        out["ts_local"] = rec["ts_recv"][ev_rec]
        out["kind"] = EventKind.STATUS
        out["qty"] = ev_n[ev_rec]
        out["flags"] = Flag.BATCH_END
        return out, recno[ev_rec], False

    def finish(self, report):
        return False


# --------------------------------------------------------------------------- main entry
def _stream_status_events(parts, sel, conv, path, report):
    """STATUS events (and their record numbers) of the status records found inside a book stream,
    for the chosen instrument. Flags 0: a status between two records of one batch does not end it."""
    rec = np.concatenate([r for r, _ in parts])
    recno = np.concatenate([n for _, n in parts])
    keep = rec["instrument_id"] == sel.chosen
    _add(report, "other_instrument_records", np.count_nonzero(~keep))
    rec, recno = rec[keep], recno[keep]
    if not len(rec):
        return _empty()[:2]
    _check_timestamps(rec, recno, path)
    ev, ev_recno, _ = conv.block(rec, recno, report)
    ev["flags"] = 0
    return ev, ev_recno


def _unsupported(schema, classes, path):
    found = ", ".join(sorted(classes)) or "no records"
    hint = "; read definitions with instrument_from_dbn()" if schema == "definition" else ""
    return DataError(f"unsupported DBN schema {schema!r}", file=path,
                     detail=f"supported: {', '.join(_SCHEMAS)}; records found: {found}{hint}")


def _converter(kind, schema, inst, path, fills):
    if kind == "mbo":
        return _Mbo(inst, path, fills)
    if kind == "levels":
        return _Levels(inst, path, 10 if schema == "mbp-10" else 1, actions=True, every_record=False)
    if kind == "bbo":
        return _Levels(inst, path, 1, actions=False, every_record=True)
    if kind == "trades":
        return _Trades(inst, path, schema)
    return _Status(inst, path)


def iter_dbn(path, *, instrument=None, strict=False, fills="execute", status=None, chunk_rows=DEFAULT_CHUNK_ROWS,
             progress=None):
    """Stream a Databento DBN file (raw or .zst) as Events chunks of exactly `chunk_rows` events
    (the last may be shorter); arguments as read_dbn. The file is read in blocks of a few MB;
    memory is bounded by a block, a chunk and the live orders. `progress(bytes)` is called
    with the bytes of the file consumed so far (compressed bytes for .zst), after every block
    and at the end. Each chunk carries the report of what was noted since the previous one
    (ValidationReport.merged of them all is read_dbn's report).
    """
    if fills not in ("execute", "ignore"):
        raise ValueError(f"fills must be 'execute' or 'ignore', got {fills!r}")
    dbn = _require_dbn()
    out = ChunkedOutput(chunk_rows, str(Path(path)), strict)
    return _iter_dbn(Path(path), instrument, fills, progress, dbn, out, status)


def _status_events(status, inst, report):
    """The STATUS events of the status-schema DBN file `status` for `inst` (its symbol selects
    the instrument), ordered by exchange time; its anomalies go to `report`."""
    st = read_dbn(status, instrument=inst, strict=report.strict)
    if st.report.info.get("schema") != "status":
        raise DataError(f"status= takes a status-schema DBN file, this one holds {st.report.info.get('schema')!r}",
                        file=status)
    report.merge(ValidationReport(counts=st.report.counts, examples=st.report.examples))
    report.info.update(status_file=str(status), status_events=len(st.array))
    return st.array[np.argsort(st.array["ts_exch"], kind="stable")]


def _iter_dbn(path, instrument, fills, progress, dbn, out, status=None):
    src = DbnSource(path, dbn)
    conv = crossed = None
    try:
        meta = src.metadata
        schema = _schema_name(meta)
        blocks = src.blocks()
        block = next(blocks, None)
        classes = list(block.groups) if block is not None else []
        if schema is None:
            main = [c for c in classes if c in _SCHEMA_OF_CLASS and c != "StatusMsg"] or \
                   [c for c in classes if c == "StatusMsg"]
            if not main:
                raise _unsupported(schema, classes, path)
            schema = _SCHEMA_OF_CLASS[main[0]]
        if schema not in _SCHEMAS:
            raise _unsupported(schema, classes, path)
        cls, kind = _SCHEMAS[schema]
        report = out.report
        report.info.update({"schema": schema, "dataset": meta.dataset, "dbn_version": int(meta.version),
                            "records": 0, "events": 0})
        sel = _Selection(meta, instrument, path, dbn)
        others = {}
        empty = np.zeros(0, dtype=DTYPE_OF_CLASS[cls])
        clock = _Clock()
        stream_status, status_conv = [], None  # status records inside this book stream, not yet converted
        while True:
            report = out.report
            if block is not None:
                for name, (_, numbers) in block.groups.items():
                    if name == cls:
                        continue
                    if name in _SCHEMA_OF_CLASS and name != "StatusMsg":  # another schema's records
                        k = int(numbers[0])
                        raise DataError(f"record of another schema in a {schema} file", file=path, line=k,
                                        detail=f"record {k}: {name} (schema {_SCHEMA_OF_CLASS[name]}); one schema "
                                               "per file: split the file by record type first")
                    others[name] = others.get(name, 0) + len(numbers)
                    if name == "StatusMsg":  # converted in place once the instrument is settled
                        stream_status.append(block.groups[name])
                if others:
                    report.info["other_records"] = dict(others)
                rec, recno = block.groups.get(cls, (empty, np.zeros(0, np.int64)))
                _add(report, "records", block.n)
            else:
                rec, recno = empty, np.zeros(0, np.int64)
            if conv is None and (len(rec) or block is None):
                inst = out.instrument = sel.settle(rec, recno, report)
                conv = _converter(kind, schema, inst, path, fills)
                if conv.level_book is not None:
                    crossed = _Crossed(conv.level_book)
                pipe = _Pipeline(out, crossed, None if status is None else _status_events(status, inst, report))
            if conv is not None and stream_status:
                status_conv = status_conv or _Status(inst, path)
                pipe.add_stream_status(*_stream_status_events(stream_status, sel, status_conv, path, report))
                stream_status = []
            if conv is not None and len(rec):
                rec, recno = sel.filter(rec, recno, report)
                _check_timestamps(rec, recno, path)
                try:
                    ev, ev_recno, mark_prev = conv.block(rec, recno, report)
                except DataError as e:
                    if sel.inferred is None or "not a multiple" not in e.reason:
                        raise
                    raise DataError(e.reason, file=e.file, line=e.line,
                                    detail=f"{e.detail}; the tick size {plain(sel.inst.tick_size)} was inferred from "
                                           f"the first {sel.inferred} records: pass instrument= (an Instrument or a "
                                           "definition file)") from None
                clock.check(rec, recno, report)
                yield from pipe.push(ev, ev_recno, mark_prev)
            if progress is not None:
                progress(src.position())
            if block is None:
                break
            block = next(blocks, None)
            if block is None and conv is not None:
                break
        report = out.report
        mark_prev = conv.finish(report)
        yield from pipe.finish(mark_prev)
        if progress is not None:
            progress(src.position())
        yield from out.finish()
    finally:
        src.close()
        if crossed is not None:
            crossed.close()


def read_dbn(path, *, instrument=None, strict=False, fills="execute", status=None):
    """Read a Databento DBN file (raw or .zst) into normalized Events.

    Schemas: mbo (L3), mbp-1, mbp-10 and cmbp-1 (L2 books after every record), bbo-1s/1m and
    cbbo-1s/1m (L2 top-of-book samples), trades, tbbo and tcbbo (TRADE prints), status
    (STATUS events). instrument: an Instrument; or the path of a DBN definition file
    (tick from its min_price_increment); or None: symbol from the metadata, tick inferred
    as the gcd of the first block's prices (report.info says so; a later price off that
    tick is a DataError asking for instrument=). Files with several instruments need an
    Instrument/definition whose symbol selects one. fills: "execute" or "ignore" (MBO F
    records; see the module docstring). strict: the first anomaly raises DataError naming
    the file and record number. status: the path of a status-schema DBN file (Databento
    sells trading status as its own schema): its STATUS events for this instrument are
    merged in, each after every book event up to its exchange time (ts_event; book first on
    ties), so halts reach the venue. O(records): the MBO order tracker runs in C, the rest is
    vectorized. Equal to ``collect(iter_dbn(...))``, one chunk.
    """
    return collect(iter_dbn(path, instrument=instrument, strict=strict, fills=fills, status=status,
                            chunk_rows=MAX_CHUNK_ROWS))


def _records(path, cls):
    """All records of class `cls` in a file with their record numbers (tests and small files)."""
    src = DbnSource(path, _require_dbn())
    try:
        parts = [b.groups[cls] for b in src.blocks() if cls in b.groups]
    finally:
        src.close()
    if not parts:
        return np.zeros(0, DTYPE_OF_CLASS[cls]), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _mbo_events(rec, recno, inst, report, fills):
    """MBO records as one block through the tracker (tests) -> (events, index of each event's record)."""
    conv = _Mbo(inst, report.source, fills)
    ev, ev_recno, _ = conv.block(rec, recno, report)
    if conv.finish(report) and len(ev):
        ev["flags"][-1] |= np.uint16(Flag.BATCH_END)
    return ev, np.searchsorted(recno, ev_recno)
