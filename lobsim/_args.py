"""Validation of public arguments: one message shape naming the parameter.

A value of the wrong Python type raises TypeError, a value of the right type
out of range raises ValueError; both name the parameter. bools are refused
where numbers are expected (True is an int to Python, never a sensible price
or latency).
"""
import math
import numbers

import numpy as np

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def integer(name, value, lo=None, hi=None):
    """`value` as an int in [lo, hi]; integral floats (1e6) are accepted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r:.80}")
    if not isinstance(value, numbers.Integral):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value}")
    return value


def ns(name, value):
    """A latency or duration in ns: a non-negative int64."""
    value = integer(name, value, hi=INT64_MAX)
    if value < 0:
        raise ValueError(f"{name} must not be negative (a latency or duration in ns), got {value}")
    return value


def real(name, value, lo=None):
    """`value` as a finite float >= lo."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r:.80}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


def seed(value):
    """A run seed: an int in [0, 2**64)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(value).__name__} {value!r:.80}")
    return integer("seed", value, 0, UINT64_MAX)
