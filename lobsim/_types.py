"""The normalized event and fill records, mirrored exactly by C structs in csrc/lobsim.h.

tests/test_abi.py checks itemsize and every field offset against the C side.
"""
import enum
from typing import NamedTuple

import numpy as np

from lobsim.errors import Status


class Side(enum.IntEnum):
    """+1 bid / buy, -1 ask / sell; NONE for prints whose aggressor is unknown."""

    NONE = 0
    BID = 1
    ASK = -1
    BUY = 1
    SELL = -1


class EventKind(enum.IntEnum):
    """lob_event.kind (see DESIGN.md, 'The normalized event')."""

    ADD = 1  # L3: new resting order
    REDUCE = 2  # L3: partial cancel, qty = amount removed
    DELETE = 3  # L3: full cancel
    EXECUTE = 4  # L3: resting order traded; side = resting side
    MODIFY = 5  # L3: absolute new price and qty
    SET_LEVEL = 6  # L2: absolute level size, 0 deletes
    TRADE = 7  # trade print; side = aggressor (0 unknown); no book change
    CLEAR = 8  # clear the book
    STATUS = 9  # trading status in qty (TradingStatus); no book change


class Flag(enum.IntFlag):
    """lob_event.flags bits."""

    NONE = 0
    SNAPSHOT = 1
    BATCH_END = 2
    HIDDEN = 4
    PRE_SNAPSHOT = 8  # read before the feed's first snapshot (a reader option keeps such events)


class TradingStatus(enum.IntEnum):
    """qty of a STATUS event."""

    HALT = 1
    QUOTING = 2
    TRADING = 3


class TimeInForce(enum.IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2
    POST_ONLY = 3
    MARKET = 4
    DAY = 5  # Backtest only: a GTC that expires at the session end
    GTD = 6  # Backtest only: a GTC that expires at its expire_ns


class SubmitOutcome(enum.IntEnum):
    """What OrderBook.submit() did with an order (csrc/lobsim.h LOB_SUBMIT_*)."""

    FILLED = 1    # filled in full
    RESTED = 2    # the remainder rests (GTC, POST_ONLY); some may have filled first
    KILLED = 3    # the remainder was cancelled: IOC/MARKET leftover, FOK that could not fill in full
    REJECTED = 4  # refused with no effect; `reason` says why (post-only that would cross)


class SubmitResult(NamedTuple):
    """Everything submit() did: filled_qty + rested_qty + killed_qty == qty (0 each if rejected)."""

    outcome: SubmitOutcome
    fills: np.ndarray  # FILL_DTYPE, in execution order
    filled_qty: int
    rested_qty: int
    killed_qty: int
    reason: Status | None = None  # Status.WOULD_CROSS for a rejection, else None


EVENT_DTYPE = np.dtype(
    {
        "names": ["ts_exch", "ts_local", "order_id", "price", "qty", "side", "kind", "flags", "reserved"],
        "formats": ["<i8", "<i8", "<u8", "<i8", "<i8", "i1", "u1", "<u2", "<u4"],
        "offsets": [0, 8, 16, 24, 32, 40, 41, 42, 44],
        "itemsize": 48,
    }
)
"""One normalized event (48 bytes): ns clocks, price in ticks, qty in lots.

`reserved` is explicit (always 0) so the dtype has no padding and survives
np.concatenate and friends unchanged."""

FILL_DTYPE = np.dtype(
    {
        "names": ["maker_id", "taker_id", "price", "qty", "maker_remaining", "taker_side", "reserved"],
        "formats": ["<u8", "<u8", "<i8", "<i8", "<i8", "i1", ("u1", (7,))],
        "offsets": [0, 8, 16, 24, 32, 40, 41],
        "itemsize": 48,
    }
)
"""One fill of an incoming order against a resting order, at the resting price."""


def empty_events(n):
    """A zeroed event array of length n (reserved bytes zero)."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def check_event_array(events, name="events"):
    """Refuse anything but a 1-d, C-contiguous numpy array of exactly EVENT_DTYPE."""
    if not isinstance(events, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of lobsim.EVENT_DTYPE, got {type(events).__name__}")
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"{name} has dtype {events.dtype}, expected lobsim.EVENT_DTYPE")
    if events.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {events.shape}")
    if not events.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray)")


# ---------------------------------------------------------------------------
# The simulated venue (csrc/venue.c): order states, rejection reasons, and the
# records it writes. SIM_MSG_DTYPE / SIM_POS_DTYPE mirror lob_sim_msg /
# lob_sim_pos byte for byte (tests/test_abi.py); FILLS_DTYPE, ORDERS_DTYPE and
# POSITION_DTYPE are the user-facing result tables built from them.
# ---------------------------------------------------------------------------


class OrderState(enum.IntEnum):
    """State of a user order after an update (csrc/lobsim.h LOB_ORD_*)."""

    NEW = 0               # sent, not yet at the venue
    ACCEPTED = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5          # `reason` says why
    EXPIRED = 6
    TRIGGERED = 7         # a stop order's trigger fired: it now works as a market or limit order


class RejectReason(enum.IntEnum):
    """Why the venue rejected a request (csrc/lobsim.h LOB_REJ_*)."""

    NONE = 0
    WOULD_CROSS = 1    # post-only that would take liquidity
    UNKNOWN_ORDER = 2  # cancel/modify of an id the venue never saw
    TOO_LATE = 3       # cancel/modify of an order already filled, cancelled or expired
    INVALID = 4        # a field out of range (qty <= 0, price, side, tif)
    DUPLICATE = 5      # a new order with an id already used
    VENUE = 6          # rejected per an empirical latency record (negative venue_ts)
    NO_LIQUIDITY = 7   # market order with nothing to take
    RISK = 8  # refused by the user's own pre-trade risk checks (lobsim.RiskLimits), never sent
    HALTED = 9  # trading is halted: an order that would trade now is refused


SIM_MSG_DTYPE = np.dtype(
    {
        "names": ["ts_exch", "ts_local", "order_id", "price", "qty", "leaves_qty", "position", "fee", "cash",
                  "side", "kind", "state", "reason", "maker", "tif", "request", "reserved"],
        "formats": ["<i8", "<i8", "<u8", "<i8", "<i8", "<i8", "<i8", "<f8", "<f8",
                    "i1", "u1", "u1", "u1", "u1", "u1", "u1", "u1"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 73, 74, 75, 76, 77, 78, 79],
        "itemsize": 80,
    }
)
"""One message of the simulator (lob_sim_msg, 80 bytes): an order update (kind 1) or a fill (kind 2)."""

SIM_POS_DTYPE = np.dtype(
    {
        "names": ["ts", "position", "cash", "fees", "bid", "ask", "kind", "reserved"],
        "formats": ["<i8", "<i8", "<f8", "<f8", "<i8", "<i8", "<i4", "<i4"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 52],
        "itemsize": 56,
    }
)
"""One position row of the simulator (lob_sim_pos, 56 bytes): kind 1 = a fill, 2 = a timer wake-up."""

FILLS_DTYPE = np.dtype([
    ("ts_exch", "<i8"),    # venue time of the fill
    ("ts_local", "<i8"),   # when the strategy learns it
    ("order_id", "<u8"),
    ("side", "i1"),        # +1 the user bought, -1 sold
    ("price", "<i8"),      # ticks
    ("qty", "<i8"),        # lots
    ("maker", "?"),        # True: the user's order was resting
    ("fee", "<f8"),        # currency; negative = rebate earned
    ("position", "<i8"),   # lots, signed, after the fill
    ("cash", "<f8"),       # currency after the fill (-signed traded value - fees so far)
])
"""result.fills: one row per fill of a user order, in the order they happened."""

ORDERS_DTYPE = np.dtype([
    ("ts_exch", "<i8"),    # venue time (for NEW: when the request reaches the venue)
    ("ts_local", "<i8"),   # when the strategy learns it (for NEW: when it was sent)
    ("order_id", "<u8"),
    ("side", "i1"),
    ("state", "u1"),       # OrderState
    ("reason", "u1"),      # RejectReason (NONE unless REJECTED)
    ("price", "<i8"),      # limit price, ticks
    ("qty", "<i8"),        # the order's qty, lots
    ("leaves_qty", "<i8"), # open qty after the update
    ("tif", "u1"),         # TimeInForce
    ("request", "u1"),     # what caused the update: 0 new, 1 cancel, 2 modify
])
"""result.orders: one row per order state change (NEW when sent, then every answer)."""

POSITION_DTYPE = np.dtype([
    ("ts", "<i8"),         # venue time of a fill row, local time of a timer row
    ("position", "<i8"),   # lots, signed
    ("cash", "<f8"),       # currency: -signed traded value - fees
    ("fees", "<f8"),       # fees paid so far (negative = net rebate)
    ("bid", "<i8"),        # best bid (venue book on fill rows, local book on timer rows), 0 if none
    ("ask", "<i8"),
    ("kind", "u1"),        # 1 = fill, 2 = timer
])
"""result.position: the account at every fill (venue time) and every timer wake-up (local time)."""
