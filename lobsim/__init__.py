"""lobsim: tick-level limit-order-book simulator with an exact C matching core."""
from lobsim._types import (
    EVENT_DTYPE,
    FILL_DTYPE,
    EventKind,
    Flag,
    Side,
    TimeInForce,
    TradingStatus,
    empty_events,
)
from lobsim.errors import (
    BookCorrupted,
    CapacityError,
    DataError,
    DuplicateOrderId,
    InvalidOrder,
    LobError,
    OrderNotFound,
    OrderRejected,
)
from lobsim.instrument import Instrument

__version__ = "0.1.0"

__all__ = [
    "EVENT_DTYPE",
    "FILL_DTYPE",
    "EventKind",
    "Flag",
    "Side",
    "TimeInForce",
    "TradingStatus",
    "empty_events",
    "Instrument",
    "LobError",
    "OrderNotFound",
    "DuplicateOrderId",
    "InvalidOrder",
    "OrderRejected",
    "CapacityError",
    "BookCorrupted",
    "DataError",
]
