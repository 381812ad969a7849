"""Stop-market and stop-limit orders, DAY and GTD expiry, halts, and TrendFollowing: each
on a hand-built scenario with the expected events computed in the comments."""
import numpy as np
import pytest

from lobsim import Backtest, EventKind, OrderState, Side, TimeInForce, TradingStatus
from lobsim.data import read_parquet
from lobsim.latency import Constant
from lobsim.strategies import TrendFollowing

from test_venue_scenarios import drive, events, fills, states

SET, TRADE, STATUS = EventKind.SET_LEVEL, EventKind.TRADE, EventKind.STATUS
B, S = Side.BID, Side.ASK
GTC, IOC, MKT, DAY, GTD = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.MARKET, TimeInForce.DAY, TimeInForce.GTD


def test_stop_market_triggers_on_a_trade_after_its_arrival_not_before():
    ev = events(
        (1, SET, 0, S, 103, 5),
        # t=2: buy stop-market 2 @ stop 102, 20 ns to the venue: armed at 22
        (15, TRADE, 0, B, 102, 1),   # before its arrival: no trigger
        (25, TRADE, 0, B, 101, 1),   # below the stop
        (30, TRADE, 0, B, 102, 1),   # at the stop: triggered, the market buy takes 2 @ 103
        (40, SET, 0, S, 103, 4),
    )
    res, (oid,) = _drive_stop(ev, [(2, "buy", None, 2, MKT, 102)], latency=Constant(20, 0))
    assert fills(res) == [(30, oid, 2, 103, False)]
    assert [s for s, _ in states(res, oid)] == ["NEW", "ACCEPTED", "TRIGGERED", "FILLED"]
    trig = res.orders[res.orders["state"] == OrderState.TRIGGERED]
    assert int(trig["ts_exch"][0]) == 30


def _drive_stop(ev, actions, **kw):
    """drive() with a stop price as the last element of each order action."""
    bt = Backtest(ev, None, **kw)
    ids = []
    for t, name, price, qty, tif, stop in actions:
        if t > bt.now:
            bt.elapse(t - bt.now)
        ids.append(getattr(bt, name)(price, qty, tif, stop=stop))
    while bt.elapse(10**12):
        pass
    return bt.result(), ids


def test_stop_limit_rests_after_its_trigger_and_the_mid_trigger():
    ev = events(
        (1, SET, 0, B, 96, 5),
        (1, SET, 0, S, 100, 5),
        # t=2: sell stop-limit 1, stop 98, limit 97
        (10, TRADE, 0, S, 98, 1),    # at the stop: triggered; 97 does not reach the bid at 96: rests
        (20, TRADE, 0, B, 98, 1),    # a buy print through 97: fills at 97 (maker)
    )
    res, (oid,) = _drive_stop(ev, [(2, "sell", 97, 1, GTC, 98)])
    assert fills(res) == [(20, oid, 1, 97, True)]
    assert [s for s, _ in states(res, oid)] == ["NEW", "ACCEPTED", "TRIGGERED", "FILLED"]
    # with trigger="mid" the stop ignores the print at 98 (mid 100) and waits for the venue
    # mid: an ask at 100 at t=30 makes it (96 + 100) / 2 = 98
    ev2 = events((1, SET, 0, B, 96, 5), (1, SET, 0, S, 104, 5), (10, TRADE, 0, S, 98, 1),
                 (30, SET, 0, S, 100, 5), (40, TRADE, 0, B, 98, 1))
    res2, (oid2,) = _drive_stop(ev2, [(2, "sell", 97, 1, GTC, 98)], trigger="mid")
    trig = res2.orders[res2.orders["state"] == OrderState.TRIGGERED]
    assert trig["ts_exch"].tolist() == [30]


def test_day_and_gtd_expire_at_their_venue_times():
    ev = events((1, SET, 0, B, 96, 5), (100, SET, 0, B, 96, 6))
    bt = Backtest(ev, None, session_end=50, latency=Constant(0, 3))
    day = bt.buy(90, 1, tif=DAY)
    gtd = bt.buy(91, 1, tif=GTD, expire_ns=30)
    late = bt.buy(92, 1, tif=GTD, expire_ns=1)  # expired on arrival
    while bt.elapse(10**9):
        pass
    res = bt.result()
    exp = res.orders[res.orders["state"] == OrderState.EXPIRED]
    assert sorted(zip(exp["order_id"].tolist(), exp["ts_exch"].tolist())) == [(day, 50), (gtd, 30), (late, 1)]
    assert np.all(exp["ts_local"] == exp["ts_exch"] + 3)
    with pytest.raises(ValueError, match="GTD"):
        bt2 = Backtest(ev, None)
        bt2.buy(90, 1, tif=GTC, expire_ns=30)
    # DAY without a session end is refused by the venue as invalid
    res3, (oid,) = drive(ev, [(1, "buy", 90, 1, DAY)])
    assert states(res3, oid)[-1] == ("REJECTED", "INVALID")


def test_halt_refuses_what_would_trade_and_matches_nothing_until_trading_resumes():
    ev = events(
        (1, SET, 0, S, 103, 5),
        (5, STATUS, 0, 0, 0, TradingStatus.HALT),
        (8, TRADE, 0, S, 95, 1),     # through the user's bid at 100, but halted: no fill
        (10, STATUS, 0, 0, 0, TradingStatus.TRADING),
        (12, TRADE, 0, S, 95, 1),    # now it fills
    )
    res, (ioc, gtc) = drive(ev, [(6, "buy", 103, 1, IOC), (6, "buy", 100, 1, GTC)])
    assert states(res, ioc)[-1] == ("REJECTED", "HALTED")
    assert states(res, gtc)[:2] == [("NEW", "NONE"), ("ACCEPTED", "NONE")]
    assert fills(res) == [(12, gtc, 1, 100, True)]


def test_trend_following_enters_with_the_crossover_and_places_its_protective_stop():
    ev = read_parquet("data/sample.parquet").array
    strat = TrendFollowing(fast=5, slow=20, order_qty=1, stop_ticks=2, interval_ns=5_000_000)
    res = Backtest(ev, strat, latency=Constant(100_000)).run()
    o = res.orders
    assert len(res.fills) > 2 and np.all(np.abs(res.fills["position"]) <= 1)
    entries = res.fills[~res.fills["maker"]]
    assert len(entries) >= 2
    # every protective stop is on the other side of the position it protects, stop_ticks away
    triggered = o[o["state"] == OrderState.TRIGGERED]
    assert len(triggered) > 0, "the protective stops must have fired on this sample"
    for row in triggered:
        before = res.fills[res.fills["ts_exch"] < row["ts_exch"]]
        assert len(before) and np.sign(before["position"][-1]) == -int(row["side"])
    with pytest.raises(ValueError, match="slow"):
        TrendFollowing(fast=5, slow=5)
    assert TrendFollowing.target_position(1, 2, 0) == 2 and TrendFollowing.target_position(1, 2, 1) == 0
    assert TrendFollowing.target_position(-1, 2, 1) == -2 and TrendFollowing.target_position(0, 2, 0) == 0
