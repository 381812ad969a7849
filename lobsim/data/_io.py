"""Input helpers shared by the readers: opening a file (gzip or plain) and naming lines across files."""
import gzip
import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from lobsim.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

try:  # ISA-L's inflate and CRC-32 (the isal package, a dependency): 2.4-3x zlib's on the captures
    from isal import isal_zlib as fast_zlib
except ImportError:  # pragma: no cover - zlib where isal is missing (same API, same results)
    import zlib as fast_zlib


def require_file(path):
    """DataError unless `path` is an existing regular file: "is a directory", or "file not found"."""
    p = Path(path)
    if p.is_dir():
        raise DataError("is a directory, not a file", file=path)
    if not p.is_file():
        raise DataError("file not found", file=path)


def open_input(path, *, arrow=False):
    """Open `path` for binary reading, gunzipped if it starts with gzip's magic bytes (whatever its name).

    arrow=True returns a pyarrow input stream (native, threaded I/O for
    pyarrow.csv) instead of a Python file object. A missing file raises
    DataError("file not found"), an unreadable one DataError("cannot open");
    a corrupt gzip stream fails later, when it is read.
    """
    require_file(path)
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == GZIP_MAGIC
        if arrow:
            return pa.input_stream(str(path), compression="gzip" if gz else None)
        return io.BufferedReader(gzip.open(path, "rb"), 1 << 20) if gz else open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot open: {e.strerror or e}", file=path) from None


def disk_position(stream):
    """Bytes of the underlying file consumed so far by a stream from open_input (compressed bytes for gzip).

    For progress reports (`progress=` of the iter_* readers): comparable with
    the file's size on disk. 0 when the stream does not tell.
    """
    raw = getattr(stream, "raw", stream)  # BufferedReader -> GzipFile or FileIO
    raw = getattr(raw, "fileobj", raw)  # GzipFile -> the compressed file
    try:
        return int(raw.tell())
    except (AttributeError, OSError, ValueError):
        return 0


class Locator:
    """Maps global line numbers of files read one after another back to (file, line).

    Line `ln` of a file gets the global number ``base + ln`` where `base` is what
    `add` returned for it, so global numbers keep file order (useful as a stable
    sort key) and one integer array can name the source of every record.
    """

    def __init__(self):
        self._paths, self._bases, self._next = [], [], 0

    def add(self, path, last_line=None):
        """Register the next file, whose lines are numbered up to `last_line`; -> its base.

        A file read as a stream passes its last line to `end` once it is read.
        """
        base = self._next
        self._paths.append(path)
        self._bases.append(base)
        if last_line is not None:
            self.end(last_line)
        return base

    def end(self, last_line):
        """The last file added has lines up to `last_line`: the next file starts after it."""
        self._next = self._bases[-1] + int(last_line) + 1

    def __call__(self, g):
        """(file, line) of global line number `g`."""
        i = int(np.searchsorted(self._bases, g, side="right")) - 1
        return self._paths[i], int(g - self._bases[i])
