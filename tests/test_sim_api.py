"""The Backtest / Strategy API: validation, data sources, the loop, pull style, results.

The exact venue semantics (queue rules, latency races, fees) are pinned by
tests/test_venue_*.py; these tests check the Python layer around the C loop.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lobsim
from lobsim import (Backtest, BacktestResult, DataError, EventKind, Fees, Flag, Instrument, OrderState,
                    RejectReason, Side, Strategy, TimeInForce)
from lobsim.data import EventWriter, read_metadata, read_parquet
from lobsim.latency import Constant, LogNormal, PerAction
from lobsim.queue import LogProb, PowerProb, QueueModel, RiskAverse

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"


class Quoter(Strategy):
    """Cancels and re-posts one bid and one ask (post-only, at the touch) every 100 ms."""

    interval_ns = 100_000_000

    def __init__(self, limit=5):
        self.limit = limit

    def on_timer(self, ctx):
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid and ctx.position < self.limit:
            ctx.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)
        if ask and ctx.position > -self.limit:
            ctx.sell(ask[0], 2, tif=TimeInForce.POST_ONLY)


def events(rows):
    """EVENT_DTYPE array from (ts_exch, ts_local, kind, side, price, qty[, order_id[, flags]]) tuples."""
    a = lobsim.empty_events(len(rows))
    for i, r in enumerate(rows):
        ts_exch, ts_local, kind, side, price, qty, *rest = r
        a[i]["ts_exch"], a[i]["ts_local"], a[i]["kind"], a[i]["side"] = ts_exch, ts_local, kind, side
        a[i]["price"], a[i]["qty"] = price, qty
        a[i]["order_id"] = rest[0] if rest else 0
        a[i]["flags"] = rest[1] if len(rest) > 1 else Flag.BATCH_END
    return a


SET, TRADE, ADD, REDUCE = EventKind.SET_LEVEL, EventKind.TRADE, EventKind.ADD, EventKind.REDUCE
L2 = events([
    (1000, 1000, SET, 1, 100, 10),
    (1000, 1000, SET, -1, 101, 10),
    (2000, 2000, SET, 1, 100, 4),     # 6 lots leave the level: no trade explains them
    (3000, 3000, TRADE, -1, 100, 2),  # a sell of 2 at the user's price
    (4000, 4000, SET, 1, 100, 2),     # the level shows the trade
])


class BuyAt100(Strategy):
    def on_start(self, ctx):
        ctx.buy(100, 3)


@pytest.fixture(scope="module")
def sample():
    return read_parquet(SAMPLE)


@pytest.fixture(scope="module")
def quoted():
    return Backtest(SAMPLE, Quoter(), latency=Constant(1_000_000), fees=Fees(maker=-0.0001, taker=0.0004),
                    seed=7).run()


# -- validation before the run ----------------------------------------------

@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(strategy=object()), TypeError, "strategy"),
    (dict(strategy=Quoter), TypeError, "strategy"),
    (dict(latency="1ms"), TypeError, "latency"),
    (dict(latency=1_000_000), TypeError, "latency"),
    (dict(queue="risk_averse"), TypeError, "queue"),
    (dict(queue=RiskAverse), TypeError, "queue"),
    (dict(queue=QueueModel()), TypeError, "queue"),
    (dict(fees=0.0001), TypeError, "fees"),
    (dict(fees=(0.0, 0.0)), TypeError, "fees"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=1.0), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(seed=2**64), ValueError, "seed"),
    (dict(instrument="BTCUSDT"), TypeError, "instrument"),
    (dict(feed_latency=5), TypeError, "feed_latency"),
    (dict(feed_latency=PerAction(Constant(1))), TypeError, "feed_latency"),
    (dict(chunk_events=0), ValueError, "chunk_events"),
    (dict(chunk_events="big"), TypeError, "chunk_events"),
])
def test_bad_arguments_fail_before_the_run_naming_the_parameter(sample, kwargs, exc, name):
    strategy = kwargs.pop("strategy", None)
    with pytest.raises(exc, match=name):
        Backtest(sample, strategy, **kwargs)


@pytest.mark.parametrize("data, exc", [
    (np.zeros(3), TypeError),
    (np.zeros(3, dtype=[("ts_exch", "<i8")]), TypeError),
    ([(1, 2, 3)], TypeError),
    (None, TypeError),
    (lobsim.empty_events(4)[::2], ValueError),
    (lobsim.empty_events(0), ValueError),
])
def test_bad_data_names_data(data, exc):
    with pytest.raises(exc, match="data"):
        Backtest(data, None)


def test_negative_latency_and_bad_models_fail_when_built():
    with pytest.raises(ValueError, match="entry_ns"):
        Backtest(L2, None, latency=Constant(-1))
    with pytest.raises(ValueError, match="n must be > 0"):
        PowerProb(0)
    with pytest.raises(TypeError, match="n"):
        PowerProb("2")
    with pytest.raises(TypeError, match="maker"):
        Fees("0.1")
    with pytest.raises(TypeError, match="taker"):
        Fees(0.0, None)
    with pytest.raises(TypeError, match="maker"):
        Fees(True)
    with pytest.raises(ValueError, match="taker"):
        Fees(taker=float("inf"))
    assert Fees(-1e-4, 4e-4) == Fees(maker=-0.0001, taker=0.0004)


@pytest.mark.parametrize("interval, exc", [(0, ValueError), (-5, ValueError), (1.5, ValueError),
                                           ("100", TypeError)])
def test_strategy_interval_is_checked(interval, exc):
    class S(Strategy):
        interval_ns = interval

    with pytest.raises(exc, match="interval_ns"):
        Backtest(L2, S())


def test_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.parquet"):
        Backtest(tmp_path / "nope.parquet", None)


def test_queue_models_are_accepted_and_ignored_on_l3(sample):
    class Half(QueueModel):
        def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
            raise AssertionError("never called on L3 data")

    for q in (RiskAverse(), PowerProb(2), LogProb(), Half()):
        assert Backtest(sample.array[:2000], BuyAt100(), queue=q).run().events == 2000


def test_import_of_the_backtest_api_does_not_load_pyarrow():
    code = ("import sys; from lobsim import Backtest, Strategy, Fees, BacktestResult, OrderState, RejectReason; "
            "import lobsim.latency, lobsim.queue; "
            "assert not [m for m in sys.modules if m.startswith('pyarrow')]; print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout == "ok\n", p.stderr


# -- end to end on the bundled sample ---------------------------------------

def test_quoter_end_to_end_reconciles(quoted):
    r = quoted
    assert isinstance(r, BacktestResult)
    assert r.fills.dtype == lobsim.FILLS_DTYPE and r.orders.dtype == lobsim.ORDERS_DTYPE
    assert r.position.dtype == lobsim.POSITION_DTYPE
    assert len(r.fills) > 10 and r.events == 200_000 and r.seed == 7 and r.clock_offset_ns == 0
    instrument, _ = read_metadata(SAMPLE)
    assert r.instrument == instrument
    vpt = float(instrument.tick_size * instrument.lot_size)
    f = r.fills
    signed = f["side"].astype(np.int64) * f["qty"]
    value = signed * f["price"] * vpt
    assert (f["maker"]).all() and (f["fee"] < 0).all()  # post-only: maker fills, rebates
    assert np.allclose(f["fee"], -0.0001 * f["qty"] * f["price"] * vpt, rtol=1e-12)
    assert np.array_equal(f["position"], np.cumsum(signed))
    assert np.allclose(f["cash"], -np.cumsum(value) - np.cumsum(f["fee"]), rtol=1e-6, atol=1e-9)
    # every position row: the fills recorded before it, in order
    fill_rows = r.position["kind"] == 1
    assert fill_rows.sum() == len(f)
    k = np.cumsum(fill_rows)  # fills up to and including this row
    pos_expected = np.concatenate([[0], np.cumsum(signed)])[k]
    cash_expected = np.concatenate([[0.0], -np.cumsum(value) - np.cumsum(f["fee"])])[k]
    fees_expected = np.concatenate([[0.0], np.cumsum(f["fee"])])[k]
    assert np.array_equal(r.position["position"], pos_expected)
    assert np.allclose(r.position["cash"], cash_expected, rtol=1e-6, atol=1e-9)
    assert np.allclose(r.position["fees"], fees_expected, rtol=1e-6, atol=1e-12)
    assert np.array_equal(r.position["ts"][fill_rows], f["ts_exch"])
    timer_rows = r.position[r.position["kind"] == 2]
    assert len(timer_rows) > 30 and (np.diff(timer_rows["ts"]) == 100_000_000).all()
    # responses never reach the strategy before they happen + the 1 ms response latency
    assert (f["ts_local"] - f["ts_exch"] >= 1_000_000).all()
    states = set(r.orders["state"].tolist())
    assert {OrderState.NEW, OrderState.ACCEPTED, OrderState.CANCELLED} <= states


def test_same_seed_gives_bit_identical_results():
    def once(seed):
        return Backtest(SAMPLE, Quoter(), latency=LogNormal(500_000, 0.8, min_ns=50_000), seed=seed,
                        fees=Fees(-0.0001, 0.0004)).run()

    a, b, c = once(3), once(3), once(4)
    for name in ("fills", "orders", "position"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.orders.tobytes() != c.orders.tobytes()


def test_array_events_and_parquet_give_the_same_run(sample, quoted):
    kw = dict(latency=Constant(1_000_000), fees=Fees(maker=-0.0001, taker=0.0004), seed=7)
    runs = [Backtest(sample, Quoter(), **kw).run(),
            Backtest(sample.array, Quoter(), instrument=sample.instrument, **kw).run(),
            Backtest(SAMPLE, Quoter(), chunk_events=3_001, **kw).run()]
    for r in runs:
        for name in ("fills", "orders", "position"):
            assert getattr(r, name).tobytes() == getattr(quoted, name).tobytes(), name
    raw = Backtest(sample.array, Quoter(), **kw).run()  # no instrument: one tick x one lot is worth 1
    assert raw.instrument == Instrument("UNKNOWN", "1", "1")
    assert np.array_equal(raw.fills["qty"], quoted.fills["qty"])
    assert np.allclose(raw.fills["fee"], -0.0001 * raw.fills["qty"] * raw.fills["price"])


class Tracker(Strategy):
    """Checks at every call that ctx.position / ctx.cash / open_orders() follow the delivered messages."""

    interval_ns = 50_000_000

    def on_start(self, ctx):
        self.pos, self.cash, self.fills, self.updates, self.sent = 0, 0.0, [], [], {}
        self.vpt = float(ctx.instrument.tick_size * ctx.instrument.lot_size)
        self.check(ctx)

    def check(self, ctx):
        assert ctx.position == self.pos
        assert ctx.cash == pytest.approx(self.cash, rel=1e-9, abs=1e-9)
        open_ = ctx.open_orders()
        assert set(open_) <= set(self.sent)
        for oid, o in open_.items():
            assert o.state not in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED)
            assert (o.side, o.price) == self.sent[oid][:2] and 0 < o.leaves_qty <= self.sent[oid][2]

    def on_timer(self, ctx):
        self.check(ctx)
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid and ask:
            for side, px in ((Side.BID, bid[0]), (Side.ASK, ask[0])):
                oid = (ctx.buy if side == Side.BID else ctx.sell)(px, 1)
                self.sent[oid] = (side, px, 1)
                assert ctx.open_orders()[oid].state == OrderState.NEW
            if ctx.position > 3:
                self.sent[ctx.sell(bid[0], 2, tif=TimeInForce.IOC)] = (Side.ASK, bid[0], 2)

    def on_fill(self, ctx, fill):
        assert fill.dtype == lobsim.FILLS_DTYPE and fill["ts_local"] == ctx.now
        self.pos += int(fill["side"]) * int(fill["qty"])
        self.cash -= int(fill["side"]) * int(fill["qty"]) * int(fill["price"]) * self.vpt + float(fill["fee"])
        self.fills.append(fill.copy())
        self.check(ctx)

    def on_order(self, ctx, update):
        assert update.dtype == lobsim.ORDERS_DTYPE and update["ts_local"] == ctx.now
        assert update["state"] != OrderState.NEW  # our own NEW rows are not echoed
        self.updates.append(update.copy())
        self.check(ctx)

    def on_stop(self, ctx):
        self.check(ctx)
        self.stopped = ctx.now


def test_ctx_follows_the_delivered_messages():
    t = Tracker()
    r = Backtest(SAMPLE, t, latency=Constant(2_000_000, 3_000_000), fees=Fees(0.0002, 0.0005)).run()
    assert len(t.fills) == len(r.fills) > 0
    assert np.array_equal(np.array(t.fills, dtype=lobsim.FILLS_DTYPE), r.fills)
    assert np.array_equal(np.array(t.updates, dtype=lobsim.ORDERS_DTYPE),
                          r.orders[r.orders["state"] != OrderState.NEW])
    assert (r.fills["maker"] == False).any() and (r.fills["maker"] == True).any()  # noqa: E712
    assert t.stopped >= r.orders["ts_local"].max()


def test_on_stop_requests_are_answered():
    class CancelAtStop(Strategy):
        def on_start(self, ctx):
            ctx.buy(99, 1)  # below the best bid: it never fills
            self.updates = []

        def on_order(self, ctx, update):
            self.updates.append((int(update["state"]), int(update["request"])))

        def on_stop(self, ctx):
            self.left = sorted(ctx.open_orders())
            for oid in self.left:
                ctx.cancel(oid)

    s = CancelAtStop()
    r = Backtest(L2, s, latency=Constant(1_000)).run()
    assert s.left == [1]
    assert r.orders["state"].tolist() == [OrderState.NEW, OrderState.ACCEPTED, OrderState.CANCELLED]
    assert s.updates == [(OrderState.ACCEPTED, 0), (OrderState.CANCELLED, 1)]


def test_mistakes_in_a_run_come_back_as_rejections():
    class Clumsy(Strategy):
        def on_start(self, ctx):
            ctx.cancel(12345)
            self.zero = ctx.buy(100, 0)
            self.side = ctx.modify(777, 100, 1)

    r = Backtest(L2, Clumsy()).run()
    rej = r.orders[r.orders["state"] == OrderState.REJECTED]
    assert {(int(o["order_id"]), int(o["reason"])) for o in rej} == {
        (12345, RejectReason.UNKNOWN_ORDER), (1, RejectReason.INVALID), (777, RejectReason.UNKNOWN_ORDER)}


@pytest.mark.parametrize("call", [
    lambda bt: bt.buy(100.0, 1),
    lambda bt: bt.buy(100, True),
    lambda bt: bt.sell(100, 1.0),
    lambda bt: bt.buy(100, 1, tif="GTC"),
    lambda bt: bt.buy(100, 1, tif=True),
    lambda bt: bt.cancel("1"),
    lambda bt: bt.cancel(None),
    lambda bt: bt.modify(1, 100, 2.0),
    lambda bt: bt.modify(1, np.float64(100), 2),
])
def test_wrong_python_types_raise_at_once(call):
    bt = Backtest(L2, None)
    with pytest.raises(TypeError):
        call(bt)
    assert bt.elapse(10_000) is False  # nothing was sent; the run goes on
    assert len(bt.result().orders) == 0


def test_strategy_exceptions_propagate_and_stop_the_backtest():
    class Boom(Strategy):
        interval_ns = 500

        def on_timer(self, ctx):
            raise KeyError("boom")

    bt = Backtest(L2, Boom())
    with pytest.raises(KeyError, match="boom"):
        bt.run()
    with pytest.raises(RuntimeError, match="cannot continue"):
        bt.run()


# -- queue models written in Python -----------------------------------------

def test_python_queue_model_is_called_and_used():
    class FromFront(QueueModel):
        calls = []

        def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
            self.calls.append((ahead, level_before, level_after, cancel))
            return 0.0  # every lot that left stood ahead of us (and then some)

    model = FromFront()
    r = Backtest(L2, BuyAt100(), queue=model).run()
    assert model.calls == [(10.0, 10, 4, 6)]
    assert r.fills["qty"].tolist() == [2]  # nothing ahead: the 2-lot print fills 2 of our 3
    assert len(Backtest(L2, BuyAt100(), queue=RiskAverse()).run().fills) == 0  # ahead min(10, 4) = 4 > 2


@pytest.mark.parametrize("value", [ZeroDivisionError("in the model"), "nan", "not a number"])
def test_python_queue_model_errors_propagate(value):
    class Bad(QueueModel):
        def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
            if isinstance(value, Exception):
                raise value
            return float(value) if value == "nan" else value

    bt = Backtest(L2, BuyAt100(), queue=Bad())
    expected = type(value) if isinstance(value, Exception) else (ValueError, TypeError)
    with pytest.raises(expected):
        bt.run()
    with pytest.raises(RuntimeError, match="cannot continue"):
        bt.run()


# -- pull style ------------------------------------------------------------

def test_pull_style(sample):
    bt = Backtest(SAMPLE, None, latency=Constant(1_000_000))
    t0 = int(sample.array["ts_local"][0])
    assert bt.now == t0  # before the first call
    with pytest.raises(RuntimeError, match="end of the data"):
        bt.result()
    assert bt.elapse(1_000_000_000) is True and bt.now == t0 + 1_000_000_000
    seen = np.searchsorted(sample.array["ts_local"], bt.now, side="right")
    assert bt.wait_next_feed() is True and bt.now == sample.array["ts_local"][seen]
    bid = bt.best_bid()
    oid = bt.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)
    assert oid == 1 and bt.open_orders()[1].state == OrderState.NEW
    assert bt.elapse(1_000_000) is True and bt.open_orders()[1].state == OrderState.NEW  # answer not back yet
    assert bt.elapse(1_000_000) is True and 1 not in bt.open_orders() or \
        bt.open_orders()[1].state != OrderState.NEW
    depth = bt.depth(5)
    assert depth.bid_px[0] == bt.best_bid()[0] and bt.depth(5, out=depth) is depth
    feeds = 0
    while bt.wait_next_feed():
        feeds += 1
    assert feeds > 1000
    assert bt.elapse(10) is False and bt.wait_next_feed() is False
    r = bt.result()
    assert r.events == 200_000 and 1 in r.orders["order_id"]
    with pytest.raises(RuntimeError, match="over"):
        bt.buy(bid[0], 1)
    bt.close()
    bt.close()
    assert bt.result() is r


def test_pull_style_elapse_to_the_end():
    with Backtest(L2, None) as bt:
        assert bt.now == 1000 and bt.best_bid() == (100, 10) and bt.best_ask() == (101, 10)
        assert bt.elapse(1000) is True and bt.now == 2000 and bt.best_bid() == (100, 4)
        bt.buy(100, 1)
        assert bt.elapse(10**9) is False
        assert bt.result().orders["state"].tolist() == [OrderState.NEW, OrderState.ACCEPTED]
    with pytest.raises(ValueError, match="ns"):
        Backtest(L2, None).elapse(-1)


def test_elapse_needs_pull_style():
    bt = Backtest(L2, Quoter())
    with pytest.raises(RuntimeError, match="Backtest\\(data, None\\)"):
        bt.elapse(10)
    with pytest.raises(RuntimeError):
        bt.wait_next_feed()


# -- clocks ------------------------------------------------------------------

def test_negative_feed_latency_shifts_the_local_clock(tmp_path):
    ev = L2.copy()
    ev["ts_local"] = ev["ts_exch"] - np.array([500, 500, 1200, 700, 0])
    seen = []

    class Start(Strategy):
        def on_start(self, ctx):
            seen.append(ctx.now)

    r = Backtest(ev, Start()).run()
    assert r.clock_offset_ns == 1200 and seen == [1000 - 500 + 1200]
    path = tmp_path / "skewed.parquet"
    with EventWriter(path, Instrument("X", "0.5", "2")) as w:
        w.write(ev[:2])
        w.write(ev[2:])
    r2 = Backtest(path, Start(), chunk_events=2).run()
    assert r2.clock_offset_ns == 1200 and seen[-1] == seen[0] and r2.instrument.symbol == "X"
    assert Backtest(L2, None).clock_offset_ns == 0


def test_feed_latency_model_replaces_ts_local():
    ev = L2.copy()
    ev["ts_local"] = 0  # ignored with a model
    bt = Backtest(ev, None, feed_latency=Constant(300))
    assert bt.clock_offset_ns == 0 and bt.now == 1300 and bt.best_ask() == (101, 10)
    assert bt.wait_next_feed() and bt.now == 2300 and bt.best_bid() == (100, 4)
    big = read_parquet(SAMPLE).array
    runs = [Backtest(big, None, feed_latency=LogNormal(1e6, 1.0), seed=5, chunk_events=c) for c in (70_000, 1 << 16)]
    for bt in runs:
        bt.elapse(10**9)
    assert runs[0].now == runs[1].now and runs[0].best_bid() == runs[1].best_bid()


# -- data errors -------------------------------------------------------------

def test_bad_event_is_data_error_with_its_absolute_index(tmp_path):
    ev = events([(1, 1, ADD, 1, 100, 5, 1), (2, 2, ADD, -1, 101, 5, 2), (3, 3, ADD, 1, 99, 5, 3),
                 (4, 4, ADD, 1, 98, 5, 4), (5, 5, REDUCE, 1, 100, 1, 99), (6, 6, ADD, 1, 97, 1, 5)])
    with pytest.raises(DataError, match="data: event 4: .*order_id") as info:
        Backtest(ev, None).run()
    assert info.value.event_index == 4
    path = tmp_path / "bad.parquet"
    with EventWriter(path, Instrument("X", "1")) as w:
        w.write(ev)
    with pytest.raises(DataError, match="bad.parquet: event 4: ") as info:
        Backtest(path, BuyAt100(), chunk_events=2).run()
    assert info.value.event_index == 4


def test_readme_backtest_example_prints_what_it_says(capsys, monkeypatch):
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Backtesting (the simulated venue)"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    expected = re.search(r"^# (\d+ fills;.*)$", code, re.M).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == expected
