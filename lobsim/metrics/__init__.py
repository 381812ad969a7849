"""Trackers, metrics and reports of a backtest (lobsim.BacktestResult).

    result = Backtest(...).run()
    result.metrics            # dict: pnl, sharpe, fill_ratio, markout_1s, ... (compute(result))
    print(result.summary())   # aligned table with units
    result.to_parquet("out")  # fills/orders/position/markouts .parquet + metrics.json
    result.plot("out/report.png")

compute()'s docstring defines every metric (signs and units). Numpy only at
import: pyarrow loads on the first Parquet/Arrow call, matplotlib on plot().
"""
from lobsim.metrics._compute import (
    METRICS,
    YEAR_NS,
    compute,
    drawdown,
    equity_curve,
    horizon_name,
    metric_info,
    per_fill_markouts,
    value_per_tick_lot,
)
from lobsim.metrics._dtypes import MARKOUTS_DTYPE, SIM_MARKOUT_DTYPE
from lobsim.metrics._report import from_parquet, summary, to_arrow, to_parquet


def plot(result, path, *, dpi=100):
    """Write result's one-figure PNG report to `path` (see BacktestResult.plot)."""
    from lobsim.metrics._plot import plot as _plot

    return _plot(result, path, dpi=dpi)


__all__ = ["compute", "summary", "to_arrow", "to_parquet", "from_parquet", "plot", "equity_curve", "drawdown",
           "horizon_name", "metric_info", "per_fill_markouts", "value_per_tick_lot", "METRICS", "YEAR_NS",
           "MARKOUTS_DTYPE", "SIM_MARKOUT_DTYPE"]
