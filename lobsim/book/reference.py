"""ReferenceBook: a pure-Python L3 order book, the test oracle of the C OrderBook.

It has exactly the interface and semantics of lobsim.book.OrderBook (same
methods, return types and exception classes) but is written for clarity, not
speed: each side is a sortedcontainers.SortedDict price -> _Level, a level is
an OrderedDict order_id -> qty in time priority (FIFO), and a dict maps
order_id -> (side, price). Property tests drive both books with the same
operations and compare every observable result.

Complexities (n = orders resting, L = levels on a side):
add/reduce/delete/execute/modify O(log L) (a new or emptied level costs a
SortedDict insert/delete, otherwise O(1)); best_bid/best_ask O(1)-ish
(O(log L) peek); depth(k) O(k); order() O(orders ahead at its level);
submit O(log L + fills); check() O(n + L); clear() O(1) amortized.
"""
from collections import OrderedDict, namedtuple
from itertools import islice

import numpy as np
from sortedcontainers import SortedDict

from lobsim._types import FILL_DTYPE, EventKind, Side, SubmitOutcome, SubmitResult, TimeInForce, check_event_array
from lobsim.errors import STATUS_INFO, BookCorrupted, InvalidOrder, LobError, Status, event_error

try:  # the shared result types, once the C-backed module is importable
    from lobsim.book._book import ApplyResult, Depth, OrderInfo
except ImportError:  # C core not built yet: identical private stand-ins
    Depth = namedtuple("Depth", "bid_px bid_qty ask_px ask_qty")
    OrderInfo = namedtuple("OrderInfo", "order_id side price qty qty_ahead orders_ahead")
    ApplyResult = namedtuple("ApplyResult", "applied rejected by_reason first_error_index")

__all__ = ["ReferenceBook"]

BID, ASK = 1, -1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

def _fail(code, msg):
    """The lobsim exception for `code`, tagged with the code so apply() can count it."""
    exc = STATUS_INFO[code][1](msg)
    exc.code = code
    return exc


def _int_arg(name, value, lo, hi, code=Status.INVALID_ARG):
    """An integer argument in [lo, hi] (as the C boundary demands), else InvalidOrder."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _fail(Status.INVALID_ARG, f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise _fail(code, f"{name} {value} out of range [{lo}, {hi}]")
    return value


def _order_id(order_id):
    return _int_arg("order_id", order_id, 0, UINT64_MAX)


def _price(price):
    """An int64 (what the C boundary can take); INT64_MIN is refused later, where C checks it."""
    return _int_arg("price", price, INT64_MIN, INT64_MAX)


def _qty(qty):
    return _int_arg("qty", qty, INT64_MIN, INT64_MAX, Status.BAD_QTY)


_FILL_FIELDS = ("maker_id", "taker_id", "price", "qty", "maker_remaining", "taker_side")


def _fill_array(fills):
    """FILL_DTYPE array (reserved bytes zero) from (maker, taker, price, qty, remaining, side) tuples."""
    out = np.zeros(len(fills), dtype=FILL_DTYPE)
    if fills:
        for name, col in zip(_FILL_FIELDS, zip(*fills)):
            out[name] = col
    return out


class _Level:
    """One price level: orders in time priority and their total quantity."""

    __slots__ = ("orders", "qty")

    def __init__(self):
        self.orders = OrderedDict()  # order_id -> remaining qty, head = first in line
        self.qty = 0


class ReferenceBook:
    """Pure-Python L3 limit order book with price-time priority (the test oracle).

    Mirrors lobsim.book.OrderBook: same methods, results and exceptions.
    Use as a context manager or call close(); a closed book refuses every call.
    """

    def __init__(self):
        self._bids = SortedDict()  # price -> _Level; best bid = last key
        self._asks = SortedDict()  # price -> _Level; best ask = first key
        self._orders = {}  # order_id -> (side, price)
        self._added = 0
        self._executed = 0
        self._cancelled = 0
        self._resting = 0
        self._closed = False

    # -- lifecycle ---------------------------------------------------------
    def close(self):
        """Release the book; idempotent. Later calls raise ValueError."""
        if not self._closed:
            self._closed = True
            self._bids = self._asks = None
            self._orders = None

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _live(self):
        if self._closed:
            raise ValueError("operation on a closed ReferenceBook")

    def __repr__(self):
        if self._closed:
            return "<ReferenceBook closed>"
        return f"<ReferenceBook orders={len(self._orders)} best_bid={self.best_bid()} best_ask={self.best_ask()}>"

    # -- validation helpers -----------------------------------------------
    @staticmethod
    def _check_side(side):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or int(side) not in (BID, ASK):
            raise _fail(Status.BAD_SIDE, f"side must be Side.BID (+1) or Side.ASK (-1), got {side!r}")
        return int(side)

    @staticmethod
    def _check_qty(qty):
        if qty <= 0:
            raise _fail(Status.BAD_QTY, f"qty must be positive, got {qty}")
        return qty

    @staticmethod
    def _check_price(price):
        """INT64_MIN is refused (the C book negates ask prices)."""
        if price == INT64_MIN:
            raise _fail(Status.BAD_PRICE, f"price {price} out of range")
        return price

    def _check_total(self, extra):
        """The book's resting total must stay <= INT64_MAX, as in the C book."""
        if extra > 0 and self._resting + extra > INT64_MAX:
            raise _fail(Status.BAD_QTY, f"the book's resting total would exceed {INT64_MAX}")

    def _side_map(self, side):
        return self._bids if side == BID else self._asks

    def _find(self, order_id):
        """(side, price, level) of a resting order; OrderNotFound if absent. O(log L)."""
        try:
            side, price = self._orders[order_id]
        except KeyError:
            raise _fail(Status.UNKNOWN_ORDER, f"order {order_id} is not in the book") from None
        return side, price, self._side_map(side)[price]

    def _rest(self, order_id, side, price, qty):
        """Append an order at the tail of its level (creating it). O(log L)."""
        book = self._side_map(side)
        level = book.get(price)
        if level is None:
            level = book[price] = _Level()
        level.orders[order_id] = qty
        level.qty += qty
        self._orders[order_id] = (side, price)
        self._resting += qty

    def _take(self, order_id, side, price, level, qty):
        """Remove `qty` (<= its remaining) from a resting order; drop it and
        an emptied level when nothing remains. Returns the order's remaining qty."""
        left = level.orders[order_id] - qty
        level.qty -= qty
        self._resting -= qty
        if left:
            level.orders[order_id] = left
        else:
            del level.orders[order_id]
            del self._orders[order_id]
            if not level.orders:
                del self._side_map(side)[price]
        return left

    def _new_order(self, order_id, side, price, qty):
        """Validate a new order's fields in the C book's order: side, qty, price, duplicate id."""
        self._live()
        order_id, price, qty = _order_id(order_id), _price(price), _qty(qty)
        side = self._check_side(side)
        qty = self._check_qty(qty)
        self._check_price(price)
        if order_id in self._orders:
            raise _fail(Status.DUPLICATE_ORDER, f"order {order_id} is already in the book")
        return order_id, side, price, qty

    # -- L3 operations ----------------------------------------------------
    def add(self, order_id, side, price, qty):
        """Rest a new order at the tail of its price level; never matches,
        even if it crosses the other side (feeds can do that). O(log L)."""
        order_id, side, price, qty = self._new_order(order_id, side, price, qty)
        self._check_total(qty)
        self._rest(order_id, side, price, qty)
        self._added += qty

    def _take_qty(self, order_id, qty, what):
        """Take `qty` off an order (a cancel or an execution); returns the qty taken."""
        self._live()
        order_id, qty = _order_id(order_id), _qty(qty)
        side, price, level = self._find(order_id)
        qty = self._check_qty(qty)
        have = level.orders[order_id]
        if qty > have:
            raise _fail(Status.BAD_QTY, f"{what} of {qty} exceeds order {order_id}'s remaining {have}")
        self._take(order_id, side, price, level, qty)
        return qty

    def reduce(self, order_id, qty):
        """Partial cancel: remove `qty` lots; all that remains removes the order,
        more is InvalidOrder. Keeps queue position. O(1), O(log L) if a level empties."""
        self._cancelled += self._take_qty(order_id, qty, "reduce")

    def delete(self, order_id):
        """Cancel an order entirely. O(1), O(log L) if its level empties."""
        self._live()
        order_id = _order_id(order_id)
        side, price, level = self._find(order_id)
        qty = level.orders[order_id]
        self._take(order_id, side, price, level, qty)
        self._cancelled += qty

    def execute(self, order_id, qty):
        """A resting order traded `qty` lots (its whole remaining removes it;
        more is InvalidOrder). O(1), O(log L) if its level empties."""
        self._executed += self._take_qty(order_id, qty, "execute")

    def modify(self, order_id, price, qty):
        """Set an order's absolute price and qty. A new price or a larger qty
        sends it to the tail of its (new) level; a smaller or equal qty at the
        same price keeps its place. Never matches. O(log L)."""
        self._live()
        order_id, price, qty = _order_id(order_id), _price(price), _qty(qty)
        side, old_price, level = self._find(order_id)
        qty = self._check_qty(qty)
        self._check_price(price)
        have = level.orders[order_id]
        self._check_total(qty - have)
        if price == old_price and qty <= have:
            level.orders[order_id] = qty
            level.qty -= have - qty
            self._resting -= have - qty
        else:
            self._take(order_id, side, old_price, level, have)
            self._rest(order_id, side, price, qty)
        if qty > have:
            self._added += qty - have
        else:
            self._cancelled += have - qty

    def clear(self):
        """Remove every order (counted as cancelled). O(1) amortized."""
        self._live()
        self._cancelled += self._resting
        self._resting = 0
        self._bids = SortedDict()
        self._asks = SortedDict()
        self._orders = {}

    # -- matching -----------------------------------------------------------
    def submit(self, order_id, side, price, qty, tif=TimeInForce.GTC):
        """Match an incoming order against the book; return a SubmitResult.

        Price-time priority, each fill at the resting order's price, in the
        order they happen. GTC rests what is left at `price` (RESTED); IOC
        and MARKET (price ignored) cancel it (KILLED); FOK fills completely or
        not at all (KILLED, no fills, book unchanged); POST_ONLY rests, or is
        REJECTED (reason Status.WOULD_CROSS, book unchanged) if it would match
        anything. An id already resting is DuplicateOrderId.
        O(log L + fills).
        """
        self._live()
        tif = _int_arg("tif", tif, 0, TimeInForce.MARKET, Status.BAD_TIF)  # DAY/GTD: Backtest only
        if tif == TimeInForce.MARKET:
            price = 0  # ignored
        order_id, side, price, qty = self._new_order(order_id, side, price, qty)

        market = tif == TimeInForce.MARKET
        opp = self._asks if side == BID else self._bids

        def levels():
            """Opposite levels the order may trade with, best first."""
            keys = opp.keys() if side == BID else reversed(opp.keys())
            for p in keys:
                if not market and (p > price if side == BID else p < price):
                    return
                yield p

        if tif == TimeInForce.POST_ONLY:
            if next(levels(), None) is not None:
                return SubmitResult(SubmitOutcome.REJECTED, _fill_array(()), 0, 0, 0, Status.WOULD_CROSS)
            self._check_total(qty)
            self._rest(order_id, side, price, qty)
            self._added += qty
            return SubmitResult(SubmitOutcome.RESTED, _fill_array(()), 0, qty, 0)

        available = 0
        for p in levels():
            available += opp[p].qty
            if available >= qty:
                break
        if tif == TimeInForce.FOK and available < qty:
            return SubmitResult(SubmitOutcome.KILLED, _fill_array(()), 0, 0, qty)
        if tif == TimeInForce.GTC and available < qty:  # checked before any fill
            self._check_total(qty - 2 * available)  # resting after the fills, plus the remainder

        fills = []
        left = qty
        maker_side = -side
        while left and opp:
            p, level = opp.peekitem(0 if side == BID else -1)
            if not market and (p > price if side == BID else p < price):
                break
            orders = level.orders
            while left and orders:
                maker, have = next(iter(orders.items()))
                n = have if have < left else left
                remaining = self._take(maker, maker_side, p, level, n)
                self._executed += n
                left -= n
                fills.append((maker, order_id, p, n, remaining, side))
        filled = qty - left
        if not left:
            return SubmitResult(SubmitOutcome.FILLED, _fill_array(fills), filled, 0, 0)
        if tif == TimeInForce.GTC:
            self._rest(order_id, side, price, left)
            self._added += left
            return SubmitResult(SubmitOutcome.RESTED, _fill_array(fills), filled, left, 0)
        return SubmitResult(SubmitOutcome.KILLED, _fill_array(fills), filled, 0, left)

    # -- batch replay ---------------------------------------------------------
    def apply(self, events, strict=True):
        """Apply an EVENT_DTYPE array in order; returns ApplyResult.

        strict: raise the first failing event's exception (earlier events stay
        applied), naming its index. Otherwise skip failing events and count
        them by reason. TRADE and STATUS change nothing; SET_LEVEL is an L2
        event and is InvalidOrder here. O(events * log L).
        """
        self._live()
        check_event_array(events)
        kinds = events["kind"].tolist()
        ids = events["order_id"].tolist()
        prices = events["price"].tolist()
        qtys = events["qty"].tolist()
        sides = events["side"].tolist()
        ADD, REDUCE, DELETE, EXECUTE, MODIFY = (
            EventKind.ADD, EventKind.REDUCE, EventKind.DELETE, EventKind.EXECUTE, EventKind.MODIFY,
        )
        TRADE, STATUS = EventKind.TRADE, EventKind.STATUS
        applied = rejected = 0
        first = -1
        by_code = {}
        for i, kind in enumerate(kinds):
            try:
                if kind == ADD:
                    self.add(ids[i], sides[i], prices[i], qtys[i])
                elif kind == REDUCE:
                    self.reduce(ids[i], qtys[i])
                elif kind == DELETE:
                    self.delete(ids[i])
                elif kind == EXECUTE:
                    self.execute(ids[i], qtys[i])
                elif kind == MODIFY:
                    self.modify(ids[i], prices[i], qtys[i])
                elif kind == EventKind.CLEAR:
                    self.clear()
                elif kind == TRADE:  # a print: only its fields are checked
                    if not -1 <= sides[i] <= 1:
                        raise _fail(Status.BAD_SIDE, f"trade side {sides[i]} is not -1, 0 or +1")
                    if qtys[i] <= 0:
                        raise _fail(Status.BAD_QTY, f"trade qty {qtys[i]} is not positive")
                elif kind == STATUS:
                    if qtys[i] not in (1, 2, 3):
                        raise _fail(Status.BAD_QTY, f"status {qtys[i]} is not a TradingStatus")
                else:
                    raise _fail(Status.BAD_KIND, f"event kind {kind} is not applicable to an L3 book")
            except LobError as exc:
                code = getattr(exc, "code", None)
                if code is None:
                    raise
                if strict:
                    event = {"kind": kind, "order_id": ids[i], "side": sides[i], "price": prices[i], "qty": qtys[i]}
                    err = event_error(code, i, event, "apply")
                    err = type(err)(f"{err} ({exc})")
                    err.code = code
                    raise err from None
                rejected += 1
                by_code[code] = by_code.get(code, 0) + 1
                if first < 0:
                    first = i
            else:
                applied += 1
        by_reason = {STATUS_INFO[c][0]: n for c, n in sorted(by_code.items(), reverse=True)}
        return ApplyResult(applied, rejected, by_reason, first)

    # -- views ---------------------------------------------------------------
    def best_bid(self):
        """(price, qty) of the best bid level, or None. O(log L)."""
        self._live()
        if not self._bids:
            return None
        p, level = self._bids.peekitem(-1)
        return (p, level.qty)

    def best_ask(self):
        """(price, qty) of the best ask level, or None. O(log L)."""
        self._live()
        if not self._asks:
            return None
        p, level = self._asks.peekitem(0)
        return (p, level.qty)

    def depth(self, levels=10, out=None):
        """Top `levels` of each side, best first, as Depth of int64 arrays of
        length `levels` (missing levels are price 0, qty 0); `out`: a Depth of
        such arrays to fill in place and return. O(levels)."""
        self._live()
        levels = _int_arg("levels", levels, 0, 1 << 20)
        if out is None:
            out = Depth(*(np.zeros(levels, dtype=np.int64) for _ in range(4)))
        else:
            for a in out:
                if not (isinstance(a, np.ndarray) and a.dtype == np.int64 and a.shape == (levels,)):
                    raise ValueError(f"out arrays must be int64 of length {levels}")
                a[:] = 0
        for book, keys, px, qt in (
            (self._bids, reversed(self._bids.keys()), out[0], out[1]),
            (self._asks, iter(self._asks.keys()), out[2], out[3]),
        ):
            for j, p in enumerate(islice(keys, levels)):
                px[j] = p
                qt[j] = book[p].qty
        return out

    def level_count(self, side):
        """Number of price levels on one side. O(1)."""
        self._live()
        return len(self._side_map(self._check_side(side)))

    def order(self, order_id):
        """OrderInfo of a resting order with its queue position (lots and
        orders ahead of it at its level). O(orders ahead)."""
        self._live()
        order_id = _order_id(order_id)
        side, price, level = self._find(order_id)
        qty_ahead = orders_ahead = 0
        for oid, q in level.orders.items():
            if oid == order_id:
                return OrderInfo(order_id, Side(side), price, q, qty_ahead, orders_ahead)
            qty_ahead += q
            orders_ahead += 1
        raise BookCorrupted(f"order {order_id} is in the id map but not in its level")  # pragma: no cover

    def totals(self):
        """Conservation counters: added == resting + executed + cancelled (mod 2**64:
        the cumulative counters wrap like the C book's uint64). O(1)."""
        self._live()
        return {
            "added": self._added % 2**64,
            "executed": self._executed % 2**64,
            "cancelled": self._cancelled % 2**64,
            "resting": self._resting,
        }

    def __len__(self):
        self._live()
        return len(self._orders)

    def __contains__(self, order_id):
        self._live()
        try:
            return _order_id(order_id) in self._orders
        except InvalidOrder:
            return False

    def check(self):
        """Verify every invariant; raise BookCorrupted naming the first broken one. O(n + L)."""
        self._live()
        seen = 0
        resting = 0
        for side, book in ((BID, self._bids), (ASK, self._asks)):
            for p, level in book.items():
                if not level.orders:
                    raise BookCorrupted(f"empty level kept at side {side} price {p}")
                total = 0
                for oid, q in level.orders.items():
                    if q <= 0:
                        raise BookCorrupted(f"order {oid} has non-positive qty {q}")
                    if self._orders.get(oid) != (side, p):
                        raise BookCorrupted(f"order {oid} at side {side} price {p} disagrees with the id map")
                    total += q
                    seen += 1
                if total != level.qty:
                    raise BookCorrupted(f"level total {level.qty} != sum of orders {total} at side {side} price {p}")
                resting += total
        if seen != len(self._orders):
            raise BookCorrupted(f"id map has {len(self._orders)} orders, levels hold {seen}")
        if resting != self._resting:
            raise BookCorrupted(f"resting counter {self._resting} != sum of levels {resting}")
        if self._added != self._resting + self._executed + self._cancelled:
            raise BookCorrupted(
                f"conservation broken: added {self._added} != resting {self._resting} + "
                f"executed {self._executed} + cancelled {self._cancelled}"
            )
