"""Hand-written matching scenarios with exact expected fills, run on both books.

Each scenario sets up resting orders with L3 operations, submits one order and
states, from the matching rules alone (price-time priority, trade at the
resting price, time-in-force semantics), the exact fills and the book after.
"""
import pytest

from lobsim import FILL_DTYPE, DuplicateOrderId, InvalidOrder, Side, TimeInForce
from lobsim.book import SubmitOutcome
from lobsim.errors import Status
from lobsim.book.reference import ReferenceBook

try:
    from lobsim.book import OrderBook
except ImportError:  # C core not built
    OrderBook = None

BOOKS = [
    pytest.param(ReferenceBook, id="reference"),
    pytest.param(OrderBook, id="c", marks=pytest.mark.skipif(OrderBook is None, reason="C core not built")),
]

B, S = int(Side.BID), int(Side.ASK)
GTC, IOC, FOK, POST, MKT = (int(t) for t in (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK,
                                               TimeInForce.POST_ONLY, TimeInForce.MARKET))
REJECTED = "rejected (post-only would cross)"  # expected outcome marker


def add(oid, side, px, qty):
    return ("add", oid, side, px, qty)


def op(name, *args):
    return (name, *args)


# name: setup ops, submit (id, side, price, qty, tif), then either the
# expected fills [(maker, price, qty, maker_remaining)] or an exception class,
# and the book after: (bids, asks) as [(price, qty)] best first, plus
# optional queue positions {id: (orders_ahead, qty_ahead, qty)}.
SCENARIOS = {
    "fifo_within_level": (
        [add(1, B, 100, 5), add(2, B, 100, 3), add(3, B, 100, 4)],
        (10, S, 100, 10, GTC),
        [(1, 100, 5, 0), (2, 100, 3, 0), (3, 100, 2, 2)],
        ([(100, 2)], []),
        {3: (0, 0, 2)},
    ),
    "price_beats_time_buy": (
        [add(1, S, 101, 2), add(2, S, 102, 2), add(3, S, 101, 1)],
        (10, B, 102, 4, GTC),
        [(1, 101, 2, 0), (3, 101, 1, 0), (2, 102, 1, 1)],
        ([], [(102, 1)]),
        {2: (0, 0, 1)},
    ),
    "price_beats_time_sell": (
        [add(1, B, 99, 1), add(2, B, 101, 1), add(3, B, 100, 1)],
        (10, S, 98, 10, IOC),
        [(2, 101, 1, 0), (3, 100, 1, 0), (1, 99, 1, 0)],
        ([], []),
        {},
    ),
    "trade_at_resting_price_buy": (
        [add(1, S, 100, 5)],
        (10, B, 105, 3, GTC),
        [(1, 100, 3, 2)],
        ([], [(100, 2)]),
        {},
    ),
    "trade_at_resting_price_sell": (
        [add(1, B, 100, 5)],
        (10, S, 90, 5, GTC),
        [(1, 100, 5, 0)],
        ([], []),
        {},
    ),
    "limit_stops_walk_and_remainder_rests": (
        [add(1, S, 100, 1), add(2, S, 101, 1), add(3, S, 102, 1)],
        (10, B, 101, 5, GTC),
        [(1, 100, 1, 0), (2, 101, 1, 0)],
        ([(101, 3)], [(102, 1)]),
        {10: (0, 0, 3)},
    ),
    "gtc_no_cross_rests_behind_same_price": (
        [add(1, B, 99, 4), add(2, S, 100, 1)],
        (10, B, 99, 6, GTC),
        [],
        ([(99, 10)], [(100, 1)]),
        {10: (1, 4, 6), 1: (0, 0, 4)},
    ),
    "ioc_remainder_cancelled": (
        [add(1, S, 100, 2), add(2, S, 101, 5)],
        (10, B, 100, 4, IOC),
        [(1, 100, 2, 0)],
        ([], [(101, 5)]),
        {},
    ),
    "ioc_nothing_to_match": (
        [add(1, S, 101, 2)],
        (10, B, 100, 4, IOC),
        [],
        ([], [(101, 2)]),
        {},
    ),
    "fok_not_enough_quantity": (
        [add(1, S, 100, 2), add(2, S, 101, 2)],
        (10, B, 101, 5, FOK),
        [],
        ([], [(100, 2), (101, 2)]),
        {1: (0, 0, 2)},
    ),
    "fok_enough_only_beyond_limit": (
        [add(1, S, 100, 2), add(2, S, 102, 10)],
        (10, B, 101, 5, FOK),
        [],
        ([], [(100, 2), (102, 10)]),
        {},
    ),
    "fok_exact_fill_across_levels": (
        [add(1, S, 100, 2), add(2, S, 101, 3)],
        (10, B, 101, 5, FOK),
        [(1, 100, 2, 0), (2, 101, 3, 0)],
        ([], []),
        {},
    ),
    "fok_fill_with_partial_last_maker": (
        [add(1, B, 100, 2), add(2, B, 99, 5)],
        (10, S, 99, 4, FOK),
        [(1, 100, 2, 0), (2, 99, 2, 3)],
        ([(99, 3)], []),
        {2: (0, 0, 3)},
    ),
    "post_only_would_cross_rejected": (
        [add(1, S, 100, 2), add(2, B, 98, 1)],
        (10, B, 100, 1, POST),
        REJECTED,
        ([(98, 1)], [(100, 2)]),
        {},
    ),
    "post_only_through_the_book_rejected": (
        [add(1, B, 100, 2)],
        (10, S, 95, 1, POST),
        REJECTED,
        ([(100, 2)], []),
        {},
    ),
    "post_only_rests": (
        [add(1, S, 101, 2), add(2, B, 100, 3)],
        (10, B, 100, 4, POST),
        [],
        ([(100, 7)], [(101, 2)]),
        {10: (1, 3, 4)},
    ),
    "post_only_on_empty_side_rests": (
        [],
        (10, S, 50, 4, POST),
        [],
        ([], [(50, 4)]),
        {10: (0, 0, 4)},
    ),
    "market_sweeps_every_level": (
        [add(1, S, 100, 1), add(2, S, 105, 2), add(3, S, 200, 1), add(4, B, 90, 1)],
        (10, B, 0, 10, MKT),
        [(1, 100, 1, 0), (2, 105, 2, 0), (3, 200, 1, 0)],
        ([(90, 1)], []),
        {},
    ),
    "market_ignores_price": (
        [add(1, B, 90, 3), add(2, B, 80, 3)],
        (10, S, 10**6, 4, MKT),
        [(1, 90, 3, 0), (2, 80, 1, 2)],
        ([(80, 2)], []),
        {},
    ),
    "market_on_empty_side_does_nothing": (
        [add(1, B, 90, 3)],
        (10, B, 100, 4, MKT),
        [],
        ([(90, 3)], []),
        {},
    ),
    "queue_after_cancels_ahead": (
        [add(1, B, 100, 2), add(2, B, 100, 2), add(3, B, 100, 2), op("delete", 1), op("reduce", 2, 1)],
        (10, S, 100, 2, IOC),
        [(2, 100, 1, 0), (3, 100, 1, 1)],
        ([(100, 1)], []),
        {3: (0, 0, 1)},
    ),
    "queue_after_executions_in_data": (
        [add(1, S, 100, 5), add(2, S, 100, 5), op("execute", 1, 4)],
        (10, B, 100, 3, IOC),
        [(1, 100, 1, 0), (2, 100, 2, 3)],
        ([], [(100, 3)]),
        {},
    ),
    "modify_decrease_keeps_priority": (
        [add(1, B, 100, 5), add(2, B, 100, 5), op("modify", 1, 100, 3)],
        (10, S, 100, 4, GTC),
        [(1, 100, 3, 0), (2, 100, 1, 4)],
        ([(100, 4)], []),
        {},
    ),
    "modify_increase_loses_priority": (
        [add(1, B, 100, 5), add(2, B, 100, 5), op("modify", 1, 100, 6)],
        (10, S, 100, 6, GTC),
        [(2, 100, 5, 0), (1, 100, 1, 5)],
        ([(100, 5)], []),
        {1: (0, 0, 5)},
    ),
    "modify_price_loses_priority": (
        [add(1, S, 100, 1), add(2, S, 101, 1), op("modify", 2, 100, 1)],
        (10, B, 100, 2, GTC),
        [(1, 100, 1, 0), (2, 100, 1, 0)],
        ([], []),
        {},
    ),
    "rested_taker_is_hit_later_in_fifo": (
        [add(1, S, 100, 2), add(2, B, 99, 1)],
        (10, B, 100, 5, GTC),
        [(1, 100, 2, 0)],
        ([(100, 3), (99, 1)], []),
        {10: (0, 0, 3)},
    ),
    "duplicate_id_rejected": (
        [add(1, B, 100, 2)],
        (1, S, 100, 1, IOC),
        DuplicateOrderId,
        ([(100, 2)], []),
        {},
    ),
    "zero_qty_rejected": (
        [add(1, B, 100, 2)],
        (10, S, 100, 0, GTC),
        InvalidOrder,
        ([(100, 2)], []),
        {},
    ),
    "crossed_book_from_adds_is_matched_by_submit": (
        [add(1, B, 105, 2), add(2, S, 100, 3)],  # ADD never matches, so the book is crossed
        (10, S, 104, 5, GTC),
        [(1, 105, 2, 0)],
        ([], [(100, 3), (104, 3)]),
        {10: (0, 0, 3)},
    ),
}


def _levels(book):
    d = book.depth(8)
    bids = [(int(p), int(q)) for p, q in zip(d.bid_px, d.bid_qty) if q]
    asks = [(int(p), int(q)) for p, q in zip(d.ask_px, d.ask_qty) if q]
    return bids, asks


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("cls", BOOKS)
def test_scenario(cls, name):
    setup, (oid, side, price, qty, tif), expected, (bids, asks), positions = SCENARIOS[name]
    with cls() as book:
        for kind, *args in setup:
            getattr(book, kind)(*args)
        before = book.totals()
        if isinstance(expected, type):
            with pytest.raises(expected):
                book.submit(oid, side, price, qty, tif)
            assert book.totals() == before  # a refused order changes nothing
        elif expected is REJECTED:
            r = book.submit(oid, side, price, qty, tif)
            assert (r.outcome, r.reason, len(r.fills)) == (SubmitOutcome.REJECTED, Status.WOULD_CROSS, 0)
            assert (r.filled_qty, r.rested_qty, r.killed_qty) == (0, 0, 0)
            assert book.totals() == before and oid not in book  # a rejected order changes nothing
        else:
            r = book.submit(oid, side, price, qty, tif)
            fills = r.fills
            assert fills.dtype == FILL_DTYPE
            got = [
                (int(f["maker_id"]), int(f["price"]), int(f["qty"]), int(f["maker_remaining"])) for f in fills
            ]
            assert got == expected
            assert (fills["taker_id"] == oid).all() and (fills["taker_side"] == side).all()
            assert (fills["reserved"] == 0).all()
            after = book.totals()
            filled = sum(q for _, _, q, _ in expected)
            assert after["executed"] - before["executed"] == filled
            rests = tif in (GTC, POST) and qty > filled
            assert (oid in book) == rests
            assert after["added"] - before["added"] == (qty - filled if rests else 0)
            outcome = SubmitOutcome.FILLED if filled == qty else SubmitOutcome.RESTED if rests else SubmitOutcome.KILLED
            assert (r.outcome, r.filled_qty, r.reason) == (outcome, filled, None)
            assert (r.rested_qty, r.killed_qty) == ((qty - filled, 0) if rests else (0, qty - filled))
        assert _levels(book) == (bids, asks)
        for i, (ahead_n, ahead_q, q) in positions.items():
            info = book.order(i)
            assert (info.orders_ahead, info.qty_ahead, info.qty) == (ahead_n, ahead_q, q), i
        book.check()
        t = book.totals()
        assert t["added"] == t["resting"] + t["executed"] + t["cancelled"]
