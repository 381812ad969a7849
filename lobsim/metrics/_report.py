"""Reports of a backtest result: the summary table, Arrow tables, the Parquet/JSON directory.

pyarrow is imported inside the functions that need it (`import lobsim` stays light).
"""
import json
import math
import os
import shutil
import tempfile

import numpy as np

from lobsim._types import FILLS_DTYPE, ORDERS_DTYPE, POSITION_DTYPE
from lobsim.instrument import Instrument
from lobsim.metrics._compute import metric_info
from lobsim.metrics._dtypes import MARKOUTS_DTYPE, N_HORIZONS

FORMAT = "lobsim-backtest"
VERSION = 1
TABLES = {"fills": FILLS_DTYPE, "orders": ORDERS_DTYPE, "position": POSITION_DTYPE, "markouts": MARKOUTS_DTYPE}
_SCALARS = ("clock_offset_ns", "events", "seed", "sample_ns", "data_start_ns", "data_end_ns", "inventory_limit")

_SECTIONS = [
    ("PnL", ("pnl", "realized_pnl", "unrealized_pnl", "fees")),
    ("Risk (on the equity samples)", ("sharpe", "sortino", "max_drawdown", "annual_return", "calmar", "var_95",
                                      "cvar_95", "var_99", "cvar_99")),
    ("Trading", ("fills", "maker_fills", "taker_fills", "maker_volume", "taker_volume", "traded_value",
                 "turnover_per_day", "orders", "orders_accepted", "orders_rejected", "risk_rejections",
                 "posted_volume", "fill_ratio", "spread_captured", "spread_captured_value")),
    ("Inventory", ("inventory_mean", "inventory_std", "inventory_abs_max", "inventory_limit", "time_at_limit",
                   "exposure")),
    ("Quoting", ("quote_presence_bid", "quote_presence_ask")),
    ("Markouts (side x (mid after - fill price); positive = good)", None),
    ("Run", ("duration_s", "sample_ns", "periods_per_year")),
]


def _fmt(value, unit):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if unit == "share":
        return f"{value * 100:.2f} %"
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-4:
        return f"{value:.4e}"
    if value.is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    digits = max(0, 5 - int(math.floor(math.log10(abs(value)))))  # 6 significant digits
    text = f"{value:,.{min(digits, 8)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def summary(result, metrics=None):
    """The metrics as an aligned text table (sections, name, value, unit). `metrics`:
    a dict from compute() (default result.metrics)."""
    m = result.metrics if metrics is None else metrics
    info = {key: unit for key, unit, _ in metric_info(result)}
    markouts = [key for key in m if key.startswith("markout_")]
    inst = result.instrument
    ccy = "currency"
    rows = []
    for title, keys in _SECTIONS:
        keys = markouts if keys is None else [k for k in keys if k in m]
        if not keys:
            continue
        rows.append((title, None, None))
        for key in keys:
            unit = info.get(key, "")
            if unit == "share":
                shown = ""
            else:
                shown = unit.replace(ccy, "cur")
            rows.append((key, _fmt(m[key], unit), shown))
    width = max(len(r[0]) for r in rows if r[1] is not None)
    vwidth = max(len(r[1]) for r in rows if r[1] is not None)
    head = (f"{inst.symbol}: {result.events:,} events, tick {inst.tick_size}, lot {inst.lot_size} "
            f"(cur = quote currency; 1 lot x 1 tick = {inst.tick_size * inst.lot_size} cur)")
    lines = [head]
    for name, value, unit in rows:
        if value is None:
            lines.append("")
            lines.append(name)
        else:
            lines.append(f"  {name:<{width}}  {value:>{vwidth}}  {unit}".rstrip())
    breach = getattr(result, "breach", None)
    if breach is not None:
        lines += ["", "Kill switch (Backtest(risk=))",
                  f"  {breach.limit} breached at local time {breach.ts:,} ns: equity {_fmt(breach.equity, '')} cur "
                  f"(peak {_fmt(breach.peak, '')}), position {breach.position:,} lots"]
    return "\n".join(lines) + "\n"


def _columns(array):
    """(name, 1-d numpy array) per column: 4-wide markout fields split into name_0..name_3."""
    out = []
    for name in array.dtype.names:
        col = array[name]
        if col.ndim == 2:
            out.extend((f"{name}_{h}", np.ascontiguousarray(col[:, h])) for h in range(col.shape[1]))
        else:
            out.append((name, np.ascontiguousarray(col)))
    return out


def _table(array):
    import pyarrow as pa

    cols = _columns(array)
    return pa.table({name: pa.array(col) for name, col in cols})


def to_arrow(result):
    """{"fills", "orders", "position", "markouts"} -> pyarrow.Table (one column per field;
    markouts' after2 and markout split into after2_0..3 and markout_0..3)."""
    return {name: _table(getattr(result, name)) for name in TABLES}


def _from_table(table, dtype, where):
    n = table.num_rows
    out = np.empty(n, dtype=dtype)
    for name in dtype.names:
        shape = dtype.fields[name][0].shape
        names = [f"{name}_{h}" for h in range(shape[0])] if shape else [name]
        for h, col_name in enumerate(names):
            if col_name not in table.column_names:
                raise ValueError(f"{where}: column {col_name!r} is missing")
            col = table.column(col_name).to_numpy(zero_copy_only=False)
            if shape:
                out[name][:, h] = col
            else:
                out[name] = col
    return out


def _json_value(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # strict JSON: NaN / inf are written as null
    return v


def metadata(result):
    """The JSON document of metrics.json: format, instrument, run scalars, parameters, metrics."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "instrument": result.instrument.to_dict(),
        "result": {name: _json_value(getattr(result, name)) for name in _SCALARS},
        "markouts_ns": [int(v) for v in result.markouts_ns],
        "parameters": result.params,
        "breach": None if getattr(result, "breach", None) is None else
        {k: _json_value(v) for k, v in result.breach.to_dict().items()},
        "metrics": {k: _json_value(v) for k, v in result.metrics.items()},
    }
    meta["result"]["events"] = int(result.events)
    return meta


def umask_modes(path):
    """mkdtemp/mkstemp create 0700 folders and 0600 files: give `path` (a file, or a folder
    and everything in it) the modes a plain mkdir/open would (0777/0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    if not os.path.isdir(path):
        os.chmod(path, 0o666 & ~umask)
        return
    for root, _, files in os.walk(path):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def to_parquet(result, path, *, overwrite=False):
    """Write fills/orders/position/markouts .parquet and metrics.json into the directory
    `path`, through a temporary directory renamed into place (nothing half-written is
    left on failure). Returns the path."""
    import pyarrow.parquet as pq

    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty (pass overwrite=True to replace it)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory")
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        for name in TABLES:
            pq.write_table(_table(getattr(result, name)), os.path.join(tmp, f"{name}.parquet"),
                           compression="zstd")
        if (result.params or {}).get("risk") is not None:  # a run with RiskLimits: its refusals too
            pq.write_table(_table(result.risk_rejections), os.path.join(tmp, "risk_rejections.parquet"),
                           compression="zstd")
        with open(os.path.join(tmp, "metrics.json"), "w") as fh:
            json.dump(metadata(result), fh, indent=2, allow_nan=False)
            fh.write("\n")
        umask_modes(tmp)
        old = None
        if os.path.isdir(path) and os.listdir(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.rename(path, os.path.join(old, "d"))
        elif os.path.isdir(path):
            os.rmdir(path)
        os.rename(tmp, path)
        tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def from_parquet(path, cls=None):
    """The BacktestResult that to_parquet wrote into `path` (arrays bit-identical)."""
    import pyarrow.parquet as pq

    if cls is None:
        from lobsim.sim import BacktestResult as cls
    path = os.fspath(path)
    meta_path = os.path.join(path, "metrics.json")
    try:
        with open(meta_path) as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no metrics.json (not a directory written by to_parquet)") from None
    except ValueError as exc:
        raise ValueError(f"{meta_path}: not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a lobsim backtest result")
    if meta.get("version") != VERSION:
        raise ValueError(f"{meta_path}: version {meta.get('version')!r}, this lobsim reads {VERSION}")
    arrays = {}
    for name, dtype in TABLES.items():
        file = os.path.join(path, f"{name}.parquet")
        arrays[name] = _from_table(pq.read_table(file), dtype, file)
    scalars = dict(meta["result"])
    from lobsim.sim._risk import RISK_REJECTIONS_DTYPE, RiskBreach

    file = os.path.join(path, "risk_rejections.parquet")
    rejections = _from_table(pq.read_table(file), RISK_REJECTIONS_DTYPE, file) if os.path.exists(file) else \
        np.empty(0, RISK_REJECTIONS_DTYPE)
    breach = meta.get("breach")
    breach = None if not breach else RiskBreach(**breach)
    markouts_ns = tuple(int(v) for v in meta.get("markouts_ns", ()))[:N_HORIZONS]
    return cls(
        fills=arrays["fills"],
        orders=arrays["orders"],
        position=arrays["position"],
        clock_offset_ns=int(scalars["clock_offset_ns"]),
        instrument=Instrument.from_dict(meta["instrument"]),
        events=int(scalars["events"]),
        seed=int(scalars["seed"]),
        markouts=arrays["markouts"],
        markouts_ns=markouts_ns,
        sample_ns=int(scalars["sample_ns"]),
        data_start_ns=scalars["data_start_ns"],
        data_end_ns=scalars["data_end_ns"],
        inventory_limit=scalars["inventory_limit"],
        params=meta.get("parameters") or {},
        risk_rejections=rejections,
        breach=breach,
    )
