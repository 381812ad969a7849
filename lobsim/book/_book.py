"""Python handles on the C books (csrc/book.c): OrderBook (L3), LevelBook (L2), depth_series."""
import threading
from typing import NamedTuple

import numpy as np

from lobsim._core import ERROR_NAMES, apply_error, check, event_buffer, ffi, lib, unwrap_events
from lobsim._types import FILL_DTYPE, EventKind, Side, SubmitOutcome, SubmitResult, TimeInForce
from lobsim.errors import InvalidOrder, Status, status_error

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


class Depth(NamedTuple):
    """Top-of-book levels, best first; empty levels are price 0, qty 0."""

    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray


class OrderInfo(NamedTuple):
    """A copy of one resting order and its queue position at its level."""

    order_id: int
    side: Side
    price: int
    qty: int
    qty_ahead: int
    orders_ahead: int


class ApplyResult(NamedTuple):
    """Outcome of apply(): events applied, events rejected (non-strict) by reason."""

    applied: int
    rejected: int
    by_reason: dict
    first_error_index: int  # -1 if none


class DepthSeries(NamedTuple):
    """Book top after each recorded event: arrays of shape (rows, levels); index = event index;
    result = what the replay applied and (non-strict) skipped."""

    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    index: np.ndarray
    result: "ApplyResult"


def _int_arg(name, value, lo, hi):
    """Validate an integer argument at the boundary (C would otherwise overflow or truncate)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidOrder(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidOrder(f"{name} {value} out of range [{lo}, {hi}]")
    return value


_RANGES = {
    "order_id": (0, UINT64_MAX),
    "side": (-1, 1),
    "price": (INT64_MIN + 1, INT64_MAX),
    "qty": (INT64_MIN, INT64_MAX),
}


def _side(side):
    if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or int(side) not in (1, -1):
        raise InvalidOrder(f"side must be Side.BID (+1) or Side.ASK (-1), got {side!r}")
    return int(side)


class DepthBuffers:
    """The caller's buffers for lob_book_depth: a Depth (new, or the `out` given) and
    the cdata pointers to its four arrays. Checked once and reused while the same
    Depth comes back (the fast path of a strategy loop calling depth(k, out=buf))."""

    def __init__(self):
        self._out = self._ptrs = None
        self.n = ffi.new("size_t[2]")  # levels written per side

    def prepare(self, levels, out):
        """(levels, out, pointers) for a depth(levels, out) call."""
        if out is not None and out is self._out and len(out.bid_px) == levels:
            return levels, out, self._ptrs
        levels = _int_arg("levels", levels, 0, 1 << 20)
        if out is None:
            out = Depth(*(np.zeros(levels, dtype=np.int64) for _ in range(4)))
        else:
            _check_depth_out(out, levels)
        self._out = out
        self._ptrs = [ffi.cast("int64_t *", ffi.from_buffer(a, require_writable=True)) for a in out]
        return levels, out, self._ptrs


def _check_depth_out(out, levels):
    if not isinstance(out, Depth):
        raise TypeError(f"out must be a Depth (from an earlier depth() call), got {type(out).__name__}")
    for name, a in zip(Depth._fields, out):
        if not (isinstance(a, np.ndarray) and a.dtype == np.int64 and a.ndim == 1 and a.flags.c_contiguous
                and a.flags.writeable and len(a) == levels):
            raise ValueError(f"out.{name} must be a writable C-contiguous int64 array of length {levels}")


def _apply_result(res):
    by_reason = {ERROR_NAMES[-k]: int(res.by_error[k]) for k in range(1, lib.LOB_N_ERRORS) if res.by_error[k]}
    return ApplyResult(int(res.applied), int(res.rejected), by_reason, int(res.first_error_index))


_BOOLS = (bool, np.bool_)


class _Book:
    """Shared handle logic: ownership of the C book, views, apply.

    cffi releases the GIL during every C call, so each call holds the book's
    lock: a close() (or another call) from another thread waits instead of
    freeing or mutating the book under a running call.
    """

    _type = None

    def __init__(self):
        out = ffi.new("lob_book **")
        check(lib.lob_book_new(self._type, out), "creating book")
        self._ptr = ffi.gc(out[0], lib.lob_book_free)
        self._lock = threading.Lock()
        self._c_px = ffi.new("int64_t *")
        self._c_qty = ffi.new("int64_t *")
        self._depth = DepthBuffers()

    # -- lifecycle -----------------------------------------------------
    def close(self):
        """Free the C book now (idempotent); later calls raise ValueError."""
        with self._lock:
            if self._ptr is not None:
                ffi.release(self._ptr)
                self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self._ptr is None:
            return f"<{type(self).__name__} closed>"
        return f"<{type(self).__name__} {len(self)} {self._size_word} best_bid={self.best_bid()} best_ask={self.best_ask()}>"

    def __copy__(self):
        # A copy would share (and later double-free) the C book.
        raise TypeError(f"{type(self).__name__} cannot be copied or pickled; replay the events into a new book")

    __deepcopy__ = __reduce__ = lambda self, *a: self.__copy__()

    @property
    def _b(self):
        """The C handle; only use while holding self._lock."""
        if self._ptr is None:
            raise ValueError("book is closed")
        return self._ptr

    def _call(self, cfunc, what, names, *args):
        """Call a C book operation by its named integer arguments; map the status code.

        The fast path hands the values straight to cffi, which refuses floats,
        strings and out-of-range values; only then are the arguments inspected
        one by one to name the offending field.
        """
        for value in args:
            if isinstance(value, _BOOLS):
                raise InvalidOrder(f"{what}: got a bool where an integer is expected ({dict(zip(names, args))})")
        with self._lock:
            try:
                rc = cfunc(self._b, *args)
            except (TypeError, OverflowError):
                for name, value in zip(names, args):
                    _int_arg(name, value, *_RANGES[name])
                raise
        if rc < 0:
            raise status_error(rc, f"{what} {dict(zip(names, args))}")
        return rc

    # -- views ----------------------------------------------------------
    def best_bid(self):
        """(price, qty) of the best bid, or None. O(1)."""
        with self._lock:
            if self._ptr is None:
                raise ValueError("book is closed")
            if lib.lob_book_best(self._ptr, 1, self._c_px, self._c_qty) == 0:
                return None
            return self._c_px[0], self._c_qty[0]

    def best_ask(self):
        """(price, qty) of the best ask, or None. O(1)."""
        with self._lock:
            if self._ptr is None:
                raise ValueError("book is closed")
            if lib.lob_book_best(self._ptr, -1, self._c_px, self._c_qty) == 0:
                return None
            return self._c_px[0], self._c_qty[0]

    def depth(self, levels=10, out=None):
        """Top `levels` per side as a Depth of int64 arrays (best first, 0-padded). O(levels).

        Both sides come from one C call under the book's lock, so a snapshot
        is always one the book really was in. `out`: a Depth returned by an
        earlier depth(levels) call to fill in place (no allocation: the fast
        path for a strategy loop); it is returned.
        """
        levels, out, ptrs = self._depth.prepare(levels, out)
        with self._lock:
            rc = lib.lob_book_depth(self._b, levels, *ptrs, self._depth.n, self._depth.n + 1)
        check(rc, "depth")
        return out

    def memory_bytes(self):
        """Bytes held by the C book (pools, id map, level index). They follow live
        orders and levels: pools shrink as the book empties; clear() returns to
        the initial size."""
        with self._lock:
            return int(lib.lob_book_memory(self._b))

    def level_count(self, side):
        """Number of price levels on one side."""
        side = _side(side)
        with self._lock:
            return int(lib.lob_book_level_count(self._b, side))

    def apply(self, events, strict=True):
        """Apply a whole EVENT_DTYPE array in one C call (no per-event Python).

        strict: raise on the first event that cannot be applied, naming its
        index and field (the events before it stay applied). Otherwise skip
        such events and count them in the returned ApplyResult.
        """
        events, ptr, n = event_buffer(events)
        res = ffi.new("lob_apply_result *")
        with self._lock:
            rc = lib.lob_book_apply(self._b, ptr, n, 1 if strict else 0, res)
        if rc < 0:
            raise apply_error(events, res, rc, "apply")
        return _apply_result(res)

    def clear(self):
        self._call(lib.lob_book_clear, "clear", ())

    def check(self):
        """Run the C invariant checker; raise BookCorrupted with what is wrong."""
        msg = ffi.new("char[512]")
        with self._lock:
            rc = lib.lob_book_check(self._b, msg, 512)
        if rc < 0:
            raise status_error(rc, ffi.string(msg).decode())

    def totals(self):
        """Conservation counters: added == resting + executed + cancelled (L3).
        The cumulative counters wrap modulo 2**64 (never in practice)."""
        t = ffi.new("lob_book_totals *")
        self._call(lib.lob_book_totals_get, "totals", (), t)
        return {"added": t.added, "executed": t.executed, "cancelled": t.cancelled, "resting": t.resting}


class OrderBook(_Book):
    """L3 order book with price-time FIFO queues and a matching engine, in C.

    Operations are O(1) by order id (hash map) plus O(log levels) to find a
    new price level; best bid/ask is O(1). Memory grows with live orders and
    levels only.
    """

    _type = lib.LOB_BOOK_L3
    _size_word = "orders"

    def __init__(self):
        super().__init__()
        self._fills = np.zeros(64, dtype=FILL_DTYPE)
        self._submit_res = ffi.new("lob_submit_result *")
        self._info = ffi.new("lob_order_info *")

    def __len__(self):
        with self._lock:
            return int(lib.lob_book_order_count(self._b))

    def __contains__(self, order_id):
        if isinstance(order_id, _BOOLS):
            return False
        with self._lock:
            try:
                return lib.lob_book_order(self._b, order_id, self._info) == lib.LOB_OK
            except (TypeError, OverflowError):
                return False

    def add(self, order_id, side, price, qty):
        """Rest a new order at the tail of its level (never matches). O(1) + level lookup."""
        self._call(lib.lob_book_add, "add", ("order_id", "side", "price", "qty"), order_id, side, price, qty)

    def reduce(self, order_id, qty):
        """Cancel `qty` of an order (all of it removes the order); keeps priority. O(1)."""
        self._call(lib.lob_book_reduce, "reduce", ("order_id", "qty"), order_id, qty)

    def delete(self, order_id):
        """Remove an order. O(1)."""
        self._call(lib.lob_book_delete, "delete", ("order_id",), order_id)

    def execute(self, order_id, qty):
        """A resting order traded `qty` (data replay). O(1)."""
        self._call(lib.lob_book_execute, "execute", ("order_id", "qty"), order_id, qty)

    def modify(self, order_id, price, qty):
        """New absolute price and qty. A price change or size increase loses priority."""
        self._call(lib.lob_book_modify, "modify", ("order_id", "price", "qty"), order_id, price, qty)

    def submit(self, order_id, side, price, qty, tif=TimeInForce.GTC):
        """Match an incoming order; returns a SubmitResult (outcome, fills, filled /
        rested / killed qty, reason).

        GTC rests the remainder (RESTED), IOC and MARKET cancel it (KILLED),
        FOK fills all or nothing (KILLED with no fills), POST_ONLY rests or,
        if it would take liquidity, is REJECTED with reason
        Status.WOULD_CROSS and changes nothing (a routine outcome for a market
        maker, not an exception). Trades happen at the resting order's price,
        fills in execution order. Bad arguments (side, qty, price, tif, an id
        already resting) raise. O(fills). `price` is ignored for MARKET.
        """
        tif = _int_arg("tif", tif, 0, TimeInForce.MARKET)  # DAY/GTD are the simulator's, not the book's
        if tif == TimeInForce.MARKET:
            price = 0  # ignored by the engine
        args = (_int_arg("order_id", order_id, *_RANGES["order_id"]), _side(side),
                _int_arg("price", price, *_RANGES["price"]), _int_arg("qty", qty, *_RANGES["qty"]), tif)
        r = self._submit_res
        with self._lock:
            while True:
                buf = ffi.cast("lob_fill *", ffi.from_buffer(self._fills))
                rc = lib.lob_book_submit(self._b, *args, buf, len(self._fills), r)
                if rc != lib.LOB_ERR_CAPACITY:
                    break
                self._fills = np.zeros(max(int(r.n_fills), 2 * len(self._fills)), dtype=FILL_DTYPE)
            check(rc, f"submit order {order_id}")
            return SubmitResult(SubmitOutcome(r.outcome), self._fills[: r.n_fills].copy(), r.filled_qty,
                                r.rested_qty, r.killed_qty, Status(r.reject_code) if r.reject_code else None)

    def order(self, order_id):
        """Copy of a resting order with its queue position.

        O(orders ahead of it at its level): it walks the FIFO, so it is for
        inspection, not for a per-event loop (the simulator tracks its own
        orders' queue position incrementally)."""
        i = ffi.new("lob_order_info *")  # per call, so concurrent calls cannot mix results
        self._call(lib.lob_book_order, "order", ("order_id",), order_id, i)
        return OrderInfo(int(i.order_id), Side(i.side), int(i.price), int(i.qty), int(i.qty_ahead),
                         int(i.orders_ahead))


class LevelBook(_Book):
    """L2 price-level book (absolute level sizes), in C. Same views as OrderBook."""

    _type = lib.LOB_BOOK_L2
    _size_word = "levels"

    def __len__(self):
        """Number of price levels, both sides."""
        with self._lock:
            return int(lib.lob_book_level_count(self._b, 1) + lib.lob_book_level_count(self._b, -1))

    def set_level(self, side, price, qty):
        """Set the absolute size at (side, price); qty 0 deletes the level. O(log levels)."""
        self._call(lib.lob_book_set_level, "set_level", ("side", "price", "qty"), side, price, qty)


def book_type_for(events):
    """LevelBook if the stream (an event array or an Events) has L2 level sets, else OrderBook."""
    events = unwrap_events(events)
    if np.any(events["kind"] == EventKind.SET_LEVEL):
        return LevelBook
    return OrderBook


def depth_series(events, levels=10, batch_end_only=False, strict=True, book=None):
    """Replay `events` and return the top `levels` after every event (one C call).

    batch_end_only: keep only rows after events flagged BATCH_END (the book is
    consistent only there). The book type (L2/L3) follows the event kinds
    unless `book` (an OrderBook or LevelBook to continue from) is given.
    Returns a DepthSeries of (rows, levels) int64 arrays plus the event index
    of each row. O(n * levels) time and output memory.
    """
    events, ptr, n = event_buffer(events)
    levels = _int_arg("levels", levels, 1, 1 << 16)
    if book is None:
        with book_type_for(events)() as fresh:
            return _depth_series(fresh, events, ptr, n, levels, batch_end_only, strict)
    return _depth_series(book, events, ptr, n, levels, batch_end_only, strict)


def _depth_series(book, events, ptr, n, levels, batch_end_only, strict):
    if batch_end_only:
        rows = int(np.count_nonzero(events["flags"] & lib.LOB_FLAG_BATCH_END)) if n else 0
    else:
        rows = n
    arrs = [np.zeros((rows, levels), dtype=np.int64) for _ in range(4)]
    index = np.zeros(rows, dtype=np.int64)
    cast = [ffi.cast("int64_t *", ffi.from_buffer(a)) if rows else ffi.NULL for a in (*arrs, index)]
    res = ffi.new("lob_apply_result *")
    rows_out = ffi.new("size_t *")
    with book._lock:
        rc = lib.lob_depth_series(book._b, ptr, n, levels, 1 if batch_end_only else 0, 1 if strict else 0,
                                  *cast, rows, rows_out, res)
    if rc < 0:
        raise apply_error(events, res, rc, "depth_series")
    return DepthSeries(*arrs, index, _apply_result(res))
