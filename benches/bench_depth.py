"""The book at real depth: apply() on real captures beside the synthetic stream, level
operations deep in the book against near the touch, adversarial order ids, and the
per-call views a strategy loop uses.

Real captures come from ../shared/data (skipped when absent). Numbers print as
messages/s (or ns per call) with peak memory; nothing is asserted. Run:
pytest benches/bench_depth.py -s
"""
import glob
import timeit
from pathlib import Path

import numpy as np
import pytest

from lobsim import EventKind, Side, empty_events
from lobsim.book import LevelBook, OrderBook

from conftest import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

REAL = {
    "binance_usdm_L2": lambda: __import__("lobsim.data", fromlist=["x"]).read_binance(
        sorted(glob.glob(str(DATA / "binance" / "usdm" / "*")))),
    "amzn_lobster_L3": lambda: __import__("lobsim.data", fromlist=["x"]).read_lobster(
        DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"),
    "esh4_mbo_L3": lambda: __import__("lobsim.data", fromlist=["x"]).read_dbn(
        DATA / "databento" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"),
}


@pytest.mark.parametrize("name", list(REAL))
def test_apply_real_capture(benchmark, name):
    """apply() of a whole real capture in one C call (the file is small, so many rounds)."""
    if not DATA.exists():
        pytest.skip(f"{DATA} not found (real captures)")
    events = REAL[name]().array
    cls = LevelBook if name.endswith("L2") else OrderBook
    benchmark.pedantic(lambda book: book.apply(events), setup=lambda: ((cls(),), {}), rounds=30)
    report(benchmark, f"apply real capture {name}", len(events))


def _adds(prices, side=Side.BID, first_id=1):
    ev = empty_events(len(prices))
    ev["order_id"] = np.arange(first_id, first_id + len(prices), dtype=np.uint64)
    ev["price"] = prices
    ev["qty"] = 1
    ev["side"] = side
    ev["kind"] = EventKind.ADD
    return ev


N_DEEP = 100_000


def _deep_cases():
    rng = np.random.default_rng(5)
    base = np.arange(1, N_DEEP + 1, dtype=np.int64) * 10  # a 100k-level bid side
    return {
        # new levels at the touch: each add improves the best bid
        "new best level each add": (base, 10 * N_DEEP + 10 * np.arange(1, N_DEEP + 1, dtype=np.int64)),
        # new levels at random places inside the 100k-level book
        "new level at a random depth": (base, rng.permutation(base) + 5),
        # new levels below the worst bid
        "new level below the worst": (base, -10 * np.arange(1, N_DEEP + 1, dtype=np.int64)),
    }


@pytest.mark.parametrize("case", list(_deep_cases()))
def test_deep_book_level_insert(benchmark, case):
    """Creating a level in a 100k-level book: near the touch, at a random depth, below the worst.
    One C call applies 100k ADDs that each create a level; setup builds the 100k levels first."""
    base, new = _deep_cases()[case]
    setup_ev, ev = _adds(base), _adds(new, first_id=N_DEEP + 1)

    def setup():
        b = OrderBook()
        b.apply(setup_ev)
        return (b,), {}

    benchmark.pedantic(lambda b: b.apply(ev), setup=setup, rounds=5)
    report(benchmark, f"deep book (100k levels): {case}", len(ev))
    if benchmark.stats is not None and benchmark.stats.stats.data:
        print(f"  {benchmark.stats.stats.min / len(ev) * 1e9:,.0f} ns per level created")


ADVERSARIAL = {
    "sequential ids": lambda k: k,
    "multiples of the old multiplier's inverse": lambda k: (k * 0xF1DE83E19937733D) % 2**64,
    "multiples of 2**32": lambda k: k << 32,
    "stride 2**48 + 7": lambda k: (k * (2**48 + 7)) % 2**64,
}


@pytest.mark.parametrize("ids", list(ADVERSARIAL))
def test_adversarial_ids(benchmark, ids):
    """20k adds then 20k deletes by id: the seeded hash keeps every id family O(1)."""
    n = 20_000
    keys = np.array([ADVERSARIAL[ids](k) for k in range(1, n + 1)], dtype=np.uint64)
    ev = empty_events(2 * n)
    ev["order_id"] = np.concatenate([keys, keys])
    ev["price"][:n] = 1000 - np.arange(n) % 50
    ev["qty"][:n] = 1
    ev["side"][:n] = Side.BID
    ev["kind"][:n] = EventKind.ADD
    ev["kind"][n:] = EventKind.DELETE
    benchmark.pedantic(lambda b: b.apply(ev), setup=lambda: ((OrderBook(),), {}), rounds=5)
    report(benchmark, f"ids: {ids}", len(ev))


def _per_call(fn, n=200_000):
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e9


def test_per_call_views():
    """What a strategy loop pays per call from Python (best of 5 x 200k calls)."""
    b = OrderBook()
    b.apply(_adds(np.full(N_DEEP, 1000, dtype=np.int64)))  # one 100k-order level
    b.add(10**9, Side.ASK, 1001, 5)
    out = b.depth(5)
    last = N_DEEP  # the order at the end of the 100k-order level
    rows = {
        "best_bid()": _per_call(b.best_bid),
        "depth(5, out=buf)": _per_call(lambda: b.depth(5, out=out)),
        "depth(5) (allocates)": _per_call(lambda: b.depth(5)),
        "order() of the first order of a 100k-order level": _per_call(lambda: b.order(1)),
        "order() of the last order of a 100k-order level": _per_call(lambda: b.order(last), n=200),
    }
    for name, ns in rows.items():
        print(f"\n{name}: {ns:,.0f} ns per call")
