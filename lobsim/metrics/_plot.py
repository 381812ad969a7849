"""result.plot(path): one PNG figure of a backtest (matplotlib's Agg canvas: no display,
no pyplot state; matplotlib is imported here only)."""
import os
import tempfile

import numpy as np

from lobsim.metrics._compute import (
    KIND_FILL,
    KIND_SAMPLE,
    _AT_VENUE,
    _ENDS,
    _mids,
    _span,
    drawdown,
    equity_curve,
    horizon_name,
    inventory_steps,
)
from lobsim.metrics._report import _fmt, umask_modes

BID_COLOR, ASK_COLOR, MID_COLOR = "#1a9850", "#d73027", "#404040"


def _time_unit(span_ns):
    if span_ns < 120e9:
        return 1e9, "s"
    if span_ns < 2 * 3600e9:
        return 60e9, "min"
    return 3600e9, "h"


def quote_segments(orders, end):
    """[(t0, t1, price, side)] arrays: the price each accepted order rested at, from each of
    its rows at the venue to the next (a modify moves it), until a final row or `end`."""
    acc = orders["order_id"][(orders["state"] == 1) & (orders["request"] == 0)]
    rows = orders[np.isin(orders["order_id"], acc) & np.isin(orders["state"], _AT_VENUE)]
    rows = rows[np.lexsort((np.arange(len(rows)), rows["ts_exch"], rows["order_id"]))]
    if not len(rows):
        e = np.empty(0, np.int64)
        return e, e, e, e
    same = np.r_[rows["order_id"][1:] == rows["order_id"][:-1], False]
    t1 = np.where(same, np.r_[rows["ts_exch"][1:], 0], end)
    live = ~np.isin(rows["state"], _ENDS)
    keep = live & (t1 > rows["ts_exch"])
    return rows["ts_exch"][keep], t1[keep], rows["price"][keep], rows["side"][keep]


def plot(result, path, *, dpi=100):
    """Write one PNG figure to `path` (see BacktestResult.plot). Returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    inst = result.instrument
    tick = float(inst.tick_size)
    start, end = _span(result)
    if start is None:
        start = end = 0
    scale, unit = _time_unit(max(end - start, 1))

    def x(ts):
        return (np.asarray(ts, dtype=np.float64) - start) / scale

    fig = Figure(figsize=(12, 13), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(4, 1, height_ratios=[3.2, 1.4, 1.6, 1.8])
    ax_px = fig.add_subplot(gs[0])
    ax_inv = fig.add_subplot(gs[1], sharex=ax_px)
    ax_eq = fig.add_subplot(gs[2], sharex=ax_px)
    ax_mk = fig.add_subplot(gs[3])
    m = result.metrics
    fig.suptitle(f"{inst.symbol}: {result.params.get('strategy') or 'backtest'}, {result.events:,} events, "
                 f"{m['fills']:,} fills, PnL {_fmt(m['pnl'], '')}", fontsize=13)

    # -- price: venue mid, the user's resting quotes, fills
    rows = result.position[(result.position["kind"] == KIND_FILL) | (result.position["kind"] == KIND_SAMPLE)]
    rows = rows[np.argsort(rows["ts"], kind="stable")]
    mid = _mids(rows) * tick
    ax_px.step(x(rows["ts"]), mid, where="post", color=MID_COLOR, lw=1.0, label="venue mid", zorder=2)
    t0, t1, px, side = quote_segments(result.orders, end)
    for s, color, label in ((1, BID_COLOR, "our bids"), (-1, ASK_COLOR, "our asks")):
        sel = side == s
        if sel.any():
            y = px[sel] * tick
            segs = np.stack([np.column_stack([x(t0[sel]), y]), np.column_stack([x(t1[sel]), y])], axis=1)
            ax_px.add_collection(LineCollection(segs, colors=color, linewidths=2.0, alpha=0.45, label=label,
                                                zorder=1, rasterized=True))
    f = result.fills
    size = float(np.clip(6000 / max(len(f), 1), 10, 40))  # smaller markers when there are many fills
    for s, color, marker, label in ((1, BID_COLOR, "^", "buy fills"), (-1, ASK_COLOR, "v", "sell fills")):
        sel = f["side"] == s
        if sel.any():
            ax_px.scatter(x(f["ts_exch"][sel]), f["price"][sel] * tick, marker=marker, s=size, color=color,
                          edgecolors="black", linewidths=0.5, label=label, zorder=3)
    ax_px.autoscale_view()
    ax_px.set_ylabel("price")
    ax_px.set_title("venue mid, our resting quotes and fills", loc="left", fontsize=10)
    ax_px.legend(loc="upper left", fontsize=8, ncols=5)
    ax_px.grid(alpha=0.3)

    # -- inventory
    t, q = inventory_steps(f, start, end)
    ax_inv.step(x(t), q, where="post", color="#4575b4", lw=1.2)
    ax_inv.axhline(0, color="black", lw=0.6)
    limit = result.inventory_limit
    if limit is not None:
        for v in (limit, -limit):
            ax_inv.axhline(v, color="#f46d43", lw=0.9, ls="--")
    ax_inv.set_ylabel("position (lots)")
    ax_inv.set_title(f"inventory: mean {_fmt(m['inventory_mean'], '')}, std {_fmt(m['inventory_std'], '')}, "
                     f"abs max {m['inventory_abs_max']}" + (f", limit {limit:g}" if limit is not None else ""),
                     loc="left", fontsize=10)
    ax_inv.grid(alpha=0.3)

    # -- equity with drawdown
    ts, eq = equity_curve(result)
    xe = x(ts)
    ax_eq.plot(xe, eq, color="#313695", lw=1.2, label="equity (marked to mid)")
    if len(eq):
        ax_eq.fill_between(xe, eq, eq + drawdown(eq), color="#d73027", alpha=0.3, lw=0, label="drawdown")
    ax_eq.axhline(0, color="black", lw=0.6)
    ax_eq.set_ylabel("equity")
    ax_eq.set_xlabel(f"venue time since the first event ({unit})")
    ax_eq.set_title(f"equity every {result.sample_ns / 1e9:g} s: PnL {_fmt(m['pnl'], '')}, max drawdown "
                    f"{_fmt(m['max_drawdown'], '')}, Sharpe {_fmt(m['sharpe'], '')}", loc="left", fontsize=10)
    ax_eq.legend(loc="upper left", fontsize=8)
    ax_eq.grid(alpha=0.3)
    for ax in (ax_px, ax_inv):
        ax.tick_params(labelbottom=False)

    # -- markout curve
    mk = result.markouts
    k = len(result.markouts_ns)
    labels = ["at fill"] + [horizon_name(ns) for ns in result.markouts_ns]
    xs = np.arange(k + 1)
    if len(mk):
        values = np.column_stack([mk["spread"], mk["markout"][:, :k]])
        for s, color, label in ((None, "black", "all fills"), (1, BID_COLOR, "buys"), (-1, ASK_COLOR, "sells")):
            v = values if s is None else values[f["side"] == s]
            if not len(v):
                continue
            n = (~np.isnan(v)).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.nansum(v, axis=0) / np.where(n, n, np.nan)
                sd = np.sqrt(np.nansum((v - mean) ** 2, axis=0) / np.where(n > 1, n - 1, np.nan))
            ax_mk.plot(xs, mean, marker="o", color=color, lw=1.6 if s is None else 1.0,
                       label=f"{label} ({len(v)})")
            if s is None:
                se = sd / np.sqrt(np.where(n, n, np.nan))
                ax_mk.fill_between(xs, mean - 1.96 * se, mean + 1.96 * se, color="gray", alpha=0.25, lw=0,
                                   label="95% interval of the mean")
        ax_mk.legend(loc="best", fontsize=8)
    else:
        ax_mk.text(0.5, 0.5, "no fills", transform=ax_mk.transAxes, ha="center", va="center")
    ax_mk.axhline(0, color="black", lw=0.6)
    ax_mk.set_xticks(xs, labels)
    ax_mk.set_xlim(-0.3, k + 0.3)
    ax_mk.set_xlabel("horizon after the fill")
    ax_mk.set_ylabel("ticks")
    ax_mk.set_title("markout: side x (venue mid after the horizon - fill price), mean; positive = good for us",
                    loc="left", fontsize=10)
    ax_mk.grid(alpha=0.3)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".plot.", suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        umask_modes(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
