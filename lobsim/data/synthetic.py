"""Deterministic synthetic L3 order flow: a seeded zero-intelligence market.

`generate(n, seed)` returns an EVENT_DTYPE array and `iter_generate(n, seed)`
streams the same events in chunks; a strict L3 book replays them without a
single error, so tests and benchmarks need no vendor data. Each step of the
market draws a time gap and a feed latency, moves a latent mid, then does one
thing, chosen with weights add_rate, cancel_rate * (resting orders),
execute_rate and modify_rate:

- a limit ADD on either side with equal odds, a geometric number of ticks
  (mean `mean_offset`, at most `tick_levels`) behind the latent mid (bids at
  or below it, asks above), clamped so that it never crosses the opposite
  best: the book stays uncrossed; size geometric with mean `mean_qty` lots;
- a cancel of a uniformly chosen resting order: a partial REDUCE (by 1 to
  qty - 1 lots) with probability `reduce_share` if the order has 2 lots or
  more, else a DELETE. Cancels grow with the book, so its size is stationary
  (about add_rate / cancel_rate orders);
- a market order, more often a buy when the latent mid has moved above the
  book's mid (P(buy) = 0.5 + 0.2 * (latent - book mid in ticks), within
  [0.1, 0.9]), of geometric size with mean `mean_qty`: it sweeps the
  resting orders of the other side in price-time priority (matched by the C
  book itself), giving one EXECUTE per order hit (side = resting side), each
  price level followed by its TRADE print (side = aggressor, qty = the
  level's total), all at one timestamp; the last print ends the batch;
- a MODIFY of a uniformly chosen resting order: new qty (half the time
  smaller, else larger by a geometric draw) and, 40% of the time, a price
  1-3 ticks away, never crossing (a larger qty or a new price loses
  priority, as any MODIFY does).

Every event outside a market order is its own batch (flag BATCH_END). ts_exch
is non-decreasing (exponential gaps of mean `mean_gap_ns`; a sweep shares one
timestamp); ts_local = ts_exch + `latency_ns` + an exponential jitter of mean
`latency_jitter_ns`, kept non-decreasing like a real capture. The latent mid
is a random walk with steps of standard deviation `volatility` ticks (uniform
steps), reflected at tick_levels + 2 ticks so every price stays positive.
Order ids are consecutive from `first_order_id` (a market order takes one).

The generator runs in C (csrc/synthetic.c) with its own seeded PRNG
(xoshiro256** seeded by splitmix64), integer arithmetic and exactly rounded
float operations only, so the same arguments give the same bytes on every
platform and at any chunk size: `generate(n, seed)` equals the concatenation
of `iter_generate(n, seed, chunk_events=k)` for every k. The stream ends with
a complete batch (a market order at the very end is limited to fit).

Speed: O(1) per event, over 10 million events per second; memory is the
book (O(resting orders)) plus one chunk.
"""
import math
import numbers

import numpy as np

from lobsim._core import check, ffi, lib
from lobsim._types import EVENT_DTYPE, EventKind
from lobsim.data.events import Events, ValidationReport
from lobsim.instrument import Instrument

__all__ = ["generate", "iter_generate", "generate_events", "INSTRUMENT", "KNOBS", "MAX_EVENTS"]

INSTRUMENT = Instrument("SYN", "0.01", "1")
"""The instrument synthetic ticks and lots refer to (tick 0.01, lot 1)."""

T0_NS = 1_704_205_800_000_000_000  # 2024-01-02 14:30:00 UTC

MAX_EVENTS = 10_000_000_000
"""Largest n_events accepted (480 GB of events: stream them with iter_generate)."""

MAX_SEED = 2**63 - 1

# name: (default, type, lower bound, lower bound excluded, upper bound); the C side checks the same bounds.
KNOBS = {
    "tick_levels": (20, int, 1, False, 1_000_000),
    "start_price": (10_000, int, None, False, 2**40),  # lower bound: > 4 * tick_levels
    "mean_qty": (5.0, float, 1.0, False, 1e6),
    "add_rate": (1.0, float, 0.0, True, 1e6),
    "cancel_rate": (0.003, float, 0.0, False, 1e6),
    "reduce_share": (0.05, float, 0.0, False, 1.0),
    "execute_rate": (0.11, float, 0.0, False, 1e6),
    "modify_rate": (0.05, float, 0.0, False, 1e6),
    "mean_offset": (3.0, float, 0.0, False, 1e6),
    "volatility": (0.03, float, 0.0, False, 1000.0),
    "mean_gap_ns": (20_000.0, float, 0.0, False, 1e12),
    "latency_ns": (40_000, int, 0, False, 10**12),
    "latency_jitter_ns": (10_000.0, float, 0.0, False, 1e12),
    "t0_ns": (T0_NS, int, 0, False, 2**62),
    "first_order_id": (1, int, 1, False, 2**63),
}
"""The knobs of the market: name -> (default, type, lower bound, lower bound
excluded, upper bound). See generate() for their meaning."""


def _int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {value}")
    return value


def _real(name, value, lo, lo_open, hi):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < lo or (lo_open and value == lo) or value > hi:
        raise ValueError(f"{name} must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {value}")
    return value


def _params(n_events, knobs):
    """Validated knobs as a lob_synth_params (ValueError / TypeError naming the knob)."""
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise TypeError(f"unknown synthetic knob {unknown[0]!r} (knobs: {', '.join(KNOBS)})")
    p = ffi.new("lob_synth_params *")
    p.n_events = _int("n_events", n_events, 0, MAX_EVENTS)
    for name, (default, kind, lo, lo_open, hi) in KNOBS.items():
        value = knobs.get(name, default)
        if kind is int:
            value = _int(name, value, lo if lo is not None else 1, hi)
        else:
            value = _real(name, value, lo, lo_open, hi)
        if name == "start_price" and value <= 4 * p.tick_levels:
            raise ValueError(f"start_price must exceed 4 * tick_levels = {4 * p.tick_levels} "
                             f"(so prices stay positive), got {value}")
        setattr(p, name, value)
    return p


def _new_state(n_events, seed, knobs):
    """A C generator (freed by ffi.gc, or at once with ffi.release)."""
    params = _params(n_events, knobs)
    seed = _int("seed", seed, 0, MAX_SEED)
    out = ffi.new("lob_synth **")
    check(lib.lob_synth_new(params, seed, out), "synthetic generator")
    return ffi.gc(out[0], lib.lob_synth_free)


def _fill(state, out):
    """Write the next len(out) events of the stream into `out`."""
    n = ffi.new("size_t *")
    ptr = ffi.cast("lob_event *", ffi.from_buffer(out, require_writable=True))
    check(lib.lob_synth_next(state, ptr, len(out), n), "synthetic generator")
    if n[0] != len(out):  # cannot happen: the state knows the stream's length
        raise RuntimeError(f"synthetic generator wrote {n[0]} of {len(out)} events")


def generate(n_events, seed=0, **knobs):
    """Return `n_events` synthetic L3 events (EVENT_DTYPE), valid for a strict book.

    n_events: exact length of the output, int in [0, 10_000_000_000] (the
        array must fit in memory: 48 bytes per event; iter_generate streams).
    seed: int in [0, 2**63 - 1], the only source of randomness; the same
        arguments give the same bytes on every platform.
    Knobs (keyword only; bounds in KNOBS, checked with a ValueError naming
    the knob, a TypeError for a wrong type or an unknown name):
    tick_levels: furthest a new order is placed from the latent mid, ticks.
    start_price: initial mid in ticks (must exceed 4 * tick_levels).
    mean_qty: mean size of limit and market orders in lots (geometric, >= 1).
    add_rate, execute_rate, modify_rate: relative rates of limit orders,
        market orders (sweeps) and modifies per step; cancel_rate is the rate
        per resting order, so the book holds about add_rate / cancel_rate orders.
    reduce_share: share of cancels that are partial REDUCEs rather than DELETEs.
    mean_offset: mean distance in ticks of a new order behind the mid.
    volatility: standard deviation of the latent mid per step, in ticks.
    mean_gap_ns: mean time between steps (exponential).
    latency_ns, latency_jitter_ns: feed latency = base + exponential jitter
        of that mean.
    t0_ns: the clock before the first step (ns since the epoch).
    first_order_id: the first order id; ids are consecutive from it.

    O(n_events) time (over 10 million events per second), memory the
    output plus the book.
    """
    state = _new_state(n_events, seed, knobs)
    try:
        out = np.empty(int(n_events), dtype=EVENT_DTYPE)
        if len(out):
            _fill(state, out)
        return out
    finally:
        ffi.release(state)


def iter_generate(n_events, seed=0, chunk_events=1 << 20, **knobs):
    """Yield the events of `generate(n_events, seed, **knobs)` as EVENT_DTYPE
    arrays of `chunk_events` events (the last one may be shorter).

    The concatenation equals generate() for every chunk size (a market
    order's batch may straddle two chunks). Memory stays bounded by one chunk
    plus the book whatever n_events, so files larger than memory can be
    written. Arguments are checked at the call, before the first chunk;
    each chunk is a new array the caller may keep.
    """
    state = _new_state(n_events, seed, knobs)
    chunk = _int("chunk_events", chunk_events, 1, 1 << 30)
    return _chunks(state, int(n_events), chunk)


def _chunks(state, n_events, chunk):
    try:
        left = n_events
        while left > 0:
            out = np.empty(min(chunk, left), dtype=EVENT_DTYPE)
            _fill(state, out)
            left -= len(out)
            yield out
    finally:
        ffi.release(state)


def generate_events(n_events, seed=0, **knobs):
    """`generate()` wrapped as Events with INSTRUMENT and a clean report
    (counts by kind in report.info)."""
    arr = generate(n_events, seed, **knobs)
    report = ValidationReport(source=f"synthetic(seed={seed})")
    kinds = np.bincount(arr["kind"], minlength=10)
    report.info["events"] = int(len(arr))
    for k in EventKind:
        if kinds[k]:
            report.info[f"n_{k.name.lower()}"] = int(kinds[k])
    return Events(arr, INSTRUMENT, report)
