"""The synthetic L3 generator: deterministic, chunk-independent, always valid, uncrossed, realistic mix."""
import hashlib
import random
import tracemalloc
from decimal import Decimal

import numpy as np
import pytest

from lobsim import EVENT_DTYPE, EventKind, Flag
from lobsim.book import OrderBook, depth_series
from lobsim.book.reference import ReferenceBook
from lobsim.data import Events
from lobsim.data.synthetic import INSTRUMENT, KNOBS, MAX_EVENTS, generate, generate_events, iter_generate

K = EventKind
N = 60_000
END = int(Flag.BATCH_END)
MAX_SEED = 2**63 - 1
# sha256 of generate(100_000, seed=1): the same bytes on every platform
PINNED_SHA256 = "0643432ff55a5a023ed3d2eb7177113430cc870b5e350349c8a1105dfed096e6"


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


def test_same_seed_same_bytes_other_seed_or_knob_differs():
    a = generate(5000, seed=3)
    assert a.tobytes() == generate(5000, seed=3).tobytes()
    assert a.tobytes() != generate(5000, seed=4).tobytes()
    assert a.tobytes() != generate(5000, seed=3, tick_levels=10).tobytes()
    # the defaults are the documented knob defaults
    assert a.tobytes() == generate(5000, seed=3, **{k: v[0] for k, v in KNOBS.items()}).tobytes()


def test_bytes_are_pinned():
    """The same seed gives these exact bytes on every platform (the C test pins
    another hash of the same stream). Change only with the model, and then
    regenerate data/sample.parquet."""
    digest = hashlib.sha256(generate(100_000, seed=1).tobytes()).hexdigest()
    assert digest == PINNED_SHA256


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 500])
def test_exact_length_and_valid_for_any_n(n):
    for seed in range(20):
        a = generate(n, seed=seed, execute_rate=2.0)  # many sweeps: the last one must be trimmed to fit
        assert len(a) == n
        ReferenceBook().apply(a, strict=True)
        if n:
            assert a["flags"][-1] & END


def test_generate_is_a_prefix_up_to_the_last_batch():
    """A longer stream starts with the shorter one, except where the shorter one trims its last sweep."""
    a, b = generate(10_000, seed=8), generate(12_345, seed=8)
    ends = np.flatnonzero(a["flags"] & END)
    same = int(np.flatnonzero((a != b[:len(a)]))[0]) if (a != b[:len(a)]).any() else len(a)
    assert same >= ends[-2] + 1


def _concat(chunks):
    chunks = list(chunks)
    assert all(c.dtype == EVENT_DTYPE and c.flags.c_contiguous for c in chunks)
    return np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000, 4097, 20_000, 1 << 20])
def test_chunks_concatenate_to_generate(chunk):
    n = 20_000
    whole = generate(n, seed=21)
    chunks = list(iter_generate(n, seed=21, chunk_events=chunk))
    assert [len(c) for c in chunks] == [min(chunk, n - i) for i in range(0, n, chunk)]
    assert _concat(chunks).tobytes() == whole.tobytes()
    if len(chunks) > 1:  # each chunk is its own array, safe to keep
        assert not np.shares_memory(chunks[0], chunks[1])


def test_random_chunk_sizes_and_knobs():
    rnd = random.Random(5)
    for trial in range(12):
        n = rnd.choice([0, 1, 5, 999, 30_000])
        seed = rnd.randrange(2**63)
        knobs = rnd.choice([{}, {"execute_rate": 1.5}, {"mean_qty": 1e6, "cancel_rate": 0.01, "reduce_share": 1.0,
                                                         "execute_rate": 0.002}, {"tick_levels": 1}])
        whole = generate(n, seed, **knobs)
        sizes = []

        def sized(it):
            for c in it:
                sizes.append(len(c))
                yield c

        chunk = rnd.choice([1, 2, 13, 500, 4096, 100_000])
        assert _concat(sized(iter_generate(n, seed, chunk_events=chunk, **knobs))).tobytes() == whole.tobytes()
        assert sum(sizes) == n


def test_iter_generate_streams_in_bounded_memory():
    """Python-side memory stays one chunk whatever the stream's length (numpy
    allocations are traced; the C state is the book, O(resting orders))."""
    tracemalloc.start()
    try:
        n = 0
        for c in iter_generate(3_000_000, seed=2, chunk_events=1 << 15):
            n += len(c)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 3_000_000
    assert peak < 8 * (1 << 15) * EVENT_DTYPE.itemsize  # a few chunks at most, not 144 MB


def test_iter_generate_huge_stream_starts_at_once():
    it = iter_generate(MAX_EVENTS, seed=MAX_SEED, chunk_events=1000)
    first = next(it)
    assert len(first) == 1000
    short = generate(1000, seed=MAX_SEED)  # the same stream, but it trims its last sweep to end at 1000
    keep = np.flatnonzero(short["flags"] & END)[-2] + 1
    assert first[:keep].tobytes() == short[:keep].tobytes()
    it.close()


def test_strict_replay_on_reference_is_clean(ref_book, ev):
    ref_book.check()
    t = ref_book.totals()
    adds = ev["kind"] == K.ADD
    assert t["added"] >= ev["qty"][adds].sum()  # plus modify increases
    assert t["executed"] == ev["qty"][ev["kind"] == K.EXECUTE].sum()
    assert len(ref_book) > 50  # a live book, not drained


def test_strict_replay_on_c_book_matches_reference(ref_book, ev):
    with OrderBook() as book:
        r = book.apply(ev, strict=True)
        assert (r.applied, r.rejected) == (N, 0)
        book.check()
        assert book.totals() == ref_book.totals()
        assert len(book) == len(ref_book)
        for a, b in zip(book.depth(50), ref_book.depth(50)):
            assert a.tolist() == b.tolist()


def test_long_stream_replays_strictly_in_chunks():
    with OrderBook() as book:
        n = 0
        for chunk in iter_generate(2_000_000, seed=77, chunk_events=123_457):
            r = book.apply(chunk, strict=True)
            assert r.rejected == 0
            n += r.applied
        assert n == 2_000_000
        book.check()
        assert 50 < len(book) < 5000  # stationary, neither drained nor exploding


def test_uncrossed_and_two_sided_after_every_batch(ev):
    ds = depth_series(ev, levels=1, batch_end_only=True)
    both = (ds.bid_qty[:, 0] > 0) & (ds.ask_qty[:, 0] > 0)
    assert both.mean() > 0.99  # both sides quoted nearly always
    assert (ds.bid_px[both, 0] < ds.ask_px[both, 0]).all()
    assert len(ds.index) == np.count_nonzero(ev["flags"] & END)
    spread = ds.ask_px[both, 0] - ds.bid_px[both, 0]
    assert np.median(spread) <= 5  # a tight market around the latent mid


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
    steps = np.diff(ts[np.r_[True, np.diff(ts) > 0]])
    assert 15_000 < steps.mean() < 25_000  # mean_gap_ns = 20 us
    lat = loc - ts
    assert 45_000 < lat.mean() < 55_000  # 40 us + exponential jitter of mean 10 us (less where kept monotonic)


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
    assert sweeps > 1000


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
            else:
                assert (a["price"][i], a["qty"][i]) != (info.price, info.qty)
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


def test_sizes_and_sides(ev):
    adds = ev[ev["kind"] == K.ADD]
    assert 4.5 < adds["qty"].mean() < 5.5  # geometric, mean_qty = 5
    assert 0.45 < (adds["side"] == 1).mean() < 0.55  # either side with equal odds
    trades = ev[ev["kind"] == K.TRADE]
    assert 0.3 < (trades["side"] == 1).mean() < 0.7  # buys and sells


def test_fields(ev):
    adds = ev[ev["kind"] == K.ADD]
    assert len(np.unique(adds["order_id"])) == len(adds)  # ids never reused
    assert (np.diff(adds["order_id"].astype(np.int64)) > 0).all()  # consecutive, market orders take one too
    assert (ev["qty"] > 0).all() and (ev["price"] > 0).all()
    assert np.isin(ev["side"], [1, -1]).all()
    # prices stay near the start price, spread over many levels
    px = adds["price"]
    assert 5_000 < px.min() and px.max() < 15_000 and len(np.unique(px)) > 40


def test_knobs_reach_the_output():
    a = generate(3000, seed=1, t0_ns=0, first_order_id=10**12, latency_ns=0, latency_jitter_ns=0,
                 mean_gap_ns=0, start_price=500)
    assert (a["ts_exch"] == 0).all() and (a["ts_local"] == 0).all()
    assert a["order_id"][a["kind"] == K.ADD].min() >= 10**12
    assert abs(int(np.median(a["price"])) - 500) < 50


def test_generate_events_wrapper():
    e = generate_events(1000, seed=1)
    assert isinstance(e, Events) and len(e) == 1000
    assert e.instrument is INSTRUMENT and e.instrument.tick_size == Decimal("0.01")
    assert e.array.tobytes() == generate(1000, seed=1).tobytes()
    assert not e.report  # no anomalies
    assert e.report.info["n_add"] == int((e.array["kind"] == K.ADD).sum())
    assert e.report.info["events"] == 1000


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        ({"n_events": -1}, ValueError, "n_events"),
        ({"n_events": MAX_EVENTS + 1}, ValueError, "n_events"),
        ({"n_events": 10.0}, TypeError, "n_events"),
        ({"n_events": True}, TypeError, "n_events"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**63}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": "7"}, TypeError, "seed"),
        ({"tick_levels": 0}, ValueError, "tick_levels"),
        ({"tick_levels": 2.0}, TypeError, "tick_levels"),
        ({"start_price": 10}, ValueError, "start_price"),
        ({"start_price": 2**40 + 1}, ValueError, "start_price"),
        ({"tick_levels": 100, "start_price": 400}, ValueError, "start_price"),
        ({"reduce_share": 1.5}, ValueError, "reduce_share"),
        ({"reduce_share": float("nan")}, ValueError, "reduce_share"),
        ({"mean_qty": 0.5}, ValueError, "mean_qty"),
        ({"mean_qty": 1e7}, ValueError, "mean_qty"),
        ({"add_rate": 0}, ValueError, "add_rate"),
        ({"cancel_rate": -0.1}, ValueError, "cancel_rate"),
        ({"execute_rate": float("inf")}, ValueError, "execute_rate"),
        ({"modify_rate": -1}, ValueError, "modify_rate"),
        ({"mean_offset": -1}, ValueError, "mean_offset"),
        ({"volatility": 1001}, ValueError, "volatility"),
        ({"mean_gap_ns": -5}, ValueError, "mean_gap_ns"),
        ({"latency_ns": -1}, ValueError, "latency_ns"),
        ({"latency_ns": 1.5}, TypeError, "latency_ns"),
        ({"latency_jitter_ns": 1e13}, ValueError, "latency_jitter_ns"),
        ({"t0_ns": -1}, ValueError, "t0_ns"),
        ({"first_order_id": 0}, ValueError, "first_order_id"),
        ({"first_order_id": 2**63 + 1}, ValueError, "first_order_id"),
        ({"mean_qty": "5"}, TypeError, "mean_qty"),
        ({"mean_qty": True}, TypeError, "mean_qty"),
        ({"tick_level": 5}, TypeError, "tick_level"),  # a typo is not silently ignored
    ],
)
def test_bad_arguments_name_the_knob(kwargs, exc, name):
    kw = {"n_events": 10, **kwargs}
    with pytest.raises(exc, match=name):
        generate(**kw)
    with pytest.raises(exc, match=name):  # checked at the call, before any chunk is asked for
        iter_generate(**kw)
    with pytest.raises(exc, match=name):
        generate_events(**kw)


@pytest.mark.parametrize("chunk", [0, -1, 1.5, 2**31])
def test_bad_chunk_size(chunk):
    with pytest.raises((ValueError, TypeError), match="chunk_events"):
        iter_generate(10, chunk_events=chunk)


def test_bounds_are_accepted():
    a = generate(200, seed=MAX_SEED, tick_levels=1_000_000, start_price=2**40, mean_qty=1e6, add_rate=1e6,
                 cancel_rate=1e6, execute_rate=1e6, modify_rate=1e6, reduce_share=1.0, mean_offset=1e6,
                 volatility=1000, mean_gap_ns=1e12, latency_ns=10**12, latency_jitter_ns=1e12, t0_ns=2**62,
                 first_order_id=2**63)
    ReferenceBook().apply(a, strict=True)
    a = generate(200, seed=0, mean_qty=1, add_rate=1e-9, cancel_rate=0, execute_rate=0, modify_rate=0,
                 reduce_share=0, mean_offset=0, volatility=0, mean_gap_ns=0, latency_ns=0, latency_jitter_ns=0,
                 t0_ns=0, tick_levels=1, start_price=5, first_order_id=1)
    assert (a["kind"] == K.ADD).all() and (a["qty"] == 1).all()
    assert set(a["price"].tolist()) == {5, 6}  # mid 5.5: bids at 5, asks at 6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tick_levels": 1, "mean_offset": 0},  # everything on one or two prices
        {"execute_rate": 2.0},  # market orders drain the book, often one-sided
        {"execute_rate": 5.0, "cancel_rate": 0.5, "add_rate": 0.2},  # nearly empty book
        {"modify_rate": 3.0, "volatility": 1.0},  # modifies dominate, fast mid
        {"mean_qty": 1, "reduce_share": 1.0},  # unit orders: REDUCE falls back to DELETE
        {"cancel_rate": 0.0},  # the book only grows
        {"volatility": 1000, "tick_levels": 5, "start_price": 21},  # the mid keeps hitting its floor
        {"mean_qty": 1e6, "cancel_rate": 0.01, "reduce_share": 1.0, "execute_rate": 0.002},  # 100+ fill sweeps
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
    if kwargs.get("mean_qty") == 1:  # only modified orders (qty raised) can be reduced
        assert (a["qty"][a["kind"] == K.ADD] == 1).all()
    if kwargs.get("cancel_rate") == 0.0:
        assert not np.isin(a["kind"], [K.REDUCE, K.DELETE]).any()
