"""Readers of real tick captures, the Parquet event store and the synthetic generator.

Every reader returns an `Events` (array, instrument, validation report).
Optional extras (databento-dbn) are imported only when their reader runs.
"""
from lobsim.data import synthetic
from lobsim.data.binance import read_binance, read_binance_book_ticker
from lobsim.data.dbn import instrument_from_dbn, read_dbn
from lobsim.data.events import Events, ValidationReport
from lobsim.data.lobster import read_lobster
from lobsim.data.store import iter_parquet, read_metadata, read_parquet, write_parquet
from lobsim.data.tardis import read_tardis

__all__ = [
    "Events",
    "ValidationReport",
    "read_lobster",
    "read_dbn",
    "instrument_from_dbn",
    "read_binance",
    "read_binance_book_ticker",
    "read_tardis",
    "write_parquet",
    "read_parquet",
    "iter_parquet",
    "read_metadata",
    "synthetic",
]
