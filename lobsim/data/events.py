"""Events (an event array with its instrument and validation report) and ValidationReport."""
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lobsim._types import EventKind, check_event_array
from lobsim.book import depth_series
from lobsim.errors import DataError
from lobsim.instrument import Instrument

# Anomaly reasons every reader uses (add more only with a clear meaning).
UNKNOWN_ORDER_ID = "unknown_order_id"
SEQUENCE_GAP = "sequence_gap"
OUT_OF_ORDER_TS = "out_of_order_timestamp"  # count: records earlier than the latest time seen before them
CROSSED_BOOK = "crossed_book"
HALT = "halt"
NO_SNAPSHOT = "no_snapshot"  # depth updates with no snapshot before them (the book is partial)
SKIPPED = "skipped"  # prefix: "skipped:<why>"

MAX_EXAMPLES = 5
DEFAULT_CHUNK_ROWS = 1 << 18  # events per chunk of the iter_* readers (12.6 MB of EVENT_DTYPE; larger was slower)
MAX_CHUNK_ROWS = 1 << 40


@dataclass
class ValidationReport:
    """What a reader could not apply cleanly, counted by reason, with a few examples.

    In strict mode the first anomaly raises DataError (file, line/record, reason).
    `info` holds neutral facts worth knowing (e.g. rows read), not anomalies.
    """

    source: str = ""
    strict: bool = False
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def anomaly(self, reason, *, line=None, detail=None, count=1, file=None):
        """Record `count` anomalies of `reason` (first one at `line`); raises if strict."""
        if count <= 0:
            return
        file = self.source if file is None else str(file)
        if self.strict:
            raise DataError(reason, file=file, line=line, detail=detail)
        self.counts[reason] += int(count)
        ex = self.examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            where = file + (f":{line}" if line is not None else "")
            ex.append(f"{where}: {detail}" if detail else where)

    def skip(self, why, *, line=None, detail=None, count=1, file=None):
        """A record deliberately not turned into an event; counted as skipped:<why>."""
        self.anomaly(f"{SKIPPED}:{why}", line=line, detail=detail, count=count, file=file)

    @property
    def total(self):
        return sum(self.counts.values())

    def merge(self, other):
        """Add `other` (a later part of the same input) into this report, in place; -> self.

        Counts add up; examples keep the first MAX_EXAMPLES per reason, this
        report's first; integer `info` values add up (rows read, batches
        checked), any other info value is replaced by the later one.
        """
        self.counts.update(other.counts)
        for reason, ex in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(ex[: max(0, MAX_EXAMPLES - len(mine))])
        for k, v in other.info.items():
            old = self.info.get(k)
            summable = isinstance(v, int) and not isinstance(v, bool)
            if summable and isinstance(old, int) and not isinstance(old, bool):
                self.info[k] = old + v
            else:
                self.info[k] = v
        if not self.source:
            self.source = other.source
        return self

    @classmethod
    def merged(cls, reports):
        """One report of the chunk reports of one input, in order (see merge)."""
        out = None
        for r in reports:
            if out is None:
                out = cls(source=r.source, strict=r.strict)
            out.merge(r)
        return cls() if out is None else out

    def __bool__(self):  # a report is "truthy" when something went wrong
        return self.total > 0

    def to_dict(self):
        return {
            "source": self.source,
            "counts": dict(sorted(self.counts.items())),
            "examples": self.examples,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; TypeError if `d` does not have its shape."""
        if not isinstance(d, dict) or not all(isinstance(d.get(k, {}), dict) for k in ("counts", "examples", "info")):
            raise TypeError(f"a validation report must be a dict of dicts, got {d!r:.80}")
        return cls(
            source=str(d.get("source", "")),
            counts=Counter(d.get("counts", {})),
            examples=dict(d.get("examples", {})),
            info=dict(d.get("info", {})),
        )

    def __str__(self):
        lines = [f"validation report for {self.source or '<memory>'}:"]
        for k, v in self.info.items():
            lines.append(f"  {k}: {v}")
        if not self.counts:
            lines.append("  no anomalies")
        for reason, n in sorted(self.counts.items()):
            lines.append(f"  {reason}: {n}")
            for ex in self.examples.get(reason, []):
                lines.append(f"    e.g. {ex}")
        return "\n".join(lines)


@dataclass
class Events:
    """A normalized event array (EVENT_DTYPE, venue-clock order, stable for ties),
    the instrument its ticks and lots refer to, and the reader's validation report."""

    array: np.ndarray
    instrument: Instrument
    report: ValidationReport = field(default_factory=ValidationReport)

    def __post_init__(self):
        if isinstance(self.array, np.ndarray):
            self.array = np.ascontiguousarray(self.array)
        check_event_array(self.array, "Events.array")

    def __len__(self):
        return len(self.array)

    def metadata(self):
        """JSON-able dict stored beside the array (Parquet metadata)."""
        return {"instrument": self.instrument.to_dict(), "report": self.report.to_dict()}

    def to_arrow(self, real=True):
        """The events as a pyarrow Table (needs pyarrow; imported here only).

        real=True: `price` and `qty` are exact decimals (Arrow decimal128 at the
        tick's / lot's number of decimals, never rounded) and `ts_exch` /
        `ts_local` are timestamp[ns, UTC]. real=False: the integer columns as
        stored (ticks, lots, int64 ns). The other columns keep their integer
        types; the instrument and report are in the schema metadata under
        b"lobsim", so `pyarrow.parquet.write_table` gives a file `read_parquet`
        reads back identically.
        """
        import json

        import pyarrow as pa

        a = self.array
        cols = {}
        for name in ("ts_exch", "ts_local", "order_id", "price", "qty", "side", "kind", "flags"):
            col = pa.array(a[name])
            if real and name in ("ts_exch", "ts_local"):
                col = col.cast(pa.timestamp("ns", tz="UTC"))
            elif real and name in ("price", "qty"):
                col = _arrow_decimals(a[name], self.instrument.tick_size if name == "price" else self.instrument.lot_size)
            cols[name] = col
        meta = {"version": 1, **self.metadata(), "book_type": "L2" if np.any(a["kind"] == EventKind.SET_LEVEL) else "L3"}
        return pa.table(cols).replace_schema_metadata({b"lobsim": json.dumps(meta, sort_keys=True)})

    def to_pandas(self, real=True, decimal=False):
        """The events as a pandas DataFrame (pandas is optional: imported here only).

        real=True: `price` / `qty` in currency and size units and `ts_exch` /
        `ts_local` as datetime64[ns, UTC]. The prices are float64 (each the float
        nearest to the exact decimal; DataError if one has no float64 that
        converts back to its own tick) or, with decimal=True, exact Decimal
        objects. real=False: the integer columns as stored. `df.attrs` holds the
        instrument. `Instrument.prices_to_ticks` / `qtys_to_lots` convert the
        columns back exactly, and `read_parquet(path, instrument=...)` reads a
        file pandas wrote from it.
        """
        import pandas as pd

        a, inst = self.array, self.instrument
        dtype = "decimal" if decimal else "float64"
        cols = {}
        for name in ("ts_exch", "ts_local", "order_id", "price", "qty", "side", "kind", "flags"):
            col = a[name]
            if real and name in ("ts_exch", "ts_local"):
                col = pd.to_datetime(col, unit="ns", utc=True)
            elif real and name == "price":
                col = inst.ticks_to_prices(col, dtype)
            elif real and name == "qty":
                col = inst.lots_to_qtys(col, dtype)
            else:
                col = col.copy()
            cols[name] = col
        df = pd.DataFrame(cols)
        df.attrs["instrument"] = inst.to_dict()
        return df


def _arrow_decimals(units, unit):
    """Exact Arrow decimals of units * unit: decimal128 at unit's number of decimals (decimal256 if needed)."""
    import pyarrow as pa

    from lobsim.instrument import _unit_parts

    m, e = _unit_parts(unit)
    mult, scale = (m * 10**e, 0) if e >= 0 else (m, -e)
    units = np.asarray(units, dtype=np.int64)
    lim = (2**63 - 1) // mult
    if len(str(mult)) + 19 <= 38 and scale <= 38 and not np.any((units > lim) | (units < -lim)):
        unscaled = units * mult
        words = np.empty(2 * len(units), dtype=np.int64)  # little-endian 128-bit: low word, sign word
        words[0::2], words[1::2] = unscaled, np.where(unscaled < 0, -1, 0)
        return pa.Array.from_buffers(pa.decimal128(38, scale), len(units), [None, pa.py_buffer(words)])
    from decimal import Decimal

    vals = [Decimal(int(u) * mult).scaleb(-scale) for u in units]
    return pa.array(vals, type=pa.decimal256(76, scale))


class ChunkedOutput:
    """Cuts a streaming reader's output into Events of exactly `chunk_rows` events (the last may be shorter).

    The reader notes anomalies in `self.report` (always through the attribute:
    it is replaced at each chunk) and sets `self.instrument` before its first
    events; each chunk carries the report of what was noted since the previous
    chunk, so `ValidationReport.merged` of all chunk reports is the report of
    the whole input. At least one chunk is produced (an empty one when the
    input held no events), so a consumer always gets the instrument; the last
    chunk may be empty when it only carries the end of the report.
    """

    def __init__(self, chunk_rows, source, strict=False, instrument=None):
        from lobsim._args import integer

        self.chunk_rows = integer("chunk_rows", chunk_rows, 1, MAX_CHUNK_ROWS)
        self.instrument = instrument
        self.report = ValidationReport(source=source, strict=strict)
        self._source, self._strict = source, strict
        self._parts, self._held, self._emitted = [], 0, 0

    def add(self, array):
        """Take `array` (EVENT_DTYPE, the next events in order); yield every chunk now complete."""
        if len(array):
            self._parts.append(array)
            self._held += len(array)
        while self._held >= self.chunk_rows:
            yield self._emit(self.chunk_rows)

    def finish(self):
        """Yield what is left; an empty chunk if nothing was ever yielded, or to carry what was noted
        after the last full chunk (so no part of the report is lost)."""
        r = self.report
        if self._held or not self._emitted or r.counts or r.examples or r.info:
            yield self._emit(self._held)

    def _emit(self, n):
        from lobsim._types import EVENT_DTYPE

        if self.instrument is None:
            raise AssertionError("reader bug: ChunkedOutput.instrument not set before its first events")
        whole = self._parts[0] if len(self._parts) == 1 else (
            np.concatenate(self._parts) if self._parts else np.zeros(0, EVENT_DTYPE))
        chunk, rest = whole[:n], whole[n:]
        self._parts = [rest] if len(rest) else []
        self._held = len(rest)
        self._emitted += 1
        ev = Events(np.ascontiguousarray(chunk), self.instrument, self.report)
        self.report = ValidationReport(source=self._source, strict=self._strict)
        return ev


def collect(chunks):
    """One Events of the chunks of one input (arrays concatenated, reports merged): what read_* returns."""
    arrays, reports, inst = [], [], None
    for ev in chunks:
        arrays.append(ev.array)
        reports.append(ev.report)
        inst = ev.instrument if inst is None else inst
    if inst is None:
        raise AssertionError("reader bug: no chunk produced")
    array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return Events(array, inst, ValidationReport.merged(reports))


class CrossedBatches(NamedTuple):
    """Batch ends after which a replayed book is crossed (best bid >= best ask)."""

    index: np.ndarray  # event index of each crossed batch end
    bid_px: np.ndarray
    ask_px: np.ndarray
    checked: int  # batch ends looked at
    rejected: int  # events the book refused (skipped)
    first_rejected: int  # index of the first refused event, -1 if none


def crossed_batch_ends(array, book=None):
    """Replay `array` in the C book and find the batch ends where it is crossed.

    Events the book refuses are skipped and counted (a reader should produce
    none). O(n) in C. `book` (a LevelBook / OrderBook) continues a replay
    across the chunks of a streaming reader; by default a fresh book.
    """
    ds = depth_series(array, 1, batch_end_only=True, strict=False, book=book)
    bid_px, ask_px = ds.bid_px[:, 0], ds.ask_px[:, 0]
    crossed = (ds.bid_qty[:, 0] > 0) & (ds.ask_qty[:, 0] > 0) & (bid_px >= ask_px)
    return CrossedBatches(ds.index[crossed], bid_px[crossed], ask_px[crossed], len(ds.index),
                          ds.result.rejected, ds.result.first_error_index)


def report_crossed(events, lines, report, where, book=None):
    """Report the batch ends after which the replayed L2 book is crossed (best bid >= best ask).

    `lines[i]` is the line number of event i and `where(line)` -> (file, line)
    names it; batches checked go to report.info. L3-only arrays are not
    checked. A streaming reader passes the `book` (a LevelBook) it keeps
    across chunks, so each chunk continues the previous one's book.
    """
    if book is None and not np.any(events["kind"] == EventKind.SET_LEVEL):
        return
    idx, bid_px, ask_px, checked, _, _ = crossed_batch_ends(events, book)
    report.info["batches_checked_for_crossing"] = checked
    if len(idx):
        f, ln = where(lines[idx[0]])
        report.anomaly(
            CROSSED_BOOK, file=f, line=ln, count=len(idx),
            detail=f"best bid {bid_px[0]} >= best ask {ask_px[0]} (ticks) after this batch",
        )


def below_running_max(ts):
    """Positions of the records earlier than the latest time seen before them (the OUT_OF_ORDER_TS count).

    One late record after a jump forward counts once; every record that stays
    behind the jump counts, not just the first drop.
    """
    ts = np.asarray(ts)
    if len(ts) < 2:
        return np.zeros(0, np.intp)
    return np.flatnonzero(ts < np.maximum.accumulate(ts))


def monotone_ts(ts, report, lines, where, what):
    """Copy of `ts` with every record below the running max raised to it, reported as OUT_OF_ORDER_TS
    (see below_running_max for the count).

    `lines[i]` is the line number of record i, `where(line)` -> (file, line);
    `what` names the records in the detail.
    """
    if len(ts) < 2:
        return ts.copy()
    fixed = np.maximum.accumulate(ts)
    bad = below_running_max(ts)
    if len(bad):
        f, ln = where(lines[bad[0]])
        report.anomaly(
            OUT_OF_ORDER_TS,
            file=f,
            line=ln,
            count=len(bad),
            detail=f"{what} exchange time {int(ts[bad[0]])} ns before the previous "
            f"{int(fixed[bad[0]])} ns; raised to it",
        )
    return fixed
