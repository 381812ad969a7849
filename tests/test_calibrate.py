"""lobsim.calibrate: sigma of a known random walk, A and k of trades generated with a known
intensity, hand cases for the depth of each print, errors, and the AMZN LOBSTER day."""
import math
from pathlib import Path

import numpy as np
import pytest

from lobsim import EventKind, Flag, empty_events
from lobsim.calibrate import (
    Calibration,
    IntensityFit,
    SigmaFit,
    calibrate,
    intensity,
    sigma,
    top_of_book,
    trade_depths,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
AMZN = ROOT.parent / "shared" / "data" / "lobster" / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
S = 1_000_000_000
T0 = 1_700_000_000 * S


def _events(rows):
    """rows: (ts, kind, side, price, qty, batch_end) -> an L2 EVENT_DTYPE array."""
    ev = empty_events(len(rows))
    for i, (ts, kind, side, price, qty, end) in enumerate(rows):
        ev[i]["ts_exch"] = ev[i]["ts_local"] = ts
        ev[i]["kind"], ev[i]["side"], ev[i]["price"], ev[i]["qty"] = kind, side, price, qty
        ev[i]["flags"] = Flag.BATCH_END if end else 0
    return ev


def _book(ts, bid, ask):
    return [(ts, EventKind.SET_LEVEL, 1, bid, 10, False), (ts, EventKind.SET_LEVEL, -1, ask, 10, True)]


def _trades_with_known_intensity(A, k, span_s, seed):
    """A fixed book (bid 1000, ask 1001: mid 1000.5) and trade prints arriving as a Poisson process
    whose depth from the mid is delta = 0.5 + J, P(J >= j) = exp(-k j) (J = floor of an exponential
    of rate k). Then lambda(0.5 + j) = R exp(-k j) for the print rate R, i.e. A exp(-k delta) with
    R = A exp(-k / 2)."""
    rng = np.random.default_rng(seed)
    rate = A * math.exp(-k * 0.5)
    n = rng.poisson(rate * span_s)
    ts = np.sort(rng.integers(1, span_s * S, n)) + T0
    j = np.floor(rng.exponential(1 / k, n)).astype(np.int64)
    side = rng.choice([1, -1], n)
    ev = empty_events(n + 3)
    ev[:2] = _events(_book(T0, 1000, 1001))
    ev["ts_exch"][2:-1] = ts
    ev["kind"][2:-1] = EventKind.TRADE
    ev["side"][2:-1] = side
    ev["price"][2:-1] = np.where(side == 1, 1001 + j, 1000 - j)
    ev["qty"][2:-1] = 1
    ev["flags"][2:-1] = Flag.BATCH_END
    ev[-1] = _events([(T0 + span_s * S, EventKind.SET_LEVEL, 1, 1000, 10, True)])[0]  # the span ends here
    ev["ts_local"] = ev["ts_exch"]
    return ev, n


@pytest.mark.parametrize("A, k, seed", [(50.0, 0.8, 1), (5.0, 0.3, 2), (200.0, 2.0, 3)])
def test_intensity_recovers_a_known_A_and_k(A, k, seed):
    ev, n = _trades_with_known_intensity(A, k, 2000, seed)
    fit = intensity(ev, min_count=50)
    assert isinstance(fit, IntensityFit)
    assert fit.trades == n
    assert fit.span_s == 2000
    # levels are the depths reached: 0.5, 1.5, 2.5, ... while at least 50 prints reach them
    assert np.allclose(fit.levels, 0.5 + np.arange(fit.n))
    # tolerance: the deepest levels hold ~50 prints (+-14%) and pull the fit; a few % on k, ~10% on A
    assert fit.k == pytest.approx(k, rel=0.05)
    assert fit.A == pytest.approx(A, rel=0.10)
    assert fit.r2 > 0.99
    assert fit.rate(0.5) == pytest.approx(A * math.exp(-k * 0.5), rel=0.10)


def test_intensity_levels_counts_and_rates_by_hand():
    # book 100 / 102 (mid 101); prints at 103 (delta 2), 99 (2), 104 (3), 101 (0, at the mid), 106 (5)
    rows = _book(T0, 100, 102)
    for i, px in enumerate([103, 99, 104, 101, 106]):
        rows.append((T0 + (i + 1) * S, EventKind.TRADE, 1 if px > 101 else -1, px, 1, True))
    rows.append((T0 + 10 * S, EventKind.SET_LEVEL, 1, 100, 10, True))
    ev = _events(rows)
    assert trade_depths(ev).tolist() == [2.0, 2.0, 3.0, 0.0, 5.0]
    fit = intensity(ev, min_count=1)
    assert fit.levels.tolist() == [0.0, 2.0, 3.0, 5.0]
    assert fit.rates.tolist() == [0.5, 0.4, 0.2, 0.1]  # 5, 4, 2, 1 prints at or beyond, over 10 s
    slope, intercept = np.polyfit(fit.levels, np.log(fit.rates), 1)
    assert fit.k == pytest.approx(-slope) and fit.A == pytest.approx(math.exp(intercept))
    assert 0 < fit.r2 < 1
    assert intensity(ev, min_count=2).n == 3  # level 5 holds one print: out


def test_depth_is_measured_from_the_mid_before_the_batch():
    # the aggressor's sweep: the level it empties and the print come in one batch; the print is
    # measured from the book before that batch (mid 100.5), not after (mid 101)
    rows = _book(T0, 100, 101)
    rows += [(T0 + S, EventKind.SET_LEVEL, -1, 101, 0, False), (T0 + S, EventKind.SET_LEVEL, -1, 102, 10, False),
             (T0 + S, EventKind.TRADE, 1, 101, 10, True),
             (T0 + 2 * S, EventKind.TRADE, 1, 102, 1, True)]
    ev = _events(rows)
    assert trade_depths(ev).tolist() == [0.5, 1.0]


def test_prints_before_a_two_sided_book_are_left_out():
    rows = [(T0, EventKind.TRADE, 1, 101, 1, True), (T0, EventKind.SET_LEVEL, 1, 100, 10, True),
            (T0 + S, EventKind.TRADE, 1, 101, 1, True)]
    rows += _book(T0 + 2 * S, 100, 102) + [(T0 + 3 * S, EventKind.TRADE, 1, 104, 1, True)]
    assert trade_depths(_events(rows)).tolist() == [3.0]


def _random_walk(n_steps, step_ns, seed):
    """A one-tick book whose mid moves by +-1 tick every step_ns: sigma = 1 tick per step."""
    rng = np.random.default_rng(seed)
    moves = rng.choice([-1, 1], n_steps)
    bids = 10_000 + np.concatenate([[0], np.cumsum(moves)])
    rows = _book(T0, int(bids[0]), int(bids[0]) + 1)
    for i in range(1, len(bids)):
        t, b, old = T0 + i * step_ns, int(bids[i]), int(bids[i - 1])
        rows += [(t, EventKind.SET_LEVEL, 1, old, 0, False), (t, EventKind.SET_LEVEL, -1, old + 1, 0, False),
                 (t, EventKind.SET_LEVEL, 1, b, 10, False), (t, EventKind.SET_LEVEL, -1, b + 1, 10, True)]
    return _events(rows), bids


def test_sigma_of_a_known_random_walk():
    ev, bids = _random_walk(20_000, 100_000_000, seed=4)  # 2,000 s, +-1 tick per 100 ms
    fit = sigma(ev)
    assert isinstance(fit, SigmaFit)
    assert fit.n == 2000 and fit.interval_ns == S
    # true: sqrt(10) ticks per sqrt(s); 2,000 changes: relative standard error ~ 1 / sqrt(2 * 2000) = 1.6%
    assert fit.per_second == pytest.approx(math.sqrt(10), rel=0.05)
    # exactly the std of the 1 s changes of the mid
    mids = bids[::10] + 0.5
    assert fit.per_second == pytest.approx(np.std(np.diff(mids)))
    assert fit.per_unit(S) == fit.per_second
    assert fit.per_unit(100_000_000) == pytest.approx(fit.per_second * math.sqrt(0.1))
    assert fit.per_unit(60 * S) == pytest.approx(fit.per_second * math.sqrt(60))
    # sampled every 100 ms: the one-step deviation (1 tick) over sqrt(0.1 s)
    fine = sigma(ev, interval_ns=100_000_000)
    assert fine.per_second == pytest.approx(math.sqrt(10), rel=0.03)


def test_calibrate_returns_strategy_parameters():
    ev, _ = _trades_with_known_intensity(50.0, 0.8, 500, seed=9)
    cal = calibrate(ev, min_count=30)
    assert isinstance(cal, Calibration)
    assert cal.sigma == cal.sigma_fit.per_second == 0.0  # the book never moves
    assert cal.params() == {"sigma": 0.0, "k": cal.k, "A": cal.A}
    assert cal.params(A=False) == {"sigma": 0.0, "k": cal.k}
    from lobsim.strategies import GLFT, AvellanedaStoikov

    GLFT(gamma=0.1, **cal.params())
    AvellanedaStoikov(gamma=0.1, **cal.params(A=False))
    assert "R^2" in str(cal) and "ticks/sqrt(s)" in str(cal)


def test_calibrate_on_the_sample_file():
    top = top_of_book(str(SAMPLE))
    assert top.span_s == pytest.approx(3.663774374)
    cal = calibrate(SAMPLE, interval_ns=100_000_000)
    assert cal.sigma_fit.n == 36
    assert cal.sigma > 0 and cal.A > 0 and cal.k > 0 and 0 < cal.intensity_fit.r2 <= 1


def test_too_little_data_says_what_is_missing():
    book = _events(_book(T0, 100, 101) + [(T0 + 3 * S, EventKind.SET_LEVEL, 1, 100, 10, True)])
    with pytest.raises(ValueError, match="no trade prints"):
        intensity(book)
    with pytest.raises(ValueError, match="at least 2 changes"):
        sigma(book, interval_ns=2 * S)
    assert sigma(book).n == 3
    one_sided = _events([(T0, EventKind.SET_LEVEL, 1, 100, 10, True), (T0 + S, EventKind.SET_LEVEL, 1, 99, 1, True)])
    with pytest.raises(ValueError, match="both sides"):
        sigma(one_sided)
    ev, _ = _trades_with_known_intensity(5.0, 3.0, 10, seed=1)
    with pytest.raises(ValueError, match="depth levels"):
        intensity(ev, min_count=1000)
    with pytest.raises(ValueError, match="no events"):
        calibrate(empty_events(0))
    with pytest.raises(TypeError, match="data"):
        calibrate([1, 2, 3])
    with pytest.raises(ValueError, match="interval_ns"):
        sigma(book, interval_ns=0)
    with pytest.raises(ValueError, match="min_count"):
        intensity(book, min_count=0)


@pytest.fixture(scope="module")
def amzn():
    if not AMZN.exists():
        pytest.skip(f"LOBSTER sample not found at {AMZN}")
    from lobsim.data import read_lobster

    return read_lobster(AMZN)


def test_amzn_lobster_calibration(amzn):
    cal = calibrate(amzn)
    print(f"\nAMZN 2012-06-21 (LOBSTER level 5):\n{cal}")
    s, fit = cal.sigma_fit, cal.intensity_fit
    for v in (cal.sigma, cal.A, cal.k, fit.r2):
        assert math.isfinite(v) and v > 0
    assert s.n > 20_000                      # 6.5 hours sampled every second
    assert fit.span_s == pytest.approx(23_400, rel=0.01)
    assert fit.n >= 10 and fit.trades > 10_000
    assert fit.r2 > 0.9
    # the values the README prints (tick 0.01 USD): sigma ~ 2 ticks/sqrt(s), k ~ 0.35 /tick, A ~ 1 /s
    assert cal.sigma == pytest.approx(1.99, rel=0.01)
    assert cal.k == pytest.approx(0.353, rel=0.01)
    assert cal.A == pytest.approx(1.065, rel=0.01)
