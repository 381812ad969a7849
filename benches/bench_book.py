"""Throughput of the C book: whole-stream apply(), micro-operations, matching,
and the pure-Python ReferenceBook for comparison.

Run: pytest benches/ -s  (--benchmark-only to skip nothing; numbers print per bench)
"""
import numpy as np
import pytest

from lobsim import Side, TimeInForce
from lobsim.book import OrderBook, ReferenceBook, depth_series
from lobsim.data import synthetic

from conftest import report

N_STREAM = 3_000_000


@pytest.fixture(scope="module")
def stream():
    return synthetic.generate(N_STREAM, seed=42)


def test_apply_stream(benchmark, stream):
    """Realistic L3 stream (synthetic ZI flow), one C call per apply."""
    def run(book):
        book.apply(stream)

    benchmark.pedantic(run, setup=lambda: ((OrderBook(),), {}), rounds=5)
    report(benchmark, "apply (L3 synthetic stream)", len(stream))


def test_depth_series_stream(benchmark, stream):
    """Replay plus writing the top 5 levels after every batch end."""
    part = stream[:1_000_000]
    benchmark.pedantic(lambda: depth_series(part, 5, batch_end_only=True), rounds=3)
    report(benchmark, "depth_series (5 levels, every batch end)", len(part))


N_MICRO = 200_000


def _prices(n, seed):
    rng = np.random.default_rng(seed)
    return (10_000 + rng.integers(-50, 50, n)).tolist()


def test_add(benchmark):
    prices = _prices(N_MICRO, 1)

    def run(book):
        add = book.add
        for i, p in enumerate(prices):
            add(i + 1, Side.BID if p < 10_000 else Side.ASK, p, 10)

    benchmark.pedantic(run, setup=lambda: ((OrderBook(),), {}), rounds=3)
    report(benchmark, "add (one Python call each)", N_MICRO)


def _filled_book(cls, n):
    book = cls()
    prices = _prices(n, 2)
    for i, p in enumerate(prices):
        book.add(i + 1, Side.BID if p < 10_000 else Side.ASK, p, 10)
    return book


def test_cancel(benchmark):
    ids = list(range(1, N_MICRO + 1))

    def run(book):
        delete = book.delete
        for i in ids:
            delete(i)

    benchmark.pedantic(run, setup=lambda: ((_filled_book(OrderBook, N_MICRO),), {}), rounds=3)
    report(benchmark, "delete (one Python call each)", N_MICRO)


def test_execute(benchmark):
    ids = list(range(1, N_MICRO + 1))

    def run(book):
        execute = book.execute
        for i in ids:
            execute(i, 3)

    benchmark.pedantic(run, setup=lambda: ((_filled_book(OrderBook, N_MICRO),), {}), rounds=3)
    report(benchmark, "execute (one Python call each)", N_MICRO)


def test_submit(benchmark):
    n = 50_000

    def run(book):
        submit = book.submit
        for i in range(n):
            side = Side.BID if i % 2 else Side.ASK
            submit(10_000_000 + i, side, 10_000 + (5 if side == Side.BID else -5), 15, TimeInForce.IOC)

    benchmark.pedantic(run, setup=lambda: ((_filled_book(OrderBook, N_MICRO),), {}), rounds=3)
    report(benchmark, "submit IOC crossing 1-2 orders (one Python call each)", n)


def test_reference_apply(benchmark, stream):
    """The pure-Python oracle on the same stream, for scale."""
    part = stream[:100_000]
    benchmark.pedantic(lambda book: book.apply(part), setup=lambda: ((ReferenceBook(),), {}), rounds=2)
    report(benchmark, "ReferenceBook.apply (pure Python)", len(part))
