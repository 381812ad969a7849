"""Readers of real tick captures, the Parquet event store and the synthetic generator.

Every reader returns an `Events` (array, instrument, validation report).
Names are imported on first use (module __getattr__), so `from lobsim.data
import synthetic` does not load pyarrow; optional extras (databento-dbn) are
imported only when their reader runs.
"""
import importlib

# public name -> module that defines it
_SOURCES = {
    "Events": "lobsim.data.events",
    "ValidationReport": "lobsim.data.events",
    "read_lobster": "lobsim.data.lobster",
    "iter_lobster": "lobsim.data.lobster",
    "read_dbn": "lobsim.data.dbn",
    "iter_dbn": "lobsim.data.dbn",
    "instrument_from_dbn": "lobsim.data.dbn",
    "read_binance": "lobsim.data.binance",
    "iter_binance": "lobsim.data.binance",
    "read_binance_book_ticker": "lobsim.data.binance",
    "read_tardis": "lobsim.data.tardis",
    "iter_tardis": "lobsim.data.tardis",
    "read_kraken": "lobsim.data.kraken",
    "iter_kraken": "lobsim.data.kraken",
    "read_bybit": "lobsim.data.bybit",
    "iter_bybit": "lobsim.data.bybit",
    "EventWriter": "lobsim.data.store",
    "write_parquet": "lobsim.data.store",
    "read_parquet": "lobsim.data.store",
    "iter_parquet": "lobsim.data.store",
    "read_metadata": "lobsim.data.store",
    "file_book_type": "lobsim.data.store",
    "synthetic": None,  # the submodule itself
}

__all__ = list(_SOURCES)


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module 'lobsim.data' has no attribute {name!r}")
    source = _SOURCES[name]
    value = importlib.import_module(f"lobsim.data.{name}") if source is None else getattr(
        importlib.import_module(source), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
