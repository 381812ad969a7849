"""Throughput of the LOBSTER reader: read_lobster on the vendor's AMZN level-5 sample zip
(155,935 messages + the 20-column orderbook file), in message rows per second.

Covers unzip, CSV parsing, validation, the live-order replay that keeps the
book equal to the vendor's, and the event layout. Run:
pytest benches/bench_readers_lobster.py -s
"""
from pathlib import Path

import pytest

from lobsim.data.lobster import read_lobster

from conftest import report  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
AMZN5 = DATA / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
AAPL1 = DATA / "LOBSTER_SampleFile_AAPL_2012-06-21_1.zip"


@pytest.mark.parametrize("path", [AMZN5, AAPL1], ids=["AMZN_level5", "AAPL_level1"])
def test_read_lobster(benchmark, path):
    if not path.exists():
        pytest.skip(f"{path} not found")
    ev = benchmark.pedantic(lambda: read_lobster(path), rounds=7, warmup_rounds=1)
    rows = ev.report.info["rows"]
    report(benchmark, f"read_lobster {path.name}, rows", rows)
    if benchmark.stats is not None and benchmark.stats.stats.data:
        print(f"read_lobster {path.name}: {rows / benchmark.stats.stats.min:,.0f} rows/s (best round), "
              f"{len(ev.array):,} events")
