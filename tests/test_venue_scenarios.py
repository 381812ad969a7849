"""The simulated venue's fill rules, each on a hand-built scenario: events in, exact fills
and order events out, computed by hand in the comments. Pull style (Backtest with no
strategy) so each test places its orders at chosen local times.

Raw arrays run with the default instrument (tick 1, lot 1), so a fill's traded value is
price * qty and its fee is rate * price * qty.
"""
import pytest

from lobsim import (Backtest, EventKind, Fees, Flag, OrderState, RejectReason, Side, TimeInForce,
                    empty_events)
from lobsim.latency import Constant, PerAction
from lobsim.queue import LogProb, PowerProb, QueueModel, RiskAverse

ADD, RED, DEL, EXE, MOD = EventKind.ADD, EventKind.REDUCE, EventKind.DELETE, EventKind.EXECUTE, EventKind.MODIFY
SET, TRADE, CLEAR = EventKind.SET_LEVEL, EventKind.TRADE, EventKind.CLEAR
B, S = Side.BID, Side.ASK
GTC, IOC, FOK, POST, MKT = (TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY,
                            TimeInForce.MARKET)


def events(*rows):
    """Rows (t, kind, order_id, side, price, qty[, flags[, ts_local]]) -> EVENT_DTYPE, each its own batch."""
    ev = empty_events(len(rows))
    for i, r in enumerate(rows):
        t, kind, oid, side, price, qty = r[:6]
        flags = (r[6] if len(r) > 6 else 0) | Flag.BATCH_END
        local = r[7] if len(r) > 7 else t
        ev[i] = (t, local, oid, price, qty, side, kind, flags, 0)
    return ev


def drive(ev, actions, **kw):
    """Run pull-style: each action (local_time, method, *args) at its time; returns (result, ids)."""
    bt = Backtest(ev, None, **kw)
    out = []
    for t, name, *args in actions:
        if t > bt.now:
            bt.elapse(t - bt.now)
        assert bt.now == t, (bt.now, t)
        out.append(getattr(bt, name)(*args))
    while bt.elapse(10**12):
        pass
    return bt.result(), out


def fills(res):
    return [(int(f["ts_exch"]), int(f["order_id"]), int(f["qty"]), int(f["price"]), bool(f["maker"]))
            for f in res.fills]


def states(res, oid):
    rows = res.orders[res.orders["order_id"] == oid]
    return [(OrderState(int(r["state"])).name, RejectReason(int(r["reason"])).name) for r in rows]


# -- L3: exact queue position -------------------------------------------------------------

def test_l3_cancels_ahead_advance_and_executions_behind_fill():
    ev = events(
        (1, ADD, 1, B, 100, 5),
        (2, ADD, 2, B, 100, 3),
        # t=3: buy 2 @ 100 joins the tail: 8 ahead
        (4, ADD, 3, B, 100, 4),   # behind the user
        (5, DEL, 1, 0, 0, 0),     # ahead 3
        (6, EXE, 2, B, 0, 3),     # the last order ahead trades: no fill, ahead 0
        (7, EXE, 3, B, 0, 1),     # an order BEHIND the user trades: the aggressor hit the user first
        (8, EXE, 3, B, 0, 3),     # again: the user's last lot
    )
    res, (oid,) = drive(ev, [(3, "buy", 100, 2)])
    assert fills(res) == [(7, oid, 1, 100, True), (8, oid, 1, 100, True)]
    assert states(res, oid) == [("NEW", "NONE"), ("ACCEPTED", "NONE"), ("PARTIALLY_FILLED", "NONE"),
                                ("FILLED", "NONE")]


def test_l3_executions_of_orders_ahead_never_fill_and_prints_do_not_fill_again():
    ev = events(
        (1, ADD, 1, B, 100, 5),
        # t=2: buy 2 @ 100, 5 ahead
        (3, EXE, 1, B, 0, 5),              # ahead only
        (3, TRADE, 0, S, 100, 5),          # the print of that execution: not a second fill source
        (4, ADD, 2, B, 100, 1),
        (5, TRADE, 0, S, 100, 3),          # a print with no execution behind the user: nothing
    )
    res, _ = drive(ev, [(2, "buy", 100, 2)])
    assert fills(res) == []


def test_l3_execution_at_a_worse_price_fills_the_better_priced_user_order():
    ev = events(
        (1, ADD, 1, B, 99, 5),
        # t=2: buy 3 @ 100 (a better price than any data bid: nothing ahead)
        (3, EXE, 1, B, 0, 2),    # 2 lots traded at 99: the aggressor would have hit 100 first
    )
    res, (oid,) = drive(ev, [(2, "buy", 100, 3)])
    assert fills(res) == [(3, oid, 2, 100, True)]


def test_l3_hidden_prints_fill_through_or_at_an_empty_front():
    ev = events(
        (1, ADD, 1, B, 99, 5),
        (1, ADD, 2, S, 104, 5),
        # t=2: buy 2 @ 101 (improves the touch) and buy 4 @ 99 (behind 5 displayed)
        (3, TRADE, 0, S, 101, 1, Flag.HIDDEN),   # at 101, nothing displayed ahead: fills 1
        (4, TRADE, 0, S, 100, 3, Flag.HIDDEN),   # through 101: the remaining 1; 99 is not reached
        (5, TRADE, 0, S, 99, 2, Flag.HIDDEN),    # at 99 with 5 displayed ahead: hidden ranks behind them
    )
    res, (a, b) = drive(ev, [(2, "buy", 101, 2), (2, "buy", 99, 4)])
    assert fills(res) == [(3, a, 1, 101, True), (4, a, 1, 101, True)]


def test_l3_own_orders_share_one_execution_in_time_priority():
    ev = events(
        (1, ADD, 1, S, 100, 1),
        # t=2: two sells @ 100 (2 then 3 lots), both behind order 1
        (3, ADD, 2, S, 100, 10),
        (4, EXE, 2, S, 0, 4),   # 4 lots behind both: 2 to the first, 2 to the second, never 4 + 4
    )
    res, (a, b) = drive(ev, [(2, "sell", 100, 2), (2, "sell", 100, 3)])
    assert fills(res) == [(4, a, 2, 100, True), (4, b, 2, 100, True)]


# -- L2: queue models on one sequence ------------------------------------------------------

L2_SEQ = events(
    (1, SET, 0, B, 100, 10),
    # t=2: buy 4 @ 100: 10 ahead
    (3, SET, 0, B, 100, 15),      # 5 join behind
    (4, SET, 0, B, 100, 11),      # -4 with no print: a cancel for the model
    (5, TRADE, 0, S, 100, 8),
    (6, TRADE, 0, S, 100, 3),
    (7, TRADE, 0, S, 99, 1),      # through the price: whatever is left fills
)


@pytest.mark.parametrize("queue, expected", [
    # RiskAverse: the cancel comes from behind: ahead = min(10, 11) = 10.
    # t=5: 8 - 10 < 0, ahead 2; t=6: excess 3 - 2 = 1 fills 1; t=7 through: the other 3.
    (RiskAverse(), [(6, 1), (7, 3)]),
    # PowerProb(2): front 10, back 15 - 10 = 5: share 100 / 125 = 0.8 of 4 -> ahead 6.8.
    # t=5: excess 8 - 6.8 = 1.2 -> 1 lot; ahead 0; t=6: excess 3 fills the other 3.
    (PowerProb(2), [(5, 1), (6, 3)]),
    # LogProb: share ln 11 / (ln 11 + ln 6) = 0.5723 of 4 -> ahead 7.7107.
    # t=5: excess 0.289 -> no lot; ahead 0; t=6: 3 of the 4; t=7 through: the last.
    (LogProb(), [(6, 3), (7, 1)]),
])
def test_l2_queue_models_on_one_sequence(queue, expected):
    res, (oid,) = drive(L2_SEQ, [(2, "buy", 100, 4)], queue=queue)
    assert [(t, q) for t, _, q, _, _ in fills(res)] == expected
    assert all(p == 100 and maker for _, _, _, p, maker in fills(res))


def test_l2_decrease_explained_by_an_earlier_print_moves_nothing_twice():
    ev = events(
        (1, SET, 0, B, 100, 10),
        # t=2: buy 3 @ 100: ahead 10
        (3, TRADE, 0, S, 100, 4),   # ahead 6
        (4, SET, 0, B, 100, 6),     # the same 4 lots: explained, ahead stays 6
        (5, TRADE, 0, S, 100, 7),   # excess 1 fills 1
    )
    res, _ = drive(ev, [(2, "buy", 100, 3)], queue=PowerProb(3))
    assert [(t, q) for t, _, q, _, _ in fills(res)] == [(5, 1)]


def test_l2_decrease_published_before_its_print_does_not_move_the_queue_twice():
    ev = events(
        (1, SET, 0, B, 100, 10),
        # t=2: buy 2 @ 100 at the back: ahead 10
        (3, SET, 0, B, 100, 7),     # the print's 3 lots, published first: ahead min(10, 7) = 7
        (3, TRADE, 0, S, 100, 3),   # the same trade, stamped at the decrease: ahead stays 7
        (4, TRADE, 0, S, 100, 8),   # a new trade: excess 1 fills 1
    )
    res, _ = drive(ev, [(2, "buy", 100, 2)])
    assert [(t, q) for t, _, q, _, _ in fills(res)] == [(4, 1)]


def test_l2_one_print_is_shared_among_own_orders_never_used_twice():
    ev = events(
        (1, SET, 0, S, 100, 2),
        # t=2: sell 3 @ 100 (ahead 2), then sell 3 @ 100 (ahead 2: the user's own order is not displayed)
        (3, TRADE, 0, B, 100, 6),   # 2 ahead, then 3 to the first, the last 1 to the second
    )
    res, (a, b) = drive(ev, [(2, "sell", 100, 3), (2, "sell", 100, 3)])
    assert fills(res) == [(3, a, 3, 100, True), (3, b, 1, 100, True)]


def test_l2_opposite_best_reaching_the_price_fills():
    ev = events(
        (1, SET, 0, S, 103, 5),
        # t=2: buy 2 @ 101
        (3, SET, 0, S, 101, 4),     # an ask at the user's bid: it would have traded with it
    )
    res, (oid,) = drive(ev, [(2, "buy", 101, 2)])
    assert fills(res) == [(3, oid, 2, 101, True)]


def test_custom_queue_model_is_called_with_the_decrease():
    seen = []

    class Half(QueueModel):
        def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
            seen.append((ahead, level_before, level_after, cancel))
            return ahead - cancel / 2

    res, _ = drive(L2_SEQ, [(2, "buy", 100, 4)], queue=Half())
    assert seen == [(10.0, 15, 11, 4)]
    # ahead 8 -> t=5 print 8: no excess, ahead 0 -> t=6: 3 fill; t=7 through: the last 1
    assert [(t, q) for t, _, q, _, _ in fills(res)] == [(6, 3), (7, 1)]


# -- latency, races, rejections -------------------------------------------------------------

def test_no_fill_from_events_before_arrival_and_responses_after_the_response_latency():
    ev = events(
        (10, SET, 0, S, 101, 5),
        (20, TRADE, 0, B, 102, 5),   # before the order arrives (10 + 15 = 25): cannot fill it
        (30, TRADE, 0, B, 102, 1),   # through its price: fills
        (100, SET, 0, S, 101, 0),
    )
    res, (oid,) = drive(ev, [(10, "sell", 101, 2)], latency=Constant(entry_ns=15, response_ns=7))
    f = res.fills
    assert fills(res) == [(30, oid, 2, 101, True)] and int(f["ts_local"][0]) == 37
    acc = res.orders[res.orders["state"] == OrderState.ACCEPTED]
    assert (int(acc["ts_exch"][0]), int(acc["ts_local"][0])) == (25, 32)


def test_cancel_racing_a_fill_is_too_late_and_the_fill_stands():
    ev = events(
        (1, SET, 0, S, 105, 1),
        (1, SET, 0, B, 99, 1),
        # t=2: buy 1 @ 100 (arrives 4)
        (6, TRADE, 0, S, 98, 1),     # through 100: filled at 6, learnt at 8
        (50, SET, 0, B, 99, 2),
    )
    # the cancel is sent at 7 (before the fill is known), arrives 9: too late
    res, (oid, _) = drive(ev, [(2, "buy", 100, 1), (7, "cancel", 1)], latency=Constant(entry_ns=2, response_ns=2))
    assert fills(res) == [(6, oid, 1, 100, True)]
    assert states(res, oid)[-1] == ("REJECTED", "TOO_LATE")
    rej = res.orders[-1]
    assert (int(rej["ts_exch"]), int(rej["ts_local"])) == (9, 11)


def test_post_only_that_would_cross_is_rejected_and_unknown_cancel_is_an_order_event():
    ev = events((1, SET, 0, S, 101, 5), (1, SET, 0, B, 99, 5), (9, SET, 0, B, 99, 6))
    res, (a, b, _) = drive(ev, [(2, "buy", 101, 1, POST), (2, "buy", 100, 1, POST), (3, "cancel", 999)])
    assert states(res, a) == [("NEW", "NONE"), ("REJECTED", "WOULD_CROSS")]
    assert states(res, b) == [("NEW", "NONE"), ("ACCEPTED", "NONE")]
    assert states(res, 999) == [("REJECTED", "UNKNOWN_ORDER")]
    assert fills(res) == []


def test_marketable_orders_never_take_the_same_liquidity_twice():
    for book in ("L2", "L3"):
        first = (1, SET, 0, S, 101, 5) if book == "L2" else (1, ADD, 7, S, 101, 5)
        ev = events(first, (50, TRADE, 0, B, 90, 1) if book == "L2" else (50, ADD, 8, B, 90, 1))
        res, (a, b, c, d) = drive(ev, [(2, "buy", 101, 4, IOC), (2, "buy", 101, 4, IOC),
                                       (2, "buy", 101, 9, FOK), (2, "buy", None, 3, MKT)])
        assert fills(res) == [(2, a, 4, 101, False), (2, b, 1, 101, False)], book
        assert states(res, c)[-1] == ("CANCELLED", "NONE")      # FOK: 9 not available
        assert states(res, d)[-1] == ("REJECTED", "NO_LIQUIDITY")


def test_modify_size_down_keeps_priority_up_or_price_loses_it():
    ev = events(
        (1, ADD, 1, B, 100, 5),
        # t=2: buy 4 @ 100: 5 ahead
        (3, ADD, 2, B, 100, 5),     # behind
        # t=4: modify to 3 lots (keeps its place); t=6: modify to 6 lots (back of the queue, behind order 2)
        (5, EXE, 2, B, 0, 1),       # behind the user: fills 1
        (7, DEL, 1, 0, 0, 0),
        (8, EXE, 2, B, 0, 2),       # order 2 is now AHEAD of the user: no fill
    )
    res, (oid, _, _) = drive(ev, [(2, "buy", 100, 4), (4, "modify", 1, 100, 3), (6, "modify", 1, 100, 6)])
    assert fills(res) == [(5, oid, 1, 100, True)]
    mods = res.orders[(res.orders["order_id"] == oid) & (res.orders["request"] == 2)]
    assert mods["leaves_qty"].tolist() == [3, 6]


def test_fees_with_a_maker_rebate():
    ev = events((1, SET, 0, S, 200, 10), (1, SET, 0, B, 100, 10), (3, TRADE, 0, S, 90, 1))
    res, _ = drive(ev, [(2, "buy", 200, 2, IOC), (2, "buy", 100, 1)], fees=Fees(maker=-0.001, taker=0.002))
    f = res.fills
    assert f["maker"].tolist() == [False, True]
    assert f["fee"].tolist() == pytest.approx([0.002 * 400, -0.001 * 100])
    assert f["position"].tolist() == [2, 3]
    assert f["cash"].tolist() == pytest.approx([-400 - 0.8, -400 - 0.8 - 100 + 0.1])


def test_per_action_latency_and_one_connection_fifo():
    ev = events((1, SET, 0, S, 105, 1), (1, SET, 0, B, 99, 1), (100, SET, 0, B, 99, 2))
    lat = PerAction(new=Constant(20, 5), cancel=Constant(3, 11))
    # the cancel is faster but sent after the order on the same connection: it cannot overtake it
    res, (oid, _) = drive(ev, [(2, "buy", 100, 1), (2, "cancel", 1)], latency=lat)
    rows = res.orders[res.orders["order_id"] == oid]
    acc = rows[rows["state"] == OrderState.ACCEPTED]
    can = rows[rows["state"] == OrderState.CANCELLED]
    assert int(acc["ts_exch"][0]) == 22 and int(can["ts_exch"][0]) == 22
    # each answer travels back with its own request's response latency
    assert int(acc["ts_local"][0]) == 22 + 5 and int(can["ts_local"][0]) == 22 + 11


def test_clock_offset_policy_shifts_negative_feed_latency():
    # the capture's clock lags the venue: ts_local - ts_exch is -990 and -1000 ns
    ev = events((1000, SET, 0, S, 101, 5, 0, 10), (2000, SET, 0, S, 101, 6, 0, 1000))
    bt = Backtest(ev, None)
    assert bt.now == 10 + 1000  # every ts_local moved by the smallest (most negative) latency
    while bt.elapse(10**9):
        pass
    assert bt.result().clock_offset_ns == 1000
