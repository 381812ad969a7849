"""Order-book and trade signals, each defined once and available in two forms.

Vectorized over a depth series (numpy, no Python loop per row)::

    from lobsim.book import depth_series
    from lobsim import features as F

    ds = depth_series(events, 5, batch_end_only=True)   # the book at every batch end
    ts = F.row_times(events, ds)                         # ts_exch of each row (ns)
    mid = F.mid(ds)                                      # (rows,) float64, NaN where one-sided
    ofi = F.ofi(ds, ts=ts, window_ns=1_000_000_000)      # OFI over the last second, at each row

Incremental inside a strategy (a small object updated with one book top, the
``lobsim.book.Depth`` that ``ctx.depth(levels)`` returns, and for the trade
features with trade prints)::

    class MyStrategy(Strategy):
        def on_start(self, ctx):
            self.ofi = F.OFI(window_ns=1_000_000_000)
        def on_book(self, ctx):
            value = self.ofi.update(ctx.depth(1), ctx.now)

Both forms call the same kernel (``_k_*`` below: one formula per feature, on
numpy arrays; the incremental objects pass one-row arrays), and windowed sums
are kept in integers (lots, squared half-ticks, counts), so the two forms give
the same numbers bit for bit (tests/test_features.py checks it on the bundled
sample and on real captures).

Units: prices in ticks, quantities in lots, times in ns (the vectorized form
takes the row times explicitly, normally ``events["ts_exch"][ds.index]``).

Empty sides. A depth row shows an empty level as price 0, qty 0; a side is
*present* when its best level has qty > 0 (price 0 may be a real price). Where
either best level is absent (one-sided or empty book), ``mid``,
``weighted_mid``, ``spread`` and ``book_imbalance`` are NaN. OFI and realized
volatility are never NaN: OFI treats an absent bid as price -inf, qty 0 and an
absent ask as price +inf, qty 0 (so a side that vanishes removes its queue and
one that appears adds it), and realized volatility measures each change between
consecutive rows that have a mid, skipping the rows without one.

Windows. A feature "over a window of W ns" at a row (or event) of time t sums
over the rows (events) up to and including that one whose time is in
(t - W, t]. Times must be non-decreasing.

Definitions:

- ``mid`` = (best bid + best ask) / 2 (ticks; half ticks when the spread is odd).
- ``weighted_mid`` = ask * I + bid * (1 - I), I = bid_qty / (bid_qty + ask_qty)
  at the best level: the imbalance-weighted (size-weighted) mid, the
  "weighted mid-price" of Stoikov (2018). It is NOT Stoikov's micro-price: the
  micro-price P_micro = lim_n E[M_{tau_n} | I, S] (the limit of expected future
  mids given the imbalance and spread) is mid + g(I, S) where g comes from a
  Markov transition model of (imbalance bucket, spread, mid move) fitted on
  data; no such fit is done here.
  S. Stoikov, "The micro-price: a high-frequency estimator of future prices",
  Quantitative Finance 18(12), 2018.
- ``spread`` = best ask - best bid (ticks).
- ``book_imbalance(levels=N)`` = (sum bid qty - sum ask qty) / (sum of both)
  over the top N levels of each side, in [-1, 1].
- ``ofi_events`` / ``ofi``: order-flow imbalance of R. Cont, A. Kukanov and
  S. Stoikov, "The price impact of order book events", Journal of Financial
  Econometrics 12(1), 2014, eq. (10): between consecutive rows n-1, n of the
  best quotes (P^B, q^B, P^A, q^A),
      e_n = 1{P^B_n >= P^B_{n-1}} q^B_n - 1{P^B_n <= P^B_{n-1}} q^B_{n-1}
          - 1{P^A_n <= P^A_{n-1}} q^A_n + 1{P^A_n >= P^A_{n-1}} q^A_{n-1}
  (lots). The first row has no predecessor: e_0 = 0. OFI over an interval is
  the sum of e_n over the rows in it (the paper's OFI_k); ``ofi`` gives it over
  a trailing window, or cumulated from the first row (window_ns=None), whose
  differences at interval ends are the paper's OFI_k.
- ``realized_vol(window_ns)``: sqrt of the sum of squared changes of the mid
  in ticks (not log returns: an integer grid, exact) sampled in event time,
  i.e. at every row of the depth series (every batch end), each change taken
  between a row with a mid and the previous row with one; over the window.
  Ticks, not normalized: divide by sqrt(W in seconds) for ticks / sqrt(s).
  Rows with no change contribute 0. (lobsim.calibrate.sigma samples on a fixed
  time grid instead, which damps microstructure noise; this one reacts at once.)
- ``trade_intensity(window_ns)``: TRADE prints (kind TRADE only, hidden prints
  included; EXECUTE events are the book side of a print and are not counted)
  in the window, divided by the window in seconds: prints per second.
- ``signed_volume(window_ns)``: sum of side * qty of the TRADE prints in the
  window (side = aggressor, +1 buy, -1 sell; 0 unknown contributes 0), lots.
"""
import math
from collections import deque

import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind

__all__ = [
    "row_times", "mid", "weighted_mid", "spread", "book_imbalance", "ofi_events", "ofi", "realized_vol",
    "trade_intensity", "signed_volume",
    "Mid", "WeightedMid", "Spread", "BookImbalance", "OFI", "RealizedVol", "TradeIntensity", "SignedVolume",
]

NS_PER_S = 1_000_000_000
NAN = float("nan")


# ---------------------------------------------------------------------------
# Kernels: the one definition of each feature. Each takes either int64 numpy
# arrays of the best level (the vectorized form: one element per row) or plain
# Python ints (the incremental form: one row), with the same operations in the
# same order: IEEE double arithmetic is correctly rounded in both, and integer
# sums are exact, so both forms give the same numbers bit for bit.

def _where(cond, a, b):
    if isinstance(cond, np.ndarray):
        return np.where(cond, a, b)
    return a if cond else b


def _sqrt(x):
    return np.sqrt(x) if isinstance(x, np.ndarray) else math.sqrt(x)


def _k_present(bq, aq):
    """Both sides have a best level (qty > 0; an empty level is price 0, qty 0)."""
    return (bq > 0) & (aq > 0)


def _k_mid(bp, bq, ap, aq):
    return _where(_k_present(bq, aq), (bp + ap) / 2.0, NAN)


def _k_weighted_mid(bp, bq, ap, aq):
    ok = _k_present(bq, aq)
    i = bq / _where(ok, bq + aq, 1)  # I = bid_qty / (bid_qty + ask_qty)
    return _where(ok, ap * i + bp * (1.0 - i), NAN)


def _k_spread(bp, bq, ap, aq):
    return _where(_k_present(bq, aq), (ap - bp) * 1.0, NAN)


def _k_imbalance(bq, aq, sum_bid, sum_ask):
    """bq, aq: best-level sizes (presence); sum_bid, sum_ask: sizes summed over the top N levels."""
    ok = _k_present(bq, aq)
    return _where(ok, (sum_bid - sum_ask) / _where(ok, sum_bid + sum_ask, 1), NAN)


def _k_ofi(pbp, pbq, pap, paq, bp, bq, ap, aq):
    """e_n of Cont, Kukanov and Stoikov (2014) from the previous best quotes (p*) to the
    current ones; an absent bid is price -inf qty 0, an absent ask price +inf qty 0."""
    pb, cb, pa, ca = pbq > 0, bq > 0, paq > 0, aq > 0
    bid_ge = _where(pb, _where(cb, bp >= pbp, False), True)  # 1{P^B_n >= P^B_{n-1}}
    bid_le = _where(cb, _where(pb, bp <= pbp, False), True)  # 1{P^B_n <= P^B_{n-1}}
    ask_le = _where(pa, _where(ca, ap <= pap, False), True)  # 1{P^A_n <= P^A_{n-1}}
    ask_ge = _where(ca, _where(pa, ap >= pap, False), True)  # 1{P^A_n >= P^A_{n-1}}
    return (_where(bid_ge, bq, 0) - _where(bid_le, pbq, 0)
            - _where(ask_le, aq, 0) + _where(ask_ge, paq, 0))


def _k_mid2(bp, bq, ap, aq):
    """Twice the mid (an integer: no rounding), and whether there is one."""
    return bp + ap, _k_present(bq, aq)


def _k_sq_change(prev2, cur2):
    """(2 * change of the mid)^2: an integer, in quarter ticks^2."""
    d = cur2 - prev2
    return d * d


def _k_rv(sum_sq):
    """Realized volatility in ticks from a sum of (2 * mid change)^2."""
    return _sqrt(sum_sq * 1.0) / 2.0


def _k_intensity(count, window_ns):
    return count / (window_ns / NS_PER_S)


def _k_signed(side, qty):
    return side * qty


# ---------------------------------------------------------------------------
# Argument helpers

def _window(window_ns, allow_none=False):
    if window_ns is None and allow_none:
        return None
    if isinstance(window_ns, bool) or not isinstance(window_ns, (int, np.integer)) or window_ns <= 0:
        raise ValueError(f"window_ns must be a positive integer number of ns, got {window_ns!r}")
    return int(window_ns)


def _levels(levels):
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels <= 0:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    return int(levels)


def _series(ds, min_levels=1):
    arrs = []
    for name in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        a = np.asarray(getattr(ds, name), dtype=np.int64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (rows, levels), got {a.shape}")
        arrs.append(a)
    if arrs[0].shape[1] < min_levels:
        raise ValueError(f"the depth has {arrs[0].shape[1]} levels, {min_levels} needed")
    return arrs


def _top(ds):
    return [a[:, 0] for a in _series(ds)]


def _times(ts, rows):
    if ts is None:
        raise ValueError("a windowed feature needs ts (the ns time of each row, e.g. row_times(events, ds))")
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape != (rows,):
        raise ValueError(f"ts must have one time per row ({rows}), got shape {ts.shape}")
    if rows and np.any(ts[1:] < ts[:-1]):
        raise ValueError("ts must be non-decreasing")
    return ts


def _window_sum(values, ts, window_ns):
    """At each row i: sum of values[j] for j <= i with ts[j] > ts[i] - window_ns (int64)."""
    c = np.concatenate(([0], np.cumsum(values, dtype=np.int64)))
    if window_ns is None:
        return c[1:]
    lo = np.searchsorted(ts, ts - window_ns, side="right")
    return c[1:] - c[lo]


def _events(events):
    a = getattr(events, "array", events)
    if not isinstance(a, np.ndarray) or a.dtype != EVENT_DTYPE:
        raise TypeError("events must be a numpy array of lobsim.EVENT_DTYPE or lobsim.data.Events")
    return a


def row_times(events, ds):
    """ts_exch (ns) of each row of a depth series of `events`."""
    return _events(events)["ts_exch"][np.asarray(ds.index)]


# ---------------------------------------------------------------------------
# Vectorized forms: O(rows * levels) time, no Python loop per row.

def mid(ds):
    """(bid + ask) / 2 in ticks per row; NaN where a side is empty."""
    return _k_mid(*_top(ds))


def weighted_mid(ds):
    """Imbalance-weighted mid ask * I + bid * (1 - I), I = bid_qty / (bid_qty + ask_qty), per row;
    NaN where a side is empty. Stoikov's (2018) weighted mid, not his micro-price (see the module doc)."""
    return _k_weighted_mid(*_top(ds))


def spread(ds):
    """ask - bid in ticks per row (float64); NaN where a side is empty."""
    return _k_spread(*_top(ds))


def book_imbalance(ds, levels=1):
    """(sum bid qty - sum ask qty) / (sum of both) over the top `levels` of each side, per row;
    NaN where a side is empty."""
    levels = _levels(levels)
    _, bq, _, aq = _series(ds, levels)
    return _k_imbalance(bq[:, 0], aq[:, 0], bq[:, :levels].sum(axis=1), aq[:, :levels].sum(axis=1))


def ofi_events(ds):
    """e_n of Cont, Kukanov and Stoikov (2014) at each row (int64 lots; e_0 = 0)."""
    bp, bq, ap, aq = _top(ds)
    e = np.zeros(len(bp), dtype=np.int64)
    if len(bp) > 1:
        e[1:] = _k_ofi(bp[:-1], bq[:-1], ap[:-1], aq[:-1], bp[1:], bq[1:], ap[1:], aq[1:])
    return e


def ofi(ds, ts=None, window_ns=None):
    """Order-flow imbalance at each row: sum of e_n over the rows in (t - window_ns, t]
    (needs `ts`), or from the first row when window_ns is None. int64 lots."""
    window_ns = _window(window_ns, allow_none=True)
    e = ofi_events(ds)
    return _window_sum(e, None if window_ns is None else _times(ts, len(e)), window_ns)


def _sq_changes(ds):
    m2, ok = _k_mid2(*_top(ds))
    n = len(m2)
    # index of the last row with a mid strictly before each row (-1: none)
    last = np.maximum.accumulate(np.where(ok, np.arange(n), -1))
    prev = np.concatenate(([-1], last[:-1])) if n else last
    use = ok & (prev >= 0)
    sq = np.zeros(n, dtype=np.int64)
    sq[use] = _k_sq_change(m2[prev[use]], m2[use])
    return sq


def realized_vol(ds, ts, window_ns):
    """sqrt(sum of squared mid changes) in ticks over the rows in (t - window_ns, t], at each
    row (event-time sampling; see the module doc). float64, never NaN."""
    window_ns = _window(window_ns)
    sq = _sq_changes(ds)
    return _k_rv(_window_sum(sq, _times(ts, len(sq)), window_ns))


def _trade_window(events, window_ns, index, values):
    ev = _events(events)
    window_ns = _window(window_ns)
    ts = ev["ts_exch"]
    if len(ts) and np.any(ts[1:] < ts[:-1]):
        raise ValueError("events' ts_exch must be non-decreasing")
    trades = ev["kind"] == EventKind.TRADE
    tidx = np.flatnonzero(trades)
    if index is None:
        index = tidx
    index = np.asarray(index, dtype=np.int64)
    if len(index) and (index.min() < 0 or index.max() >= len(ev)):
        raise IndexError("index holds event indices outside the events")
    c = np.concatenate(([0], np.cumsum(values(ev[trades]), dtype=np.int64)))
    hi = np.searchsorted(tidx, index, side="right")  # prints at or before the event
    lo = np.searchsorted(ts[tidx], ts[index] - window_ns, side="right")  # prints at or before t - W
    return c[hi] - c[np.minimum(lo, hi)], index


def trade_intensity(events, window_ns, index=None):
    """TRADE prints per second over (t - window_ns, t], evaluated at the events `index`
    (event indices, e.g. a DepthSeries' .index; default: at every print), counting only
    prints at or before that event. float64."""
    count, _ = _trade_window(events, window_ns, index, lambda tr: np.ones(len(tr), dtype=np.int64))
    return _k_intensity(count, _window(window_ns))


def signed_volume(events, window_ns, index=None):
    """Sum of side * qty of the TRADE prints in (t - window_ns, t] (side = aggressor), at the
    events `index` as in trade_intensity. int64 lots."""
    vol, _ = _trade_window(events, window_ns, index,
                           lambda tr: _k_signed(tr["side"].astype(np.int64), tr["qty"]))
    return vol


# ---------------------------------------------------------------------------
# Incremental forms: update with one book top (a lobsim.book.Depth: 1-d arrays,
# best first, empty levels 0) or one print. O(1) amortized per update
# (O(levels) for BookImbalance), a few microseconds from Python.

def _best(depth):
    """(bid_px, bid_qty, ask_px, ask_qty) of the best level as Python ints."""
    return (int(depth.bid_px[0]), int(depth.bid_qty[0]), int(depth.ask_px[0]), int(depth.ask_qty[0]))


class _Book:
    """Base of the book features: `update(depth, ts=None)` returns the new value, also kept in
    `.value` (NaN before the first update)."""

    value = NAN

    def __repr__(self):
        return f"{type(self).__name__}(value={self.value!r})"


class Mid(_Book):
    """Incremental `mid`."""

    def update(self, depth, ts=None):
        self.value = _k_mid(*_best(depth))
        return self.value


class WeightedMid(_Book):
    """Incremental `weighted_mid` (the imbalance-weighted mid; not Stoikov's fitted micro-price)."""

    def update(self, depth, ts=None):
        self.value = _k_weighted_mid(*_best(depth))
        return self.value


class Spread(_Book):
    """Incremental `spread`."""

    def update(self, depth, ts=None):
        self.value = _k_spread(*_best(depth))
        return self.value


class BookImbalance(_Book):
    """Incremental `book_imbalance` over the top `levels` (the depth must have that many)."""

    def __init__(self, levels=1):
        self.levels = _levels(levels)

    def update(self, depth, ts=None):
        n = self.levels
        if len(depth.bid_qty) < n or len(depth.ask_qty) < n:
            raise ValueError(f"the depth has {min(len(depth.bid_qty), len(depth.ask_qty))} levels, {n} needed")
        self.value = _k_imbalance(int(depth.bid_qty[0]), int(depth.ask_qty[0]),
                                  int(depth.bid_qty[:n].sum()), int(depth.ask_qty[:n].sum()))
        return self.value


class _Windowed(_Book):
    """A trailing-window integer sum of per-update contributions (window_ns None: since the start).
    Updates must come with non-decreasing ts."""

    def __init__(self, window_ns):
        self.window_ns = window_ns
        self._items = deque()
        self._sum = 0
        self._last_ts = None

    def _push(self, ts, x):
        if self.window_ns is None:
            self._sum += x
            return
        if ts is None:
            raise ValueError(f"{type(self).__name__} with a window needs ts (ns) at every update")
        ts = int(ts)
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"ts went back: {ts} after {self._last_ts}")
        self._last_ts = ts
        items = self._items
        items.append((ts, x))
        self._sum += x
        edge = ts - self.window_ns
        while items[0][0] <= edge:
            self._sum -= items.popleft()[1]


class OFI(_Windowed):
    """Incremental `ofi`: `update(depth, ts)` adds e_n from the previous book top (0 at the
    first update; also kept in `.last_event`) and returns the OFI over the trailing window,
    or since the first update when window_ns is None (int, lots)."""

    value = 0

    def __init__(self, window_ns=None):
        super().__init__(_window(window_ns, allow_none=True))
        self._prev = None
        self.last_event = 0

    def update(self, depth, ts=None):
        cur = _best(depth)
        e = 0 if self._prev is None else _k_ofi(*self._prev, *cur)
        self._prev = cur
        self.last_event = e
        self._push(ts, e)
        self.value = self._sum
        return self.value


class RealizedVol(_Windowed):
    """Incremental `realized_vol`: `update(depth, ts)` returns sqrt(sum of squared mid changes)
    in ticks over the trailing window."""

    value = 0.0

    def __init__(self, window_ns):
        super().__init__(_window(window_ns))
        self._prev2 = None  # 2 * the last mid seen

    def update(self, depth, ts=None):
        m2, ok = _k_mid2(*_best(depth))
        sq = 0
        if ok:
            if self._prev2 is not None:
                sq = _k_sq_change(self._prev2, m2)
            self._prev2 = m2
        self._push(ts, sq)
        self.value = _k_rv(self._sum)
        return self.value


class _Trades:
    """Base of the trade features: `on_trade(ts, side, qty)` for each TRADE print (side = the
    aggressor: +1 buy, -1 sell, 0 unknown), or `on_events(events)` for a chunk of the stream
    (its TRADE events are taken); `value(now)` returns the value over (now - window_ns, now].
    Prints and `now` must not go back in time."""

    def __init__(self, window_ns):
        self.window_ns = _window(window_ns)
        self._items = deque()
        self._sum = 0
        self._last_ts = None

    def _contribution(self, side, qty):
        raise NotImplementedError

    def on_trade(self, ts, side, qty):
        ts = int(ts)
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"ts went back: {ts} after {self._last_ts}")
        self._last_ts = ts
        x = self._contribution(int(side), int(qty))
        self._items.append((ts, x))
        self._sum += x

    def on_events(self, events):
        ev = _events(events)
        tr = ev[ev["kind"] == EventKind.TRADE]
        for ts, side, qty in zip(tr["ts_exch"].tolist(), tr["side"].tolist(), tr["qty"].tolist()):
            self.on_trade(ts, side, qty)

    def _current(self, now):
        edge = int(now) - self.window_ns
        items = self._items
        while items and items[0][0] <= edge:
            self._sum -= items.popleft()[1]
        return self._sum

    def __repr__(self):
        return f"{type(self).__name__}(window_ns={self.window_ns})"


class TradeIntensity(_Trades):
    """Incremental `trade_intensity`: prints per second over the trailing window."""

    def _contribution(self, side, qty):
        return 1

    def value(self, now):
        return _k_intensity(self._current(now), self.window_ns)


class SignedVolume(_Trades):
    """Incremental `signed_volume`: sum of aggressor side * qty over the trailing window (lots)."""

    def _contribution(self, side, qty):
        return _k_signed(side, qty)

    def value(self, now):
        return self._current(now)
