"""Reports of a BacktestResult: summary(), to_arrow(), to_parquet()/from_parquet() and plot()."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lobsim import Backtest, BacktestResult, Fees, Strategy, TimeInForce
from lobsim.latency import Constant
from lobsim.metrics import MARKOUTS_DTYPE, metric_info

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
ARRAYS = ("fills", "orders", "position", "markouts")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Quoter(Strategy):
    interval_ns = 100_000_000
    max_inventory = 5

    def __init__(self, size=1):
        self.size = size

    def on_timer(self, ctx):
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid, ask = ctx.best_bid(), ctx.best_ask()
        if bid and ctx.position < self.max_inventory:
            ctx.buy(bid[0], self.size, tif=TimeInForce.POST_ONLY)
        if ask and ctx.position > -self.max_inventory:
            ctx.sell(ask[0], self.size, tif=TimeInForce.POST_ONLY)


class Idle(Strategy):
    pass


@pytest.fixture(scope="module")
def run():
    return Backtest(SAMPLE, Quoter(), latency=Constant(1_000_000), fees=Fees(maker=-0.0001, taker=0.0004), seed=7,
                    sample_ns=10_000_000, markouts_ns=(1_000_000, 10_000_000, 100_000_000, 1_000_000_000)).run()


@pytest.fixture(scope="module")
def idle():
    return Backtest(SAMPLE, Idle(), sample_ns=100_000_000).run()


def test_summary_is_an_aligned_table_of_every_metric_with_units(run):
    text = run.summary()
    lines = text.splitlines()
    assert lines[0].startswith("SYN: 200,000 events, tick 0.01, lot 1")
    rows = {ln.split()[0]: ln for ln in lines if ln.startswith("  ")}
    for key, unit, _ in metric_info(run):
        assert key in rows, key
        if unit in ("ticks", "lots", "ns", "s"):
            assert rows[key].endswith(f"  {unit}"), rows[key]
        if unit == "currency":
            assert rows[key].endswith("  cur"), rows[key]
        if unit == "share":
            assert rows[key].endswith(" %"), rows[key]
    # values right-aligned in one column: each ends where the others do (then two spaces and the unit)
    units = {key: unit for key, unit, _ in metric_info(run)}
    value_ends = set()
    for key, ln in rows.items():
        shown = {"currency": "cur", "currency/yr": "cur/yr", "share": ""}.get(units[key], units[key])
        value_ends.add(len(ln) - (len(shown) + 2 if shown else 0))
    assert len(value_ends) == 1, value_ends
    assert rows["fills"].split()[1] == f"{len(run.fills):,}"
    assert rows["pnl"].split()[1] == "0.910655"  # the README's quoter: PnL 0.9107


def test_summary_says_na_for_undefined(idle):
    rows = {ln.split()[0]: ln for ln in idle.summary().splitlines() if ln.startswith("  ")}
    assert rows["sharpe"].split()[1] == "n/a" and rows["fill_ratio"].split()[1] == "n/a"
    assert rows["fills"].split()[1] == "0" and rows["quote_presence_bid"].split()[1:] == ["0.00", "%"]


def test_to_arrow_tables(run):
    tables = run.to_arrow()
    assert set(tables) == set(ARRAYS)
    for name in ARRAYS:
        assert tables[name].num_rows == len(getattr(run, name))
    assert tables["fills"].column_names == list(run.fills.dtype.names)
    assert tables["markouts"].column_names == ["ts", "mid2", "after2_0", "after2_1", "after2_2", "after2_3",
                                               "spread", "markout_0", "markout_1", "markout_2", "markout_3"]
    assert tables["fills"].column("price").to_pylist() == run.fills["price"].tolist()
    assert tables["markouts"].column("markout_3").to_numpy().tolist() == pytest.approx(
        run.markouts["markout"][:, 3].tolist(), nan_ok=True)


def test_to_arrow_tables_convert_to_pandas(run):
    pytest.importorskip("pandas", reason="pandas is optional (not a dependency of lobsim)")
    df = run.to_arrow()["fills"].to_pandas()
    assert df["price"].tolist() == run.fills["price"].tolist() and df["maker"].dtype == bool


def test_parquet_round_trip_is_bit_identical(run, tmp_path):
    out = tmp_path / "report"
    assert run.to_parquet(out) == str(out)
    assert sorted(os.listdir(out)) == ["fills.parquet", "markouts.parquet", "metrics.json", "orders.parquet",
                                       "position.parquet"]
    back = BacktestResult.from_parquet(out)
    for name in ARRAYS:
        a, b = getattr(run, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    for name in ("clock_offset_ns", "instrument", "events", "seed", "markouts_ns", "sample_ns", "data_start_ns",
                 "data_end_ns", "inventory_limit", "params"):
        assert getattr(back, name) == getattr(run, name), name
    same = [k for k in run.metrics if run.metrics[k] == back.metrics[k]
            or (math.isnan(run.metrics[k]) and math.isnan(back.metrics[k]))]
    assert same == list(run.metrics)
    assert not [p for p in os.listdir(tmp_path) if p != "report"]  # no temporary left beside it


def test_metrics_json_is_strict_json_with_instrument_and_parameters(run, idle, tmp_path):
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

    meta = strict((Path(run.to_parquet(tmp_path / "a")) / "metrics.json").read_text())
    assert meta["format"] == "lobsim-backtest" and meta["version"] == 1
    assert meta["instrument"] == {"symbol": "SYN", "tick_size": "0.01", "lot_size": "1"}
    assert meta["parameters"]["strategy"] == "Quoter"
    assert meta["parameters"]["strategy_params"] == {"interval_ns": 100_000_000, "subscribe_book": False,
                                                     "max_inventory": 5, "size": 1}
    assert meta["parameters"]["fees"] == {"maker": -0.0001, "taker": 0.0004}
    assert meta["parameters"]["latency"] == "Constant(entry_ns=1000000, response_ns=1000000)"
    assert meta["parameters"]["markouts_ns"] == [1_000_000, 10_000_000, 100_000_000, 1_000_000_000]
    assert meta["result"]["seed"] == 7 and meta["result"]["events"] == 200_000
    assert meta["metrics"]["fills"] == len(run.fills) and meta["metrics"]["pnl"] == run.metrics["pnl"]
    idle_meta = strict((Path(idle.to_parquet(tmp_path / "b")) / "metrics.json").read_text())
    assert idle_meta["metrics"]["sharpe"] is None  # NaN is written as null


def test_to_parquet_refuses_a_non_empty_directory_and_replaces_with_overwrite(run, idle, tmp_path):
    out = tmp_path / "r"
    out.mkdir()  # an empty directory is fine
    run.to_parquet(out)
    with pytest.raises(FileExistsError, match="not empty"):
        idle.to_parquet(out)
    idle.to_parquet(out, overwrite=True)
    assert len(BacktestResult.from_parquet(out).fills) == 0
    assert sorted(os.listdir(tmp_path)) == ["r"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        run.to_parquet(tmp_path / "file")


def test_to_parquet_failure_leaves_nothing(run, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    real = pq.write_table
    calls = []

    def failing(table, where, **kw):
        calls.append(where)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        run.to_parquet(tmp_path / "out")
    assert os.listdir(tmp_path) == []
    # an existing report survives a failed overwrite
    monkeypatch.setattr(pq, "write_table", real)
    run.to_parquet(tmp_path / "out")
    calls.clear()
    monkeypatch.setattr(pq, "write_table", failing)
    with pytest.raises(OSError):
        run.to_parquet(tmp_path / "out", overwrite=True)
    assert os.listdir(tmp_path) == ["out"] and len(BacktestResult.from_parquet(tmp_path / "out").fills) == len(
        run.fills)


def test_from_parquet_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        BacktestResult.from_parquet(tmp_path)
    (tmp_path / "metrics.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a lobsim backtest result"):
        BacktestResult.from_parquet(tmp_path)
    (tmp_path / "metrics.json").write_text('{"format": "lobsim-backtest", "version": 99}')
    with pytest.raises(ValueError, match="version 99"):
        BacktestResult.from_parquet(tmp_path)


def _png_colors(path):
    from PIL import Image

    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.load()
        assert im.format == "PNG"
        colors = im.convert("RGB").getcolors(maxcolors=1 << 24)
        return im.size, len(colors)


def test_plot_writes_one_non_blank_png(run, tmp_path):
    path = tmp_path / "report.png"
    assert run.plot(path) == str(path)
    size, colors = _png_colors(path)
    assert size == (1200, 1300) and colors > 50
    assert os.listdir(tmp_path) == ["report.png"]  # no temporary left


def test_plot_without_fills_and_with_other_sizes(idle, tmp_path):
    path = tmp_path / "idle.png"
    idle.plot(path, dpi=50)
    size, colors = _png_colors(path)
    assert size == (600, 650) and colors > 10


def test_plot_of_a_round_tripped_result(run, tmp_path):
    back = BacktestResult.from_parquet(run.to_parquet(tmp_path / "r"))
    back.plot(tmp_path / "r" / "report.png")
    assert _png_colors(tmp_path / "r" / "report.png")[1] > 50


def test_backtest_and_metrics_load_neither_pyarrow_nor_matplotlib():
    code = (
        "import sys, lobsim\n"
        "from lobsim import Backtest, Strategy\n"
        "from lobsim.data import synthetic\n"
        "import lobsim.metrics\n"
        "r = Backtest(synthetic.generate(20_000, seed=1), Strategy(), sample_ns=1_000_000).run()\n"
        "m = r.metrics; r.summary()\n"
        "assert m['fills'] == 0 and m['duration_s'] > 0, m\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'pyarrow')]\n"
        "assert not bad, bad[:5]\n"
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout == "ok\n", p.stderr


def test_markouts_dtype_of_results(run, idle):
    assert run.markouts.dtype == MARKOUTS_DTYPE and idle.markouts.dtype == MARKOUTS_DTYPE
    assert len(idle.markouts) == 0
    assert np.isnan(run.markouts["markout"][:, 3]).any()  # 1 s after fills late in 3.7 s of data: unknown


def test_readme_metrics_example_prints_what_it_says(capsys, monkeypatch, tmp_path):
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    backtesting = text[text.index("## Backtesting (the simulated venue)"):]
    first = re.search(r"```python\n(.*?)```", backtesting, re.S).group(1)  # defines Quoter
    section = text[text.index("### Metrics and reports"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    expected = re.findall(r"^# (PnL .*|spread captured .*)$", code, re.M)
    assert len(expected) == 2
    monkeypatch.chdir(tmp_path)  # the report is written here
    ns = {}
    for c in (first, code):
        exec(compile(c.replace('"data/sample.parquet"', repr(str(SAMPLE))), "README.md", "exec"), ns)
    assert capsys.readouterr().out.strip().splitlines()[-2:] == expected
    assert _png_colors(tmp_path / "sample-report" / "report.png")[1] > 50
    back = BacktestResult.from_parquet(tmp_path / "sample-report")
    assert back.metrics["time_at_limit"] == 0.0 and back.inventory_limit == 5
