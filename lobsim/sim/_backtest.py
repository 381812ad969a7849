"""Backtest: the Python driver of the C simulator (csrc/venue.c), the strategy's context, the result.

The C loop holds the venue book (data at ts_exch), the local book (data at
ts_local, the strategy's view), the user's orders and the two latency
channels, and returns to Python only at the strategy's wake-ups (timer,
subscribed book change, one of its own order events reaching local time),
when it needs the next chunk of data, or at a time the caller asked for.
Python then calls the strategy and sends its requests. No Python runs per
market event; a wake-up costs a few microseconds plus the strategy's own code.
"""
import os
import time
from collections import deque, namedtuple
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lobsim import _args
from lobsim._core import check, event_buffer, ffi, lib
from lobsim._types import (
    FILLS_DTYPE,
    ORDERS_DTYPE,
    POSITION_DTYPE,
    SIM_MSG_DTYPE,
    SIM_POS_DTYPE,
    EventKind,
    OrderState,
    RejectReason,
    Side,
    TimeInForce,
    check_event_array,
)
from lobsim.book._book import DepthBuffers
from lobsim.data.events import Events
from lobsim.errors import DataError, event_error, status_error
from lobsim.instrument import Instrument
from lobsim.latency import Constant, LatencyModel, PerAction
from lobsim.metrics._compute import per_fill_markouts
from lobsim.metrics._dtypes import MARKOUTS_DTYPE, N_HORIZONS, SIM_MARKOUT_DTYPE
from lobsim.queue import QueueModel, RiskAverse, _BuiltinQueue
from lobsim.sim._risk import RISK_REJECTIONS_DTYPE, Gateway, RiskLimits
from lobsim.sim._strategy import Fees, Strategy

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_MSG_ORDER, _MSG_FILL = 1, 2  # LOB_MSG_*
_REQ_NEW, _REQ_MODIFY = 0, 2  # LOB_REQ_NEW, LOB_REQ_MODIFY
_STATES = {int(st): st for st in OrderState}  # int -> member without the cost of OrderState(int)
_SIDES = {1: Side.BID, -1: Side.ASK}
_FINAL = frozenset(int(st) for st in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED,
                                      OrderState.EXPIRED))
_FEED_BLOCK = 1 << 16         # feed-latency draws: one seeded block per 65536 events (chunking-independent)
_FEED_SALT = 0x6665656421     # keeps feed draws apart from the order-latency draws of the same seed
_MAX_CHUNK = 1 << 26          # events per chunk the automatic growth stops at

OpenOrder = namedtuple("OpenOrder", "price side leaves_qty state")
OpenOrder.__doc__ = "A user order not yet final, as the strategy knows it (from the messages delivered so far)."


@dataclass(frozen=True, repr=False, eq=False)
class BacktestResult:
    """What a run produced.

    fills: FILLS_DTYPE, one row per fill of a user order, in the order they
    happened. orders: ORDERS_DTYPE, one row per order state change in the
    order recorded (NEW when sent, then every answer; a fill also gives its
    PARTIALLY_FILLED / FILLED row). position: POSITION_DTYPE, the account at
    every fill (kind 1, venue time), every timer wake-up (kind 2, local
    time) and every sample_ns of venue time (kind 3, the equity samples).
    clock_offset_ns: ns added to every ts_local of the data (see Backtest).
    events: data events replayed. seed: the run's seed.
    markouts: lobsim.metrics.MARKOUTS_DTYPE, one row per fill (row i is
    fills[i]): the venue mid at the fill and after each horizon of
    markouts_ns, and the per-fill spread captured and markouts in ticks.
    sample_ns: the equity sampling interval. data_start_ns / data_end_ns:
    venue time (ts_exch) of the first and last data event. inventory_limit:
    the strategy's max_inventory (lots) if it had one, else None. params:
    the run's parameters (JSON-able; written by to_parquet).
    risk_rejections: lobsim.sim._risk.RISK_REJECTIONS_DTYPE, the requests the
    pre-trade risk gateway refused (Backtest(risk=)), each with the limit it broke.
    breach: the kill switch's RiskBreach (ts, limit, equity, peak, position,
    cash), or None.

    metrics (computed once), summary(), to_arrow(), to_parquet(dir),
    from_parquet(dir) and plot(path) are in lobsim.metrics.
    """

    fills: np.ndarray
    orders: np.ndarray
    position: np.ndarray
    clock_offset_ns: int
    instrument: Instrument
    events: int
    seed: int
    markouts: np.ndarray = field(default_factory=lambda: np.empty(0, MARKOUTS_DTYPE))
    markouts_ns: tuple = ()
    sample_ns: int = 0
    data_start_ns: int = None
    data_end_ns: int = None
    inventory_limit: float = None
    params: dict = field(default_factory=dict)
    risk_rejections: np.ndarray = field(default_factory=lambda: np.empty(0, RISK_REJECTIONS_DTYPE))
    breach: object = None

    def __repr__(self):
        last = self.position[-1] if len(self.position) else None
        end = f", position {int(last['position'])}, cash {float(last['cash']):.6g}" if last is not None else ""
        return (f"<BacktestResult {self.instrument.symbol}: {self.events:,} events, {len(self.fills):,} fills, "
                f"{len(self.orders):,} order updates{end}>")

    @cached_property
    def metrics(self):
        """lobsim.metrics.compute(self) (inventory_limit = self.inventory_limit), computed on first use.
        A dict: see lobsim.metrics.compute for every key, its unit and definition."""
        from lobsim import metrics

        return metrics.compute(self)

    def summary(self):
        """The metrics as a readable aligned table (str): name, value, unit."""
        from lobsim.metrics import summary

        return summary(self)

    def to_arrow(self):
        """{"fills", "orders", "position", "markouts"}: pyarrow Tables (call .to_pandas() or
        polars.from_arrow on them). Enums stay integers; markouts' 4-wide columns are split
        into after2_0..3 and markout_0..3 (column h: horizon markouts_ns[h])."""
        from lobsim.metrics import to_arrow

        return to_arrow(self)

    def to_parquet(self, path, *, overwrite=False):
        """Write the result into the directory `path`: fills.parquet, orders.parquet,
        position.parquet, markouts.parquet and metrics.json (instrument, run
        parameters, metrics). Written into a temporary directory beside it and
        renamed into place: a failure leaves nothing half-written. An existing
        non-empty `path` is refused unless overwrite=True. Returns the path."""
        from lobsim.metrics import to_parquet

        return to_parquet(self, path, overwrite=overwrite)

    @classmethod
    def from_parquet(cls, path):
        """The BacktestResult written by to_parquet(path); its arrays are bit-identical."""
        from lobsim.metrics import from_parquet

        return from_parquet(path, cls)

    def plot(self, path, *, dpi=100):
        """Write one PNG figure (matplotlib, Agg: no display needed): the venue mid with
        the user's resting quotes and fills, inventory, equity with drawdown shaded,
        and the mean markout against the horizon. Returns the path."""
        from lobsim.metrics import plot

        return plot(self, path, dpi=dpi)


def _copy_fields(src, dtype):
    out = np.empty(len(src), dtype=dtype)
    for name in dtype.names:
        out[name] = src[name]
    return out


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _feed_latency(model, seed, ts_exch, start):
    """Feed latencies of the events at absolute indices start.. (ts_exch given), drawn from `model`.

    Draws come in blocks of _FEED_BLOCK events, each from its own seed, so the
    values do not depend on how the data is chunked. O(n) in C (at most twice
    n when a chunk starts inside a block)."""
    n = len(ts_exch)
    out = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        block, off = divmod(start + i, _FEED_BLOCK)
        take = min(_FEED_BLOCK - off, n - i)
        at = np.empty(off + take, dtype=np.int64)
        at[:off] = ts_exch[i]  # the draws before `off` are made and dropped
        at[off:] = ts_exch[i:i + take]
        entry, _ = model.sample(at, seed=_splitmix64(seed ^ _FEED_SALT ^ _splitmix64(block)))
        out[i:i + take] = entry[off:]
        i += take
    return out


def _horizons(value):
    """markouts_ns: a tuple of up to 4 strictly increasing positive ints (ns)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"markouts_ns must be a sequence of up to {N_HORIZONS} horizons in ns, "
                        f"got {type(value).__name__} {value!r:.80}")
    out = tuple(_args.integer(f"markouts_ns[{i}]", v, 1, INT64_MAX) for i, v in enumerate(value))
    if len(out) > N_HORIZONS:
        raise ValueError(f"markouts_ns holds at most {N_HORIZONS} horizons, got {len(out)}")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"markouts_ns must be strictly increasing, got {out}")
    return out


def _inventory_limit(strategy):
    """The strategy's max_inventory (lots) if it is a positive number, else None."""
    limit = getattr(strategy, "max_inventory", None)
    if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, float, np.integer, np.floating)):
        return None
    limit = limit.item() if isinstance(limit, np.generic) else limit
    return limit if limit > 0 and limit == limit else None


def _jsonable(value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, (tuple, list)) and len(value) <= 16:
        items = [_jsonable(v) for v in value]
        return items if all(v is not None or w is None for v, w in zip(items, value)) else repr(value)[:200]
    return repr(value)[:200]


def _run_params(source, strategy, latency, queue, fees, seed, feed_latency, sample_ns, markouts_ns):
    """The run's parameters as a JSON-able dict (for metrics.json and reports)."""
    strategy_params = {}
    if strategy is not None:
        for name in ("interval_ns", "subscribe_book", "max_inventory"):
            if hasattr(strategy, name):
                strategy_params[name] = _jsonable(getattr(strategy, name))
        for name, value in vars(strategy).items():
            if not name.startswith("_") and not callable(value):
                strategy_params[name] = _jsonable(value)
    return {
        "data": source.name,
        "book_type": "L2" if source.book_type == lib.LOB_BOOK_L2 else "L3",
        "strategy": None if strategy is None else type(strategy).__name__,
        "strategy_params": strategy_params,
        "latency": repr(latency)[:200],
        "queue": repr(queue)[:200] if source.book_type == lib.LOB_BOOK_L2 else "exact (L3)",
        "fees": {"maker": fees.maker, "taker": fees.taker},
        "feed_latency": None if feed_latency is None else repr(feed_latency)[:200],
        "seed": seed,
        "sample_ns": sample_ns,
        "markouts_ns": list(markouts_ns),
    }


def _markouts(raw, fill_msgs, fills, k):
    """result.markouts from the C records (SIM_MARKOUT_DTYPE, one per fill in fill order;
    raw["msg"] indexes the messages, fill_msgs are the indices of the messages that are
    fills) and the fills. A fill without a record gets 0 (unknown) mids."""
    n = len(fills)
    mid2 = np.zeros(n, dtype=np.int64)
    after2 = np.zeros((n, N_HORIZONS), dtype=np.int64)
    if n and len(raw):
        row = np.minimum(np.searchsorted(fill_msgs, raw["msg"]), n - 1)
        ok = fill_msgs[row] == raw["msg"]
        mid2[row[ok]] = raw["mid2"][ok]
        after2[row[ok]] = raw["after2"][ok]
    return per_fill_markouts(fills, mid2, after2, k)


class _Source:
    """The data: an in-memory EVENT_DTYPE array or a lobsim Parquet file read in chunks."""

    def __init__(self, data, instrument, chunk_events):
        self.chunk_events = chunk_events
        if isinstance(data, (str, os.PathLike)):
            from lobsim.data import store  # pyarrow only when a file is given

            self.path = self.name = os.fspath(data)
            self.array = None
            # a file without lobsim metadata (another tool's) needs instrument=
            self.instrument, _ = store.read_metadata(self.path, instrument=instrument)
            self._file_instrument = instrument
            self.book_type = lib.LOB_BOOK_L2 if store.file_book_type(self.path) == "L2" else lib.LOB_BOOK_L3
            self.n = store.file_rows(self.path)
        else:
            if isinstance(data, Events):
                array, default = data.array, data.instrument
            elif isinstance(data, np.ndarray):
                array, default = data, Instrument("UNKNOWN", "1", "1")
            else:
                raise TypeError("data must be an EVENT_DTYPE array, a lobsim.data.Events or the path of a "
                                f"lobsim Parquet file, got {type(data).__name__}")
            check_event_array(array, "data")
            self.path, self.name, self.array = None, "data", array
            self.instrument = default if instrument is None else instrument
            kinds = array["kind"]
            self.book_type = lib.LOB_BOOK_L2 if np.any(kinds == EventKind.SET_LEVEL) else lib.LOB_BOOK_L3
            self.n = len(array)
        if self.n == 0:
            raise ValueError(f"data: {self.name} holds no events")

    def raw_chunks(self, whole=False):
        """EVENT_DTYPE chunks in order (views of an array; fresh arrays from a file).
        whole: an array in one piece (it needs no copy)."""
        if self.array is not None:
            step = self.n if whole else self.chunk_events
            for i in range(0, self.n, step):
                yield self.array[i:i + step]
        else:
            from lobsim.data.store import iter_parquet

            yield from iter_parquet(self.path, self.chunk_events, instrument=self._file_instrument)

    def min_feed_latency(self):
        """min(ts_local - ts_exch) over all events. A file is read twice this way,
        the first time only its two timestamp columns, chunk by chunk (bounded memory)."""
        lo = INT64_MAX
        if self.array is not None:
            for i in range(0, self.n, self.chunk_events):
                c = self.array[i:i + self.chunk_events]
                lo = min(lo, int(np.min(c["ts_local"] - c["ts_exch"])))
            return lo
        from lobsim.data.store import _corrupt, _open

        import pyarrow as pa

        f = _open(self.path)
        try:
            for batch in f.iter_batches(batch_size=self.chunk_events, columns=["ts_exch", "ts_local"]):
                d = batch.column("ts_local").to_numpy(zero_copy_only=False) - \
                    batch.column("ts_exch").to_numpy(zero_copy_only=False)
                if len(d):
                    lo = min(lo, int(d.min()))
        except (OSError, pa.ArrowException) as exc:
            raise _corrupt(self.path, exc, "timestamps") from None
        return lo


class Context:
    """What a strategy sees and does; passed to every Strategy callback (and the
    pull-style Backtest is one itself).

    Prices are integer ticks and quantities integer lots (ctx.instrument
    converts). The book views are the LOCAL book: the data as of local time
    `now`. position, cash and open_orders() are what the strategy knows: the
    messages delivered to it so far, plus its own requests not answered yet.
    Orders sent here leave at `now` and reach the venue after the entry
    latency. A mistake the venue would refuse (unknown id, qty <= 0, ...) is
    not an exception: the request is sent and comes back as a REJECTED order
    update. Only a value of the wrong Python type raises (TypeError).
    """

    __slots__ = ("_bt",)

    def __init__(self, bt):
        self._bt = bt

    @property
    def now(self):
        """Local time in ns."""
        bt = self._bt
        if bt._now is None:
            bt._live()
        return bt._now

    @property
    def instrument(self):
        return self._bt._source.instrument

    @property
    def position(self):
        """Signed position in lots after the fills delivered so far."""
        return self._bt._position

    @property
    def cash(self):
        """Cash in currency after the fills delivered so far: -signed traded value - fees."""
        return self._bt._cash

    def best_bid(self):
        """(price, qty) of the best bid of the local view, or None. O(1)."""
        return self._bt._best(1)

    def best_ask(self):
        """(price, qty) of the best ask of the local view, or None. O(1)."""
        return self._bt._best(-1)

    def depth(self, levels=10, out=None):
        """Top `levels` per side of the local view as a lobsim.book.Depth (best first,
        0-padded), like OrderBook.depth; `out` (an earlier result) is refilled
        in place. O(levels)."""
        return self._bt._depth(levels, out)

    def open_orders(self):
        """{order_id: OpenOrder(price, side, leaves_qty, state)} of the orders not
        final as the strategy knows them (state NEW: sent, not answered yet).
        A fresh dict; O(open orders)."""
        return dict(self._bt._open)

    def buy(self, price, qty, tif=TimeInForce.GTC, *, stop=None, expire_ns=None):
        """Send a buy order (price in ticks, ignored and may be None for
        TimeInForce.MARKET; qty in lots); returns its id (1, 2, 3, ... per
        backtest) at once. stop: a stop price in ticks: the order waits at the
        venue until the trigger (the data's trades after its arrival, or the
        venue mid with Backtest(trigger="mid"), at or above it for a buy), then
        works as a market order (tif MARKET: stop-market) or a limit order at
        `price` (stop-limit). tif DAY expires at Backtest(session_end=); GTD at
        `expire_ns` (absolute venue time, ns)."""
        return self._bt._submit(1, price, qty, tif, stop, expire_ns)

    def sell(self, price, qty, tif=TimeInForce.GTC, *, stop=None, expire_ns=None):
        """Send a sell order (a sell stop triggers at or below its stop price); returns its id at once."""
        return self._bt._submit(-1, price, qty, tif, stop, expire_ns)

    def cancel(self, order_id):
        """Send a cancel; the answer (CANCELLED, or REJECTED with TOO_LATE /
        UNKNOWN_ORDER) comes back as an order update of that order."""
        self._bt._request(lib.lob_sim_cancel, _order_id(order_id))

    def modify(self, order_id, price, qty):
        """Send a modify: new limit price and new open qty. A price change or a
        size increase loses queue priority, a size decrease keeps it. Returns True
        when sent, False when the risk gateway (Backtest(risk=)) refused it: then it
        is not sent, the order stays as it was, and result.risk_rejections names the
        limit (there is no order event for it)."""
        return self._bt._modify(_order_id(order_id), _int64("price", price), _int64("qty", qty))


def _int64(name, value):
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer ({'ticks' if name == 'price' else 'lots'}), "
                        f"got {type(value).__name__} {value!r:.80}")
    value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name} {value} does not fit in int64")
    return value


def _order_id(value):
    if type(value) is int and 0 <= value <= _args.UINT64_MAX:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"order_id must be an integer, got {type(value).__name__} {value!r:.80}")
    value = int(value)
    if not 0 <= value <= _args.UINT64_MAX:
        raise ValueError(f"order_id {value} is not a valid order id (0 .. 2**64 - 1)")
    return value


def _overrides(strategy, name):
    return strategy is not None and getattr(type(strategy), name) is not getattr(Strategy, name)


class Backtest(Context):
    """A backtest of a strategy on replayed data through the simulated venue.

        result = Backtest("data/sample.parquet", Quoter(), latency=Constant(1_000_000),
                          fees=Fees(maker=-0.0001, taker=0.0004), seed=7).run()

    data: an EVENT_DTYPE array (instrument defaults to Instrument("UNKNOWN",
    "1", "1"): one tick and one lot are worth 1), a lobsim.data.Events (its
    instrument), or the path of a lobsim Parquet file (streamed in chunks of
    `chunk_events`: memory is bounded by a few chunks plus the result
    records). The book type (L2/L3) follows the data. A data array is
    borrowed, not copied, unless its ts_local must change: do not modify it
    during the run.

    strategy: a Strategy, or None for the pull style (below).
    latency: order latency, a lobsim.latency model (Constant, LogNormal,
    Empirical, PerAction); None = zero.
    queue: the L2 queue model (lobsim.queue: RiskAverse() by default,
    PowerProb(n), LogProb(), or a QueueModel subclass). On L3 data the queue
    is exact and the model is ignored.
    fees: Fees(maker, taker) rates on traded value; the value of a fill is
    price * qty * tick_size * lot_size of the instrument. None = no fees.
    seed: the seed of every random draw (same inputs and seed: bit-identical
    results).
    instrument: overrides the data's instrument.
    feed_latency: None: the data's own ts_local - ts_exch. If that is negative
    anywhere (the recording host's clock lagged the venue's, as in the
    Binance captures, about -1.27 s), every ts_local is shifted by the same
    amount so that the smallest feed latency is 0 (the clocks cannot be told
    apart from a constant latency); the shift is result.clock_offset_ns. A
    latency model instead replaces ts_local with ts_exch + its entry latency
    drawn at ts_exch (made non-decreasing: a feed is FIFO).
    chunk_events: events per chunk handed to C.
    sample_ns: the equity sampling interval: an account row (result.position
    kind 3) every sample_ns of venue time from the first event's ts_exch,
    with the venue book's bid/ask; Sharpe and Sortino are annualized from it.
    markouts_ns: up to 4 increasing horizons (ns of venue time): for each
    fill the venue mid that long after it is recorded (result.markouts).
    risk: a lobsim.RiskLimits: pre-trade checks of every new order and modify
    on the user's side, before the entry latency (a refused order is REJECTED
    with RejectReason.RISK at once and never sent; result.risk_rejections names
    the limit), and a kill switch on equity checked at every wake-up (on breach:
    cancel all, optionally flatten, no more strategy callbacks, result.breach).

    Pull style: Backtest(data, None, ...) then bt.elapse(ns) /
    bt.wait_next_feed() (False at the end of the data) with the Context
    methods (buy, sell, cancel, modify, best_bid, ...) on `bt` itself, and
    bt.result() at the end. Before the first call, now is the first event's
    ts_local (the events visible then are in the local view).

    Not thread-safe. close() (or the context manager) frees the C simulator;
    results already returned stay valid.
    """

    def __init__(self, data, strategy, *, latency=None, queue=None, fees=None, seed=0, instrument=None,
                 feed_latency=None, chunk_events=1 << 16, sample_ns=1_000_000_000,
                 markouts_ns=(100_000_000, 1_000_000_000, 10_000_000_000, 60_000_000_000), progress=None,
                 risk=None, session_end=None, trigger="trade"):
        if trigger not in ("trade", "mid"):
            raise ValueError(f"trigger must be 'trade' (the data's last trade price) or 'mid' (the venue mid), "
                             f"got {trigger!r}")
        if session_end is not None:
            session_end = _args.integer("session_end", session_end, 1, INT64_MAX)
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a callable(events, now_ns) or None, got {type(progress).__name__}")
        self._progress, self._progress_at = progress, time.perf_counter()
        if strategy is not None and not isinstance(strategy, Strategy):
            what = f"the class {strategy.__name__} (pass an instance)" if isinstance(strategy, type) else \
                type(strategy).__name__
            raise TypeError(f"strategy must be a lobsim.Strategy instance or None, got {what}")
        if latency is None:
            latency = Constant(0)
        elif not isinstance(latency, LatencyModel):
            raise TypeError("latency must be a lobsim.latency model (Constant, LogNormal, Empirical, PerAction), "
                            f"got {type(latency).__name__}")
        if queue is None:
            queue = RiskAverse()
        elif not isinstance(queue, (_BuiltinQueue, QueueModel)):
            what = f"the class {queue.__name__} (pass an instance)" if isinstance(queue, type) else \
                type(queue).__name__
            raise TypeError("queue must be a lobsim.queue model (RiskAverse(), PowerProb(n), LogProb() or a "
                            f"QueueModel subclass instance), got {what}")
        elif isinstance(queue, QueueModel) and type(queue).ahead_after_decrease is QueueModel.ahead_after_decrease:
            raise TypeError(f"queue: {type(queue).__name__} does not implement ahead_after_decrease")
        if fees is None:
            fees = Fees()
        elif not isinstance(fees, Fees):
            raise TypeError(f"fees must be a lobsim.Fees(maker, taker), got {type(fees).__name__}")
        seed = _args.seed(seed)
        if risk is not None and not isinstance(risk, RiskLimits):
            raise TypeError(f"risk must be a lobsim.RiskLimits or None, got {type(risk).__name__}")
        if instrument is not None and not isinstance(instrument, Instrument):
            raise TypeError(f"instrument must be a lobsim.Instrument, got {type(instrument).__name__}")
        if feed_latency is not None and (not isinstance(feed_latency, LatencyModel)
                                         or isinstance(feed_latency, PerAction)):
            raise TypeError("feed_latency must be None or a lobsim.latency model (Constant, LogNormal, "
                            f"Empirical), got {type(feed_latency).__name__}")
        chunk_events = _args.integer("chunk_events", chunk_events, 1, _MAX_CHUNK)
        sample_ns = _args.integer("sample_ns", sample_ns, 1, INT64_MAX)
        markouts_ns = _horizons(markouts_ns)
        interval = getattr(strategy, "interval_ns", None)
        if interval is not None:
            interval = _args.integer("interval_ns", interval, 1, INT64_MAX)
        self._bt = self
        self._source = _Source(data, instrument, chunk_events)
        self._strategy = strategy
        self._ctx = Context(self)
        self._seed = seed
        self._feed_model = feed_latency
        self._offset = 0
        self._in_c = False
        if feed_latency is None:
            lo = self._source.min_feed_latency()
            self._offset = -lo if lo < 0 else 0
            if self._offset > 2**62:
                raise DataError(f"data: ts_local runs {self._offset:,} ns behind ts_exch: no clock offset "
                                "can be applied in int64 (pass feed_latency= to replace the feed latency)")
        self._callbacks = {name: _overrides(strategy, name) for name in ("on_fill", "on_order")}
        self._records = any(self._callbacks.values())  # build numpy records for the callbacks
        self._cb_error = None

        cfg = ffi.new("lob_sim_config *")
        cfg.book_type = self._source.book_type
        if self._source.book_type == lib.LOB_BOOK_L3:
            queue = RiskAverse()  # exact queue on L3: no model (and no callback)
        cfg.queue_model, cfg.queue_power, queue_fn = queue._c_config(ffi, self._queue_error)
        cfg.queue_fn = queue_fn
        models = latency._c_models(ffi)
        for k, m in enumerate(models):
            cfg.latency[k] = m[0]
        cfg.maker_fee, cfg.taker_fee = fees.maker, fees.taker
        inst = self._source.instrument
        cfg.value_per_tick_lot = float(inst.tick_size * inst.lot_size)
        cfg.timer_ns = interval or 0
        cfg.wake_on_book = 1 if strategy is not None and strategy.subscribe_book else 0
        # messages wake the strategy only if it listens (on_fill / on_order); otherwise they
        # are taken in (position, open orders) at its next wake-up
        # (a kill switch checks the equity at every delivery too)
        cfg.wake_on_msgs = 1 if strategy is None or self._records or (risk is not None and risk.kill_switch) else 0
        cfg.seed = seed
        cfg.sample_ns = sample_ns
        cfg.session_end_ns = session_end or 0  # DAY orders expire then (none: DAY is refused as INVALID)
        cfg.trigger_on_mid = 1 if trigger == "mid" else 0
        for h, d in enumerate(markouts_ns):
            cfg.markout_ns[h] = d
        self._sample_ns, self._markouts_ns = sample_ns, markouts_ns
        self._inventory_limit = _inventory_limit(strategy)
        self._params = _run_params(self._source, strategy, latency, queue, fees, seed, feed_latency, sample_ns,
                                   markouts_ns)
        self._params["risk"] = None if risk is None else risk.to_dict()
        self._gateway = None if risk is None else Gateway(risk, cfg.value_per_tick_lot)
        # C borrows these for the run: the latency arrays, the callback (the object
        # ffi.callback returned, not a pointer read back from cfg, owns the closure).
        self._keep = (latency, models, queue_fn)
        out = ffi.new("lob_sim **")
        check(lib.lob_sim_new(cfg, out), "creating the simulator")
        self._sim = ffi.gc(out[0], lib.lob_sim_free)
        self._local = lib.lob_sim_local_book(self._sim)

        self._c_reason = ffi.new("int *")
        self._c_state = ffi.new("lob_sim_state *")
        self._c_bad = ffi.new("int64_t[2]")
        self._c_n = ffi.new("size_t *")
        self._c_px = ffi.new("int64_t *")
        self._c_qty = ffi.new("int64_t *")
        self._depth_buffers = DepthBuffers()

        self._chunks = None        # iterator of transformed chunks
        self._pending = deque()    # (chunk number, first event index, array) fed and not released
        self._fed = 0              # chunks fed
        self._events = 0           # events fed
        self._ts_carry = INT64_MIN
        self._ts_first = self._ts_last = None  # ts_exch of the first and last event fed
        self._data_done = False
        self._now = None
        self._position, self._cash = 0, 0.0
        self._open = {}            # order id -> OpenOrder, as the strategy knows it
        self._next_id = 1
        self._sent = 0             # requests sent
        self._started = self._ended = self._in_run = False
        self._failed = None
        self._result = None

    # -- lifecycle ------------------------------------------------------
    def close(self):
        """Free the C simulator now (idempotent). A finished run's result stays valid."""
        if self._in_run:
            raise RuntimeError("a backtest cannot be closed from its own strategy callback")
        if self._sim is not None:
            ffi.release(self._sim)
            self._sim = self._local = None
            self._pending.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "finished" if self._ended else "running" if self._started else "not started"
        return f"<Backtest {self._source.name} ({self._source.n:,} events) {state}, now={self._now}>"

    @property
    def clock_offset_ns(self):
        """ns added to every ts_local of the data (0 unless the data's clocks disagree)."""
        return self._offset

    # -- push style -----------------------------------------------------
    def run(self):
        """Run to the end of the data, calling the strategy at its wake-ups; return the BacktestResult.

        Exceptions raised by the strategy or a QueueModel propagate; the
        backtest cannot continue after one. Calling run() again returns the
        same result."""
        if self._result is None:
            self._drive(self._run, pull=False)
        return self._result

    def _run(self):
        self._start()
        strategy = self._strategy
        while not self._ended:
            reason = self._advance(INT64_MAX, 0)
            sent = self._sent
            self._wake()  # at END: the messages delivered since the last wake-up (no timer then)
            if reason != lib.LOB_RUN_END:
                continue
            if strategy is not None and not self._halted():  # a kill switch's breach: no on_stop either
                strategy.on_stop(self._ctx)
            while self._sent != sent:  # requests from on_stop (or a flatten): answer and deliver them too
                sent = self._sent
                while True:
                    reason = self._advance(INT64_MAX, 0)
                    self._wake()
                    if reason == lib.LOB_RUN_END:
                        break
            self._finish()

    # -- pull style -----------------------------------------------------
    def elapse(self, ns):
        """Run until local time now + ns (every response due by then delivered, every
        data event with ts_local <= then in the local view). False at the end of
        the data (then result() is ready), True otherwise."""
        return self._drive(self._elapse, _args.ns("ns", ns), pull=True)

    def _elapse(self, ns):
        if self._ended:
            return False
        self._start()
        until = min(self._now + ns, INT64_MAX - 1)
        while True:
            reason = self._advance(until, 0)
            if reason in (lib.LOB_RUN_UNTIL, lib.LOB_RUN_END):
                return self._pull_return(reason)
            self._wake()

    def _pull_return(self, reason):
        """End of a pull-style step: False at the end of the data (result built), else True."""
        if reason == lib.LOB_RUN_END:
            self._wake()  # the messages delivered since the last wake-up
            self._finish()
            return False
        if self._gateway is not None and self._gateway.limits.kill_switch:
            self._wake()  # the kill switch checks at every return too
        return True

    def wait_next_feed(self):
        """Run until the next data event reaches the local view (now = its local
        time). False at the end of the data, True otherwise."""
        return self._drive(self._wait_next_feed, pull=True)

    def _wait_next_feed(self):
        if self._ended:
            return False
        self._start()
        seen = self._c_state.events_local
        while True:
            reason = self._advance(INT64_MAX, 1)
            if reason in (lib.LOB_RUN_FEED, lib.LOB_RUN_END):
                return self._pull_return(reason)
            self._wake()
            if self._c_state.events_local > seen:
                return True

    def result(self):
        """The BacktestResult, once the data is over (elapse/wait_next_feed returned
        False, or run() returned)."""
        if self._result is None:
            raise RuntimeError("the backtest has not reached the end of the data: call run(), or elapse() / "
                               "wait_next_feed() until they return False")
        return self._result

    # -- the loop ---------------------------------------------------------
    def _drive(self, fn, *args, pull):
        """Call fn (a step of the run) with the re-entrance and failure checks.

        An exception in the middle of a run (from the strategy, a QueueModel,
        the data) leaves the C state and the strategy's out of step: the
        backtest refuses to continue after it."""
        if self._failed is not None:
            raise RuntimeError("this backtest stopped on an exception and cannot continue") from self._failed
        if self._in_run:
            raise RuntimeError("run(), elapse() and wait_next_feed() cannot be called from a strategy callback")
        if pull and self._strategy is not None:
            raise RuntimeError("elapse() and wait_next_feed() drive a Backtest(data, None); with a strategy "
                               "use run()")
        if self._sim is None and self._result is None:
            raise ValueError("backtest is closed")
        self._in_run = True
        try:
            return fn(*args)
        except BaseException as exc:
            self._failed = exc
            raise
        finally:
            self._in_run = False

    def _start(self):
        """Feed the first chunk and run to its first event's local time; call on_start."""
        if self._started:
            return
        self._started = True
        whole = self._feed_model is None and not self._offset
        self._chunks = self._transformed(self._source.raw_chunks(whole=whole))
        self._feed_next()
        t0 = int(self._pending[0][2]["ts_local"][0])
        self._now = t0
        while self._advance(t0, 0) not in (lib.LOB_RUN_UNTIL, lib.LOB_RUN_END):
            pass  # only book-change wake-ups can happen before t0: on_start reads the book
        self._now = t0
        if self._strategy is not None:
            self._strategy.on_start(self._ctx)

    def _transformed(self, raw):
        """Chunks with ts_local corrected (clock offset or feed-latency model); copies only then."""
        start = 0
        for chunk in raw:
            if not len(chunk):
                continue
            if self._feed_model is not None:
                c = chunk.copy()
                ts = c["ts_exch"] + _feed_latency(self._feed_model, self._seed, c["ts_exch"], start)
                ts[0] = max(ts[0], self._ts_carry)
                np.maximum.accumulate(ts, out=ts)
                self._ts_carry = int(ts[-1])
                c["ts_local"] = ts
                chunk = c
            elif self._offset:
                chunk = chunk.copy()
                chunk["ts_local"] += self._offset
            start += len(chunk)
            yield chunk

    def _feed_next(self):
        """Give C the next chunk, or tell it the data is over."""
        if self._data_done:
            return
        # If the local view lags the venue by many chunks (large feed latency),
        # chunks pile up in C (at most 8): grow the chunk so the lag fits.
        # (chunk_events sets how the data is read; C is fed at least 65,536 events at a
        # time so that a feed latency of many events never runs out of chunk slots)
        want = max(self._source.chunk_events, 1 << 16) << max(0, len(self._pending) - 3)
        parts, n = [], 0
        for chunk in self._chunks:
            parts.append(chunk)
            n += len(chunk)
            if n >= want:
                break
        if not parts:
            self._data_done = True
            check(lib.lob_sim_end_data(self._sim), "end of data")
            return
        chunk = parts[0] if len(parts) == 1 else np.concatenate(parts)
        # the venue replays in ts_exch order: a step back in time cannot be placed
        ts = chunk["ts_exch"]
        prev = np.concatenate(([ts[0] if self._ts_last is None else self._ts_last], ts[:-1]))
        back = np.flatnonzero(ts < prev)
        if len(back):
            k = int(back[0])
            raise DataError(f"event {self._events + k}: ts_exch {int(ts[k])} is before the previous event's "
                            f"{int(prev[k])}; the data must be in venue order", file=self._source.name)
        if self._ts_first is None:
            self._ts_first = int(chunk["ts_exch"][0])
        self._ts_last = int(chunk["ts_exch"][-1])
        chunk, ptr, n = event_buffer(chunk, "data")
        rc = lib.lob_sim_feed(self._sim, ptr, n)
        if rc == lib.LOB_ERR_CAPACITY:
            raise ValueError(f"data: the local view lags the venue by more than {self._events - self._pending[0][1]:,} "
                             "events (feed latency too large for chunk_events); raise chunk_events")
        check(rc, "feeding data")
        self._pending.append((self._fed, self._events, chunk))
        self._fed += 1
        self._events += n

    def _advance(self, until, stop_on_feed):
        """lob_sim_run until it returns something other than NEED_DATA (fed meanwhile)."""
        while True:
            self._in_c = True  # a QueueModel callback may run inside: no requests then
            try:
                rc = lib.lob_sim_run(self._sim, until, stop_on_feed, self._c_reason, self._c_state,
                                     self._c_bad, self._c_bad + 1)
            finally:
                self._in_c = False
            if self._cb_error is not None:
                exc, self._cb_error = self._cb_error, None
                raise exc
            if rc < 0:
                raise self._run_error(rc)
            self._now = self._c_state.now
            reason = self._c_reason[0]
            if self._progress is not None and time.perf_counter() - self._progress_at > 0.25:
                self._progress_at = time.perf_counter()  # at most four reports a second
                self._progress(int(self._c_state.events_venue), int(self._now))
            if reason != lib.LOB_RUN_NEED_DATA:
                return reason
            released = lib.lob_sim_released(self._sim)
            while self._pending and self._pending[0][0] < released:
                self._pending.popleft()
            self._feed_next()

    def _run_error(self, rc):
        number, index = int(self._c_bad[0]), int(self._c_bad[1])
        for chunk_no, first, chunk in self._pending:
            if chunk_no == number and 0 <= index < len(chunk):
                exc = event_error(rc, first + index, chunk[index], "backtest")
                err = DataError(f"event {first + index}: {exc.event_detail}", file=self._source.name)
                err.event_index, err.event_detail = first + index, exc.event_detail
                return err
        return status_error(rc, "backtest")

    def _queue_error(self, exc_type, exc, tb):
        """cffi onerror of the QueueModel callback: keep the first exception for _advance to raise."""
        if self._cb_error is None:
            self._cb_error = exc.with_traceback(tb)
        return float("nan")  # C keeps the old estimate; the run stops at its next return

    def _wake(self):
        """Deliver a wake-up: messages (on_fill / on_order), then on_book, then on_timer."""
        st = self._c_state
        if self._gateway is not None and self._gateway.limits.kill_switch:
            self._risk_wake(st)
            if self._halted():
                return
        if st.delivered_end > st.delivered_begin:
            self._deliver(st.delivered_begin, st.delivered_end)
        strategy = self._strategy
        if strategy is None:
            return
        if st.book_changed and strategy.subscribe_book:
            strategy.on_book(self._ctx)
        if st.timer:
            strategy.on_timer(self._ctx)

    def _deliver(self, begin, end, quiet=False):
        """Messages [begin, end) of the delivery list reached the strategy: update what it
        knows (position, cash, open orders) and call on_fill / on_order, one message at
        a time, in delivery order (quiet: no callbacks). O(messages)."""
        dlv = lib.lob_sim_delivered(self._sim, self._c_n)
        ptr = lib.lob_sim_msgs(self._sim, self._c_n)
        know = self._know if self._gateway is None else self._know_risk
        if quiet or not self._records:  # no Python runs between these reads: the C arrays stay put
            for k in range(begin, end):
                m = ptr[dlv[k]]
                know(m.kind, m.order_id, m.price, m.leaves_qty, m.position, m.cash, m.state, m.request)
            return
        idx = [dlv[k] for k in range(begin, end)]
        lo = min(idx)
        span = np.frombuffer(ffi.buffer(ptr + lo, (max(idx) + 1 - lo) * SIM_MSG_DTYPE.itemsize), dtype=SIM_MSG_DTYPE)
        msgs = span[[i - lo for i in idx]]  # a copy: the strategy's requests may move the C array
        fills, orders = _copy_fields(msgs, FILLS_DTYPE), _copy_fields(msgs, ORDERS_DTYPE)
        strategy, ctx = self._strategy, self._ctx
        on_fill, on_order = self._callbacks["on_fill"], self._callbacks["on_order"]
        for i, (_, _, oid, price, _, leaves, position, _, cash, _, kind, state, _, _, _, request, _) in \
                enumerate(msgs.tolist()):
            know(kind, oid, price, leaves, position, cash, state, request)
            if kind == _MSG_FILL:
                if on_fill:
                    strategy.on_fill(ctx, fills[i])
            elif on_order:
                strategy.on_order(ctx, orders[i])

    def _know(self, kind, oid, price, leaves, position, cash, state, request):
        """What one delivered message tells the strategy (position, cash, open orders)."""
        open_ = self._open
        if kind == _MSG_FILL:
            self._position, self._cash = position, cash
            o = open_.get(oid)
            if o is not None:
                if leaves:
                    open_[oid] = OpenOrder(o[0], o[1], leaves, OrderState.PARTIALLY_FILLED)
                else:
                    del open_[oid]
        elif state == OrderState.REJECTED and request != _REQ_NEW:
            pass  # a refused cancel/modify leaves the order as it was
        elif state in _FINAL:
            open_.pop(oid, None)
        else:
            o = open_.get(oid)
            if o is not None:
                open_[oid] = OpenOrder(price, o[1], leaves, _STATES[state])

    def _know_risk(self, kind, oid, price, leaves, position, cash, state, request):
        """_know, and the risk gateway's record of pending modifies."""
        self._know(kind, oid, price, leaves, position, cash, state, request)
        gw = self._gateway
        if kind != _MSG_FILL and request == _REQ_MODIFY:
            gw.modify_answered(oid)
        if oid not in self._open:
            gw.order_final(oid)

    # -- the risk gateway's kill switch -------------------------------------
    def _halted(self):
        return self._gateway is not None and self._gateway.breach is not None

    def _risk_wake(self, st):
        """The kill switch at a wake-up: check equity after this wake-up's messages, before
        any callback; on breach cancel every open order; once halted, take messages in
        without callbacks and flatten if asked."""
        gw = self._gateway
        begin, end = st.delivered_begin, st.delivered_end
        if gw.breach is None:
            position, cash = self._position, self._cash
            if end > begin:  # the account after this wake-up's fills (the last fill delivered)
                dlv = lib.lob_sim_delivered(self._sim, self._c_n)
                ptr = lib.lob_sim_msgs(self._sim, self._c_n)
                for k in range(end - 1, begin - 1, -1):
                    m = ptr[dlv[k]]
                    if m.kind == _MSG_FILL:
                        position, cash = m.position, m.cash
                        break
            if gw.check_equity(self._now, position, cash, self._best(1), self._best(-1)) is None:
                return
            if end > begin:
                self._deliver(begin, end, quiet=True)
            for oid in list(self._open):
                self._request(lib.lob_sim_cancel, oid)
        elif end > begin:
            self._deliver(begin, end, quiet=True)
        if not gw.limits.flatten_on_breach or self._open or not self._position:
            return
        # flatten: once every order is answered (no fill can still be on its way) send a
        # market order for the position; retried at later timer / book wake-ups, and once
        # after the data ended, if it did not close the position
        if gw.flatten_at is not None and (self._now <= gw.flatten_at or not (st.timer or st.book_changed)):
            if not (self._ended_data() and not gw.end_flatten):
                return
        if self._ended_data():
            gw.end_flatten = True
        gw.flatten_at = self._now
        gw.flatten_id = self._send_new(-1 if self._position > 0 else 1, 0, abs(self._position),
                                       int(TimeInForce.MARKET))

    def _ended_data(self):
        return self._c_reason[0] == lib.LOB_RUN_END

    def _finish(self):
        """Every response delivered: build the result from the C records."""
        ptr = lib.lob_sim_msgs(self._sim, self._c_n)
        msgs = np.frombuffer(ffi.buffer(ptr, self._c_n[0] * SIM_MSG_DTYPE.itemsize), dtype=SIM_MSG_DTYPE) \
            if self._c_n[0] else np.empty(0, SIM_MSG_DTYPE)
        ptr = lib.lob_sim_positions(self._sim, self._c_n)
        pos = np.frombuffer(ffi.buffer(ptr, self._c_n[0] * SIM_POS_DTYPE.itemsize), dtype=SIM_POS_DTYPE) \
            if self._c_n[0] else np.empty(0, SIM_POS_DTYPE)
        ptr = lib.lob_sim_markouts(self._sim, self._c_n)
        mk = np.frombuffer(ffi.buffer(ptr, self._c_n[0] * SIM_MARKOUT_DTYPE.itemsize), dtype=SIM_MARKOUT_DTYPE) \
            if self._c_n[0] else np.empty(0, SIM_MARKOUT_DTYPE)
        is_fill = msgs["kind"] == _MSG_FILL
        fills = _copy_fields(msgs[is_fill], FILLS_DTYPE)
        self._result = BacktestResult(
            fills=fills,
            orders=_copy_fields(msgs[msgs["kind"] == _MSG_ORDER], ORDERS_DTYPE),
            position=_copy_fields(pos, POSITION_DTYPE),
            clock_offset_ns=self._offset,
            instrument=self._source.instrument,
            events=self._events,
            seed=self._seed,
            markouts=_markouts(mk, np.flatnonzero(is_fill), fills, len(self._markouts_ns)),
            markouts_ns=self._markouts_ns,
            sample_ns=self._sample_ns,
            data_start_ns=self._ts_first,
            data_end_ns=self._ts_last,
            inventory_limit=self._inventory_limit,
            params=self._params,
            risk_rejections=(self._gateway.rejections() if self._gateway is not None
                             else np.empty(0, RISK_REJECTIONS_DTYPE)),
            breach=None if self._gateway is None else self._gateway.breach,
        )
        self._ended = True
        self._pending.clear()

    # -- the Context's implementation -------------------------------------
    def _live(self):
        """Check the simulator exists; start it first if no step ran yet (pull style)."""
        if self._sim is None:
            raise ValueError("backtest is closed")
        if not self._started:  # pull style before the first step: now = the first event's ts_local
            self._drive(self._start, pull=False)

    def _best(self, side):
        self._live()
        if lib.lob_book_best(self._local, side, self._c_px, self._c_qty) == 0:
            return None
        return self._c_px[0], self._c_qty[0]

    def _depth(self, levels, out):
        self._live()
        buf = self._depth_buffers
        levels, out, ptrs = buf.prepare(levels, out)
        check(lib.lob_book_depth(self._local, levels, *ptrs, buf.n, buf.n + 1), "depth")
        return out

    def _request(self, cfunc, *args):
        if self._result is not None:
            raise RuntimeError("the backtest is over: no more requests can be sent")
        if self._in_c:
            raise RuntimeError("orders cannot be sent while the simulator runs (e.g. from a QueueModel): "
                               "send them from the strategy's callbacks")
        if not self._started:
            self._live()
        rc = cfunc(self._sim, *args)
        if rc < 0:
            check(rc, "sending a request")
        self._sent += 1

    def _submit(self, side, price, qty, tif, stop=None, expire_ns=None):
        if type(tif) is not TimeInForce:
            if isinstance(tif, (bool, np.bool_)) or not isinstance(tif, (int, np.integer)):
                raise TypeError(f"tif must be a lobsim.TimeInForce, got {type(tif).__name__} {tif!r:.80}")
            if not _INT32_MIN <= int(tif) <= _INT32_MAX:
                raise ValueError(f"tif {tif} is not a time in force")
        if price is None and tif == TimeInForce.MARKET:
            price = 0  # ignored for a market order
        price, qty = _int64("price", price), _int64("qty", qty)
        gw = self._gateway
        if gw is not None:
            self._live()
            limit = gw.check_new(side, price, qty, int(tif), self._position, self._open, self._best(1),
                                 self._best(-1))
            if limit is not None:  # refused by the risk gateway: never sent, rejected (RISK) at once
                oid = self._next_id
                self._request(lib.lob_sim_reject, oid, side, price, qty, int(tif), int(RejectReason.RISK))
                self._next_id += 1
                gw.refuse(self._now, oid, _REQ_NEW, side, price, qty, limit)
                return oid
        return self._send_new(side, price, qty, int(tif), stop, expire_ns)

    def _send_new(self, side, price, qty, tif, stop=None, expire_ns=None):
        oid = self._next_id
        if stop is None and expire_ns is None:
            self._request(lib.lob_sim_submit, oid, side, price, qty, tif)
        else:
            stop_px = 0 if stop is None else _int64("stop", stop)
            expire = 0 if expire_ns is None else _int64("expire_ns", expire_ns)
            if expire_ns is not None and tif != TimeInForce.GTD:
                raise ValueError("expire_ns is for tif=TimeInForce.GTD (DAY orders expire at Backtest(session_end=))")
            self._request(lib.lob_sim_submit_ex, oid, side, price, qty, tif, stop is not None, stop_px, expire)
        self._next_id += 1
        self._open[oid] = OpenOrder(price, _SIDES[side], qty, OrderState.NEW)
        return oid

    def _modify(self, oid, price, qty):
        gw = self._gateway
        if gw is not None:
            self._live()
            order = self._open.get(oid)
            limit = "kill_switch" if gw.breach is not None else None
            if order is not None and limit is None:  # unknown / final ids are sent: the venue answers them
                limit = gw.check_modify(oid, order, price, qty, self._position, self._open, self._best(1),
                                        self._best(-1))
            if limit is not None:
                if self._result is not None:
                    raise RuntimeError("the backtest is over: no more requests can be sent")
                side = 0 if order is None else int(order.side)
                gw.refuse(self._now, oid, _REQ_MODIFY, side, price, qty, limit)
                # the strategy hears of it as an order update: REJECTED (RISK) of that order, unchanged
                self._request(lib.lob_sim_reject_request, oid, _REQ_MODIFY, side, price, qty, int(RejectReason.RISK))
                return False
        self._request(lib.lob_sim_modify, oid, price, qty)
        if gw is not None and oid in self._open:
            gw.modify_sent(oid, qty)
        return True
