"""A model-driven market maker: fit a small model on the first part of the data, trade it on the rest.

Run from the repository root::

    python examples/model_market_maker.py [data/sample.parquet]

What it does (numpy only; any Python model could take the least-squares fit's place):

1. Splits the event stream at a batch end near 60% of its rows. Everything
   learned (the model's coefficients, sigma and k of Avellaneda-Stoikov) comes
   from the first part only; everything reported as out of sample, and both
   backtests, use the rest only.
2. Features from `lobsim.features`, vectorized over the depth series (the book
   after every complete batch) on the strategy's clock (the local time at which
   each row becomes visible, the running maximum of ts_local): book imbalance
   over 5 levels, weighted mid - mid, and OFI over the trailing 5 ms. A feature
   at row t uses only rows up to t. Target: the change of the mid over the next
   `horizon_ns` of local time. Training rows are those of the first part whose
   target is known before the split (their horizon ends in the first part too).
3. Least squares (with an intercept) on the training rows; R^2 and hit rate
   (sign of prediction vs sign of the move, on rows where the mid moved) in and
   out of sample.
4. `ModelSkewedAS`, an `AvellanedaStoikov` that keeps the same features up to
   date incrementally (`lobsim.features.OFI` on every local book change,
   `BookImbalance`, `WeightedMid` and `Mid` at each timer tick, all fed with
   `ctx.depth(...)`) and quotes around mid + skew x prediction (the reservation
   price moved by the predicted mid change), through `quote_ticks`. It and the
   unskewed `AvellanedaStoikov` (same parameters) run on the second part only,
   replayed from a snapshot of the book at the split, 1 ms latency each way.
"""
import math
import sys
from pathlib import Path

import numpy as np

from lobsim import Backtest, EventKind, Fees, Flag
from lobsim import features as F
from lobsim.book import depth_series
from lobsim.calibrate import calibrate
from lobsim.data import read_parquet
from lobsim.latency import Constant
from lobsim.strategies import AvellanedaStoikov

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample.parquet"

TRAIN_FRACTION = 0.6       # of the events: the first part (training and calibration)
HORIZON_NS = 10_000_000    # the target: mid change over the next 10 ms of local time
OFI_WINDOW_NS = 5_000_000  # OFI over the trailing 5 ms
LEVELS = 5                 # book imbalance over the top 5 levels
FEATURES = ("imbalance_5", "wmid_minus_mid", "ofi_5ms")

# strategy and run
GAMMA = 0.1                # per tick per lot
TAU = 0.1                  # s: the rolling horizon T - t
INTERVAL_NS = 5_000_000    # re-quote every 5 ms of local time
MAX_INVENTORY = 5          # lots
SKEW = 1.0                 # reservation price moved by SKEW x the predicted mid change (ticks)
LATENCY_NS = 1_000_000     # 1 ms each way
FEES = Fees(maker=-0.0001, taker=0.0004)
MARKOUTS_NS = (1_000_000, 10_000_000, 100_000_000)


# -- the split -------------------------------------------------------------------------------------------
def split_index(events, fraction=TRAIN_FRACTION):
    """Index of the first event of the second part: just after the first BATCH_END at or after
    fraction x len(events) (the book is consistent only at a batch end)."""
    start = int(len(events) * fraction)
    ends = np.flatnonzero(events["flags"][start:] & Flag.BATCH_END)
    if len(ends) == 0:
        raise ValueError("no batch end after the split point")
    return start + int(ends[0]) + 1


def book_snapshot(events, at):
    """The L3 book after events[:at], as ADD events flagged SNAPSHOT (the last one also BATCH_END),
    each price level in its time priority, stamped with the times of events[at].

    Replays ADD / REDUCE / DELETE / EXECUTE / MODIFY / CLEAR with the book's rules (a MODIFY to a
    new price or a larger quantity loses priority, a smaller one keeps it), so that a replay of
    snapshot + events[at:] starts from the book the first part left."""
    orders = {}  # order_id -> [side, price, qty, priority]
    seq = 0
    head = events[:at]
    for oid, side, price, qty, kind in zip(head["order_id"].tolist(), head["side"].tolist(),
                                           head["price"].tolist(), head["qty"].tolist(), head["kind"].tolist()):
        if kind == EventKind.ADD:
            orders[oid] = [side, price, qty, seq]
            seq += 1
        elif kind in (EventKind.REDUCE, EventKind.EXECUTE):
            o = orders[oid]
            o[2] -= qty
            if o[2] <= 0:
                del orders[oid]
        elif kind == EventKind.DELETE:
            del orders[oid]
        elif kind == EventKind.MODIFY:
            o = orders[oid]
            if price != o[1] or qty > o[2]:
                o[3] = seq
                seq += 1
            o[1], o[2] = price, qty
        elif kind == EventKind.CLEAR:
            orders.clear()
        elif kind == EventKind.SET_LEVEL:
            raise ValueError("book_snapshot handles L3 data only")
    snap = np.zeros(len(orders), dtype=events.dtype)
    ranked = sorted(orders.items(), key=lambda item: item[1][3])
    snap["order_id"] = [oid for oid, _ in ranked]
    snap["side"] = [o[0] for _, o in ranked]
    snap["price"] = [o[1] for _, o in ranked]
    snap["qty"] = [o[2] for _, o in ranked]
    snap["kind"] = EventKind.ADD
    snap["flags"] = Flag.SNAPSHOT
    snap["flags"][-1] |= Flag.BATCH_END
    snap["ts_exch"] = events["ts_exch"][at]
    snap["ts_local"] = events["ts_local"][at]
    return snap


# -- features, target, model -----------------------------------------------------------------------------
def feature_table(events):
    """The depth series of `events` (the book after every complete batch, LEVELS deep) and, at each
    row: local visibility time, mid and the FEATURES matrix (vectorized, no look-ahead)."""
    ds = depth_series(events, LEVELS, batch_end_only=True)
    t_local = np.maximum.accumulate(events["ts_local"])[ds.index]  # when the strategy sees each row
    mid = F.mid(ds)
    X = np.column_stack([
        F.book_imbalance(ds, levels=LEVELS),
        F.weighted_mid(ds) - mid,
        F.ofi(ds, t_local, window_ns=OFI_WINDOW_NS) / 100.0,  # hundreds of lots
    ])
    return ds, t_local, mid, X


def forward_change(t, mid, horizon_ns=HORIZON_NS):
    """mid at t + horizon (the row standing then) - mid at t; NaN where unknown."""
    j = np.searchsorted(t, t + horizon_ns, side="right") - 1
    y = mid[j] - mid
    y[t + horizon_ns > t[-1]] = np.nan  # past the end of the data: unknown
    return y


def fit(X, y):
    """Least squares with an intercept: coefficients [intercept, *features]."""
    A = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return coef


def predict(coef, X):
    return coef[0] + np.asarray(X) @ coef[1:]


def scores(coef, X, y):
    """R^2 and hit rate (sign of the prediction = sign of the move, over rows where the mid moved)."""
    p = predict(coef, X)
    r2 = 1.0 - float(np.sum((y - p) ** 2)) / float(np.sum((y - y.mean()) ** 2))
    moved = y != 0
    hit = float(np.mean(np.sign(p[moved]) == np.sign(y[moved])))
    return r2, hit, int(moved.sum())


# -- the strategy ----------------------------------------------------------------------------------------
class ModelSkewedAS(AvellanedaStoikov):
    """Avellaneda-Stoikov quoting around mid + skew x the model's predicted mid change.

    The features are those of `feature_table`, kept incrementally: OFI updated at every change of
    the local top of book (subscribe_book), the others read from ctx.depth at each timer tick.
    `decisions` records, at every tick where it quoted, (now, prediction, the unskewed quotes, the
    quotes sent): the unskewed ones are what AvellanedaStoikov.quote_ticks gives at the same state.
    """

    subscribe_book = True

    def __init__(self, coef, skew=SKEW, **kw):
        super().__init__(**kw)
        if self.sigma is None:
            raise ValueError("ModelSkewedAS needs a given sigma")
        self.coef = np.asarray(coef, dtype=float)
        self.skew = float(skew)

    def on_start(self, ctx):
        super().on_start(ctx)
        self.ofi = F.OFI(window_ns=OFI_WINDOW_NS)
        self.imbalance = F.BookImbalance(LEVELS)
        self.wmid = F.WeightedMid()
        self.mid = F.Mid()
        self.decisions = []

    def on_book(self, ctx):
        self.ofi.update(ctx.depth(1), ctx.now)

    def features(self, ctx):
        """The feature vector at ctx.now (the same definitions as feature_table's columns)."""
        depth = ctx.depth(LEVELS)
        mid = self.mid.update(depth)
        ofi = self.ofi.update(depth, ctx.now)  # the top is unchanged since on_book: adds 0, moves the window
        return mid, (self.imbalance.update(depth), self.wmid.update(depth) - mid, ofi / 100.0)

    def on_timer(self, ctx):
        bb, ba = ctx.best_bid(), ctx.best_ask()
        mid, x = self.features(ctx)
        if bb is None or ba is None or bb[0] >= ba[0] or not all(map(math.isfinite, x)):
            self._work(ctx, (None, None))  # no two-sided book: pull both quotes, as AvellanedaStoikov does
            return
        pred = float(predict(self.coef, x))
        args = (ctx.position, bb[0], ba[0], self.sigma, self._tau(ctx.now))
        plain = self.quote_ticks(mid, *args)
        skewed = self.quote_ticks(mid + self.skew * pred, *args)
        self.decisions.append((ctx.now, pred, *plain, *skewed))
        self._work(ctx, skewed)


# -- the whole example -----------------------------------------------------------------------------------
def run(path=SAMPLE):
    """Everything, returned as a dict (the tests read it); `main` prints it."""
    ev = read_parquet(path)
    a = ev.array
    n = split_index(a)
    ds, t, mid, X = feature_table(a)  # a row's features use rows up to it only
    y = forward_change(t, mid)
    split_t = t[np.searchsorted(ds.index, n)]  # local time of the first row of the second part
    first = ds.index < n
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    train = np.flatnonzero(first & ok & (t + HORIZON_NS < split_t))  # target known before the split
    test = np.flatnonzero(~first & ok)
    coef = fit(X[train], y[train])
    in_sample = scores(coef, X[train], y[train])
    out_sample = scores(coef, X[test], y[test])

    cal = calibrate(a[:n], interval_ns=INTERVAL_NS)  # sigma, k from the first part only
    params = dict(gamma=GAMMA, tau=TAU, max_inventory=MAX_INVENTORY, interval_ns=INTERVAL_NS,
                  **cal.params(A=False))
    rest = np.concatenate([book_snapshot(a, n), a[n:]])
    runs = {}
    for name, strategy in (("AS unskewed", AvellanedaStoikov(**params)),
                           ("AS + model skew", ModelSkewedAS(coef, **params))):
        runs[name] = (strategy, Backtest(rest, strategy, instrument=ev.instrument, latency=Constant(LATENCY_NS),
                                         fees=FEES, seed=1, sample_ns=10_000_000, markouts_ns=MARKOUTS_NS).run())
    try:  # shown relative to the working directory when under it
        shown = str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    return dict(path=shown, events=len(a), split=n, span_s=(int(a["ts_exch"][-1]) - int(a["ts_exch"][0])) / 1e9,
                first_s=(int(a["ts_exch"][n - 1]) - int(a["ts_exch"][0])) / 1e9, row_events=ds.index,
                train_rows=train, test_rows=test, coef=coef, in_sample=in_sample, out_sample=out_sample,
                std_train=float(y[train].std()), std_test=float(y[test].std()), calibration=cal, params=params,
                runs=runs, decisions=np.array(runs["AS + model skew"][0].decisions, dtype=float).reshape(-1, 6))


TABLE = (("PnL (cur)", "pnl", ".4f"), ("PnL before fees (cur)", None, ".4f"),
         ("realized PnL (cur)", "realized_pnl", ".4f"), ("fees (cur; negative = rebates)", "fees", ".4f"),
         ("fills", "fills", "d"), ("orders", "orders", "d"), ("fill ratio", "fill_ratio", ".3f"),
         ("spread captured (ticks)", "spread_captured", ".3f"), ("markout 1 ms (ticks, +- 95%)", 0, ".3f"),
         ("markout 10 ms (ticks, +- 95%)", 1, ".3f"), ("markout 100 ms (ticks, +- 95%)", 2, ".3f"),
         ("inventory std (lots)", "inventory_std", ".2f"), ("max drawdown (cur)", "max_drawdown", ".4f"))


def cell(result, key, fmt):
    """One table cell: a metric, the PnL before fees (key None), or markout h (key int) with the
    half-width of its 95% interval (1.96 standard errors of the mean over the fills)."""
    m = result.metrics
    if key is None:
        return format(m["pnl"] + m["fees"], fmt)
    if isinstance(key, int):
        x = result.markouts["markout"][:, key]
        x = x[np.isfinite(x)]
        half = 1.96 * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
        return f"{format(x.mean() if len(x) else float('nan'), fmt)} +- {half:.3f}"
    return format(m[key], fmt)


def report(r):
    """The printed report (a list of lines)."""
    n, runs = r["split"], r["runs"]
    d = r["decisions"]
    moved = (d[:, 2] != d[:, 4]) | (d[:, 3] != d[:, 5])  # NaN (a side left out) != NaN: counts as differing
    both_none = np.isnan(d[:, 2]) & np.isnan(d[:, 4]) & np.isnan(d[:, 3]) & np.isnan(d[:, 5])
    differ = int(np.sum(moved & ~both_none))
    cal = r["calibration"]
    names = list(runs)
    lines = [
        f"data: {r['path']} ({r['events']:,} events, {r['span_s']:.3f} s)",
        f"split at event {n:,} (a batch end): first part {n:,} events / {r['first_s']:.3f} s for training and "
        f"calibration, the rest {r['events'] - n:,} events for evaluation only (no look-ahead)",
        f"features ({', '.join(FEATURES)}) at each depth-series row from rows up to it; target: mid change over "
        f"the next {HORIZON_NS // 1_000_000} ms of local time (ticks)",
        f"rows: {len(r['train_rows']):,} training (first part, target known before the split), "
        f"{len(r['test_rows']):,} out of sample (the rest); disjoint",
        "model: y = " + " + ".join([f"{r['coef'][0]:+.4f}"] + [f"{c:+.4f} {f}" for c, f in
                                                                zip(r["coef"][1:], FEATURES)]),
        "",
        "| fit | R^2 | hit rate (sign, rows where the mid moved) | rows moved | std of target (ticks) |",
        "|---|---:|---:|---:|---:|",
        f"| in sample (first part) | {r['in_sample'][0]:.4f} | {r['in_sample'][1]:.3f} | {r['in_sample'][2]:,} "
        f"| {r['std_train']:.3f} |",
        f"| out of sample (the rest) | {r['out_sample'][0]:.4f} | {r['out_sample'][1]:.3f} | {r['out_sample'][2]:,} "
        f"| {r['std_test']:.3f} |",
        "",
        f"calibrated on the first part: sigma {cal.sigma:.3f} ticks/sqrt(s), k {cal.k:.3f} per tick; "
        f"gamma {GAMMA}, tau {TAU} s, re-quote every {INTERVAL_NS // 1_000_000} ms, max inventory {MAX_INVENTORY}, "
        f"skew {SKEW} x prediction; latency {LATENCY_NS // 1_000_000} ms each way, fees maker {FEES.maker} / "
        f"taker {FEES.taker}",
        f"backtests on the rest only ({r['events'] - n:,} events, from a snapshot of the book at the split): "
        f"the skewed quotes differ from the unskewed ones at {differ:,} of {len(d):,} quoting ticks",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, key, fmt in TABLE:
        lines.append(f"| {label} | " + " | ".join(cell(runs[k][1], key, fmt) for k in names) + " |")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    r = run(argv[0] if argv else SAMPLE)
    print("\n".join(report(r)))
    return r


if __name__ == "__main__":
    main()
