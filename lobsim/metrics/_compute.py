"""The metrics of a backtest result (numpy only; no C, no pyarrow).

Every definition is in compute()'s docstring and the README ("Metrics and
reports"). Prices are integer ticks and quantities integer lots in the
result's tables; currency values use value_per_tick_lot = tick_size *
lot_size of result.instrument (the currency value of one lot moving one
tick). Whatever is undefined (no fills, a zero deviation, no limit) is NaN,
never 0.
"""
import math

import numpy as np

from lobsim import _args
from lobsim._types import OrderState
from lobsim.metrics._dtypes import MARKOUTS_DTYPE, N_HORIZONS

YEAR_NS = 365 * 24 * 3600 * 10**9  # crypto trades 24/7: a calendar year of venue time
DAY_NS = 24 * 3600 * 10**9
KIND_FILL, KIND_TIMER, KIND_SAMPLE = 1, 2, 3  # result.position["kind"]
_REQ_NEW = 0
_RISK = 8  # RejectReason.RISK
_ACCEPTED = int(OrderState.ACCEPTED)
_AT_VENUE = np.array([int(s) for s in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                                       OrderState.CANCELLED, OrderState.EXPIRED)], dtype=np.uint8)
_ENDS = np.array([int(s) for s in (OrderState.FILLED, OrderState.CANCELLED, OrderState.EXPIRED)], dtype=np.uint8)
_NAN = float("nan")


def horizon_name(ns):
    """A markout horizon as written in metric names: 100_000_000 -> '100ms', 60e9 -> '60s',
    1_500_000_000 -> '1500ms' (the largest of s, ms, us, ns that divides it)."""
    ns = int(ns)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def value_per_tick_lot(instrument):
    """Currency value of one lot moving one tick: tick_size * lot_size, as a float."""
    return float(instrument.tick_size * instrument.lot_size)


def per_fill_markouts(fills, mid2, after2, n_horizons):
    """The MARKOUTS_DTYPE table of `fills` (FILLS_DTYPE) given the venue's bid + ask at
    each fill (mid2, ticks x 2) and after each horizon (after2, shape (n, 4)); 0 = unknown.

    spread = side * (mid2 / 2 - price) and markout[h] = side * (after2[h] / 2 - price),
    in ticks (side +1 buy, -1 sell): positive is good for the user. NaN where the mid is
    unknown and in the columns h >= n_horizons (unused; their after2 is set to 0)."""
    n = len(fills)
    out = np.zeros(n, dtype=MARKOUTS_DTYPE)
    out["ts"] = fills["ts_exch"]
    out["mid2"] = mid2
    out["after2"] = after2
    out["after2"][:, n_horizons:] = 0
    side = fills["side"].astype(np.float64)
    price = fills["price"].astype(np.float64)
    m2 = out["mid2"].astype(np.float64)
    a2 = out["after2"].astype(np.float64)
    out["spread"] = np.where(out["mid2"] != 0, side * (m2 / 2 - price), np.nan)
    out["markout"] = np.where(out["after2"] != 0, side[:, None] * (a2 / 2 - price[:, None]), np.nan)
    return out


# (key, unit, one-line meaning): the order of compute()'s dict and of summary().
# The markout_<h> keys follow markouts_ns and are added after these.
METRICS = [
    ("pnl", "currency", "final equity: cash + position x mid x value_per_tick_lot (fees included)"),
    ("realized_pnl", "currency", "average-cost realized trading gains, before fees"),
    ("unrealized_pnl", "currency", "final position x (final mid - average cost), before fees"),
    ("fees", "currency", "fees paid (negative: net rebate); pnl = realized + unrealized - fees"),
    ("sharpe", "", "mean / std (ddof 1) of per-sample equity changes x sqrt(periods per year)"),
    ("sortino", "", "mean / downside deviation of per-sample equity changes x sqrt(periods per year)"),
    ("max_drawdown", "currency", "largest drop of sampled equity from its running peak"),
    ("annual_return", "currency/yr", "mean per-sample equity change x periods per year"),
    ("calmar", "", "annual_return / max_drawdown"),
    ("var_95", "currency", "historical VaR 95%: the m-th largest per-sample loss, m = ceil(5% of samples)"),
    ("cvar_95", "currency", "historical CVaR 95%: mean of the m largest per-sample losses"),
    ("var_99", "currency", "historical VaR 99% (m = ceil(1% of samples))"),
    ("cvar_99", "currency", "historical CVaR 99%"),
    ("fills", "", "number of fills"),
    ("maker_fills", "", "fills of resting orders"),
    ("taker_fills", "", "fills taking liquidity"),
    ("maker_volume", "lots", "quantity filled as maker"),
    ("taker_volume", "lots", "quantity filled as taker"),
    ("traded_value", "currency", "sum of price x qty x value_per_tick_lot"),
    ("turnover_per_day", "cur/day", "traded_value per day of the data span (24 h days)"),
    ("orders", "", "orders sent (not those the risk gateway refused)"),
    ("orders_accepted", "", "orders the venue accepted"),
    ("orders_rejected", "", "orders the venue rejected (not those the risk gateway refused)"),
    ("posted_volume", "lots", "quantity of the accepted orders (largest after modifies)"),
    ("risk_rejections", "", "requests refused by the pre-trade risk gateway (Backtest(risk=))"),
    ("fill_ratio", "", "filled quantity / posted quantity"),
    ("spread_captured", "ticks", "mean over fills of side x (mid at fill - price)"),
    ("spread_captured_value", "currency", "sum over fills of side x (mid at fill - price) x qty x value"),
    ("inventory_mean", "lots", "time-weighted mean position over the data span"),
    ("inventory_std", "lots", "time-weighted standard deviation of the position"),
    ("inventory_abs_max", "lots", "largest |position| after any fill"),
    ("inventory_limit", "lots", "the limit time_at_limit uses (strategy's max_inventory)"),
    ("time_at_limit", "share", "share of the data span with |position| >= inventory_limit"),
    ("exposure", "share", "share of the data span with a non-zero position"),
    ("quote_presence_bid", "share", "share of the data span with a resting user bid"),
    ("quote_presence_ask", "share", "share of the data span with a resting user ask"),
    ("duration_s", "s", "data span: first to last event, venue time"),
    ("sample_ns", "ns", "equity sampling interval"),
    ("periods_per_year", "", "sampling periods per year used to annualize"),
]
MARKOUT_UNIT = "ticks"
MARKOUT_MEANING = "mean over fills of side x (mid {h} after the fill - price)"


def compute(result, *, inventory_limit=None, periods_per_year=None):
    """The metrics of a BacktestResult as a dict of floats and ints (NaN where undefined).

    Units: currency = the instrument's quote currency; value_per_tick_lot =
    tick_size * lot_size (currency per lot per tick); mid = (bid + ask) / 2
    of the VENUE book; side = +1 for a buy, -1 for a sell.

    PnL. equity = cash + position * mid * value_per_tick_lot, where cash (from
    the simulator) is -signed traded value - fees. pnl: equity at the end
    (the account after the last fill, marked to the last known venue mid),
    fees included. realized_pnl / unrealized_pnl: average-cost accounting
    over the fills (a fill that adds to the position moves the average cost;
    one that reduces it realizes (price - average cost) * closed qty * sign
    of the position; a flip opens at the fill price); unrealized = final
    position * (final mid - average cost). Both before fees, so pnl =
    realized_pnl + unrealized_pnl - fees exactly (up to float rounding).

    Risk, on the equity samples (result.position rows of kind 3, one every
    result.sample_ns of venue time, mid forward-filled where a side was
    empty): d = the per-sample equity changes (currency). sharpe = mean(d) /
    std(d, ddof=1) * sqrt(P); sortino = mean(d) / sqrt(mean(min(d, 0)^2)) *
    sqrt(P); P = periods_per_year, default 365 * 24 * 3600e9 / sample_ns
    (24/7 markets). These are of currency changes, not returns (a market
    maker has no natural capital base). max_drawdown = max over samples of
    (running peak of equity - equity), currency, >= 0. annual_return =
    mean(d) * P (currency per year); calmar = annual_return / max_drawdown,
    NaN when the drawdown is 0. Historical VaR and CVaR of the interval PnL:
    the losses are -d (positive = a loss); with n samples of d and m =
    ceil(n * (1 - level)) (at least 1), var_<level> = the m-th largest loss and
    cvar_<level> = the mean of the m largest losses (>= var), for levels 95%
    and 99%; NaN without any d. A negative value: even the tail gained.

    turnover_per_day = traded_value / (data span in days of 24 h), currency
    per day (NaN when the span is 0); traded_value is the total.
    risk_rejections = len(result.risk_rejections) (0 without risk limits).

    Trading. fills, maker/taker fills and volume (lots); fill_ratio =
    filled qty / posted qty, posted = the qty of every order the venue
    ACCEPTED (the largest qty it had after modifies; market, IOC and FOK
    orders included); spread_captured = mean over fills of side * (mid at
    the fill - fill price), in ticks (positive: bought below / sold above
    the mid); spread_captured_value = sum of that * qty * value_per_tick_lot,
    currency. The mid at a fill is the venue book's when the fill happened
    (before the data event that caused it is applied).

    Inventory, exact from the fills over the data span [first event,
    last event] of venue time (the position is a step function changing at
    fills): inventory_mean and inventory_std are time-weighted (population
    std); inventory_abs_max = max |position| after any fill; time_at_limit =
    share of the span with |position| >= inventory_limit (NaN without one;
    default result.inventory_limit, the strategy's max_inventory); exposure =
    share of the span with position != 0.

    quote_presence_bid / _ask: share of the data span with at least one
    resting user order on that side: an order rests from its ACCEPTED row's
    venue time to its first FILLED / CANCELLED / EXPIRED row (or the end of
    the data).

    Markouts: for each fill and horizon h of result.markouts_ns, markout =
    side * (mid at fill time + h - fill price), in ticks: positive is good
    for the user (a buy followed by a higher mid). It includes the spread
    captured (at h = 0 it equals it); the drop from spread_captured to a
    markout is the adverse selection. markout_<h> (e.g. markout_100ms) =
    the mean over the fills whose mid at t + h is known (unknown past the end
    of the data). Per-fill values: result.markouts["markout"][:, h].

    O(fills + orders + samples), plus a Python loop over the fills for the
    average cost.
    """
    if inventory_limit is None:
        inventory_limit = getattr(result, "inventory_limit", None)
    if inventory_limit is not None:
        inventory_limit = _args.real("inventory_limit", inventory_limit)
        if inventory_limit <= 0:
            raise ValueError(f"inventory_limit must be > 0 (lots), got {inventory_limit}")
    sample_ns = int(getattr(result, "sample_ns", 0) or 0)
    if periods_per_year is not None:
        periods_per_year = _args.real("periods_per_year", periods_per_year)
        if periods_per_year <= 0:
            raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
    elif sample_ns > 0:
        periods_per_year = YEAR_NS / sample_ns
    else:
        periods_per_year = _NAN
    vpt = value_per_tick_lot(result.instrument)
    start, end = _span(result)

    m = {}
    m.update(_pnl(result, vpt))
    m.update(_risk(result, vpt, periods_per_year))
    m.update(_trading(result, vpt))
    m.update(_inventory(result.fills, start, end, inventory_limit))
    m.update(_presence(result.orders, start, end))
    m["duration_s"] = (end - start) / 1e9 if start is not None else _NAN
    m["turnover_per_day"] = m["traded_value"] / ((end - start) / DAY_NS) if start is not None and end > start \
        else _NAN
    rej = getattr(result, "risk_rejections", None)
    m["risk_rejections"] = 0 if rej is None else int(len(rej))
    m["sample_ns"] = sample_ns
    m["periods_per_year"] = float(periods_per_year)
    out = {key: m[key] for key, _, _ in METRICS}
    out.update(_markout_means(result))
    return out


def _span(result):
    """[first, last] data event in venue time; from the recorded rows if the result lacks it."""
    start, end = getattr(result, "data_start_ns", None), getattr(result, "data_end_ns", None)
    if start is not None and end is not None:
        return int(start), int(end)
    ts = np.concatenate([result.position["ts"][result.position["kind"] != KIND_TIMER], result.fills["ts_exch"]])
    if not len(ts):
        return None, None
    return int(ts.min()), int(ts.max())


def _mids(rows):
    """(bid + ask) / 2 in ticks of position rows; NaN where a side is empty."""
    ok = (rows["bid"] != 0) & (rows["ask"] != 0)
    return np.where(ok, (rows["bid"].astype(np.float64) + rows["ask"].astype(np.float64)) / 2, np.nan)


def final_mid(result):
    """The last known venue mid (ticks) among the fill and sample rows, by time; NaN if none."""
    rows = result.position[(result.position["kind"] == KIND_FILL) | (result.position["kind"] == KIND_SAMPLE)]
    rows = rows[np.argsort(rows["ts"], kind="stable")]
    mid = _mids(rows)
    known = np.flatnonzero(~np.isnan(mid))
    return float(mid[known[-1]]) if len(known) else _NAN


def _pnl(result, vpt):
    f = result.fills
    fees = float(f["fee"].sum()) if len(f) else 0.0
    if not len(f):
        return {"pnl": 0.0, "realized_pnl": 0.0, "unrealized_pnl": 0.0, "fees": fees}
    mid = final_mid(result)
    q_end, cash_end = int(f["position"][-1]), float(f["cash"][-1])
    q, avg, realized = 0, 0.0, 0.0  # position (lots), average cost (ticks), realized (ticks x lots)
    for side, price, qty in zip(f["side"].tolist(), f["price"].tolist(), f["qty"].tolist()):
        if q == 0 or (q > 0) == (side > 0):
            avg = (avg * abs(q) + price * qty) / (abs(q) + qty)
            q += side * qty
            continue
        closed = min(qty, abs(q))
        realized += closed * (price - avg) * (1 if q > 0 else -1)
        q += side * qty
        if q == 0:
            avg = 0.0
        elif (q > 0) == (side > 0):  # flipped: the rest opens at the fill price
            avg = float(price)
    unrealized = 0.0 if q_end == 0 else q_end * (mid - avg) * vpt
    pnl = cash_end if q_end == 0 else cash_end + q_end * mid * vpt
    return {"pnl": pnl, "realized_pnl": realized * vpt, "unrealized_pnl": unrealized, "fees": fees}


def equity_curve(result):
    """(ts, equity) on the equity samples (position rows of kind 3): venue time (ns) and
    cash + position * mid * value_per_tick_lot (currency), the mid forward-filled where a
    side of the book was empty; samples whose equity is unknown (a position and no mid
    yet) are left out."""
    rows = result.position[result.position["kind"] == KIND_SAMPLE]
    rows = rows[np.argsort(rows["ts"], kind="stable")]
    mid = _mids(rows)
    known = ~np.isnan(mid)
    idx = np.where(known, np.arange(len(mid)), -1)
    np.maximum.accumulate(idx, out=idx)  # index of the last known mid at or before each row
    mid = np.where(idx >= 0, mid[np.maximum(idx, 0)], np.nan)
    q = rows["position"]
    equity = rows["cash"] + np.where(q == 0, 0.0, q * mid * value_per_tick_lot(result.instrument))
    ok = ~np.isnan(equity)
    return rows["ts"][ok], equity[ok]


def drawdown(equity):
    """Running peak of equity minus equity (currency, >= 0), per sample."""
    return np.maximum.accumulate(equity) - equity if len(equity) else np.empty(0)


def _risk(result, vpt, ppy):
    _, eq = equity_curve(result)
    d = np.diff(eq)
    sharpe = sortino = annual = _NAN
    if len(d) >= 2:
        sd = float(np.std(d, ddof=1))
        mean = float(np.mean(d))
        if sd > 0:
            sharpe = mean / sd * math.sqrt(ppy)
        down = math.sqrt(float(np.mean(np.minimum(d, 0.0) ** 2)))
        if down > 0:
            sortino = mean / down * math.sqrt(ppy)
    if len(d) >= 1:
        annual = float(np.mean(d)) * ppy
    mdd = float(drawdown(eq).max()) if len(eq) else _NAN
    calmar = annual / mdd if mdd > 0 else _NAN
    out = {"sharpe": sharpe, "sortino": sortino, "max_drawdown": mdd, "annual_return": annual, "calmar": calmar}
    for pct in (95, 99):
        var, cvar = historical_var(d, pct)
        out[f"var_{pct}"], out[f"cvar_{pct}"] = var, cvar
    return out


def historical_var(d, pct):
    """(VaR, CVaR) at pct% (an int, e.g. 95) of the PnL changes d: losses -d sorted from the
    largest, m = ceil(n * (100 - pct) / 100) >= 1; VaR = the m-th largest loss, CVaR = the
    mean of the m largest. (NaN, NaN) when d is empty."""
    n = len(d)
    if not n:
        return _NAN, _NAN
    m = max(1, -(-n * (100 - pct) // 100))  # exact integer ceil
    worst = np.sort(-np.asarray(d, dtype=np.float64))[::-1][:m]
    return float(worst[-1]), float(worst.mean())


def posted_orders(orders):
    """(order ids, posted qty, side) of the orders the venue accepted, sorted by id; the
    posted qty of one is the largest qty its rows at the venue show (a modify changes it)."""
    acc = orders[(orders["state"] == _ACCEPTED) & (orders["request"] == _REQ_NEW)]
    ids, first = np.unique(acc["order_id"], return_index=True)
    sel = np.isin(orders["order_id"], ids) & np.isin(orders["state"], _AT_VENUE)
    rows = orders[sel]
    rows = rows[np.argsort(rows["order_id"], kind="stable")]
    starts = np.flatnonzero(np.r_[True, rows["order_id"][1:] != rows["order_id"][:-1]]) if len(rows) else \
        np.empty(0, np.int64)
    qty = np.maximum.reduceat(rows["qty"], starts) if len(rows) else np.empty(0, np.int64)
    return ids, qty, acc["side"][first]


def _trading(result, vpt):
    f, o = result.fills, result.orders
    maker = f["maker"].astype(bool)
    ids, posted, _ = posted_orders(o)
    posted_qty = int(posted.sum())
    filled = int(f["qty"][np.isin(f["order_id"], ids)].sum())
    spread = result.markouts["spread"] if len(result.markouts) == len(f) else np.full(len(f), np.nan)
    known = ~np.isnan(spread)
    refused = o["order_id"][(o["reason"] == _RISK) & (o["request"] == _REQ_NEW)]  # by the risk gateway
    new = (o["request"] == _REQ_NEW) & ~np.isin(o["order_id"], refused)  # sent to the venue
    return {
        "fills": int(len(f)),
        "maker_fills": int(maker.sum()),
        "taker_fills": int((~maker).sum()),
        "maker_volume": int(f["qty"][maker].sum()),
        "taker_volume": int(f["qty"][~maker].sum()),
        "traded_value": float((f["price"].astype(np.float64) * f["qty"]).sum() * vpt),
        "orders": int(((o["state"] == int(OrderState.NEW)) & new).sum()),
        "orders_accepted": int(len(ids)),
        "orders_rejected": int(((o["state"] == int(OrderState.REJECTED)) & new).sum()),
        "posted_volume": posted_qty,
        "fill_ratio": filled / posted_qty if posted_qty else _NAN,
        "spread_captured": float(spread[known].mean()) if known.any() else _NAN,
        "spread_captured_value": float((spread[known] * f["qty"][known]).sum() * vpt),
    }


def inventory_steps(fills, start, end):
    """(t, position): the position as a step function of venue time on [start, end]:
    position[i] holds from t[i] to t[i + 1] (t[-1] = end, whose own value is unused)."""
    t = np.clip(np.concatenate([[start], fills["ts_exch"], [end]]), start, end)
    q = np.concatenate([[0], fills["position"], [fills["position"][-1] if len(fills) else 0]])
    return t, q


def _inventory(fills, start, end, limit):
    absmax = int(np.abs(fills["position"]).max()) if len(fills) else 0
    out = {"inventory_mean": _NAN, "inventory_std": _NAN, "inventory_abs_max": absmax,
           "inventory_limit": _NAN if limit is None else limit, "time_at_limit": _NAN, "exposure": _NAN}
    if start is None or end <= start:
        return out
    t, q = inventory_steps(fills, start, end)
    w = np.diff(t).astype(np.float64)
    q = q[:-1].astype(np.float64)
    span = float(end - start)
    mean = float((w * q).sum() / span)
    out["inventory_mean"] = mean
    out["inventory_std"] = math.sqrt(float((w * (q - mean) ** 2).sum() / span))
    if limit is not None:
        out["time_at_limit"] = float(w[np.abs(q) >= limit].sum() / span)
    out["exposure"] = float(w[q != 0].sum() / span)
    return out


def resting_intervals(orders, end):
    """(side, begin, finish) arrays: each accepted order rests from its ACCEPTED row's venue
    time to its first FILLED / CANCELLED / EXPIRED row (or `end` if it never got one)."""
    acc = orders[(orders["state"] == _ACCEPTED) & (orders["request"] == _REQ_NEW)]
    acc = acc[np.argsort(acc["order_id"], kind="stable")]
    fin = orders[np.isin(orders["state"], _ENDS)]
    fin = fin[np.lexsort((fin["ts_exch"], fin["order_id"]))]  # by id, earliest first
    ids, first = np.unique(fin["order_id"], return_index=True)
    k = np.minimum(np.searchsorted(ids, acc["order_id"]), max(len(ids) - 1, 0))
    has = (ids[k] == acc["order_id"]) if len(ids) else np.zeros(len(acc), bool)
    finish = np.where(has, fin["ts_exch"][first][k] if len(ids) else 0, end)
    return acc["side"], acc["ts_exch"], finish.astype(np.int64)


def union_length(begin, finish):
    """Total length covered by the intervals [begin, finish) (any order). O(n log n)."""
    if not len(begin):
        return 0
    order = np.argsort(begin, kind="stable")
    b, f = begin[order].astype(np.int64), finish[order].astype(np.int64)
    reach = np.maximum.accumulate(f)
    before = np.concatenate([[np.iinfo(np.int64).min], reach[:-1]])
    return int(np.maximum(f - np.maximum(b, before), 0).sum())


def _presence(orders, start, end):
    out = {"quote_presence_bid": _NAN, "quote_presence_ask": _NAN}
    if start is None or end <= start:
        return out
    side, begin, finish = resting_intervals(orders, end)
    begin, finish = np.clip(begin, start, end), np.clip(finish, start, end)
    for s, key in ((1, "quote_presence_bid"), (-1, "quote_presence_ask")):
        sel = side == s
        out[key] = union_length(begin[sel], finish[sel]) / (end - start)
    return out


def _markout_means(result):
    mk = result.markouts
    out = {}
    for h, ns in enumerate(tuple(getattr(result, "markouts_ns", ()))[:N_HORIZONS]):
        col = mk["markout"][:, h] if len(mk) else np.empty(0)
        col = col[~np.isnan(col)]
        out[f"markout_{horizon_name(ns)}"] = float(col.mean()) if len(col) else _NAN
    return out


def metric_info(result):
    """[(key, unit, meaning)] for compute(result)'s keys, in order."""
    info = list(METRICS)
    for ns in tuple(getattr(result, "markouts_ns", ()))[:N_HORIZONS]:
        h = horizon_name(ns)
        info.append((f"markout_{h}", MARKOUT_UNIT, MARKOUT_MEANING.format(h=h)))
    return info
