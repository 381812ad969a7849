"""ChunkedOutput (exact-size chunks, per-chunk reports), collect and ValidationReport.merge."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lobsim._types import EVENT_DTYPE
from lobsim.data.events import MAX_EXAMPLES, ChunkedOutput, ValidationReport, collect
from lobsim.instrument import Instrument

INST = Instrument("X", "0.01")


def events(n, start=0):
    a = np.zeros(n, EVENT_DTYPE)
    a["ts_exch"] = a["ts_local"] = np.arange(start, start + n)
    a["order_id"] = np.arange(start, start + n)
    return a


def reader(blocks, chunk_rows, late_note=False):
    """A toy streaming reader: notes one anomaly and a row count per block."""
    out = ChunkedOutput(chunk_rows, "toy", instrument=INST)
    start = 0
    for n in blocks:
        out.report.anomaly("odd_block", line=start, detail=f"block of {n}") if n % 2 else None
        out.report.info["rows"] = out.report.info.get("rows", 0) + n  # an amount: summed by merge
        out.report.info["last_block"] = f"{n} rows"  # a fact: the later one wins
        yield from out.add(events(n, start))
        start += n
    if late_note:
        out.report.anomaly("noted_at_the_end", line=start)
    yield from out.finish()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=12), st.integers(1, 50), st.booleans())
def test_chunks_are_exact_and_collect_equals_one_shot(blocks, chunk_rows, late):
    one = collect(reader(blocks, 10**9, late))
    chunks = list(reader(blocks, chunk_rows, late))
    sizes = [len(c) for c in chunks]
    assert all(s == chunk_rows for s in sizes[:-1]) and sizes[-1] <= chunk_rows
    got = collect(iter(chunks))
    assert got.array.tobytes() == one.array.tobytes() == events(sum(blocks)).tobytes()
    assert got.report.counts == one.report.counts
    assert {k: v[0] for k, v in got.report.examples.items()} == {k: v[0] for k, v in one.report.examples.items()}
    assert got.report.info == one.report.info
    if late:  # noted after the last full chunk: carried by a (possibly empty) last chunk, never lost
        assert got.report.counts["noted_at_the_end"] == 1


def test_empty_input_still_gives_one_chunk_with_the_instrument():
    chunks = list(reader([], 5))
    assert len(chunks) == 1 and len(chunks[0]) == 0 and chunks[0].instrument == INST


def test_merge_adds_counts_keeps_first_examples_sums_int_info():
    a, b = ValidationReport(source="f"), ValidationReport(source="f")
    for i in range(4):
        a.anomaly("gap", line=i)
    for i in range(4, 10):
        b.anomaly("gap", line=i)
    a.info.update(rows=3, mode="x", flag=True)
    b.info.update(rows=4, mode="y", flag=False, new=1)
    m = ValidationReport.merged([a, b])
    assert m.counts["gap"] == 10
    assert m.examples["gap"] == [f"f:{i}" for i in range(MAX_EXAMPLES)]
    assert m.info == {"rows": 7, "mode": "y", "flag": False, "new": 1}
    assert ValidationReport.merged([]).total == 0


def test_chunk_rows_is_validated():
    with pytest.raises(ValueError, match="chunk_rows"):
        ChunkedOutput(0, "x")
    with pytest.raises(TypeError, match="chunk_rows"):
        ChunkedOutput("10", "x")
