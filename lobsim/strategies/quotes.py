"""Closed-form market-making quotes: the one place these formulas live.

Pure, vectorized functions of their inputs (no state, no I/O): pass floats
and get floats back, pass numpy arrays (any broadcastable mix of arrays and
floats) and get arrays back. The shipped strategies (`AvellanedaStoikov`,
`GLFT`) and the stylized model (`lobsim.stylized`) all call these, so a quote
seen in a backtest is the quote a test checks by hand.

Units are whatever the caller uses, as long as they agree: the strategies use
ticks for prices and their own time unit for sigma, tau and A; the stylized
model uses the paper's dollars and its unit horizon T = 1.

Cost: O(n) in the broadcast size, a handful of numpy ufunc passes.
"""
import math

import numpy as np

__all__ = ["avellaneda_stoikov", "avellaneda_stoikov_spread", "glft", "glft_coefficients"]


def _param(name, value, *, positive):
    """`value` as a float (a scalar: the fast path a strategy takes on every quote) or a
    float array, checked > 0 (positive) or >= 0; ValueError names `name`."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got bool {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
        if not (math.isfinite(v) and (v > 0 if positive else v >= 0)):
            raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {v!r}")
        return v
    arr = np.asarray(value, dtype=float)
    ok = arr > 0 if positive else arr >= 0
    if not np.all(ok & np.isfinite(arr)):
        bad = arr[~(ok & np.isfinite(arr))] if arr.ndim else arr
        want = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {want}, got {float(np.ravel(bad)[0])!r}")
    return arr


def _is_scalar(*values):
    return all(isinstance(v, (int, float)) or np.ndim(v) == 0 for v in values)


def _out(x, scalar):
    return float(x) if scalar else np.asarray(x, dtype=float)


def _math(scalar):
    """(log1p, sqrt) for floats (the math module: no numpy call per quote) or arrays."""
    return (math.log1p, math.sqrt) if scalar else (np.log1p, np.sqrt)


def _num(value, scalar):
    return float(value) if scalar else np.asarray(value, dtype=float)


def avellaneda_stoikov_spread(gamma, sigma, k, tau):
    """Total (bid-to-ask) spread of Avellaneda & Stoikov (2008), eq. (30):

        spread = gamma * sigma**2 * tau + (2 / gamma) * ln(1 + gamma / k)

    It does not depend on the inventory: all the inventory control is in where
    the spread is centred (see `avellaneda_stoikov`).

    Units: prices in any unit (the strategies use ticks, the stylized model
    dollars); `sigma` in price units per sqrt(time unit); `tau` = T - t, the
    time left, in the same time unit; `k` (decay of the fill intensity
    A exp(-k delta) with the distance delta of the quote from the mid) in
    1 / price unit; `gamma` (risk aversion) in 1 / price unit (per unit of
    inventory). The result is in price units.

    Raises ValueError naming the parameter unless gamma > 0, k > 0, sigma >= 0
    and tau >= 0 (all finite).
    """
    scalar = _is_scalar(gamma, sigma, k, tau)
    g = _param("gamma", gamma, positive=True)
    s = _param("sigma", sigma, positive=False)
    kk = _param("k", k, positive=True)
    t = _param("tau", tau, positive=False)
    log1p, _ = _math(scalar)
    spread = g * s * s * t + (2.0 / g) * log1p(g / kk)
    return _out(spread, scalar)


def avellaneda_stoikov(mid, inventory, gamma, sigma, k, tau):
    """Avellaneda & Stoikov (2008) quotes -> (bid, ask).

    Reservation price (eq. 29) r = mid - inventory * gamma * sigma**2 * tau;
    total spread from `avellaneda_stoikov_spread` (eq. 30); the quotes are
    centred on r: bid = r - spread / 2, ask = r + spread / 2. A long inventory
    (> 0) moves both quotes down, so the ask is likelier to be hit.

    Units as in `avellaneda_stoikov_spread`: `mid`, bid and ask in price units
    (the strategy uses ticks), `inventory` in the units gamma is per (lots for
    the strategy, shares in the paper), sigma in price units per sqrt(time
    unit), tau in the same time unit, k and gamma in 1 / price unit.

    `mid` and `inventory` may be arrays (e.g. one entry per simulated path);
    every argument broadcasts. Floats in, floats out.
    """
    scalar = _is_scalar(mid, inventory, gamma, sigma, k, tau)
    spread = _num(avellaneda_stoikov_spread(gamma, sigma, k, tau), scalar)
    g, s, t = _num(gamma, scalar), _num(sigma, scalar), _num(tau, scalar)
    r = _num(mid, scalar) - _num(inventory, scalar) * g * s * s * t
    half = spread / 2.0
    return _out(r - half, scalar), _out(r + half, scalar)


def glft_coefficients(gamma, k, A, order_qty=1, *, xi=None):
    """The two coefficients (c1, c2) of the GLFT closed-form quotes (see `glft`):

        c1 = 1 / (xi * Delta) * ln(1 + xi * Delta / k)
        c2 = sqrt( gamma / (2 * A * Delta * k) * (1 + xi * Delta / k) ** (k / (xi * Delta) + 1) )

    with Delta = order_qty and xi = gamma unless given. c1 is in price units,
    c2 in 1 / sqrt(time unit) per unit of inventory (sigma * c2 is a price per
    unit of inventory).
    """
    scalar = _is_scalar(gamma, k, A, order_qty) and (xi is None or _is_scalar(xi))
    g = _param("gamma", gamma, positive=True)
    kk = _param("k", k, positive=True)
    a = _param("A", A, positive=True)
    d = _param("order_qty", order_qty, positive=True)
    x = g if xi is None else _param("xi", xi, positive=True)
    xd = x * d
    log1p, sqrt = _math(scalar)
    c1 = log1p(xd / kk) / xd
    c2 = sqrt(g / (2.0 * a * d * kk) * (1.0 + xd / kk) ** (kk / xd + 1.0))
    return _out(c1, scalar), _out(c2, scalar)


def glft(mid, inventory, gamma, sigma, k, A, order_qty=1, *, xi=None):
    """Gueant-Lehalle-Fernandez-Tapia closed-form quotes -> (bid, ask).

    The asymptotic (T - t -> infinity, so no horizon) closed-form approximation
    of the optimal quotes of the Avellaneda-Stoikov problem, as stated in
    O. Gueant, "Optimal market making", Applied Mathematical Finance 24(2),
    2017 (arXiv:1605.01862), eqs. (4.6)-(4.7), which generalise Gueant, Lehalle
    and Fernandez-Tapia, "Dealing with the inventory risk: a solution to the
    market making problem", Mathematics and Financial Economics 7(4), 2013,
    477-507 (section 4; their form is the case xi = gamma, Delta = 1):

        delta_bid(q) = c1 + (2q + Delta) / 2 * sigma * c2
        delta_ask(q) = c1 - (2q - Delta) / 2 * sigma * c2
        c1 = 1 / (xi Delta) * ln(1 + xi Delta / k)
        c2 = sqrt( gamma / (2 A Delta k) * (1 + xi Delta / k) ** (k / (xi Delta) + 1) )

    bid = mid - delta_bid, ask = mid + delta_ask. So the half-spread is
    c1 + Delta / 2 * sigma * c2 and each unit of inventory skews both quotes
    down by sigma * c2. Delta = `order_qty` is the size of each order and
    `inventory` q is in the same quantity unit; xi = gamma (the CARA
    objective, Gueant's usual choice) unless `xi` is given. (The same layout
    is restated in hftbacktest's "GLFT Market Making Model and Grid Trading"
    tutorial.)

    Units: prices (mid, bid, ask, 1/k) in any one unit (ticks for the
    strategy); sigma in price units per sqrt(time unit); A (fill intensity at
    the mid, lambda(delta) = A exp(-k delta)) in 1 / time unit, the same time
    unit as sigma; k in 1 / price unit; gamma and xi in 1 / (price unit x
    quantity unit).

    Raises ValueError naming the parameter unless gamma, k, A, order_qty (and
    xi) are > 0 and sigma >= 0. Floats in, floats out; arrays broadcast.
    """
    scalar = _is_scalar(mid, inventory, gamma, sigma, k, A, order_qty) and (xi is None or _is_scalar(xi))
    s = _param("sigma", sigma, positive=False)
    c1, c2 = glft_coefficients(gamma, k, A, order_qty, xi=xi)
    d, q, m = _num(order_qty, scalar), _num(inventory, scalar), _num(mid, scalar)
    skew = s * _num(c2, scalar)
    c1 = _num(c1, scalar)
    delta_bid = c1 + (2.0 * q + d) / 2.0 * skew
    delta_ask = c1 - (2.0 * q - d) / 2.0 * skew
    return _out(m - delta_bid, scalar), _out(m + delta_ask, scalar)
