"""Throughput of the Tardis and Bybit readers (pytest-benchmark): input rows (messages) and events per second,
best round, plus peak RSS.

    pytest benches/bench_readers_crypto.py --benchmark-only -s

Tardis rows are CSV data rows; Bybit rows are capture lines (websocket messages). The inputs are the
shared fixtures scaled up (generated rows after the real snapshot). Targets (issue 10): read_tardis
>= 2M rows/s and read_bybit >= 2M events/s (lines parsed and applied to the book in C, csrc/bybit.c) best
round on the 2-core machine. Skips when shared/data is absent. The read_binance bench
lives in bench_readers_binance.py.
"""
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from lobsim.data.bybit import read_bybit
from lobsim.data.events import collect
from lobsim.data.tardis import iter_tardis, read_tardis

from conftest import peak_rss_mib, report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DERIBIT = DATA / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
BYBIT = DATA / "tardis" / "xrpusdt-ob500.data.zip"
ROUNDS = 7


def _report(benchmark, name, rows, events):
    """Input rows/s (as messages/s via the shared helper) plus output events/s, best and mean round."""
    if benchmark.stats is None or not benchmark.stats.stats.data:  # --benchmark-disable
        return
    report(benchmark, f"{name} (input rows)", rows)
    best, mean = benchmark.stats.stats.min, benchmark.stats.stats.mean
    benchmark.extra_info.update(rows=rows, rows_per_s_best=rows / best, events=events,
                                events_per_s_best=events / best, events_per_s_mean=events / mean)
    print(f"{name}: {rows:,} rows -> {events:,} events, best {best * 1e3:.1f} ms: {rows / best:,.0f} rows/s, "
          f"{events / best:,.0f} events/s (mean {events / mean:,.0f} events/s), peak RSS {peak_rss_mib():,.0f} MiB")


def _scaled_deribit(path, n=200_000):
    """The fixture's snapshot followed by `n` generated update rows (3 rows a batch)."""
    lines = DERIBIT.read_text().splitlines()
    shutil.copy(DERIBIT, path)
    first = lines[1].split(",")
    ts0, lts0 = int(first[2]), int(first[3])
    with open(path, "a") as fh:
        for i in range(n):
            px = 6421.5 + (i % 40) * 0.5
            fh.write(f"deribit,BTC-PERPETUAL,{ts0 + 1000 + i // 3},{lts0 + 1000 + i // 3},false,ask,{px:.1f},"
                     f"{(i * 7919) % 50000}\n")
    return path


@pytest.mark.skipif(not DERIBIT.exists(), reason=f"{DERIBIT} absent")
def test_read_tardis_deribit_fixture(benchmark):
    ev = benchmark(read_tardis, DERIBIT)
    _report(benchmark, "read_tardis deribit fixture", ev.report.info["book_rows"], len(ev))


@pytest.mark.skipif(not DERIBIT.exists(), reason=f"{DERIBIT} absent")
def test_read_tardis_deribit_scaled(benchmark, tmp_path):
    """The fixture's snapshot followed by 200k generated update rows (per-row cost, not per-call)."""
    path = _scaled_deribit(tmp_path / "big.csv")
    ev = benchmark.pedantic(read_tardis, args=(path,), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _report(benchmark, "read_tardis deribit x200k", ev.report.info["book_rows"], len(ev))


@pytest.mark.skipif(not DERIBIT.exists(), reason=f"{DERIBIT} absent")
def test_iter_tardis_deribit_scaled_chunks(benchmark, tmp_path):
    """The same input streamed in chunks of 65536 events (what `lobsim convert` does)."""
    path = _scaled_deribit(tmp_path / "big.csv")

    def run():
        return collect(iter_tardis(path, chunk_rows=1 << 16))

    ev = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _report(benchmark, "iter_tardis deribit x200k (64k-event chunks)", ev.report.info["book_rows"], len(ev))


def _scaled_bybit(path, repeats=200):
    """The sample's snapshot, then its 49 deltas replayed `repeats` times with consecutive update ids and
    advancing times (~10k messages; the replayed deltas cross the book now and then: counted, as they should)."""
    with zipfile.ZipFile(BYBIT) as z:
        lines = z.read(z.namelist()[0]).decode().splitlines()
    msgs = [json.loads(x) for x in lines]
    u, t = msgs[0]["data"]["u"], msgs[0]["ts"]
    out = [lines[0]]
    for _ in range(repeats):
        for m in msgs[1:]:
            u, t = u + 1, t + 100
            m["data"]["u"], m["ts"], m["cts"] = u, t, t - 5
            out.append(json.dumps(m, separators=(",", ":")))
    path.write_text("\n".join(out) + "\n")
    return path, len(out)


@pytest.mark.skipif(not BYBIT.exists(), reason=f"{BYBIT} absent")
def test_read_bybit_sample(benchmark):
    ev = benchmark(read_bybit, BYBIT)
    _report(benchmark, "read_bybit xrpusdt sample", ev.report.info["lines"], len(ev))


@pytest.mark.skipif(not BYBIT.exists(), reason=f"{BYBIT} absent")
def test_read_bybit_scaled(benchmark, tmp_path):
    path, n = _scaled_bybit(tmp_path / "big.data")
    ev = benchmark.pedantic(read_bybit, args=(path,), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _report(benchmark, f"read_bybit xrpusdt x{n // 49}", n, len(ev))
