"""The worked examples of examples/ run on the bundled sample; structure is checked, not PnL values."""
import contextlib
import importlib.util
import io
import math
from pathlib import Path

import numpy as np
import pytest

from lobsim import Backtest
from lobsim.book import depth_series
from lobsim.data import read_parquet
from lobsim.latency import Constant

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample.parquet"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"examples_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mmm():
    return _load("model_market_maker")


@pytest.fixture(scope="module")
def ran(mmm):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        r = mmm.main([str(SAMPLE)])
    return r, out.getvalue()


def _number(text):
    return float(text.split("+-")[0].strip().replace(",", ""))


def test_prints_the_fit_and_the_comparison_table(mmm, ran):
    r, text = ran
    assert "no look-ahead" in text
    assert "| in sample (first part) |" in text and "| out of sample (the rest) |" in text
    assert "| | AS unskewed | AS + model skew |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| |")]
    labels = [label for label, _, _ in mmm.TABLE]
    table = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ")[1:] for line in rows}
    for label in labels:
        assert label in table, label
        assert len(table[label]) == 2
        for value in table[label]:
            assert math.isfinite(_number(value)), (label, value)
    for fit in ("in sample (first part)", "out of sample (the rest)"):
        r2, hit, moved, std = (_number(v) for v in table[fit])
        assert -1 < r2 <= 1 and 0 <= hit <= 1 and moved > 1000 and std > 0


def test_training_and_evaluation_are_disjoint_in_time(mmm, ran):
    r, _ = ran
    n, events = r["split"], r["row_events"]
    train, test = r["train_rows"], r["test_rows"]
    assert len(train) > 10_000 and len(test) > 10_000
    assert not np.intersect1d(train, test).size
    assert events[train].max() < n <= events[test].min()  # training rows: first part; evaluated: the rest
    for scores in (r["in_sample"], r["out_sample"]):
        assert all(math.isfinite(x) for x in scores)
    # the backtests saw only the rest: no fill before the split's venue time
    a = read_parquet(SAMPLE).array
    for _, result in r["runs"].values():
        assert result.data_start_ns == a["ts_exch"][n]
        assert len(result.fills) > 0 and result.fills["ts_exch"].min() >= a["ts_exch"][n]


def test_the_skewed_strategy_used_its_predictions(ran):
    r, _ = ran
    d = r["decisions"]  # now, prediction, unskewed bid / ask, skewed bid / ask
    assert len(d) > 100
    assert np.all(np.isfinite(d[:, 1])) and np.any(d[:, 1] != 0)
    both = np.isfinite(d[:, 2:]).all(axis=1)
    differ = (d[both, 2] != d[both, 4]) | (d[both, 3] != d[both, 5])
    assert differ.sum() > 10
    skewed, plain = (r["runs"][k][1] for k in ("AS + model skew", "AS unskewed"))
    assert not np.array_equal(skewed.orders["price"], plain.orders["price"][:len(skewed.orders)])


def test_snapshot_reproduces_the_book_at_the_split(mmm):
    a = read_parquet(SAMPLE).array
    n = mmm.split_index(a)
    full = depth_series(a, 10, batch_end_only=True)
    part = depth_series(np.concatenate([mmm.book_snapshot(a, n), a[n:]]), 10, batch_end_only=True)
    k = np.searchsorted(full.index, n)
    for f in ("bid_px", "bid_qty", "ask_px", "ask_qty"):
        assert np.array_equal(getattr(full, f)[k - 1:], getattr(part, f)), f


def test_zero_skew_is_the_unskewed_strategy(mmm, ran):
    """The comparison is fair: with skew 0 the model strategy sends exactly the unskewed orders."""
    r, _ = ran
    ev = read_parquet(SAMPLE)
    a, n = ev.array, r["split"]
    rest = np.concatenate([mmm.book_snapshot(a, n), a[n:]])
    res = Backtest(rest, mmm.ModelSkewedAS(r["coef"], skew=0.0, **r["params"]), instrument=ev.instrument,
                   latency=Constant(mmm.LATENCY_NS), fees=mmm.FEES, seed=1, sample_ns=10_000_000,
                   markouts_ns=mmm.MARKOUTS_NS).run()
    plain = r["runs"]["AS unskewed"][1]
    assert np.array_equal(res.orders, plain.orders) and np.array_equal(res.fills, plain.fills)
