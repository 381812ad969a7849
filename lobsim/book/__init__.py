"""Order books: the C L3 OrderBook (with matching), the C L2 LevelBook, depth_series,
and the pure-Python ReferenceBook used as the test oracle."""
from lobsim.book._book import (
    ApplyResult,
    Depth,
    DepthSeries,
    LevelBook,
    OrderBook,
    OrderInfo,
    depth_series,
)
from lobsim._types import SubmitOutcome, SubmitResult


def __getattr__(name):
    # ReferenceBook is pure Python on sortedcontainers; imported on first use.
    if name == "ReferenceBook":
        from lobsim.book.reference import ReferenceBook

        return ReferenceBook
    raise AttributeError(f"module 'lobsim.book' has no attribute {name!r}")


__all__ = ["OrderBook", "LevelBook", "ReferenceBook", "depth_series", "Depth", "DepthSeries",
           "OrderInfo", "ApplyResult", "SubmitOutcome", "SubmitResult"]
