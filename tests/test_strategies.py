"""The shipped strategies: their pure quote / decision functions on hand-computed values,
parameter checks, and end-to-end runs on the bundled sample through lobsim.Backtest."""
import math
from pathlib import Path

import numpy as np
import pytest

from lobsim import Backtest, Fees, OrderState, Side, TimeInForce
from lobsim.latency import Constant
from lobsim.strategies import GLFT, AvellanedaStoikov, MeanReversion, quotes
from lobsim.strategies.market_making import MidVolatility, RollingStats

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.parquet"
MS = 1_000_000


# -- Avellaneda-Stoikov: quote_ticks by hand ------------------------------------------------------------
# gamma 0.1 /tick/lot, k 1 /tick, sigma 2 ticks/sqrt(s), tau 1 s:
#   spread = 0.1 * 4 * 1 + (2 / 0.1) * ln(1.1) = 0.4 + 1.9062036 = 2.3062036, half 1.1531018
#   skew per lot of inventory = gamma sigma^2 tau = 0.4 ticks
AS_HALF = (0.1 * 4 + 20 * math.log(1.1)) / 2


def test_as_hand_values_flat():
    s = AvellanedaStoikov(gamma=0.1, k=1.0)
    # r = 100.5: bid 99.347 -> 99 (down), ask 101.653 -> 102 (up)
    assert 100.5 - AS_HALF == pytest.approx(99.3468982)
    assert s.quote_ticks(100.5, 0, 100, 101, 2.0, 1.0) == (99, 102)
    # same on a whole-tick mid: r = 100: 98.847 -> 98, 101.153 -> 102
    assert s.quote_ticks(100.0, 0, 99, 101, 2.0, 1.0) == (98, 102)


def test_as_inventory_skews_both_quotes():
    s = AvellanedaStoikov(gamma=0.1, k=1.0)
    # long 3: r = 100.5 - 1.2 = 99.3: bid 98.147 -> 98, ask 100.453 -> 101
    assert s.quote_ticks(100.5, 3, 100, 101, 2.0, 1.0) == (98, 101)
    # short 2: r = 101.3: bid 100.147 -> 100, ask 102.453 -> 103
    assert s.quote_ticks(100.5, -2, 100, 101, 2.0, 1.0) == (100, 103)
    # tau scales the skew and the first term of the spread: tau 0 leaves (2/gamma) ln(1 + gamma/k)
    assert s.quote_ticks(100.5, 3, 100, 101, 2.0, 0.0) == (99, 102)  # 100.5 -+ 0.953 -> 99.547, 101.453


def test_as_never_through_the_touch():
    s = AvellanedaStoikov(gamma=0.1, k=1.0)
    # short 5: r = 102.5: model bid 101.347 >= best ask 101 -> best ask - 1 = 100; ask 103.653 -> 104
    assert s.quote_ticks(100.5, -5, 100, 101, 2.0, 1.0) == (100, 104)
    # long 5: r = 98.5: ask 99.653 -> 100 <= best bid 100 -> best bid + 1 = 101; bid 97.347 -> 97
    assert s.quote_ticks(100.5, 5, 100, 101, 2.0, 1.0) == (97, 101)
    # wide book: the model quotes inside it are kept as they are
    assert s.quote_ticks(100.5, 0, 90, 111, 2.0, 1.0) == (99, 102)
    # no touch on a side: nothing to clamp against
    assert s.quote_ticks(100.5, -5, 100, None, 2.0, 1.0) == (101, 104)


def test_as_inventory_limit():
    s = AvellanedaStoikov(gamma=0.01, k=1.0, max_inventory=3)
    assert s.quote_ticks(100.5, 2, 100, 101, 1.0, 1.0)[0] is not None   # 2 + 1 <= 3
    assert s.quote_ticks(100.5, 3, 100, 101, 1.0, 1.0)[0] is None       # 3 + 1 > 3: no bid
    assert s.quote_ticks(100.5, 3, 100, 101, 1.0, 1.0)[1] is not None
    assert s.quote_ticks(100.5, -3, 100, 101, 1.0, 1.0)[1] is None      # -3 - 1 < -3: no ask
    assert s.quote_ticks(100.5, -2, 100, 101, 1.0, 1.0)[1] is not None
    s2 = AvellanedaStoikov(gamma=0.01, k=1.0, order_qty=2, max_inventory=3)
    assert s2.quote_ticks(100.5, 1, 100, 101, 1.0, 1.0)[0] is not None  # 1 + 2 <= 3
    assert s2.quote_ticks(100.5, 2, 100, 101, 1.0, 1.0)[0] is None      # 2 + 2 > 3


def test_as_quotes_round_to_the_safe_side_everywhere():
    """Over random inputs: bid = the model's bid rounded down (or the touch clamp), ask rounded
    up, never crossing the touch, bid < ask."""
    rng = np.random.default_rng(3)
    s = AvellanedaStoikov(gamma=0.05, k=0.5, max_inventory=50)
    for _ in range(2000):
        bb = int(rng.integers(900, 1100))
        ba = bb + int(rng.integers(1, 6))
        mid, q = (bb + ba) / 2, int(rng.integers(-20, 21))
        sigma, tau = float(rng.uniform(0, 5)), float(rng.uniform(0, 2))
        mb, ma = quotes.avellaneda_stoikov(mid, q, 0.05, sigma, 0.5, tau)
        b, a = s.quote_ticks(mid, q, bb, ba, sigma, tau)
        assert b == min(math.floor(mb + 1e-9), ba - 1) and b <= mb + 1e-9
        assert a == max(math.ceil(ma - 1e-9), bb + 1) and a >= ma - 1e-9
        assert b < ba and a > bb and b < a


def test_as_exact_tick_is_not_moved_by_float_noise():
    # sigma 0, tau 0: half spread = (1/gamma) ln(1 + gamma/k); with k = gamma/(e - 1) it is 1/gamma exactly
    gamma = 0.5
    s = AvellanedaStoikov(gamma=gamma, k=gamma / (math.e - 1))
    b, a = quotes.avellaneda_stoikov(100.0, 0, gamma, 0.0, gamma / (math.e - 1), 0.0)
    assert b == pytest.approx(98.0) and a == pytest.approx(102.0)
    assert s.quote_ticks(100.0, 0, 99, 101, 0.0, 0.0) == (98, 102)


def test_as_horizon_counts_down_and_restarts():
    s = AvellanedaStoikov(gamma=0.1, k=1.0, horizon_ns=10 * 10**9)
    s._t0 = 5 * 10**9
    assert s._tau(5 * 10**9) == 10.0
    assert s._tau(7_500_000_000) == 7.5
    assert s._tau(14_999_999_999) == pytest.approx(1e-9)
    assert s._tau(15 * 10**9) == 10.0  # the next window
    assert AvellanedaStoikov(gamma=0.1, k=1.0)._tau(123) == 1.0           # rolling: constant tau
    assert AvellanedaStoikov(gamma=0.1, k=1.0, tau=2.5)._tau(10**15) == 2.5


# -- GLFT: quote_ticks by hand ---------------------------------------------------------------------------
# gamma 0.1, k 1, A 10, Delta 1: c1 = ln(1.1) / 0.1 = 0.9531018;
# c2 = sqrt(0.1 / (2 * 10 * 1 * 1) * 1.1 ** 11) = sqrt(0.005 * 2.8531167) = 0.1194387; sigma 2 -> sigma c2 = 0.2388774
def test_glft_hand_values():
    c1 = math.log(1.1) / 0.1
    c2 = math.sqrt(0.1 / 20 * 1.1**11)
    assert (c1, c2) == pytest.approx((0.9531018, 0.1194387))
    assert quotes.glft_coefficients(0.1, 1.0, 10.0) == pytest.approx((c1, c2))
    s = GLFT(gamma=0.1, k=1.0, A=10.0)
    # q = 0: delta = c1 + sigma c2 / 2 = 1.0725405 both sides: 99.427 -> 99, 101.573 -> 102
    assert s.quote_ticks(100.5, 0, 100, 101, 2.0) == (99, 102)
    # q = 2: delta_bid = c1 + 2.5 * 0.2388774 = 1.5502953 -> bid 98.950 -> 98;
    #        delta_ask = c1 - 1.5 * 0.2388774 = 0.5947857 -> ask 101.095 -> 102
    assert s.quote_ticks(100.5, 2, 100, 101, 2.0) == (98, 102)
    # q = 4: ask = 100.5 + c1 - 3.5 * 0.2388774 = 100.617 -> 101 (touch 101 is fine: best bid + 1 = 101)
    assert s.quote_ticks(100.5, 4, 100, 101, 2.0) == (98, 101)
    # q = -6: bid = 100.5 - c1 + 5.5 * 0.2388774 = 100.861 -> 100 = best ask - 1;
    #         ask = 100.5 + c1 + 6.5 * 0.2388774 = 103.006 -> 104
    assert s.quote_ticks(100.5, -6, 100, 101, 2.0) == (100, 104)


def test_glft_inventory_limit_and_order_qty():
    s = GLFT(gamma=0.1, k=1.0, A=10.0, max_inventory=4, order_qty=2)
    assert s.quote_ticks(100.5, 2, 100, 101, 2.0)[0] is not None
    assert s.quote_ticks(100.5, 3, 100, 101, 2.0)[0] is None
    assert s.quote_ticks(100.5, -3, 100, 101, 2.0)[1] is None
    # Delta = order_qty = 2 enters the formula: the same as quotes.glft with order_qty=2, rounded
    b, a = quotes.glft(100.5, 1, 0.1, 2.0, 1.0, 10.0, 2)
    assert s.quote_ticks(100.5, 1, 90, 111, 2.0) == (math.floor(b), math.ceil(a))


# -- online sigma and rolling statistics -------------------------------------------------------------
def test_rolling_stats_match_numpy():
    rng = np.random.default_rng(0)
    xs = rng.integers(-50, 50, 500)
    st = RollingStats(37)
    for i, x in enumerate(xs.tolist()):
        st.push(x)
        w = xs[max(0, i - 36): i + 1]
        assert st.mean() == pytest.approx(w.mean())
        assert st.std() == pytest.approx(w.std(), abs=1e-12)


def test_mid_volatility_scales_to_per_sqrt_second():
    vol = MidVolatility(window=4, interval_ns=250 * MS, min_changes=3)
    for mid2 in (200, 202, 200):          # mid 100, 101, 100: two changes of +-1 tick
        vol.push(mid2)
    assert vol.sigma() is None             # fewer than min_changes
    vol.push(202)                          # changes +1, -1, +1 ticks: std 0.9428 per 250 ms
    assert vol.sigma() == pytest.approx(np.std([1, -1, 1]) / math.sqrt(0.25))
    vol.push(None)                         # no two-sided book: no change recorded, the chain restarts
    vol.push(210)
    assert len(vol) == 3
    vol.push(212)                          # +1 tick; the window keeps the last 4 changes
    assert vol.sigma() == pytest.approx(np.std([1, -1, 1, 1]) / 0.5)


# -- mean reversion: the decision by hand ------------------------------------------------------------
MR = MeanReversion(lookback=20, entry_z=2.0, exit_z=0.5, stop_z=3.5, order_qty=2)


@pytest.mark.parametrize("z, position, stopped, expected", [
    # flat: enter short above +entry_z, long below -entry_z, not at or beyond the stop
    (0.0, 0, False, (0, False, False)),
    (2.0, 0, False, (0, False, False)),
    (2.1, 0, False, (-2, False, False)),
    (-2.1, 0, False, (2, False, False)),
    (3.5, 0, False, (0, False, False)),
    (-3.6, 0, False, (0, False, False)),
    # short: hold, exit at z <= exit_z (through the mean too), stop at z >= stop_z (market)
    (1.0, -2, False, (-2, False, False)),
    (0.5, -2, False, (0, False, False)),
    (-4.0, -2, False, (0, False, False)),
    (3.5, -2, False, (0, True, True)),
    (1.0, -1, False, (-2, False, False)),   # partly filled short, z still above exit_z: keep working to -2
    # long: the mirror image
    (-1.0, 2, False, (2, False, False)),
    (-0.5, 2, False, (0, False, False)),
    (4.0, 2, False, (0, False, False)),
    (-3.5, 2, False, (0, True, True)),
    # after a stop: flatten at market while a position remains; no entry until |z| <= exit_z
    (0.0, 1, True, (0, True, True)),
    (2.5, 0, True, (0, False, True)),
    (-0.6, 0, True, (0, False, True)),
    (0.4, 0, True, (0, False, False)),
])
def test_mean_reversion_decision(z, position, stopped, expected):
    assert MR.target_position(z, position, stopped) == expected


def test_mean_reversion_market_orders_and_zscore():
    mr = MeanReversion(lookback=20, entry_z=2.0, exit_z=0.5, stop_z=3.5, use_market_orders=True)
    assert mr.target_position(2.1, 0, False) == (-1, True, False)
    assert mr.target_position(0.0, -1, False) == (0, True, False)
    assert MeanReversion.zscore(103.0, 100.0, 1.5) == 2.0
    assert MeanReversion.zscore(100.0, 100.0, 0.0) == 0.0


# -- bad parameters: ValueError naming the parameter, before any run ---------------------------------------
@pytest.mark.parametrize("make, name", [
    (lambda: AvellanedaStoikov(gamma=0, k=1), "gamma"),
    (lambda: AvellanedaStoikov(gamma=-0.1, k=1), "gamma"),
    (lambda: AvellanedaStoikov(gamma=float("nan"), k=1), "gamma"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=0), "k"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=-2), "k"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, sigma=-1), "sigma"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, horizon_ns=0), "horizon_ns"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, tau=0), "tau"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, order_qty=0), "order_qty"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, max_inventory=-1), "max_inventory"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, order_qty=3, max_inventory=2), "max_inventory"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, requote_ticks=0), "requote_ticks"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, interval_ns=0), "interval_ns"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, sigma_window=-5), "sigma_window"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, sigma_window=10, sigma_min_changes=11), "sigma_min_changes"),
    (lambda: GLFT(gamma=0, k=1, A=1), "gamma"),
    (lambda: GLFT(gamma=0.1, k=0, A=1), "k"),
    (lambda: GLFT(gamma=0.1, k=1, A=0), "A"),
    (lambda: GLFT(gamma=0.1, k=1, A=-3), "A"),
    (lambda: GLFT(gamma=0.1, k=1, A=1, sigma_window=-1), "sigma_window"),
    (lambda: MeanReversion(lookback=-1, entry_z=2, exit_z=0.5, stop_z=3), "lookback"),
    (lambda: MeanReversion(lookback=1, entry_z=2, exit_z=0.5, stop_z=3), "lookback"),
    (lambda: MeanReversion(lookback=20, entry_z=0.5, exit_z=0.5, stop_z=3), "entry_z"),
    (lambda: MeanReversion(lookback=20, entry_z=0.4, exit_z=0.5, stop_z=3), "entry_z"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=-0.1, stop_z=3), "exit_z"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=0.5, stop_z=2), "stop_z"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=0.5, stop_z=1), "stop_z"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=0.5, stop_z=3, order_qty=0), "order_qty"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=0.5, stop_z=3, interval_ns=-1), "interval_ns"),
])
def test_bad_parameters_name_the_parameter(make, name):
    with pytest.raises(ValueError) as e:
        make()
    assert str(e.value).startswith(name + " ")


@pytest.mark.parametrize("make, name", [
    (lambda: AvellanedaStoikov(gamma="0.1", k=1), "gamma"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=True), "k"),
    (lambda: AvellanedaStoikov(gamma=0.1, k=1, order_qty=1.5), "order_qty"),
    (lambda: MeanReversion(lookback=20, entry_z=2, exit_z=0.5, stop_z=3, use_market_orders=1), "use_market_orders"),
])
def test_wrong_types_name_the_parameter(make, name):
    with pytest.raises(TypeError) as e:
        make()
    assert str(e.value).startswith(name + " ")


# -- end to end on the bundled sample -------------------------------------------------------------------
class TouchCheck:
    """Mixin: after each on_timer, every order sent in it is checked against the local touch."""

    def on_start(self, ctx):
        super().on_start(ctx)
        self.sent, self.max_live = [], 0

    def on_timer(self, ctx):
        before = set(ctx.open_orders())
        super().on_timer(ctx)
        bb, ba = ctx.best_bid(), ctx.best_ask()
        open_ = ctx.open_orders()
        for oid, o in open_.items():
            if oid not in before and o.state == OrderState.NEW:
                self.sent.append((oid, o.side, o.price, bb and bb[0], ba and ba[0]))
        for side in (Side.BID, Side.ASK):
            live = sum(1 for oid, o in open_.items() if o.side == side and oid not in self._cancelling)
            self.max_live = max(self.max_live, live)


class CheckedAS(TouchCheck, AvellanedaStoikov):
    pass


class CheckedGLFT(TouchCheck, GLFT):
    pass


def _run(strategy, latency_ms=1, seed=5):
    lat = Constant(latency_ms * MS) if latency_ms else None
    return Backtest(str(SAMPLE), strategy, latency=lat, fees=Fees(maker=-0.0001, taker=0.0004), seed=seed).run()


MM_CASES = [
    ("as-online", lambda: CheckedAS(gamma=0.05, k=2.0, interval_ns=10 * MS, max_inventory=3, sigma_min_changes=20)),
    ("as-fixed-horizon", lambda: CheckedAS(gamma=0.02, k=2.0, sigma=2.0, horizon_ns=500 * MS, interval_ns=10 * MS,
                                           max_inventory=2)),
    ("glft", lambda: CheckedGLFT(gamma=0.1, k=1.0, A=100.0, interval_ns=10 * MS, max_inventory=3,
                                 sigma_min_changes=20)),
    ("glft-qty2", lambda: CheckedGLFT(gamma=0.05, k=2.0, A=500.0, sigma=3.0, order_qty=2, interval_ns=5 * MS,
                                      max_inventory=4, requote_ticks=2)),
]


@pytest.mark.parametrize("latency_ms", [0, 1, 10])
@pytest.mark.parametrize("name, make", MM_CASES, ids=[c[0] for c in MM_CASES])
def test_market_makers_end_to_end(name, make, latency_ms):
    s = make()
    res = _run(s, latency_ms)
    f, o = res.fills, res.orders
    assert len(f) > 0, "the strategy should trade on the sample"
    assert f["maker"].all()                                         # post-only: every fill a maker fill
    new = o[o["state"] == OrderState.NEW]
    assert (new["tif"] == TimeInForce.POST_ONLY).all()
    assert (new["qty"] == s.order_qty).all()
    # the inventory bound: max_inventory + order_qty at most; by design (worst-case exposure) max_inventory
    assert np.abs(f["position"]).max() <= s.max_inventory + s.order_qty
    assert np.abs(f["position"]).max() <= s.max_inventory
    # every quote sent was inside the local touch: bid < best ask, ask > best bid
    assert len(s.sent) == len(new)
    for _, side, price, bb, ba in s.sent:
        if side == Side.BID:
            assert ba is None or price <= ba - 1
        else:
            assert bb is None or price >= bb + 1
    # after every wake-up at most one order per side is live (not being cancelled)
    assert s.max_live <= 1


def test_inventory_limit_is_reached_and_held():
    """A tight limit and a cheap quote: the position reaches max_inventory and never passes it."""
    for latency_ms in (0, 10):
        s = GLFT(gamma=0.01, k=5.0, A=1000.0, sigma=1.0, interval_ns=5 * MS, max_inventory=2)
        f = _run(s, latency_ms).fills
        assert np.abs(f["position"]).max() == 2


def test_market_makers_are_deterministic_and_reusable():
    a = _run(AvellanedaStoikov(gamma=0.05, k=2.0, interval_ns=10 * MS, max_inventory=3, sigma_min_changes=20))
    s = AvellanedaStoikov(gamma=0.05, k=2.0, interval_ns=10 * MS, max_inventory=3, sigma_min_changes=20)
    b, c = _run(s), _run(s)  # the same instance twice: on_start resets its state
    for r in (b, c):
        for field in ("fills", "orders", "position"):
            assert np.array_equal(getattr(a, field), getattr(r, field))


def test_fixed_sigma_never_waits_and_online_sigma_does():
    fixed = _run(AvellanedaStoikov(gamma=0.05, k=2.0, sigma=2.0, interval_ns=10 * MS))
    online = _run(AvellanedaStoikov(gamma=0.05, k=2.0, interval_ns=10 * MS, sigma_min_changes=50))
    first_fixed = fixed.orders["ts_local"][0]
    first_online = online.orders["ts_local"][0]
    assert first_online - first_fixed >= 49 * 10 * MS  # 50 changes need 51 samples, one per 10 ms tick


@pytest.mark.parametrize("use_market_orders", [False, True])
@pytest.mark.parametrize("latency_ms", [0, 1, 10])
def test_mean_reversion_end_to_end(use_market_orders, latency_ms):
    def make():
        return MeanReversion(lookback=50, entry_z=1.5, exit_z=0.2, stop_z=3.0, order_qty=2,
                             use_market_orders=use_market_orders, interval_ns=10 * MS)

    s = make()
    res = _run(s, latency_ms)
    f, o = res.fills, res.orders
    assert len(f) > 0
    assert np.abs(f["position"]).max() <= s.order_qty    # one order in flight at a time: never past the target
    new = o[o["state"] == OrderState.NEW]
    if use_market_orders:
        assert (new["tif"] == TimeInForce.MARKET).all()
        assert not f["maker"].any()
    else:
        assert set(new["tif"].tolist()) <= {TimeInForce.POST_ONLY, TimeInForce.MARKET}  # market = stop-outs
        limit_ids = new["order_id"][new["tif"] == TimeInForce.POST_ONLY]
        assert f["maker"][np.isin(f["order_id"], limit_ids)].all()
        assert (new["tif"] == TimeInForce.POST_ONLY).any()
    again = _run(make(), latency_ms)
    assert np.array_equal(again.fills, f) and np.array_equal(again.orders, o)


def test_mean_reversion_stops_out_at_market():
    # a tight stop on the sample's trending stretches: some stop-outs happen, each a MARKET order
    s = MeanReversion(lookback=30, entry_z=1.0, exit_z=0.1, stop_z=1.5, interval_ns=10 * MS)
    res = _run(s)
    new = res.orders[res.orders["state"] == OrderState.NEW]
    market = new[new["tif"] == TimeInForce.MARKET]
    assert len(market) > 0
    flat_after = res.fills[np.isin(res.fills["order_id"], market["order_id"])]
    assert (flat_after["position"] == 0).all()  # a stop-out flattens


# -- the README's example ---------------------------------------------------------------------------
AMZN = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"


def test_readme_strategies_example_prints_what_it_says(tmp_path, capsys):
    """The code block of README "Strategies and calibration" run on the AMZN day: its output is the
    commented lines under it."""
    if not AMZN.exists():
        pytest.skip(f"LOBSTER sample not found at {AMZN}")
    from lobsim.data import read_lobster, write_parquet

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Strategies and calibration", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = [ln[2:] for ln in code.splitlines() if ln.startswith("# ")]
    path = tmp_path / "amzn.parquet"
    write_parquet(read_lobster(AMZN), path)
    exec(compile(code.replace('"amzn.parquet"', repr(str(path))), "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
