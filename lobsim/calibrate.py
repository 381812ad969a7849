"""Calibration of the market-making models from data: sigma, and A, k of the fill intensity.

    from lobsim.calibrate import calibrate
    from lobsim.strategies import GLFT

    cal = calibrate("amzn.parquet")          # events, lobsim.data.Events, or a lobsim Parquet path
    print(cal)                               # the values with their fit quality
    strategy = GLFT(gamma=0.05, **cal.params())    # sigma, k, A in the strategies' units

Units are the strategies' (`lobsim.strategies`): prices in ticks, time in
seconds of data (exchange) time. So `sigma` is in ticks per sqrt(second), `A`
in 1 / second and `k` in 1 / tick.

Method (both from the top of book at the end of every atomic batch, via
`lobsim.book.depth_series(events, 1, batch_end_only=True)`):

- sigma: the mid (in ticks, half-ticks possible) sampled on a fixed grid of
  exchange time (default every 1 s: the mid standing at each grid time); sigma
  is the standard deviation of its changes between consecutive grid points,
  divided by sqrt(grid step in seconds). Grid points where one side of the
  book is empty have no mid; changes touching them are dropped.
- A, k: every TRADE print (hidden prints included) is taken at its distance
  delta = |price - mid| in ticks from the mid standing just before it (the
  book after the last complete batch before the print, so every print of one
  sweep is measured from the mid before the sweep). For each depth level d
  the prints reached (the distinct deltas, multiples of half a tick),
  lambda(d) = (number of prints with delta >= d) / (data time span in s).
  (Levels where prints happened, not a fixed grid: with a one-tick spread
  every delta is an odd number of half ticks, and a half-tick grid would add
  a copy of each count at the whole tick between, a staircase that biases
  A upward by about exp(k / 4).)
  Levels with at least `min_count` prints are fitted by least squares to
  log lambda(d) = log A - k d; R^2 is that regression's, in log space.

Every result carries its fit quality (points used, R^2); too little data
raises ValueError saying what is missing.
"""
import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from lobsim import _args
from lobsim._types import EVENT_DTYPE, EventKind

__all__ = ["TopOfBook", "SigmaFit", "IntensityFit", "Calibration", "top_of_book", "sigma", "intensity",
           "calibrate"]

NS_PER_S = 1_000_000_000


class TopOfBook(NamedTuple):
    """Top of book after every complete batch: `ts` (ts_exch, ns), `bid`, `ask` (ticks),
    `valid` (both sides present), `index` (the event index of each row), `span_s` (the
    data's exchange-time span in seconds, first to last event)."""

    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    valid: np.ndarray
    index: np.ndarray
    span_s: float

    @property
    def mid(self):
        """Mid in ticks (float; half-ticks when the spread is odd); NaN where a side is empty."""
        return np.where(self.valid, (self.bid + self.ask) / 2.0, np.nan)


@dataclass(frozen=True)
class SigmaFit:
    """Volatility of the mid: `per_second` in ticks per sqrt(second) of data time,
    from `n` changes of the mid sampled every `interval_ns`."""

    per_second: float
    n: int
    interval_ns: int

    def per_unit(self, unit_ns):
        """sigma in ticks per sqrt(time unit) for a time unit of `unit_ns` nanoseconds
        (a random walk's deviation grows with the square root of time)."""
        unit_ns = _args.integer("unit_ns", unit_ns, 1)
        return self.per_second * math.sqrt(unit_ns / NS_PER_S)

    def __str__(self):
        return (f"sigma = {self.per_second:.6g} ticks/sqrt(s) from {self.n:,} changes of the mid "
                f"sampled every {self.interval_ns / NS_PER_S:g} s")


@dataclass(frozen=True)
class IntensityFit:
    """lambda(delta) = A exp(-k delta): `A` in 1 / second, `k` in 1 / tick, fitted over
    `n` depth levels (`levels`, ticks, with `rates`, 1 / second) from `trades` prints
    over `span_s` seconds; `r2` of the fit of log lambda."""

    A: float
    k: float
    r2: float
    n: int
    trades: int
    span_s: float
    levels: np.ndarray
    rates: np.ndarray

    def rate(self, delta):
        """The fitted intensity at `delta` ticks from the mid, in 1 / second."""
        return self.A * np.exp(-self.k * np.asarray(delta, dtype=float))

    def __str__(self):
        return (f"A = {self.A:.6g} /s, k = {self.k:.6g} /tick (lambda(delta) = A exp(-k delta)); "
                f"R^2 {self.r2:.4f} over {self.n} depth levels {self.levels[0]:g} .. {self.levels[-1]:g} "
                f"ticks from {self.trades:,} trade prints in {self.span_s:,.1f} s")


@dataclass(frozen=True)
class Calibration:
    """Both fits. `sigma`, `A`, `k` are the strategies' parameters (ticks, seconds)."""

    sigma_fit: SigmaFit
    intensity_fit: IntensityFit

    @property
    def sigma(self):
        return self.sigma_fit.per_second

    @property
    def A(self):
        return self.intensity_fit.A

    @property
    def k(self):
        return self.intensity_fit.k

    def params(self, A=True):
        """{"sigma", "k", "A"} as keyword arguments of GLFT (A=False: of AvellanedaStoikov)."""
        out = {"sigma": self.sigma, "k": self.k}
        if A:
            out["A"] = self.A
        return out

    def __str__(self):
        return f"{self.sigma_fit}\n{self.intensity_fit}"


def _events(data):
    """An EVENT_DTYPE array from an array, a lobsim.data.Events or a lobsim Parquet path."""
    if isinstance(data, (str, os.PathLike)):
        from lobsim.data import read_parquet

        data = read_parquet(data)
    arr = getattr(data, "array", data)
    if not isinstance(arr, np.ndarray) or arr.dtype != EVENT_DTYPE:
        raise TypeError(f"data must be an EVENT_DTYPE array, a lobsim.data.Events or a Parquet path, "
                        f"got {type(data).__name__}")
    return arr


def top_of_book(data):
    """TopOfBook of `data` (events, Events or a Parquet path): one C replay,
    O(events). Pass it to `sigma` / `intensity` to replay only once."""
    from lobsim.book import depth_series

    ev = _events(data)
    if len(ev) == 0:
        raise ValueError("no events: nothing to calibrate")
    ds = depth_series(ev, 1, batch_end_only=True)
    bid, ask = ds.bid_px[:, 0].copy(), ds.ask_px[:, 0].copy()
    valid = (ds.bid_qty[:, 0] > 0) & (ds.ask_qty[:, 0] > 0)
    ts = ev["ts_exch"][ds.index]
    span = (int(ev["ts_exch"][-1]) - int(ev["ts_exch"][0])) / NS_PER_S
    return TopOfBook(ts, bid, ask, valid, ds.index.copy(), span)


def sigma(data, interval_ns=NS_PER_S, min_points=2):
    """Volatility of the mid from `data` (events, Events, a Parquet path or a TopOfBook):
    the standard deviation (ddof=0, as the strategies' online estimate) of the changes of the mid sampled every
    `interval_ns` of exchange time, scaled to ticks per sqrt(second).

    The grid starts at the first time the book has both sides; the mid at a
    grid time is the one standing then (the last complete batch at or before
    it). Needs at least `min_points` changes (ValueError otherwise). O(rows).
    """
    interval_ns = _args.integer("interval_ns", interval_ns, 1)
    min_points = _args.integer("min_points", min_points, 2)
    top = data if isinstance(data, TopOfBook) else top_of_book(data)
    if not top.valid.any():
        raise ValueError("the book never has both sides: no mid to compute sigma from")
    start = int(top.ts[np.argmax(top.valid)])
    grid = np.arange(start, int(top.ts[-1]) + 1, interval_ns, dtype=np.int64)
    row = np.searchsorted(top.ts, grid, side="right") - 1  # the book standing at each grid time
    mid = top.mid[row]
    changes = np.diff(mid)
    changes = changes[np.isfinite(changes)]
    if len(changes) < min_points:
        raise ValueError(f"sigma needs at least {min_points} changes of the mid sampled every "
                         f"{interval_ns / NS_PER_S:g} s, the data gives {len(changes)} "
                         f"(span {top.span_s:.3g} s): sample more often")
    per_step = float(np.std(changes))
    return SigmaFit(per_step / math.sqrt(interval_ns / NS_PER_S), int(len(changes)), interval_ns)


def trade_depths(data, top=None):
    """Distance in ticks of every TRADE print of `data` from the mid standing just
    before it (the book after the last complete batch before the print); prints
    with no two-sided book before them are left out. Returns a float array."""
    ev = _events(data)
    top = top_of_book(ev) if top is None else top
    trades = np.flatnonzero(ev["kind"] == EventKind.TRADE)
    row = np.searchsorted(top.index, trades, side="left") - 1  # last batch end strictly before the print
    keep = row >= 0
    trades, row = trades[keep], row[keep]
    keep = top.valid[row]
    trades, row = trades[keep], row[keep]
    # |2 price - (bid + ask)| / 2: exact in integers, then halved
    twice = np.abs(2 * ev["price"][trades] - (top.bid[row] + top.ask[row]))
    return twice / 2.0


def intensity(data, top=None, min_count=10, min_levels=3):
    """Fit lambda(delta) = A exp(-k delta) to how often trades reach depth delta.

    `data`: events, Events or a Parquet path (the prints and the data span);
    `top`: its TopOfBook if already computed. The depth levels are the distinct
    depths the prints reached (multiples of half a tick); lambda(d) = prints
    with delta >= d per second of data time. The levels reached by at least
    `min_count` prints (at least `min_levels` of them, ValueError otherwise)
    are fitted by least squares on log lambda. Returns an IntensityFit (A per
    second, k per tick, R^2, points). O(events + prints log prints).
    """
    min_count = _args.integer("min_count", min_count, 1)
    min_levels = _args.integer("min_levels", min_levels, 2)
    ev = _events(data)
    top = top_of_book(ev) if top is None else top
    depths = np.sort(trade_depths(ev, top))
    if top.span_s <= 0:
        raise ValueError("the data spans no time: no intensity to measure")
    if len(depths) == 0:
        raise ValueError("no trade prints with a two-sided book before them: no intensity to fit")
    levels, first = np.unique(depths, return_index=True)
    counts = len(depths) - first  # prints with delta >= each level (depths sorted)
    keep = counts >= min_count    # a prefix: counts fall as the level rises
    levels, counts = levels[keep], counts[keep]
    if len(levels) < min_levels:
        raise ValueError(f"intensity needs at least {min_levels} depth levels reached by {min_count} or more "
                         f"trade prints, the data gives {len(levels)} ({len(depths):,} prints): use a smaller "
                         f"min_count, or more data")
    rates = counts / top.span_s
    y = np.log(rates)
    slope, intercept = np.polyfit(levels, y, 1)
    fitted = intercept + slope * levels
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return IntensityFit(float(math.exp(intercept)), float(-slope), r2, int(len(levels)), int(len(depths)),
                        float(top.span_s), levels, rates)


def calibrate(data, interval_ns=NS_PER_S, min_count=10, min_levels=3):
    """sigma and (A, k) of `data` (events, Events or a lobsim Parquet path) from one
    replay: a Calibration whose `params()` are GLFT's (sigma, k, A) and
    `params(A=False)` AvellanedaStoikov's. Arguments as in `sigma` and `intensity`."""
    ev = _events(data)
    top = top_of_book(ev)
    return Calibration(sigma(top, interval_ns), intensity(ev, top, min_count, min_levels))
