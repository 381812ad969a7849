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
