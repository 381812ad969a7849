"""DBN decoding for the Databento reader: the file's metadata and its records, streamed in blocks.

A DBN stream is a metadata header (b"DBN", a version byte, a u32 length, the
metadata) followed by fixed-layout little-endian records, each starting with a
16-byte header whose first byte is the record's length in 4-byte words and
whose second is its type (rtype). Files are raw or zstd (multi-frame).

Only the metadata is decoded by ``databento_dbn`` (``Metadata.decode``,
upgraded to DBN v3). The records are read from the decompressed bytes
(``zstandard``, in blocks of a few MB) straight into numpy structured arrays:
one scan (csrc/dbn.c, lob_dbn_scan) finds the record boundaries, records are
grouped by type, and every converted type's length field is checked against
its layout. The layouts of the converted types are the same in DBN v1, v2 and
v3 (only definitions, statistics, errors, system and symbol-mapping records
changed; those are counted, never converted); tests/test_dbn*.py check every
field against databento_dbn's own attribute decoding on files of each version.
"""
from pathlib import Path

import numpy as np

from lobsim._core import ffi, lib
from lobsim.data._io import require_file
from lobsim.errors import DataError

ZSTD_MAGIC = 0xFD2FB528
BLOCK_BYTES = 1 << 22  # decompressed bytes per block (4 MiB)
_READ_BYTES = 1 << 20  # compressed bytes the zstd reader takes per read
_INSTALL_HINT = "pip install 'lobsim[databento]'"

# --------------------------------------------------------------------------- record layouts (DBN v1-v3)
_HEADER = [("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
           ("ts_event", "<u8")]
MBO_DTYPE = np.dtype(_HEADER + [
    ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"), ("flags", "u1"), ("channel_id", "u1"),
    ("action", "u1"), ("side", "u1"), ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4")])
TRADE_DTYPE = np.dtype(_HEADER + [
    ("price", "<i8"), ("size", "<u4"), ("action", "u1"), ("side", "u1"), ("flags", "u1"), ("depth", "u1"),
    ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4")])
_LEVEL = [("bid_px", "<i8"), ("ask_px", "<i8"), ("bid_sz", "<u4"), ("ask_sz", "<u4"), ("bid_ct", "<u4"),
          ("ask_ct", "<u4")]
_CLEVEL = [("bid_px", "<i8"), ("ask_px", "<i8"), ("bid_sz", "<u4"), ("ask_sz", "<u4"), ("bid_pb", "<u2"),
           ("_res_bid", "<u2"), ("ask_pb", "<u2"), ("_res_ask", "<u2")]
MBP1_DTYPE = np.dtype(TRADE_DTYPE.descr + _LEVEL)
MBP10_DTYPE = np.dtype(TRADE_DTYPE.descr + [("levels", np.dtype(_LEVEL), (10,))])
CMBP1_DTYPE = np.dtype(_HEADER + [
    ("price", "<i8"), ("size", "<u4"), ("action", "u1"), ("side", "u1"), ("flags", "u1"), ("_res0", "u1"),
    ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("_res", "<u4")] + _CLEVEL)
BBO_DTYPE = np.dtype(_HEADER + [
    ("price", "<i8"), ("size", "<u4"), ("_res0", "u1"), ("side", "u1"), ("flags", "u1"), ("_res1", "u1"),
    ("ts_recv", "<u8"), ("_res2", "<u4"), ("sequence", "<u4")] + _LEVEL)
CBBO_DTYPE = np.dtype(_HEADER + [
    ("price", "<i8"), ("size", "<u4"), ("_res0", "u1"), ("side", "u1"), ("flags", "u1"), ("_res1", "u1"),
    ("ts_recv", "<u8"), ("_res2", "<u4"), ("_res3", "<u4")] + _CLEVEL)
STATUS_DTYPE = np.dtype(_HEADER + [
    ("ts_recv", "<u8"), ("action", "<u2"), ("reason", "<u2"), ("trading_event", "<u2"), ("is_trading", "u1"),
    ("is_quoting", "u1"), ("is_short_sell_restricted", "u1"), ("_res", "V7")])
assert [d.itemsize for d in (MBO_DTYPE, TRADE_DTYPE, MBP1_DTYPE, MBP10_DTYPE, CMBP1_DTYPE, BBO_DTYPE, CBBO_DTYPE,
                             STATUS_DTYPE)] == [56, 48, 80, 368, 80, 80, 80, 40]

# rtype -> class name (databento_dbn's v3 class of that record type)
CLASS_OF_RTYPE = {
    0x00: "TradeMsg", 0x01: "MBP1Msg", 0x0A: "MBP10Msg", 0x11: "OHLCVMsg", 0x12: "StatusMsg",
    0x13: "InstrumentDefMsg", 0x14: "ImbalanceMsg", 0x15: "ErrorMsg", 0x16: "SymbolMappingMsg",
    0x17: "SystemMsg", 0x18: "StatMsg", 0x20: "OHLCVMsg", 0x21: "OHLCVMsg", 0x22: "OHLCVMsg",
    0x23: "OHLCVMsg", 0x24: "OHLCVMsg", 0xA0: "MBOMsg", 0xB1: "CMBP1Msg", 0xC0: "CBBOMsg", 0xC1: "CBBOMsg",
    0xC2: "CMBP1Msg", 0xC3: "BBOMsg", 0xC4: "BBOMsg", 0xC5: "MBP1Msg",
}
# the classes the reader converts, with their layouts
DTYPE_OF_CLASS = {"MBOMsg": MBO_DTYPE, "TradeMsg": TRADE_DTYPE, "MBP1Msg": MBP1_DTYPE, "MBP10Msg": MBP10_DTYPE,
                  "CMBP1Msg": CMBP1_DTYPE, "BBOMsg": BBO_DTYPE, "CBBOMsg": CBBO_DTYPE, "StatusMsg": STATUS_DTYPE}


def require_dbn():
    """Import databento_dbn or explain how to get it."""
    try:
        import databento_dbn
    except ImportError as e:
        raise ImportError(
            f"reading Databento DBN files needs the optional package databento-dbn: {_INSTALL_HINT}"
        ) from e
    return databento_dbn


def _require_zstandard():
    try:
        import zstandard
    except ImportError as e:
        raise ImportError(f"reading zstd-compressed DBN files needs the package zstandard: {_INSTALL_HINT}") from e
    return zstandard


def zstd_problem(f, size):
    """Walk the zstd frames of an open file (headers only); None if every frame is
    complete, else a description of where it is truncated or malformed.

    A streaming decoder stops silently at a truncated frame, so this is what turns a
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
        if magic != ZSTD_MAGIC:
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


class Block:
    """The records of one block: class name -> (structured array, 1-based record numbers), in order of
    first appearance; `n` records in all (every type)."""

    def __init__(self, groups, n, first):
        self.groups, self.n, self.first = groups, n, first


class DbnSource:
    """One DBN file (raw or zstd): `metadata` (databento_dbn.Metadata, upgraded to v3), `version`,
    then `blocks()` yields its records block by block; `position()` is the bytes of the file consumed."""

    def __init__(self, path, dbn):
        self.path = Path(path)
        require_file(self.path)  # "file not found", or "is a directory, not a file"
        self.size = self.path.stat().st_size
        self._f = open(self.path, "rb")
        self.n = 0  # records read so far
        self._ended = False
        try:
            self._open(dbn)
        except BaseException:
            self.close()
            raise

    def close(self):
        self._f.close()

    def position(self):
        try:
            return self._f.tell()
        except ValueError:  # closed
            return self.size

    def _open(self, dbn):
        f, path = self._f, self.path
        head = f.read(4)
        if not head:
            raise DataError("empty file, not DBN", file=path)
        magic = int.from_bytes(head.ljust(4, b"\0"), "little")
        f.seek(0)
        if magic == ZSTD_MAGIC or magic & 0xFFFFFFF0 == 0x184D2A50:
            problem = zstd_problem(f, self.size)
            if problem:
                raise DataError("truncated or corrupt zstd stream", file=path, detail=problem)
            f.seek(0)
            zstd = _require_zstandard()
            self._zstd_error = zstd.ZstdError
            self._stream = zstd.ZstdDecompressor().stream_reader(f, read_size=_READ_BYTES, read_across_frames=True)
        elif head[:3] == b"DBN":
            self._zstd_error = ()
            self._stream = f
        else:
            raise DataError("not a DBN file", file=path,
                            detail=f"starts with {head!r}, neither b'DBN' nor the zstd magic")
        prefix = self._read(8)
        if len(prefix) < 8 and prefix[:3] == b"DBN"[:len(prefix)]:
            raise DataError("truncated DBN file: no complete metadata header", file=path)
        if prefix[:3] != b"DBN":
            raise DataError("DBN decoding failed", file=path, line=1,
                            detail=f"the stream starts with {prefix[:8]!r}, not a DBN metadata header")
        self.version = prefix[3]
        if not 1 <= self.version <= 3:
            raise DataError(f"unsupported DBN version {self.version}", file=path, detail="supported: 1, 2, 3")
        length = int.from_bytes(prefix[4:8], "little")
        body = self._read(length)
        if len(body) < length:
            raise DataError("truncated DBN file: no complete metadata header", file=path)
        try:
            self.metadata = dbn.Metadata.decode(prefix + body, dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
        except BaseException as e:  # noqa: B036 - DBNError, or pyo3's PanicException (a BaseException)
            if not (isinstance(e, Exception) or type(e).__name__ == "PanicException"):
                raise
            raise DataError("DBN decoding failed", file=path, detail=f"metadata: {e}") from None
        self.ts_out = bool(self.metadata.ts_out)

    def _read(self, n):
        """Up to n decompressed bytes (fewer only at the end of the stream)."""
        parts, got = [], 0
        while got < n:
            try:
                b = self._stream.read(n - got)
            except self._zstd_error as e:
                raise DataError("DBN decoding failed", file=self.path, line=self.n + 1,
                                detail=f"corrupt zstd data at or after record {self.n + 1}: {e}") from None
            if not b:
                break
            parts.append(b)
            got += len(b)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def blocks(self, block_bytes=BLOCK_BYTES):
        """Yield a Block per ~block_bytes of decompressed records until the end of the file."""
        left = b""
        while True:
            data = self._read(block_bytes)
            buf = left + data if left else data
            if not data:
                if buf:
                    raise DataError("truncated DBN file: it ends inside a record", file=self.path, line=self.n + 1,
                                    detail=f"record {self.n + 1}: only {len(buf)} bytes present")
                return
            offsets, used, error = self._scan(buf)
            left = buf[used:]
            block = self._group(buf, offsets) if len(offsets) else None  # checks their lengths first
            if error is not None:
                raise error
            if block is not None:
                yield block

    def _scan(self, buf):
        cap = len(buf) // 16 + 1
        offsets = np.empty(cap, dtype=np.int64)
        n_out, used = ffi.new("size_t *"), ffi.new("size_t *")
        rc = lib.lob_dbn_scan(ffi.from_buffer(buf), len(buf), ffi.cast("int64_t *", ffi.from_buffer(offsets)),
                              cap, n_out, used)
        error = None
        if rc != lib.LOB_OK:
            k = self.n + int(n_out[0]) + 1
            error = DataError("DBN decoding failed", file=self.path, line=k,
                              detail=f"record {k}: length field {buf[used[0]] * 4} bytes is shorter than a "
                                     "record header (corrupt data)")
        return offsets[:n_out[0]], int(used[0]), error

    def _group(self, buf, offsets):
        u8 = np.frombuffer(buf, dtype=np.uint8)
        n = len(offsets)
        first = self.n + 1
        recno_all = np.arange(first, first + n, dtype=np.int64)
        rtypes = u8[offsets + 1]
        counts = np.bincount(rtypes, minlength=256)
        present = np.flatnonzero(counts)
        if len(present) > 1:  # order of first appearance
            present = present[np.argsort([int(np.argmax(rtypes == r)) for r in present], kind="stable")]
        groups = {}
        extra = 8 if self.ts_out else 0
        for r in present.tolist():
            name = CLASS_OF_RTYPE.get(r)
            idx = None if len(present) == 1 else np.flatnonzero(rtypes == r)
            off = offsets if idx is None else offsets[idx]
            if name is None:
                k = int(recno_all[0] if idx is None else recno_all[idx[0]])
                raise DataError("DBN decoding failed", file=self.path, line=k,
                                detail=f"record {k}: unknown record type (rtype {r:#04x})")
            dtype = DTYPE_OF_CLASS.get(name)
            if dtype is None:  # a type the reader only counts
                groups.setdefault(name, []).append((None, recno_all if idx is None else recno_all[idx]))
                continue
            size = dtype.itemsize + extra
            lengths = u8[off].astype(np.int64) * 4
            bad = np.flatnonzero(lengths != size)
            if len(bad):
                k = int((recno_all if idx is None else recno_all[idx])[bad[0]])
                raise DataError("record length field does not match its type", file=self.path, line=k,
                                detail=f"record {k}: {name} with length {int(lengths[bad[0]])}; expected {size}"
                                       + (" (with ts_out)" if extra else ""))
            full = np.dtype({"names": list(dtype.names), "formats": [dtype.fields[f][0] for f in dtype.names],
                             "offsets": [dtype.fields[f][1] for f in dtype.names], "itemsize": size})
            if idx is None or (len(off) > 1 and np.all(np.diff(off) == size)) or len(off) == 1:
                rec = np.frombuffer(buf, dtype=full, count=len(off), offset=int(off[0]))
            else:
                rec = u8[off[:, None] + np.arange(size)].view(full).ravel()
            if extra:  # drop ts_out: the plain layout (a copy)
                rec = rec.astype(dtype)
            groups.setdefault(name, []).append((rec, recno_all if idx is None else recno_all[idx]))
        out = {}
        for name, parts in groups.items():
            if len(parts) == 1:
                out[name] = parts[0]
            else:  # two rtypes of one class (e.g. BBO_1S and BBO_1M): back in record order
                recno = np.concatenate([p[1] for p in parts])
                order = np.argsort(recno, kind="stable")
                rec = None if parts[0][0] is None else np.concatenate([p[0] for p in parts])[order]
                out[name] = (rec, recno[order])
        self.n += n
        return Block(out, n, first)
