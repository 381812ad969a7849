"""Throughput and memory of the synthetic generator (csrc/synthetic.c):
generate() into one array, iter_generate() streaming chunks, and
`lobsim generate` writing Parquet row groups.

Peak memory is measured in a fresh subprocess per run (its VmHWM on Linux,
with the interpreter and imports alone as the baseline), so it is not
inflated by whatever the bench session allocated before. The default run is
quick (1-3M events); LOBSIM_BENCH_BIG=1 adds 100M-event runs (iter_generate,
and `lobsim generate` writing about 1 GB of Parquet to a temporary folder).
Run: pytest benches/bench_generate.py -s
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lobsim.data import synthetic

from conftest import report

ROOT = Path(__file__).resolve().parents[1]
BIG = os.environ.get("LOBSIM_BENCH_BIG") == "1"
needs_big = pytest.mark.skipif(not BIG, reason="100M-event runs only with LOBSIM_BENCH_BIG=1")

CHILD = """
import json, resource, sys, time
mode, n = sys.argv[1], int(sys.argv[2])
from lobsim.data import synthetic
if mode == "cli":
    import lobsim.cli, lobsim.data.store  # Parquet writing needs pyarrow: count it in the baseline


def mib(field):
    # Linux: VmRSS (now) or VmHWM (peak) of this process image; ru_maxrss would include the
    # parent's peak, inherited through fork + exec. Elsewhere: ru_maxrss (bytes on macOS).
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


base = mib("VmRSS")
t = time.perf_counter()
if mode == "array":
    events = synthetic.generate(n, seed=1)
elif mode == "iter":
    for chunk in synthetic.iter_generate(n, seed=1):
        pass
elif mode == "cli":
    assert lobsim.cli.main(["generate", "-o", sys.argv[3], "--events", str(n), "--seed", "1"]) == 0
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "base_mib": base, "peak_mib": mib("VmHWM")}))
"""


def run_child(mode, n, *extra):
    """Run one generation in a fresh interpreter: (seconds, baseline MiB, peak MiB)."""
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(n), *map(str, extra)], capture_output=True,
                       text=True, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["secs"], r["base_mib"], r["peak_mib"]


def print_child(name, n, secs, base, peak, extra=""):
    print(f"\n{name}: {n:,} events in {secs:.2f} s = {n / secs:,.0f} events/s, peak RSS {peak:,.0f} MiB "
          f"(interpreter + imports {base:,.0f} MiB){extra}")


def test_generate_array(benchmark):
    """One C call filling a 1M-event array (48 MB)."""
    n = 1_000_000
    benchmark.pedantic(lambda: synthetic.generate(n, seed=1), rounds=5, warmup_rounds=1)
    report(benchmark, "generate() into one array", n)


def test_iter_generate(benchmark):
    """Streaming 1M-event chunks, discarded (the generator alone)."""
    n = 3_000_000

    def run():
        for _ in synthetic.iter_generate(n, seed=1):
            pass

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    report(benchmark, "iter_generate() in 1M-event chunks", n)


@pytest.mark.parametrize("mode", ["array", "iter"])
def test_peak_memory_1m(mode):
    """Peak memory of 1M events: the array (48 MB) vs a streamed chunk."""
    n = 1_000_000
    secs, base, peak = run_child(mode, n)
    print_child(f"{mode} 1M (fresh process)", n, secs, base, peak)


def test_cli_generate_parquet(tmp_path):
    """`lobsim generate` end to end: C generation + Parquet row groups (zstd)."""
    n = 3_000_000
    out = tmp_path / "gen.parquet"
    secs, base, peak = run_child("cli", n, out)
    print_child("lobsim generate -> Parquet", n, secs, base, peak, f", file {out.stat().st_size / 2**20:,.0f} MiB")


@needs_big
def test_iter_generate_100m():
    n = 100_000_000
    secs, base, peak = run_child("iter", n)
    print_child("iter_generate 100M (fresh process)", n, secs, base, peak)


@needs_big
def test_cli_generate_parquet_100m(tmp_path):
    n = 100_000_000
    out = tmp_path / "gen100m.parquet"
    secs, base, peak = run_child("cli", n, out)
    print_child("lobsim generate --events 100000000 -> Parquet", n, secs, base, peak,
                f", file {out.stat().st_size / 2**20:,.0f} MiB")
