"""Z-score mean reversion on the mid.

Every `interval_ns` of local time the strategy samples the mid of its local
view; once `lookback` samples are in, z = (mid - mean) / std over the last
`lookback` samples (the current one included; std with ddof=0; z = 0 when every
sample is equal). The decision (`MeanReversion.target_position`, pure):

- flat: short `order_qty` when entry_z < z < stop_z, long when
  -stop_z < z < -entry_z (no entry already at the stop);
- short: back to flat when z <= exit_z (the mid came back to, or through, the
  mean), stopped out when z >= stop_z; long: the mirror image
  (z >= -exit_z, z <= -stop_z). The tests are signed: a mid that overshoots
  through the mean is an exit, never a stop;
- after a stop-out, no new entry until |z| <= exit_z again (otherwise the next
  sample just under stop_z would re-enter the move that stopped it).

Orders: entries and exits are post-only limit orders joining the local touch
on their side (a buy at the best bid, a sell at the best ask: passive, maker
fees, may not fill; re-pegged when the touch moves), or market orders with
`use_market_orders=True`. Stop-outs are always market orders. A new order is
sent only when no earlier order is still open (every answer received), so the
position can never overshoot the target through orders in flight; a working
order that no longer matches the target (side, size, price) is cancelled and
replaced at the next tick once the cancel is answered. Deterministic: no
randomness, integer mid statistics.
"""
from lobsim import Strategy, TimeInForce
from lobsim.strategies.market_making import RollingStats, _count, _non_negative, _positive

__all__ = ["MeanReversion"]

_POST_ONLY, _MARKET = TimeInForce.POST_ONLY, TimeInForce.MARKET


class MeanReversion(Strategy):
    """Mean reversion of the mid by its z-score (see the module docstring).

    lookback: samples in the rolling mean and std (one per timer tick, >= 2);
    entry_z > exit_z >= 0 and stop_z > entry_z (in standard deviations);
    order_qty: lots per position; use_market_orders: enter and exit with market
    orders instead of post-only limits at the touch; interval_ns: the timer
    period (ns of local time), also the sampling period. ValueError naming the
    parameter for lookback < 2, exit_z < 0, entry_z <= exit_z, stop_z <= entry_z,
    order_qty < 1 or interval_ns < 1, before any run.
    """

    subscribe_book = False

    def __init__(self, lookback, entry_z, exit_z, stop_z, order_qty=1, use_market_orders=False,
                 interval_ns=1_000_000_000):
        self.lookback = _count("lookback", lookback, 2, "samples of the mid, one per timer tick")
        self.exit_z = _non_negative("exit_z", exit_z, "standard deviations")
        self.entry_z = _positive("entry_z", entry_z, "standard deviations")
        if self.entry_z <= self.exit_z:
            raise ValueError(f"entry_z must be > exit_z ({self.exit_z}), got {self.entry_z}")
        self.stop_z = _positive("stop_z", stop_z, "standard deviations")
        if self.stop_z <= self.entry_z:
            raise ValueError(f"stop_z must be > entry_z ({self.entry_z}), got {self.stop_z}")
        self.order_qty = _count("order_qty", order_qty, 1, "lots")
        if not isinstance(use_market_orders, bool):
            raise TypeError(f"use_market_orders must be a bool, got {type(use_market_orders).__name__}")
        self.use_market_orders = use_market_orders
        self.interval_ns = _count("interval_ns", interval_ns, 1, "timer period, ns of local time")
        self._stats = RollingStats(self.lookback)
        self._stopped = False
        self._cancelling = set()
        self.z = None  # the last z-score computed (None while the window fills)

    def __repr__(self):
        return (f"MeanReversion(lookback={self.lookback}, entry_z={self.entry_z}, exit_z={self.exit_z}, "
                f"stop_z={self.stop_z}, order_qty={self.order_qty}, use_market_orders={self.use_market_orders}, "
                f"interval_ns={self.interval_ns})")

    @staticmethod
    def zscore(mid, mean, std):
        """(mid - mean) / std; 0 when std is 0 (every sample equal)."""
        return (mid - mean) / std if std > 0 else 0.0

    def target_position(self, z, position, stopped):
        """The decision, pure -> (target position in lots, market order?, stopped after).

        `z`: the current z-score; `position`: lots (signed); `stopped`: a stop-out
        happened and |z| has not come back within exit_z since. See the module
        docstring for the rules."""
        q = self.order_qty
        market = self.use_market_orders
        if position > 0:
            if stopped or z <= -self.stop_z:
                return 0, True, True
            if z >= -self.exit_z:
                return 0, market, False
            return q, market, False
        if position < 0:
            if stopped or z >= self.stop_z:
                return 0, True, True
            if z <= self.exit_z:
                return 0, market, False
            return -q, market, False
        if stopped:
            if abs(z) > self.exit_z:
                return 0, market, True
            stopped = False
        if self.entry_z < z < self.stop_z:
            return -q, market, stopped
        if -self.stop_z < z < -self.entry_z:
            return q, market, stopped
        return 0, market, stopped

    def on_start(self, ctx):
        self._stats.clear()
        self._stopped = False
        self._cancelling = set()
        self.z = None

    def on_timer(self, ctx):
        bb, ba = ctx.best_bid(), ctx.best_ask()
        if bb is None or ba is None or bb[0] >= ba[0]:
            return  # no mid: no sample, no decision
        mid2 = bb[0] + ba[0]  # half-ticks: exact integer statistics
        stats = self._stats
        stats.push(mid2)
        if len(stats) < self.lookback:
            return
        z = self.z = self.zscore(mid2, stats.mean(), stats.std())
        position = ctx.position
        target, market, self._stopped = self.target_position(z, position, self._stopped)
        need = target - position
        side = 1 if need > 0 else -1
        price = None if market else (bb[0] if side == 1 else ba[0])
        open_ = ctx.open_orders()
        cancelling = self._cancelling
        cancelling.intersection_update(open_)
        for oid, o in open_.items():
            keep = (need != 0 and not market and o.side == side and o.leaves_qty == abs(need)
                    and o.price == price)
            if not keep and oid not in cancelling:
                ctx.cancel(oid)
                cancelling.add(oid)
        if open_ or need == 0:
            return  # wait for every answer before sending anything new
        if market:
            (ctx.buy if side == 1 else ctx.sell)(None, abs(need), tif=_MARKET)
        else:
            (ctx.buy if side == 1 else ctx.sell)(price, abs(need), tif=_POST_ONLY)

