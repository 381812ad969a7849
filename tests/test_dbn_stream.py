"""iter_dbn: chunked == one-shot (bit-identical arrays, merged reports), state carried across
chunk and block boundaries, progress, bounded blocks."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

dbn = pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

import lobsim.data.dbn_decode as dbn_decode  # noqa: E402
from lobsim.data import events as events_mod  # noqa: E402
from lobsim.data.dbn import iter_dbn, read_dbn  # noqa: E402
from lobsim.data.events import ValidationReport, collect  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "databento"
ESH4 = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBP1 = DATA / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"
needs_data = pytest.mark.skipif(not ESH4.exists(), reason=f"Databento sample data not found at {DATA}")

_ONE_SHOT = {}


def one_shot(path, fills):
    key = (str(path), fills)
    if key not in _ONE_SHOT:
        _ONE_SHOT[key] = read_dbn(path, fills=fills)
    return _ONE_SHOT[key]


def check_chunked(path, fills, chunk_rows, prefix=None):
    whole = one_shot(path, fills)
    chunks = []
    for ev in iter_dbn(path, fills=fills, chunk_rows=chunk_rows):
        chunks.append(ev)
        if prefix is not None and len(chunks) * chunk_rows >= prefix:
            break
    assert all(len(c) == chunk_rows for c in chunks[:-1])
    arr = np.concatenate([c.array for c in chunks])
    if prefix is not None:
        assert arr.tobytes() == whole.array[:len(arr)].tobytes()
        return
    assert len(chunks[-1]) <= chunk_rows
    assert arr.tobytes() == whole.array.tobytes()
    merged = ValidationReport.merged([c.report for c in chunks])
    assert merged.counts == whole.report.counts
    assert {k: v[:1] for k, v in merged.examples.items()} == {k: v[:1] for k, v in whole.report.examples.items()}
    assert merged.info == whole.report.info
    assert all(c.instrument == whole.instrument for c in chunks)


@needs_data
@pytest.mark.parametrize("fills", ["execute", "ignore"])
@pytest.mark.parametrize("chunk_rows", [2, 3, 7, 13, 4099, 63419, 1 << 20])
def test_esh4_chunked_equals_one_shot(fills, chunk_rows):
    check_chunked(ESH4, fills, chunk_rows)


@needs_data
def test_esh4_chunks_of_one_row():
    check_chunked(ESH4, "execute", 1, prefix=20_000)  # a prefix: a chunk per event is slow
    check_chunked(MBP1, "execute", 1)


@needs_data
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunk_rows=st.integers(1, 70_000), fills=st.sampled_from(["execute", "ignore"]))
def test_esh4_random_chunk_sizes(chunk_rows, fills):
    if chunk_rows < 50:
        chunk_rows += 50  # whole file; the tiny sizes are covered above
    check_chunked(ESH4, fills, chunk_rows)


@needs_data
@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 97, 1 << 20])
def test_mbp1_chunked_equals_one_shot(chunk_rows):
    check_chunked(MBP1, "execute", chunk_rows)


@needs_data
@pytest.mark.parametrize("block", [56 * 997, 4096, 56 * 3 + 5])
def test_small_decoder_blocks_give_the_same_events(monkeypatch, block):
    """Blocks of a few records: batch ends, pending fills, open snapshot runs and crossings
    whose next print is in a later block all carry over; the report is the same."""
    whole = one_shot(ESH4, "execute")
    monkeypatch.setattr(dbn_decode, "BLOCK_BYTES", block)
    monkeypatch.setattr(dbn_decode.DbnSource.blocks, "__defaults__", (block,))
    # the tick is given: inferred from a first block of 3 records it would be 1.0 (a DataError later)
    got = collect(iter_dbn(ESH4, chunk_rows=5003, instrument=whole.instrument))
    assert got.array.tobytes() == whole.array.tobytes()
    assert got.report.counts == whole.report.counts

    def info(ev):
        return {k: v for k, v in ev.report.info.items() if k != "tick_size_source"}

    assert info(got) == info(whole)
    mbp_whole = one_shot(MBP1, "execute")
    mbp = collect(iter_dbn(MBP1, chunk_rows=11, instrument=mbp_whole.instrument))
    assert mbp.array.tobytes() == mbp_whole.array.tobytes()
    assert info(mbp) == info(mbp_whole)


@needs_data
def test_progress_reports_compressed_bytes():
    seen = []
    list(iter_dbn(ESH4, chunk_rows=10_000, progress=seen.append))
    size = ESH4.stat().st_size
    assert seen and seen[-1] == size and all(a <= b for a, b in zip(seen, seen[1:]))
    assert len(seen) >= 2


def test_iter_checks_arguments(tmp_path):
    with pytest.raises(ValueError):
        iter_dbn(tmp_path / "x.dbn", fills="maybe")
    with pytest.raises((ValueError, TypeError)):
        iter_dbn(tmp_path / "x.dbn", chunk_rows=0)


def test_one_empty_chunk_for_a_file_without_records(tmp_path):
    meta = dbn.Metadata(dataset="GLBX.MDP3", start=0, stype_in=dbn.SType.RAW_SYMBOL,
                        stype_out=dbn.SType.INSTRUMENT_ID, schema=dbn.Schema.MBO, symbols=["X"], mappings=[])
    p = tmp_path / "empty.dbn"
    p.write_bytes(bytes(meta))
    chunks = list(iter_dbn(p, chunk_rows=10))
    assert len(chunks) == 1 and len(chunks[0]) == 0
    assert chunks[0].report.info["records"] == 0 and chunks[0].report.info["events"] == 0


def test_default_chunk_size_is_the_contract():
    assert iter_dbn.__kwdefaults__["chunk_rows"] == events_mod.DEFAULT_CHUNK_ROWS
