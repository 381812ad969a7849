"""The book at real depth: memory that comes back, consistent views under concurrent
readers, depth(out=) buffers, adversarial ids, and deep books against the reference.

(The deep-book state machine is in test_state_machine.py; the C structure's edges
are unit-tested under the sanitizers in csrc/tests/test_book.c.)
"""
import gc
import os
import threading

import numpy as np
import pytest

from lobsim import EventKind, Side, empty_events
from lobsim.book import Depth, LevelBook, OrderBook, ReferenceBook, depth_series
from lobsim.data import synthetic


def rss_bytes():
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def adds(n, first_id=1, levels=1000):
    ev = empty_events(n)
    ev["order_id"] = np.arange(first_id, first_id + n, dtype=np.uint64)
    ev["side"] = np.where(np.arange(n) % 2 == 0, 1, -1)
    ev["price"] = np.where(ev["side"] == 1, 10_000 - np.arange(n) % levels, 10_001 + np.arange(n) % levels)
    ev["qty"] = 1 + np.arange(n) % 7
    ev["kind"] = EventKind.ADD
    return ev


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc to read RSS")
def test_memory_comes_back_after_delete_all_and_clear():
    """4M orders in, all deleted, then clear(): the process's RSS returns to within
    a small bound of where it was, and the book's own memory to a fresh book's."""
    n = 4_000_000
    fresh = OrderBook()
    fresh_bytes = fresh.memory_bytes()
    gc.collect()
    before = rss_bytes()
    with OrderBook() as book:
        ev = adds(n)
        book.apply(ev)
        peak = book.memory_bytes()
        assert rss_bytes() - before > 200 * 2**20 and peak > 100 * fresh_bytes
        dels = empty_events(n)
        dels["order_id"] = ev["order_id"]
        dels["kind"] = EventKind.DELETE
        del ev
        book.apply(dels)
        del dels
        assert len(book) == 0
        assert book.memory_bytes() <= 2 * fresh_bytes  # shrank on the way down
        book.clear()
        assert book.memory_bytes() == fresh_bytes
        gc.collect()
        grown = rss_bytes() - before
        assert grown < 24 * 2**20, f"RSS still {grown / 2**20:.0f} MiB above the start"
        book.apply(adds(1000))  # and the book works as new
        book.check()


def test_clear_costs_nothing_for_a_big_empty_past():
    """CLEAR on a book that once held 2M orders (now empty) must not walk the old pools:
    memory is already back, so a CLEAR event finds only the initial sizes."""
    with OrderBook() as book:
        fresh_bytes = book.memory_bytes()
        ev = adds(2_000_000)
        book.apply(ev)
        clear = empty_events(1)
        clear["kind"] = EventKind.CLEAR
        book.apply(clear)
        assert len(book) == 0 and book.memory_bytes() == fresh_bytes
        book.check()


def test_depth_out_fills_in_place_and_checks_its_buffers():
    book = OrderBook()
    for i, px in enumerate([100, 99, 98]):
        book.add(i + 1, Side.BID, px, i + 1)
    book.add(9, Side.ASK, 101, 4)
    out = book.depth(2)
    assert isinstance(out, Depth)
    book.delete(1)
    same = book.depth(2, out=out)
    assert same is out and out.bid_px.tolist() == [99, 98] and out.ask_qty.tolist() == [4, 0]
    fresh = Depth(*(np.full(2, -1, dtype=np.int64) for _ in range(4)))
    book.depth(2, out=fresh)
    assert fresh.bid_qty.tolist() == [2, 3] and fresh.ask_px.tolist() == [101, 0]
    with pytest.raises(ValueError, match="length 3"):
        book.depth(3, out=out)
    with pytest.raises(ValueError, match="int64"):
        book.depth(2, out=Depth(*(np.zeros(2, dtype=np.int32) for _ in range(4))))
    with pytest.raises(TypeError):
        book.depth(2, out=[np.zeros(2, dtype=np.int64)] * 4)
    ref = ReferenceBook()
    ref.add(1, Side.BID, 100, 1)
    assert ref.depth(2, out=fresh) is fresh and fresh.bid_px.tolist() == [100, 0]


def test_depth_is_one_consistent_snapshot_under_concurrent_readers():
    """A writer applies a stream whose every intermediate book is uncrossed (checked
    first, event by event); reader threads calling depth() and best_bid()/best_ask()
    must never see a crossed book. depth() used to read the two sides under two
    separate lock acquisitions, so a reader could combine a bid and an ask from two
    different moments (51 crossed snapshots in 73,197 were seen)."""
    ev = synthetic.generate(60_000, seed=5)
    top = depth_series(ev, 1)
    both = (top.bid_qty[:, 0] > 0) & (top.ask_qty[:, 0] > 0)
    assert both.mean() > 0.9 and np.all(top.bid_px[both, 0] < top.ask_px[both, 0])
    book = OrderBook()
    stop = threading.Event()
    crossed, reads = [0], [0]

    def reader():
        out = None
        while not stop.is_set():
            out = book.depth(1) if out is None else book.depth(1, out=out)
            reads[0] += 1
            if out.bid_qty[0] and out.ask_qty[0] and out.bid_px[0] >= out.ask_px[0]:
                crossed[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            book.clear()
            for k in range(0, len(ev), 7):  # small chunks: many moments to read between
                book.apply(ev[k:k + 7])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert reads[0] > 1000, "the readers must actually have run"
    assert crossed[0] == 0, f"{crossed[0]} crossed snapshots in {reads[0]} reads"


@pytest.mark.parametrize("stride", [0xF1DE83E19937733D, 2**32, 2**48 + 7, 1])
def test_adversarial_id_families_are_correct(stride):
    """Ids that all shared one slot under the old fixed multiplicative hash (multiples of its
    inverse), multiples of 2**32 and large strides: the book agrees with the reference."""
    n = 5000
    ids = (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(stride))  # wraps mod 2**64
    ev = adds(n)
    ev["order_id"] = ids
    c, r = OrderBook(), ReferenceBook()
    for b in (c, r):
        b.apply(ev)
    half = empty_events(n // 2)
    half["order_id"] = ids[::2]
    half["kind"] = EventKind.DELETE
    for b in (c, r):
        b.apply(half)
    c.check()
    assert len(c) == len(r) == n - n // 2
    for a, b in zip(c.depth(1000), r.depth(1000)):
        assert np.array_equal(a, b)
    for i in ids[1::98]:  # odd indices: still resting
        assert tuple(c.order(int(i))) == tuple(r.order(int(i)))


def test_deep_l2_book_matches_a_dict_oracle():
    """20k levels a side over a wide price range with far outliers, then most deleted:
    the full depth equals a plain dict of the last size set at each (side, price)."""
    rng = np.random.default_rng(3)
    n = 40_000
    ev = empty_events(n)
    ev["side"] = rng.choice([1, -1], n)
    ev["price"] = np.where(ev["side"] == 1, -1, 1) * rng.integers(1, 10**7, n) + 10**7
    ev["price"][::1000] = rng.choice([-(2**62), 2**62], n // 1000)
    ev["qty"] = rng.integers(1, 50, n)
    ev["kind"] = EventKind.SET_LEVEL
    dels = ev[rng.random(n) < 0.9].copy()
    dels["qty"] = 0
    book, oracle = LevelBook(), {}
    for stage in (ev, dels):
        book.apply(stage)
        for e in stage:
            key = (int(e["side"]), int(e["price"]))
            if e["qty"]:
                oracle[key] = int(e["qty"])
            else:
                oracle.pop(key, None)
        book.check()
        for side, px_name, qty_name in ((1, "bid_px", "bid_qty"), (-1, "ask_px", "ask_qty")):
            want = sorted(((p, q) for (s_, p), q in oracle.items() if s_ == side), reverse=side == 1)
            d = book.depth(max(len(want), 1))
            got = list(zip(getattr(d, px_name).tolist(), getattr(d, qty_name).tolist()))[: len(want)]
            assert got == want and book.level_count(side) == len(want)
