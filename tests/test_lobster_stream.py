"""Streaming LOBSTER reader: iter_lobster chunks == read_lobster, whatever the chunk and input block sizes.

The vendor's samples in ../shared/data/lobster (three zips and the AAPL level-10
CSV head) are read one-shot and in chunks of 1 event, small primes and sizes
drawn by hypothesis (so chunk boundaries fall inside message batches), and with
input blocks of a few hundred bytes to a few MB (so the C replay's state --
known orders, synthetic liquidity, the vendor's previous row, the latest time
-- is carried across block boundaries everywhere). The arrays must be
bit-identical and the chunk reports must merge into the one-shot report (same
counts and integer info, same first example per reason).
"""
import itertools
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lobsim.data.lobster as lobster_mod
from lobsim import DataError
from lobsim.data import iter_lobster, read_lobster
from lobsim.data.events import ValidationReport, collect

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
SAMPLES = {
    "AMZN_5": "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
    "AMZN_1": "LOBSTER_SampleFile_AMZN_2012-06-21_1.zip",
    "AAPL_1": "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip",
    "AAPL_10_head": "AAPL_10_head/AAPL_2012-06-21_34200000_57600000_message_10.csv",
}
STEM = "TEST_2012-06-21_34200000_57600000"

_ONE_SHOT = {}


def sample(name):
    path = DATA / SAMPLES[name]
    if not path.exists():
        pytest.skip(f"LOBSTER sample {path} not found (shared data absent)")
    if name not in _ONE_SHOT:
        _ONE_SHOT[name] = read_lobster(path)
    return path, _ONE_SHOT[name]


def assert_same_report(merged, whole):
    assert merged.counts == whole.counts
    assert {k: v[0] for k, v in merged.examples.items()} == {k: v[0] for k, v in whole.examples.items()}
    assert merged.info == whole.info
    assert merged.source == whole.source


def assert_chunked_equals_one_shot(chunks, whole, chunk_rows):
    chunks = list(chunks)
    assert all(len(c) == chunk_rows for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_rows
    assert all(c.instrument == whole.instrument for c in chunks)
    got = np.concatenate([c.array for c in chunks])
    assert got.dtype == whole.array.dtype and np.array_equal(got, whole.array)
    assert got.tobytes() == whole.array.tobytes()
    assert_same_report(ValidationReport.merged([c.report for c in chunks]), whole.report)


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("chunk_rows", [2, 3, 7, 101, 4099, 1 << 20])
def test_chunks_equal_one_shot(name, chunk_rows):
    path, whole = sample(name)
    assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=chunk_rows), whole, chunk_rows)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_chunks_of_one_event(name):
    """Every event its own chunk: the whole file for the small samples, a prefix of the large ones."""
    path, whole = sample(name)
    if len(whole) <= 100_000:
        assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=1), whole, 1)
        return
    n = 30_000
    got = np.concatenate([c.array for c in itertools.islice(iter_lobster(path, chunk_rows=1), n)])
    assert got.tobytes() == whole.array[:n].tobytes()


@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("block", [4096, 65_537, 1 << 23])
def test_input_blocks_do_not_matter(monkeypatch, name, block):
    """Input read in blocks of any size (a line cut anywhere): same events, counts and first examples."""
    path, whole = sample(name)
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", block)
    assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=9973), whole, 9973)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_rows=st.integers(1, 3000), block=st.integers(64, 20_000))
def test_random_chunk_and_block_sizes(monkeypatch, chunk_rows, block):
    path, whole = sample("AAPL_10_head")
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", block)
    assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=chunk_rows), whole, chunk_rows)


@settings(max_examples=10, deadline=None)
@given(chunk_rows=st.integers(1, 50_000))
def test_random_chunk_sizes_on_a_zip(chunk_rows):
    path, whole = sample("AMZN_1")
    assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=chunk_rows), whole, chunk_rows)


def test_chunk_reports_add_up_with_anomalies(monkeypatch):
    """A sample with several anomaly kinds, cut small: every reason counted once in all, first examples kept."""
    path, whole = sample("AMZN_5")
    assert {"unknown_order_id", "skipped:subtick_trade_price", "size_mismatch"} <= set(whole.report.counts)
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", 100_003)
    chunks = list(iter_lobster(path, chunk_rows=5000))
    assert sum(bool(c.report.counts) for c in chunks) > 5  # anomalies are spread over many chunk reports
    assert_same_report(ValidationReport.merged([c.report for c in chunks]), whole.report)
    assert collect(iter(chunks)).array.tobytes() == whole.array.tobytes()


def test_progress_reports_compressed_bytes_of_both_members():
    path, _ = sample("AMZN_1")
    seen = []
    chunks = list(iter_lobster(path, chunk_rows=10_000, progress=seen.append))
    with zipfile.ZipFile(path) as zf:
        total = sum(i.compress_size for i in zf.infolist() if i.filename.endswith(".csv"))
    assert len(seen) >= len(chunks) and seen == sorted(seen)
    assert seen[-1] == total


def test_progress_on_plain_csvs():
    path, _ = sample("AAPL_10_head")
    seen = []
    list(iter_lobster(path, chunk_rows=100, progress=seen.append))
    ob = path.with_name(path.name.replace("_message_", "_orderbook_"))
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size + ob.stat().st_size


def write_pair(tmp_path, messages, books, levels=1):
    m = tmp_path / f"{STEM}_message_{levels}.csv"
    m.write_text("".join(line + "\n" for line in messages))
    (tmp_path / f"{STEM}_orderbook_{levels}.csv").write_text("".join(line + "\n" for line in books))
    return m


def test_error_after_valid_chunks_names_its_line(tmp_path, monkeypatch):
    """A malformed line deep in the file: the chunks before it are yielded, then DataError with its line."""
    msgs = [f"34200.{k:06d},1,{k + 1},10,1000000,1" for k in range(500)]
    books = [f"1010000,5,1000000,{10 * (k + 1)}" for k in range(500)]
    msgs[400] = "34200.4,1,401,10,1000000,x"
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", 1000)
    path = write_pair(tmp_path, msgs, books)
    got = []
    with pytest.raises(DataError, match="column 6") as e:
        for c in iter_lobster(path, chunk_rows=50):
            got.append(c)
    assert e.value.line == 401 and got and sum(len(c) for c in got) <= 401


def test_strict_stops_at_the_first_anomaly_across_blocks(tmp_path, monkeypatch):
    msgs = [f"34200.{k:06d},1,{k + 1},10,1000000,1" for k in range(300)] + ["34201,3,999,10,1000000,1"]
    books = [f"1010000,5,1000000,{10 * (k + 1)}" for k in range(300)] + ["1010000,5,1000000,2990"]
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", 700)
    path = write_pair(tmp_path, msgs, books)
    with pytest.raises(DataError) as e:
        list(iter_lobster(path, chunk_rows=7, strict=True))
    assert e.value.line == 301 and e.value.reason == "unknown_order_id"
    ev = read_lobster(path)
    assert ev.report.counts["unknown_order_id"] == 1


@pytest.mark.parametrize("nbooks", [250, 350])
def test_row_counts_differ_across_blocks(tmp_path, monkeypatch, nbooks):
    msgs = [f"34200.{k:06d},1,{k + 1},10,1000000,1" for k in range(300)]
    books = [f"1010000,5,1000000,{10 * (k + 1)}" for k in range(nbooks)]
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", 900)
    path = write_pair(tmp_path, msgs, books)
    with pytest.raises(DataError, match=f"orderbook has {nbooks} rows but the message file has 300") as e:
        list(iter_lobster(path, chunk_rows=64))
    assert e.value.line == min(nbooks, 300) + 1


def test_abandoned_stream_stops_its_threads():
    import threading

    path, _ = sample("AMZN_5")
    before = threading.active_count()
    it = iter_lobster(path, chunk_rows=1000)
    next(it)
    it.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("lib", ["zlib", "default"])
def test_zip_member_reader_with_either_inflate(monkeypatch, lib):
    """The zip members are unpacked by _Member with ISA-L (when installed) or zlib: the same bytes."""
    import zlib

    path, whole = sample("AMZN_1")
    if lib == "zlib":
        monkeypatch.setattr(lobster_mod, "_inflate", zlib)
    monkeypatch.setattr(lobster_mod, "BLOCK_BYTES", 300_007)
    assert_chunked_equals_one_shot(iter_lobster(path, chunk_rows=50_000), whole, 50_000)
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".csv"):
                continue
            src = lobster_mod._Source(path, name)
            got = []
            with src.opened() as f:
                assert isinstance(f, lobster_mod._Member)
                while chunk := src.read(f, 65_537):
                    got.append(chunk)
                assert src.position(f) == zf.getinfo(name).compress_size
            assert b"".join(got) == zf.read(name)


@pytest.mark.parametrize("where", ["middle", "end"])
def test_corrupt_deflated_member_is_a_data_error(tmp_path, where):
    msgs = [f"34200.{k:06d},1,{k + 1},10,1000000,1" for k in range(3000)]
    books = [f"1010000,5,1000000,{10 * (k + 1)}" for k in range(3000)]
    path = write_pair(tmp_path, msgs, books)
    z = tmp_path / "pair.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(path, path.name)
        ob = path.with_name(path.name.replace("_message_", "_orderbook_"))
        zf.write(ob, ob.name)
        info = zf.getinfo(path.name)
    data = bytearray(z.read_bytes())
    start = info.header_offset + 30 + len(path.name)
    at = start + (info.compress_size // 2 if where == "middle" else info.compress_size - 3)
    data[at] ^= 0x55
    z.write_bytes(bytes(data))
    with pytest.raises(DataError, match="unreadable zip member") as e:
        list(iter_lobster(z, chunk_rows=1000))
    assert path.name in str(e.value)
