"""The backtest layer: Backtest drives the simulated venue (csrc/venue.c) with a Strategy.

    from lobsim import Backtest, Strategy, Fees
    result = Backtest("data/sample.parquet", MyStrategy(), fees=Fees(maker=-0.0001, taker=0.0004)).run()

Strategy and Fees are plain Python; Backtest needs the C core.
"""
from lobsim._types import FILLS_DTYPE, ORDERS_DTYPE, POSITION_DTYPE, OrderState, RejectReason
from lobsim.sim._backtest import Backtest, BacktestResult, Context, OpenOrder
from lobsim.sim._strategy import Fees, Strategy

__all__ = ["Backtest", "BacktestResult", "Context", "OpenOrder", "Strategy", "Fees", "OrderState", "RejectReason",
           "FILLS_DTYPE", "ORDERS_DTYPE", "POSITION_DTYPE"]
