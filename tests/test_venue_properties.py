"""Properties of the simulated venue over random event streams and random strategies
(hypothesis, derandomized): fills only where the data allows them, the account
reconciles with the fills at every row, nothing reaches the strategy early or out of
order, results are bit-identical for a seed, and the replay alone leaves the books
where OrderBook/LevelBook.apply leaves them.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lobsim import Backtest, EventKind, Flag, OrderState, Side, TimeInForce, empty_events
from lobsim.book import LevelBook, OrderBook
from lobsim.data import synthetic
from lobsim.latency import Constant
from lobsim.queue import RiskAverse

SETTINGS = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def l2_stream(seed, n):
    """A random L2 stream around 100: SET_LEVELs on both sides (never crossed) and prints."""
    rng = np.random.default_rng(seed)
    ev = empty_events(n)
    t = np.cumsum(rng.integers(1, 50, n))
    ev["ts_exch"] = t
    ev["ts_local"] = t + rng.integers(0, 30, n)
    ev["ts_local"] = np.maximum.accumulate(ev["ts_local"])
    side = rng.choice([1, -1], n)
    ev["side"] = side
    ev["price"] = np.where(side == 1, 100 - rng.integers(0, 6, n), 101 + rng.integers(0, 6, n))
    ev["qty"] = rng.integers(0, 12, n)
    ev["kind"] = EventKind.SET_LEVEL
    trade = rng.random(n) < 0.15
    ev["kind"][trade] = EventKind.TRADE
    ev["qty"][trade] = rng.integers(1, 8, trade.sum())
    ev["side"][trade] = rng.choice([1, -1, 0], trade.sum())
    ev["price"][trade] = rng.integers(97, 105, trade.sum())
    ev["flags"] = Flag.BATCH_END
    return ev


def l3_stream(seed, n):
    return synthetic.generate(n, seed=seed, tick_levels=6, mean_gap_ns=50, latency_ns=10, latency_jitter_ns=20)


def random_actions(seed, ev, n_actions):
    """Random orders, cancels and modifies at random local times within the data."""
    rng = np.random.default_rng(seed + 1)
    lo, hi = int(ev["ts_local"][0]), int(ev["ts_local"][-1])
    mid = int(np.median(ev["price"][ev["price"] > 0])) if np.any(ev["price"] > 0) else 100
    times = np.sort(rng.integers(lo, hi + 1, n_actions))
    acts = []
    for t in times:
        r = rng.random()
        if r < 0.6:
            side = "buy" if rng.random() < 0.5 else "sell"
            tif = TimeInForce(int(rng.choice([0, 0, 0, 1, 2, 3, 3, 4])))
            px = None if tif == TimeInForce.MARKET else mid + int(rng.integers(-4, 5))
            acts.append((int(t), side, px, int(rng.integers(1, 6)), tif))
        elif r < 0.85:
            acts.append((int(t), "cancel", int(rng.integers(1, 12))))
        else:
            acts.append((int(t), "modify", int(rng.integers(1, 12)), mid + int(rng.integers(-4, 5)),
                         int(rng.integers(1, 6))))
    return acts


def run(ev, acts, **kw):
    bt = Backtest(ev, None, **kw)
    for t, name, *args in acts:
        if t > bt.now:
            if not bt.elapse(t - bt.now):
                break
        getattr(bt, name)(*args)
    while bt.elapse(10**12):
        pass
    return bt


def top_after_each(ev):
    """(best bid, best ask) of the replayed book after every event; 0 where a side is empty."""
    from lobsim.book import depth_series

    d = depth_series(ev, 1, strict=False)
    return d.bid_px[:, 0], d.bid_qty[:, 0], d.ask_px[:, 0], d.ask_qty[:, 0]


def check_account(res):
    """Position and cash equal the running sums of the fills, at every fill and row."""
    f = res.fills
    vpt = 1.0  # raw arrays: tick 1, lot 1
    pos = np.cumsum(f["side"].astype(np.int64) * f["qty"])
    assert np.array_equal(pos, f["position"])
    cash = -np.cumsum(f["side"] * f["qty"] * f["price"] * vpt + f["fee"])
    assert np.allclose(cash, f["cash"], rtol=1e-12, atol=1e-9)
    p = res.position
    fill_rows = p[p["kind"] == 1]
    assert np.array_equal(fill_rows["position"], f["position"]) and np.allclose(fill_rows["cash"], f["cash"])
    # a timer row carries the account of the fills before it
    for row in p[p["kind"] == 2]:
        done = f["ts_exch"] <= row["ts"]
        assert row["position"] == (pos[done][-1] if done.any() else 0)


def check_timing(res, entry, response):
    o, f = res.orders, res.fills
    answered = o[o["state"] != OrderState.NEW]
    assert np.all(answered["ts_local"] >= answered["ts_exch"] + response)
    assert np.all(f["ts_local"] >= f["ts_exch"] + response)
    sent = o[o["state"] == OrderState.NEW]
    assert np.all(sent["ts_exch"] >= sent["ts_local"] + entry)
    # one connection each way: arrivals and deliveries never go back in time
    assert np.all(np.diff(sent["ts_exch"]) >= 0)


@SETTINGS
@given(seed=st.integers(0, 2**31), entry=st.sampled_from([0, 5, 40]), response=st.sampled_from([0, 7, 60]))
def test_l2_fills_are_explained_by_the_data(seed, entry, response):
    ev = l2_stream(seed, 400)
    res = run(ev, random_actions(seed, ev, 40), latency=Constant(entry, response), queue=RiskAverse()).result()
    check_account(res)
    check_timing(res, entry, response)
    bid, bq, ask, aq = top_after_each(ev)
    for f in res.fills[res.fills["maker"]]:
        t, px, side = int(f["ts_exch"]), int(f["price"]), int(f["side"])
        at_t = np.nonzero(ev["ts_exch"] == t)[0]
        assert len(at_t), f"a maker fill at {t} with no data event then"
        printed = any(ev["kind"][i] == EventKind.TRADE and
                      (ev["price"][i] <= px if side == Side.BID else ev["price"][i] >= px) for i in at_t)
        crossed = any((aq[i] > 0 and ask[i] <= px) if side == Side.BID else (bq[i] > 0 and bid[i] >= px)
                      for i in at_t)
        assert printed or crossed, f"maker fill {f} not explained by a print or the opposite best"


@SETTINGS
@given(seed=st.integers(0, 2**31), entry=st.sampled_from([0, 5, 40]), response=st.sampled_from([0, 7, 60]))
def test_l3_fills_are_explained_by_the_data(seed, entry, response):
    ev = l3_stream(seed, 600)
    res = run(ev, random_actions(seed, ev, 40), latency=Constant(entry, response)).result()
    check_account(res)
    check_timing(res, entry, response)
    bid, bq, ask, aq = top_after_each(ev)
    for f in res.fills[res.fills["maker"]]:
        t, px, side = int(f["ts_exch"]), int(f["price"]), int(f["side"])
        at_t = np.nonzero(ev["ts_exch"] == t)[0]
        executed = any(ev["kind"][i] == EventKind.EXECUTE and ev["side"][i] == side for i in at_t)
        hidden = any(ev["kind"][i] == EventKind.TRADE and ev["flags"][i] & Flag.HIDDEN for i in at_t)
        crossed = any((aq[i] > 0 and ask[i] <= px) if side == Side.BID else (bq[i] > 0 and bid[i] >= px)
                      for i in at_t)
        assert executed or hidden or crossed, f"maker fill {f} not explained by an execution"


@settings(max_examples=25, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_risk_averse_never_fills_more_than_printed_beyond_the_queue(seed):
    """With RiskAverse, a resting order (no modify) never fills more at its price than the
    prints at its price after its arrival exceed the qty displayed ahead of it on arrival
    (or the smallest size the level shrank to since: cancels ahead that the model has to
    accept), unless the market traded through it or the opposite best reached it."""
    ev = l2_stream(seed, 400)
    acts = [a for a in random_actions(seed, ev, 30) if a[1] in ("buy", "sell") and a[4] == TimeInForce.POST_ONLY]
    res = run(ev, acts).result()
    bid, bq, ask, aq = top_after_each(ev)
    for oid in np.unique(res.fills["order_id"]):
        rows = res.orders[res.orders["order_id"] == oid]
        acc = rows[rows["state"] == OrderState.ACCEPTED]
        if not len(acc):
            continue
        t0, px, side = int(acc["ts_exch"][0]), int(acc["price"][0]), int(acc["side"][0])
        f = res.fills[res.fills["order_id"] == oid]
        # data at the order's arrival time is applied before it
        after = ev["ts_exch"] > t0
        level = ev[~after]
        # displayed qty at the price when it arrived: the last SET_LEVEL at (side, px) up to t0;
        # the level shrinking below it later (cancels ahead that RiskAverse must take) lowers it
        sets = level[(level["kind"] == EventKind.SET_LEVEL) & (level["side"] == side) & (level["price"] == px)]
        ahead = int(sets["qty"][-1]) if len(sets) else 0
        later = ev[after]
        later_sets = later[(later["kind"] == EventKind.SET_LEVEL) & (later["side"] == side) & (later["price"] == px)]
        if len(later_sets):
            ahead = min(ahead, int(later_sets["qty"].min()))
        through = np.any((later["kind"] == EventKind.TRADE) &
                         ((later["price"] < px) if side == Side.BID else (later["price"] > px)))
        idx = np.nonzero(after)[0]
        reached = np.any(((aq[idx] > 0) & (ask[idx] <= px)) if side == Side.BID else ((bq[idx] > 0) & (bid[idx] >= px)))
        if through or reached:
            continue
        printed = int(later["qty"][(later["kind"] == EventKind.TRADE) & (later["price"] == px)].sum())
        assert int(f["qty"].sum()) <= max(0, printed - ahead), (oid, printed, ahead)


@settings(max_examples=10, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**31), l3=st.booleans())
def test_same_inputs_and_seed_give_bit_identical_results(seed, l3):
    from lobsim.latency import LogNormal

    ev = l3_stream(seed, 500) if l3 else l2_stream(seed, 500)
    acts = random_actions(seed, ev, 30)
    lat = LogNormal(median_ns=20, sigma=0.5, min_ns=1, max_ns=200)
    a = run(ev, acts, latency=lat, seed=9).result()
    b = run(ev, acts, latency=lat, seed=9).result()
    for name in ("fills", "orders", "position"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


@pytest.mark.parametrize("l3", [False, True])
def test_replay_alone_leaves_the_books_where_apply_does(l3):
    ev = l3_stream(4, 20_000) if l3 else l2_stream(4, 20_000)
    bt = run(ev, [])
    with (OrderBook() if l3 else LevelBook()) as book:
        book.apply(ev, strict=False)
        want = book.depth(64)
    got = bt.depth(64)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
