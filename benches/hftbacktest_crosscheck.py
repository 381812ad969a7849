"""Cross-check lobsim's simulated venue against hftbacktest where their models coincide.

    python benches/hftbacktest_crosscheck.py             # the table and the differences by cause
    python benches/hftbacktest_crosscheck.py --explain   # plus each differing order and the data at its price

hftbacktest (https://github.com/nkaz001/hftbacktest, `pip install hftbacktest==2.4.4`) is
an optional dependency of this script and of benches/bench_backtest.py only, never of
lobsim: without it the script says so and exits with status 2. About 25 s.

Where the models coincide, and how each side is set up:

- L2 data: the Binance USD-M capture in ../shared/data (read by lobsim.data.read_binance),
  and a synthetic L2 stream (bench_backtest.synthetic_l2: small levels, so the queue ahead
  is consumed by prints far more often than on BTCUSDT's deep touch). lobsim's events are
  converted row by row to hftbacktest's (SET_LEVEL -> DEPTH_EVENT, TRADE -> TRADE_EVENT,
  CLEAR -> DEPTH_CLEAR_EVENT of both sides; BUY_EVENT / SELL_EVENT from `side`, the
  aggressor's for a print in both; px = ticks * tick_size, qty = lots * lot_size as floats;
  exch_ts = ts_exch). The capture's clocks disagree (ts_local about 1.27 s before ts_exch):
  lobsim shifts every ts_local so the smallest feed latency is 0, as hftbacktest's
  correct_local_timestamp(base_latency=0) does, and applies events to the local view in
  venue order at the running maximum of ts_local (a feed is FIFO). The converted rows
  carry exactly that clock as local_ts, each flagged EXCH_EVENT | LOCAL_EVENT, so both
  local views hold the same events at the same times. The "raw ts_local" scenario feeds
  hftbacktest its own pipeline instead (correct_local_timestamp + correct_event_order on the
  capture's ts_local: its local view follows ts_local order).
- Queue: lobsim.queue.RiskAverse() and hftbacktest's RiskAdverseQueueModel.
- Latency: lobsim.latency.Constant(entry, response) and constant_order_latency(entry, response).
- Exchange: NoPartialFillExchange (a quote is 1 lot in the main scenarios, so neither side
  can fill it in parts). PartialFillExchange aborts on this data (a known hftbacktest bug,
  issues #301 / #312; partial_fill_exchange_repro() is the smallest reproduction).
- Quoting rule, the same in both: every 100 ms of local time from the first event's local
  time (lobsim's timer; hftbacktest: elapse(0), elapse(to that time), then elapse(100 ms) in
  a loop), cancel every open order, then post 1 lot post-only (POST_ONLY / GTX) at the local
  best bid and at the local best ask. The order of timer tick t on side s (0 bid, 1 ask) has
  the key 2t + s in both (times `copies` plus the copy), so every order is compared with the
  same order of the other simulator.

Compared: every order's fills as (venue time, side, price in ticks, qty in lots), and every
quote price. Each differing order is classified by cause (CAUSES); the README section
"Cross-check against hftbacktest" has the table.

Importable: benches/bench_backtest.py uses to_hftbacktest(), run_hftbacktest(), run_lobsim()
and warm_up() to time hftbacktest's equivalent of its quoting bench.
"""
import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import lobsim
from lobsim import Backtest, EventKind, Strategy, TimeInForce
from lobsim.latency import Constant
from lobsim.queue import RiskAverse

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
USDM = sorted((DATA / "binance" / "usdm").glob("*.gz"))
INTERVAL_NS = 100_000_000

FILL_DTYPE = np.dtype([("key", "<i8"), ("ts_exch", "<i8"), ("side", "i1"), ("price", "<i8"), ("qty", "<i8")])


def hftbacktest_missing():
    """None when hftbacktest is importable, else the reason it is not."""
    try:
        import hftbacktest  # noqa: F401
    except ImportError as exc:
        return f"hftbacktest is not installed ({exc}); pip install hftbacktest==2.4.4 to run the cross-check"
    return None


def usdm_missing():
    if not USDM:
        return f"the Binance USD-M capture is absent ({DATA / 'binance' / 'usdm'}/*.gz)"
    return None


def load_usdm():
    """The Binance USD-M capture as lobsim Events (L2)."""
    from lobsim.data import read_binance

    return read_binance([str(p) for p in USDM])


def lobsim_local_clock(events):
    """(offset, visible): lobsim's clock-offset policy and the local time at which each
    event reaches the local view (running max of ts_local + offset: a feed is FIFO)."""
    lat_min = int(np.min(events["ts_local"] - events["ts_exch"]))
    offset = -lat_min if lat_min < 0 else 0
    return offset, np.maximum.accumulate(events["ts_local"] + offset)


# -- hftbacktest's data ----------------------------------------------------------

def to_hftbacktest(events, tick_size, lot_size, raw_local=False):
    """hftbacktest event rows (hftbacktest.types.event_dtype) for an L2 EVENT_DTYPE array.

    raw_local=False: local_ts = lobsim's local clock (see lobsim_local_clock), each row
    flagged EXCH_EVENT | LOCAL_EVENT. raw_local=True: the data's own ts_local through
    hftbacktest's correct_local_timestamp(base_latency=0) and correct_event_order, as its
    documentation prescribes for raw captures (the local side then follows ts_local order).
    O(n) (O(n log n) with raw_local)."""
    from hftbacktest import (BUY_EVENT, DEPTH_CLEAR_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT,
                             TRADE_EVENT)
    from hftbacktest.types import event_dtype

    kind = events["kind"]
    known = np.isin(kind, (EventKind.SET_LEVEL, EventKind.TRADE, EventKind.CLEAR))
    if not known.all():
        bad = np.flatnonzero(~known)[0]
        raise ValueError(f"event {bad}: kind {EventKind(int(kind[bad])).name} has no hftbacktest L2 equivalent")
    ev = np.zeros(len(events), dtype=np.uint64)
    ev[kind == EventKind.SET_LEVEL] = DEPTH_EVENT
    ev[kind == EventKind.TRADE] = TRADE_EVENT
    ev[kind == EventKind.CLEAR] = DEPTH_CLEAR_EVENT  # no side flag: both sides
    side = events["side"]
    ev[side == 1] |= np.uint64(BUY_EVENT)
    ev[side == -1] |= np.uint64(SELL_EVENT)
    out = np.zeros(len(events), dtype=event_dtype)
    out["exch_ts"] = events["ts_exch"]
    out["px"] = events["price"] * float(tick_size)
    out["qty"] = events["qty"] * float(lot_size)
    if not raw_local:
        out["ev"] = ev | np.uint64(EXCH_EVENT | LOCAL_EVENT)
        out["local_ts"] = lobsim_local_clock(events)[1]
        return out
    from hftbacktest.data.validation import correct_event_order, correct_local_timestamp, validate_event_order

    out["ev"] = ev
    out["local_ts"] = events["ts_local"]
    out = correct_local_timestamp(out, 0)
    out = correct_event_order(out, np.argsort(out["exch_ts"], kind="stable"),
                              np.argsort(out["local_ts"], kind="stable"))
    validate_event_order(out)
    return out


# -- the quoting rule in hftbacktest ---------------------------------------------

_HFT_LOOP = None


def _hft_loop():
    """The numba-compiled quoting loop (compiled on first call: see warm_up())."""
    global _HFT_LOOP
    if _HFT_LOOP is not None:
        return _HFT_LOOP
    from hftbacktest import EXPIRED, FILLED, GTX, LIMIT, NEW
    from numba import njit

    @njit
    def record(hbt, lot_size, fills, n):
        vals = hbt.orders(0).values()
        while vals.has_next():
            o = vals.get()
            if o.status == FILLED:
                fills[n, 0] = o.order_id
                fills[n, 1] = o.exch_timestamp
                fills[n, 2] = o.side
                fills[n, 3] = o.exec_price_tick
                fills[n, 4] = int(round(o.exec_qty / lot_size))
                n += 1
        return n

    @njit
    def loop(hbt, start_local, interval, qty, copies, lot_size, quotes, fills, expired):
        """Every `interval` from start_local: cancel open orders, post `copies` orders of
        `qty` GTX at the local best bid and ask. quotes[t] = (bid, ask) price ticks posted
        at tick t (0: none); fills rows (key, exch_ts, side, price tick, lots), key =
        (2t + side) * copies + copy; expired[key] = 1 for a rejected post-only.
        Returns (fills recorded, ticks run, the last elapse's return code)."""
        n = 0
        hbt.elapse(0)  # starts the clock at the first event (its exch_ts here)
        if start_local > hbt.current_timestamp:
            hbt.elapse(start_local - hbt.current_timestamp)
        t = 0
        while True:
            rc = hbt.elapse(interval)
            if rc != 0:
                break
            t += 1
            n = record(hbt, lot_size, fills, n)
            vals = hbt.orders(0).values()
            while vals.has_next():
                o = vals.get()
                if o.status == EXPIRED:
                    expired[o.order_id] = 1
            hbt.clear_inactive_orders(0)
            vals = hbt.orders(0).values()
            while vals.has_next():
                o = vals.get()
                if o.status == NEW and o.req == 0:
                    hbt.cancel(0, o.order_id, False)
            depth = hbt.depth(0)
            if depth.best_bid_qty > 0:
                quotes[t, 0] = depth.best_bid_tick
                for j in range(copies):
                    hbt.submit_buy_order(0, 2 * t * copies + j, depth.best_bid_tick * depth.tick_size, qty, GTX,
                                         LIMIT, False)
            if depth.best_ask_qty > 0:
                quotes[t, 1] = depth.best_ask_tick
                for j in range(copies):
                    hbt.submit_sell_order(0, (2 * t + 1) * copies + j, depth.best_ask_tick * depth.tick_size, qty,
                                          GTX, LIMIT, False)
        n = record(hbt, lot_size, fills, n)
        vals = hbt.orders(0).values()
        while vals.has_next():
            o = vals.get()
            if o.status == EXPIRED:
                expired[o.order_id] = 1
        return n, t, rc

    _HFT_LOOP = loop
    return loop


@dataclass
class QuoteRun:
    """One simulator's run of the quoting rule."""

    name: str
    fills: np.ndarray      # FILL_DTYPE, by key then venue time
    quotes: np.ndarray     # (ticks + 1, 2): price ticks quoted at each timer tick (bid, ask; 0 = none)
    rejected: int          # post-only orders rejected at arrival (would cross)
    ticks: int             # timer ticks run
    seconds: float         # the run alone (data conversion and compilation excluded)
    events: int
    error: int = 0         # hftbacktest: the elapse() error code that stopped the run (0 = none)


def _fills(columns):
    out = np.zeros(len(columns[0]), dtype=FILL_DTYPE)
    for name, col in zip(FILL_DTYPE.names, columns):
        out[name] = col
    out.sort(order=["key", "ts_exch"], kind="stable")
    return out


def run_hftbacktest(hev, tick_size, lot_size, start_local, *, entry_ns=1_000_000, response_ns=1_000_000,
                    interval_ns=INTERVAL_NS, qty_lots=1, copies=1, partial_fill=False, n_events=None):
    """Run the quoting rule in hftbacktest on converted rows `hev` (to_hftbacktest). The timer
    starts at start_local (0: at hftbacktest's own start, the earliest timestamp of the data).

    hftbacktest reads `hev` in place without holding a reference (BacktestAsset.data
    passes its address): the caller keeps it alive for the run."""
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    loop = _hft_loop()
    origin = int(min(hev["exch_ts"].min(), hev["local_ts"].min())) if len(hev) else 0
    span = int(hev["local_ts"].max()) - max(origin, int(start_local)) if len(hev) else 0
    n_ticks = max(span // interval_ns + 3, 3)
    quotes = np.zeros((n_ticks, 2), dtype=np.int64)
    fills = np.zeros((2 * copies * n_ticks, 5), dtype=np.int64)
    expired = np.zeros(2 * copies * (n_ticks + 1), dtype=np.int8)
    asset = (BacktestAsset().data(hev).linear_asset(1.0).constant_order_latency(entry_ns, response_ns)
             .risk_adverse_queue_model().trading_value_fee_model(0.0, 0.0)
             .tick_size(float(tick_size)).lot_size(float(lot_size)).last_trades_capacity(0))
    asset = asset.partial_fill_exchange() if partial_fill else asset.no_partial_fill_exchange()
    t = time.perf_counter()
    hbt = HashMapMarketDepthBacktest([asset])
    n, ticks, rc = loop(hbt, int(start_local), int(interval_ns), qty_lots * float(lot_size), copies,
                        float(lot_size), quotes, fills, expired)
    secs = time.perf_counter() - t
    hbt.close()
    return QuoteRun("hftbacktest", _fills(fills[:n].T), quotes[:ticks + 1], int(expired.sum()), ticks, secs,
                    len(hev) if n_events is None else n_events, 0 if rc == 1 else int(rc))


def warm_up():
    """Compile hftbacktest's quoting loop (numba) on six hand-made rows; the seconds it took."""
    from hftbacktest import BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, SELL_EVENT, TRADE_EVENT
    from hftbacktest.types import event_dtype

    t = time.perf_counter()
    rows = np.zeros(6, dtype=event_dtype)
    flags = np.uint64(EXCH_EVENT | LOCAL_EVENT)
    spec = [(DEPTH_EVENT | BUY_EVENT, 99.0, 5.0), (DEPTH_EVENT | SELL_EVENT, 101.0, 5.0),
            (TRADE_EVENT | SELL_EVENT, 99.0, 6.0), (DEPTH_EVENT | BUY_EVENT, 99.0, 1.0),
            (TRADE_EVENT | BUY_EVENT, 101.0, 9.0), (DEPTH_EVENT | SELL_EVENT, 101.0, 0.0)]
    for i, (ev, px, qty) in enumerate(spec):
        rows[i] = (np.uint64(ev) | flags, (i + 1) * 50_000_000, (i + 1) * 50_000_000 + 1, px, qty, 0, 0, 0.0)
    run_hftbacktest(rows, 1.0, 1.0, int(rows["local_ts"][0]), entry_ns=1, response_ns=1)
    return time.perf_counter() - t


# -- the quoting rule in lobsim ------------------------------------------------------

class Quoter(Strategy):
    """Every interval_ns: cancel every open order, post `copies` orders of qty lots post-only
    at the local best bid and at the local best ask. Keeps the key (2 * tick + side) *
    copies + copy of every order and the prices quoted."""

    def __init__(self, interval_ns=INTERVAL_NS, qty=1, copies=1):
        self.interval_ns = interval_ns
        self.qty = qty
        self.copies = copies
        self.tick = 0
        self.key = {}
        self.quotes = [(0, 0)]

    def on_timer(self, ctx):
        self.tick += 1
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        b = a = 0
        if bid is not None:
            b = bid[0]
            for j in range(self.copies):
                self.key[ctx.buy(b, self.qty, tif=TimeInForce.POST_ONLY)] = 2 * self.tick * self.copies + j
        if ask is not None:
            a = ask[0]
            for j in range(self.copies):
                self.key[ctx.sell(a, self.qty, tif=TimeInForce.POST_ONLY)] = (2 * self.tick + 1) * self.copies + j
        self.quotes.append((b, a))


def run_lobsim(data, *, entry_ns=1_000_000, response_ns=1_000_000, interval_ns=INTERVAL_NS, qty_lots=1, copies=1,
               n_events=None):
    """Run the quoting rule in lobsim (RiskAverse queue, constant latency)."""
    q = Quoter(interval_ns, qty_lots, copies)
    t = time.perf_counter()
    r = Backtest(data, q, latency=Constant(entry_ns, response_ns), queue=RiskAverse(), seed=0).run()
    secs = time.perf_counter() - t
    f = r.fills
    keys = np.array([q.key[int(i)] for i in f["order_id"]], dtype=np.int64)
    o = r.orders
    rejected = int(np.count_nonzero((o["state"] == lobsim.OrderState.REJECTED)
                                    & (o["reason"] == lobsim.RejectReason.WOULD_CROSS)))
    return QuoteRun("lobsim", _fills((keys, f["ts_exch"], f["side"], f["price"], f["qty"])),
                    np.array(q.quotes, dtype=np.int64), rejected, q.tick, secs, r.events if n_events is None else n_events)


# -- comparison --------------------------------------------------------------------

def _by_key(fills):
    out = {}
    for k, ts, side, price, qty in fills.tolist():
        out.setdefault(k, []).append((ts, side, price, qty))
    return out


@dataclass
class Comparison:
    lob: QuoteRun
    hft: QuoteRun
    copies: int
    identical: int       # orders whose fills are identical (venue time, side, price, qty of every fill)
    differ: list         # keys of the orders whose fills differ
    quotes_compared: int
    quotes_equal: int
    L: dict              # key -> [(ts_exch, side, price, qty), ...] of lobsim
    H: dict              # the same of hftbacktest
    unaligned: bool = False


def compare(lob, hft, copies=1):
    L, H = _by_key(lob.fills), _by_key(hft.fills)
    differ = sorted(k for k in set(L) | set(H) if L.get(k) != H.get(k))
    n = min(len(lob.quotes), len(hft.quotes))
    return Comparison(lob, hft, copies, sum(1 for k in L if L[k] == H.get(k)), differ, 2 * (n - 1),
                      int(np.count_nonzero(lob.quotes[1:n] == hft.quotes[1:n])), L, H)


CAUSES = {
    "aborted": "hftbacktest stopped on an error at or before this quote (PartialFillExchange leaves an order "
               "filled at its price by a print whose excess equals its leaves qty in its book, and the next print "
               "there raises InvalidOrderStatus: elapse() returns 14; hftbacktest issues #301, #312)",
    "local view": "the quote price differs: the two local views differed at the timer",
    "partial": "lobsim fills the order in parts as prints consume the queue; NoPartialFillExchange fills the "
               "whole order at the first print that reaches it",
    "shared excess": "two own orders at one price: lobsim shares a print's excess between them in time "
                     "priority; hftbacktest gives each order the full excess",
    "decrease before print": "the level's decrease was published before its print at the same stamp: lobsim lets "
                             "the print explain the decrease (the queue moves once), hftbacktest moves the queue "
                             "twice (min(front, level), then front -= print)",
    "timer": "the two timers tick at different times (hftbacktest's clock starts at the first row's exch_ts, "
             "lobsim's timer at the first event's local time): the strategies quote at different moments",
    "other": "not classified",
}


def classify(c, events, key, start_local, interval_ns, entry_ns):
    """The cause (a CAUSES key) of the difference at `key`, and the data lines behind it."""
    L, H = c.L, c.H
    t, s = divmod(key // c.copies, 2)
    if c.hft.error and t >= c.hft.ticks:
        return "aborted", []
    if c.unaligned:
        return "timer", []
    if t >= len(c.lob.quotes) or t >= len(c.hft.quotes) or c.lob.quotes[t, s] != c.hft.quotes[t, s]:
        return "local view", []
    side, price = (1 if s == 0 else -1), int(c.lob.quotes[t, s])
    arrive = start_local + t * interval_ns + entry_ns
    ends = [f[-1][0] for f in (L.get(key), H.get(key)) if f]
    end = max(ends) if ends else arrive + interval_ns
    i0 = np.searchsorted(events["ts_exch"], arrive, side="left")
    i1 = np.searchsorted(events["ts_exch"], end, side="right")
    win = events[i0:i1]
    at = win[(win["price"] == price) & (((win["kind"] == EventKind.SET_LEVEL) & (win["side"] == side))
                                        | ((win["kind"] == EventKind.TRADE) & (win["side"] == -side)))]
    lines = [f"      {int(e['ts_exch'])} "
             f"{'SET_LEVEL' if e['kind'] == EventKind.SET_LEVEL else 'TRADE'} qty {int(e['qty'])}" for e in at[:12]]
    lf, hf = L.get(key, []), H.get(key, [])
    if len(lf) > 1 or len(hf) > 1 or (lf and hf and lf[0][3] != hf[0][3]):
        return "partial", lines
    if c.copies > 1:
        return "shared excess", lines
    kinds, stamps = at["kind"], at["ts_exch"]
    if np.any((kinds[:-1] == EventKind.SET_LEVEL) & (kinds[1:] == EventKind.TRADE) & (stamps[1:] == stamps[:-1])):
        return "decrease before print", lines
    return "other", lines


def _direction(c, keys):
    """Which simulator fills first among the differing orders `keys`, as text."""
    n = {"hftbacktest first": 0, "lobsim first": 0, "same first fill": 0, "only hftbacktest": 0,
         "only lobsim": 0}
    for k in keys:
        lf, hf = c.L.get(k), c.H.get(k)
        if lf and hf:
            n["hftbacktest first" if hf[0][0] < lf[0][0] else "lobsim first" if lf[0][0] < hf[0][0]
              else "same first fill"] += 1
        else:
            n["only lobsim" if lf else "only hftbacktest"] += 1
    return ", ".join(f"{k} {v:,}" for k, v in n.items() if v)


def _level_at(events, ts_exch, side, price):
    """Displayed size at (side, price) of the venue book after the events before ts_exch. O(n)."""
    from lobsim.book import LevelBook

    with LevelBook() as book:
        book.apply(events[:np.searchsorted(events["ts_exch"], ts_exch, side="left")])
        d = book.depth(1 << 16)
    px, qty = (d.bid_px, d.bid_qty) if side == 1 else (d.ask_px, d.ask_qty)
    hit = np.flatnonzero(px == price)
    return int(qty[hit[0]]) if len(hit) else 0


def _fmt(fills):
    if not fills:
        return "no fill"
    return ", ".join(f"{'buy' if s == 1 else 'sell'} {q} @ {p} at {ts}" for ts, s, p, q in fills)


def partial_fill_exchange_repro():
    """hftbacktest's two exchange models and lobsim on 4 events: bid 99 x 5, ask 101 x 5, then
    buy prints of 6 and 1 lots at 101, with a 1-lot post-only sell at 101 resting first.
    -> ({model: (last elapse() code, fills)}, lobsim's fills as (venue time, lots))."""
    from hftbacktest import (BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, GTX, LIMIT, LOCAL_EVENT, SELL_EVENT,
                             TRADE_EVENT, BacktestAsset, HashMapMarketDepthBacktest)
    from hftbacktest.types import event_dtype

    S, T = EventKind.SET_LEVEL, EventKind.TRADE
    spec = [(1000, S, 1, 99, 5), (1000, S, -1, 101, 5), (5000, T, 1, 101, 6), (5000, T, 1, 101, 1)]
    rows = np.zeros(len(spec), dtype=event_dtype)
    for i, (ts, kind, side, px, qty) in enumerate(spec):
        ev = (DEPTH_EVENT if kind == S else TRADE_EVENT) | (BUY_EVENT if side == 1 else SELL_EVENT)
        rows[i] = (ev | EXCH_EVENT | LOCAL_EVENT, ts, ts, float(px), float(qty), 0, 0, 0.0)
    codes = {}
    for name, partial in (("NoPartialFillExchange", False), ("PartialFillExchange", True)):
        asset = (BacktestAsset().data(rows).linear_asset(1.0).constant_order_latency(100, 100)
                 .risk_adverse_queue_model().trading_value_fee_model(0.0, 0.0).tick_size(1.0).lot_size(1.0))
        asset = asset.partial_fill_exchange() if partial else asset.no_partial_fill_exchange()
        hbt = HashMapMarketDepthBacktest([asset])
        hbt.elapse(0)
        hbt.elapse(1000)
        hbt.submit_sell_order(0, 1, 101.0, 1.0, GTX, LIMIT, False)
        for _ in range(8):
            rc = hbt.elapse(1000)
            if rc != 0:
                break
        codes[name] = (rc, int(hbt.state_values(0).num_trades))
        hbt.close()
    events = np.zeros(len(spec), dtype=lobsim.EVENT_DTYPE)
    for i, (ts, kind, side, px, qty) in enumerate(spec):
        events[i] = (ts, ts, 0, px, qty, side, kind, 0, 0)

    class SellOnce(Strategy):
        def on_start(self, ctx):
            ctx.sell(101, 1, tif=TimeInForce.POST_ONLY)

    r = Backtest(events, SellOnce(), latency=Constant(100, 100)).run()
    return codes, [(int(f["ts_exch"]), int(f["qty"])) for f in r.fills]


def usdm_scenarios():
    return [
        ("USD-M, 1 lot, 1 ms / 1 ms, NoPartialFill", dict()),
        ("USD-M, same, PartialFillExchange", dict(partial_fill=True)),
        ("USD-M, same, integer units (tick 1, lot 1)", dict(units=(1.0, 1.0))),
        ("USD-M, same, zero order latency", dict(entry_ns=0, response_ns=0)),
        ("USD-M, same, 10 ms / 10 ms", dict(entry_ns=10_000_000, response_ns=10_000_000)),
        ("USD-M, same, raw ts_local (hftbacktest pipeline)", dict(raw_local=True)),
        ("USD-M, same, hftbacktest timer not aligned", dict(unaligned=True)),
        ("USD-M, 3 lots per quote", dict(qty_lots=3)),
        ("USD-M, two 1-lot orders per quote", dict(copies=2)),
    ]


def synthetic_scenarios():
    return [
        ("synthetic L2 500k, print then level change", dict(synthetic=dict(decrease_first=False))),
        ("synthetic L2 500k, level change then print", dict(synthetic=dict(decrease_first=True))),
        ("synthetic L2 500k, print first, two 1-lot orders", dict(synthetic=dict(decrease_first=False), copies=2)),
        ("synthetic L2 500k, print first, 3 lots per quote", dict(synthetic=dict(decrease_first=False), qty_lots=3)),
    ]


def run_scenario(opts, usdm=None):
    """(Comparison, events, start_local, latency) of one scenario."""
    if "synthetic" in opts:
        from bench_backtest import synthetic_l2

        a = synthetic_l2(500_000, seed=3, **opts["synthetic"])
        data, tick, lot = a, 1.0, 1.0
    else:
        data, a = usdm, usdm.array
        tick, lot = opts.get("units", (float(usdm.instrument.tick_size), float(usdm.instrument.lot_size)))
    lat = dict(entry_ns=opts.get("entry_ns", 1_000_000), response_ns=opts.get("response_ns", 1_000_000))
    size = dict(qty_lots=opts.get("qty_lots", 1), copies=opts.get("copies", 1))
    offset, _ = lobsim_local_clock(a)
    start = int(a["ts_local"][0]) + offset
    hev = to_hftbacktest(a, tick, lot, raw_local=opts.get("raw_local", False))
    # unaligned: hftbacktest's timer runs from its own start, the first row's exch_ts
    hft = run_hftbacktest(hev, tick, lot, 0 if opts.get("unaligned") else start,
                          partial_fill=opts.get("partial_fill", False), n_events=len(a), **lat, **size)
    del hev
    lob = run_lobsim(data, n_events=len(a), **lat, **size)
    c = compare(lob, hft, size["copies"])
    c.unaligned = bool(opts.get("unaligned"))
    return c, a, start, lat


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--explain", action="store_true", help="list every order whose fills differ, its cause and the "
                   "data at its price")
    p.add_argument("--limit", type=int, default=5, help="orders listed per scenario and cause with --explain")
    args = p.parse_args(argv)
    reason = hftbacktest_missing()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    import hftbacktest

    scenarios = []
    usdm = None
    if usdm_missing():
        print(f"note: {usdm_missing()}: only the synthetic scenarios run")
    else:
        t = time.perf_counter()
        usdm = load_usdm()
        print(f"data: {', '.join(p.name for p in USDM)}: {len(usdm):,} L2 events, {usdm.instrument} "
              f"(read in {time.perf_counter() - t:.1f} s)")
        scenarios += usdm_scenarios()
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        import bench_backtest  # noqa: F401  (synthetic_l2; the bench needs pytest)
    except ImportError as exc:
        print(f"note: the synthetic scenarios need benches/bench_backtest.py importable ({exc})")
    else:
        scenarios += synthetic_scenarios()
    print(f"hftbacktest {hftbacktest.__version__}; numba warm-up of its quoting loop: {warm_up():.2f} s "
          "(run once, excluded from the timings below)")
    print()
    head = (f"{'scenario':<48} {'fills L':>7} {'fills H':>7} {'orders filled L/H':>17} {'identical':>9} "
            f"{'differ':>6} {'quotes equal':>15} {'rejected L/H':>12} {'s L':>6} {'s H':>6}")
    print(head)
    print("-" * len(head))
    details = []
    for name, opts in scenarios:
        c, events, start, lat = run_scenario(opts, usdm)
        nl, nh = len(c.L), len(c.H)
        note = f"  hftbacktest stopped at tick {c.hft.ticks} (elapse code {c.hft.error})" if c.hft.error else ""
        print(f"{name:<48} {len(c.lob.fills):>7,} {len(c.hft.fills):>7,} {f'{nl:,}/{nh:,}':>17} {c.identical:>9,} "
              f"{len(c.differ):>6,} {f'{c.quotes_equal:,}/{c.quotes_compared:,}':>15} "
              f"{f'{c.lob.rejected:,}/{c.hft.rejected:,}':>12} {c.lob.seconds:>6.3f} {c.hft.seconds:>6.3f}{note}",
              flush=True)
        if not c.differ:
            continue
        by_cause = {}
        for k in c.differ:
            cause, lines = classify(c, events, k, start, INTERVAL_NS, lat["entry_ns"])
            by_cause.setdefault(cause, []).append((k, lines))
        details.append(f"{name}: " + "; ".join(f"{len(v):,} {k} ({_direction(c, [key for key, _ in v])})"
                                               for k, v in by_cause.items()))
        if args.explain:
            L, H = c.L, c.H
            for cause, items in by_cause.items():
                details.append(f"  {cause}: {CAUSES[cause]}")
                for k, lines in items[:args.limit]:
                    t, s = divmod(k // c.copies, 2)
                    price = int(c.lob.quotes[t, s]) if t < len(c.lob.quotes) else None
                    details.append(f"    order {k} (tick {t}, {'bid' if s == 0 else 'ask'} at {price}): "
                                   f"lobsim {_fmt(L.get(k))}; hftbacktest {_fmt(H.get(k))}")
                    if lines:
                        arrive = start + t * INTERVAL_NS + lat["entry_ns"]
                        details.append(f"      level at arrival ({arrive}): "
                                       f"{_level_at(events, arrive, 1 if s == 0 else -1, price)} lots; then:")
                    details += lines
    print("\nDifferences by cause (python benches/hftbacktest_crosscheck.py --explain for each order):" if details
          else "\nNo differences.")
    print("\n".join(details))
    codes, lob_fills = partial_fill_exchange_repro()
    print("\nhftbacktest PartialFillExchange, smallest reproduction (bid 99x5, ask 101x5, 1-lot GTX sell @101, "
          "buy prints 6 then 1 @101):")
    for name, (rc, trades) in codes.items():
        print(f"  {name}: last elapse() code {rc} ({'InvalidOrderStatus' if rc == 14 else 'end of data' if rc == 1 else rc}),"
              f" {trades} fill(s)")
    print(f"  lobsim: fills (venue time, lots) {lob_fills}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
