"""Parquet event store: one column per EVENT_DTYPE field, instrument, report and book type in metadata.

Files are written in row groups (`EventWriter` streams chunks, `write_parquet`
writes an Events through it) so that `iter_parquet` can replay a file larger
than memory one row group at a time. The metadata (JSON under the key
"lobsim" of the Parquet footer) is written when the file is closed, so it can
say whether the whole stream is L2 ("book_type").
"""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lobsim._types import EVENT_DTYPE, EventKind
from lobsim.data._io import require_file
from lobsim.data.events import Events, ValidationReport
from lobsim.errors import DataError
from lobsim.instrument import Instrument

METADATA_KEY = b"lobsim"
FORMAT_VERSION = 1
COLUMNS = [name for name in EVENT_DTYPE.names if name != "reserved"]
ARROW_SCHEMA = pa.schema([(name, pa.from_numpy_dtype(EVENT_DTYPE.fields[name][0])) for name in COLUMNS])
DEFAULT_ROW_GROUP = 1 << 18  # events per row group written (12 MiB of events)
DEFAULT_BATCH = 1 << 16  # events per chunk read: replay memory grows with it, not with the file
BOOK_TYPES = ("L2", "L3")


def _has_levels(kinds):
    """The file-level rule for the book type: any L2 SET_LEVEL makes the stream L2 (else L3)."""
    return bool(np.any(np.asarray(kinds) == EventKind.SET_LEVEL))


class EventWriter:
    """Stream EVENT_DTYPE chunks into a lobsim Parquet file in bounded memory.

        with EventWriter("out.parquet", instrument, report) as w:
            for chunk in chunks:
                w.write(chunk)

    Memory holds at most one row group (as Arrow arrays) plus one chunk. The file is written
    under a temporary name and renamed on a clean close, so a failure or an
    interrupt never leaves a truncated file at `path` (nor clobbers an old
    one). The report may still be updated until close(); the metadata
    (instrument, report, book_type) is written then.
    """

    def __init__(self, path, instrument, report=None, *, row_group_size=DEFAULT_ROW_GROUP, compression="zstd"):
        if not isinstance(instrument, Instrument):
            raise TypeError("EventWriter takes a lobsim.Instrument")
        if int(row_group_size) < 1:
            raise ValueError(f"row_group_size must be positive, got {row_group_size}")
        self.path = str(path)
        self.instrument = instrument
        self.report = ValidationReport() if report is None else report
        self.row_group_size = int(row_group_size)
        self.rows = 0
        self._levels = False
        self._pending, self._pending_rows = [], 0
        self._tmp = f"{self.path}.tmp-{os.getpid()}"
        # No dictionary encoding: on these int columns it made files larger, writing slower and
        # the writer's memory higher (measured) than plain encoding + zstd.
        self._writer = pq.ParquetWriter(self._tmp, ARROW_SCHEMA, compression=compression, use_dictionary=False)

    def write(self, events):
        """Append an EVENT_DTYPE array (converted to Arrow now; written as row groups fill)."""
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise TypeError("EventWriter.write takes a 1-d EVENT_DTYPE array")
        if self._writer is None:
            raise ValueError("EventWriter is closed")
        if not len(events):
            return
        self._levels = self._levels or _has_levels(events["kind"])
        self._pending.append(pa.record_batch([pa.array(events[name]) for name in COLUMNS], schema=ARROW_SCHEMA))
        self._pending_rows += len(events)
        self.rows += len(events)
        if self._pending_rows >= self.row_group_size:
            self._flush(final=False)

    def _flush(self, final):
        """Write whole row groups of the pending batches; keep the remainder unless final."""
        if not self._pending_rows:
            return
        table = pa.Table.from_batches(self._pending)  # no copy: the batches become its chunks
        n = table.num_rows if final else table.num_rows - table.num_rows % self.row_group_size
        if n:
            self._writer.write_table(table.slice(0, n), row_group_size=self.row_group_size)
        rest = table.slice(n)
        self._pending, self._pending_rows = rest.to_batches(), rest.num_rows

    def metadata(self):
        """The JSON-able metadata stored in the footer (the book type as written so far)."""
        return {
            "version": FORMAT_VERSION,
            "instrument": self.instrument.to_dict(),
            "report": self.report.to_dict(),
            "book_type": "L2" if self._levels else "L3",
        }

    def close(self):
        """Write what is pending and the metadata, then move the file into place. Idempotent."""
        if self._writer is None:
            return
        try:
            self._flush(final=True)
            self._writer.add_key_value_metadata({METADATA_KEY: json.dumps(self.metadata(), sort_keys=True)})
            self._writer.close()
            self._writer = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self):
        """Drop the file being written (nothing appears at `path`). Idempotent."""
        writer, self._writer = self._writer, None
        self._pending = []
        try:
            if writer is not None:
                writer.close()
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_parquet(events, path, *, row_group_size=DEFAULT_ROW_GROUP, compression="zstd"):
    """Write an Events to `path` (instrument, report and book type kept in the file metadata)."""
    if not isinstance(events, Events):
        raise TypeError("write_parquet takes a lobsim.data.Events (array, instrument, report)")
    with EventWriter(path, events.instrument, events.report, row_group_size=row_group_size,
                     compression=compression) as w:
        w.write(events.array)


def _column_plan(f, path):
    """{column: how to read it} for the file's schema; DataError for a column no exact cast can take.

    lobsim's own files have exactly ARROW_SCHEMA. Files written by other tools
    (pandas, Polars, to_arrow) may use other integer widths/signedness (cast
    with overflow checks, per batch), timestamp columns for ts_exch / ts_local
    (converted to int64 ns, exactly), and float or decimal columns of real
    prices and sizes (converted through the instrument: "real").
    """
    schema = f.schema_arrow
    names = schema.names
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataError("not a lobsim event file", file=path, detail=f"missing columns {missing}")
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise DataError("duplicated columns", file=path, detail=str(doubled))
    plan = {}
    for name in COLUMNS:
        want = ARROW_SCHEMA.field(name).type
        got = schema.field(name).type
        if got == want:
            plan[name] = "same"
        elif pa.types.is_integer(got):
            plan[name] = "int"
        elif name in ("ts_exch", "ts_local") and pa.types.is_timestamp(got):
            plan[name] = "timestamp"
        elif name in ("price", "qty") and (pa.types.is_floating(got) or pa.types.is_decimal(got)):
            plan[name] = "real"
        else:
            raise DataError("wrong column type", file=path,
                            detail=f"column {name!r} is {got}, expected {want}"
                            + (" (or a float/decimal of real values with an instrument)" if name in ("price", "qty")
                               else " (or another integer type" + (" or a timestamp)" if name.startswith("ts_")
                                                                    else ")")))
    return plan


def _open(path):
    if os.path.isdir(path):
        raise DataError("is a directory, not a lobsim event file", file=path)
    require_file(path)
    try:
        # pre_buffer=False: with it pyarrow keeps the bytes of every row group
        # read until the file is closed, so replay memory grew with the file.
        f = pq.ParquetFile(str(path), pre_buffer=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError("not a readable Parquet file", file=path, detail=str(exc)) from None
    f.lobsim_plan = _column_plan(f, path)
    return f


def _metadata(f, path, required=True):
    """The lobsim metadata dict of an open file, its version checked; DataError naming the file otherwise.

    A file without lobsim metadata (written by another tool) gives None unless `required`.
    """
    raw = (f.metadata.metadata or {}).get(METADATA_KEY)
    if raw is None:
        if not required:
            return None
        real = [n for n, how in getattr(f, "lobsim_plan", {}).items() if how == "real"]
        why = (f"column {real[0]!r} holds real values ({f.schema_arrow.field(real[0]).type}), not ticks/lots: "
               if real else "written by another tool? ")
        raise DataError("no lobsim metadata (instrument) in file", file=path,
                        detail=why + "pass instrument=lobsim.Instrument(...)")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise DataError("corrupt lobsim metadata", file=path, detail=f"{type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError("corrupt lobsim metadata", file=path, detail=f"not a JSON object: {raw[:80]!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError("unsupported lobsim file version", file=path, detail=f"{meta.get('version')!r:.80}")
    return meta


def read_metadata(path, instrument=None):
    """(Instrument, ValidationReport) stored in a lobsim Parquet file.

    `instrument` is required for a file without lobsim metadata (another
    tool's); for a lobsim file it must equal the stored one (DataError if not).
    """
    if instrument is not None and not isinstance(instrument, Instrument):
        raise TypeError(f"instrument must be a lobsim.Instrument, got {type(instrument).__name__}")
    meta = _metadata(_open(path), path, required=instrument is None)
    if meta is None:
        return instrument, ValidationReport(source=str(path), info={"lobsim_metadata": False})
    try:
        stored = Instrument.from_dict(meta["instrument"])
        report = ValidationReport.from_dict(meta.get("report", {}))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DataError("corrupt lobsim metadata", file=path, detail=f"{type(exc).__name__}: {exc}") from None
    if instrument is not None and instrument != stored:
        raise DataError("instrument= differs from the file's", file=path,
                        detail=f"given {instrument.to_dict()}, file has {stored.to_dict()}")
    return stored, report


def file_book_type(path):
    """The book the whole file needs: "L2" if any event is a SET_LEVEL, else "L3".

    Taken from the metadata written by EventWriter; for files without it
    (older files, other tools) the `kind` column alone is scanned one row
    group at a time (bounded memory), stopping at the first SET_LEVEL.
    """
    f = _open(path)
    meta = _metadata(f, path, required=False)
    book_type = None if meta is None else meta.get("book_type")
    if book_type is not None:
        if book_type not in BOOK_TYPES:
            raise DataError("corrupt lobsim metadata", file=path, detail=f"book_type {book_type!r:.80}")
        return book_type
    for i in range(f.num_row_groups):
        try:
            kinds = f.read_row_group(i, columns=["kind"]).column("kind")
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(path, exc, f"row group {i}") from None
        if _has_levels(kinds.to_numpy()):
            return "L2"
    return "L3"


def _first_bad(mask, first_row):
    return first_row + int(np.flatnonzero(mask)[0])


def _convert_column(col, name, how, instrument, path, first_row):
    """One Arrow column -> numpy of the EVENT_DTYPE field's type, exactly (DataError naming the event otherwise)."""
    want = ARROW_SCHEMA.field(name).type
    np_want = EVENT_DTYPE.fields[name][0]
    if how == "same":
        return col.to_numpy(zero_copy_only=False)
    if how == "int":
        v = col.to_numpy(zero_copy_only=False)
        info = np.iinfo(np_want)
        # compare in the source's own type family: no wrap-around before the check
        out_of_range = (v < info.min) if v.dtype.kind == "i" and info.min == 0 else np.zeros(len(v), bool)
        if v.dtype.kind == "u":
            out_of_range |= v > np.uint64(info.max)
        elif info.max < np.iinfo(v.dtype).max:
            out_of_range |= v > info.max
        if info.min < 0 and v.dtype.kind == "i" and info.min > np.iinfo(v.dtype).min:
            out_of_range |= v < info.min
        if out_of_range.any():
            i = int(np.flatnonzero(out_of_range)[0])
            raise DataError(f"event {first_row + i}: value does not fit {want}", file=path,
                            detail=f"column {name!r} ({col.type}) holds {v[i]}")
        return v.astype(np_want)
    if how == "timestamp":
        try:
            ns = col.cast(pa.timestamp("ns", tz=col.type.tz))  # safe cast: overflow raises, never wraps
        except pa.ArrowInvalid as exc:
            raise DataError(f"column {name!r}: timestamps outside int64 nanoseconds", file=path,
                            detail=str(exc)) from None
        return ns.cast(pa.int64()).to_numpy(zero_copy_only=False)
    # "real": prices / sizes in currency units, converted exactly through the instrument
    unit = instrument.tick_size if name == "price" else instrument.lot_size
    try:
        if pa.types.is_floating(col.type):
            v = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return _array_units(v, name, instrument)
        from lobsim.instrument import parse_decimal_strings

        scaled, scale = parse_decimal_strings(col.cast(pa.string()))
        conv = instrument.prices_from_scaled if name == "price" else instrument.qtys_from_scaled
        return conv(scaled, scale, line_offset=0)
    except DataError as exc:
        i = exc.line if exc.line is not None else _index_in(exc)
        at = f"event {first_row + i}: " if i is not None else ""
        raise DataError(f"{at}column {name!r} cannot be converted exactly to units of {unit}", file=path,
                        detail=exc.reason) from None


def _array_units(v, name, instrument):
    return instrument.prices_to_ticks(v) if name == "price" else instrument.qtys_to_lots(v)


def _index_in(exc):
    import re

    m = re.search(r"\(index (\d+)\)", exc.reason)
    return int(m.group(1)) if m else None


def _to_events_array(batch, path, first_row, plan=None, instrument=None):
    out = np.zeros(batch.num_rows, dtype=EVENT_DTYPE)
    for name in COLUMNS:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if col.null_count:
            i = first_row + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"event {i}: null value", file=path, detail=f"column {name!r}")
        how = "same" if plan is None else plan[name]
        out[name] = _convert_column(col, name, how, instrument, path, first_row)
    return out


def _corrupt(path, exc, where):
    return DataError("corrupt Parquet data", file=path, detail=f"{where}: {type(exc).__name__}: {exc}")


def read_parquet(path, *, instrument=None):
    """Read a whole event file into memory as an Events.

    Files written by other tools are read too: integer columns of any width
    are cast (DataError at the first value that does not fit), timestamp
    columns become int64 ns, and float/decimal `price` / `qty` columns of real
    values are converted through the instrument, refusing any value that is
    not exactly a multiple of the tick / lot. Without lobsim metadata pass
    `instrument=`.
    """
    instrument, report = read_metadata(path, instrument)
    f = _open(path)
    try:
        table = f.read(columns=COLUMNS)
    except (OSError, pa.ArrowException) as exc:
        raise _corrupt(path, exc, "reading the whole file") from None
    return Events(_to_events_array(table, path, 0, f.lobsim_plan, instrument), instrument, report)


def iter_parquet(path, batch_rows=DEFAULT_BATCH, *, instrument=None):
    """Yield EVENT_DTYPE arrays of at most `batch_rows` events, in file order.

    Memory stays bounded by one batch (about 100 bytes per event in Arrow
    and numpy) whatever the file size: the file is opened without
    pre-buffering, so nothing read is kept. The instrument and report come
    from read_metadata. Other tools' files are converted as in read_parquet
    (`instrument=` needed when the file has none).
    """
    f = _open(path)
    plan = f.lobsim_plan
    if any(how == "real" for how in plan.values()) or instrument is not None:
        instrument, _ = read_metadata(path, instrument)
    batches = f.iter_batches(batch_size=batch_rows, columns=COLUMNS)
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(path, exc, f"events from {row}") from None
        yield _to_events_array(batch, path, row, plan, instrument)
        row += batch.num_rows


def file_rows(path):
    """Number of events in a lobsim Parquet file, from its footer (no data is read)."""
    return _open(path).metadata.num_rows


__all__ = ["EventWriter", "write_parquet", "read_parquet", "iter_parquet", "read_metadata", "file_rows",
           "file_book_type"]
