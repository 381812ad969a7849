"""Throughput of the LOBSTER reader: read_lobster on the vendor's sample zips (AMZN level 5: 155,935
messages + the 20-column orderbook file; AAPL level 1: 118,497 messages), in message rows per second,
best round, plus peak RSS; and iter_lobster streaming the AMZN level-5 zip in 64k-event chunks.

Covers unzip, CSV parsing (C, block by block, the orderbook on its own thread), validation, the
live-order replay that keeps the book equal to the vendor's, and the event layout. Target (issue 10):
read_lobster >= 2M rows/s with a margin, best round, on the 2-core machine. Run:

    pytest benches/bench_readers_lobster.py --benchmark-only -s
"""
from pathlib import Path

import pytest

from lobsim.data.events import collect
from lobsim.data.lobster import iter_lobster, read_lobster

from conftest import peak_rss_mib, report  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
AMZN5 = DATA / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
AAPL1 = DATA / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"
ROUNDS = 11


def _print(benchmark, name, ev):
    rows = ev.report.info["rows"]
    report(benchmark, f"{name}, rows", rows)
    if benchmark.stats is not None and benchmark.stats.stats.data:
        best = benchmark.stats.stats.min
        benchmark.extra_info.update(rows_per_s_best=rows / best, events_per_s_best=len(ev) / best)
        print(f"{name}: {rows / best:,.0f} rows/s (best round, {best * 1e3:.1f} ms), {len(ev) / best:,.0f} events/s, "
              f"{len(ev):,} events, peak RSS {peak_rss_mib():,.0f} MiB")


@pytest.mark.parametrize("path", [AMZN5, AAPL1], ids=["AMZN_level5", "AAPL_level1"])
def test_read_lobster(benchmark, path):
    if not path.exists():
        pytest.skip(f"{path} not found")
    ev = benchmark.pedantic(lambda: read_lobster(path), rounds=ROUNDS, warmup_rounds=1)
    _print(benchmark, f"read_lobster {path.name}", ev)


def test_iter_lobster_chunks(benchmark):
    if not AMZN5.exists():
        pytest.skip(f"{AMZN5} not found")
    ev = benchmark.pedantic(lambda: collect(iter_lobster(AMZN5, chunk_rows=1 << 16)), rounds=ROUNDS,
                            warmup_rounds=1)
    _print(benchmark, f"iter_lobster {AMZN5.name} (64k-event chunks)", ev)
