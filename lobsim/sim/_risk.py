"""Pre-trade risk limits and the kill switch of a backtest: lobsim.RiskLimits.

    result = Backtest(data, MyStrategy(), risk=RiskLimits(max_position=5, max_loss=100.0)).run()
    result.risk_rejections      # RISK_REJECTIONS_DTYPE: every request the gateway refused, the limit named
    result.breach               # RiskBreach(ts, limit, equity, peak, position, cash), or None

The gateway sits on the user's side, before the entry latency, like a
broker's risk gateway: it sees only what the strategy knows (the position and
cash after the fills delivered so far, its open orders, the local book). A
new order that would break a limit is never sent: the venue records it as
NEW then REJECTED with RejectReason.RISK at the current local time
(lob_sim_reject) and the rejection reaches the strategy at once; the limit's
name is kept here (result.risk_rejections), since the venue's messages have no
text. A modify that would break one is not sent either (the order stays as
it was): ctx.modify returns False and the refusal is a row of
result.risk_rejections (request 2), with no order event (see modify()).

Python only; Backtest (lobsim/sim/_backtest.py) calls the Gateway.
"""
import math
from dataclasses import dataclass

import numpy as np

from lobsim import _args

# the order in which a new order is checked: the first limit it breaks is the one named
CHECKS = ("kill_switch", "max_order_qty", "max_notional", "max_price_deviation_ticks", "max_open_orders",
          "max_position")
_REQ_NEW, _REQ_MODIFY = 0, 2
_MARKET = 4  # TimeInForce.MARKET

RISK_REJECTIONS_DTYPE = np.dtype([
    ("ts", "<i8"),         # local time the request was refused (ns)
    ("order_id", "<u8"),   # the new order's id (consumed), or the id of the order a modify was for
    ("request", "u1"),     # 0 = new order, 2 = modify (LOB_REQ_*)
    ("side", "i1"),        # +1 buy, -1 sell
    ("price", "<i8"),      # ticks (0 for a market order)
    ("qty", "<i8"),        # lots
    ("limit", "U25"),      # the RiskLimits parameter it broke (or "kill_switch" after a breach)
])
"""result.risk_rejections: one row per request refused by the pre-trade risk gateway, in order."""


def _positive_int(name, value):
    if value is None:
        return None
    return _args.integer(name, value, 1, _args.INT64_MAX)


def _positive_real(name, value):
    if value is None:
        return None
    value = _args.real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits and a kill switch for Backtest(..., risk=RiskLimits(...)). None = no limit.

    Checked on every new order and modify, before it is sent (see lobsim.sim._risk):
    max_position: lots; |position + open qty of the orders on the order's side + the
        order| must stay <= it (worst case: every open order on that side fills).
    max_order_qty: lots per order.
    max_notional: currency per order: qty * price * tick_size * lot_size (a market order
        at the local opposite touch).
    max_open_orders: orders open at once (as the strategy knows them, unanswered ones
        included), this one counted.
    max_price_deviation_ticks: |price - local mid| <= it (ticks; a market order at the
        local opposite touch); every order is refused while the local book has no mid.
    Kill switch, checked at every wake-up on equity = cash + position * local mid *
    tick_size * lot_size (what the strategy knows):
    max_loss: currency; breached when equity < -max_loss.
    max_drawdown: currency; breached when equity < running peak of equity - max_drawdown.
    flatten_on_breach: after a breach, once the cancels are answered, close the position
        with a market order.
    """

    max_position: int = None
    max_order_qty: int = None
    max_notional: float = None
    max_open_orders: int = None
    max_price_deviation_ticks: float = None
    max_loss: float = None
    max_drawdown: float = None
    flatten_on_breach: bool = False

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("max_position", "max_order_qty", "max_open_orders"):
            put(name, _positive_int(name, getattr(self, name)))
        for name in ("max_notional", "max_price_deviation_ticks", "max_loss", "max_drawdown"):
            put(name, _positive_real(name, getattr(self, name)))
        if not isinstance(self.flatten_on_breach, (bool, np.bool_)):
            raise TypeError(f"flatten_on_breach must be a bool, got {type(self.flatten_on_breach).__name__}")
        put("flatten_on_breach", bool(self.flatten_on_breach))

    @property
    def kill_switch(self):
        """True if max_loss or max_drawdown is set."""
        return self.max_loss is not None or self.max_drawdown is not None

    def to_dict(self):
        """The limits as a JSON-able dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class RiskBreach:
    """The kill switch's breach: local time (ns), the limit ("max_loss" or "max_drawdown"),
    the equity and its running peak then (currency), and the position (lots) and cash
    the strategy knew."""

    ts: int
    limit: str
    equity: float
    peak: float
    position: int
    cash: float

    def to_dict(self):
        return {"ts": self.ts, "limit": self.limit, "equity": self.equity, "peak": self.peak,
                "position": self.position, "cash": self.cash}


class Gateway:
    """The risk gateway of one run. `open_` is the Backtest's {order id: OpenOrder} (what
    the strategy knows); modifies sent and not answered yet are tracked here because the
    venue sets a modify's new open qty even if the order filled in part meanwhile."""

    def __init__(self, limits, value_per_tick_lot):
        self.limits = limits
        self.vpt = value_per_tick_lot
        self.rows = []           # risk_rejections rows
        self.pending = {}        # order id -> [qty of each modify sent, answer not delivered]
        self.breach = None
        self.peak = 0.0          # running peak of equity (starts flat: 0)
        self.mid = None          # last known local mid (ticks)
        self.flatten_at = None   # local time of the last flatten order sent
        self.flatten_id = None
        self.end_flatten = False  # the one flatten attempt allowed after the data ended was made

    # -- pre-trade ------------------------------------------------------------
    def _exposure(self, open_, side, skip=None):
        """Worst-case open qty on `side`: each open order's leaves plus, per pending modify,
        its qty - 1 (a modify can re-arm an order that filled in part: at most leaves - 1
        filled before it arrives, then the new qty)."""
        total = 0
        for oid, o in open_.items():
            if o.side == side and oid != skip:
                total += max(o.leaves_qty, 0) + sum(q - 1 for q in self.pending.get(oid, ()))
        return total

    def _price_for(self, side, price, tif, bid, ask):
        """The price an order is checked at: its limit, or for a market order the local
        opposite touch (None if that side is empty)."""
        if tif != _MARKET:
            return price
        touch = ask if side > 0 else bid
        return None if touch is None else touch[0]

    def _check(self, side, price, qty, tif, position, open_, bid, ask, new, skip=None, extra=0):
        lim = self.limits
        if self.breach is not None:
            return "kill_switch"
        if qty <= 0:
            return None  # the venue refuses it (INVALID); it can never fill
        if lim.max_order_qty is not None and qty > lim.max_order_qty:
            return "max_order_qty"
        px = self._price_for(side, price, tif, bid, ask)
        if lim.max_notional is not None and px is not None and abs(px) * qty * self.vpt > lim.max_notional:
            return "max_notional"
        if lim.max_price_deviation_ticks is not None:
            if bid is None or ask is None or px is None:
                return "max_price_deviation_ticks"
            if abs(2 * px - (bid[0] + ask[0])) > 2 * lim.max_price_deviation_ticks:
                return "max_price_deviation_ticks"
        if new and lim.max_open_orders is not None and len(open_) + 1 > lim.max_open_orders:
            return "max_open_orders"
        if lim.max_position is not None:
            worst = self._exposure(open_, side, skip) + extra + qty
            if side * position + worst > lim.max_position:  # buys: position + worst; sells: -position + worst
                return "max_position"
        return None

    def check_new(self, side, price, qty, tif, position, open_, bid, ask):
        """The limit a new order breaks, or None."""
        return self._check(side, price, qty, tif, position, open_, bid, ask, True)

    def check_modify(self, oid, order, price, qty, position, open_, bid, ask):
        """The limit a modify of the open `order` to (price, qty) breaks, or None. Its
        worst case on max_position: the order's leaves - 1 + the new qty (plus earlier
        pending modifies), i.e. it re-arms an order that filled all but one lot."""
        extra = max(order.leaves_qty, 0) - 1 + sum(q - 1 for q in self.pending.get(oid, ()))
        return self._check(order.side, price, qty, 0, position, open_, bid, ask, False, skip=oid,
                           extra=max(extra, 0))

    def modify_sent(self, oid, qty):
        if qty > 0:
            self.pending.setdefault(oid, []).append(qty)

    def modify_answered(self, oid):
        q = self.pending.get(oid)
        if q:
            q.pop(0)
            if not q:
                del self.pending[oid]

    def order_final(self, oid):
        self.pending.pop(oid, None)

    def refuse(self, ts, oid, request, side, price, qty, limit):
        self.rows.append((ts, oid, request, side, price, qty, limit))

    def rejections(self):
        return np.array(self.rows, dtype=RISK_REJECTIONS_DTYPE) if self.rows else \
            np.empty(0, RISK_REJECTIONS_DTYPE)

    # -- kill switch ------------------------------------------------------------
    def check_equity(self, now, position, cash, bid, ask):
        """Update the peak and return a RiskBreach if equity broke max_loss or max_drawdown
        (None otherwise, or while the equity is unknown: a position and no mid seen yet)."""
        if bid is not None and ask is not None:
            self.mid = (bid[0] + ask[0]) / 2
        if position and self.mid is None:
            return None
        equity = cash + (position * self.mid * self.vpt if position else 0.0)
        lim = self.limits
        limit = None
        if lim.max_loss is not None and equity < -lim.max_loss:
            limit = "max_loss"
        elif lim.max_drawdown is not None and equity < self.peak - lim.max_drawdown:
            limit = "max_drawdown"
        if limit is not None:
            self.breach = RiskBreach(int(now), limit, float(equity), float(self.peak), int(position), float(cash))
            return self.breach
        if not math.isnan(equity) and equity > self.peak:
            self.peak = equity
        return None
