"""Throughput of the crypto readers (pytest-benchmark): input rows per second.

    pytest benches/bench_readers_crypto.py --benchmark-only -s

Rows are input lines (Binance: every capture line, bookTicker included; Tardis:
CSV data rows). Skips when shared/data is absent.
"""
import shutil
from pathlib import Path

import pytest

from lobsim.data.binance import read_binance
from lobsim.data.tardis import read_tardis

from conftest import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
USDM = DATA / "binance" / "usdm" / "btcusdt_20240808.gz"
DERIBIT = DATA / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"


def _report(benchmark, name, rows, events):
    """Input rows/s (as messages/s via the shared helper) plus output events/s."""
    if benchmark.stats is None:  # --benchmark-disable: the functions ran once, nothing timed
        return
    report(benchmark, f"{name} (input rows)", rows)
    t = benchmark.stats.stats.mean
    benchmark.extra_info.update(rows=rows, rows_per_s=rows / t, events=events, events_per_s=events / t)
    print(f"{name}: {rows:,} rows -> {events:,} events in {t * 1e3:.1f} ms (mean): "
          f"{rows / t:,.0f} rows/s, {events / t:,.0f} events/s")


@pytest.mark.skipif(not USDM.exists(), reason=f"{USDM} absent")
def test_read_binance_usdm(benchmark):
    ev = benchmark.pedantic(read_binance, args=(USDM,), rounds=3, iterations=1)
    _report(benchmark, "read_binance usdm", ev.report.info["lines"], len(ev))


@pytest.mark.skipif(not DERIBIT.exists(), reason=f"{DERIBIT} absent")
def test_read_tardis_deribit_fixture(benchmark):
    ev = benchmark(read_tardis, DERIBIT)
    _report(benchmark, "read_tardis deribit fixture", ev.report.info["book_rows"], len(ev))


@pytest.mark.skipif(not DERIBIT.exists(), reason=f"{DERIBIT} absent")
def test_read_tardis_deribit_scaled(benchmark, tmp_path):
    """The fixture's snapshot followed by 200k generated update rows (per-row cost, not per-call)."""
    lines = DERIBIT.read_text().splitlines()
    path = tmp_path / "big.csv"
    shutil.copy(DERIBIT, path)
    first = lines[1].split(",")
    ts0, lts0 = int(first[2]), int(first[3])
    with open(path, "a") as fh:
        for i in range(200_000):
            px = 6421.5 + (i % 40) * 0.5
            fh.write(f"deribit,BTC-PERPETUAL,{ts0 + 1000 + i // 3},{lts0 + 1000 + i // 3},false,ask,{px:.1f},"
                     f"{(i * 7919) % 50000}\n")
    ev = benchmark.pedantic(read_tardis, args=(path,), rounds=3, iterations=1)
    _report(benchmark, "read_tardis deribit x200k", ev.report.info["book_rows"], len(ev))
