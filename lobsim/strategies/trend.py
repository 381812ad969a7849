"""Trend following: a moving-average crossover on the mid, with a protective stop.

Every `interval_ns` of local time the strategy samples the mid of its local
view. Once `slow` samples are in, the signal is +1 when the mean of the last
`fast` samples is above the mean of the last `slow` ones, -1 when below (0
while equal or warming up). The decision (`TrendFollowing.target_position`,
pure) is to hold `order_qty` lots in the signal's direction, flat on 0.

Orders: the position is moved to the target with a market order. When an
entry fills, a protective stop-market order on the other side is placed
`stop_ticks` from the fill price (below it for a long, above for a short) at
the venue: it triggers on the data's trades (see the README's order types).
Before a reversal or an exit, the working stop is cancelled; a stop that
fired leaves the strategy flat until the signal changes sign again (it does
not re-enter the move that stopped it). A new order is sent only when every
earlier one has been answered, so orders in flight never overshoot the target.
"""
from lobsim import Strategy, TimeInForce
from lobsim.strategies.market_making import RollingStats, _count

__all__ = ["TrendFollowing"]

_MARKET = TimeInForce.MARKET


class TrendFollowing(Strategy):
    """Moving-average crossover with a protective stop (see the module docstring).

    fast < slow: window lengths in samples (one per timer tick); order_qty: lots
    held in a trend; stop_ticks: distance of the protective stop from the entry
    fill price, in ticks (>= 1); interval_ns: the timer period (ns of local
    time), also the sampling period. ValueError naming the parameter before any
    run for fast < 1, slow <= fast, order_qty < 1, stop_ticks < 1 or interval_ns < 1.
    """

    subscribe_book = False

    def __init__(self, fast, slow, order_qty=1, stop_ticks=10, interval_ns=100_000_000):
        self.fast = _count("fast", fast, 1, "samples of the mid, one per timer tick")
        self.slow = _count("slow", slow, 2, "samples of the mid, one per timer tick")
        if self.slow <= self.fast:
            raise ValueError(f"slow must be > fast ({self.fast}), got {self.slow}")
        self.order_qty = _count("order_qty", order_qty, 1, "lots")
        self.stop_ticks = _count("stop_ticks", stop_ticks, 1, "ticks")
        self.interval_ns = _count("interval_ns", interval_ns, 1, "ns of local time")

    @staticmethod
    def target_position(signal, order_qty, stopped_signal):
        """The position to hold for `signal` (-1, 0, +1); none in the direction a stop just
        closed (`stopped_signal`) until the signal changes."""
        if signal == 0 or signal == stopped_signal:
            return 0
        return signal * order_qty

    def on_start(self, ctx):
        self._fast = RollingStats(self.fast)
        self._slow = RollingStats(self.slow)
        self._stop_id = None      # the working protective stop
        self._stopped = 0         # the signal a stop closed, until the signal changes
        self._entries = set()     # ids of market orders that open or grow a position

    def on_fill(self, ctx, fill):
        oid = int(fill["order_id"])
        if oid == self._stop_id:  # the protective stop fired
            self._stopped = 1 if int(fill["side"]) < 0 else -1  # a sell stop closed a long
            if ctx.position == 0:
                self._stop_id = None
            return
        if oid in self._entries and ctx.position != 0 and self._stop_id is None:
            price = int(fill["price"])
            if ctx.position > 0:
                self._stop_id = ctx.sell(None, ctx.position, tif=_MARKET, stop=price - self.stop_ticks)
            else:
                self._stop_id = ctx.buy(None, -ctx.position, tif=_MARKET, stop=price + self.stop_ticks)

    def on_timer(self, ctx):
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid is None or ask is None:
            return
        mid2 = bid[0] + ask[0]  # twice the mid: integer, exact
        self._fast.push(mid2)
        self._slow.push(mid2)
        if len(self._slow) < self.slow:
            return
        # compare the two means exactly: integer sums cross-multiplied by the window lengths
        diff = self._fast.total * self.slow - self._slow.total * self.fast
        signal = (diff > 0) - (diff < 0)
        if signal != self._stopped:
            self._stopped = 0  # the signal changed since the stop: trends may be entered again
        target = self.target_position(signal, self.order_qty, self._stopped)
        open_orders = ctx.open_orders()
        working = {oid for oid in open_orders if oid != self._stop_id}
        if working:
            return  # wait for every answer before the next move
        if target == ctx.position:
            return
        if self._stop_id is not None and self._stop_id in open_orders:
            ctx.cancel(self._stop_id)  # the position is about to change: the old stop goes
            self._stop_id = None
            return  # move once the cancel is answered
        self._stop_id = None
        qty = target - ctx.position
        oid = ctx.buy(None, qty, tif=_MARKET) if qty > 0 else ctx.sell(None, -qty, tif=_MARKET)
        if target != 0:
            self._entries.add(oid)
