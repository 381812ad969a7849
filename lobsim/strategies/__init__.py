"""Shipped strategies, plain Python on `lobsim.Strategy`, and their closed-form quotes.

- `AvellanedaStoikov(gamma, k, sigma=None, horizon_ns=None, ...)`: Avellaneda & Stoikov (2008).
- `GLFT(gamma, k, A, sigma=None, ...)`: the Gueant-Lehalle-Fernandez-Tapia closed form.
- `MeanReversion(lookback, entry_z, exit_z, stop_z, ...)`: z-score mean reversion of the mid.
- `TrendFollowing(fast, slow, order_qty, stop_ticks, ...)`: moving-average crossover with a protective stop.
- `quotes`: the pure, vectorized quote formulas all of them (and lobsim.stylized) use.

Prices in ticks, quantities in lots, time in seconds; `lobsim.calibrate` returns
sigma, A and k in these units.
"""
from lobsim.strategies import quotes
from lobsim.strategies.market_making import GLFT, AvellanedaStoikov
from lobsim.strategies.mean_reversion import MeanReversion
from lobsim.strategies.trend import TrendFollowing

__all__ = ["AvellanedaStoikov", "GLFT", "MeanReversion", "TrendFollowing", "quotes"]
