"""Throughput of the Databento DBN reader: read_dbn on the ESH4 MBO capture (68,792 records,
zstd) and the ESU4 MBP-1 capture, in input records per second.

Run: pytest benches/bench_readers_dbn.py -s
"""
from pathlib import Path

import pytest

pytest.importorskip("databento_dbn", reason="optional extra lobsim[databento] not installed")

from lobsim.data.dbn import read_dbn  # noqa: E402

from conftest import report  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "databento"
ESH4 = DATA / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
MBP1 = DATA / "futures_mbp-1_2024-07-01T23-58_2024-07-02T00-02.dbn.zst"


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} not found")


@pytest.mark.parametrize("fills", ["execute", "ignore"])
def test_read_dbn_mbo(benchmark, fills):
    """Decode + zstd + L3 mapping + the reader's own crossed-book replay."""
    _need(ESH4)
    ev = benchmark.pedantic(lambda: read_dbn(ESH4, fills=fills), rounds=10, warmup_rounds=1)
    report(benchmark, f"read_dbn ESH4 MBO (fills={fills}), records", ev.report.info["records"])


def test_read_dbn_mbp1(benchmark):
    _need(MBP1)
    ev = benchmark.pedantic(lambda: read_dbn(MBP1), rounds=20, warmup_rounds=1)
    report(benchmark, "read_dbn ESU4 MBP-1, records", ev.report.info["records"])
