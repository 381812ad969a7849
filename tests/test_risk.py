"""The pre-trade risk gateway and kill switch (lobsim.RiskLimits, Backtest(risk=)) on hand-built
scenarios, the risk metrics (VaR/CVaR, turnover, exposure) by hand, and hypothesis: with any
RiskLimits, the position never exceeds max_position and no order breaking a limit reaches the venue.

Raw arrays run with the default instrument (tick 1, lot 1): one lot moving one tick is worth 1.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim import (Backtest, BacktestResult, EventKind, Instrument, OrderState, RejectReason, RiskBreach,
                    RiskLimits, Side, Strategy, TimeInForce)
from lobsim.latency import Constant
from lobsim.metrics import compute
from lobsim.metrics._compute import historical_var

sys.path.insert(0, str(Path(__file__).parent))
from test_venue_properties import l2_stream, l3_stream, random_actions  # noqa: E402
from test_venue_scenarios import events, states  # noqa: E402

ADD, DEL = EventKind.ADD, EventKind.DELETE
B, S = Side.BID, Side.ASK
GTC, POST, MKT = TimeInForce.GTC, TimeInForce.POST_ONLY, TimeInForce.MARKET


def book(*extra):
    """bid 99 x 10 / ask 101 x 10 at t=1 (mid 100), then `extra` rows."""
    return events((1, ADD, 1, B, 99, 10), (1, ADD, 2, S, 101, 10), *extra, (1000, ADD, 99, B, 90, 1))


def pull(ev, risk, actions, **kw):
    """Pull style with risk limits: each action (t, method, *args) at local time t."""
    bt = Backtest(ev, None, risk=risk, **kw)
    out = []
    for t, name, *args in actions:
        if t > bt.now:
            bt.elapse(t - bt.now)
        out.append(getattr(bt, name)(*args))
    while bt.elapse(10**12):
        pass
    return bt.result(), out


def refused(res, oid, limit, ts=None):
    """oid was refused by the gateway for `limit`: NEW + REJECTED (RISK) at once, nothing at the venue
    (later refused modifies of that id are order updates of their own, request MODIFY)."""
    rows = res.orders[(res.orders["order_id"] == oid) & (res.orders["request"] == 0)]
    assert [(OrderState(int(r["state"])).name, RejectReason(int(r["reason"])).name) for r in rows] == \
        [("NEW", "NONE"), ("REJECTED", "RISK")]
    assert rows["ts_exch"][0] == rows["ts_local"][0] == rows["ts_local"][1]  # never left the user's side
    assert oid not in res.fills["order_id"]
    rej = res.risk_rejections[(res.risk_rejections["order_id"] == oid) & (res.risk_rejections["request"] == 0)]
    assert list(rej["limit"]) == [limit]
    if ts is not None:
        assert rej["ts"][0] == ts


def accepted(res, oid):
    return ("ACCEPTED", "NONE") in states(res, oid)


# -- RiskLimits ---------------------------------------------------------------------------

def test_risk_limits_validate_naming_the_parameter():
    assert RiskLimits().to_dict()["max_position"] is None
    r = RiskLimits(max_position=5, max_notional=1e4, max_price_deviation_ticks=2.5, flatten_on_breach=True)
    assert (r.max_position, r.max_notional, r.max_price_deviation_ticks, r.flatten_on_breach) == (5, 1e4, 2.5, True)
    for name in ("max_position", "max_order_qty", "max_open_orders", "max_notional", "max_price_deviation_ticks",
                 "max_loss", "max_drawdown"):
        with pytest.raises(ValueError, match=name):
            RiskLimits(**{name: 0})
        with pytest.raises(ValueError, match=name):
            RiskLimits(**{name: -1})
        with pytest.raises(TypeError, match=name):
            RiskLimits(**{name: "5"})
        with pytest.raises(TypeError, match=name):
            RiskLimits(**{name: True})
    with pytest.raises(ValueError, match="max_position"):
        RiskLimits(max_position=1.5)
    with pytest.raises(ValueError, match="max_loss"):
        RiskLimits(max_loss=float("nan"))
    with pytest.raises(TypeError, match="flatten_on_breach"):
        RiskLimits(flatten_on_breach=1)
    with pytest.raises(TypeError, match="risk"):
        Backtest(book(), None, risk={"max_position": 1})


def test_no_limits_changes_nothing():
    acts = [(1, "buy", 99, 3), (1, "sell", 101, 2), (5, "modify", 1, 98, 4)]
    a, _ = pull(book(), None, acts)
    b, out = pull(book(), RiskLimits(), acts)
    assert out[2] is True
    for name in ("fills", "orders", "position"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert len(b.risk_rejections) == 0 and b.breach is None and a.breach is None


# -- each pre-trade limit -----------------------------------------------------------------

def test_max_position_counts_the_open_orders_on_that_side():
    # t=1: buy 2 @ 99 rests (worst case +2); buy 2 more would be +4 > 3: refused;
    # buy 1 fits (+3); a sell of 5 is -5 < -3: refused, a sell of 3 fits (the buys don't offset it)
    res, (a, b, c, d, e) = pull(book(), RiskLimits(max_position=3), [
        (1, "buy", 99, 2), (1, "buy", 99, 2), (1, "buy", 98, 1), (1, "sell", 102, 5), (1, "sell", 102, 3)])
    assert accepted(res, a) and accepted(res, c) and accepted(res, e)
    refused(res, b, "max_position", ts=1)
    refused(res, d, "max_position")
    assert (b, d) == (2, 4)  # the ids are consumed as usual


def test_max_position_counts_the_known_position_and_frees_room_as_orders_end():
    # buy 3 at market: position 3 = the limit; another buy is refused; a sell of 6 fits (3 - 6 = -3);
    # while its cancel is unanswered a second sell of 6 is refused; once answered it fits
    res, (a, b, c, _, d, e) = pull(book(), RiskLimits(max_position=3), [
        (1, "buy", None, 3, MKT), (2, "buy", 98, 1), (2, "sell", 105, 6), (3, "cancel", 3), (3, "sell", 105, 6),
        (4, "sell", 105, 6)])
    assert res.fills["position"].tolist() == [3]
    refused(res, b, "max_position")
    assert accepted(res, c) and states(res, c)[-1] == ("CANCELLED", "NONE")
    refused(res, d, "max_position")
    assert accepted(res, e)


def test_max_order_qty():
    res, (a, b) = pull(book(), RiskLimits(max_order_qty=5), [(1, "buy", 98, 6), (1, "buy", 98, 5)])
    refused(res, a, "max_order_qty")
    assert accepted(res, b)


def test_max_notional_uses_the_instruments_value_and_the_touch_for_market_orders():
    inst = Instrument("X", "0.25", "2")  # 0.5 currency per lot per tick
    # notional = qty * price * 0.5: buy 2 @ 99 = 99 <= 100; buy 3 @ 99 = 148.5 > 100;
    # a market buy of 2 is valued at the local ask 101: 101 > 100
    res, (a, b, c, d) = pull(book(), RiskLimits(max_notional=100), [
        (1, "buy", 99, 2), (1, "buy", 99, 3), (1, "buy", None, 2, MKT), (1, "sell", None, 2, MKT)],
        instrument=inst)
    assert accepted(res, a)
    refused(res, b, "max_notional")
    refused(res, c, "max_notional")
    assert accepted(res, d)  # sold at the bid 99: 99 <= 100


def test_max_open_orders_counts_unanswered_orders():
    lat = Constant(10)  # answers come back 20 ns later: the orders are still NEW for the strategy
    res, ids = pull(book(), RiskLimits(max_open_orders=2), [
        (1, "buy", 98, 1), (1, "sell", 103, 1), (1, "buy", 97, 1), (2, "cancel", 1), (30, "buy", 97, 1)],
        latency=lat)
    a, b, c, _, d = ids
    assert accepted(res, a) and accepted(res, b)
    refused(res, c, "max_open_orders")
    assert accepted(res, d)  # order 1's CANCELLED reached the strategy at t=22: room again


def test_price_band_from_the_local_mid():
    # mid 100; band 3: 97..103 pass, 96 and 104 are refused; a market order is checked at the touch
    res, ids = pull(book(), RiskLimits(max_price_deviation_ticks=3), [
        (1, "buy", 97, 1), (1, "buy", 96, 1), (1, "sell", 103, 1), (1, "sell", 104, 1), (1, "buy", None, 1, MKT)])
    a, b, c, d, e = ids
    assert accepted(res, a) and accepted(res, c) and accepted(res, e)
    refused(res, b, "max_price_deviation_ticks")
    refused(res, d, "max_price_deviation_ticks")


def test_price_band_refuses_every_order_while_the_local_book_has_no_mid():
    ev = events((1, ADD, 1, B, 99, 10), (10, ADD, 2, S, 101, 10), (20, ADD, 3, B, 90, 1))
    res, (a, b, c) = pull(ev, RiskLimits(max_price_deviation_ticks=3), [
        (1, "buy", 99, 1), (1, "sell", None, 1, MKT), (10, "buy", 99, 1)])
    refused(res, a, "max_price_deviation_ticks")
    refused(res, b, "max_price_deviation_ticks")
    assert accepted(res, c)


def test_the_first_broken_limit_is_named_and_rejections_reach_a_listening_strategy_at_once():
    seen = []

    class S1(Strategy):
        def on_start(self, ctx):
            self.oid = ctx.buy(50, 100)  # breaks max_order_qty, max_price_deviation_ticks, max_position
            seen.append(("open", dict(ctx.open_orders())))

        def on_order(self, ctx, update):
            seen.append((ctx.now, int(update["order_id"]), OrderState(int(update["state"])).name,
                         RejectReason(int(update["reason"])).name))

    res = Backtest(book(), S1(), risk=RiskLimits(max_position=5, max_order_qty=10,
                                                 max_price_deviation_ticks=3)).run()
    refused(res, 1, "max_order_qty")
    assert seen == [("open", {}), (1, 1, "REJECTED", "RISK")]  # never listed as open; delivered at t=1


def test_a_modify_that_breaks_a_limit_is_not_sent_and_the_order_stays():
    # a modify's worst case on max_position: leaves - 1 (filled meanwhile) + the new qty
    res, (a, ok, bad, bad2) = pull(book(), RiskLimits(max_position=3, max_order_qty=4), [
        (1, "buy", 98, 2), (2, "modify", 1, 97, 2), (3, "modify", 1, 97, 5), (3, "modify", 1, 97, 3)])
    assert ok is True and bad is False and bad2 is False
    rows = res.orders[(res.orders["order_id"] == a)]
    assert [(OrderState(int(r["state"])).name, int(r["request"]), int(r["price"]), int(r["leaves_qty"]))
            for r in rows] == [("NEW", 0, 98, 2), ("ACCEPTED", 0, 98, 2), ("ACCEPTED", 2, 97, 2),
                               ("REJECTED", 2, 97, 2), ("REJECTED", 2, 97, 2)]  # refused modifies: order unchanged
    refusals = rows[rows["state"] == OrderState.REJECTED]
    assert set(refusals["reason"].tolist()) == {RejectReason.RISK} and refusals["ts_local"].tolist() == [3, 3]
    rej = res.risk_rejections
    assert [(int(r["ts"]), int(r["order_id"]), int(r["request"]), int(r["qty"]), str(r["limit"])) for r in rej] == [
        (3, a, 2, 5, "max_order_qty"), (3, a, 2, 3, "max_position")]


def test_a_modify_pending_counts_its_worst_case():
    # the modify's answer takes 20 ns: meanwhile the order could fill all but 1 lot then re-arm
    # with the new qty: worst case 2 - 1 + 2 = 3 on the bid side; a further buy of 1 breaks 3
    res, (a, ok, b, c) = pull(book(), RiskLimits(max_position=3), [
        (1, "buy", 98, 2), (30, "modify", 1, 97, 2), (31, "buy", 96, 1), (60, "buy", 96, 1)],
        latency=Constant(10))
    assert ok is True
    refused(res, b, "max_position")
    assert accepted(res, c)  # the modify's answer arrived (t=50): worst case 2 + 1


# -- the kill switch ------------------------------------------------------------------------

class Loser(Strategy):
    """Buys 2 at market at the start, rests a buy @ 90 and a sell @ 110, and records every callback."""

    interval_ns = 10

    def __init__(self):
        self.calls = []

    def on_start(self, ctx):
        self.calls.append(("start", ctx.now))
        ctx.buy(None, 2, tif=MKT)
        ctx.sell(110, 1)
        ctx.buy(90, 1)

    def on_timer(self, ctx):
        self.calls.append(("timer", ctx.now))
        ctx.buy(80, 1)  # keeps trying: must never be called after the breach

    def on_fill(self, ctx, fill):
        self.calls.append(("fill", ctx.now))

    def on_order(self, ctx, update):
        self.calls.append(("order", ctx.now))

    def on_book(self, ctx):
        self.calls.append(("book", ctx.now))

    def on_stop(self, ctx):
        self.calls.append(("stop", ctx.now))


def falling():
    # bought 2 @ 101 at t=1 (cash -202); the bid falls to 95 at t=15: mid 98, equity -202 + 196 = -6
    return book((15, DEL, 1, 0, 0, 0), (15, ADD, 3, B, 95, 10))


@pytest.mark.parametrize("flatten", [False, True])
def test_max_loss_cancels_everything_stops_the_strategy_and_records_the_breach(flatten):
    k = Loser()
    res = Backtest(falling(), k, risk=RiskLimits(max_loss=5, flatten_on_breach=flatten)).run()
    # wake-ups at 11 (equity -2: fine) and 21 (equity -6 < -5: breach, before on_timer)
    assert res.breach == RiskBreach(ts=21, limit="max_loss", equity=-6.0, peak=0.0, position=2, cash=-202.0)
    assert all(t <= 11 for _, t in k.calls)  # no callback after the breach, on_stop included
    assert [c for c in k.calls if c[0] in ("timer", "stop")] == [("timer", 11)]
    # the strategy's resting orders (2, 3 and the timer's 4 @ 80) are cancelled at the breach
    for oid in (2, 3, 4):
        assert states(res, oid)[-1] == ("CANCELLED", "NONE")
        assert res.orders["ts_exch"][(res.orders["order_id"] == oid) & (res.orders["state"] == 4)][0] == 21
    new = res.orders[(res.orders["state"] == 0)]
    if flatten:
        # once the cancels are answered: a market sell of the 2 lots, filled at the bid 95
        assert new["order_id"].tolist() == [1, 2, 3, 4, 5]
        f = res.fills[res.fills["order_id"] == 5]
        assert (int(f["side"][0]), int(f["price"][0]), int(f["qty"][0]), int(f["ts_exch"][0])) == (-1, 95, 2, 21)
        assert int(new["tif"][-1]) == MKT
        assert res.position["position"][-1] == 0 and res.fills["position"][-1] == 0
    else:
        assert new["order_id"].tolist() == [1, 2, 3, 4]
        assert res.position["position"][-1] == 2
    assert "max_loss breached at local time 21 ns" in res.summary()


def test_max_drawdown_from_the_running_peak():
    # bought 2 @ 101 (t=1); the ask rises and bid follows: mid 110 at t=15 (equity +18, peak 18 at
    # the t=21 wake-up); mid 101 at t=35: equity 0 < 18 - 10 -> breach at t=41
    ev = book((15, DEL, 1, 0, 0, 0), (15, DEL, 2, 0, 0, 0), (15, ADD, 3, B, 109, 5), (15, ADD, 4, S, 111, 5),
              (35, DEL, 3, 0, 0, 0), (35, DEL, 4, 0, 0, 0), (35, ADD, 5, B, 100, 5), (35, ADD, 6, S, 102, 5))
    k = Loser()
    res = Backtest(ev, k, risk=RiskLimits(max_drawdown=10, max_loss=50)).run()
    assert res.breach == RiskBreach(ts=41, limit="max_drawdown", equity=0.0, peak=18.0, position=2, cash=-202.0)
    assert [c for c in k.calls if c[0] == "timer"] == [("timer", 11), ("timer", 21), ("timer", 31)]


def test_no_breach_no_record_and_orders_after_a_breach_are_refused_in_pull_style():
    res = Backtest(book(), Loser(), risk=RiskLimits(max_loss=50)).run()
    assert res.breach is None
    res, out = pull(falling(), RiskLimits(max_loss=5), [
        (1, "buy", None, 2, MKT), (20, "buy", 90, 1), (30, "buy", 90, 1), (30, "modify", 2, 91, 1)])
    assert res.breach.ts == 20 and res.breach.limit == "max_loss"  # the elapse to t=20 woke it
    refused(res, 2, "kill_switch")
    refused(res, 3, "kill_switch")
    assert out[3] is False


def test_detection_happens_at_deliveries_when_the_strategy_has_no_timer():
    class Taker(Strategy):
        def on_start(self, ctx):
            ctx.buy(None, 2, tif=MKT)
            ctx.sell(99, 1)  # a sell below the mid... crosses the bid: taker fill at 99

    # fills: buy 2 @ 101, sell 1 @ 99: cash -202 + 99 = -103, position 1 at mid 100: equity -3
    res = Backtest(book(), Taker(), risk=RiskLimits(max_loss=2.5)).run()
    assert res.breach is not None and res.breach.ts == 1 and res.breach.equity == -3.0


# -- metrics ------------------------------------------------------------------------------

def test_historical_var_and_cvar_by_hand():
    d = np.array([3.0, -1.0, -4.0, 2.0, -2.0, 0.0, 1.0, -6.0, 5.0, -3.0] * 2)  # n = 20
    # losses sorted: 6, 6, 4, 4, 3, 3, 2, 2, ...; 95%: m = ceil(20 * 0.05) = 1; 99%: m = 1
    assert historical_var(d, 95) == (6.0, 6.0)
    d = np.arange(-50.0, 50.0)  # n = 100: losses 50, 49, ..., 95%: m = 5 -> VaR 46, CVaR 48
    assert historical_var(d, 95) == (46.0, 48.0)
    assert historical_var(d, 99) == (50.0, 50.0)
    assert historical_var(np.array([1.0, 2.0]), 95) == (-1.0, -1.0)  # even the worst interval gained
    assert all(math.isnan(v) for v in historical_var(np.empty(0), 95))


def test_risk_metrics_on_a_run_by_hand():
    # bought 2 @ 101 at t=1, sold 2 @ 95 at t=21 (flatten); the data spans [1, 1000]
    res = Backtest(falling(), Loser(), risk=RiskLimits(max_loss=5, flatten_on_breach=True), sample_ns=10).run()
    m = res.metrics
    assert m["traded_value"] == 202 + 190
    assert m["turnover_per_day"] == pytest.approx(392 / (999 / 86_400e9))
    assert m["exposure"] == pytest.approx((21 - 1) / 999)
    assert m["risk_rejections"] == 0
    # equity samples every 10 ns from t=1: -2 (t 1, 11), -6 (t 21: the breach's fill... see curve)
    from lobsim.metrics import equity_curve

    _, eq = equity_curve(res)
    d = np.diff(eq)
    losses = np.sort(-d)[::-1]
    m95 = -(-len(d) * 5 // 100)
    assert m["var_95"] == losses[m95 - 1] and m["cvar_95"] == pytest.approx(losses[:m95].mean())
    assert m["var_99"] == losses[0]
    text = res.summary()
    for key in ("var_95", "cvar_99", "turnover_per_day", "exposure", "risk_rejections"):
        assert key in text


def test_risk_rejections_and_breach_round_trip_through_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    res = Backtest(falling(), Loser(), risk=RiskLimits(max_loss=5, max_order_qty=1)).run()
    assert len(res.risk_rejections) == 1 and res.metrics["risk_rejections"] == 1  # the market buy of 2
    back = BacktestResult.from_parquet(res.to_parquet(tmp_path / "r"))
    assert back.risk_rejections.tobytes() == res.risk_rejections.tobytes()
    assert back.breach == res.breach
    assert back.params["risk"]["max_loss"] == 5.0


# -- hypothesis -----------------------------------------------------------------------------

limits = st.builds(
    RiskLimits,
    max_position=st.none() | st.integers(1, 8),
    max_order_qty=st.none() | st.integers(1, 5),
    max_notional=st.none() | st.sampled_from([150.0, 300.0, 500.0]),
    max_open_orders=st.none() | st.integers(1, 4),
    max_price_deviation_ticks=st.none() | st.sampled_from([1, 2.5, 4]),
    max_loss=st.none() | st.sampled_from([5.0, 20.0]),
    max_drawdown=st.none() | st.sampled_from([5.0, 20.0]),
    flatten_on_breach=st.booleans(),
)


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**31), l3=st.booleans(), risk=limits, latency=st.sampled_from([0, 7, 40]))
def test_any_limits_hold_at_every_row_and_nothing_breaking_one_reaches_the_venue(seed, l3, risk, latency):
    ev = l3_stream(seed, 400) if l3 else l2_stream(seed, 400)
    acts = random_actions(seed, ev, 40)
    bt = Backtest(ev, None, risk=risk, latency=Constant(latency))
    sent = {}  # order id -> local mid2 when sent (bid + ask; None without a mid)
    modifies = []  # (id, price, qty, mid2) of the modifies that were sent
    for t, name, *args in acts:
        if t > bt.now and not bt.elapse(t - bt.now):
            break
        bid, ask = bt.best_bid(), bt.best_ask()
        mid2 = bid[0] + ask[0] if bid and ask else None
        known = name == "modify" and args[0] in bt.open_orders()
        out = getattr(bt, name)(*args)
        if name in ("buy", "sell"):
            sent[out] = mid2
        elif known and out:  # (a modify of an id not known open is sent: the venue refuses it)
            modifies.append((args[0], args[1], args[2], mid2))
    while bt.elapse(10**12):
        pass
    res = bt.result()
    o = res.orders
    if risk.max_position is not None:
        assert np.abs(res.position["position"]).max(initial=0) <= risk.max_position
        assert np.abs(res.fills["position"]).max(initial=0) <= risk.max_position
    # refusals: exactly the RISK rejections, nothing of them at the venue
    rej = res.risk_rejections
    risk_ids = set(o["order_id"][(o["reason"] == RejectReason.RISK) & (o["request"] == 0)].tolist())
    assert risk_ids == set(rej["order_id"][rej["request"] == 0].tolist())
    reached = o[(o["request"] == 0) & np.isin(o["state"], [1, 2, 3, 4, 6])]  # at the venue
    assert not risk_ids & set(reached["order_id"].tolist())
    assert not risk_ids & set(res.fills["order_id"].tolist())
    flatten = set()
    if res.breach is not None:
        late = o[(o["state"] == 0) & (o["ts_local"] >= res.breach.ts)]  # the flatten may go out at the breach time
        flatten = set(late["order_id"][late["reason"] == 0].tolist()) - risk_ids
        assert all(int(r["tif"]) == MKT for r in late if int(r["order_id"]) in flatten)
    # every order that reached the venue kept the static limits (the flatten is the gateway's own)
    new = o[(o["state"] == 0) & (o["request"] == 0)]
    for r in new:
        oid = int(r["order_id"])
        if oid in risk_ids or oid in flatten or int(r["qty"]) <= 0:
            continue
        if risk.max_order_qty is not None:
            assert r["qty"] <= risk.max_order_qty
        if risk.max_notional is not None and int(r["tif"]) != MKT:
            assert abs(int(r["price"])) * int(r["qty"]) <= risk.max_notional
        if risk.max_price_deviation_ticks is not None and int(r["tif"]) != MKT:
            assert sent[oid] is not None and abs(2 * int(r["price"]) - sent[oid]) <= 2 * risk.max_price_deviation_ticks
    for oid, price, qty, mid2 in modifies:
        if qty <= 0:
            continue
        if risk.max_order_qty is not None:
            assert qty <= risk.max_order_qty
        if risk.max_notional is not None:
            assert abs(price) * qty <= risk.max_notional
        if risk.max_price_deviation_ticks is not None:
            assert mid2 is not None and abs(2 * price - mid2) <= 2 * risk.max_price_deviation_ticks
    # never more orders resting at the venue at once than max_open_orders
    if risk.max_open_orders is not None:
        at = o[np.isin(o["state"], [1, 2, 3, 4, 5, 6])]
        live, peak = set(), 0
        for r in at[np.argsort(at["ts_exch"], kind="stable")]:
            oid, state = int(r["order_id"]), int(r["state"])
            if state in (1, 2) and int(r["request"]) != 2:
                live.add(oid)
            elif state in (3, 4, 5, 6) and not (state == 5 and int(r["request"]) != 0):
                live.discard(oid)
            peak = max(peak, len(live))
        assert peak <= risk.max_open_orders


def test_orders_counts_leave_out_the_gateways_refusals():
    res, _ = pull(book(), RiskLimits(max_order_qty=2), [(1, "buy", 98, 3), (1, "buy", 98, 1), (1, "sell", 103, 0)])
    m = res.metrics
    assert (m["orders"], m["orders_accepted"], m["orders_rejected"], m["risk_rejections"]) == (2, 1, 1, 1)


def test_readme_risk_example_prints_what_it_says(capsys):
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    backtesting = text[text.index("## Backtesting (the simulated venue)"):]
    first = re.search(r"```python\n(.*?)```", backtesting, re.S).group(1)  # defines Quoter
    code = re.search(r"```python\n(.*?)```", text[text.index("### Risk limits"):], re.S).group(1)
    expected = re.findall(r"^# (.*)$", code, re.M)
    assert len(expected) == 3
    ns = {}
    sample = repr(str(root / "data" / "sample.parquet"))
    for c in (first, code):
        exec(compile(c.replace('"data/sample.parquet"', sample), "README.md", "exec"), ns)
    assert capsys.readouterr().out.strip().splitlines()[-3:] == expected
