"""End-to-end speed and memory of lobsim.Backtest driving a Python strategy.

    pytest benches/bench_backtest.py -s                    # ~4M-event runs, under a minute
    LOBSIM_BENCH_BIG=1 pytest benches/bench_backtest.py -s # adds 30M-event runs

The strategy (Requoter, plain Python) wakes every 100 ms of local time, cancels
its open orders and posts 1 lot post-only at the local best bid and best ask;
the venue answers through a constant 1 ms / 1 ms order latency, RiskAverse
queue. It runs on:

- a synthetic L2 stream (synthetic_l2: SET_LEVEL updates over 20 levels a side
  around a random-walk mid plus TRADE prints at the touch, about 100 events per
  100 ms of data time, the density of the real Binance capture; ts_local =
  ts_exch + 1 ms; deterministic for a seed, built with numpy in ~2 s);
- the real Binance USD-M capture (../shared/data/binance/usdm, 466,576 events
  over 345 s) tiled to a few million events, each copy shifted in time after
  the one before (skipped with the reason when the capture is absent);
- the same replays with no strategy (Backtest(data, None) driven to the end
  with elapse): the upper bound of the loop.

Printed per run: events/s end to end (Backtest construction to result, best and
mean of the rounds), fills, and peak RSS measured in a fresh subprocess (its
VmHWM; with the interpreter, imports and the loaded event array alone as the
baseline), so pytest's own memory does not count. A Parquet run streams the
synthetic stream from a file to show memory bounded by the chunk, not the data.
If hftbacktest is installed (optional, never a lobsim dependency), its
equivalent of the quoting run is timed too, with its numba warm-up reported
separately (benches/hftbacktest_crosscheck.py).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lobsim import EVENT_DTYPE, Backtest, EventKind, Flag, Instrument, Strategy, TimeInForce
from lobsim.latency import Constant

from conftest import report

ROOT = Path(__file__).resolve().parents[1]
BIG = os.environ.get("LOBSIM_BENCH_BIG") == "1"
USDM = sorted((ROOT.parent / "shared" / "data" / "binance" / "usdm").glob("*.gz"))
N_SYNTHETIC = 4_000_000
N_BINANCE = 3_000_000
N_BIG = 30_000_000
INTERVAL_NS = 100_000_000
LATENCY = dict(entry_ns=1_000_000, response_ns=1_000_000)
SYNTHETIC_INSTRUMENT = Instrument("SYN", "0.01", "1")
needs_big = pytest.mark.skipif(not BIG, reason="30M-event runs only with LOBSIM_BENCH_BIG=1")
needs_usdm = pytest.mark.skipif(not USDM, reason="the Binance USD-M capture (../shared/data/binance/usdm/*.gz) is absent")


def synthetic_l2(n_events, seed=0, *, levels=20, events_per_100ms=100, feed_latency_ns=1_000_000,
                 p_trade=0.13, p_move=0.02, decrease_first=False, mid0=100_000,
                 t0=1_700_000_000_000_000_000):
    """A deterministic L2 stream of n_events (EVENT_DTYPE), never crossed.

    A snapshot of `levels` levels a side around mid0, then steps spaced by
    exponential gaps: a level update (SET_LEVEL at depth d = geometric, sizes
    1-39 lots, 10% of updates below the touch delete the level); with p_trade a
    print of 1-5 lots at the touch (TRADE, aggressor side) and the new absolute
    size of that level at the same stamp; with p_move the mid moves one tick:
    a print at the touch on the side it moves to and that level deleted (so
    bids stay below the mid and asks above it). decrease_first=True publishes
    each level change before its print at the same stamp (as Binance's
    separate depth and trade streams do). ts_local = ts_exch + feed_latency_ns.
    Vectorized numpy: ~0.6 us per event.
    """
    rng = np.random.default_rng(seed)
    n_snap = 2 * levels
    per_step = 1 + p_trade + p_move
    steps = int(max(n_events - n_snap, 0) / per_step * 1.01) + 64
    u = rng.random(steps)
    typ = np.where(u < p_move, 2, np.where(u < p_move + p_trade, 1, 0)).astype(np.int8)
    move = np.where(typ == 2, np.where(rng.random(steps) < 0.5, 1, -1), 0)
    mid_after = mid0 + np.cumsum(move)
    mid_before = mid_after - move
    side = np.where(rng.random(steps) < 0.5, 1, -1).astype(np.int8)
    depth = np.minimum(rng.geometric(0.2, steps) - 1, levels - 1)
    qty = rng.integers(1, 40, steps)
    qty[(depth > 0) & (rng.random(steps) < 0.1)] = 0
    tqty = rng.integers(1, 6, steps)
    gap = 100_000_000 / events_per_100ms * per_step
    ts = t0 + np.cumsum(rng.exponential(gap, steps).astype(np.int64) + 1)

    per = np.where(typ == 0, 1, 2)
    step = np.repeat(np.arange(steps), per)[: max(n_events - n_snap, 0)]  # the step of each event
    second = np.zeros(len(step), dtype=bool)
    second[1:] = step[1:] == step[:-1]
    t, s = typ[step], side[step]
    aggressor = np.where(t == 2, move[step], s)
    touch = np.where(aggressor == 1, mid_before[step] + 1, mid_before[step] - 1)
    is_trade = (t > 0) & (second if decrease_first else ~second)
    last_of_step = (t == 0) | second

    out = np.zeros(n_events, dtype=EVENT_DTYPE)
    snap = min(n_snap, n_events)
    d = np.arange(levels)
    out["price"][:snap] = np.concatenate((mid0 - 1 - d, mid0 + 1 + d))[:snap]
    out["side"][:snap] = np.repeat(np.array([1, -1], np.int8), levels)[:snap]
    out["qty"][:snap] = rng.integers(1, 40, n_snap)[:snap]
    out["kind"][:snap] = EventKind.SET_LEVEL
    out["flags"][:snap] = Flag.SNAPSHOT
    out["flags"][snap - 1] |= Flag.BATCH_END
    out["ts_exch"][:snap] = t0
    body = slice(snap, n_events)
    out["ts_exch"][body] = ts[step]
    out["kind"][body] = np.where(is_trade, EventKind.TRADE, EventKind.SET_LEVEL)
    out["side"][body] = np.where(t == 0, s, np.where(is_trade, aggressor, -aggressor))
    out["price"][body] = np.where(t == 0, np.where(s == 1, mid_after[step] - 1 - depth[step],
                                                   mid_after[step] + 1 + depth[step]), touch)
    out["qty"][body] = np.where(t == 0, qty[step], np.where(is_trade, tqty[step], np.where(t == 2, 0, qty[step])))
    out["flags"][body] = np.where(last_of_step, Flag.BATCH_END, 0)
    out["ts_local"] = out["ts_exch"] + feed_latency_ns
    return out


def tile(events, n_events, gap_ns=2_000_000_000):
    """`events` repeated until n_events (the last copy cut), each copy shifted (both
    clocks) to start gap_ns after the previous one's last timestamp."""
    reps = -(-n_events // len(events))
    lo = min(int(events["ts_exch"].min()), int(events["ts_local"].min()))
    hi = max(int(events["ts_exch"].max()), int(events["ts_local"].max()))
    period = hi - lo + gap_ns
    out = np.concatenate([events] * reps)[:n_events]
    shift = (np.arange(len(out)) // len(events)).astype(np.int64) * period
    out["ts_exch"] += shift
    out["ts_local"] += shift
    return out


class Requoter(Strategy):
    """Every 100 ms: cancel every open order, post 1 lot post-only at the local best bid and ask."""

    interval_ns = INTERVAL_NS

    def __init__(self):
        self.wakes = 0

    def on_timer(self, ctx):
        self.wakes += 1
        for oid in ctx.open_orders():
            ctx.cancel(oid)
        bid = ctx.best_bid()
        if bid is not None:
            ctx.buy(bid[0], 1, tif=TimeInForce.POST_ONLY)
        ask = ctx.best_ask()
        if ask is not None:
            ctx.sell(ask[0], 1, tif=TimeInForce.POST_ONLY)


class IdleTimer(Strategy):
    """The timer alone: wakes every 100 ms and does nothing (the cost of a wake-up)."""

    interval_ns = INTERVAL_NS


class Reader(Strategy):
    """Wakes every 100 ms and reads its open orders and the local best bid and ask, sends nothing."""

    interval_ns = INTERVAL_NS

    def on_timer(self, ctx):
        ctx.open_orders()
        ctx.best_bid()
        ctx.best_ask()


def quote(data, instrument=None):
    """The quoting run: (result, timer wake-ups)."""
    strategy = Requoter()
    result = Backtest(data, strategy, latency=Constant(**LATENCY), instrument=instrument).run()
    return result, strategy.wakes


def replay(data, instrument=None):
    """The same replay with no strategy, driven to the end: the loop's upper bound."""
    bt = Backtest(data, None, latency=Constant(**LATENCY), instrument=instrument)
    while bt.elapse(1 << 60):
        pass
    return bt.result()


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_l2(N_SYNTHETIC, seed=1)


@pytest.fixture(scope="module")
def binance():
    from lobsim.data import read_binance

    if not USDM:
        pytest.skip("the Binance USD-M capture (../shared/data/binance/usdm/*.gz) is absent")
    ev = read_binance([str(p) for p in USDM])
    return tile(ev.array, N_BINANCE), ev.instrument


def _density(events):
    span_ns = int(events["ts_exch"][-1] - events["ts_exch"][0])
    return len(events) / (span_ns / INTERVAL_NS)


def _bench(benchmark, name, fn, data, n, rounds=3):
    seen = {}

    def run():
        seen["out"] = fn(data)

    benchmark.pedantic(run, rounds=rounds, iterations=1)
    report(benchmark, name, n)
    return seen["out"]


def test_quote_synthetic(benchmark, synthetic):
    """Requoter on the synthetic L2 stream."""
    result, wakes = _bench(benchmark, f"Requoter, synthetic L2 ({_density(synthetic):.0f} events/100 ms)",
                           quote, synthetic, len(synthetic))
    print(f"  {len(result.fills):,} fills, {len(result.orders):,} order updates, {wakes:,} timer wake-ups")


def test_replay_synthetic(benchmark, synthetic):
    """No strategy: the upper bound on the same stream."""
    _bench(benchmark, "no strategy (elapse to the end), synthetic L2", replay, synthetic, len(synthetic))


@pytest.mark.parametrize("strategy", [IdleTimer, Reader], ids=lambda c: c.__name__)
def test_strategy_cost_synthetic(benchmark, synthetic, strategy):
    """Where the time goes between the replay and the Requoter: the timer wake-ups alone,
    then reading the view at each; the rest of the Requoter's cost is its orders (four
    requests per wake-up, their answers and the wake-ups that deliver them)."""
    _bench(benchmark, f"{strategy.__name__} (no orders), synthetic L2",
           lambda d: Backtest(d, strategy(), latency=Constant(**LATENCY)).run(), synthetic, len(synthetic))


@needs_usdm
def test_quote_binance(benchmark, binance):
    events, instrument = binance
    result, wakes = _bench(benchmark, f"Requoter, Binance USD-M tiled ({_density(events):.0f} events/100 ms)",
                           lambda d: quote(d, instrument), events, len(events))
    print(f"  {len(result.fills):,} fills, {len(result.orders):,} order updates, {wakes:,} timer wake-ups; "
          f"clock offset {result.clock_offset_ns / 1e9:.3f} s")


@needs_usdm
def test_replay_binance(benchmark, binance):
    events, instrument = binance
    _bench(benchmark, "no strategy (elapse to the end), Binance USD-M tiled", lambda d: replay(d, instrument),
           events, len(events))


# -- peak memory in a fresh process --------------------------------------------------

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
mode, source, path = sys.argv[1], sys.argv[2], sys.argv[3]
import numpy as np
import bench_backtest as b
from lobsim import Instrument


def mib(field):
    # Linux: VmRSS (now) or VmHWM (peak) of this process; elsewhere ru_maxrss.
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)


if source == "npy":
    data = np.load(path)
    instrument = Instrument(*sys.argv[5:8])
    n = len(data)
else:  # a Parquet file, streamed
    import lobsim.data.store as store
    data, instrument, n = path, None, store.file_rows(path)
base = mib("VmRSS")
t = time.perf_counter()
if mode == "quote":
    result, wakes = b.quote(data, instrument)
else:
    result, wakes = b.replay(data, instrument), 0
secs = time.perf_counter() - t
print(json.dumps({"secs": secs, "events": n, "fills": len(result.fills), "orders": len(result.orders),
                  "base_mib": base, "peak_mib": mib("VmHWM")}))
"""


def run_child(mode, source, path, instrument):
    """One run in a fresh interpreter -> its JSON line (secs, events, fills, base_mib, peak_mib)."""
    args = [str(instrument.symbol), str(instrument.tick_size), str(instrument.lot_size)]
    p = subprocess.run([sys.executable, "-c", CHILD, mode, source, str(path), str(Path(__file__).parent), *args],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def print_child(name, r, streamed=False):
    before = "interpreter and imports; the data streams from the file" if streamed else \
        "interpreter, imports and the data array"
    print(f"\n{name}: {r['events']:,} events in {r['secs']:.2f} s = {r['events'] / r['secs']:,.0f} events/s, "
          f"{r['fills']:,} fills, {r['orders']:,} order updates, peak RSS {r['peak_mib']:,.0f} MiB "
          f"(before the run: {r['base_mib']:,.0f} MiB = {before})")


@pytest.fixture(scope="module")
def synthetic_npy(synthetic, tmp_path_factory):
    path = tmp_path_factory.mktemp("bt") / "synthetic.npy"
    np.save(path, synthetic)
    return path


@pytest.fixture(scope="module")
def binance_npy(binance, tmp_path_factory):
    events, instrument = binance
    path = tmp_path_factory.mktemp("bt") / "binance.npy"
    np.save(path, events)
    return path, instrument


@pytest.mark.parametrize("mode", ["quote", "replay"])
def test_memory_synthetic(synthetic_npy, mode):
    print_child(f"{'Requoter' if mode == 'quote' else 'no strategy'}, synthetic L2 in memory (fresh process)",
                run_child(mode, "npy", synthetic_npy, SYNTHETIC_INSTRUMENT))


@needs_usdm
@pytest.mark.parametrize("mode", ["quote", "replay"])
def test_memory_binance(binance_npy, mode):
    path, instrument = binance_npy
    print_child(f"{'Requoter' if mode == 'quote' else 'no strategy'}, Binance USD-M tiled in memory (fresh process)",
                run_child(mode, "npy", path, instrument))


def _write_parquet(path, n):
    from lobsim.data.store import EventWriter

    step = 4_000_000
    end = 0
    with EventWriter(path, SYNTHETIC_INSTRUMENT) as w:
        for i in range(0, n, step):  # blocks of the stream, each from its own seed, a CLEAR between them
            chunk = synthetic_l2(min(step, n - i), seed=1 + i // step)
            if i:
                shift = end + 1_000_000_000 - int(chunk["ts_exch"][0])
                chunk["ts_exch"] += shift
                chunk["ts_local"] += shift
                chunk[0] = (chunk["ts_exch"][0], chunk["ts_local"][0], 0, 0, 0, 0, EventKind.CLEAR, Flag.BATCH_END, 0)
            end = int(chunk["ts_local"][-1])
            w.write(chunk)


@pytest.mark.parametrize("n", [N_SYNTHETIC] + ([N_BIG] if BIG else []), ids=lambda n: f"{n // 1_000_000}M")
def test_memory_parquet_stream(tmp_path, n):
    """Requoter streaming a Parquet file: memory bounded by the chunks plus the result records."""
    path = tmp_path / "synthetic.parquet"
    _write_parquet(path, n)
    print_child(f"Requoter, synthetic L2 streamed from Parquet {n // 1_000_000}M (fresh process)",
                run_child("quote", "parquet", path, SYNTHETIC_INSTRUMENT), streamed=True)


@needs_big
def test_memory_synthetic_big(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, synthetic_l2(N_BIG, seed=2))
    for mode in ("quote", "replay"):
        print_child(f"{'Requoter' if mode == 'quote' else 'no strategy'}, synthetic L2 {N_BIG // 1_000_000}M in memory "
                    "(fresh process)", run_child(mode, "npy", path, SYNTHETIC_INSTRUMENT))


# -- hftbacktest's equivalent (optional) ------------------------------------------------

def test_hftbacktest_equivalent(synthetic, request):
    """The same quoting rule in hftbacktest (numba loop over its Rust core), where installed."""
    xc = pytest.importorskip("hftbacktest_crosscheck")
    reason = xc.hftbacktest_missing()
    if reason:
        pytest.skip(reason)
    print(f"\nhftbacktest numba warm-up (compiling the quoting loop): {xc.warm_up():.2f} s, not counted below")
    datasets = [("synthetic L2", synthetic, float(SYNTHETIC_INSTRUMENT.tick_size), 1.0)]
    if USDM:
        events, instrument = request.getfixturevalue("binance")
        datasets.append(("Binance USD-M tiled", events, float(instrument.tick_size), float(instrument.lot_size)))
    for name, events, tick, lot in datasets:
        offset, _ = xc.lobsim_local_clock(events)
        hev = xc.to_hftbacktest(events, tick, lot)
        start = int(events["ts_local"][0]) + offset
        runs = [xc.run_hftbacktest(hev, tick, lot, start, n_events=len(events), **LATENCY) for _ in range(2)]
        best = min(r.seconds for r in runs)
        lob = xc.run_lobsim(events, n_events=len(events), **LATENCY)
        print(f"hftbacktest {name}: {len(events):,} events, best {len(events) / best:,.0f} events/s "
              f"({len(runs[0].fills):,} fills; data conversion excluded); lobsim on the same: "
              f"{len(events) / lob.seconds:,.0f} events/s ({len(lob.fills):,} fills)")
        del hev
