"""Order latency models: entry (local -> venue) and response (venue -> local) latency.

    from lobsim.latency import Constant, LogNormal, Empirical, PerAction

    Constant(entry_ns=1_000_000)                           # 1 ms each way
    LogNormal(median_ns=800_000, sigma=0.5, min_ns=200_000, max_ns=20_000_000)
    Empirical(send_ts, venue_ts, response_ts)              # a recorded order log
    PerAction(new=Constant(1_000_000), cancel=Constant(300_000))  # modify falls back to new

The models are parameters of the C simulator (csrc/venue.c, `lob_latency`):
latencies are drawn in C from the run's seeded generator, so a run is
deterministic for a given seed and no Python runs per order. Each model is
validated when it is built: a negative latency raises ValueError naming the
parameter, a value that is not a number raises TypeError.

`model.sample(at_ns, seed, kind)` draws latencies the way a run does, for
requests sent at `at_ns` (for inspection, and for `Backtest(feed_latency=...)`).
"""
import numpy as np

from lobsim import _args

# csrc/lobsim.h LOB_LAT_* and LOB_REQ_* (tests/test_abi.py checks them).
_LAT_CONSTANT, _LAT_LOGNORMAL, _LAT_EMPIRICAL = 0, 1, 2
_KINDS = {"new": 0, "cancel": 1, "modify": 2}

__all__ = ["LatencyModel", "Constant", "LogNormal", "Empirical", "PerAction"]


class LatencyModel:
    """Base of the latency models. Latencies are drawn in C, so new models are
    added there; use Empirical to replay any recorded latency series."""

    def _fill(self, c, ffi):
        """Write this model's parameters into one `lob_latency` struct (cdata of `ffi`)."""
        raise NotImplementedError

    def _model_for(self, kind):
        """The single model used for requests of `kind` ("new", "cancel", "modify")."""
        return self

    def _c_models(self, ffi):
        """Three `lob_latency *` cdata for new, cancel and modify requests.

        Empirical models lend their arrays to C: keep this model alive as long
        as a simulator uses the structs."""
        out = []
        for kind in _KINDS:
            c = ffi.new("lob_latency *")
            self._model_for(kind)._fill(c, ffi)
            out.append(c)
        return tuple(out)

    def sample(self, at_ns, seed=0, kind="new"):
        """(entry, response) int64 arrays: latencies of requests of `kind` sent at `at_ns`.

        Drawn by C exactly as a run does (same formulas, a generator seeded
        like a run's with `seed`; for each time an entry then a response
        draw), so the values are deterministic and follow the model's
        distribution; inside a run the draws are shared by all of its
        requests and responses in the order they happen. O(len(at_ns)) in C.
        """
        from lobsim._core import check, ffi, lib

        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
        seed = _args.seed(seed)
        at = np.asarray(at_ns)
        if at.dtype.kind not in "iu" and at.size:
            raise TypeError(f"at_ns must be integer ns, got dtype {at.dtype}")
        at = np.ascontiguousarray(at.reshape(-1), dtype=np.int64)
        entry = np.empty(len(at), dtype=np.int64)
        response = np.empty(len(at), dtype=np.int64)
        if len(at):
            (c,) = [m for k, m in zip(_KINDS, self._c_models(ffi)) if k == kind]
            ptr = [ffi.cast("int64_t *", ffi.from_buffer(a)) for a in (at, entry, response)]
            check(lib.lob_latency_sample(c, seed, ptr[0], len(at), ptr[1], ptr[2]), "latency sample")
        return entry, response


class Constant(LatencyModel):
    """The same latency for every request: `entry_ns` to the venue, `response_ns`
    back (None = the same as entry_ns)."""

    def __init__(self, entry_ns, response_ns=None):
        self.entry_ns = _args.ns("entry_ns", entry_ns)
        self.response_ns = self.entry_ns if response_ns is None else _args.ns("response_ns", response_ns)

    def _fill(self, c, ffi):
        c.kind = _LAT_CONSTANT
        c.entry_ns = self.entry_ns
        c.response_ns = self.response_ns

    def __repr__(self):
        return f"Constant(entry_ns={self.entry_ns}, response_ns={self.response_ns})"


class LogNormal(LatencyModel):
    """Each latency (entry and response, drawn separately) is
    median_ns * exp(sigma * N(0, 1)), clipped to [min_ns, max_ns] (max_ns None =
    no upper bound), from the run's seeded generator."""

    def __init__(self, median_ns, sigma, min_ns=0, max_ns=None):
        self.median_ns = _args.real("median_ns", median_ns)
        if not self.median_ns > 0:
            raise ValueError(f"median_ns must be > 0 (a latency in ns; use Constant(0) for none), got {median_ns}")
        self.sigma = _args.real("sigma", sigma, lo=0.0)
        self.min_ns = _args.ns("min_ns", min_ns)
        self.max_ns = None if max_ns is None else _args.ns("max_ns", max_ns)
        if self.max_ns is not None and self.max_ns < self.min_ns:
            raise ValueError(f"max_ns ({self.max_ns}) must be >= min_ns ({self.min_ns})")

    def _fill(self, c, ffi):
        c.kind = _LAT_LOGNORMAL
        c.median_ns = self.median_ns
        c.sigma = self.sigma
        c.min_ns = self.min_ns
        c.max_ns = _args.INT64_MAX if self.max_ns is None else self.max_ns

    def __repr__(self):
        return f"LogNormal(median_ns={self.median_ns}, sigma={self.sigma}, min_ns={self.min_ns}, max_ns={self.max_ns})"


def _int_column(name, values):
    a = np.asarray(values)
    if a.dtype.kind not in "iu" and a.size:
        raise TypeError(f"{name} must be an array of integer ns, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {a.shape}")
    if a.dtype.kind == "u" and len(a) and a.max() > _args.INT64_MAX:
        raise ValueError(f"{name} has values beyond int64")
    return np.array(a, dtype=np.int64, order="C", copy=True)  # owned: C borrows it for the run


class Empirical(LatencyModel):
    """Latencies interpolated from a recorded order log: request i was sent at
    send_ts[i], reached the venue at venue_ts[i] and its answer came back at
    response_ts[i] (integer ns, send_ts sorted).

    A request sent at t gets entry latency venue_ts - send_ts and response
    latency response_ts - venue_ts, interpolated linearly between the records
    around t (held constant outside them). A negative venue_ts marks a request
    the venue rejected: a request sent when the nearest earlier record is one
    is rejected (RejectReason.VENUE) and learns it after response_ts - send_ts.
    The arrays are copied (int64) and lent to C for the run. Validation is
    O(n).
    """

    def __init__(self, send_ts, venue_ts, response_ts):
        cols = {name: _int_column(name, v) for name, v in
                (("send_ts", send_ts), ("venue_ts", venue_ts), ("response_ts", response_ts))}
        lengths = {len(a) for a in cols.values()}
        if len(lengths) != 1:
            raise ValueError(f"send_ts, venue_ts and response_ts must have the same length, got "
                             f"{[len(a) for a in cols.values()]}")
        if not lengths.pop():
            raise ValueError("send_ts must hold at least one record")
        send, venue, resp = cols["send_ts"], cols["venue_ts"], cols["response_ts"]
        bad = np.flatnonzero(send[1:] < send[:-1])
        if len(bad):
            raise ValueError(f"send_ts must be sorted (non-decreasing): record {bad[0] + 1} is earlier "
                             "than the one before it")
        ok = venue >= 0
        if not ok.any():
            raise ValueError("venue_ts: every record is a rejection (negative): at least one accepted "
                             "request is needed to know the latencies")
        for name, later, earlier, rows in (("venue_ts", venue, send, ok), ("response_ts", resp, venue, ok),
                                           ("response_ts", resp, send, ~ok)):
            bad = np.flatnonzero(rows & (later < earlier))
            if len(bad):
                raise ValueError(f"{name} gives a negative latency at record {bad[0]} "
                                 f"({int(later[bad[0]])} < {int(earlier[bad[0]])})")
        self.send_ts, self.venue_ts, self.response_ts = send, venue, resp

    def _fill(self, c, ffi):
        c.kind = _LAT_EMPIRICAL
        c.n = len(self.send_ts)
        c.send_ts, c.venue_ts, c.response_ts = (
            ffi.cast("const int64_t *", ffi.from_buffer(a)) for a in (self.send_ts, self.venue_ts, self.response_ts))

    def __repr__(self):
        return f"Empirical(<{len(self.send_ts)} records>)"


class PerAction(LatencyModel):
    """A latency model per request kind; `cancel` and `modify` left out use `new`."""

    def __init__(self, new, cancel=None, modify=None):
        given = {"new": new, "cancel": cancel, "modify": modify}
        for name, model in given.items():
            if model is None and name != "new":
                continue
            if not isinstance(model, LatencyModel) or isinstance(model, PerAction):
                raise TypeError(f"{name} must be a latency model (Constant, LogNormal or Empirical), "
                                f"got {type(model).__name__}")
        self.new = new
        self.cancel = new if cancel is None else cancel
        self.modify = new if modify is None else modify

    def _model_for(self, kind):
        return getattr(self, kind)

    def __repr__(self):
        return f"PerAction(new={self.new!r}, cancel={self.cancel!r}, modify={self.modify!r})"
