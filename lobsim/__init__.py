"""lobsim: tick-level limit-order-book simulator with an exact C matching core."""
from lobsim._types import (
    EVENT_DTYPE,
    FILL_DTYPE,
    FILLS_DTYPE,
    ORDERS_DTYPE,
    POSITION_DTYPE,
    EventKind,
    Flag,
    OrderState,
    RejectReason,
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

# The backtest layer needs the C core: imported on first use, so `import lobsim`
# works (and stays light) without it.
_SIM = ("Backtest", "Strategy", "Fees", "BacktestResult")
_RISK = ("RiskLimits", "RiskBreach")  # plain Python, imported on first use too


def __getattr__(name):
    if name in _SIM or name in _RISK:
        if name in _SIM:
            import lobsim.sim as module
        else:
            import lobsim.sim._risk as module

        value = getattr(module, name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'lobsim' has no attribute {name!r}")


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
    "Backtest",
    "Strategy",
    "Fees",
    "BacktestResult",
    "RiskLimits",
    "RiskBreach",
    "OrderState",
    "RejectReason",
    "FILLS_DTYPE",
    "ORDERS_DTYPE",
    "POSITION_DTYPE",
]
