"""Parquet event store: one column per EVENT_DTYPE field, instrument and report in metadata.

Files are written in row groups so that `iter_parquet` can replay a file
larger than memory one row group at a time.
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lobsim._types import EVENT_DTYPE
from lobsim.data._io import require_file
from lobsim.data.events import Events, ValidationReport
from lobsim.errors import DataError
from lobsim.instrument import Instrument

METADATA_KEY = b"lobsim"
FORMAT_VERSION = 1
COLUMNS = [name for name in EVENT_DTYPE.names if name != "reserved"]
ARROW_SCHEMA = pa.schema([(name, pa.from_numpy_dtype(EVENT_DTYPE.fields[name][0])) for name in COLUMNS])
DEFAULT_ROW_GROUP = 1 << 20


def write_parquet(events, path, *, row_group_size=DEFAULT_ROW_GROUP, compression="zstd"):
    """Write an Events to `path` (instrument and report kept in the file metadata)."""
    if not isinstance(events, Events):
        raise TypeError("write_parquet takes a lobsim.data.Events (array, instrument, report)")
    meta = {"version": FORMAT_VERSION, **events.metadata()}
    schema = ARROW_SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    table = pa.table([pa.array(events.array[name]) for name in COLUMNS], schema=schema)
    pq.write_table(table, str(path), row_group_size=row_group_size, compression=compression)


def _open(path):
    require_file(path)
    try:
        f = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise DataError("not a readable Parquet file", file=path, detail=str(exc)) from None
    names = f.schema_arrow.names
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise DataError("not a lobsim event file", file=path, detail=f"missing columns {missing}")
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise DataError("duplicated columns", file=path, detail=str(doubled))
    for name in COLUMNS:
        want = ARROW_SCHEMA.field(name).type
        got = f.schema_arrow.field(name).type
        if got != want:
            raise DataError("wrong column type", file=path, detail=f"column {name!r} is {got}, expected {want}")
    return f


def read_metadata(path):
    """(Instrument, ValidationReport) stored in a lobsim Parquet file."""
    f = _open(path)
    raw = (f.schema_arrow.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DataError("no lobsim metadata (instrument) in file", file=path)
    try:
        meta = json.loads(raw)
        if meta.get("version") != FORMAT_VERSION:
            raise DataError("unsupported lobsim file version", file=path, detail=str(meta.get("version")))
        instrument = Instrument.from_dict(meta["instrument"])
        report = ValidationReport.from_dict(meta.get("report", {}))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError("corrupt lobsim metadata", file=path, detail=f"{type(exc).__name__}: {exc}") from None
    return instrument, report


def _to_events_array(batch, path, first_row):
    out = np.zeros(batch.num_rows, dtype=EVENT_DTYPE)
    for name in COLUMNS:
        col = batch.column(name)
        if col.null_count:
            i = first_row + int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError("null value", file=path, line=i, detail=f"column {name!r}, row {i}")
        out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _corrupt(path, exc):
    return DataError("corrupt Parquet data", file=path, detail=f"{type(exc).__name__}: {exc}")


def read_parquet(path):
    """Read a whole event file into memory as an Events."""
    instrument, report = read_metadata(path)
    try:
        table = _open(path).read(columns=COLUMNS)
    except (OSError, pa.ArrowException) as exc:
        raise _corrupt(path, exc) from None
    return Events(_to_events_array(table, path, 0), instrument, report)


def iter_parquet(path, batch_rows=DEFAULT_ROW_GROUP):
    """Yield EVENT_DTYPE arrays of at most `batch_rows` events, in file order.

    Memory stays bounded by one batch whatever the file size (the instrument
    and report come from read_metadata).
    """
    f = _open(path)
    batches = f.iter_batches(batch_size=batch_rows, columns=COLUMNS)
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(path, exc) from None
        yield _to_events_array(batch, path, row)
        row += batch.num_rows


def file_rows(path):
    """Number of events in a lobsim Parquet file, from its footer (no data is read)."""
    return _open(path).metadata.num_rows


__all__ = ["write_parquet", "read_parquet", "iter_parquet", "read_metadata", "file_rows"]
