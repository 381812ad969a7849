"""The synthetic L3 generator: deterministic, always valid, uncrossed, realistic mix."""
from decimal import Decimal

import numpy as np
import pytest

from lobsim import EVENT_DTYPE, EventKind, Flag
from lobsim.book.reference import ReferenceBook
from lobsim.data import Events
from lobsim.data.synthetic import INSTRUMENT, generate, generate_events

try:
    from lobsim.book import OrderBook, depth_series
except ImportError:  # C core not built
    OrderBook = depth_series = None

needs_c = pytest.mark.skipif(OrderBook is None, reason="C core not built")

K = EventKind
N = 60_000  # > one chunk of pre-drawn steps
END = int(Flag.BATCH_END)


@pytest.fixture(scope="module")
def ev():
    return generate(N, seed=11)


@pytest.fixture(scope="module")
def ref_book(ev):
    """A ReferenceBook after a strict replay of the whole stream."""
    book = ReferenceBook()
    r = book.apply(ev, strict=True)
    assert (r.applied, r.rejected, r.first_error_index) == (N, 0, -1)
    return book


def test_dtype_and_length(ev):
    assert ev.dtype == EVENT_DTYPE and ev.shape == (N,) and ev.flags.c_contiguous
    assert (ev["reserved"] == 0).all()


def test_same_seed_same_bytes_other_seed_differs():
    a = generate(5000, seed=3)
    assert a.tobytes() == generate(5000, seed=3).tobytes()
    assert a.tobytes() != generate(5000, seed=4).tobytes()
    assert a.tobytes() != generate(5000, seed=3, tick_levels=10).tobytes()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 500])
def test_exact_length_and_valid_for_any_n(n):
    a = generate(n, seed=5)
    assert len(a) == n
    ReferenceBook().apply(a, strict=True)
    if n:
        assert a["flags"][-1] & END


def test_strict_replay_on_reference_is_clean(ref_book, ev):
    ref_book.check()
    t = ref_book.totals()
    adds = ev["kind"] == K.ADD
    assert t["added"] >= ev["qty"][adds].sum()  # plus modify increases
    assert t["executed"] == ev["qty"][ev["kind"] == K.EXECUTE].sum()
    assert len(ref_book) > 50  # a live book, not drained


@needs_c
def test_strict_replay_on_c_book_matches_reference(ref_book, ev):
    with OrderBook() as book:
        r = book.apply(ev, strict=True)
        assert (r.applied, r.rejected) == (N, 0)
        book.check()
        assert book.totals() == ref_book.totals()
        assert len(book) == len(ref_book)
        for a, b in zip(book.depth(50), ref_book.depth(50)):
            assert a.tolist() == b.tolist()


@needs_c
def test_uncrossed_after_every_batch(ev):
    ds = depth_series(ev, levels=1, batch_end_only=True)
    both = (ds.bid_qty[:, 0] > 0) & (ds.ask_qty[:, 0] > 0)
    assert both.mean() > 0.99  # both sides quoted nearly always
    assert (ds.bid_px[both, 0] < ds.ask_px[both, 0]).all()
    assert len(ds.index) == np.count_nonzero(ev["flags"] & END)


def test_uncrossed_on_reference_replay():
    a = generate(8000, seed=2)
    book = ReferenceBook()
    ends = np.flatnonzero(a["flags"] & END)
    start = 0
    for e in ends:
        book.apply(a[start : e + 1])
        start = e + 1
        bb, ba = book.best_bid(), book.best_ask()
        if bb and ba:
            assert bb[0] < ba[0], e


def test_timestamps(ev):
    ts, loc = ev["ts_exch"], ev["ts_local"]
    assert (np.diff(ts) >= 0).all() and (np.diff(loc) >= 0).all()
    assert (loc > ts).all()
    assert np.diff(ts).max() > 0 and (loc - ts).min() >= 40_000  # default feed latency floor
    assert ts[0] > 1_600_000_000 * 10**9  # epoch ns, not a small counter


def _batches(a):
    ends = np.flatnonzero(a["flags"] & END)
    starts = np.r_[0, ends[:-1] + 1]
    return list(zip(starts.tolist(), ends.tolist()))


def test_batch_structure(ev):
    assert ev["flags"][-1] & END
    inner = (ev["flags"] & END) == 0
    assert np.isin(ev["kind"][inner], [K.EXECUTE, K.TRADE]).all()  # only sweeps span events
    assert np.isin(ev["flags"], [0, END]).all()  # no other flags
    sweeps = 0
    for s, e in _batches(ev):
        b = ev[s : e + 1]
        kinds = b["kind"]
        if e > s or kinds[0] in (K.EXECUTE, K.TRADE):
            sweeps += 1
            assert (b["ts_exch"] == b["ts_exch"][0]).all() and (b["ts_local"] == b["ts_local"][0]).all()
            assert kinds[-1] == K.TRADE and kinds[0] == K.EXECUTE
            ex = b[kinds == K.EXECUTE]
            assert len(set(ex["side"].tolist())) == 1, "a sweep hits one side"
            rside = int(ex["side"][0])
            pending = 0
            last_px = None
            for row in b:
                if row["kind"] == K.EXECUTE:
                    if last_px is not None:
                        # walking away from the best: asks up, bids down
                        assert (row["price"] >= last_px) if rside == -1 else (row["price"] <= last_px)
                    last_px = row["price"]
                    pending += int(row["qty"])
                else:  # the print for the level just taken: side = aggressor
                    assert row["kind"] == K.TRADE and row["order_id"] == 0
                    assert (row["side"], row["price"], row["qty"]) == (-rside, last_px, pending)
                    pending = 0
            assert pending == 0
    assert sweeps > 100


def test_executions_take_the_front_of_the_best_level():
    """Each EXECUTE hits the first order in line at the best price (price-time
    priority), and every event names its order's true side and price."""
    a = generate(15_000, seed=9)
    book = ReferenceBook()
    checked = 0
    for i in range(len(a)):
        kind = a["kind"][i]
        oid = int(a["order_id"][i])
        if kind in (K.EXECUTE, K.REDUCE, K.DELETE, K.MODIFY):
            info = book.order(oid)
            assert info.side == a["side"][i]
            if kind != K.MODIFY:
                assert info.price == a["price"][i]
            if kind == K.EXECUTE:
                best = book.best_bid() if info.side == 1 else book.best_ask()
                assert info.price == best[0] and info.orders_ahead == 0, i
                assert a["qty"][i] <= info.qty
                checked += 1
            elif kind == K.REDUCE:
                assert a["qty"][i] < info.qty  # partial cancels are true partials
            elif kind == K.DELETE:
                assert a["qty"][i] == info.qty
        book.apply(a[i : i + 1])
    assert checked > 500


def test_mix_of_kinds(ev):
    frac = np.bincount(ev["kind"], minlength=10) / len(ev)
    assert 0.40 <= frac[K.ADD] <= 0.52
    assert 0.33 <= frac[K.REDUCE] + frac[K.DELETE] <= 0.45
    assert 0.05 <= frac[K.EXECUTE] <= 0.11
    assert 0.005 <= frac[K.REDUCE] < frac[K.DELETE]
    assert 0.02 <= frac[K.TRADE] <= frac[K.EXECUTE]
    assert 0.01 <= frac[K.MODIFY] <= 0.06
    assert frac[[0, K.SET_LEVEL, K.CLEAR, K.STATUS]].sum() == 0


def test_fields(ev):
    adds = ev[ev["kind"] == K.ADD]
    assert len(np.unique(adds["order_id"])) == len(adds)  # ids never reused
    assert (ev["qty"] > 0).all() and (ev["price"] > 0).all()
    assert np.isin(ev["side"][ev["kind"] != K.TRADE], [1, -1]).all()
    # prices stay near the start price, spread over many levels
    px = adds["price"]
    assert 5_000 < px.min() and px.max() < 15_000 and len(np.unique(px)) > 40


def test_generate_events_wrapper():
    e = generate_events(1000, seed=1)
    assert isinstance(e, Events) and len(e) == 1000
    assert e.instrument is INSTRUMENT and e.instrument.tick_size == Decimal("0.01")
    assert e.array.tobytes() == generate(1000, seed=1).tobytes()
    assert not e.report  # no anomalies
    assert e.report.info["n_add"] == int((e.array["kind"] == K.ADD).sum())


@pytest.mark.parametrize(
    "kwargs",
    [{"n_events": -1}, {"tick_levels": 0}, {"start_price": 10}, {"reduce_share": 1.5}, {"mean_qty": 0.5},
     {"add_rate": 0}],
)
def test_bad_arguments(kwargs):
    kw = {"n_events": 10, **kwargs}
    with pytest.raises(ValueError):
        generate(**kw)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_levels": 1, "mean_offset": 0},  # everything on one or two prices
        {"execute_rate": 2.0},  # market orders drain the book, often one-sided
        {"execute_rate": 5.0, "cancel_rate": 0.5, "add_rate": 0.2},  # nearly empty book
        {"modify_rate": 3.0, "volatility": 1.0},  # modifies dominate, fast mid
        {"mean_qty": 1, "reduce_share": 1.0},  # unit orders: REDUCE falls back to DELETE
        {"cancel_rate": 0.0},  # the book only grows
    ],
)
def test_extreme_parameters_stay_valid(kwargs):
    a = generate(6000, seed=1, **kwargs)
    book = ReferenceBook()
    for s, e in _batches(a):
        book.apply(a[s : e + 1])
        bb, ba = book.best_bid(), book.best_ask()
        assert not (bb and ba and bb[0] >= ba[0])
    book.check()
    assert (np.diff(a["ts_exch"]) >= 0).all() and (a["price"] > 0).all()
