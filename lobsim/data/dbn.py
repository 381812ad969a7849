"""Databento DBN reader: MBO -> L3 events, MBP-1 -> L2 top-of-book events, trades -> prints.

Decoding uses the optional ``databento-dbn`` package (``pip install 'lobsim[databento]'``),
which also decompresses zstd (multi-frame) itself. Its record objects are turned back
into their fixed-size DBN v3 bytes and viewed as one numpy structured array per file,
so every conversion below is vectorized except the MBO order tracker: one Python step
per record over a dict of live orders, which handles every stream (duplicate adds,
side-changing modifies, fills that do not fit, ...) with a single implementation.

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

After conversion the book is replayed (lobsim.book.depth_series) and every batch end
with bid >= ask is counted: crossings followed by an aggressor-less trade (the opening
auction print uncrossing a pre-open book) go to info as pre-open crossings, others are
CROSSED_BOOK anomalies.
"""
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from math import gcd
from pathlib import Path

import numpy as np

from lobsim._types import EventKind, Flag, empty_events
from lobsim.data._io import require_file
from lobsim.data.events import (
    CROSSED_BOOK,
    MAX_EXAMPLES,
    OUT_OF_ORDER_TS,
    SEQUENCE_GAP,
    SKIPPED,
    UNKNOWN_ORDER_ID,
    Events,
    ValidationReport,
    crossed_batch_ends,
)
from lobsim.errors import DataError
from lobsim.instrument import Instrument, plain

__all__ = ["read_dbn", "instrument_from_dbn"]

# Anomaly reasons specific to this reader (each has one clear meaning).
DUPLICATE_ORDER_ID = "duplicate_order_id"  # A of an id that is still resting
CANCEL_EXCEEDS_ORDER = "cancel_exceeds_order"  # C larger than the order's remaining size
REPLAY_REJECTED = "replay_rejected"  # the reader's own verification replay refused events

PRICE_SCALE = 10**9  # DBN prices are int64 in units of 1e-9
UNDEF_PRICE = 2**63 - 1
UNDEF_TIMESTAMP = 2**64 - 1
_INT64_MAX = 2**63 - 1
TRADE_WITHOUT_PRICE = "trade_without_price"  # skipped:<this>, a T record with UNDEF_PRICE
_CHUNK = 1 << 20
_ZSTD_MAGIC = 0xFD2FB528

# DBN flag bits (databento_dbn.F_*)
F_LAST, F_TOB, F_SNAPSHOT, F_BAD_TS_RECV, F_MAYBE_BAD_BOOK = 128, 64, 32, 8, 4

# DBN v3 record layouts (little endian). tests/test_dbn.py checks every field against
# databento_dbn's own attribute decoding.
_HEADER = [("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
           ("ts_event", "<u8")]
MBO_DTYPE = np.dtype(_HEADER + [
    ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"), ("channel_id", "u1"),
    ("action", "u1"), ("side", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4")])
TRADE_DTYPE = np.dtype(_HEADER + [
    ("price", "<i8"), ("size", "<u4"), ("action", "u1"), ("side", "u1"), ("flags", "u1"), ("depth", "u1"),
    ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4")])
MBP1_DTYPE = np.dtype(TRADE_DTYPE.descr + [
    ("bid_px", "<i8"), ("ask_px", "<i8"), ("bid_sz", "<u4"), ("ask_sz", "<u4"), ("bid_ct", "<u4"),
    ("ask_ct", "<u4")])
assert (MBO_DTYPE.itemsize, TRADE_DTYPE.itemsize, MBP1_DTYPE.itemsize) == (56, 48, 80)

# action / side characters as bytes
_A, _C, _M, _R, _T, _F, _N = (ord(c) for c in "ACMRTFN")
_SIDE_B, _SIDE_A = ord("B"), ord("A")

_INSTALL_HINT = "pip install 'lobsim[databento]'"


def _require_dbn():
    """Import databento_dbn or explain how to get it."""
    try:
        import databento_dbn
    except ImportError as e:
        raise ImportError(
            f"reading Databento DBN files needs the optional package databento-dbn: {_INSTALL_HINT}"
        ) from e
    return databento_dbn


# --------------------------------------------------------------------------- decoding
def _zstd_problem(f, size):
    """Walk the zstd frames of an open file (headers only); None if every frame is
    complete, else a description of where it is truncated or malformed.

    The decoder itself stops silently at a truncated frame, so this is what turns a
    cut-off download into an error instead of a shorter stream.
    """
    pos = 0
    while pos < size:
        f.seek(pos)
        hdr = f.read(14)
        if len(hdr) < 5:
            return f"truncated zstd frame header at byte {pos}"
        magic = int.from_bytes(hdr[:4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
            end = pos + 8 + int.from_bytes(hdr[4:8], "little")
            if len(hdr) < 8 or end > size:
                return f"truncated skippable zstd frame at byte {pos}"
            pos = end
            continue
        if magic != _ZSTD_MAGIC:
            return f"bytes at offset {pos} are not a zstd frame"
        fhd = hdr[4]
        single = (fhd >> 5) & 1
        fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
        while True:
            f.seek(pos)
            b = f.read(3)
            if len(b) < 3:
                return f"zstd frame truncated at byte {pos} (file has {size} bytes)"
            bh = int.from_bytes(b, "little")
            btype = (bh >> 1) & 3
            if btype == 3:
                return f"corrupt zstd block header at byte {pos}"
            pos += 3 + (1 if btype == 1 else bh >> 3)
            if pos > size:
                return f"zstd frame truncated inside a block (needs {pos} bytes, file has {size})"
            if bh & 1:
                break
        if (fhd >> 2) & 1:
            pos += 4
            if pos > size:
                return f"zstd frame truncated in its checksum (file has {size} bytes)"
    return None


def _decoder_failure(e):
    """True for what databento_dbn raises on malformed input: DBNError, RuntimeError
    (zstd), and pyo3's PanicException (a Rust panic on e.g. a record whose length
    field is too short for its type), which derives from BaseException."""
    return isinstance(e, Exception) or type(e).__name__ == "PanicException"


def _locate_failure(f, end, compression, dbn, step=256):
    """Re-decode the file up to `end` in small pieces; the number of records (metadata
    excluded) decoded before the failure, so an error can name a nearby record."""
    f.seek(0)
    dec = dbn.DBNDecoder(compression=compression, upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    n = 0
    pos = 0
    while pos < end:
        piece = f.read(min(step, end - pos))
        pos += len(piece)
        try:
            recs = dec.write_and_decode(piece)
        except BaseException as e:  # noqa: B036
            if not _decoder_failure(e):
                raise
            break
        n += sum(1 for r in recs if not isinstance(r, dbn.Metadata))
    return n


class _Decoded:
    """The metadata and the records of one DBN file, grouped by record class."""

    def __init__(self, path, metadata, groups, n_records):
        self.path = path
        self.metadata = metadata
        # class name -> (list of chunks, list of 1-based record-number arrays); a chunk is
        # the joined DBN bytes of that class's records in one decoded block (or a list
        # of databento_dbn objects when decoded with keep_objects)
        self.groups = groups
        self.n_records = n_records

    def count(self, cls_name):
        return sum(len(x) for x in self.groups[cls_name][1])

    def objects(self, cls_name):
        return [r for chunk in self.groups[cls_name][0] for r in chunk]

    def array(self, cls_name, dtype):
        """Records of one class as a structured array and their 1-based record numbers."""
        chunks, numbers = self.groups[cls_name]
        raw = b"".join(chunks)
        numbers = np.concatenate(numbers)
        size = len(raw) // len(numbers)
        if size * len(numbers) != len(raw) or size - dtype.itemsize not in (0, 8):  # 8: ts_out
            raise DataError(f"unexpected {cls_name} record size", file=self.path,
                            detail=f"{len(raw)} bytes for {len(numbers)} records; expected "
                                   f"{dtype.itemsize} each (DBN v3 layout)")
        if size != dtype.itemsize:
            dtype = np.dtype(dtype.descr + [("ts_out", "<u8")])
        rec = np.frombuffer(raw, dtype=dtype)
        bad = np.nonzero(rec["length"].astype(np.int64) * 4 != dtype.itemsize)[0]
        if len(bad):
            n = int(numbers[bad[0]])
            raise DataError("record length field does not match its type", file=self.path, line=n,
                            detail=f"record {n}: {cls_name} with length {int(rec['length'][bad[0]]) * 4}")
        return rec, numbers


def _decode(path, dbn, keep_objects=False):
    """Decode a DBN file (raw or zstd) into _Decoded; DataError on anything malformed.

    Records are kept as their DBN bytes, joined per decoded block (about the file's own
    size in memory), or as databento_dbn objects with keep_objects (small files only).
    """
    path = Path(path)
    require_file(path)  # "file not found", or "is a directory, not a file"
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if not head:
            raise DataError("empty file, not DBN", file=path)
        magic = int.from_bytes(head.ljust(4, b"\0"), "little")
        if magic == _ZSTD_MAGIC or magic & 0xFFFFFFF0 == 0x184D2A50:
            compression = dbn.Compression.ZSTD
            problem = _zstd_problem(f, size)
            if problem:
                raise DataError("truncated or corrupt zstd stream", file=path, detail=problem)
        elif head[:3] == b"DBN":
            compression = dbn.Compression.NONE
        else:
            raise DataError("not a DBN file", file=path,
                            detail=f"starts with {head!r}, neither b'DBN' nor the zstd magic")
        f.seek(0)
        dec = dbn.DBNDecoder(compression=compression,
                             upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
        metadata = None
        groups = {}
        n = 0  # records decoded so far

        def keep(name, recs, numbers):
            chunks, nums = groups.setdefault(name, ([], []))
            chunks.append(list(recs) if keep_objects else b"".join(map(bytes, recs)))
            nums.append(numbers)

        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            try:
                recs = dec.write_and_decode(chunk)
            except BaseException as e:  # noqa: B036 - see _decoder_failure
                if not _decoder_failure(e):
                    raise
                k = max(n, _locate_failure(f, f.tell(), compression, dbn))
                raise DataError("DBN decoding failed", file=path, line=k + 1,
                                detail=f"at or after record {k + 1}: {e}") from None
            if metadata is None and recs and isinstance(recs[0], dbn.Metadata):
                metadata = recs[0]
                recs = recs[1:]
            if not recs:
                continue
            types = list(map(type, recs))
            numbers = np.arange(n + 1, n + 1 + len(recs), dtype=np.int64)
            if types.count(types[0]) == len(types):  # the usual case: one record class
                keep(types[0].__name__, recs, numbers)
            else:
                names = np.array([t.__name__ for t in types])
                for name in dict.fromkeys(names.tolist()):
                    idx = np.nonzero(names == name)[0]
                    keep(name, [recs[i] for i in idx], numbers[idx])
            n += len(recs)
        left = len(dec.buffer())
    if metadata is None:
        raise DataError("truncated DBN file: no complete metadata header", file=path)
    if left:
        raise DataError("truncated DBN file: it ends inside a record", file=path, line=n + 1,
                        detail=f"record {n + 1}: only {left} bytes present")
    return _Decoded(path, metadata, groups, n)


# --------------------------------------------------------------------------- instrument
def _schema_name(metadata):
    s = metadata.schema
    if s is None:
        return None
    return str(getattr(s, "value", s)).lower()


SYMBOL_MISMATCH = "symbol_mismatch"


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


def _definitions(path, dbn):
    """instrument_id -> (raw_symbol, min_price_increment) from a DBN definition file."""
    d = _decode(path, dbn, keep_objects=True)
    out = {}
    for name in d.groups:
        for r in d.objects(name):
            if hasattr(r, "min_price_increment") and hasattr(r, "raw_symbol"):
                out[int(r.instrument_id)] = (str(r.raw_symbol), int(r.min_price_increment))
    if not out:
        raise DataError("no instrument definitions in file", file=path,
                        detail=f"schema {_schema_name(d.metadata)}")
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


# --------------------------------------------------------------------------- main entry
def read_dbn(path, *, instrument=None, strict=False, fills="execute"):
    """Read a Databento DBN file (raw or .zst) into normalized Events.

    Schemas: mbo (L3), mbp-1 (L2 top of book), trades and tbbo (TRADE prints).
    instrument: an Instrument; or the path of a DBN definition file (tick from its
    min_price_increment); or None: symbol from the metadata, tick inferred as the
    gcd of all prices (report.info says so). Files with several instruments need an
    Instrument/definition whose symbol selects one. fills: "execute" or "ignore"
    (MBO F records; see the module docstring). strict: the first anomaly raises
    DataError naming the file and record number. O(records); vectorized except the
    MBO order tracker (a Python loop, one step per record).
    """
    if fills not in ("execute", "ignore"):
        raise ValueError(f"fills must be 'execute' or 'ignore', got {fills!r}")
    dbn = _require_dbn()
    path = Path(path)
    report = ValidationReport(source=str(path), strict=strict)
    d = _decode(path, dbn)
    schema = _schema_name(d.metadata)
    kinds = {"MBOMsg": ("mbo", MBO_DTYPE), "MBP1Msg": ("mbp-1", MBP1_DTYPE), "TradeMsg": ("trades", TRADE_DTYPE)}
    present = [k for k in kinds if k in d.groups]
    if schema not in (None, "mbo", "mbp-1", "tbbo", "trades") or len(present) > 1 or (
            schema is None and not present):
        found = ", ".join(sorted(d.groups)) or "no records"
        hint = "; read definitions with instrument_from_dbn()" if schema == "definition" else ""
        raise DataError(f"unsupported DBN schema {schema!r}", file=path,
                        detail=f"supported: mbo, mbp-1, tbbo, trades; records found: {found}{hint}")
    if not present:  # supported schema but no records of it
        cls = {"mbo": "MBOMsg", "mbp-1": "MBP1Msg", "tbbo": "MBP1Msg", "trades": "TradeMsg"}[schema]
        rec, recno = np.zeros(0, kinds[cls][1]), np.zeros(0, np.int64)
    else:
        cls = present[0]
        if schema is None:
            schema = kinds[cls][0]
        rec, recno = d.array(cls, kinds[cls][1])
    for name, (_, numbers) in d.groups.items():
        if name != cls:
            count = d.count(name)
            report.info.setdefault("other_records", {})[name] = count
            if name.startswith("StatusMsg"):
                first = int(numbers[0][0])
                report.skip("status_record", line=first, count=count,
                            detail=f"record {first}: trading status records are not converted")

    info = report.info
    meta = d.metadata
    info.update({"schema": schema, "dataset": meta.dataset, "dbn_version": int(meta.version),
                 "records": int(d.n_records)})
    rec, recno, inst = _select_instrument(rec, recno, meta, instrument, path, report, dbn)
    _check_timestamps(rec, recno, path)

    if schema == "mbo":
        arr, ev_rec = _mbo_events(rec, recno, inst, report, fills)
    elif schema == "mbp-1":
        arr, ev_rec = _bbo_events(rec, recno, inst, report)
    else:
        arr, ev_rec = _trade_events(rec, recno, inst, report, is_tbbo=(schema == "tbbo"))
    _clock_checks(rec, recno, report)
    if schema in ("mbo", "mbp-1"):
        _crossed_check(arr, recno[ev_rec], report)
    info["events"] = int(len(arr))
    return Events(arr, inst, report)


def _select_instrument(rec, recno, meta, instrument, path, report, dbn):
    """Keep one instrument's records and settle the Instrument (given, definition or inferred)."""
    by_id = _symbols_by_id(meta)
    iid = rec["instrument_id"]
    ids = iid[:1] if len(iid) and (iid == iid[0]).all() else np.unique(iid)
    definition = None
    if instrument is not None and not isinstance(instrument, Instrument):
        definition = _definitions(instrument, dbn)  # a path to a definition file
    chosen = None
    if len(ids) > 1:
        want = None
        if isinstance(instrument, Instrument):
            want = instrument.symbol
        hits = [int(i) for i in ids if want is not None and want in by_id.get(int(i), [])]
        if definition is not None:
            hits = [int(i) for i in ids if int(i) in definition]
        if len(hits) != 1:
            have = ", ".join(f"{int(i)} ({'/'.join(by_id.get(int(i), ['?']))})" for i in ids)
            raise DataError("file holds several instruments; pass an Instrument whose symbol picks one",
                            file=path, detail=f"instrument ids: {have}")
        chosen = hits[0]
        keep = rec["instrument_id"] == chosen
        report.info["other_instrument_records"] = int(np.count_nonzero(~keep))
        rec, recno = rec[keep], recno[keep]
    elif len(ids) == 1:
        chosen = int(ids[0])
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
        prices = [rec["price"]]
        if "bid_px" in rec.dtype.names:
            prices += [rec["bid_px"], rec["ask_px"]]
        tick = _infer_tick(np.concatenate(prices).astype(np.int64))
        inst = Instrument(data_symbol or "UNKNOWN", _tick_from_increment(tick), Decimal(1))
        report.info["tick_size_source"] = ("inferred: gcd of all prices; pass an Instrument or a "
                                           "definition file to be sure")
    report.info["tick_size"] = plain(inst.tick_size)
    return rec, recno, inst


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
    vals = np.where(undef, 0, raw)
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


def _action_counts(act):
    """{'A': count, ...} of the action characters present."""
    c = np.bincount(act, minlength=256)
    return {chr(k): int(c[k]) for k in np.nonzero(c)[0]}


def _side_codes(side_chars):
    """'B' -> +1, 'A' -> -1, anything else ('N') -> 0."""
    return np.where(side_chars == _SIDE_B, 1, np.where(side_chars == _SIDE_A, -1, 0)).astype(np.int8)


def _batch_end_positions(ev_rec, last_mask):
    """Event index carrying BATCH_END for every record in last_mask: the record's last
    emitted event, or the closest earlier event when the record emitted none."""
    recs = np.nonzero(last_mask)[0]
    pos = np.searchsorted(ev_rec, recs, side="right") - 1  # non-decreasing
    pos = pos[pos >= 0]
    return pos[np.r_[True, pos[1:] != pos[:-1]]] if len(pos) else pos


# --------------------------------------------------------------------------- MBO
def _mbo_events(rec, recno, inst, report, fills):
    """Convert MBO records to L3 events (see the module docstring for the mapping):
    checks and validation vectorized, order tracking by _mbo_loop, then the event array."""
    path = report.source
    n = len(rec)
    info = report.info
    flags = rec["flags"]
    act = rec["action"]
    pubs = rec["publisher_id"]
    if n and not (pubs == pubs[0]).all():
        raise DataError("MBO from several venues (publisher ids) for one instrument", file=path,
                        detail=f"publisher ids {sorted(set(pubs.tolist()))}: one order book per venue; "
                               "split the file by publisher_id first")
    tob = np.nonzero(flags & F_TOB)[0]
    if len(tob):
        k = int(recno[tob[0]])
        raise DataError("MBO records flagged TOB (a top-of-book-only venue) are not order-by-order data",
                        file=path, line=k, detail=f"record {k}: such an add replaces the whole side")
    info["actions"] = _action_counts(act)
    info["snapshot_records"] = int(np.count_nonzero(flags & F_SNAPSHOT))
    info["bad_ts_recv_records"] = int(np.count_nonzero(flags & F_BAD_TS_RECV))
    side = _side_codes(rec["side"])
    # validates every price against the tick; A/M/F need one (module docstring)
    _ticks(inst, rec["price"], recno, path, undef_ok=~np.isin(act, (_A, _M, _F)), what="price of an A/M/F record")
    _lots(inst, rec["size"], recno, path)  # and every size against the lot
    ev_rec, kind, qty, price_raw, ev_side, counts, anomalies, resting = _mbo_loop(rec, side, fills == "execute")
    t_undef = (kind == EventKind.TRADE) & (price_raw == UNDEF_PRICE)  # one TRADE per T record
    if t_undef.any():
        skipped = ev_rec[t_undef]
        keep = ~t_undef
        ev_rec, kind, qty, price_raw, ev_side = ev_rec[keep], kind[keep], qty[keep], price_raw[keep], ev_side[keep]
        anomalies = dict(anomalies)
        anomalies[f"{SKIPPED}:{TRADE_WITHOUT_PRICE}"] = (skipped, lambda i: (
            f"trade of size {int(rec['size'][i])} with UNDEF_PRICE (no price), not emitted"))
    _report_anomalies(report, anomalies, recno)
    info["fill_handling"] = fills
    info["mbo_mapping"] = {k: int(v) for k, v in sorted(counts.items()) if v}
    info["resting_orders_at_end"] = int(resting)

    m = len(ev_rec)
    out = empty_events(m)
    out["ts_exch"] = rec["ts_event"][ev_rec]
    out["ts_local"] = rec["ts_recv"][ev_rec]
    out["order_id"] = rec["order_id"][ev_rec]
    out["kind"] = kind
    clear = kind == EventKind.CLEAR
    out["qty"] = _lots(inst, qty, recno[ev_rec], path)
    out["price"] = _ticks(inst, np.where(clear, 0, price_raw), recno[ev_rec], path)
    out["side"] = np.where(clear, 0, ev_side)
    fl = np.zeros(m, dtype=np.uint16)
    fl[(flags[ev_rec] & F_SNAPSHOT) != 0] |= np.uint16(Flag.SNAPSHOT)
    fl[_batch_end_positions(ev_rec, _batch_last_mask(flags, report))] |= np.uint16(Flag.BATCH_END)
    out["flags"] = fl
    return out, ev_rec


def _report_anomalies(report, anomalies, recno):
    """anomalies: reason -> (sorted record positions, detail(position) -> str). Strict: the
    earliest raises. Otherwise the first few are reported one by one (examples), the
    rest as one count."""
    items = [(int(pos[0]), reason, pos, det) for reason, (pos, det) in anomalies.items() if len(pos)]
    if not items:
        return
    def one(reason, p, det, count=1):
        n = int(recno[p])
        report.anomaly(reason, line=n, detail=f"record {n}: {det(int(p))}", count=count)

    if report.strict:
        p, reason, _, det = min(items, key=lambda t: t[0])
        one(reason, p, det)  # raises
    for _, reason, pos, det in sorted(items, key=lambda t: t[0]):
        for p in pos[:MAX_EXAMPLES]:
            one(reason, p, det)
        if len(pos) > MAX_EXAMPLES:
            one(reason, pos[MAX_EXAMPLES], det, count=len(pos) - MAX_EXAMPLES)


def _mbo_loop(rec, side, execute):
    """The MBO order tracker: one Python step per record over a dict of live orders
    (Databento's size and ours, which is lower by the fills executed since), any stream.
    Returns event-level arrays (record index, kind, qty, raw price, side), counts,
    anomalies, resting orders."""
    n = len(rec)
    ev_rec, ev_kind, ev_qty = [], [], []
    override = {}  # event position -> (raw price, side) where the record's own do not apply
    orders = {}  # order_id -> [side, raw price, Databento's size, our size]
    pending = {}  # order_id -> executed fills not yet reconciled by its C/M
    counts = Counter()
    found = {}  # reason -> {record position: detail}
    ADD, REDUCE, DELETE, EXECUTE, MODIFY, TRADE, CLEAR = (
        int(EventKind.ADD), int(EventKind.REDUCE), int(EventKind.DELETE), int(EventKind.EXECUTE),
        int(EventKind.MODIFY), int(EventKind.TRADE), int(EventKind.CLEAR))
    emit_r, emit_k, emit_q = ev_rec.append, ev_kind.append, ev_qty.append
    act_l, oid_l, px_l = rec["action"].tolist(), rec["order_id"].tolist(), rec["price"].tolist()
    sz_l, side_l, last_l = rec["size"].tolist(), side.tolist(), (rec["flags"] & F_LAST).tolist()

    def note(reason, i, detail):
        found.setdefault(reason, {})[i] = detail

    batch_ended = False
    for i, a, oid, p, sz, s, last in zip(range(n), act_l, oid_l, px_l, sz_l, side_l, last_l):
        if batch_ended and pending:  # fills whose C/M did not come in their batch
            counts["fills_unreconciled_at_batch_end"] += sum(pending.values())
            pending.clear()
        batch_ended = last
        if a == _C:
            st = orders.get(oid)
            if st is None:
                note(UNKNOWN_ORDER_ID, i, f"cancel of unknown order id {oid}")
                continue
            left = st[2] - sz
            pending.pop(oid, None)
            if left <= 0:
                if left < 0:
                    note(CANCEL_EXCEEDS_ORDER, i, f"cancel of {sz} from order {oid} of {st[2]}")
                del orders[oid]
                if st[3] > 0:
                    emit_r(i), emit_k(DELETE), emit_q(st[3])
                    override[len(ev_rec) - 1] = (st[1], st[0])
                else:
                    counts["cancel_absorbed_by_execute"] += 1
                continue
            st[2] = left
            if st[3] == 0:  # fully executed in ours but Databento keeps a rest
                emit_r(i), emit_k(ADD), emit_q(left)
                override[len(ev_rec) - 1] = (st[1], st[0])
                counts["readded_after_execute"] += 1
            elif st[3] > left:
                emit_r(i), emit_k(REDUCE), emit_q(st[3] - left)
                override[len(ev_rec) - 1] = (st[1], st[0])
            elif st[3] < left:
                emit_r(i), emit_k(MODIFY), emit_q(left)
                override[len(ev_rec) - 1] = (st[1], st[0])
                counts["cancel_below_executed"] += 1
            else:
                counts["cancel_absorbed_by_execute"] += 1
            st[3] = left
        elif a == _A:
            if s == 0 or sz == 0:
                note(f"{SKIPPED}:add_without_side_or_size", i,
                     f"add of order {oid} side {chr(rec['side'][i])} size {sz}")
                continue
            st = orders.get(oid)
            if st is not None:
                note(DUPLICATE_ORDER_ID, i, f"add of resting order id {oid}")
                if st[3] > 0:
                    emit_r(i), emit_k(DELETE), emit_q(st[3])
                    override[len(ev_rec) - 1] = (st[1], st[0])
                pending.pop(oid, None)
            orders[oid] = [s, p, sz, sz]
            emit_r(i), emit_k(ADD), emit_q(sz)
        elif a == _M:
            st = orders.get(oid)
            if st is None:
                note(UNKNOWN_ORDER_ID, i, f"modify of unknown order id {oid} (applied as an add)")
                if s != 0 and sz > 0:
                    orders[oid] = [s, p, sz, sz]
                    emit_r(i), emit_k(ADD), emit_q(sz)
                continue
            pending.pop(oid, None)
            if s != st[0] or sz == 0:
                # a side change or a size of 0 cannot be a MODIFY: remove, then re-add
                counts["modify_side_change" if sz else "modify_to_zero"] += 1
                if st[3] > 0:
                    emit_r(i), emit_k(DELETE), emit_q(st[3])
                    override[len(ev_rec) - 1] = (st[1], st[0])
                if sz == 0 or s == 0:
                    del orders[oid]
                    continue
                st[0], st[3] = s, 0
            st[1], st[2] = p, sz
            if st[3] == 0:  # executed away in ours (e.g. iceberg refill): a new queue place
                emit_r(i), emit_k(ADD), emit_q(sz)
                counts["readded_after_execute"] += 1
            else:
                emit_r(i), emit_k(MODIFY), emit_q(sz)
            st[3] = sz
        elif a == _F:
            st = orders.get(oid)
            if not execute:
                counts["fill_not_emitted"] += 1
            elif st is None:
                counts["fill_unknown_order"] += 1
            elif s != st[0] or p != st[1]:
                counts["fill_not_at_resting_order"] += 1  # aggressor's fill, auction price
            elif not 0 < sz <= st[3]:
                counts["fill_exceeds_order"] += 1  # e.g. hidden iceberg quantity
            else:
                emit_r(i), emit_k(EXECUTE), emit_q(sz)
                st[3] -= sz
                pending[oid] = pending.get(oid, 0) + 1
                counts["fill_executed"] += 1
        elif a == _T:
            emit_r(i), emit_k(TRADE), emit_q(sz)
        elif a == _R:
            counts["fills_unreconciled_at_batch_end"] += sum(pending.values())
            orders.clear()
            pending.clear()
            emit_r(i), emit_k(CLEAR), emit_q(0)
        elif a == _N:
            counts["none_action"] += 1
        else:
            note(f"{SKIPPED}:unknown_action", i, f"action {a!r}")
    counts["fills_unreconciled_at_batch_end"] += sum(pending.values())

    ev_rec = np.asarray(ev_rec, dtype=np.int64)
    price = rec["price"][ev_rec].astype(np.int64)
    ev_side = side[ev_rec].astype(np.int8)
    if override:
        pos = np.fromiter(override, dtype=np.int64, count=len(override))
        vals = np.array(list(override.values()), dtype=np.int64).reshape(-1, 2)
        price[pos] = vals[:, 0]
        ev_side[pos] = vals[:, 1]
    anomalies = {}
    for reason, d in found.items():
        anomalies[reason] = (np.array(sorted(d), dtype=np.int64),
                             lambda i, d=d: d[i])
    return (ev_rec, np.asarray(ev_kind, dtype=np.uint8), np.asarray(ev_qty, dtype=np.int64), price, ev_side,
            counts, anomalies, len(orders))


def _batch_last_mask(flags, report):
    """Records ending a batch: F_LAST, plus the end of a snapshot run that lacks F_LAST."""
    last = (flags & F_LAST) != 0
    snap = (flags & F_SNAPSHOT) != 0
    run_end = snap & ~np.r_[snap[1:], False]
    missing = run_end & ~last
    if missing.any():
        report.info["snapshot_runs_without_last_flag"] = int(np.count_nonzero(missing))
    return last | missing


# --------------------------------------------------------------------------- MBP-1 / trades
def _bbo_events(rec, recno, inst, report):
    """MBP-1 -> one-level L2 book: SET_LEVEL per changed side of the vendor BBO, TRADE for T."""
    path = report.source
    n = len(rec)
    act = rec["action"]
    report.info["actions"] = _action_counts(act)
    is_r = act == _R
    cols = []  # per candidate column: (mask, kind, side, price ticks, qty lots)
    zeros = np.zeros(n, dtype=np.int64)
    cols.append((is_r, EventKind.CLEAR, zeros, zeros, zeros))
    is_t = _trades_with_price(act == _T, rec, recno, report)
    # undefined prices only where unused: non-T records and skipped T records
    cols.append((is_t, EventKind.TRADE, _side_codes(rec["side"]).astype(np.int64),
                 _ticks(inst, rec["price"], recno, path, undef_ok=True), _lots(inst, rec["size"], recno, path)))
    for px_name, sz_name, sd in (("bid_px", "bid_sz", 1), ("ask_px", "ask_sz", -1)):
        px = rec[px_name].astype(np.int64)
        sz = rec[sz_name].astype(np.int64)
        live = (px != UNDEF_PRICE) & (sz > 0)
        px = np.where(live, px, UNDEF_PRICE)
        sz = np.where(live, sz, 0)
        prev_px = np.r_[UNDEF_PRICE, px[:-1]]
        prev_sz = np.r_[0, sz[:-1]]
        prev_px[is_r] = UNDEF_PRICE  # a clear empties the book before this record's BBO
        prev_sz[is_r] = 0
        moved = px != prev_px
        remove_old = moved & (prev_px != UNDEF_PRICE)
        set_new = live & (moved | (sz != prev_sz))
        sides = np.full(n, sd, dtype=np.int64)
        # UNDEF here is "no level": such entries are masked out by remove_old / set_new
        cols.append((remove_old, EventKind.SET_LEVEL, sides, _ticks(inst, prev_px, recno, path, undef_ok=True),
                     zeros))
        cols.append((set_new, EventKind.SET_LEVEL, sides, _ticks(inst, px, recno, path, undef_ok=True),
                     _lots(inst, sz, recno, path)))
    mask = np.stack([c[0] for c in cols], axis=1)
    r, c = np.nonzero(mask)  # row-major: record order, then column order
    out = empty_events(len(r))
    out["ts_exch"] = rec["ts_event"][r]
    out["ts_local"] = rec["ts_recv"][r]
    out["kind"] = np.array([int(cols[k][1]) for k in range(len(cols))], dtype=np.uint8)[c]
    out["side"] = np.stack([col[2] for col in cols], axis=1)[r, c]
    out["price"] = np.stack([col[3] for col in cols], axis=1)[r, c]
    out["qty"] = np.stack([col[4] for col in cols], axis=1)[r, c]
    flags = rec["flags"]
    fl = np.zeros(len(r), dtype=np.uint16)
    fl[(flags[r] & F_SNAPSHOT) != 0] |= np.uint16(Flag.SNAPSHOT)
    fl[_batch_end_positions(r, _batch_last_mask(flags, report))] |= np.uint16(Flag.BATCH_END)
    out["flags"] = fl
    report.info["snapshot_records"] = int(np.count_nonzero(flags & F_SNAPSHOT))
    return out, r


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


def _trade_events(rec, recno, inst, report, is_tbbo=False):
    """Trades / TBBO -> TRADE events (side = aggressor, 'N' -> 0); records without a
    price are skipped and counted."""
    path = report.source
    if is_tbbo:
        report.info["note"] = "tbbo: only the trades are converted (its BBO is the one before each trade)"
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
        report.info["non_trade_actions"] = int(np.count_nonzero(bad))
    fl = np.zeros(len(ev_rec), dtype=np.uint16)
    fl[_batch_end_positions(ev_rec, (rec["flags"] & F_LAST) != 0)] |= np.uint16(Flag.BATCH_END)
    out["flags"] = fl
    return out, ev_rec


# --------------------------------------------------------------------------- checks
def _iso(ns):
    return datetime.fromtimestamp(int(ns) // 10**9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + \
        f".{int(ns) % 10**9:09d}Z"


def _clock_checks(rec, recno, report):
    """Count live records whose ts_event goes back in time (never reordered) and flag gaps."""
    if not len(rec):
        return
    flags = rec["flags"]
    live = (flags & F_SNAPSHOT) == 0
    te = rec["ts_event"].astype(np.int64)[live]
    if len(te) > 1:
        runmax = np.maximum.accumulate(te)
        back = np.nonzero(te[1:] < runmax[:-1])[0] + 1
        if len(back):
            k = int(recno[live][back[0]])
            report.anomaly(OUT_OF_ORDER_TS, line=k, count=len(back),
                           detail=f"record {k}: ts_event {_iso(te[back[0]])} before an earlier record's "
                                  f"{_iso(runmax[back[0] - 1])} (file order kept)")
    tr = rec["ts_recv"].astype(np.int64)
    report.info["ts_recv_decreases"] = int(np.count_nonzero(np.diff(tr) < 0))
    gap = np.nonzero(flags & F_MAYBE_BAD_BOOK)[0]
    if len(gap):
        k = int(recno[gap[0]])
        report.anomaly(SEQUENCE_GAP, line=k, count=len(gap),
                       detail=f"record {k}: flag MAYBE_BAD_BOOK (vendor saw an unrecoverable gap)")


def _crossed_check(arr, ev_recno, report):
    """Replay at batch ends; count books with best bid >= best ask.

    A crossing whose next trade print has no aggressor (an auction uncross, e.g. the
    CME open) is a legitimate pre-open crossing and goes to info; any other is a
    CROSSED_BOOK anomaly.
    """
    if not np.any(arr["flags"] & Flag.BATCH_END):
        return
    idx, bid_px, ask_px, checked, rejected, first_rejected = crossed_batch_ends(arr)
    report.info["batch_ends_checked"] = checked
    if rejected:  # our own events refused by the book: a reader bug or bad data
        report.anomaly(REPLAY_REJECTED, count=rejected, line=int(ev_recno[first_rejected]),
                       detail=f"the verification replay refused {rejected} events, first event {first_rejected}")
    if not len(idx):
        report.info["crossed_batch_ends_preopen"] = 0
        return
    trades = np.nonzero(arr["kind"] == EventKind.TRADE)[0]
    nxt = np.searchsorted(trades, idx, side="right")  # the first print after each crossing
    preopen = np.zeros(len(idx), dtype=bool)
    has_next = nxt < len(trades)
    preopen[has_next] = arr["side"][trades[nxt[has_next]]] == 0
    pre = idx[preopen]
    report.info["crossed_batch_ends_preopen"] = int(len(pre))
    if len(pre):
        report.info["crossed_preopen_span"] = f"{_iso(arr['ts_exch'][pre[0]])} .. {_iso(arr['ts_exch'][pre[-1]])}"
    bad = idx[~preopen]
    if len(bad):
        j = int(bad[0])
        r = int(np.nonzero(~preopen)[0][0])
        k = int(ev_recno[j])
        report.anomaly(CROSSED_BOOK, count=len(bad), line=k,
                       detail=f"record {k} (event {j}) at {_iso(arr['ts_exch'][j])}: bid {int(bid_px[r])} >= "
                              f"ask {int(ask_px[r])} (ticks) after a batch")
