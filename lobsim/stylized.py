"""The stylized Avellaneda-Stoikov (2008) market-making model, vectorized over paths.

M. Avellaneda and S. Stoikov, "High-frequency trading in a limit order book",
Quantitative Finance 8(3), 2008, 217-224, section 3.3. No order book: the mid
is a symmetric random walk and fills are coin flips whose probability decays
with the distance of the quote from the mid. It checks the quote functions of
`lobsim.strategies.quotes` against the paper's Tables 1-3 (tests/test_stylized.py)
and shows in seconds what inventory skew buys, before any data is involved.
"""
import math

import numpy as np

from lobsim import _args
from lobsim.strategies import quotes

__all__ = ["avellaneda_stoikov_2008"]

_STRATEGIES = ("inventory", "symmetric")
_FILL_MODELS = ("paper", "poisson")


def _simulate(gamma, strategy, paths, seed, s0, T, sigma, dt, k, A, n_steps, fill_model, spread=None):
    rng = np.random.default_rng(seed)
    s = np.full(paths, s0, dtype=float)
    q = np.zeros(paths)
    cash = np.zeros(paths)
    step = sigma * math.sqrt(dt)
    spread_sum = 0.0
    for i in range(n_steps):
        tau = T - i * dt
        if strategy == "inventory":
            bid, ask = quotes.avellaneda_stoikov(s, q, gamma, sigma, k, tau)
            spread_sum += float(np.mean(ask - bid))
        else:  # symmetric: a constant spread centred on the mid
            bid, ask = s - spread / 2.0, s + spread / 2.0
        # One draw per path for each of: bid fill, ask fill, mid move (fixed order,
        # so both strategies see the same mid path and uniforms for a seed).
        u = rng.random((3, paths))
        lam_bid = A * np.exp(-k * (s - bid))
        lam_ask = A * np.exp(-k * (ask - s))
        if fill_model == "paper":  # the paper's lambda dt (a sure fill once it reaches 1)
            p_bid, p_ask = lam_bid * dt, lam_ask * dt
        else:  # exact Poisson: at least one arrival within dt
            p_bid, p_ask = -np.expm1(-lam_bid * dt), -np.expm1(-lam_ask * dt)
        hit_bid = u[0] < p_bid
        hit_ask = u[1] < p_ask
        cash += np.where(hit_ask, ask, 0.0) - np.where(hit_bid, bid, 0.0)
        q += hit_bid.astype(float) - hit_ask.astype(float)
        s += np.where(u[2] < 0.5, step, -step)
    profit = cash + q * s
    return {
        "spread": spread_sum / n_steps if strategy == "inventory" else float(spread),
        "profit_mean": float(np.mean(profit)),
        "profit_std": float(np.std(profit, ddof=1)) if paths > 1 else 0.0,
        "final_q_mean": float(np.mean(q)),
        "final_q_std": float(np.std(q, ddof=1)) if paths > 1 else 0.0,
        "profit": profit,
        "final_q": q,
    }


def avellaneda_stoikov_2008(gamma, strategy="inventory", paths=1000, seed=0, s0=100, T=1, sigma=2,
                            dt=0.005, k=1.5, A=140, *, fill_model="paper", samples=False):
    """Simulate the paper's section 3.3 experiment; returns a dict of its table's columns.

    Model (per path, steps t = 0, dt, ..., T - dt; T / dt steps, 200 by default):
    quote a bid and an ask from the state (mid s, inventory q, time left T - t);
    each side is filled (one unit, at the quote) with probability
    A exp(-k delta) dt, delta the distance of that quote from the mid, both
    sides independently; then the mid moves by +sigma sqrt(dt) or
    -sigma sqrt(dt) with probability 1/2 each. Profit = cash + q * s_T at T.

    strategy="inventory" quotes `quotes.avellaneda_stoikov(s, q, gamma, sigma,
    k, T - t)` (the same function the `AvellanedaStoikov` strategy uses):
    centred on the reservation price, skewed by the inventory.
    strategy="symmetric" quotes the inventory strategy's average spread (of the
    inventory run with the same parameters and seed), held constant and centred
    on the mid: the paper's benchmark.

    fill_model="paper" (the default, reproduces the tables) is the paper's
    "probability lambda dt": A dt = 0.7 at the defaults, so it is not a small
    probability, and it reaches 1 (a sure fill) for quotes more than
    ln(1 / (A dt)) / k through the mid. fill_model="poisson" uses the exact
    probability of at least one Poisson arrival, 1 - exp(-A exp(-k delta) dt),
    which fills less and earns about 12% less (README).

    Deterministic for a seed (numpy's default_rng(seed)); both strategies draw
    the same uniforms, so they see the same mid paths. Vectorized over paths:
    a Python loop over the steps only, O(paths * T / dt).

    Returns {"spread": average total spread quoted (over steps and paths),
    "profit_mean", "profit_std", "final_q_mean", "final_q_std"} (sample
    standard deviations, ddof=1), plus the per-path arrays "profit" and
    "final_q" when samples=True.

    Raises ValueError naming the parameter: gamma, k, A, T, dt must be > 0,
    sigma >= 0, paths >= 1, T / dt a whole number of steps, strategy and
    fill_model known; TypeError for a non-number.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}, got {strategy!r}")
    if fill_model not in _FILL_MODELS:
        raise ValueError(f"fill_model must be one of {', '.join(map(repr, _FILL_MODELS))}, got {fill_model!r}")
    gamma = _args.real("gamma", gamma)
    k = _args.real("k", k)
    A = _args.real("A", A)
    T = _args.real("T", T)
    dt = _args.real("dt", dt)
    for name, value in (("gamma", gamma), ("k", k), ("A", A), ("T", T), ("dt", dt)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    sigma = _args.real("sigma", sigma, lo=0.0)
    s0 = _args.real("s0", s0)
    paths = _args.integer("paths", paths, lo=1)
    seed = _args.seed(seed)
    n_steps = round(T / dt)
    if n_steps < 1 or abs(n_steps * dt - T) > 1e-9 * T:
        raise ValueError(f"dt must divide T into a whole number of steps, got T={T}, dt={dt}")

    run = dict(paths=paths, seed=seed, s0=s0, T=T, sigma=sigma, dt=dt, k=k, A=A, n_steps=n_steps,
               fill_model=fill_model)
    result = _simulate(gamma, "inventory", **run)
    if strategy == "symmetric":
        result = _simulate(gamma, "symmetric", spread=result["spread"], **run)
    if not samples:
        del result["profit"], result["final_q"]
    return result
