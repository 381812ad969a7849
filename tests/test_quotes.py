"""lobsim.strategies.quotes: hand-computed values, vectorization, argument checks."""
import math

import numpy as np
import pytest

from lobsim.strategies import quotes

E = math.e
LN2 = math.log(2.0)


# --- Avellaneda-Stoikov -------------------------------------------------------

def test_as_spread_hand_computed():
    # gamma = 1, k = 1/(e - 1): ln(1 + gamma/k) = ln(e) = 1, so the spread is
    # gamma sigma^2 tau + 2 = 1 * 1 * 0.5 + 2 = 2.5.
    assert quotes.avellaneda_stoikov_spread(1.0, 1.0, 1.0 / (E - 1.0), 0.5) == pytest.approx(2.5, abs=1e-12)
    # The paper's gamma = 0.1, sigma = 2, k = 1.5 at t = 0 (tau = 1):
    # 0.1 * 4 * 1 + 20 * ln(1 + 1/15) = 0.4 + 1.2907704227514... = 1.6907704227514...
    assert quotes.avellaneda_stoikov_spread(0.1, 2, 1.5, 1) == pytest.approx(0.4 + 20 * math.log(16 / 15), abs=1e-12)
    assert quotes.avellaneda_stoikov_spread(0.1, 2, 1.5, 1) == pytest.approx(1.69077042275, abs=1e-10)


def test_as_quotes_hand_computed():
    # mid 10, q = 2, gamma = 1, sigma = 1, tau = 0.5, k = 1/(e - 1):
    # r = 10 - 2 * 1 * 1 * 0.5 = 9; spread = 2.5; bid = 9 - 1.25, ask = 9 + 1.25.
    bid, ask = quotes.avellaneda_stoikov(10.0, 2, 1.0, 1.0, 1.0 / (E - 1.0), 0.5)
    assert bid == pytest.approx(7.75, abs=1e-12)
    assert ask == pytest.approx(10.25, abs=1e-12)
    # Short inventory moves both quotes up by the same amount: q = -2 -> r = 11.
    bid, ask = quotes.avellaneda_stoikov(10.0, -2, 1.0, 1.0, 1.0 / (E - 1.0), 0.5)
    assert (bid, ask) == (pytest.approx(9.75, abs=1e-12), pytest.approx(12.25, abs=1e-12))


def test_as_at_horizon_and_flat():
    # tau = 0: r = mid whatever q, spread = (2/gamma) ln(1 + gamma/k).
    bid, ask = quotes.avellaneda_stoikov(100.0, 7, 0.1, 2.0, 1.5, 0.0)
    half = 10 * math.log(16 / 15)
    assert (bid, ask) == (pytest.approx(100 - half, abs=1e-12), pytest.approx(100 + half, abs=1e-12))
    # q = 0: centred on the mid at any tau.
    bid, ask = quotes.avellaneda_stoikov(100.0, 0, 0.1, 2.0, 1.5, 0.7)
    assert (bid + ask) / 2 == pytest.approx(100.0, abs=1e-12)


def test_as_spread_independent_of_inventory():
    q = np.arange(-10, 11)
    bid, ask = quotes.avellaneda_stoikov(100.0, q, 0.1, 2.0, 1.5, 0.3)
    np.testing.assert_allclose(ask - bid, quotes.avellaneda_stoikov_spread(0.1, 2.0, 1.5, 0.3), rtol=0, atol=1e-12)
    # each unit of inventory moves the centre by gamma sigma^2 tau = 0.12
    np.testing.assert_allclose(np.diff((bid + ask) / 2), -0.12, atol=1e-12)


# --- GLFT -----------------------------------------------------------------------

def test_glft_hand_computed_unit_order():
    # gamma = xi = 1, k = 1, Delta = 1, A = 2:
    #   c1 = ln(1 + 1) = ln 2; c2 = sqrt(1 / (2*2*1*1) * 2 ** (1 + 1)) = 1.
    # sigma = 0.5 -> skew sigma*c2 = 0.5. q = 3, mid = 10:
    #   delta_bid = ln 2 + (2*3 + 1)/2 * 0.5 = ln 2 + 1.75 -> bid = 8.25 - ln 2
    #   delta_ask = ln 2 - (2*3 - 1)/2 * 0.5 = ln 2 - 1.25 -> ask = 8.75 + ln 2
    c1, c2 = quotes.glft_coefficients(1.0, 1.0, 2.0)
    assert (c1, c2) == (pytest.approx(LN2, abs=1e-12), pytest.approx(1.0, abs=1e-12))
    bid, ask = quotes.glft(10.0, 3, 1.0, 0.5, 1.0, 2.0)
    assert bid == pytest.approx(8.25 - LN2, abs=1e-12)
    assert ask == pytest.approx(8.75 + LN2, abs=1e-12)


def test_glft_hand_computed_order_qty():
    # gamma = xi = 0.5, k = 1, Delta = 2 (xi*Delta = 1), A = 0.5:
    #   c1 = ln 2 / 1; c2 = sqrt(0.5 / (2*0.5*2*1) * 2 ** (1 + 1)) = sqrt(0.25 * 4) = 1.
    # sigma = 1, q = -1, mid = 0:
    #   delta_bid = ln 2 + (-2 + 2)/2 = ln 2;  delta_ask = ln 2 - (-2 - 2)/2 = ln 2 + 2.
    bid, ask = quotes.glft(0.0, -1, 0.5, 1.0, 1.0, 0.5, order_qty=2)
    assert bid == pytest.approx(-LN2, abs=1e-12)
    assert ask == pytest.approx(LN2 + 2.0, abs=1e-12)


def test_glft_paper_parameters_hand_computed():
    # Avellaneda-Stoikov's gamma = 0.1, k = 1.5, A = 140, sigma = 2, q = 0, mid = 100:
    #   c1 = 10 ln(16/15) = 0.6453852113757...
    #   c2 = sqrt(0.1/420 * (16/15) ** 16) = 0.0258586080609...
    #   bid depth = c1 + 0.5 * 2 * c2 = 0.6712438194366...
    c1, c2 = quotes.glft_coefficients(0.1, 1.5, 140)
    assert c1 == pytest.approx(0.64538521137571, abs=1e-12)
    assert c2 == pytest.approx(0.0258586080609, abs=1e-12)
    bid, ask = quotes.glft(100.0, 0, 0.1, 2.0, 1.5, 140)
    assert bid == pytest.approx(100 - 0.67124381943662, abs=1e-11)
    assert ask == pytest.approx(100 + 0.67124381943662, abs=1e-11)


def test_glft_matches_the_2013_form():
    # Gueant, Lehalle, Fernandez-Tapia (2013), section 4, with unit orders:
    #   delta_b = (1/gamma) ln(1 + gamma/k) + (2q+1)/2 sqrt(sigma^2 gamma/(2kA) (1 + gamma/k)^(1 + k/gamma))
    #   delta_a = (1/gamma) ln(1 + gamma/k) - (2q-1)/2 sqrt(...)
    rng = np.random.default_rng(3)
    g, s, k, a = rng.uniform(0.01, 2, 4)
    q = np.arange(-5, 6)
    root = math.sqrt(s * s * g / (2 * k * a) * (1 + g / k) ** (1 + k / g))
    base = math.log(1 + g / k) / g
    bid, ask = quotes.glft(50.0, q, g, s, k, a)
    np.testing.assert_allclose(50.0 - bid, base + (2 * q + 1) / 2 * root, rtol=1e-12)
    np.testing.assert_allclose(ask - 50.0, base - (2 * q - 1) / 2 * root, rtol=1e-12)


def test_glft_xi_defaults_to_gamma():
    assert quotes.glft(100.0, 2, 0.3, 1.0, 1.2, 5.0) == quotes.glft(100.0, 2, 0.3, 1.0, 1.2, 5.0, xi=0.3)
    assert quotes.glft(100.0, 2, 0.3, 1.0, 1.2, 5.0) != quotes.glft(100.0, 2, 0.3, 1.0, 1.2, 5.0, xi=0.6)


# --- shapes and types -------------------------------------------------------------

def test_floats_in_floats_out():
    for bid, ask in (quotes.avellaneda_stoikov(100, 1, 0.1, 2, 1.5, 1), quotes.glft(100, 1, 0.1, 2, 1.5, 140)):
        assert type(bid) is float and type(ask) is float
    assert type(quotes.avellaneda_stoikov_spread(0.1, 2, 1.5, 1)) is float


def test_arrays_broadcast_and_match_scalars():
    mid = np.array([99.0, 100.0, 101.5])
    q = np.array([[-2.0], [0.0], [3.0]])  # (3, 1) x (3,) -> (3, 3)
    for fn, extra in ((quotes.avellaneda_stoikov, (0.1, 2.0, 1.5, 0.4)), (quotes.glft, (0.1, 2.0, 1.5, 140.0))):
        bid, ask = fn(mid, q, *extra)
        assert isinstance(bid, np.ndarray) and bid.shape == (3, 3) and ask.shape == (3, 3)
        for i in range(3):
            for j in range(3):
                b, a = fn(float(mid[j]), float(q[i, 0]), *extra)
                assert bid[i, j] == pytest.approx(b, abs=1e-12) and ask[i, j] == pytest.approx(a, abs=1e-12)
    # tau as an array too
    spread = quotes.avellaneda_stoikov_spread(0.1, 2.0, 1.5, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(np.diff(spread), 0.2, atol=1e-12)


# --- argument checks --------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(gamma=0.0), "gamma"), (dict(gamma=-1.0), "gamma"), (dict(gamma=float("nan")), "gamma"),
    (dict(k=0.0), "k"), (dict(k=-2.0), "k"), (dict(sigma=-0.1), "sigma"), (dict(tau=-1e-9), "tau"),
    (dict(gamma=float("inf")), "gamma"), (dict(tau=np.array([0.5, -0.5])), "tau"),
])
def test_as_rejects(kwargs, name):
    args = dict(mid=100.0, inventory=0, gamma=0.1, sigma=2.0, k=1.5, tau=1.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        quotes.avellaneda_stoikov(**args)
    spread_args = {key: args[key] for key in ("gamma", "sigma", "k", "tau")}
    with pytest.raises(ValueError, match=rf"^{name} must"):
        quotes.avellaneda_stoikov_spread(**spread_args)


@pytest.mark.parametrize("kwargs, name", [
    (dict(gamma=0.0), "gamma"), (dict(k=0.0), "k"), (dict(A=0.0), "A"), (dict(A=-5.0), "A"),
    (dict(sigma=-1.0), "sigma"), (dict(order_qty=0), "order_qty"), (dict(xi=0.0), "xi"),
])
def test_glft_rejects(kwargs, name):
    args = dict(mid=100.0, inventory=0, gamma=0.1, sigma=2.0, k=1.5, A=140.0) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        quotes.glft(**args)


def test_bool_is_not_a_parameter():
    with pytest.raises(TypeError, match="gamma"):
        quotes.avellaneda_stoikov(100.0, 0, True, 2.0, 1.5, 1.0)
