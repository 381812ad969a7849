"""Throughput of the Kraken reader (pytest-benchmark): capture lines and events per second, best round,
plus peak RSS.

    pytest benches/bench_readers_kraken.py --benchmark-only -s

Input: the shared capture (450 lines, 10 pairs, depth 1000) tiled 200 times into one file (each copy
starts with every pair's snapshot, so every one of the 422 checksums per copy is verified again: 0
mismatches; the times go backwards at each copy and are reported, not an error). read_kraken of one
pair reads every line of the file and decodes that pair's; the bench reads the busiest pair (ADA/XBT)
one-shot and streamed in 4096-event chunks. Target (issue 10): >= 2M events/s best round (lines parsed,
applied to the book and checksummed in C, csrc/kraken.c). Skips when shared/data is absent.
"""
from pathlib import Path

import pytest

from lobsim.data.events import collect
from lobsim.data.kraken import CHECKSUM_MISMATCH, iter_kraken, read_kraken

from conftest import peak_rss_mib, report

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kraken" / "book1000_10pairs_head.ws"
PAIR = "ADA/XBT"
COPIES = 200
ROUNDS = 5


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} absent")
    path = tmp_path_factory.mktemp("kraken") / "tiled.ws"
    data = SAMPLE.read_bytes()
    with open(path, "wb") as fh:
        for _ in range(COPIES):
            fh.write(data)
    return path


def _report(benchmark, name, ev):
    lines, events = ev.report.info["lines"], len(ev)
    assert ev.report.counts.get(CHECKSUM_MISMATCH, 0) == 0
    if benchmark.stats is None or not benchmark.stats.stats.data:  # --benchmark-disable
        return
    report(benchmark, f"{name} (capture lines)", lines)
    best, mean = benchmark.stats.stats.min, benchmark.stats.stats.mean
    benchmark.extra_info.update(lines=lines, events=events, events_per_s_best=events / best,
                                checksums=ev.report.info["checksums_checked"])
    print(f"{name}: {lines:,} lines -> {events:,} events, {ev.report.info['checksums_checked']:,} checksums "
          f"verified, best {best * 1e3:.0f} ms: {lines / best:,.0f} lines/s, {events / best:,.0f} events/s "
          f"(mean {events / mean:,.0f} events/s), peak RSS {peak_rss_mib():,.0f} MiB")


def test_read_kraken_tiled(benchmark, tiled):
    ev = benchmark.pedantic(read_kraken, args=(tiled, PAIR), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _report(benchmark, f"read_kraken {PAIR} x{COPIES}", ev)


def test_iter_kraken_tiled_chunks(benchmark, tiled):
    def run():
        return collect(iter_kraken(tiled, PAIR, chunk_rows=4096))

    ev = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _report(benchmark, f"iter_kraken {PAIR} x{COPIES} (4096-event chunks)", ev)
