"""Latency models: validation at construction, and the values C draws (lob_latency_sample)."""
import math

import numpy as np
import pytest

from lobsim.latency import Constant, Empirical, LogNormal, PerAction

AT = np.arange(0, 1_000_000_000, 1000, dtype=np.int64)[:20_000]


# -- validation -------------------------------------------------------------

@pytest.mark.parametrize("make, name", [
    (lambda: Constant(-1), "entry_ns"),
    (lambda: Constant(5, -1), "response_ns"),
    (lambda: LogNormal(-1.0, 0.5), "median_ns"),
    (lambda: LogNormal(1e6, -0.1), "sigma"),
    (lambda: LogNormal(1e6, 0.5, min_ns=-3), "min_ns"),
    (lambda: LogNormal(1e6, 0.5, max_ns=-3), "max_ns"),
    (lambda: LogNormal(1e6, 0.5, min_ns=10, max_ns=9), "max_ns"),
    (lambda: LogNormal(float("nan"), 0.5), "median_ns"),
    (lambda: LogNormal(1e6, float("inf")), "sigma"),
    (lambda: Constant(1.5), "entry_ns"),
    (lambda: Constant(2**63), "entry_ns"),
])
def test_bad_values_are_value_errors_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: Constant("1000"), "entry_ns"),
    (lambda: Constant(True), "entry_ns"),
    (lambda: Constant(None), "entry_ns"),
    (lambda: Constant(1, "2"), "response_ns"),
    (lambda: LogNormal("1e6", 0.5), "median_ns"),
    (lambda: LogNormal(1e6, None), "sigma"),
    (lambda: LogNormal(1e6, 0.5, min_ns=1.0j), "min_ns"),
    (lambda: Empirical([0.0, 1.0], [1, 2], [2, 3]), "send_ts"),
    (lambda: Empirical([0, 1], ["a", "b"], [2, 3]), "venue_ts"),
    (lambda: Empirical([0, 1], [1, 2], [True, False]), "response_ts"),
    (lambda: PerAction(Constant(1), cancel=5), "cancel"),
    (lambda: PerAction(None), "new"),
    (lambda: PerAction(Constant(1), modify=PerAction(Constant(1))), "modify"),
])
def test_wrong_types_are_type_errors_naming_the_parameter(make, name):
    with pytest.raises(TypeError, match=name):
        make()


def test_integral_floats_are_accepted():
    assert Constant(1e6).entry_ns == 1_000_000 and isinstance(Constant(1e6).entry_ns, int)
    assert Constant(np.int64(7), np.uint32(9)).response_ns == 9


@pytest.mark.parametrize("send, venue, resp, match", [
    ([], [], [], "at least one"),
    ([0, 1], [1], [2, 3], "same length"),
    ([0, 10, 5], [1, 11, 6], [2, 12, 7], "sorted"),
    ([0, 10], [5, 9], [6, 20], "venue_ts gives a negative latency at record 1"),
    ([0, 10], [5, 15], [6, 14], "response_ts gives a negative latency at record 1"),
    ([0, 10], [5, -1], [6, 9], "response_ts gives a negative latency at record 1"),  # a rejection learnt before sent
    ([[0, 1]], [[1, 2]], [[2, 3]], "1-dimensional"),
    (np.array([2**63], dtype=np.uint64), [0], [0], "beyond int64"),
])
def test_empirical_validation(send, venue, resp, match):
    with pytest.raises(ValueError, match=match):
        Empirical(send, venue, resp)


def test_empirical_keeps_its_own_int64_copies():
    send = np.array([0, 100], dtype=np.int32)
    m = Empirical(send, [10, 130], [15, 150])
    send[0] = 50  # the caller's array is not borrowed
    assert m.send_ts.dtype == np.int64 and m.send_ts.flags.c_contiguous and m.send_ts.tolist() == [0, 100]


def test_sample_arguments():
    m = Constant(5)
    with pytest.raises(ValueError, match="kind"):
        m.sample([1], kind="replace")
    with pytest.raises(TypeError, match="at_ns"):
        m.sample([1.5])
    with pytest.raises(TypeError, match="seed"):
        m.sample([1], seed=1.0)
    with pytest.raises(ValueError, match="seed"):
        m.sample([1], seed=-1)
    e, r = m.sample([], seed=3)
    assert e.dtype == np.int64 and len(e) == len(r) == 0


# -- values -----------------------------------------------------------------

def test_constant_is_exact():
    e, r = Constant(1_000_000, 250_000).sample(AT[:100], seed=9)
    assert (e == 1_000_000).all() and (r == 250_000).all()
    e, r = Constant(42).sample(AT[:3])
    assert e.tolist() == r.tolist() == [42, 42, 42]


def test_lognormal_median_within_sampling_error():
    median, sigma = 1_000_000, 0.5
    e, r = LogNormal(median, sigma).sample(AT, seed=1)
    n = len(AT)
    # the sample median of log-latency has std ~ 1.2533 * sigma / sqrt(n); allow 5 of them
    tol = 5 * 1.2533 * sigma / math.sqrt(n)
    for draws in (e, r):
        assert abs(math.log(np.median(draws) / median)) < tol
        assert abs(np.std(np.log(draws)) - sigma) < 0.02
    assert not np.array_equal(e, r)  # entry and response are separate draws


def test_lognormal_clipping():
    e, r = LogNormal(1_000_000, 3.0, min_ns=500_000, max_ns=2_000_000).sample(AT, seed=2)
    for draws in (e, r):
        assert draws.min() == 500_000 and draws.max() == 2_000_000
        assert ((draws == 500_000).mean() > 0.3) and ((draws == 2_000_000).mean() > 0.3)
    e, _ = LogNormal(1_000_000, 0.0).sample(AT[:10])
    assert (e == 1_000_000).all()


def test_sampling_is_deterministic_per_seed():
    m = LogNormal(1_000_000, 0.5)
    a, b = m.sample(AT, seed=7), m.sample(AT, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], m.sample(AT, seed=8)[0])
    # the k-th draw does not depend on how many follow it
    assert np.array_equal(m.sample(AT[:10], seed=7)[0], a[0][:10])


def test_empirical_interpolation_by_hand():
    # entry latencies at the records: 10, 30, 20; response latencies: 5, 20, 30
    m = Empirical([0, 100, 200], [10, 130, 220], [15, 150, 250])
    e, r = m.sample([-5, 0, 40, 100, 150, 200, 1000])
    assert e.tolist() == [10, 10, 18, 30, 25, 20, 20]  # 10 + 0.4 * 20 = 18; 30 - 0.5 * 10 = 25
    assert r.tolist() == [5, 5, 11, 20, 25, 30, 30]   # 5 + 0.4 * 15 = 11; 20 + 0.5 * 10 = 25
    e, r = Empirical([7], [9], [12]).sample([0, 7, 100])
    assert e.tolist() == [2, 2, 2] and r.tolist() == [3, 3, 3]


def test_per_action_fallbacks():
    m = PerAction(new=Constant(5), cancel=Constant(7, 8))
    assert m.modify is m.new
    assert m.sample([0], kind="new")[0].tolist() == [5]
    assert [a.tolist() for a in m.sample([0], kind="cancel")] == [[7], [8]]
    assert m.sample([0], kind="modify")[0].tolist() == [5]
    m = PerAction(Constant(1), modify=Constant(3))
    assert m.sample([0], kind="cancel")[0].tolist() == [1] and m.sample([0], kind="modify")[0].tolist() == [3]


def test_c_structs_carry_the_parameters():
    from lobsim._core import ffi

    new, cancel, modify = PerAction(LogNormal(2e6, 0.25, min_ns=10), cancel=Constant(3, 4))._c_models(ffi)
    assert (new.kind, new.median_ns, new.sigma, new.min_ns, new.max_ns) == (1, 2e6, 0.25, 10, 2**63 - 1)
    assert (cancel.kind, cancel.entry_ns, cancel.response_ns) == (0, 3, 4)
    assert modify.kind == 1
    emp = Empirical([0, 100], [10, 130], [15, 150])
    (c, _, _) = emp._c_models(ffi)
    assert c.kind == 2 and c.n == 2 and c.send_ts[1] == 100 and c.venue_ts[1] == 130 and c.response_ts[0] == 15
