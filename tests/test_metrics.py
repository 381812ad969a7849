"""lobsim.metrics: every metric on hand-computed cases, the simulator's markouts and samples
against an independent replay, and the Backtest parameters that feed them."""
import math
from pathlib import Path

import numpy as np
import pytest

import lobsim
from lobsim import (FILLS_DTYPE, ORDERS_DTYPE, POSITION_DTYPE, Backtest, BacktestResult, EventKind, Fees, Flag,
                    Instrument, OrderState, RejectReason, Strategy, TimeInForce)
from lobsim.latency import Constant
from lobsim.metrics import (MARKOUTS_DTYPE, YEAR_NS, compute, equity_curve, horizon_name, metric_info,
                            per_fill_markouts)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
NEW, ACC, PART, FILLED, CXL, REJ = (OrderState.NEW, OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED,
                                    OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED)
RQ_NEW, RQ_CANCEL, RQ_MODIFY = 0, 1, 2


def table(dtype, rows, names):
    a = np.zeros(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        for name, v in zip(names, r):
            a[i][name] = v
    return a


# ---------------------------------------------------------------------------
# The hand-computed case. Instrument: tick 0.25, lot 2 -> one lot moving one
# tick is worth 0.5 (value_per_tick_lot). Data span [0, 60] ns, samples every
# 10 ns, markout horizons 5 ns and 15 ns.
#
# fills (ts, order, side, price, qty, maker, fee) and the position after:
#   f1 10  o1 buy  100 x2 maker -0.10   -> +2  avg 100
#   f2 20  o2 buy  102 x1 maker -0.05   -> +3  avg 302/3
#   f3 30  o3 sell 104 x4 taker +0.40   -> -1  closes 3: realized 3*(104-302/3) = 10 ticks*lots; opens -1 at 104
#   f4 40  o4 buy  101 x1 maker -0.05   ->  0  closes 1 short: (101-104)*1*(-1) = +3
#   f5 50  o5 sell 103 x1 taker +0.10   -> -1  avg 103
# cash after each (-side*price*qty*0.5 - fee): -99.9, -150.85, 56.75, 6.3, 57.7
# ---------------------------------------------------------------------------
INST = Instrument("HAND", "0.25", "2")
FILLS = [  # ts_exch, order_id, side, price, qty, maker, fee, position, cash
    (10, 1, 1, 100, 2, True, -0.10, 2, -99.9),
    (20, 2, 1, 102, 1, True, -0.05, 3, -150.85),
    (30, 3, -1, 104, 4, False, 0.40, -1, 56.75),
    (40, 4, 1, 101, 1, True, -0.05, 0, 6.3),
    (50, 5, -1, 103, 1, False, 0.10, -1, 57.7),
]
# equity samples: ts, position, cash, bid, ask (t=50: the book is empty -> the mid 101 of t=40 carries)
SAMPLES = [
    (0, 0, 0.0, 99, 101),       # mid 100   equity 0
    (10, 2, -99.9, 100, 102),   # mid 101   -99.9 + 2*101*0.5   = 1.1
    (20, 3, -150.85, 100, 102),  # mid 101  -150.85 + 3*101*0.5 = 0.65
    (30, -1, 56.75, 102, 104),  # mid 103   56.75 - 103*0.5     = 5.25
    (40, 0, 6.3, 100, 102),     # mid 101   6.3
    (50, -1, 57.7, 0, 0),       # mid 101   57.7 - 101*0.5      = 7.2
    (60, -1, 57.7, 102, 103),   # mid 102.5 57.7 - 102.5*0.5    = 6.45
]
EQUITY = [0.0, 1.1, 0.65, 5.25, 6.3, 7.2, 6.45]
# orders rows: ts_exch, order_id, side, state, reason, price, qty, leaves_qty, request
ORDERS = [
    (5, 1, 1, NEW, 0, 100, 2, 2, RQ_NEW), (5, 1, 1, ACC, 0, 100, 2, 2, RQ_NEW),
    (10, 1, 1, FILLED, 0, 100, 2, 0, RQ_NEW),
    (6, 9, 1, NEW, 0, 99, 1, 1, RQ_NEW), (6, 9, 1, ACC, 0, 99, 1, 1, RQ_NEW),
    (7, 9, 1, CXL, 0, 99, 1, 1, RQ_CANCEL),  # inside o1's time
    (9, 10, 1, NEW, 0, 98, 1, 1, RQ_NEW), (9, 10, 1, ACC, 0, 98, 1, 1, RQ_NEW),
    (17, 10, 1, CXL, 0, 98, 1, 1, RQ_CANCEL),
    (15, 2, 1, NEW, 0, 102, 3, 3, RQ_NEW), (15, 2, 1, ACC, 0, 102, 3, 3, RQ_NEW),
    (20, 2, 1, PART, 0, 102, 3, 2, RQ_NEW),
    (25, 2, 1, PART, 0, 101, 5, 4, RQ_MODIFY),  # modified to 4 open: qty follows (1 filled + 4) = 5
    (35, 2, 1, CXL, 0, 101, 5, 4, RQ_CANCEL),
    (36, 2, 1, REJ, RejectReason.TOO_LATE, 0, 0, 0, RQ_CANCEL),  # a late second cancel: no effect
    (30, 3, -1, NEW, 0, 104, 4, 4, RQ_NEW), (30, 3, -1, ACC, 0, 104, 4, 4, RQ_NEW),
    (30, 3, -1, FILLED, 0, 104, 4, 0, RQ_NEW),  # a taker: rests for no time
    (38, 4, 1, NEW, 0, 101, 1, 1, RQ_NEW), (38, 4, 1, ACC, 0, 101, 1, 1, RQ_NEW),
    (40, 4, 1, FILLED, 0, 101, 1, 0, RQ_NEW),
    (42, 6, -1, NEW, 0, 110, 3, 3, RQ_NEW), (42, 6, -1, ACC, 0, 110, 3, 3, RQ_NEW),  # rests to the end
    (44, 7, 1, NEW, 0, 90, 1, 1, RQ_NEW), (44, 7, 1, REJ, RejectReason.WOULD_CROSS, 90, 1, 0, RQ_NEW),
    (50, 5, -1, NEW, 0, 103, 1, 1, RQ_NEW), (50, 5, -1, ACC, 0, 103, 1, 1, RQ_NEW),
    (50, 5, -1, FILLED, 0, 103, 1, 0, RQ_NEW),
    (52, 99, 0, REJ, RejectReason.UNKNOWN_ORDER, 0, 0, 0, RQ_CANCEL),
]
# venue bid + ask at each fill and 5 / 15 ns after (0 = unknown)
MID2 = [202, 202, 206, 0, 205]
AFTER2 = [[204, 0, 0, 0], [200, 206, 0, 0], [204, 202, 0, 0], [206, 204, 0, 0], [0, 0, 0, 0]]


def hand_result(inventory_limit=3, **over):
    fills = table(FILLS_DTYPE, FILLS, ("ts_exch", "order_id", "side", "price", "qty", "maker", "fee", "position",
                                       "cash"))
    fills["ts_local"] = fills["ts_exch"] + 1
    fill_rows = [(f[0], f[7], f[8], 0.0, 100, 104, 1) for f in FILLS]
    timer = [(25, 3, -150.85, 0.0, 1, 1000, 2)]  # a timer row (local book): never used by the metrics
    rows = sorted(fill_rows + timer + [s[:3] + (0.0,) + s[3:] + (3,) for s in SAMPLES], key=lambda r: (r[0], -r[6]))
    position = table(POSITION_DTYPE, rows, ("ts", "position", "cash", "fees", "bid", "ask", "kind"))
    orders = table(ORDERS_DTYPE, ORDERS, ("ts_exch", "order_id", "side", "state", "reason", "price", "qty",
                                          "leaves_qty", "request"))
    args = dict(fills=fills, orders=orders, position=position, clock_offset_ns=0, instrument=INST, events=100,
                seed=0, markouts=per_fill_markouts(fills, np.array(MID2), np.array(AFTER2), 2), markouts_ns=(5, 15),
                sample_ns=10, data_start_ns=0, data_end_ns=60, inventory_limit=inventory_limit)
    args.update(over)
    return BacktestResult(**args)


@pytest.fixture
def hand():
    return hand_result()


def test_per_fill_markouts_by_hand(hand):
    mk = hand.markouts
    assert mk.dtype == MARKOUTS_DTYPE
    assert mk["ts"].tolist() == [10, 20, 30, 40, 50]
    # spread = side * (mid at fill - price), ticks
    assert mk["spread"][[0, 1, 2, 4]].tolist() == [1.0, -1.0, 1.0, 0.5] and math.isnan(mk["spread"][3])
    # markout = side * (mid after h - price), ticks
    h5, h15 = mk["markout"][:, 0], mk["markout"][:, 1]
    assert h5[:4].tolist() == [2.0, -2.0, 2.0, 2.0] and math.isnan(h5[4])
    assert h15[1:4].tolist() == [1.0, 3.0, 1.0] and math.isnan(h15[0]) and math.isnan(h15[4])
    assert np.isnan(mk["markout"][:, 2:]).all() and (mk["after2"][:, 2:] == 0).all()  # unused horizons


def test_pnl_realized_unrealized_fees_by_hand(hand):
    m = hand.metrics
    assert m["fees"] == pytest.approx(0.30)                     # -0.1 - 0.05 + 0.4 - 0.05 + 0.1
    assert m["realized_pnl"] == pytest.approx((10 + 3) * 0.5)   # 13 ticks*lots at 0.5 each
    # final position -1 at average cost 103, final mid 102.5 (the last sample): (102.5 - 103) * -1 * 0.5
    assert m["unrealized_pnl"] == pytest.approx(0.25)
    assert m["pnl"] == pytest.approx(57.7 - 102.5 * 0.5)        # = 6.45, the last equity sample
    assert m["pnl"] == pytest.approx(m["realized_pnl"] + m["unrealized_pnl"] - m["fees"])


def test_equity_curve_sharpe_sortino_drawdown_calmar_by_hand(hand):
    ts, eq = equity_curve(hand)
    assert ts.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert eq == pytest.approx(EQUITY)
    d = [1.1, -0.45, 4.6, 1.05, 0.9, -0.75]  # per-sample equity changes
    mean = 6.45 / 6
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 5)
    down = math.sqrt((0.45 ** 2 + 0.75 ** 2) / 6)
    ppy = YEAR_NS / 10
    m = hand.metrics
    assert m["periods_per_year"] == ppy
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(ppy))
    assert m["sortino"] == pytest.approx(mean / down * math.sqrt(ppy))
    assert m["max_drawdown"] == pytest.approx(0.75)  # peak 7.2 at t=50, then 6.45 (the earlier dip is 0.45)
    assert m["annual_return"] == pytest.approx(mean * ppy)
    assert m["calmar"] == pytest.approx(mean * ppy / 0.75)
    # a given periods_per_year (e.g. 252 days of 6.5 h at 10 ns) replaces the 24/7 default
    p = 252 * 6.5 * 3600e9 / 10
    m2 = compute(hand, periods_per_year=p)
    assert m2["sharpe"] == pytest.approx(mean / sd * math.sqrt(p)) and m2["calmar"] == pytest.approx(mean * p / 0.75)


def test_fills_volume_fill_ratio_spread_by_hand(hand):
    m = hand.metrics
    assert (m["fills"], m["maker_fills"], m["taker_fills"]) == (5, 3, 2)
    assert (m["maker_volume"], m["taker_volume"]) == (4, 5)
    assert m["traded_value"] == pytest.approx((200 + 102 + 416 + 101 + 103) * 0.5)
    assert (m["orders"], m["orders_accepted"], m["orders_rejected"]) == (9, 8, 1)
    # posted: o1 2, o9 1, o10 1, o2 5 (largest after its modify), o3 4, o4 1, o6 3, o5 1 = 18; filled 9
    assert m["posted_volume"] == 18
    assert m["fill_ratio"] == pytest.approx(9 / 18)
    # spread captured over the fills with a known mid: (1 - 1 + 1 + 0.5) / 4 ticks; value sum(s * qty) * 0.5
    assert m["spread_captured"] == pytest.approx(1.5 / 4)
    assert m["spread_captured_value"] == pytest.approx((1 * 2 - 1 * 1 + 1 * 4 + 0.5 * 1) * 0.5)


def test_inventory_by_hand(hand):
    # position on [0, 60]: 0 [0,10), 2 [10,20), 3 [20,30), -1 [30,40), 0 [40,50), -1 [50,60]
    m = hand.metrics
    assert m["inventory_mean"] == pytest.approx((20 + 30 - 10 - 10) / 60)
    assert m["inventory_std"] == pytest.approx(math.sqrt(10 * (0.25 + 2.25 + 6.25 + 2.25 + 0.25 + 2.25) / 60))
    assert m["inventory_abs_max"] == 3
    assert m["inventory_limit"] == 3 and m["time_at_limit"] == pytest.approx(10 / 60)
    assert compute(hand, inventory_limit=1)["time_at_limit"] == pytest.approx(40 / 60)
    assert math.isnan(compute(hand_result(inventory_limit=None))["time_at_limit"])
    with pytest.raises(ValueError, match="inventory_limit"):
        compute(hand, inventory_limit=0)
    with pytest.raises(ValueError, match="periods_per_year"):
        compute(hand, periods_per_year=-1)


def test_quote_presence_by_hand(hand):
    m = hand.metrics
    # bids rest [5,10] o1, [6,7] o9, [9,17] o10, [15,35] o2 (modified, then cancelled), [38,40] o4:
    # union [5,35] + [38,40] = 32 of 60
    assert m["quote_presence_bid"] == pytest.approx(32 / 60)
    # asks: o3 and o5 are takers (accepted and filled at once), o6 rests from 42 to the end
    assert m["quote_presence_ask"] == pytest.approx(18 / 60)


def test_markout_means_by_hand(hand):
    m = hand.metrics
    assert m["markout_5ns"] == pytest.approx((2 - 2 + 2 + 2) / 4)
    assert m["markout_15ns"] == pytest.approx((1 + 3 + 1) / 3)
    assert "markout_100ms" not in m  # names follow the run's horizons


def test_metric_names_units_and_order(hand):
    keys = [k for k, _, _ in metric_info(hand)]
    assert list(hand.metrics) == keys
    required = ("pnl fees realized_pnl unrealized_pnl sharpe sortino max_drawdown calmar fills maker_volume "
                "taker_volume fill_ratio spread_captured inventory_mean inventory_std inventory_abs_max "
                "time_at_limit quote_presence_bid quote_presence_ask").split()
    assert set(required) <= set(keys)
    assert [horizon_name(h) for h in (100_000_000, 10**9, 10 * 10**9, 60 * 10**9, 1_500_000_000, 2500, 7)] == \
        ["100ms", "1s", "10s", "60s", "1500ms", "2500ns", "7ns"]
    assert horizon_name(3000) == "3us"


def test_metrics_computed_once(hand):
    assert hand.metrics is hand.metrics


def test_undefined_metrics_are_nan_not_zero():
    empty = hand_result(
        fills=np.zeros(0, FILLS_DTYPE), orders=np.zeros(0, ORDERS_DTYPE), markouts=np.zeros(0, MARKOUTS_DTYPE),
        position=table(POSITION_DTYPE, [(t, 0, 0.0, 0.0, 100, 102, 3) for t in (0, 10, 20)],
                       ("ts", "position", "cash", "fees", "bid", "ask", "kind")))
    m = empty.metrics
    assert (m["pnl"], m["fees"], m["realized_pnl"], m["fills"], m["max_drawdown"]) == (0.0, 0.0, 0.0, 0, 0.0)
    for key in ("sharpe", "sortino", "calmar", "fill_ratio", "spread_captured", "markout_5ns", "markout_15ns"):
        assert math.isnan(m[key]), key
    assert m["quote_presence_bid"] == 0.0 and m["inventory_mean"] == 0.0 and m["time_at_limit"] == 0.0


def test_sortino_nan_without_losses_and_unknown_equity_left_out():
    # position 1 before any mid is known: that sample's equity is unknown and left out
    rows = [(0, 1, -100.0, 0.0, 0, 0, 3), (10, 1, -100.0, 0.0, 100, 102, 3), (20, 1, -100.0, 0.0, 102, 104, 3),
            (30, 1, -100.0, 0.0, 104, 106, 3)]
    r = hand_result(position=table(POSITION_DTYPE, rows, ("ts", "position", "cash", "fees", "bid", "ask", "kind")),
                    inventory_limit=None)
    ts, eq = equity_curve(r)
    vpt = 0.5
    assert ts.tolist() == [10, 20, 30] and eq == pytest.approx([-100 + 101 * vpt, -100 + 103 * vpt,
                                                                -100 + 105 * vpt])
    m = r.metrics
    assert math.isnan(m["sortino"]) and math.isnan(m["calmar"]) and m["max_drawdown"] == 0.0
    assert math.isnan(m["sharpe"])  # equal changes: zero deviation


# ---------------------------------------------------------------------------
# A tiny backtest with known fills (L2, zero latency, pull style): the result
# the simulator builds, end to end through the metrics.
# ---------------------------------------------------------------------------
def events(rows):
    a = lobsim.empty_events(len(rows))
    for i, (ts, kind, side, price, qty) in enumerate(rows):
        a[i]["ts_exch"] = a[i]["ts_local"] = ts
        a[i]["kind"], a[i]["side"], a[i]["price"], a[i]["qty"] = kind, side, price, qty
        a[i]["flags"] = Flag.BATCH_END
    return a


SET, TRADE = EventKind.SET_LEVEL, EventKind.TRADE
TINY = events([
    (1000, SET, 1, 100, 10), (1000, SET, -1, 102, 10),  # 100 / 102
    (2000, TRADE, -1, 100, 12),                         # sells 12 at 100: 10 ahead of us, then our 1
    (2000, SET, 1, 100, 0), (2000, SET, 1, 99, 5),      # 99 / 102
    (2050, SET, -1, 101, 3),                            # 99 / 101
    (2600, SET, -1, 101, 0),                            # 99 / 102
    (3500, SET, 1, 100, 4),                             # 100 / 102
    (4000, SET, -1, 103, 1),                            # 100 / 102 (the last event)
])


@pytest.fixture(scope="module")
def tiny():
    bt = Backtest(TINY, None, sample_ns=500, markouts_ns=(100, 1000, 5000))
    bt.buy(100, 1)
    bt.sell(105, 2)
    while bt.elapse(10_000):
        pass
    return bt.result()


def test_tiny_backtest_records(tiny):
    r = tiny
    assert (r.sample_ns, r.markouts_ns, r.data_start_ns, r.data_end_ns) == (500, (100, 1000, 5000), 1000, 4000)
    assert len(r.fills) == 1 and r.fills[0]["price"] == 100 and r.fills[0]["ts_exch"] == 2000
    s = r.position[r.position["kind"] == 3]
    assert s["ts"].tolist() == list(range(1000, 4001, 500))
    assert (s["bid"] + s["ask"]).tolist() == [202, 202, 201, 200, 201, 202, 202]
    assert s["position"].tolist() == [0, 0, 1, 1, 1, 1, 1]
    mk = r.markouts[0]
    assert mk["ts"] == 2000 and mk["mid2"] == 202  # the book before the trade that filled us
    assert mk["after2"].tolist() == [200, 201, 0, 0]  # at 2100, at 3000; 7000 is past the data
    assert mk["spread"] == 1.0 and mk["markout"][:2].tolist() == [0.0, 0.5] and np.isnan(mk["markout"][2:]).all()


def test_tiny_backtest_metrics(tiny):
    m = tiny.metrics
    assert m["pnl"] == pytest.approx(1.0) and m["unrealized_pnl"] == pytest.approx(1.0)  # bought 100, mid 101
    assert m["realized_pnl"] == 0.0 and m["fees"] == 0.0
    assert equity_curve(tiny)[1] == pytest.approx([0, 0, 0.5, 0, 0.5, 1, 1])
    assert m["max_drawdown"] == pytest.approx(0.5)
    assert m["fill_ratio"] == pytest.approx(1 / 3)
    assert m["quote_presence_bid"] == pytest.approx(1000 / 3000)  # accepted at 1000, filled at 2000
    assert m["quote_presence_ask"] == 1.0                         # the ask at 105 rests to the end
    assert m["inventory_mean"] == pytest.approx(2000 / 3000)
    assert m["spread_captured"] == 1.0
    assert (m["markout_100ns"], m["markout_1us"]) == (0.0, 0.5) and math.isnan(m["markout_5us"])
    assert math.isnan(m["time_at_limit"])  # no strategy, no limit


# ---------------------------------------------------------------------------
# On the bundled sample: the simulator's markouts and samples against an
# independent replay of the data through an OrderBook.
# ---------------------------------------------------------------------------
class Quoter(Strategy):
    interval_ns = 100_000_000
    max_inventory = 5

    def on_timer(self, ctx):
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid and ctx.position < self.max_inventory:
            ctx.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)
        if ask and ctx.position > -self.max_inventory:
            ctx.sell(ask[0], 1, tif=TimeInForce.POST_ONLY)


HORIZONS = (1_000_000, 10_000_000, 100_000_000, 1_000_000_000)


@pytest.fixture(scope="module")
def sample_run():
    return Backtest(SAMPLE, Quoter(), latency=Constant(1_000_000), fees=Fees(maker=-0.0001, taker=0.0004), seed=7,
                    sample_ns=10_000_000, markouts_ns=HORIZONS).run()


def _mid2_at(data, times):
    """bid + ask of the book after every event with ts_exch <= t (0 if a side is empty or t is past the data)."""
    from lobsim.book import OrderBook

    ts = data["ts_exch"]
    out = np.zeros(len(times), np.int64)
    book, done = OrderBook(), 0
    for k in np.argsort(times, kind="stable"):
        upto = np.searchsorted(ts, times[k], side="right")
        if upto > done:
            book.apply(data[done:upto])
            done = upto
        bid, ask = book.best_bid(), book.best_ask()
        out[k] = bid[0] + ask[0] if bid and ask and times[k] <= ts[-1] else 0
    return out


def test_sample_markouts_and_samples_match_an_independent_replay(sample_run):
    from lobsim.data import read_parquet

    r = sample_run
    data = read_parquet(SAMPLE).array
    assert len(r.markouts) == len(r.fills) > 10
    assert np.array_equal(r.markouts["ts"], r.fills["ts_exch"])
    for h, d in enumerate(HORIZONS):
        assert np.array_equal(r.markouts["after2"][:, h], _mid2_at(data, r.fills["ts_exch"] + d)), h
    s = r.position[r.position["kind"] == 3]
    assert s["ts"][0] == data["ts_exch"][0] and (np.diff(s["ts"]) == 10_000_000).all()
    assert s["ts"][-1] <= data["ts_exch"][-1] < s["ts"][-1] + 10_000_000
    both = (s["bid"] != 0) & (s["ask"] != 0)
    assert np.array_equal(np.where(both, s["bid"] + s["ask"], 0), _mid2_at(data, s["ts"]))
    assert (r.data_start_ns, r.data_end_ns) == (data["ts_exch"][0], data["ts_exch"][-1])


def test_sample_metrics_reconcile(sample_run):
    r = sample_run
    m = r.metrics
    assert r.inventory_limit == 5 and m["inventory_limit"] == 5  # the strategy's max_inventory
    last = r.position[-1]
    vpt = float(r.instrument.tick_size * r.instrument.lot_size)
    assert m["pnl"] == pytest.approx(last["cash"] + last["position"] * (last["bid"] + last["ask"]) / 2 * vpt)
    assert m["pnl"] == pytest.approx(m["realized_pnl"] + m["unrealized_pnl"] - m["fees"])
    assert m["fees"] == pytest.approx(r.fills["fee"].sum())
    assert m["fills"] == len(r.fills) and m["maker_volume"] + m["taker_volume"] == r.fills["qty"].sum()
    assert 0 < m["fill_ratio"] <= 1 and 0 < m["quote_presence_bid"] < 1 and 0 < m["quote_presence_ask"] < 1
    assert m["inventory_abs_max"] <= 5 and m["time_at_limit"] == 0.0
    assert [k for k in m if k.startswith("markout_")] == ["markout_1ms", "markout_10ms", "markout_100ms",
                                                         "markout_1s"]
    assert m["markout_1ms"] == pytest.approx(np.nanmean(r.markouts["markout"][:, 0]))


def test_default_horizons_and_sampling():
    bt = Backtest(TINY, None)
    while bt.elapse(10_000):
        pass
    r = bt.result()
    assert r.sample_ns == 1_000_000_000 and r.markouts_ns == (100_000_000, 10**9, 10**10, 6 * 10**10)
    assert [k for k in r.metrics if k.startswith("markout_")] == ["markout_100ms", "markout_1s", "markout_10s",
                                                                 "markout_60s"]
    assert (r.position["kind"] == 3).sum() == 1  # 3 us of data: the sample at the first event only


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sample_ns=0), ValueError, "sample_ns must be >= 1"),
    (dict(sample_ns=-5), ValueError, "sample_ns"),
    (dict(sample_ns="1s"), TypeError, "sample_ns must be an integer"),
    (dict(sample_ns=1.5), ValueError, "sample_ns must be a whole number"),
    (dict(markouts_ns=(1, 2, 3, 4, 5)), ValueError, "at most 4"),
    (dict(markouts_ns=(10, 10)), ValueError, "strictly increasing"),
    (dict(markouts_ns=(10, 5)), ValueError, "strictly increasing"),
    (dict(markouts_ns=(0,)), ValueError, r"markouts_ns\[0\] must be >= 1"),
    (dict(markouts_ns=(5, -1)), ValueError, r"markouts_ns\[1\]"),
    (dict(markouts_ns="100ms"), TypeError, "markouts_ns must be a sequence"),
    (dict(markouts_ns=100), TypeError, "markouts_ns must be a sequence"),
    (dict(markouts_ns=(1.5,)), ValueError, "whole number"),
])
def test_backtest_rejects_bad_sampling_and_horizons(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Backtest(TINY, None, **kwargs)


def test_no_horizons_and_few_horizons():
    bt = Backtest(TINY, None, markouts_ns=[])
    bt.buy(100, 1)
    while bt.elapse(10_000):
        pass
    r = bt.result()
    assert r.markouts_ns == () and (r.markouts["after2"] == 0).all() and r.markouts["mid2"][0] == 202
    assert not [k for k in r.metrics if k.startswith("markout_")]
