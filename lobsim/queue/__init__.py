"""L2 queue-position models: how much of a level's unexplained decrease was ahead of the user's order.

On L2 data the quantity ahead of a resting user order is an estimate. When
it arrives, ahead = the displayed size at its price; a trade print at its
price reduces ahead by the traded size. A decrease of the level that the
trades printed there since its previous update do not explain is a cancel,
and the model decides how much of it was ahead:

    RiskAverse()   cancels come from behind: ahead = min(ahead, level size)
    PowerProb(n)   the front's share is f(front) / (f(front) + f(back)), f(x) = x**n
    LogProb()      the same with f(x) = log(1 + x)

(front = ahead, back = level size before the decrease - ahead; whatever the
back's share exceeds the back also comes from the front; ahead stays within
[0, level size]. hftbacktest's ProbQueueModel, whose `prob` is the back's
share.) The built-ins run in C. A model of your own is a QueueModel subclass.

On L3 data the queue is exact (the user's order stands in the real FIFO), so
the queue model is ignored.
"""
import math

from lobsim import _args

# csrc/lobsim.h LOB_QUEUE_* (tests/test_abi.py checks them).
_RISK_AVERSE, _POWER, _LOG, _CUSTOM = 0, 1, 2, 3

__all__ = ["QueueModel", "RiskAverse", "PowerProb", "LogProb"]


class _BuiltinQueue:
    """A queue model implemented in C: only parameters cross the boundary."""

    _kind = None
    _power = 0.0

    def _c_config(self, ffi, on_error):
        """(queue_model, queue_power, queue_fn) for lob_sim_config; no callback for a built-in."""
        return self._kind, self._power, ffi.NULL

    def __repr__(self):
        return f"{type(self).__name__}()"


class RiskAverse(_BuiltinQueue):
    """A decrease not explained by trades comes from behind the user's order:
    ahead = min(ahead, level size). The most pessimistic estimate, the default."""

    _kind = _RISK_AVERSE


class PowerProb(_BuiltinQueue):
    """The share of an unexplained decrease taken from the front is
    front**n / (front**n + back**n); n > 0 (larger n: cancels come more from
    the longer side)."""

    _kind = _POWER

    def __init__(self, n):
        self.n = _args.real("n", n)
        if not self.n > 0:
            raise ValueError(f"n must be > 0, got {n}")
        self._power = self.n

    def __repr__(self):
        return f"PowerProb({self.n})"


class LogProb(_BuiltinQueue):
    """The share of an unexplained decrease taken from the front is
    log(1 + front) / (log(1 + front) + log(1 + back))."""

    _kind = _LOG


class QueueModel:
    """Base class of queue models written in Python (no recompiling):

        class HalfAndHalf(QueueModel):
            def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
                return ahead - cancel / 2

    Costs a Python call (about 1 us) per unexplained decrease of a level where
    the user has a resting order; the simulator calls nothing else in Python
    per market event. An exception raised in the model stops the run and is
    re-raised by Backtest.run() (or elapse()/wait_next_feed()).
    """

    def ahead_after_decrease(self, ahead, level_before, level_after, cancel):
        """The new quantity ahead of the user's order (a float, lots).

        Called only when the level where the user's order rests decreases by
        more than the trades printed there explain. ahead: the estimate before
        (float); level_before / level_after: the displayed sizes (int lots);
        cancel: the part of the decrease not explained by trades (int lots).
        The result is clamped to [0, level_after]; NaN is an error.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement ahead_after_decrease")

    def _c_config(self, ffi, on_error):
        """(LOB_QUEUE_CUSTOM, 0, callback) for lob_sim_config.

        `on_error(exc_type, exc, tb)` is cffi's onerror: it receives anything
        the model raises (C gets 0.0 back) so the caller re-raises it after the
        C call returns. The caller keeps the returned callback alive."""
        model = self.ahead_after_decrease

        def call(_user, ahead, level_before, level_after, cancel):
            value = float(model(ahead, level_before, level_after, cancel))
            if math.isnan(value):
                raise ValueError(f"{type(self).__name__}.ahead_after_decrease returned NaN "
                                 f"(ahead={ahead}, level_before={level_before}, level_after={level_after}, "
                                 f"cancel={cancel})")
            return value

        fn = ffi.callback("double(void *, double, int64_t, int64_t, int64_t)", call, onerror=on_error)
        return _CUSTOM, 0.0, fn
