"""Streaming Kraken reader: iter_kraken chunks == read_kraken for every pair of the real capture, whatever the
chunk size and the conversion block size, with every checksum still verified (0 mismatches); the tick
inferred from the first block and a later price off it; progress."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lobsim.data.kraken as kraken_mod
from lobsim import DataError
from lobsim.data import iter_kraken, read_kraken
from lobsim.data.events import ValidationReport
from lobsim.data.kraken import CHECKSUM_MISMATCH
from test_kraken import book_line, crc  # the capture-line and checksum helpers, written independently of the reader

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kraken"
SAMPLE = DATA / "book1000_10pairs_head.ws"
PAIRS = ["WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR", "ETH/CHF", "OCEAN/XBT", "OMG/USD", "XBT/CHF",
         "ADA/XBT"]
needs_data = pytest.mark.skipif(not SAMPLE.is_file(), reason=f"real Kraken capture not found at {SAMPLE}")

_ONE_SHOT = {}


def one_shot(pair):
    if pair not in _ONE_SHOT:
        _ONE_SHOT[pair] = read_kraken(SAMPLE, pair)
    return _ONE_SHOT[pair]


def assert_same(chunks, whole, chunk_rows):
    chunks = list(chunks)
    assert all(len(c) == chunk_rows for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk_rows
    assert all(c.instrument == whole.instrument for c in chunks)
    got = np.concatenate([c.array for c in chunks])
    assert got.tobytes() == whole.array.tobytes()
    merged = ValidationReport.merged([c.report for c in chunks])
    assert merged.counts == whole.report.counts
    assert {k: v[0] for k, v in merged.examples.items()} == {k: v[0] for k, v in whole.report.examples.items()}
    assert merged.info == whole.report.info
    return merged


@needs_data
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 31, 1 << 20])
def test_chunks_equal_one_shot_every_pair(pair, chunk_rows):
    whole = one_shot(pair)
    assert whole.report.counts.get(CHECKSUM_MISMATCH, 0) == 0  # (GRT/ETH has only its snapshot in the sample)
    merged = assert_same(iter_kraken(SAMPLE, pair, chunk_rows=chunk_rows), whole, chunk_rows)
    assert merged.counts.get(CHECKSUM_MISMATCH, 0) == 0


@needs_data
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("block", [1, 5, 64])
def test_conversion_blocks_do_not_matter(monkeypatch, pair, block):
    """Blocks of a few lines: the book, checksums, clocks and crossed check carry across them.
    (The latency percentiles are measured on the first block: they may differ.)"""
    whole = one_shot(pair)
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", block)
    chunks = list(iter_kraken(SAMPLE, pair, chunk_rows=13))
    assert np.concatenate([c.array for c in chunks]).tobytes() == whole.array.tobytes()
    merged = ValidationReport.merged([c.report for c in chunks])
    assert merged.counts == whole.report.counts
    lat = "feed_latency_ms"
    assert {k: v for k, v in merged.info.items() if k != lat} == {k: v for k, v in whole.report.info.items()
                                                                  if k != lat}
    assert merged.info["checksums_checked"] == whole.report.info["checksums_checked"]


@needs_data
def test_all_422_checksums_streamed_in_small_blocks(monkeypatch):
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", 3)
    total = 0
    for pair in PAIRS:
        merged = ValidationReport.merged([c.report for c in iter_kraken(SAMPLE, pair, chunk_rows=5)])
        assert merged.counts.get(CHECKSUM_MISMATCH, 0) == 0
        total += merged.info["checksums_checked"]
    assert total == 422


@needs_data
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(PAIRS), chunk_rows=st.integers(1, 2000), block=st.integers(1, 500))
def test_random_chunk_and_block_sizes(monkeypatch, pair, chunk_rows, block):
    whole = one_shot(pair)
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", block)
    chunks = list(iter_kraken(SAMPLE, pair, chunk_rows=chunk_rows))
    assert np.concatenate([c.array for c in chunks]).tobytes() == whole.array.tobytes()
    assert ValidationReport.merged([c.report for c in chunks]).counts == whole.report.counts


@needs_data
def test_progress_reaches_the_file_size():
    seen = []
    chunks = list(iter_kraken(SAMPLE, "XBT/CHF", chunk_rows=50, progress=seen.append))
    assert len(seen) >= len(chunks) and seen == sorted(seen) and seen[-1] == SAMPLE.stat().st_size


def _capture(tmp_path, n_updates, late_price="10.55"):
    """A snapshot, n_updates updates on a 0.1 grid, then one at `late_price` (finer than the grid)."""
    asks, bids = {"10.5": "1.0"}, {"10.4": "1.0"}
    lines = [book_line("1000.0", [{"as": [["10.5", "1.0", "999.0"]], "bs": [["10.4", "1.0", "999.0"]]}],
                       channel="book-10")]
    for i in range(n_updates):
        q = f"{i % 7 + 1}.0"
        asks["10.5"] = q
        lines.append(book_line(f"{1001 + i}.0", [{"a": [["10.5", q, f"{1000 + i}.0"]], "c": crc(asks, bids)}],
                               channel="book-10"))
    asks[late_price] = "2.0"
    lines.append(book_line(f"{2000 + n_updates}.0", [{"a": [[late_price, "2.0", f"{1999 + n_updates}.0"]],
                                                       "c": crc(asks, bids)}], channel="book-10"))
    p = tmp_path / "cap.ws"
    p.write_text("\n".join(lines) + "\n")
    return p, len(lines)


def test_inferred_tick_from_the_first_block_then_a_finer_price(tmp_path, monkeypatch):
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", 10)
    path, n = _capture(tmp_path, 30)
    with pytest.raises(DataError, match="tick_size") as e:
        list(iter_kraken(path, "XX/YY", chunk_rows=4))
    assert e.value.line == n and e.value.file == str(path)
    ev = read_kraken(path, "XX/YY", tick_size="0.01")  # given: no inference, every checksum verified
    assert ev.report.counts.get(CHECKSUM_MISMATCH, 0) == 0 and ev.report.info["checksums_checked"] == 31
    assert ev.report.info["inferred"] == ["lot_size"]


def test_price_in_the_first_block_sets_the_grid(tmp_path, monkeypatch):
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", 100)
    path, _ = _capture(tmp_path, 5)  # the finer price is inside the first block: inferred 0.01
    ev = read_kraken(path, "XX/YY")
    assert str(ev.instrument.tick_size) == "0.01" and ev.report.counts.get(CHECKSUM_MISMATCH, 0) == 0


def test_strict_mismatch_raises_in_a_later_block(tmp_path, monkeypatch):
    monkeypatch.setattr(kraken_mod, "BLOCK_LINES", 4)
    path, n = _capture(tmp_path, 20, late_price="10.6")
    text = path.read_text().splitlines()
    text[15] = text[15].replace('"c":"', '"c":"1')  # a wrong checksum on line 16
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=CHECKSUM_MISMATCH) as e:
        list(iter_kraken(path, "XX/YY", chunk_rows=3, strict=True))
    assert e.value.line == 16
    assert read_kraken(path, "XX/YY").report.counts[CHECKSUM_MISMATCH] == 1
