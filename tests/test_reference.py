"""Semantics of the L3 book contract, checked on ReferenceBook and, when built, the C OrderBook.

Every expectation here follows from the event semantics in DESIGN.md and
csrc/lobsim.h (FIFO per level, queue position, modify priority rules, error
classes), not from running either implementation.
"""
import numpy as np
import pytest

from lobsim import (
    EVENT_DTYPE,
    FILL_DTYPE,
    BookCorrupted,
    DuplicateOrderId,
    EventKind,
    Flag,
    InvalidOrder,
    OrderNotFound,
    Side,
    TimeInForce,
    TradingStatus,
    empty_events,
)
from lobsim.book.reference import ReferenceBook
from lobsim.book import SubmitOutcome
from lobsim.errors import Status

try:
    from lobsim.book import OrderBook
except ImportError:  # C core not built
    OrderBook = None

BOOKS = [pytest.param(ReferenceBook, id="reference")]
BOOKS.append(
    pytest.param(OrderBook, id="c", marks=pytest.mark.skipif(OrderBook is None, reason="C core not built"))
)

BID, ASK = Side.BID, Side.ASK


@pytest.fixture(params=BOOKS)
def book(request):
    with request.param() as b:
        yield b
        b.check()
        t = b.totals()
        assert t["added"] == t["resting"] + t["executed"] + t["cancelled"]


def levels(book, n=10):
    """(bids, asks) as lists of (price, qty), best first."""
    d = book.depth(n)
    bids = [(int(p), int(q)) for p, q in zip(d.bid_px, d.bid_qty) if q]
    asks = [(int(p), int(q)) for p, q in zip(d.ask_px, d.ask_qty) if q]
    return bids, asks


def position(book, oid):
    info = book.order(oid)
    return info.orders_ahead, info.qty_ahead


def rows(fills):
    """Fills as (maker, taker, price, qty, maker_remaining, taker_side) tuples."""
    return [tuple(int(x) for x in f) for f in zip(*(fills[k] for k in FILL_DTYPE.names[:6]))]


def makers(fills):
    return [int(m) for m in fills["maker_id"]]


# -- resting orders, FIFO and queue position ------------------------------
def test_empty_book(book):
    assert book.best_bid() is None and book.best_ask() is None
    assert len(book) == 0 and 1 not in book
    d = book.depth(3)
    for arr in d:
        assert arr.dtype == np.int64 and arr.shape == (3,) and not arr.any()
    assert book.totals() == {"added": 0, "executed": 0, "cancelled": 0, "resting": 0}


def test_add_levels_and_best(book):
    book.add(1, BID, 100, 5)
    book.add(2, BID, 100, 3)
    book.add(3, BID, 98, 7)
    book.add(4, ASK, 103, 2)
    book.add(5, ASK, 101, 4)
    assert book.best_bid() == (100, 8)
    assert book.best_ask() == (101, 4)
    assert levels(book) == ([(100, 8), (98, 7)], [(101, 4), (103, 2)])
    assert len(book) == 5 and 3 in book and 6 not in book
    assert book.level_count(BID) == 2 and book.level_count(ASK) == 2
    d = book.depth(3)
    assert d.bid_px.tolist() == [100, 98, 0] and d.ask_qty.tolist() == [4, 2, 0]
    info = book.order(3)
    assert (info.order_id, info.side, info.price, info.qty) == (3, BID, 98, 7)


def test_fifo_queue_position(book):
    for oid, q in ((1, 5), (2, 3), (3, 4)):
        book.add(oid, ASK, 200, q)
    assert [position(book, i) for i in (1, 2, 3)] == [(0, 0), (1, 5), (2, 8)]
    fills = book.submit(10, BID, 200, 7, TimeInForce.IOC).fills
    assert makers(fills) == [1, 2]
    assert fills["qty"].tolist() == [5, 2]
    assert fills["maker_remaining"].tolist() == [0, 1]
    assert position(book, 2) == (0, 0) and book.order(2).qty == 1
    assert position(book, 3) == (1, 1)


def test_cancels_ahead_move_order_up(book):
    for oid in (1, 2, 3, 4):
        book.add(oid, BID, 50, 10)
    book.reduce(1, 4)  # keeps its place, shrinks what is ahead of the rest
    assert position(book, 4) == (3, 26)
    book.delete(2)
    assert position(book, 4) == (2, 16)
    book.execute(1, 6)  # whole remaining: removed
    assert 1 not in book
    assert position(book, 4) == (1, 10)
    assert position(book, 3) == (0, 0)


def test_reduce_and_execute_whole_remove_order_and_level(book):
    book.add(1, BID, 10, 3)
    book.add(2, ASK, 12, 4)
    book.reduce(1, 3)
    book.execute(2, 4)
    assert len(book) == 0 and book.best_bid() is None and book.best_ask() is None
    assert book.level_count(BID) == 0
    assert book.totals() == {"added": 7, "executed": 4, "cancelled": 3, "resting": 0}


def test_add_that_crosses_does_not_match(book):
    book.add(1, BID, 105, 2)
    book.add(2, ASK, 100, 3)  # feeds can momentarily cross; ADD never matches
    assert book.best_bid() == (105, 2) and book.best_ask() == (100, 3)
    assert book.totals()["executed"] == 0


# -- modify priority rules ------------------------------------------------
def test_modify_decrease_keeps_place(book):
    for oid in (1, 2, 3):
        book.add(oid, BID, 100, 5)
    book.modify(2, 100, 2)
    assert position(book, 2) == (1, 5) and book.order(2).qty == 2
    assert position(book, 3) == (2, 7)
    assert book.totals()["cancelled"] == 3


def test_modify_same_qty_same_price_keeps_place(book):
    book.add(1, ASK, 100, 5)
    book.add(2, ASK, 100, 5)
    book.modify(1, 100, 5)
    assert position(book, 1) == (0, 0)


def test_modify_increase_goes_to_tail(book):
    for oid in (1, 2, 3):
        book.add(oid, ASK, 100, 5)
    book.modify(1, 100, 6)
    assert position(book, 1) == (2, 10)
    assert position(book, 2) == (0, 0)
    assert book.totals()["added"] == 16
    fills = book.submit(9, BID, 100, 11, TimeInForce.IOC).fills
    assert makers(fills) == [2, 3, 1]


def test_modify_price_goes_to_tail_of_new_level(book):
    book.add(1, BID, 100, 5)
    book.add(2, BID, 99, 5)
    book.add(3, BID, 100, 1)
    book.modify(1, 99, 2)  # new price and smaller: still loses priority
    assert position(book, 1) == (1, 5)
    assert levels(book)[0] == [(100, 1), (99, 7)]
    book.modify(1, 100, 2)  # back: tail again, behind 3
    assert position(book, 1) == (1, 1)
    t = book.totals()
    assert t["cancelled"] == 3 and t["resting"] == 8


def test_modify_can_create_and_empty_levels(book):
    book.add(1, ASK, 101, 5)
    book.modify(1, 104, 5)
    assert levels(book) == ([], [(104, 5)])
    assert book.level_count(ASK) == 1


# -- errors -------------------------------------------------------------------
def test_unknown_order_id(book):
    book.add(1, BID, 100, 5)
    for call in (
        lambda: book.reduce(2, 1),
        lambda: book.delete(2),
        lambda: book.execute(2, 1),
        lambda: book.modify(2, 100, 1),
        lambda: book.order(2),
    ):
        with pytest.raises(OrderNotFound):
            call()
    with pytest.raises(KeyError):  # OrderNotFound is also a KeyError
        book.delete(3)


def test_duplicate_ids(book):
    book.add(1, BID, 100, 5)
    with pytest.raises(DuplicateOrderId):
        book.add(1, ASK, 105, 1)
    with pytest.raises(DuplicateOrderId):
        book.submit(1, ASK, 100, 1, TimeInForce.IOC)  # even one that would not rest
    assert levels(book) == ([(100, 5)], [])
    book.delete(1)
    book.add(1, ASK, 105, 1)  # an id is free again once its order is gone


@pytest.mark.parametrize("qty", [0, -3])
def test_non_positive_qty(book, qty):
    book.add(1, BID, 100, 5)
    for call in (
        lambda: book.add(2, BID, 100, qty),
        lambda: book.reduce(1, qty),
        lambda: book.execute(1, qty),
        lambda: book.modify(1, 100, qty),
        lambda: book.submit(3, ASK, 100, qty),
    ):
        with pytest.raises(InvalidOrder):
            call()
    assert book.order(1).qty == 5 and len(book) == 1


def test_too_large_reduce_or_execute_changes_nothing(book):
    book.add(1, BID, 100, 5)
    with pytest.raises(InvalidOrder):
        book.reduce(1, 6)
    with pytest.raises(InvalidOrder):
        book.execute(1, 6)
    assert book.order(1).qty == 5
    assert book.totals() == {"added": 5, "executed": 0, "cancelled": 0, "resting": 5}


@pytest.mark.parametrize("side", [0, 2, -2])
def test_bad_side(book, side):
    with pytest.raises(InvalidOrder):
        book.add(1, side, 100, 1)
    with pytest.raises(InvalidOrder):
        book.submit(1, side, 100, 1)
    assert len(book) == 0


@pytest.mark.parametrize("tif", [-1, 5, 99])
def test_bad_tif(book, tif):
    with pytest.raises(InvalidOrder):
        book.submit(1, BID, 100, 1, tif)


def test_non_integer_arguments(book):
    with pytest.raises(InvalidOrder):
        book.add(1, BID, 100.5, 1)
    with pytest.raises(InvalidOrder):
        book.add(1, BID, "100", 1)
    with pytest.raises(InvalidOrder):
        book.add(-1, BID, 100, 1)
    assert -1 not in book and "x" not in book
    book.add(np.uint64(7), np.int8(1), np.int64(100), np.int64(2))  # numpy integers are fine
    assert 7 in book


def test_post_only_rejected_changes_nothing(book):
    book.add(1, ASK, 100, 5)
    r = book.submit(2, BID, 100, 1, TimeInForce.POST_ONLY)
    assert (r.outcome, r.reason) == (SubmitOutcome.REJECTED, Status.WOULD_CROSS)
    assert 2 not in book and levels(book) == ([], [(100, 5)])


def test_invalid_order_is_value_error(book):
    with pytest.raises(ValueError):
        book.add(1, BID, 100, 0)


# -- matching results -------------------------------------------------------------
def test_submit_returns_fill_array(book):
    book.add(1, ASK, 101, 2)
    r = book.submit(7, BID, 102, 3)
    assert (r.outcome, r.filled_qty, r.rested_qty) == (SubmitOutcome.RESTED, 2, 1)
    fills = r.fills
    assert isinstance(fills, np.ndarray) and fills.dtype == FILL_DTYPE
    assert rows(fills) == [(1, 7, 101, 2, 0, 1)]
    assert book.order(7).qty == 1 and book.order(7).price == 102
    killed = book.submit(8, BID, 90, 1, TimeInForce.IOC)
    assert (killed.outcome, killed.killed_qty) == (SubmitOutcome.KILLED, 1)
    empty = killed.fills
    assert empty.dtype == FILL_DTYPE and len(empty) == 0


def test_market_order_price_none(book):
    book.add(1, BID, 100, 2)
    fills = book.submit(2, ASK, None, 5, TimeInForce.MARKET).fills
    assert rows(fills) == [(1, 2, 100, 2, 0, -1)]
    assert len(book) == 0


def test_totals_conservation(book):
    book.add(1, BID, 100, 10)
    book.add(2, ASK, 105, 10)
    book.reduce(1, 2)  # cancelled 2
    book.modify(2, 105, 12)  # added 2
    book.modify(2, 106, 9)  # cancelled 3
    book.execute(1, 3)  # executed 3
    book.submit(3, BID, 106, 4)  # executed 4 (maker side)
    book.submit(4, ASK, 100, 8)  # 5 executed against 1, 3 rest -> added 3
    assert book.totals() == {"added": 25, "executed": 12, "cancelled": 5, "resting": 8}
    book.clear()
    assert book.totals() == {"added": 25, "executed": 12, "cancelled": 13, "resting": 0}
    assert len(book) == 0 and book.best_ask() is None


# -- apply ---------------------------------------------------------------------------
def events(rows):
    """Events from (kind, order_id, side, price, qty) rows, all BATCH_END."""
    ev = empty_events(len(rows))
    for i, (kind, oid, side, price, qty) in enumerate(rows):
        ev[i] = (i, i, oid, price, qty, side, kind, Flag.BATCH_END, 0)
    return ev


E = EventKind


def test_apply_all_l3_kinds(book):
    ev = events([
        (E.STATUS, 0, 0, 0, TradingStatus.TRADING),
        (E.ADD, 1, 1, 100, 5),
        (E.ADD, 2, 1, 100, 4),
        (E.ADD, 3, -1, 102, 6),
        (E.REDUCE, 1, 1, 100, 2),
        (E.EXECUTE, 1, 1, 100, 3),
        (E.TRADE, 0, -1, 100, 3),
        (E.MODIFY, 3, -1, 101, 7),
        (E.DELETE, 2, 1, 100, 0),
        (E.ADD, 4, 1, 99, 1),
    ])
    r = book.apply(ev)
    assert (r.applied, r.rejected, r.by_reason, r.first_error_index) == (10, 0, {}, -1)
    assert levels(book) == ([(99, 1)], [(101, 7)])
    assert book.totals() == {"added": 17, "executed": 3, "cancelled": 6, "resting": 8}
    r = book.apply(events([(E.CLEAR, 0, 0, 0, 0)]))
    assert r.applied == 1 and len(book) == 0


def test_apply_strict_stops_at_first_error(book):
    ev = events([
        (E.ADD, 1, 1, 100, 5),
        (E.DELETE, 9, 1, 100, 0),  # unknown id
        (E.ADD, 2, 1, 100, 5),
    ])
    with pytest.raises(OrderNotFound, match="event 1"):
        book.apply(ev)
    assert 1 in book and 2 not in book  # events before it stay applied


def test_apply_non_strict_counts(book):
    ev = events([
        (E.ADD, 1, 1, 100, 5),
        (E.DELETE, 9, 1, 100, 0),  # unknown
        (E.ADD, 1, 1, 100, 5),  # duplicate
        (E.REDUCE, 1, 1, 100, 6),  # too large
        (E.SET_LEVEL, 0, 1, 100, 5),  # L2 only
        (E.ADD, 2, 0, 100, 5),  # bad side
        (E.EXECUTE, 1, 1, 100, 5),
        (42, 0, 0, 0, 0),  # unknown kind
    ])
    r = book.apply(ev, strict=False)
    assert r.applied == 2 and r.rejected == 6 and r.first_error_index == 1
    # unknown id, duplicate, qty, side: one each; kind: SET_LEVEL and 42
    assert sorted(r.by_reason.values()) == [1, 1, 1, 1, 2]
    assert len(book) == 0


@pytest.mark.parametrize(
    "row, exc",
    [
        ((E.SET_LEVEL, 0, 1, 100, 5), InvalidOrder),
        ((E.TRADE, 0, 1, 100, 0), InvalidOrder),
        ((E.TRADE, 0, 2, 100, 1), InvalidOrder),
        ((E.STATUS, 0, 0, 0, 7), InvalidOrder),
        ((E.ADD, 1, 1, 100, 0), InvalidOrder),
        ((E.ADD, 1, 1, -(2**63), 1), InvalidOrder),
        ((E.MODIFY, 1, 1, 100, 1), OrderNotFound),
    ],
)
def test_apply_rejects(book, row, exc):
    with pytest.raises(exc):
        book.apply(events([row]))


def test_apply_checks_array(book):
    with pytest.raises(TypeError):
        book.apply(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError):
        book.apply([(0,) * 8])
    with pytest.raises(ValueError):
        book.apply(np.zeros((2, 2), dtype=EVENT_DTYPE))
    assert book.apply(empty_events(0)).applied == 0


# -- lifecycle -------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BOOKS)
def test_close_is_idempotent(cls):
    b = cls()
    b.add(1, BID, 1, 1)
    b.close()
    b.close()
    with pytest.raises(ValueError):
        b.best_bid()
    with pytest.raises(ValueError):
        b.add(2, BID, 1, 1)
    with cls() as b2:
        b2.add(1, BID, 1, 1)
    with pytest.raises(ValueError):
        len(b2)


def test_reference_check_detects_corruption():
    b = ReferenceBook()
    b.add(1, BID, 100, 5)
    b.check()
    b._bids[100].qty += 1  # tamper with a level total
    with pytest.raises(BookCorrupted):
        b.check()
