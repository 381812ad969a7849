"""Market making: Avellaneda-Stoikov and its Gueant-Lehalle-Fernandez-Tapia closed form.

Both strategies quote one post-only order of `order_qty` lots per side, re-priced
on a timer, from the closed-form quotes of `lobsim.strategies.quotes` (the one
place the formulas live). What they add around those formulas, and what each
`quote_ticks` (a pure function, testable without a backtest) does:

- Units: prices in ticks, quantities in lots, time in seconds. gamma is per
  tick per lot, k per tick, A per second, sigma in ticks per sqrt(second) (what
  `lobsim.calibrate` returns, so its values plug in directly).
- Rounding on the safe side: the bid is rounded DOWN and the ask UP to whole
  ticks (a quote is never more aggressive than the model's), with a 1e-9 tick
  allowance so that floating noise on an exact tick does not move it.
- Never through the touch (of the local view): bid <= best ask - 1 and ask >=
  best bid + 1, so the post-only order never crosses by the strategy's own view.
- Inventory limit: no bid when position + order_qty > max_inventory, no ask
  when position - order_qty < -max_inventory.

The live strategy (on each timer wake-up, every `interval_ns` of local time):

- Re-quotes a side only when its target moved by at least `requote_ticks` from
  the resting order's price, by cancel and replace, not `ctx.modify`: the
  venue's modify sets an absolute open quantity, so a modify sent while a fill
  of that order is still on its way back would re-open the filled part and the
  position could pass the limit; a price change loses queue priority either way,
  and the cancel reaches the venue before the replacement (one FIFO channel).
- Bounds the worst case, not just the known position: a new bid is sent only if
  position + the open quantity of every buy order not known to be final
  (unanswered, resting, or with a cancel on its way) + order_qty <=
  max_inventory (and symmetrically for asks). So the venue-side position never
  passes max_inventory, whatever the latency; near the limit a re-quote waits
  for the cancel's answer (the side is unquoted for about one round trip).
- Pulls both quotes when the local book is one-sided or crossed (no mid).
- Estimates sigma online when it is not given: the standard deviation of the
  mid's changes between timer ticks over the last `sigma_window` changes,
  scaled to ticks per sqrt(second); it quotes once `sigma_min_changes` changes
  were seen (before that it sends nothing).
"""
import math
import numbers
from collections import deque

import numpy as np

from lobsim import Strategy, TimeInForce
from lobsim.strategies import quotes

__all__ = ["AvellanedaStoikov", "GLFT"]

NS_PER_S = 1_000_000_000
_EPS = 1e-9  # ticks: floating noise allowed when rounding a quote to the safe side
_POST_ONLY = TimeInForce.POST_ONLY
_CACHE_MAX = 4096  # memoized quote decisions kept (cleared when full)


# -- parameter checks (ValueError / TypeError naming the parameter) ---------------------------------------
def _real(name, value, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number ({what}), got {type(value).__name__} {value!r:.80}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite ({what}), got {value!r}")
    return value


def _positive(name, value, what):
    value = _real(name, value, what)
    if value <= 0:
        raise ValueError(f"{name} must be > 0 ({what}), got {value!r}")
    return value


def _non_negative(name, value, what):
    value = _real(name, value, what)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 ({what}), got {value!r}")
    return value


def _count(name, value, lo, what):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ({what}), got {type(value).__name__} {value!r:.80}")
    value = int(value)
    if value < lo:
        raise ValueError(f"{name} must be >= {lo} ({what}), got {value}")
    return value


# -- rolling statistics of the mid ---------------------------------------------------------------------
class RollingStats:
    """Mean and standard deviation (ddof=0) of the last `window` integer samples, exact
    (running integer sums), O(1) per sample. Fed mids in half-ticks (bid + ask)."""

    __slots__ = ("window", "_q", "_s", "_ss")

    def __init__(self, window):
        self.window = window
        self._q = deque()
        self._s = 0
        self._ss = 0

    def __len__(self):
        return len(self._q)

    def clear(self):
        self._q.clear()
        self._s = self._ss = 0

    def push(self, x):
        q = self._q
        q.append(x)
        self._s += x
        self._ss += x * x
        if len(q) > self.window:
            old = q.popleft()
            self._s -= old
            self._ss -= old * old

    @property
    def total(self):
        """Sum of the samples in the window (an exact integer)."""
        return self._s

    def mean(self):
        return self._s / len(self._q)

    def std(self):
        n = len(self._q)
        num = n * self._ss - self._s * self._s  # n^2 * variance: an exact integer >= 0
        return math.sqrt(num) / n if num > 0 else 0.0


class MidVolatility:
    """Online sigma of the mid from its changes between timer ticks.

    `push(bid + ask)` (the mid in half-ticks, or None when the book is not
    two-sided) adds the change since the previous push to a rolling window of
    `window` changes; a None breaks the chain. `sigma()` is the standard
    deviation (ddof=0) of those changes in ticks over sqrt(interval in seconds):
    ticks per sqrt(second), the estimator of `lobsim.calibrate.sigma`."""

    __slots__ = ("_stats", "_last", "_scale", "min_changes")

    def __init__(self, window, interval_ns, min_changes):
        self._stats = RollingStats(window)
        self._last = None
        self._scale = 0.5 / math.sqrt(interval_ns / NS_PER_S)  # half-ticks per interval -> ticks per sqrt(s)
        self.min_changes = min_changes

    def __len__(self):
        return len(self._stats)

    def clear(self):
        self._stats.clear()
        self._last = None

    def push(self, mid2):
        if mid2 is not None and self._last is not None:
            self._stats.push(mid2 - self._last)
        self._last = mid2

    def sigma(self):
        """Ticks per sqrt(second), or None before `min_changes` changes were seen."""
        if len(self._stats) < self.min_changes:
            return None
        return self._stats.std() * self._scale


# -- the shared quoting machinery ----------------------------------------------------------------------
class _MarketMaker(Strategy):
    """One post-only order per side, re-priced on a timer (see the module docstring)."""

    subscribe_book = False

    def __init__(self, gamma, k, sigma, order_qty, max_inventory, requote_ticks, interval_ns, sigma_window,
                 sigma_min_changes):
        self.gamma = _positive("gamma", gamma, "risk aversion, per tick per lot")
        self.k = _positive("k", k, "decay of the fill intensity with depth, per tick")
        self.sigma = None if sigma is None else _non_negative("sigma", sigma, "ticks per sqrt(second)")
        self.order_qty = _count("order_qty", order_qty, 1, "lots per quote")
        self.max_inventory = _count("max_inventory", max_inventory, 0, "lots")
        if self.max_inventory < self.order_qty:
            raise ValueError(f"max_inventory must be >= order_qty ({self.order_qty} lots), got {self.max_inventory}"
                             " (no quote could ever be sent)")
        self.requote_ticks = _count("requote_ticks", requote_ticks, 1, "ticks")
        self.interval_ns = _count("interval_ns", interval_ns, 1, "timer period, ns of local time")
        self.sigma_window = _count("sigma_window", sigma_window, 2, "mid changes, one per timer tick")
        self.sigma_min_changes = _count("sigma_min_changes", sigma_min_changes, 2, "mid changes")
        if self.sigma_min_changes > self.sigma_window:
            raise ValueError(f"sigma_min_changes must be <= sigma_window ({self.sigma_window}), "
                             f"got {self.sigma_min_changes}")
        self._vol = MidVolatility(self.sigma_window, self.interval_ns, self.sigma_min_changes)
        self._cancelling = set()
        self._cache = {}  # (best bid, best ask, position, sigma, tau) -> quote_ticks result

    # the model's float quotes; subclasses call their quotes.* function
    def _model(self, mid, position, sigma, tau):
        raise NotImplementedError

    def _ticks(self, bid, ask, position, best_bid, best_ask):
        """Model quotes (floats, ticks) -> whole-tick quotes on the safe side, within the
        touch, inside the inventory limit: (bid or None, ask or None)."""
        b = math.floor(bid + _EPS)
        a = math.ceil(ask - _EPS)
        if best_ask is not None and b > best_ask - 1:
            b = best_ask - 1
        if best_bid is not None and a < best_bid + 1:
            a = best_bid + 1
        q = self.order_qty
        return (None if position + q > self.max_inventory else b,
                None if position - q < -self.max_inventory else a)

    # -- the live strategy -------------------------------------------------------------------------------
    def on_start(self, ctx):
        self._vol.clear()
        self._cancelling = set()
        self._cache = {}
        self._t0 = ctx.now

    def _tau(self, now):
        raise NotImplementedError

    def current_sigma(self):
        """The sigma in use: the given one, or the online estimate (None while warming up)."""
        return self.sigma if self.sigma is not None else self._vol.sigma()

    def on_timer(self, ctx):
        bb, ba = ctx.best_bid(), ctx.best_ask()
        two_sided = bb is not None and ba is not None and bb[0] < ba[0]
        if self.sigma is None:
            self._vol.push(bb[0] + ba[0] if two_sided else None)
        sigma = self.current_sigma()
        if not two_sided or sigma is None:
            targets = (None, None)
        else:
            bid_px, ask_px = bb[0], ba[0]
            position = ctx.position
            tau = self._tau(ctx.now)
            key = (bid_px, ask_px, position, sigma, tau)
            cache = self._cache
            targets = cache.get(key)
            if targets is None:  # a quotes.* call costs tens of us; inputs often repeat with a given sigma
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                targets = cache[key] = self._ticks(*self._model((bid_px + ask_px) / 2.0, position, sigma, tau),
                                                   position, bid_px, ask_px)
        self._work(ctx, targets)

    def _work(self, ctx, targets):
        """Move the resting orders to `targets` (bid, ask): cancel what is off target by
        requote_ticks or more (or not wanted), send a replacement if the worst-case
        position allows it."""
        open_ = ctx.open_orders()
        cancelling = self._cancelling
        if cancelling:
            cancelling.intersection_update(open_)  # ids answered since: final, forgotten
        position = ctx.position
        q = self.order_qty
        for side, target in ((1, targets[0]), (-1, targets[1])):
            exposure = 0  # open qty of this side's orders not known final: all could still fill
            live = None
            for oid, o in open_.items():
                if o.side == side:
                    exposure += o.leaves_qty
                    if oid not in cancelling:
                        live = (oid, o.price)
            if live is not None:
                if target is not None and abs(live[1] - target) < self.requote_ticks:
                    continue
                ctx.cancel(live[0])
                cancelling.add(live[0])
            if target is None:
                continue
            if side == 1:
                if position + exposure + q <= self.max_inventory:
                    ctx.buy(target, q, tif=_POST_ONLY)
            elif position - exposure - q >= -self.max_inventory:
                ctx.sell(target, q, tif=_POST_ONLY)


class AvellanedaStoikov(_MarketMaker):
    """Avellaneda & Stoikov (2008) market making on `lobsim.Backtest`.

    Quotes (`lobsim.strategies.quotes.avellaneda_stoikov`): reservation price
    r = mid - position * gamma * sigma^2 * tau and total spread
    gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / k) centred on r, with
    tau = T - t. Units: prices in ticks, position in lots, time in seconds:

    - gamma: risk aversion, per tick per lot (> 0);
    - k: decay of the fill intensity A exp(-k delta) with the depth delta, per
      tick (> 0; `lobsim.calibrate` fits it);
    - sigma: the mid's volatility in ticks per sqrt(second) (>= 0), or None to
      estimate it online (see the module docstring; `sigma_window` changes,
      quoting after `sigma_min_changes`);
    - horizon_ns: None (default) for the rolling-horizon variant: T - t is held
      constant at `tau` seconds (default 1, one time unit of sigma), so the
      quotes depend on the inventory and sigma only and never collapse toward a
      session end. Given, the run is cut into windows of horizon_ns of local
      time starting at the first event (on_start), and tau counts down from
      horizon_ns / 1e9 to 0 within each window, restarting at the next;
    - order_qty (lots per quote), max_inventory (lots), requote_ticks,
      interval_ns (timer period, ns of local time; also the sampling period of
      the online sigma).

    Raises ValueError naming the parameter for gamma <= 0, k <= 0, a negative
    sigma, tau <= 0, horizon_ns <= 0, order_qty < 1, max_inventory < order_qty,
    requote_ticks < 1, interval_ns < 1 or a sigma_window < 2.
    """

    def __init__(self, gamma, k, sigma=None, horizon_ns=None, order_qty=1, max_inventory=10, requote_ticks=1,
                 interval_ns=100_000_000, sigma_window=300, sigma_min_changes=30, tau=1.0):
        super().__init__(gamma, k, sigma, order_qty, max_inventory, requote_ticks, interval_ns, sigma_window,
                         sigma_min_changes)
        self.horizon_ns = None if horizon_ns is None else _count("horizon_ns", horizon_ns, 1, "ns")
        self.tau = _positive("tau", tau, "the constant T - t of the rolling horizon, seconds")
        self._t0 = 0

    def __repr__(self):
        return (f"AvellanedaStoikov(gamma={self.gamma}, k={self.k}, sigma={self.sigma}, horizon_ns={self.horizon_ns}, "
                f"order_qty={self.order_qty}, max_inventory={self.max_inventory}, "
                f"requote_ticks={self.requote_ticks}, interval_ns={self.interval_ns})")

    def _tau(self, now):
        if self.horizon_ns is None:
            return self.tau
        h = self.horizon_ns
        return (h - (now - self._t0) % h) / NS_PER_S

    def _model(self, mid, position, sigma, tau):
        return quotes.avellaneda_stoikov(mid, position, self.gamma, sigma, self.k, tau)

    def quote_ticks(self, mid, position, best_bid, best_ask, sigma, tau):
        """The quotes this strategy would send -> (bid or None, ask or None), in ticks.

        Pure: `mid` (ticks, float), `position` (lots), `best_bid` / `best_ask`
        (ticks, or None), `sigma` (ticks per sqrt(second)), `tau` (T - t, seconds).
        quotes.avellaneda_stoikov, the bid rounded down and the ask up, bid <=
        best_ask - 1 and ask >= best_bid + 1, a side left out (None) when its
        fill would take |position| past max_inventory."""
        return self._ticks(*self._model(mid, position, sigma, tau), position, best_bid, best_ask)


class GLFT(_MarketMaker):
    """Gueant-Lehalle-Fernandez-Tapia closed-form market making on `lobsim.Backtest`.

    Quotes (`lobsim.strategies.quotes.glft`, the asymptotic approximation: no
    horizon): bid = mid - c1 - (2q + Delta)/2 * sigma * c2, ask = mid + c1 -
    (2q - Delta)/2 * sigma * c2 with q = position and Delta = order_qty (lots).
    Units as AvellanedaStoikov's: gamma per tick per lot, k per tick, A (the
    fill intensity at the mid, lambda(delta) = A exp(-k delta)) per second,
    sigma in ticks per sqrt(second) or None (online estimate). The same
    controls (order_qty, max_inventory, requote_ticks, interval_ns,
    sigma_window, sigma_min_changes) and the same rounding, touch and
    inventory rules. ValueError naming the parameter for gamma, k or A <= 0 and
    the other bad values AvellanedaStoikov refuses.
    """

    def __init__(self, gamma, k, A, sigma=None, order_qty=1, max_inventory=10, requote_ticks=1,
                 interval_ns=100_000_000, sigma_window=300, sigma_min_changes=30):
        super().__init__(gamma, k, sigma, order_qty, max_inventory, requote_ticks, interval_ns, sigma_window,
                         sigma_min_changes)
        self.A = _positive("A", A, "fill intensity at the mid, per second")

    def __repr__(self):
        return (f"GLFT(gamma={self.gamma}, k={self.k}, A={self.A}, sigma={self.sigma}, order_qty={self.order_qty}, "
                f"max_inventory={self.max_inventory}, requote_ticks={self.requote_ticks}, "
                f"interval_ns={self.interval_ns})")

    def _tau(self, now):
        return None

    def _model(self, mid, position, sigma, tau):
        return quotes.glft(mid, position, self.gamma, sigma, self.k, self.A, self.order_qty)

    def quote_ticks(self, mid, position, best_bid, best_ask, sigma):
        """The quotes this strategy would send -> (bid or None, ask or None), in ticks.

        Pure: quotes.glft at `mid` (ticks), `position` (lots), `sigma` (ticks per
        sqrt(second)), then the rounding, touch and inventory rules of
        AvellanedaStoikov.quote_ticks."""
        return self._ticks(*self._model(mid, position, sigma, None), position, best_bid, best_ask)
