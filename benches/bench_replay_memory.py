"""Peak memory and speed of the `lobsim` command on big files: `replay` and `generate` in a subprocess.

    pytest benches/bench_replay_memory.py -s                      # 2M events (a few seconds)
    LOBSIM_BENCH_BIG=1 pytest benches/bench_replay_memory.py -s   # also replay 30M, generate 100M

Each command runs in its own process; its peak RSS is that child's own
ru_maxrss (os.wait4), so neither this process nor earlier children count.
The replay target: a 30M-event file in under 300 MB, i.e. memory that does
not grow with the file (compare the 2M and 30M lines).
"""
import os
import re
import subprocess
import sys
import tempfile
import time

import pytest

from lobsim.data import synthetic
from lobsim.data.store import EventWriter

from conftest import report

BIG = os.environ.get("LOBSIM_BENCH_BIG") == "1"
SIZES = [2_000_000] + ([30_000_000] if BIG else [])
big_only = pytest.mark.skipif(not BIG, reason="set LOBSIM_BENCH_BIG=1 for the big files")


def run_lobsim(*args):
    """Run `python -m lobsim *args`; -> (stdout, seconds, peak RSS of that process in MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "lobsim", *args], stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # reaps it ourselves: Popen.wait gives no rusage
        secs = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        assert p.returncode == 0, err.read().decode()
        text = out.read().decode()
    kib = usage.ru_maxrss
    return text, secs, kib / 1024 if sys.platform != "darwin" else kib / 2**20


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1_000_000}M")
def event_file(request, tmp_path_factory):
    """A synthetic L3 file of n events, streamed here (this process's memory is not measured)."""
    n = request.param
    path = tmp_path_factory.mktemp("big") / f"syn_{n}.parquet"
    with EventWriter(path, synthetic.INSTRUMENT) as w:
        for chunk in synthetic.iter_generate(n, seed=1, chunk_events=1 << 16):
            w.write(chunk)
    return path, n


def test_replay_memory(benchmark, event_file):
    path, n = event_file
    seen = {}

    def run():
        seen["out"], seen["secs"], seen["rss"] = run_lobsim("replay", str(path))

    benchmark.pedantic(run, rounds=1, iterations=1)
    out, rss = seen["out"], seen["rss"]
    assert f"{n:,} (L3); applied {n:,}" in out
    apply_rate = re.search(r"apply: .*= ([\d,]+) messages/s", out).group(1)
    wall_rate = re.search(r"wall: .*= ([\d,]+) messages/s", out).group(1)
    if benchmark.stats is not None:
        benchmark.extra_info.update(child_peak_rss_mib=rss)
    report(benchmark, f"lobsim replay {n:,} events (process incl. startup)", n)
    print(f"lobsim replay {n:,} events: peak RSS {rss:,.0f} MiB (target < 300 MB); "
          f"{wall_rate} messages/s with Parquet reading, {apply_rate} messages/s in C")


@pytest.mark.parametrize("n", [2_000_000] + ([100_000_000] if BIG else []), ids=lambda n: f"{n // 1_000_000}M")
def test_generate_memory(benchmark, tmp_path, n):
    out_file = tmp_path / "g.parquet"
    seen = {}

    def run():
        seen["out"], seen["secs"], seen["rss"] = run_lobsim("generate", "-o", str(out_file), "--events", str(n))

    benchmark.pedantic(run, rounds=1, iterations=1)
    rate = re.search(r"\(([\d,]+) events/s\)", seen["out"]).group(1)
    if benchmark.stats is not None:
        benchmark.extra_info.update(child_peak_rss_mib=seen["rss"])
    report(benchmark, f"lobsim generate {n:,} events (process incl. startup)", n)
    print(f"lobsim generate {n:,} events: peak RSS {seen['rss']:,.0f} MiB, {rate} events/s written, "
          f"file {out_file.stat().st_size / 2**20:,.0f} MiB")
