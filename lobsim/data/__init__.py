"""Readers of real tick captures, the Parquet event store and the synthetic generator.

Every reader returns an `Events` (array, instrument, validation report).
"""
import importlib

from lobsim.data.events import Events, ValidationReport

# name -> submodule; resolved on first use so optional extras (databento-dbn)
# are only needed by the reader that uses them.
_LAZY = {
    "read_lobster": "lobsim.data.lobster",
    "read_dbn": "lobsim.data.dbn",
    "read_binance": "lobsim.data.binance",
    "read_tardis": "lobsim.data.tardis",
    "write_parquet": "lobsim.data.store",
    "read_parquet": "lobsim.data.store",
    "iter_parquet": "lobsim.data.store",
    "read_metadata": "lobsim.data.store",
    "synthetic": "lobsim.data.synthetic",
}

__all__ = ["Events", "ValidationReport", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'lobsim.data' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    return module if name == "synthetic" else getattr(module, name)
