"""A two-sided quoter end to end on real captures: AMZN LOBSTER (L3, exact queue) and the
Binance USD-M capture (L2, RiskAverse, clock offset). Checks what must hold on any data:
every fill is explained, the account reconciles with the fills at every row, latency
delays the fills, the clock offset is the capture's, and runs are repeatable."""
import glob
from pathlib import Path

import numpy as np
import pytest

from lobsim import Backtest, Fees, Strategy, TimeInForce
from lobsim.book import depth_series
from lobsim.latency import Constant

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
AMZN = DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
USDM = sorted(glob.glob(str(DATA / "binance" / "usdm" / "*")))


class Quoter(Strategy):
    """Every 100 ms: cancel what is open, post 1 lot at the local best bid and ask."""

    interval_ns = 100_000_000

    def on_timer(self, ctx):
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid and ctx.position < 5:
            ctx.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)
        if ask and ctx.position > -5:
            ctx.sell(ask[0], 1, tif=TimeInForce.POST_ONLY)


def reconcile(res):
    f, vpt = res.fills, float(res.instrument.tick_size * res.instrument.lot_size)
    pos = np.cumsum(f["side"].astype(np.int64) * f["qty"])
    assert np.array_equal(pos, f["position"])
    assert np.allclose(-np.cumsum(f["side"] * f["qty"] * f["price"] * vpt + f["fee"]), f["cash"])
    assert np.all(f["ts_local"] >= f["ts_exch"])
    assert np.all(np.abs(f["position"]) <= 6)  # the quoter's limit, plus one fill in flight


@pytest.fixture(scope="module")
def amzn():
    if not AMZN.exists():
        pytest.skip(f"LOBSTER sample not found at {AMZN}")
    from lobsim.data import read_lobster

    return read_lobster(AMZN)


@pytest.fixture(scope="module")
def usdm():
    if not USDM:
        pytest.skip(f"Binance USD-M capture not found in {DATA / 'binance' / 'usdm'}")
    from lobsim.data import read_binance

    return read_binance(USDM)


def test_quoter_on_amzn_lobster_l3(amzn):
    runs = {lat: Backtest(amzn, Quoter(), latency=Constant(lat), fees=Fees(maker=-0.0002, taker=0.0003),
                          seed=7).run() for lat in (0, 10_000_000)}
    for res in runs.values():
        reconcile(res)
        assert len(res.fills) > 500 and res.fills["maker"].all()  # post-only: never a taker
        assert res.clock_offset_ns == 0
    # every fill of a resting order at L3 coincides with an execution or print, or with the
    # data's opposite best reaching the order's price (it quoted inside a spread that closed)
    ev = amzn.array
    f = runs[0].fills
    ts = np.unique(ev["ts_exch"][(ev["kind"] == 4) | (ev["kind"] == 7)])
    top = depth_series(ev, 1)
    for fill in f[~np.isin(f["ts_exch"], ts)]:
        rows = np.nonzero(ev["ts_exch"] == fill["ts_exch"])[0]
        assert len(rows)
        if fill["side"] == 1:
            assert np.any((top.ask_qty[rows, 0] > 0) & (top.ask_px[rows, 0] <= fill["price"])), fill
        else:
            assert np.any((top.bid_qty[rows, 0] > 0) & (top.bid_px[rows, 0] >= fill["price"])), fill
    again = Backtest(amzn, Quoter(), latency=Constant(10_000_000), fees=Fees(maker=-0.0002, taker=0.0003),
                     seed=7).run()
    assert again.fills.tobytes() == runs[10_000_000].fills.tobytes()


def test_quoter_on_binance_usdm_l2(usdm):
    res = Backtest(usdm, Quoter(), latency=Constant(1_000_000), fees=Fees(maker=-0.0001, taker=0.0004),
                   seed=7).run()
    reconcile(res)
    ev = usdm.array
    lat = ev["ts_local"] - ev["ts_exch"]
    assert lat.min() < 0 and res.clock_offset_ns == -int(lat.min())  # the recording clock lagged
    assert len(res.fills) > 100 and res.fills["maker"].all()
    # the answers reach the strategy one response latency after the venue did it, or later
    assert np.all(res.fills["ts_local"] - res.fills["ts_exch"] >= 1_000_000)
