"""The Python face of the C books: views, apply, depth_series and clear errors on bad input."""
import numpy as np
import pytest

import lobsim
from lobsim import EVENT_DTYPE, EventKind, Flag, Side, TimeInForce
from lobsim.book import LevelBook, OrderBook, SubmitOutcome, depth_series
from lobsim.errors import Status


def ev(kind, order_id=0, side=0, price=0, qty=0, flags=0, ts=0):
    a = np.zeros(1, dtype=EVENT_DTYPE)
    a[0] = (ts, ts, order_id, price, qty, side, kind, flags, 0)
    return a


def events(*rows):
    return np.concatenate(rows)


def test_views_and_queue_position():
    with OrderBook() as b:
        assert b.best_bid() is None and b.best_ask() is None and len(b) == 0
        b.add(1, Side.BID, 100, 5)
        b.add(2, Side.BID, 100, 3)
        b.add(3, Side.BID, 98, 1)
        b.add(4, Side.ASK, 103, 2)
        assert b.best_bid() == (100, 8) and b.best_ask() == (103, 2)
        d = b.depth(3)
        assert d.bid_px.tolist() == [100, 98, 0] and d.bid_qty.tolist() == [8, 1, 0]
        assert d.ask_px.tolist() == [103, 0, 0]
        info = b.order(2)
        assert (info.qty_ahead, info.orders_ahead, info.side) == (5, 1, Side.BID)
        assert 2 in b and 9 not in b and len(b) == 4
        b.check()


def test_errors_are_typed_and_named():
    b = OrderBook()
    b.add(1, Side.BID, 100, 5)
    with pytest.raises(lobsim.OrderNotFound) as e:
        b.delete(42)
    assert isinstance(e.value, KeyError) and "42" in str(e.value)
    with pytest.raises(lobsim.DuplicateOrderId):
        b.add(1, Side.ASK, 101, 1)
    with pytest.raises(ValueError, match="invalid quantity"):
        b.add(2, Side.ASK, 101, 0)
    with pytest.raises(lobsim.InvalidOrder, match="side"):
        b.add(2, 3, 101, 1)
    with pytest.raises(lobsim.InvalidOrder, match="out of range"):
        b.add(2, Side.ASK, 2**63, 1)
    with pytest.raises(lobsim.InvalidOrder, match="order_id"):
        b.add(-1, Side.ASK, 1, 1)
    with pytest.raises(lobsim.InvalidOrder, match="integer"):
        b.add(2, Side.ASK, 1.5, 1)
    with pytest.raises(lobsim.InvalidOrder):
        b.reduce(1, 6)
    rejected = b.submit(5, Side.ASK, 100, 1, TimeInForce.POST_ONLY)  # a status, not an exception
    assert rejected.outcome == SubmitOutcome.REJECTED and rejected.reason == Status.WOULD_CROSS
    assert 5 not in b
    with pytest.raises(lobsim.InvalidOrder, match="tif"):
        b.submit(5, Side.ASK, 100, 1, 9)
    assert len(b) == 1 and b.order(1).qty == 5
    b.close()
    b.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        b.best_bid()


def test_apply_validates_the_array():
    b = OrderBook()
    good = ev(EventKind.ADD, 1, 1, 100, 5)
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        b.apply(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="numpy array"):
        b.apply([1, 2, 3])
    with pytest.raises(ValueError, match="contiguous"):
        b.apply(events(good, good, good)[::2])
    with pytest.raises(ValueError, match="1-dimensional"):
        b.apply(np.zeros((2, 2), dtype=EVENT_DTYPE))
    assert b.apply(np.zeros(0, dtype=EVENT_DTYPE)).applied == 0


def test_apply_strict_names_index_and_field():
    b = OrderBook()
    arr = events(
        ev(EventKind.ADD, 1, 1, 100, 5),
        ev(EventKind.REDUCE, 1, 0, 0, 2),
        ev(EventKind.DELETE, 7),
        ev(EventKind.ADD, 2, 1, 100, 1),
    )
    with pytest.raises(lobsim.OrderNotFound, match=r"event 2 .*'order_id'"):
        b.apply(arr)
    assert b.best_bid() == (100, 3)  # events before the bad one stay applied
    b2 = OrderBook()
    r = b2.apply(arr, strict=False)
    assert (r.applied, r.rejected, r.first_error_index) == (3, 1, 2)
    assert r.by_reason == {"unknown order id": 1}
    with pytest.raises(lobsim.InvalidOrder, match=r"event 0 .*'kind'"):
        OrderBook().apply(ev(99))
    with pytest.raises(lobsim.InvalidOrder, match="'side'"):
        OrderBook().apply(ev(EventKind.ADD, 1, 2, 100, 1))
    with pytest.raises(lobsim.InvalidOrder, match="'kind'"):
        OrderBook().apply(ev(EventKind.SET_LEVEL, 0, 1, 100, 1))
    with pytest.raises(lobsim.InvalidOrder, match="'kind'"):
        LevelBook().apply(ev(EventKind.ADD, 1, 1, 100, 1))


def test_submit_fills_and_rest():
    b = OrderBook()
    for i, px in enumerate([101, 101, 102, 104]):
        b.add(i + 1, Side.ASK, px, 10)
    r = b.submit(100, Side.BID, 102, 25, TimeInForce.GTC)
    fills = r.fills
    assert fills.dtype == lobsim.FILL_DTYPE
    assert fills["maker_id"].tolist() == [1, 2, 3]
    assert fills["price"].tolist() == [101, 101, 102]
    assert fills["qty"].tolist() == [10, 10, 5]
    assert fills["maker_remaining"].tolist() == [0, 0, 5]
    assert (r.outcome, r.filled_qty, r.rested_qty, r.killed_qty) == (SubmitOutcome.FILLED, 25, 0, 0)
    assert b.best_ask() == (102, 5) and b.best_bid() is None  # fully filled, nothing rests
    r = b.submit(101, Side.BID, 110, 100, TimeInForce.FOK)
    assert (r.outcome, len(r.fills), r.killed_qty) == (SubmitOutcome.KILLED, 0, 100)
    r = b.submit(102, Side.BID, None, 100, TimeInForce.MARKET)
    assert r.fills["qty"].sum() == 15 and len(b) == 0
    assert (r.outcome, r.filled_qty, r.killed_qty) == (SubmitOutcome.KILLED, 15, 85)


def test_submit_result_tells_every_outcome_apart():
    """A killed FOK, an IOC that found nothing and a GTC that rested in full all
    have no fills; the result still says which happened and where the qty went."""
    b = OrderBook()
    b.add(1, Side.ASK, 105, 4)
    ioc = b.submit(2, Side.BID, 100, 3, TimeInForce.IOC)
    fok = b.submit(3, Side.BID, 105, 5, TimeInForce.FOK)
    gtc = b.submit(4, Side.BID, 100, 3, TimeInForce.GTC)
    post = b.submit(5, Side.BID, 99, 2, TimeInForce.POST_ONLY)
    cross = b.submit(6, Side.BID, 105, 2, TimeInForce.POST_ONLY)
    assert [len(r.fills) for r in (ioc, fok, gtc, post, cross)] == [0] * 5
    assert (ioc.outcome, ioc.killed_qty) == (SubmitOutcome.KILLED, 3)
    assert (fok.outcome, fok.killed_qty) == (SubmitOutcome.KILLED, 5)
    assert (gtc.outcome, gtc.rested_qty) == (SubmitOutcome.RESTED, 3)
    assert (post.outcome, post.rested_qty) == (SubmitOutcome.RESTED, 2)
    assert (cross.outcome, cross.reason) == (SubmitOutcome.REJECTED, Status.WOULD_CROSS)
    assert ioc.reason is fok.reason is gtc.reason is None
    assert b.depth(3).bid_qty.tolist() == [3, 2, 0] and 6 not in b and b.best_ask() == (105, 4)
    partial = b.submit(7, Side.BID, 105, 6, TimeInForce.GTC)  # takes 4, rests 2
    assert (partial.outcome, partial.filled_qty, partial.rested_qty) == (SubmitOutcome.RESTED, 4, 2)


def test_submit_grows_fill_buffer():
    b = OrderBook()
    for i in range(500):
        b.add(i + 1, Side.ASK, 100 + i % 7, 1)
    fills = b.submit(10_000, Side.BID, 200, 1000, TimeInForce.IOC).fills
    assert len(fills) == 500 and len(b) == 0
    assert np.all(np.diff(fills["price"]) >= 0)
    b.check()


def test_level_book_and_depth_series_l2():
    arr = events(
        ev(EventKind.SET_LEVEL, 0, 1, 100, 5),
        ev(EventKind.SET_LEVEL, 0, -1, 102, 4, Flag.BATCH_END),
        ev(EventKind.SET_LEVEL, 0, 1, 101, 2),
        ev(EventKind.SET_LEVEL, 0, 1, 100, 0, Flag.BATCH_END),
        ev(EventKind.TRADE, 0, -1, 101, 2),
    )
    lb = LevelBook()
    lb.apply(arr)
    assert lb.best_bid() == (101, 2) and lb.best_ask() == (102, 4) and len(lb) == 2
    ds = depth_series(arr, 2)
    assert ds.bid_px.shape == (5, 2)
    assert ds.bid_px[0].tolist() == [100, 0] and ds.ask_px[0].tolist() == [0, 0]
    assert ds.bid_px[2].tolist() == [101, 100] and ds.bid_qty[3].tolist() == [2, 0]
    only = depth_series(arr, 2, batch_end_only=True)
    assert only.index.tolist() == [1, 3]
    assert only.ask_px[:, 0].tolist() == [102, 102]


def test_depth_series_l3_matches_incremental_depth():
    from lobsim.data import synthetic

    arr = synthetic.generate(3000, seed=7)
    ds = depth_series(arr, 5)
    b = OrderBook()
    for i in range(0, len(arr), 97):
        b2 = OrderBook()
        b2.apply(arr[: i + 1])
        d = b2.depth(5)
        assert ds.bid_px[i].tolist() == d.bid_px.tolist()
        assert ds.ask_qty[i].tolist() == d.ask_qty.tolist()
    b.apply(arr)
    b.check()
    t = b.totals()
    assert t["added"] == t["resting"] + t["executed"] + t["cancelled"]


def test_depth_series_strict_error_names_event():
    arr = events(ev(EventKind.ADD, 1, 1, 100, 5), ev(EventKind.EXECUTE, 1, 1, 100, 9))
    with pytest.raises(lobsim.InvalidOrder, match=r"event 1 .*'qty'"):
        depth_series(arr, 1)
    ds = depth_series(arr, 1, strict=False)
    assert ds.bid_qty[:, 0].tolist() == [5, 5]


def test_clear_event_and_wide_prices():
    b = OrderBook()
    b.add(1, Side.BID, 1, 1)
    b.add(2, Side.BID, 10**12, 1)
    b.add(3, Side.ASK, 2**62, 1)
    assert b.level_count(Side.BID) == 2
    b.apply(ev(EventKind.CLEAR))
    assert len(b) == 0 and b.best_bid() is None
    b.check()
    assert b.totals()["cancelled"] == 3


def test_depth_series_continues_a_book_across_chunks():
    from lobsim.data import synthetic

    arr = synthetic.generate(5000, seed=11)
    whole = depth_series(arr, 3, batch_end_only=True)
    book = OrderBook()
    parts = [depth_series(arr[i:i + 1234], 3, batch_end_only=True, book=book) for i in range(0, len(arr), 1234)]
    assert np.array_equal(np.concatenate([p.bid_px for p in parts]), whole.bid_px)
    assert np.array_equal(np.concatenate([p.ask_qty for p in parts]), whole.ask_qty)
    assert repr(book).startswith(f"<OrderBook {len(book)} orders")
