"""lobsim.stylized: Tables 1-3 of Avellaneda & Stoikov (2008) reproduced within sampling error.

The paper's numbers are from the published article (Quantitative Finance 8(3),
2008, 217-224, Tables 1-3, pp. 222-223; the author's copy is
math.nyu.edu/~avellane/HighFrequencyTrading.pdf). The 2006 working-paper
version prints different tables (spread 1.29, profit 62.94, ... and gamma 0.5
in its Table 3); those are not the ones reproduced here.

Tolerances. The paper's figures are themselves the outcome of one run of 1000
paths, and so are ours (seed 0, paths=1000), so every comparison is a
difference of two independent estimates; each must lie within 4 standard
errors of that difference, plus half a unit in the paper's last printed digit
(its rounding):

- spread: deterministic (the quoted spread does not depend on the path). Ours
  is the average over the 200 quoting times t = 0, dt, ..., T - dt; the
  paper's 3.02 at gamma = 1 is the continuous-time average
  gamma sigma^2 T / 2 + (2/gamma) ln(1 + gamma/k). The two differ by
  gamma sigma^2 dt / 2 (0.01 at gamma = 1), so the tolerance is that plus the
  rounding 0.005; a second test checks ours against the discrete closed form
  to 1e-12.
- means (profit, final q): SE of the difference = sqrt(s_ours^2 + s_paper^2) / sqrt(n),
  both standard deviations known (ours measured, the paper's printed).
- standard deviations (profit, final q): the standard error of a sample
  standard deviation is s * sqrt((kurtosis - 1) / (4 n)) (delta method;
  sqrt(1 / (2n)), 2.2%, for a normal sample); the kurtosis is measured on our
  sample (the symmetric strategy's profit has kurtosis about 5, so its SE is
  about 3.3%, not 2.2%), and the paper's run is taken to have the same SE, so
  the SE of the difference is sqrt(2) times it: about 3-3.5% for q and 3-5%
  for the profit, a tolerance of 12-19% relative at 4 SE.

Over seeds 0..49 the largest deviation was 2.7 SE, so the seed-0 test is not
tuned to its seed. It was the symmetric strategy's profit std, the one
systematic gap: 13.3 and 13.5 at gamma 0.1 and 0.01 with 20,000 paths against
the paper's 12.7 and 12.8 (other reproductions find the same).
"""
import math

import numpy as np
import pytest

from lobsim import stylized
from lobsim.stylized import avellaneda_stoikov_2008
from lobsim.strategies import quotes

N = 1000
SIGMA, DT, T, K = 2.0, 0.005, 1.0, 1.5

# gamma -> strategy -> (spread, profit mean, profit std, final q mean, final q std)
PAPER = {
    0.1: {"inventory": (1.49, 65.0, 6.6, 0.08, 2.9), "symmetric": (1.49, 68.4, 12.7, 0.26, 8.4)},    # Table 1
    0.01: {"inventory": (1.35, 68.6, 8.7, 0.12, 5.1), "symmetric": (1.35, 68.8, 12.8, 0.09, 8.7)},   # Table 2
    1.0: {"inventory": (3.02, 31.4, 5.0, 0.02, 1.7), "symmetric": (3.02, 44.0, 11.0, 0.00, 5.1)},    # Table 3
}
# half a unit in the last printed digit: (spread, profit, profit std, q, q std)
ROUNDING = (0.005, 0.05, 0.05, 0.005, 0.05)
Z = 4.0

ROWS = [(g, s) for g in PAPER for s in ("inventory", "symmetric")]


def _kurtosis(x):
    d = x - x.mean()
    return float(np.mean(d ** 4) / np.mean(d ** 2) ** 2)


def _std_se(x):
    """Standard error of the sample standard deviation of x (delta method)."""
    return float(np.std(x, ddof=1) * math.sqrt((_kurtosis(x) - 1.0) / (4 * len(x))))


@pytest.fixture(scope="module")
def runs():
    return {(g, s): avellaneda_stoikov_2008(g, s, paths=N, seed=0, samples=True) for g, s in ROWS}


@pytest.mark.parametrize("gamma, strategy", ROWS)
def test_reproduces_the_paper(runs, gamma, strategy):
    r = runs[gamma, strategy]
    spread, pm, ps, qm, qs = PAPER[gamma][strategy]
    rs, rpm, rps, rqm, rqs = ROUNDING
    failures = []

    def check(what, ours, paper, tol):
        if not abs(ours - paper) <= tol:
            failures.append(f"{what}: ours {ours:.4f} vs paper {paper} (tolerance {tol:.4f})")

    check("spread", r["spread"], spread, gamma * SIGMA ** 2 * DT / 2 + rs)
    check("profit mean", r["profit_mean"], pm, Z * math.hypot(r["profit_std"], ps) / math.sqrt(N) + rpm)
    check("final q mean", r["final_q_mean"], qm, Z * math.hypot(r["final_q_std"], qs) / math.sqrt(N) + rqm)
    check("profit std", r["profit_std"], ps, Z * math.sqrt(2) * _std_se(r["profit"]) + rps)
    check("final q std", r["final_q_std"], qs, Z * math.sqrt(2) * _std_se(r["final_q"]) + rqs)
    assert not failures, f"gamma={gamma} {strategy}: " + "; ".join(failures)


@pytest.mark.parametrize("gamma", list(PAPER))
def test_the_papers_conclusions(runs, gamma):
    inv, sym = runs[gamma, "inventory"], runs[gamma, "symmetric"]
    # the symmetric strategy earns a little more, at a much larger risk
    assert sym["profit_mean"] > inv["profit_mean"]
    assert sym["profit_std"] > 1.4 * inv["profit_std"]
    assert sym["final_q_std"] > 1.6 * inv["final_q_std"]


@pytest.mark.parametrize("gamma", list(PAPER))
def test_spread_is_the_discrete_average_of_eq30(runs, gamma):
    n_steps = round(T / DT)
    expected = gamma * SIGMA ** 2 * (T - DT * (n_steps - 1) / 2) + (2 / gamma) * math.log1p(gamma / K)
    assert runs[gamma, "inventory"]["spread"] == pytest.approx(expected, abs=1e-12)
    taus = T - DT * np.arange(n_steps)
    assert expected == pytest.approx(float(np.mean(quotes.avellaneda_stoikov_spread(gamma, SIGMA, K, taus))), abs=1e-12)


@pytest.mark.parametrize("gamma", list(PAPER))
def test_symmetric_quotes_the_inventory_average_spread(runs, gamma):
    assert runs[gamma, "symmetric"]["spread"] == runs[gamma, "inventory"]["spread"]
    # and with other parameters/seeds too
    kw = dict(paths=50, seed=7, sigma=1.3, k=2.0, A=90, dt=0.01)
    assert (avellaneda_stoikov_2008(gamma, "symmetric", **kw)["spread"]
            == avellaneda_stoikov_2008(gamma, "inventory", **kw)["spread"])


def test_inventory_strategy_drives_the_shared_quote_function(monkeypatch):
    calls = []
    real = quotes.avellaneda_stoikov

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(quotes, "avellaneda_stoikov", spy)
    avellaneda_stoikov_2008(0.1, "inventory", paths=3, seed=1)
    assert len(calls) == 200
    mid, q, gamma, sigma, k, tau = calls[0]
    assert mid.shape == (3,) and gamma == 0.1 and sigma == 2 and k == 1.5 and tau == 1.0
    assert calls[-1][5] == pytest.approx(0.005)
    assert stylized.quotes is quotes


def test_deterministic_for_a_seed():
    a = avellaneda_stoikov_2008(0.1, "symmetric", paths=200, seed=5, samples=True)
    b = avellaneda_stoikov_2008(0.1, "symmetric", paths=200, seed=5, samples=True)
    c = avellaneda_stoikov_2008(0.1, "symmetric", paths=200, seed=6, samples=True)
    np.testing.assert_array_equal(a["profit"], b["profit"])
    np.testing.assert_array_equal(a["final_q"], b["final_q"])
    assert {k: a[k] for k in ("profit_mean", "profit_std")} == {k: b[k] for k in ("profit_mean", "profit_std")}
    assert not np.array_equal(a["profit"], c["profit"])


def test_result_keys():
    r = avellaneda_stoikov_2008(0.1, paths=10)
    assert set(r) == {"spread", "profit_mean", "profit_std", "final_q_mean", "final_q_std"}
    assert all(type(v) is float for v in r.values())
    r = avellaneda_stoikov_2008(0.1, paths=10, samples=True)
    assert r["profit"].shape == (10,) and r["final_q"].shape == (10,)


def test_exact_poisson_fills_earn_about_twelve_percent_less():
    paper = avellaneda_stoikov_2008(0.1, "inventory")
    exact = avellaneda_stoikov_2008(0.1, "inventory", fill_model="poisson")
    assert 0.85 < exact["profit_mean"] / paper["profit_mean"] < 0.92
    assert exact["spread"] == paper["spread"]


@pytest.mark.parametrize("kwargs, name", [
    (dict(gamma=0), "gamma"), (dict(gamma=-0.1), "gamma"), (dict(gamma=float("nan")), "gamma"),
    (dict(k=0), "k"), (dict(A=0), "A"), (dict(T=0), "T"), (dict(dt=0), "dt"), (dict(dt=0.003), "dt"),
    (dict(dt=2.0), "dt"), (dict(sigma=-1), "sigma"), (dict(paths=0), "paths"), (dict(paths=2.5), "paths"),
    (dict(strategy="naive"), "strategy"), (dict(fill_model="exact"), "fill_model"), (dict(seed=-1), "seed"),
    (dict(s0=float("inf")), "s0"),
])
def test_rejects_bad_parameters(kwargs, name):
    args = dict(gamma=0.1, paths=2) | kwargs
    with pytest.raises(ValueError, match=rf"^{name} must"):
        avellaneda_stoikov_2008(**args)


def test_rejects_non_numbers():
    with pytest.raises(TypeError, match="gamma"):
        avellaneda_stoikov_2008("0.1")
    with pytest.raises(TypeError, match="paths"):
        avellaneda_stoikov_2008(0.1, paths=True)
