"""Deterministic synthetic L3 order flow: a seeded zero-intelligence market.

`generate(n, seed)` returns an EVENT_DTYPE array that a strict L3 book replays
without a single error, so tests and benchmarks need no vendor data:

- limit ADDs arrive at a constant rate, placed a geometric number of ticks
  behind a latent random-walk mid (bids at or below it, asks above), clamped
  so they never cross the opposite best: the book stays uncrossed;
- cancels come at a rate proportional to the number of resting orders (so
  the book size is stationary), on a uniformly chosen live order: mostly
  DELETE, sometimes a partial REDUCE;
- market orders arrive at a constant rate, more often on the side the latent
  mid has moved towards; each sweeps the best resting orders in price-time
  priority: EXECUTE events (side = resting side) for each order hit, then a
  TRADE print per price level (side = aggressor), all at one timestamp,
  the last one flagged BATCH_END;
- occasional MODIFYs (new qty, sometimes a new price a few ticks away).

Every event outside a sweep is its own batch (flag BATCH_END); a sweep is one
batch. ts_exch is non-decreasing (exponential gaps, a sweep shares one timestamp); ts_local is
ts_exch plus a seeded feed latency, kept non-decreasing like a real capture.
The same arguments give bit-identical output: all randomness is pre-drawn in
fixed-size chunks from numpy's PCG64 seeded by `seed`.

Speed: one tight Python loop over pre-drawn numbers, about 1-2 us per event.
"""
import numpy as np

from lobsim._types import EVENT_DTYPE, EventKind, Flag
from lobsim.data.events import Events, ValidationReport
from lobsim.instrument import Instrument

__all__ = ["generate", "generate_events", "INSTRUMENT"]

INSTRUMENT = Instrument("SYN", "0.01", "1")
"""The instrument synthetic ticks and lots refer to (tick 0.01, lot 1)."""

T0_NS = 1_704_205_800_000_000_000  # 2024-01-02 14:30:00 UTC

_CHUNK = 1 << 15  # steps of random numbers drawn at a time


def generate(
    n_events,
    seed=0,
    *,
    tick_levels=20,
    start_price=10_000,
    mean_qty=5.0,
    add_rate=1.0,
    cancel_rate=0.003,
    reduce_share=0.05,
    execute_rate=0.11,
    modify_rate=0.05,
    mean_offset=3.0,
    volatility=0.03,
    mean_gap_ns=20_000,
    latency_ns=40_000,
    latency_jitter_ns=10_000,
    t0_ns=T0_NS,
    first_order_id=1,
):
    """Return `n_events` synthetic L3 events (EVENT_DTYPE), valid for a strict book.

    n_events: exact length of the output.
    seed: the only source of randomness; same arguments -> same bytes.
    tick_levels: furthest a new order is placed from the latent mid, in ticks.
    start_price: initial mid in ticks (must exceed 4 * tick_levels).
    mean_qty: mean order size in lots (geometric, >= 1).
    add_rate, execute_rate, modify_rate: relative rates of limit orders,
        market orders (sweeps) and modifies per step; cancel_rate is the rate
        per resting order, so the book holds about add_rate / cancel_rate orders.
    reduce_share: share of cancels that are partial REDUCEs rather than DELETEs.
    mean_offset: mean distance in ticks of a new order behind the mid.
    volatility: standard deviation of the latent mid per step, in ticks.
    mean_gap_ns: mean time between steps (exponential).
    latency_ns, latency_jitter_ns: feed latency = base + exponential jitter.
    """
    n_events = int(n_events)
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    tick_levels = int(tick_levels)
    start_price = int(start_price)
    if tick_levels < 1:
        raise ValueError("tick_levels must be >= 1")
    if start_price <= 4 * tick_levels:
        raise ValueError("start_price must exceed 4 * tick_levels so prices stay positive")
    if mean_qty < 1 or mean_offset < 0 or min(add_rate, cancel_rate, execute_rate, modify_rate) < 0:
        raise ValueError("rates, mean_qty - 1 and mean_offset must be non-negative")
    if add_rate <= 0:
        raise ValueError("add_rate must be positive")
    if not 0 <= reduce_share <= 1:
        raise ValueError("reduce_share must be in [0, 1]")

    rng = np.random.Generator(np.random.PCG64(seed))
    p_qty = 1.0 / float(mean_qty)
    p_off = 1.0 / (float(mean_offset) + 1.0)

    # Output columns (Python lists: appending is much cheaper than numpy item writes).
    o_ts, o_loc, o_id, o_px, o_qty, o_side, o_kind, o_flag = [], [], [], [], [], [], [], []
    a_ts, a_loc, a_id, a_px, a_qty, a_side, a_kind, a_flag = (
        o_ts.append, o_loc.append, o_id.append, o_px.append,
        o_qty.append, o_side.append, o_kind.append, o_flag.append,
    )
    ADD, REDUCE, DELETE, EXECUTE, MODIFY, TRADE = (
        int(EventKind.ADD), int(EventKind.REDUCE), int(EventKind.DELETE),
        int(EventKind.EXECUTE), int(EventKind.MODIFY), int(EventKind.TRADE),
    )
    END = int(Flag.BATCH_END)

    # Book model: level dicts keep insertion order = FIFO (id -> None).
    bids, asks = {}, {}
    best_bid = best_ask = None  # int ticks or None when the side is empty
    orders = {}  # id -> [side, price, qty, index in live]
    live = []  # ids of resting orders, for O(1) uniform picks
    next_id = int(first_order_id)

    mid = float(start_price) + 0.5
    t = int(t0_ns)
    last_local = t
    count = 0
    stats = [0] * 10  # events by kind

    def remove(oid, o):
        """Drop a resting order from its level, `live` and `orders`; fix the best price."""
        nonlocal best_bid, best_ask
        side, price = o[0], o[1]
        book = bids if side == 1 else asks
        lvl = book[price]
        del lvl[oid]
        if not lvl:
            del book[price]
            if side == 1:
                if price == best_bid:
                    if bids:
                        p = price - 1
                        while p not in bids:
                            p -= 1
                        best_bid = p
                    else:
                        best_bid = None
            elif price == best_ask:
                if asks:
                    p = price + 1
                    while p not in asks:
                        p += 1
                    best_ask = p
                else:
                    best_ask = None
        i = o[3]
        last = live.pop()
        if last != oid:
            live[i] = last
            orders[last][3] = i
        del orders[oid]

    def rest(oid, side, price, qty):
        """Append an order at the tail of its level and register it as live."""
        nonlocal best_bid, best_ask
        if side == 1:
            lvl = bids.get(price)
            if lvl is None:
                lvl = bids[price] = {}
                if best_bid is None or price > best_bid:
                    best_bid = price
        else:
            lvl = asks.get(price)
            if lvl is None:
                lvl = asks[price] = {}
                if best_ask is None or price < best_ask:
                    best_ask = price
        lvl[oid] = None
        orders[oid] = [side, price, qty, len(live)]
        live.append(oid)

    while count < n_events:
        # One chunk of pre-drawn numbers; a step consumes exactly one row.
        u = rng.random((_CHUNK, 5))
        u_kind, u_pick, u_aux, u_aux2, u_aux3 = (u[:, j].tolist() for j in range(5))
        offs = np.minimum(rng.geometric(p_off, _CHUNK) - 1, tick_levels).tolist()
        qtys = rng.geometric(p_qty, _CHUNK).tolist()
        gaps = rng.exponential(mean_gap_ns, _CHUNK).astype(np.int64).tolist()
        lats = (latency_ns + rng.exponential(latency_jitter_ns, _CHUNK)).astype(np.int64).tolist()
        dmid = (rng.standard_normal(_CHUNK) * volatility).tolist()

        for s in range(_CHUNK):
            if count >= n_events:
                break
            mid += dmid[s]
            t += gaps[s]
            local = t + lats[s]
            if local < last_local:
                local = last_local
            last_local = local
            n_live = len(live)
            w_cancel = cancel_rate * n_live
            w_exec = execute_rate if (best_bid is not None or best_ask is not None) else 0.0
            w_mod = modify_rate if n_live else 0.0
            x = u_kind[s] * (add_rate + w_cancel + w_exec + w_mod)
            room = n_events - count

            if x < add_rate or (x >= add_rate + w_cancel and x < add_rate + w_cancel + w_exec and room < 2):
                # -- limit order: behind the latent mid, never crossing ----------
                ref = int(mid)
                if u_pick[s] < 0.5:
                    side = 1
                    price = ref - offs[s]
                    if best_ask is not None and price >= best_ask:
                        price = best_ask - 1
                else:
                    side = -1
                    price = ref + 1 + offs[s]
                    if best_bid is not None and price <= best_bid:
                        price = best_bid + 1
                oid = next_id
                next_id += 1
                qty = qtys[s]
                rest(oid, side, price, qty)
                a_ts(t); a_loc(local); a_id(oid); a_px(price); a_qty(qty)
                a_side(side); a_kind(ADD); a_flag(END)
                count += 1
                stats[ADD] += 1
                continue

            x -= add_rate
            if x < w_cancel:
                # -- cancel a uniformly chosen live order --------------------------
                oid = live[int(u_pick[s] * n_live)]
                o = orders[oid]
                q = o[2]
                if q >= 2 and u_aux[s] < reduce_share:
                    cut = 1 + int(u_aux2[s] * (q - 1))  # 1 .. q-1: a true partial
                    o[2] = q - cut
                    a_ts(t); a_loc(local); a_id(oid); a_px(o[1]); a_qty(cut)
                    a_side(o[0]); a_kind(REDUCE); a_flag(END)
                    stats[REDUCE] += 1
                else:
                    remove(oid, o)
                    a_ts(t); a_loc(local); a_id(oid); a_px(o[1]); a_qty(q)
                    a_side(o[0]); a_kind(DELETE); a_flag(END)
                    stats[DELETE] += 1
                count += 1
                continue

            x -= w_cancel
            if x < w_exec:
                # -- market order sweeping the best resting orders ----------------
                if best_bid is not None and best_ask is not None:
                    lean = 0.5 + 0.2 * (mid - 0.5 * (best_bid + best_ask))
                    buy = u_pick[s] < (0.9 if lean > 0.9 else 0.1 if lean < 0.1 else lean)
                else:
                    buy = best_ask is not None
                rside = -1 if buy else 1  # resting side hit
                book = asks if buy else bids
                # whole orders taken, then maybe a partial one; capped so execs+trades fit
                n_full = int(u_aux3[s] * 3)  # 0, 1 or 2
                partial = u_aux[s] < 0.25 or n_full == 0
                max_exec = room // 2
                n_exec = 0
                level_px = None
                level_qty = 0
                while n_exec < max_exec:
                    price = best_ask if buy else best_bid
                    if price is None:
                        break
                    oid = next(iter(book[price]))
                    o = orders[oid]
                    q = o[2]
                    if n_full > 0 or q == 1:
                        take = q
                    elif partial:
                        take = 1 + int(u_aux2[s] * (q - 1))
                    else:
                        break
                    if level_px is not None and price != level_px:
                        a_ts(t); a_loc(local); a_id(0); a_px(level_px); a_qty(level_qty)
                        a_side(-rside); a_kind(TRADE); a_flag(0)
                        count += 1
                        stats[TRADE] += 1
                        level_qty = 0
                    level_px = price
                    level_qty += take
                    a_ts(t); a_loc(local); a_id(oid); a_px(price); a_qty(take)
                    a_side(rside); a_kind(EXECUTE); a_flag(0)
                    count += 1
                    n_exec += 1
                    stats[EXECUTE] += 1
                    if take == q:
                        remove(oid, o)
                        if n_full > 0:
                            n_full -= 1
                        else:
                            break
                    else:
                        o[2] = q - take
                        break
                # the print for the last level closes the batch
                a_ts(t); a_loc(local); a_id(0); a_px(level_px); a_qty(level_qty)
                a_side(-rside); a_kind(TRADE); a_flag(END)
                count += 1
                stats[TRADE] += 1
                continue

            # -- modify a live order: new qty, sometimes a new price ------------
            oid = live[int(u_pick[s] * n_live)]
            o = orders[oid]
            side, price, q = o[0], o[1], o[2]
            if q >= 2 and u_aux[s] < 0.5:
                new_q = 1 + int(u_aux2[s] * (q - 1))
            else:
                new_q = q + qtys[s]
            new_px = price
            if u_aux3[s] < 0.4:  # move 1-3 ticks, either way
                new_px = price + (offs[s] % 3 + 1) * (1 if u_aux3[s] < 0.2 else -1)
                if side == 1:
                    if best_ask is not None and new_px >= best_ask:
                        new_px = best_ask - 1
                elif best_bid is not None and new_px <= best_bid:
                    new_px = best_bid + 1
            if new_px != price or new_q > q:
                remove(oid, o)
                rest(oid, side, new_px, new_q)
            else:
                o[2] = new_q
            a_ts(t); a_loc(local); a_id(oid); a_px(new_px); a_qty(new_q)
            a_side(side); a_kind(MODIFY); a_flag(END)
            count += 1
            stats[MODIFY] += 1

    out = np.zeros(n_events, dtype=EVENT_DTYPE)
    out["ts_exch"] = o_ts
    out["ts_local"] = o_loc
    out["order_id"] = o_id
    out["price"] = o_px
    out["qty"] = o_qty
    out["side"] = o_side
    out["kind"] = o_kind
    out["flags"] = o_flag
    return out


def generate_events(n_events, seed=0, **kwargs):
    """`generate()` wrapped as Events with INSTRUMENT and a clean report."""
    arr = generate(n_events, seed, **kwargs)
    report = ValidationReport(source=f"synthetic(seed={seed})")
    kinds = np.bincount(arr["kind"], minlength=10)
    report.info["events"] = int(n_events)
    for k in EventKind:
        if kinds[k]:
            report.info[f"n_{k.name.lower()}"] = int(kinds[k])
    return Events(arr, INSTRUMENT, report)
