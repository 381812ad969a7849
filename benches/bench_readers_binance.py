"""Throughput of the Binance capture reader (pytest-benchmark), best round.

    pytest benches/bench_readers_binance.py --benchmark-only -s

Prints events/s (the target: >= 2M events/s on usdm), input lines/s (every
capture line, bookTicker included) and peak RSS, for read_binance (one chunk)
and iter_binance (default chunks, what `lobsim convert` uses). Skips when
shared/data is absent.
"""
from pathlib import Path

import pytest

from lobsim.data.binance import iter_binance, read_binance

from conftest import peak_rss_mib, report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance"
CAPTURES = {
    "usdm": [DATA / "usdm" / "btcusdt_20240808.gz"],
    "cm (2 files)": [DATA / "cm" / "btcusd_perp_20240808.gz", DATA / "cm" / "btcusd_perp_20240809.gz"],
    "spot (2 files)": [DATA / "spot" / "btcusdt_20240808.gz", DATA / "spot" / "btcusdt_20240809.gz"],
}


def _report(benchmark, name, events, lines):
    if benchmark.stats is None or not benchmark.stats.stats.data:  # --benchmark-disable
        return
    report(benchmark, f"{name} (events)", events)
    t = benchmark.stats.stats.min
    benchmark.extra_info.update(events=events, lines=lines, events_per_s_best=events / t, lines_per_s_best=lines / t)
    print(f"{name}: {lines:,} lines -> {events:,} events, best {t * 1e3:.1f} ms: {events / t:,.0f} events/s, "
          f"{lines / t:,.0f} lines/s, peak RSS {peak_rss_mib():,.0f} MiB")


def _stream(paths):
    n = lines = 0
    for chunk in iter_binance(paths):
        n += len(chunk)
        lines += chunk.report.info.get("lines", 0)
    return n, lines


@pytest.mark.parametrize("name", list(CAPTURES))
def test_read_binance(benchmark, name):
    paths = CAPTURES[name]
    if not all(p.exists() for p in paths):
        pytest.skip(f"{paths} absent")
    ev = benchmark.pedantic(read_binance, args=(paths,), rounds=7, iterations=1, warmup_rounds=1)
    _report(benchmark, f"read_binance {name}", len(ev), ev.report.info["lines"])


@pytest.mark.parametrize("name", ["usdm", "cm (2 files)"])
def test_iter_binance(benchmark, name):
    paths = CAPTURES[name]
    if not all(p.exists() for p in paths):
        pytest.skip(f"{paths} absent")
    n, lines = benchmark.pedantic(_stream, args=(paths,), rounds=5, iterations=1, warmup_rounds=1)
    _report(benchmark, f"iter_binance {name} (default chunks)", n, lines)
