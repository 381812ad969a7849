"""`lobsim convert binance` on a real capture tiled to >= 20 million events: peak RSS and events/s.

    pytest benches/bench_convert_tiled.py -s
    LOBSIM_TILED_EVENTS=50000000 pytest benches/bench_convert_tiled.py -s   # bigger

The Binance USD-M capture (../shared/data/binance/usdm) is repeated: the
first copy as captured, every later copy from the line after the REST snapshot
on, with update ids (U, u, pu), trade ids and both clocks shifted so that each
copy continues the previous one's chain (its first diff's pu is the previous
copy's last u). The reader therefore sees one unbroken chain and must report
no sequence gap. (The levels a copy never touches keep the previous copy's
sizes, so the crossed-book check counts crossings after each copy boundary:
expected here, and counted, not fatal.) The target: peak RSS under 500 MB whatever the input size
(memory is bounded by --chunk-rows, not by the file).
"""
import gzip
import os
import re
from pathlib import Path

import pytest

from bench_replay_memory import run_lobsim
from conftest import report

SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance" / "usdm" / "btcusdt_20240808.gz"
TARGET_EVENTS = int(float(os.environ.get("LOBSIM_TILED_EVENTS", "20000000")))
EVENTS_PER_COPY = 460_000  # events per copy, a little under what read_binance gives (466,576 for the first)

pytestmark = pytest.mark.skipif(not SRC.is_file(), reason=f"Binance capture not found: {SRC}")

_IDS = re.compile(rb'"(U|u|pu|t|E|T)":(\d+)')


def tile_binance(src, dst, copies):
    """Write `copies` chained copies of the capture `src` to `dst` (gzip); -> number of lines."""
    lines = gzip.open(src, "rb").read().splitlines()
    snap = next(i for i, ln in enumerate(lines) if b'"lastUpdateId"' in ln)
    body = lines[snap + 1:]
    depth = [ln for ln in body if b'"depthUpdate"' in ln]
    last_u = max(int(re.search(rb'"u":(\d+)', ln).group(1)) for ln in depth)
    # The first diff the reader applies after the snapshot: the bridge (U <= lastUpdateId <= u).
    last_update_id = int(re.search(rb'"lastUpdateId":(\d+)', lines[snap]).group(1))
    bridge = next(ln for ln in depth if int(re.search(rb'"u":(\d+)', ln).group(1)) >= last_update_id)
    first_pu = int(re.search(rb'"pu":(\d+)', bridge).group(1))
    # Drop body diffs older than the bridge: a later copy starts exactly at the bridge.
    body = [ln for ln in body if b'"depthUpdate"' not in ln
            or int(re.search(rb'"u":(\d+)', ln).group(1)) >= last_update_id]
    id_shift = last_u - first_pu
    trade_ids = [int(m.group(1)) for ln in body for m in [re.search(rb'"t":(\d+)', ln)] if m]
    t_shift = max(trade_ids) - min(trade_ids) + 1
    local = [int(ln.split(b" ", 1)[0]) for ln in lines]
    ms = [int(m.group(1)) for ln in lines for m in [re.search(rb'"E":(\d+)', ln)] if m]
    ms_shift = max(max(ms) - min(ms), (max(local) - min(local)) // 1_000_000) + 1
    n = 0
    with gzip.open(dst, "wb", compresslevel=1) as out:
        out.write(b"\n".join(lines) + b"\n")
        n += len(lines)
        for k in range(1, copies):
            shift = {b"U": k * id_shift, b"u": k * id_shift, b"pu": k * id_shift, b"t": k * t_shift,
                     b"E": k * ms_shift, b"T": k * ms_shift}
            ns = k * ms_shift * 1_000_000

            def sub(m):
                return b'"%s":%d' % (m.group(1), int(m.group(2)) + shift[m.group(1)])

            chunk = []
            for ln in body:
                ts, rest = ln.split(b" ", 1)
                chunk.append(b"%d %s" % (int(ts) + ns, _IDS.sub(sub, rest)))
            out.write(b"\n".join(chunk) + b"\n")
            n += len(chunk)
    return n


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    copies = -(-TARGET_EVENTS // EVENTS_PER_COPY)
    path = tmp_path_factory.mktemp("tiled") / f"btcusdt_x{copies}.gz"
    lines = tile_binance(SRC, path, copies)
    return path, copies, lines


def test_convert_binance_tiled(benchmark, tiled, tmp_path):
    path, copies, lines = tiled
    out_file = tmp_path / "tiled.parquet"
    seen = {}

    def run():
        seen["out"], seen["secs"], seen["rss"] = run_lobsim("convert", "binance", str(path), "-o", str(out_file))

    benchmark.pedantic(run, rounds=1, iterations=1)
    out, secs, rss = seen["out"], seen["secs"], seen["rss"]
    n = int(re.search(r"read ([\d,]+) events", out).group(1).replace(",", ""))
    assert n >= TARGET_EVENTS, out
    assert "sequence_gap" not in out, out  # the copies chain: one valid stream
    if benchmark.stats is not None:
        benchmark.extra_info.update(child_peak_rss_mib=rss, events=n)
    report(benchmark, f"lobsim convert binance x{copies} ({lines:,} lines, process incl. startup)", n)
    size = path.stat().st_size
    print(f"lobsim convert binance, capture tiled x{copies}: {lines:,} lines ({size / 1e6:,.0f} MB gzip) -> "
          f"{n:,} events in {secs:.1f} s = {n / secs:,.0f} events/s; peak RSS {rss:,.0f} MiB (target < 500 MB)")
