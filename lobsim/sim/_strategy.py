"""Strategy (the base class a user subclasses) and Fees. Pure Python: no C core needed to import."""
from lobsim import _args


class Fees:
    """Maker and taker fee rates on traded value (price x qty in currency, via the
    instrument): a fill pays `rate * value`. A negative maker rate is a rebate
    (the fill's fee is negative: cash earned). Rates must be finite real numbers."""

    __slots__ = ("maker", "taker")

    def __init__(self, maker=0.0, taker=0.0):
        self.maker = _args.real("maker", maker)
        self.taker = _args.real("taker", taker)

    def __repr__(self):
        return f"Fees(maker={self.maker}, taker={self.taker})"

    def __eq__(self, other):
        return isinstance(other, Fees) and (self.maker, self.taker) == (other.maker, other.taker)


class Strategy:
    """Base class of a strategy driven by lobsim.Backtest. Override what you need:

        class Quoter(Strategy):
            interval_ns = 100_000_000      # on_timer every 100 ms of local time (None: no timer)
            subscribe_book = False         # True: on_book after each local top-of-book change

            def on_timer(self, ctx):
                bid = ctx.best_bid()
                if bid:
                    ctx.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)

    Every method receives `ctx`, the strategy's view of the simulation: `now`
    (local ns), `best_bid()`, `best_ask()`, `depth()`, `position`, `cash`,
    `open_orders()`, `instrument`, and the actions `buy`, `sell`, `cancel`,
    `modify` (sent at `now`, answered later through on_order / on_fill).
    Between wake-ups the C core runs without calling Python.

    Order of calls at one wake-up: on_fill / on_order for each message that
    reached the strategy, in the order they were produced; then on_book;
    then on_timer. on_start comes before any of them, at the first event's
    local time; on_stop after the last response was delivered.
    """

    interval_ns = None
    subscribe_book = False

    def on_start(self, ctx):
        """Once, at the first event's local time, with that event in the local view."""

    def on_timer(self, ctx):
        """Every `interval_ns` of local time, from the first event's local time + interval_ns."""

    def on_book(self, ctx):
        """After the local top of book changed (only with subscribe_book = True)."""

    def on_fill(self, ctx, fill):
        """A fill of one of your orders reached you: one record of result.fills (FILLS_DTYPE)."""

    def on_order(self, ctx, update):
        """A state change of one of your orders reached you: one record of result.orders
        (ORDERS_DTYPE). Your own NEW records are not echoed back (you sent them)."""

    def on_stop(self, ctx):
        """Once, after the data ended and every response in flight was delivered.
        Requests sent here are still answered (from the venue's final book) and
        delivered to on_order / on_fill."""
