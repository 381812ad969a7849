"""Throughput of the Databento DBN reader: read_dbn on the ESH4 MBO capture (68,792 records,
zstd) and the ESU4 MBP-1 capture, in input records per second and events per second (best
round), plus peak RSS; and iter_dbn streaming the MBO capture in 64k-event chunks.
Target (issue 10): read_dbn MBO >= 2M records/s.

Run: pytest benches/bench_readers_dbn.py -s
"""
from pathlib import Path

import pytest

pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

from lobsim.data.dbn import iter_dbn, read_dbn  # noqa: E402

from conftest import peak_rss_mib, report  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "databento"
ESH4 = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBP1 = DATA / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} not found")


def _events_per_s(benchmark, name, n_events):
    if benchmark.stats is None or not benchmark.stats.stats.data:
        return
    best = n_events / benchmark.stats.stats.min
    benchmark.extra_info["events_per_s_best"] = best
    print(f"{name}: {n_events:,} events, best {best:,.0f} events/s, peak RSS {peak_rss_mib():,.0f} MiB")


@pytest.mark.parametrize("fills", ["execute", "ignore"])
def test_read_dbn_mbo(benchmark, fills):
    """Decode + zstd + L3 mapping (C tracker) + the reader's own crossed-book replay."""
    _need(ESH4)
    ev = benchmark.pedantic(lambda: read_dbn(ESH4, fills=fills), rounds=15, warmup_rounds=1)
    report(benchmark, f"read_dbn ESH4 MBO (fills={fills}), records", ev.report.info["records"])
    _events_per_s(benchmark, f"read_dbn ESH4 MBO (fills={fills})", len(ev))


def test_iter_dbn_mbo_chunks(benchmark):
    _need(ESH4)

    def run():
        n = 0
        for ev in iter_dbn(ESH4, chunk_rows=1 << 16):
            n += len(ev)
        return n

    n = benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    report(benchmark, "iter_dbn ESH4 MBO (64k-event chunks), records", 68_792)
    _events_per_s(benchmark, "iter_dbn ESH4 MBO (64k-event chunks)", n)


def test_read_dbn_mbp1(benchmark):
    _need(MBP1)
    ev = benchmark.pedantic(lambda: read_dbn(MBP1), rounds=20, warmup_rounds=1)
    report(benchmark, "read_dbn ESU4 MBP-1, records", ev.report.info["records"])
    _events_per_s(benchmark, "read_dbn ESU4 MBP-1", len(ev))


def tile_mbp1(src, dst, copies):
    """The MBP-1 capture's records repeated `copies` times, times shifted so each copy follows the
    last (a real-size MBP-1 stream: the 2,288-record file alone measures fixed costs)."""
    import struct

    import numpy as np
    import zstandard

    from lobsim.data.dbn_decode import MBP1_DTYPE

    raw = zstandard.ZstdDecompressor().stream_reader(open(src, "rb")).read()
    start = 8 + struct.unpack_from("<I", raw, 4)[0]  # "DBN" + version, metadata length, metadata
    rec = np.frombuffer(raw, MBP1_DTYPE, offset=start)
    assert (rec["rtype"] == 0x01).all()
    span = int(rec["ts_recv"].max()) - int(rec["ts_event"].min()) + 1
    tiles = []
    for k in range(copies):
        t = rec.copy()
        t["ts_event"] += np.uint64(k * span)
        t["ts_recv"] += np.uint64(k * span)
        tiles.append(t)
    dst.write_bytes(raw[:start] + np.concatenate(tiles).tobytes())
    return len(rec) * copies


def test_read_dbn_mbp1_tiled(benchmark, tmp_path):
    _need(MBP1)
    pytest.importorskip("zstandard")
    path = tmp_path / "mbp1_x100.dbn"
    n = tile_mbp1(MBP1, path, 100)
    ev = benchmark.pedantic(lambda: read_dbn(path), rounds=7, warmup_rounds=1)
    assert ev.report.info["records"] == n
    report(benchmark, "read_dbn ESU4 MBP-1 tiled x100 (uncompressed), records", n)
    _events_per_s(benchmark, "read_dbn ESU4 MBP-1 tiled x100", len(ev))
