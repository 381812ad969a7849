"""lobsim.features: each feature on a hand-computed case, OFI against the formula of Cont, Kukanov
and Stoikov (2014), and the vectorized and incremental forms agreeing exactly on real streams."""
import glob
import math
from pathlib import Path

import numpy as np
import pytest

from lobsim import EVENT_DTYPE, EventKind, Flag, Strategy
from lobsim import features as F
from lobsim.book import Depth, depth_series

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
DATA = ROOT.parent / "shared" / "data"
AMZN = DATA / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
USDM = sorted(glob.glob(str(DATA / "binance" / "usdm" / "*")))
S = 1_000_000_000
nan = math.nan


class Rows:
    """A hand-written depth series: rows of (bid_px, bid_qty, ask_px, ask_qty) per level."""

    def __init__(self, rows):
        arr = np.array(rows, dtype=np.int64)  # (rows, 4, levels) or (rows, 4)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        self.bid_px, self.bid_qty, self.ask_px, self.ask_qty = (arr[:, k, :] for k in range(4))
        self.index = np.arange(len(rows))

    def depth(self, i):
        return Depth(self.bid_px[i], self.bid_qty[i], self.ask_px[i], self.ask_qty[i])


def incremental(feature, rows, ts=None):
    return np.array([feature.update(rows.depth(i), None if ts is None else ts[i]) for i in range(len(rows.index))])


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype.kind == b.dtype.kind and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


# ---------------------------------------------------------------------------
# Hand-computed cases

TOP = Rows([
    (100, 3, 102, 1),   # mid 101, I = 3/4: weighted 102*3/4 + 100/4 = 101.5, spread 2
    (100, 1, 101, 1),   # mid 100.5, I = 1/2: weighted 100.5, spread 1
    (0, 0, 101, 4),     # no bid: all NaN
    (100, 2, 0, 0),     # no ask: all NaN
    (0, 0, 0, 0),       # empty book
    (-5, 1, -2, 3),     # negative prices are prices (presence is qty > 0): mid -3.5, I = 1/4: -2*1/4 - 5*3/4 = -4.25
])


def test_mid_weighted_mid_spread_by_hand():
    assert same(F.mid(TOP), np.array([101.0, 100.5, nan, nan, nan, -3.5]))
    assert same(F.weighted_mid(TOP), np.array([101.5, 100.5, nan, nan, nan, -4.25]))
    assert same(F.spread(TOP), np.array([2.0, 1.0, nan, nan, nan, 3.0]))
    for vec, cls in ((F.mid, F.Mid), (F.weighted_mid, F.WeightedMid), (F.spread, F.Spread)):
        assert same(incremental(cls(), TOP), vec(TOP))
    assert math.isnan(F.Mid().value)  # before any update


def test_book_imbalance_by_hand():
    rows = Rows([
        # bid px, bid qty, ask px, ask qty at levels 1..3
        ([100, 99, 98], [3, 5, 2], [101, 102, 0], [1, 1, 0]),  # N=1: (3-1)/4; N=2: (8-2)/10; N=3: (10-2)/12
        ([100, 0, 0], [4, 0, 0], [101, 103, 104], [4, 6, 10]),  # N=1: 0; N=2: (4-10)/14; N=3: (4-20)/24
        ([0, 0, 0], [0, 0, 0], [101, 0, 0], [2, 0, 0]),         # no bid: NaN whatever N
    ])
    expect = {1: [0.5, 0.0, nan], 2: [0.6, -6 / 14, nan], 3: [8 / 12, -16 / 24, nan]}
    for n, want in expect.items():
        assert same(F.book_imbalance(rows, n), np.array(want))
        assert same(incremental(F.BookImbalance(n), rows), F.book_imbalance(rows, n))
    with pytest.raises(ValueError, match="4 needed"):
        F.book_imbalance(rows, 4)
    with pytest.raises(ValueError, match="4 needed"):
        F.BookImbalance(4).update(rows.depth(0))
    with pytest.raises(ValueError, match="positive integer"):
        F.BookImbalance(0)


# The sequence of best quotes of the OFI test, with e_n worked out from eq. (10) of
# Cont, Kukanov and Stoikov (2014):
#   e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1 - 1{Pa_n <= Pa_n-1} qa_n + 1{Pa_n >= Pa_n-1} qa_n-1
OFI_ROWS = Rows([
    (100, 10, 101, 8),  # e_0 = 0 (no predecessor)
    (100, 12, 101, 8),  # bid same price: +12 - 10; ask same: -8 + 8           -> +2
    (100, 12, 101, 5),  # ask same price: -5 + 8                               -> +3
    (101, 4, 102, 7),   # bid up: +4 (new queue); ask up: +5 (old queue gone)  -> +9
    (100, 6, 102, 7),   # bid down: -4 (old queue gone); ask same: -7 + 7      -> -4
    (100, 6, 101, 2),   # ask down: -2 (new queue)                             -> -2
    (0, 0, 101, 2),     # bid vanishes (price -inf): -6                        -> -6
    (99, 3, 101, 2),    # bid appears from -inf: +3                            -> +3
])
OFI_E = [0, 2, 3, 9, -4, -2, -6, 3]


def paper_e(prev, cur):
    """Eq. (10) of Cont, Kukanov and Stoikov (2014), literally; an absent bid is -inf, an absent ask +inf."""
    (pb0, qb0, pa0, qa0), (pb, qb, pa, qa) = prev, cur
    pb0, pb = (p if q > 0 else -math.inf for p, q in ((pb0, qb0), (pb, qb)))
    pa0, pa = (p if q > 0 else math.inf for p, q in ((pa0, qa0), (pa, qa)))
    return (pb >= pb0) * qb - (pb <= pb0) * qb0 - (pa <= pa0) * qa + (pa >= pa0) * qa0


def test_ofi_by_hand_against_the_paper():
    assert F.ofi_events(OFI_ROWS).tolist() == OFI_E
    tops = [tuple(int(a[i, 0]) for a in (OFI_ROWS.bid_px, OFI_ROWS.bid_qty, OFI_ROWS.ask_px, OFI_ROWS.ask_qty))
            for i in range(8)]
    assert [0] + [paper_e(tops[i - 1], tops[i]) for i in range(1, 8)] == OFI_E
    assert F.ofi(OFI_ROWS).tolist() == np.cumsum(OFI_E).tolist()  # cumulative: 0 2 5 14 10 8 2 5
    ts = np.arange(8) * S
    # a 3 s window at t: rows in (t - 3 s, t]; at row 4: rows 2..4 = 3 + 9 - 4; at row 7: rows 5..7 = -2 - 6 + 3
    w = F.ofi(OFI_ROWS, ts=ts, window_ns=3 * S)
    assert w.tolist() == [0, 2, 5, 14, 8, 3, -12, -5]
    assert same(incremental(F.OFI(3 * S), OFI_ROWS, ts), w)
    assert same(incremental(F.OFI(), OFI_ROWS), F.ofi(OFI_ROWS))
    o = F.OFI()
    for i in range(8):
        o.update(OFI_ROWS.depth(i))
        assert o.last_event == OFI_E[i]


def test_ofi_random_sequences_against_the_paper():
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = 40
        bid = 100 + rng.integers(-2, 3, n)
        ask = bid + rng.integers(1, 3, n)
        bq, aq = rng.integers(0, 4, n), rng.integers(0, 4, n)  # qty 0: that side absent
        rows = Rows([(int(b) if q else 0, int(q), int(a) if r else 0, int(r)) for b, q, a, r in zip(bid, bq, ask, aq)])
        tops = list(zip(rows.bid_px[:, 0], rows.bid_qty[:, 0], rows.ask_px[:, 0], rows.ask_qty[:, 0]))
        want = [0] + [int(paper_e(tops[i - 1], tops[i])) for i in range(1, n)]
        assert F.ofi_events(rows).tolist() == want
        assert same(incremental(F.OFI(), rows), F.ofi(rows))


def test_realized_vol_by_hand():
    rows = Rows([
        (100, 1, 102, 1),  # mid 101
        (101, 1, 103, 1),  # 102: change +1
        (101, 1, 102, 1),  # 101.5: change -0.5
        (0, 0, 102, 1),    # no mid: skipped
        (99, 1, 102, 1),   # 100.5: change -1 from 101.5 (the last row with a mid)
        (99, 1, 102, 1),   # no change
    ])
    ts = np.array([0, 1, 2, 3, 4, 5]) * S
    # whole-stream window: sqrt(1 + 0.25 + 1) = 1.5 ticks; 2 s window at row 4: rows 3, 4 -> sqrt(1) = 1;
    # at row 5: rows 4, 5 -> 1; at row 3: rows 2, 3 -> 0.5; at row 2: rows 1, 2 -> sqrt(1.25)
    assert same(F.realized_vol(rows, ts, 10 * S), np.array([0.0, 1.0, math.sqrt(1.25), math.sqrt(1.25), 1.5, 1.5]))
    w = F.realized_vol(rows, ts, 2 * S)
    assert same(w, np.array([0.0, 1.0, math.sqrt(1.25), 0.5, 1.0, 1.0]))
    assert same(incremental(F.RealizedVol(2 * S), rows, ts), w)


def trade_events():
    """Prints (and other events) by hand; ts in ms."""
    spec = [  # (ms, kind, side, qty)
        (100, EventKind.TRADE, 1, 5),
        (100, EventKind.EXECUTE, -1, 5),  # the book side of that print: not a print
        (500, EventKind.TRADE, -1, 2),
        (1000, EventKind.ADD, 1, 9),      # no print: an evaluation point
        (1200, EventKind.TRADE, 1, 1),
        (1200, EventKind.TRADE, 0, 7),    # aggressor unknown: counted, signed volume 0
        (1500, EventKind.TRADE, 1, 3),
        (2500, EventKind.TRADE, -1, 4),   # window (1.5 s, 2.5 s]: the print at exactly 1.5 s is out
    ]
    ev = np.zeros(len(spec), dtype=EVENT_DTYPE)
    for i, (ms, kind, side, qty) in enumerate(spec):
        ev[i]["ts_exch"] = ev[i]["ts_local"] = ms * 1_000_000
        ev[i]["kind"], ev[i]["side"], ev[i]["qty"], ev[i]["price"] = kind, side, qty, 100
        ev[i]["flags"] = Flag.BATCH_END
    return ev


def test_trade_intensity_and_signed_volume_by_hand():
    ev = trade_events()
    # at each print (indices 0, 2, 4, 5, 6, 7), window 1 s: prints in (t - 1 s, t] at or before it
    # (at 1.5 s the print at 0.5 s is out: the window is open on the left)
    assert F.trade_intensity(ev, S).tolist() == [1.0, 2.0, 2.0, 3.0, 3.0, 1.0]
    assert F.signed_volume(ev, S).tolist() == [5, 3, -1, -1, 4, -4]
    # at the ADD at 1.0 s: prints at 0.1 and 0.5 s. A 500 ms window: (0.5 s, 1.0 s] holds none;
    # at 2.5 s, (2.0 s, 2.5 s] holds 1 print = 2 prints per second
    assert F.trade_intensity(ev, S, index=[3]).tolist() == [2.0]
    assert F.signed_volume(ev, S, index=[3]).tolist() == [3]
    assert F.trade_intensity(ev, S // 2, index=[3, 7]).tolist() == [0.0, 2.0]
    # the incremental forms, fed the prints in order and asked at each print's time
    ti, sv = F.TradeIntensity(S), F.SignedVolume(S)
    got_i, got_v = [], []
    for r in ev:
        if r["kind"] == EventKind.TRADE:
            ti.on_trade(r["ts_exch"], r["side"], r["qty"])
            sv.on_trade(r["ts_exch"], r["side"], r["qty"])
            got_i.append(ti.value(r["ts_exch"]))
            got_v.append(sv.value(r["ts_exch"]))
    assert got_i == F.trade_intensity(ev, S).tolist() and got_v == F.signed_volume(ev, S).tolist()
    sv2 = F.SignedVolume(S)
    sv2.on_events(ev[:4])
    assert sv2.value(1000 * 1_000_000) == 3


def test_arguments_refused():
    with pytest.raises(ValueError, match="needs ts"):
        F.ofi(OFI_ROWS, window_ns=S)
    with pytest.raises(ValueError, match="non-decreasing"):
        F.ofi(OFI_ROWS, ts=np.arange(8)[::-1] * S, window_ns=S)
    with pytest.raises(ValueError, match="window_ns"):
        F.realized_vol(OFI_ROWS, np.arange(8), 0)
    with pytest.raises(ValueError, match="needs ts"):
        F.OFI(S).update(OFI_ROWS.depth(0))
    o = F.OFI(S)
    o.update(OFI_ROWS.depth(0), 5)
    with pytest.raises(ValueError, match="went back"):
        o.update(OFI_ROWS.depth(1), 4)
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        F.trade_intensity(np.zeros(3), S)


# ---------------------------------------------------------------------------
# Both forms agree exactly on real streams

WINDOW = 100_000_000  # 100 ms


def check_agreement(events, levels=5):
    ds = depth_series(events, levels, batch_end_only=True)
    ts = F.row_times(events, ds)
    n = len(ds.index)
    assert n > 1000
    book = {
        "mid": (F.mid(ds), F.Mid()),
        "weighted_mid": (F.weighted_mid(ds), F.WeightedMid()),
        "spread": (F.spread(ds), F.Spread()),
        "imbalance": (F.book_imbalance(ds, levels), F.BookImbalance(levels)),
        "ofi": (F.ofi(ds, ts, WINDOW), F.OFI(WINDOW)),
        "ofi_cum": (F.ofi(ds), F.OFI()),
        "rv": (F.realized_vol(ds, ts, WINDOW), F.RealizedVol(WINDOW)),
    }
    got = {k: [] for k in book}
    trades = np.flatnonzero(events["kind"] == EventKind.TRADE)
    assert len(trades) > 100
    ti, sv = F.TradeIntensity(WINDOW), F.SignedVolume(WINDOW)
    got_ti, got_sv = [], []
    fed = 0
    for i in range(n):
        depth = Depth(ds.bid_px[i], ds.bid_qty[i], ds.ask_px[i], ds.ask_qty[i])
        for k, (_, inc) in book.items():
            got[k].append(inc.update(depth, ts[i]))
        while fed < len(trades) and trades[fed] <= ds.index[i]:  # the prints up to this row's event
            r = events[trades[fed]]
            ti.on_trade(r["ts_exch"], r["side"], r["qty"])
            sv.on_trade(r["ts_exch"], r["side"], r["qty"])
            fed += 1
        got_ti.append(ti.value(ts[i]))
        got_sv.append(sv.value(ts[i]))
    for k, (vec, _) in book.items():
        assert same(np.array(got[k]), vec), k
    assert same(np.array(got_ti), F.trade_intensity(events, WINDOW, ds.index))
    assert same(np.array(got_sv), F.signed_volume(events, WINDOW, ds.index))
    # the features are not trivial on this stream
    assert np.isfinite(book["mid"][0]).mean() > 0.9
    assert np.count_nonzero(F.ofi_events(ds)) > n // 10
    assert F.realized_vol(ds, ts, WINDOW).max() > 0
    assert np.any(F.signed_volume(events, WINDOW, ds.index) > 0) and np.any(F.signed_volume(events, WINDOW) < 0)
    return ds


def test_forms_agree_on_the_sample():
    from lobsim.data import read_parquet

    check_agreement(read_parquet(SAMPLE).array)


def test_forms_agree_on_amzn():
    if not AMZN.exists():
        pytest.skip(f"LOBSTER sample not found at {AMZN}")
    from lobsim.data import read_lobster

    check_agreement(read_lobster(AMZN).array)


def test_forms_agree_on_binance_usdm():
    if not USDM:
        pytest.skip(f"Binance USD-M capture not found in {DATA / 'binance' / 'usdm'}")
    from lobsim.data import read_binance

    check_agreement(read_binance(USDM).array[:150_000])


class Recorder(Strategy):
    """Updates the incremental features from ctx.depth at every local top-of-book change,
    keeping a copy of each book top it saw."""

    subscribe_book = True

    def on_start(self, ctx):
        self.mid, self.ofi, self.imb = F.Mid(), F.OFI(WINDOW), F.BookImbalance(3)
        self.seen, self.tops, self.times = [], [], []

    def on_book(self, ctx):
        d = ctx.depth(3)
        self.tops.append([a.copy() for a in d])
        self.times.append(ctx.now)
        self.seen.append((self.mid.update(d), self.ofi.update(d, ctx.now), self.imb.update(d)))


def test_incremental_inside_a_backtest():
    from lobsim import Backtest
    from lobsim.data import read_parquet

    strat = Recorder()
    Backtest(read_parquet(SAMPLE).array[:20_000], strat).run()
    seen = np.array(strat.seen)
    assert len(seen) > 1000
    # the vectorized forms over the book tops the strategy saw give the same numbers
    tops = Depth(*(np.stack(a) for a in zip(*strat.tops)))
    assert same(seen[:, 0], F.mid(tops))
    ofi = F.ofi(tops, ts=np.array(strat.times), window_ns=WINDOW)
    assert same(seen[:, 1], ofi.astype(np.float64)) and np.all(np.abs(ofi) < 2**53)
    assert same(seen[:, 2], F.book_imbalance(tops, 3))
    assert np.isfinite(seen[:, 0]).mean() > 0.9
