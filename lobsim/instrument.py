"""Instrument: exact decimal tick and lot sizes; the only place floats meet ticks.

pyarrow is imported only by parse_decimal_strings, so `import lobsim` stays light.
"""
import operator
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

import numpy as np

from lobsim.errors import DataError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Multiplication in this context is exact: a product needs at most the sum of
# its operands' digits, far below MAX_PREC, and the exponent range is unbounded
# for practical purposes. (The default context would round at 28 digits.)
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
# Division: a quotient below 10**20 that is an integer needs at most 20 digits,
# so 40 digits of precision lose nothing; anything longer raises Inexact.
_DIVIDE = Context(prec=40, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def plain(d):
    """A Decimal as plain positional text without trailing zeros: 10 (not 1E+1), 0.0001 (not 1E-4)."""
    d = Decimal(d).normalize()
    return format(d, "f")


def _decimal(value, what):
    """`value` (str, int, float via its repr, Decimal) as a finite Decimal; DataError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal, np.integer, np.floating)):
        raise DataError(f"{what} {value!r:.80} is not a decimal number")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise DataError(f"{what} {value!r:.80} is not a decimal number") from None
    if not d.is_finite():
        raise DataError(f"{what} {value!r} is not finite")
    return d


def _integer(value, what):
    """An integer count of ticks or lots (int or numpy integer); DataError for anything else (no truncation)."""
    try:
        return operator.index(value)
    except TypeError:
        raise DataError(f"{what} {value!r:.80} is not an integer") from None


def _int_quotient(d, unit):
    """d / unit as an int when it is an exact integer, None when it is not.

    OverflowError when the quotient is an integer outside int64. Bounded work
    whatever the size of d's exponent or digits.
    """
    if d == 0:
        return 0
    mag = d.adjusted() - unit.adjusted()  # |d / unit| lies in (10**(mag - 1), 10**(mag + 1))
    if mag < 0:
        return None  # 0 < |q| < 1
    if mag > 19:
        raise OverflowError  # |q| > 10**19 > int64
    try:
        q = _DIVIDE.divide(d, unit)
    except Inexact:
        return None  # more than 40 significant digits: not an integer below 10**20
    if q != q.to_integral_value():
        return None
    q = int(q)
    if not INT64_MIN <= q <= INT64_MAX:
        raise OverflowError
    return q


@dataclass(frozen=True)
class Instrument:
    """A traded instrument with exact decimal tick and lot sizes.

    Prices convert to integer ticks and sizes to integer lots; a value that is
    not an exact multiple raises DataError naming the value and its source
    instead of being rounded.
    """

    symbol: str
    tick_size: Decimal
    lot_size: Decimal = Decimal(1)

    def __post_init__(self):
        if not isinstance(self.symbol, str):
            raise DataError(f"symbol {self.symbol!r:.80} is not a string")
        for name in ("tick_size", "lot_size"):
            d = _decimal(getattr(self, name), name)
            if d <= 0:
                raise DataError(f"{name} must be positive, got {d}")
            object.__setattr__(self, name, d)

    # -- scalars -----------------------------------------------------------
    def price_to_ticks(self, price, where=None):
        """Exact price (str, int, Decimal) -> int ticks; DataError if not a multiple."""
        return self._to_units(price, self.tick_size, "price", where)

    def qty_to_lots(self, qty, where=None):
        """Exact size -> int lots; DataError if not a multiple of lot_size."""
        return self._to_units(qty, self.lot_size, "size", where)

    def ticks_to_price(self, ticks):
        """int ticks -> exact Decimal price (never rounded, whatever its digits)."""
        return _EXACT.multiply(Decimal(_integer(ticks, "ticks")), self.tick_size)

    def lots_to_qty(self, lots):
        """int lots -> exact Decimal size."""
        return _EXACT.multiply(Decimal(_integer(lots, "lots")), self.lot_size)

    @staticmethod
    def _to_units(value, unit, what, where):
        d = _decimal(value, what)
        try:
            q = _int_quotient(d, unit)
        except OverflowError:
            raise DataError(f"{what} {value} is too large for int64 in units of {unit}", file=where) from None
        if q is None:
            raise DataError(f"{what} {value} is not a multiple of {unit}", file=where)
        return q

    # -- arrays ------------------------------------------------------------
    def prices_from_scaled(self, values, scale, where=None, line_offset=1):
        """Integer prices in units of 1/scale (e.g. LOBSTER USD*10000) -> int64 ticks.

        `line_offset` turns an array index into the line/record number named
        in errors.
        """
        return self._scaled_to_units(values, scale, self.tick_size, "price", where, line_offset)

    def qtys_from_scaled(self, values, scale, where=None, line_offset=1):
        """Integer sizes in units of 1/scale -> int64 lots."""
        return self._scaled_to_units(values, scale, self.lot_size, "size", where, line_offset)

    @staticmethod
    def _scaled_to_units(values, scale, unit, what, where, line_offset):
        values = np.asarray(values, dtype=np.int64)
        step = _EXACT.multiply(unit, Decimal(int(scale)))  # one unit expressed in 1/scale
        if step != step.to_integral_value():
            # unit is finer than the data's resolution: multiply instead
            try:
                factor = _int_quotient(Decimal(1), step)
            except OverflowError:
                factor = None
            if factor is None:
                raise DataError(f"{what} unit {unit} does not fit data scale 1/{scale}", file=where)
            big = np.flatnonzero(np.abs(values) > (2**63 - 1) // factor)  # would wrap in int64
            if len(big):
                i = int(big[0])
                raise DataError(f"{what} {Decimal(int(values[i])) / int(scale)} is too large for int64 in units of "
                                f"{unit}", file=where, line=i + line_offset)
            return values * factor
        too_big = step > INT64_MAX  # then no nonzero int64 value is a multiple (and numpy cannot take it)
        if not too_big:
            step = int(step)
        bad = np.flatnonzero(values) if too_big else np.flatnonzero(values % step)
        if len(bad):
            i = int(bad[0])
            raise DataError(
                f"{what} {Decimal(int(values[i])) / int(scale)} is not a multiple of {unit}",
                file=where,
                line=i + line_offset,
                detail=f"{len(bad)} such values in all",
            )
        return np.zeros_like(values) if too_big else values // step

    # -- whole arrays, both ways ------------------------------------------
    def prices_to_ticks(self, values, where=None):
        """Real prices (array-like) -> int64 ticks, vectorized; DataError at the first inexact one.

        Integer arrays are prices in currency units; float arrays must hold, for
        every element, the float64 nearest to an exact multiple of the tick (what
        `ticks_to_prices` returns, and what parsing "100.25" gives); strings and
        Decimals are exact decimals. Nothing is rounded: any other value raises
        DataError naming it and its index.
        """
        return _array_to_units(values, self.tick_size, "price", where)

    def qtys_to_lots(self, values, where=None):
        """Real sizes (array-like) -> int64 lots, vectorized; same rules as prices_to_ticks."""
        return _array_to_units(values, self.lot_size, "size", where)

    def ticks_to_prices(self, ticks, dtype="float64"):
        """int ticks (array-like) -> real prices.

        dtype="float64": each price is the float64 nearest to the exact decimal
        (so it prints as that decimal when it has at most 15 significant digits);
        DataError if a price has no float64 that converts back to its own tick.
        dtype="decimal": an object array of exact Decimals (never rounded).
        """
        return _units_to_array(ticks, self.tick_size, "price", dtype)

    def lots_to_qtys(self, lots, dtype="float64"):
        """int lots (array-like) -> real sizes; same rules as ticks_to_prices."""
        return _units_to_array(lots, self.lot_size, "size", dtype)

    def to_dict(self):
        return {"symbol": self.symbol, "tick_size": str(self.tick_size), "lot_size": str(self.lot_size)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict; DataError (a ValueError) naming the bad value, KeyError for a missing one."""
        sizes = {k: d[k] for k in ("tick_size", "lot_size")}
        for k, v in sizes.items():
            if not isinstance(v, str):  # to_dict writes exact decimal strings, never floats
                raise DataError(f"{k} {v!r:.80} is not a decimal string")
        return cls(d["symbol"], sizes["tick_size"], sizes["lot_size"])


def _int64_units(units, what):
    """`units` as a 1-d int64 array; DataError (no truncation) for non-integers or values outside int64."""
    a = np.asarray(units)
    if a.dtype.kind == "u":
        big = np.flatnonzero(a > INT64_MAX)
        if len(big):
            raise DataError(f"{what} {int(a[big[0]])} at index {int(big[0])} is too large for int64")
    elif a.dtype.kind not in "i" and not (a.dtype == object or a.size == 0):
        raise DataError(f"{what} must be integers, got an array of {a.dtype}")
    if a.dtype == object:
        return np.array([_integer(v, what) for v in a.ravel()], dtype=np.int64).reshape(a.shape)
    return a.astype(np.int64, copy=False)


def _unit_parts(unit):
    """unit = m * 10**e with m a positive int: (m, e)."""
    _, digits, exp = unit.as_tuple()
    return int("".join(map(str, digits))), int(exp)


def _nearest_floats(units, unit):
    """float64 nearest to each exact units[i] * unit (correctly rounded), vectorized where provably exact."""
    units = np.asarray(units, dtype=np.int64)
    m, e = _unit_parts(unit)
    mult, div = (m * 10**e, 1) if e >= 0 else (m, 10**-e)
    out = np.empty(units.shape, dtype=np.float64)
    lim = 2**53 // mult if mult <= 2**53 else -1
    # |units * mult| <= 2**53 is exact in float64 and 10**k (k <= 22) is exact too, so the
    # IEEE division below is the correctly rounded quotient; anything else goes through Decimal.
    fast = (units >= -lim) & (units <= lim) if (lim >= 0 and div <= 10**22) else np.zeros(units.shape, bool)
    out[fast] = (units[fast] * mult).astype(np.float64) / float(div)
    for i in zip(*np.nonzero(~fast)):
        out[i] = float(_EXACT.multiply(Decimal(int(units[i])), unit))
    return out


def _units_to_array(units, unit, what, dtype):
    units = _int64_units(units, "ticks" if what == "price" else "lots")
    if dtype == "decimal":
        out = np.empty(units.shape, dtype=object)
        for i in zip(*np.nonzero(np.ones(units.shape, bool))):
            out[i] = _EXACT.multiply(Decimal(int(units[i])), unit)
        return out
    if dtype not in ("float64", float, np.float64):
        raise ValueError(f"dtype must be 'float64' or 'decimal', got {dtype!r}")
    out = _nearest_floats(units, unit)
    # a float that is also the nearest to a neighbouring multiple would not convert back to its own
    clash = np.zeros(units.shape, bool)
    lo, hi = units > INT64_MIN, units < INT64_MAX
    clash[lo] |= _nearest_floats(units[lo] - 1, unit) == out[lo]
    clash[hi] |= _nearest_floats(units[hi] + 1, unit) == out[hi]
    bad = np.flatnonzero(clash.ravel())
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{what} {_EXACT.multiply(Decimal(int(units.ravel()[i])), unit)} (index {i}) has no "
                        f"float64 that converts back to it exactly; use dtype='decimal'",
                        detail=f"{len(bad)} such values in all")
    return out


def _floats_to_units(values, unit, what, where):
    """float64 values -> int64 units when each is the float nearest to an exact multiple of unit."""
    v = np.asarray(values, dtype=np.float64)
    q = np.rint(v / float(unit))
    ok = np.isfinite(q) & (q >= -(2.0**63)) & (q < 2.0**63)
    qi = np.where(ok, q, 0).astype(np.int64)
    bad = ~ok
    bad[ok] = _nearest_floats(qi[ok], unit) != v[ok]
    # unambiguous: a float that is also the nearest to a neighbouring multiple names no single one
    inner = ok & ~bad & (qi > INT64_MIN) & (qi < INT64_MAX)
    ambiguous = np.zeros_like(bad)
    ambiguous[inner] = ((_nearest_floats(qi[inner] - 1, unit) == v[inner])
                        | (_nearest_floats(qi[inner] + 1, unit) == v[inner]))
    bad |= ambiguous
    idx = np.flatnonzero(bad.ravel())
    if len(idx):
        i = int(idx[0])
        x = float(v.ravel()[i])
        why = "is not finite" if not np.isfinite(x) else (
            f"is too large for int64 in units of {unit}" if not ok.ravel()[i] else
            f"is the float64 of more than one multiple of {unit} (too large to be exact)"
            if ambiguous.ravel()[i] else f"is not a multiple of {unit}")
        raise DataError(f"{what} {x!r} (index {i}) {why}", file=where,
                        detail=f"{len(idx)} such values in all" if len(idx) > 1 else None)
    return qi


def _array_to_units(values, unit, what, where):
    a = np.asarray(values)
    if a.dtype.kind == "b":
        raise DataError(f"{what} array of booleans is not a decimal number")
    if a.dtype.kind == "f":
        return _floats_to_units(a, unit, what, where)
    if a.dtype.kind in "iu":
        a = _int64_units(a, what)
        try:
            return Instrument._scaled_to_units(a.ravel(), 1, unit, what, where, 0).reshape(a.shape)
        except DataError as exc:  # its "line" is the element index here
            raise DataError(f"{exc.reason} (index {exc.line})", file=where,
                            detail=exc.detail) from None
    if a.dtype.kind in "OUS":
        flat = a.ravel()
        out = np.empty(len(flat), dtype=np.int64)
        for i, x in enumerate(flat):
            if isinstance(x, bytes):
                x = x.decode("ascii", "replace")
            try:
                out[i] = Instrument._to_units(x, unit, what, where)
            except DataError as exc:
                raise DataError(f"{exc.reason} (index {i})", file=where, detail=exc.detail) from None
        return out.reshape(a.shape)
    raise DataError(f"{what} array of {a.dtype} is not decimal numbers")


_DECIMAL_RE = r"^-?[0-9]+(\.[0-9]+)?$"


def parse_decimal_strings(strings, where=None, line_offset=1):
    """Parse decimal strings exactly into (int64 array, scale) with value = int / scale.

    Vectorized in Arrow's C++ kernels: a regex check of the grammar
    (-?digits[.digits]), the scale is 10**(most fractional digits seen), and
    an exact string -> decimal128 cast whose unscaled integers are read in
    place. Every value must fit in int64 at that common scale (at most 18
    significant digits: whole digits, sign and leading zeros not counted, plus
    the scale's digits). Raises DataError naming the first offending entry
    (line = index + line_offset).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = strings if isinstance(strings, pa.Array) else pa.array(np.asarray(strings).astype(str), type=pa.string())
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64), 1
    ok = pc.fill_null(pc.match_substring_regex(arr, _DECIMAL_RE), False)
    if not pc.all(ok).as_py():
        i = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"not a decimal number: {arr[i].as_py()!r}", file=where, line=i + line_offset)
    length = pc.utf8_length(arr)
    dot = pc.find_substring(arr, ".")
    has_dot = pc.greater_equal(dot, 0)
    frac = pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)
    # significant whole digits: the sign and leading zeros do not count toward int64 range
    trimmed = pc.utf8_ltrim(arr, characters="-0")
    tdot = pc.find_substring(trimmed, ".")
    whole = pc.if_else(pc.greater_equal(tdot, 0), tdot, pc.utf8_length(trimmed))
    digits = int(pc.max(frac).as_py())
    if digits > 18:
        i = int(np.flatnonzero(pc.greater(frac, 18).to_numpy(zero_copy_only=False))[0])
        raise DataError(f"more than 18 fractional digits: {arr[i].as_py()!r}", file=where, line=i + line_offset)
    over = pc.greater(pc.add(whole, digits), 18)
    if pc.any(over).as_py():
        whole_np = whole.to_numpy(zero_copy_only=False)
        i = int(np.flatnonzero(over.to_numpy(zero_copy_only=False))[0])
        v, w = arr[i].as_py(), int(whole_np[i])
        if w + int(frac[i].as_py()) > 18:
            raise DataError(f"decimal value too large for int64: {v!r} has more than 18 significant digits",
                            file=where, line=i + line_offset)
        j = int(np.flatnonzero(frac.to_numpy(zero_copy_only=False) == digits)[0])
        raise DataError(
            f"decimal value {v!r} needs {w + digits} digits at scale 10^{digits} (more than int64's 18): "
            f"it cannot share one int64 scale with {arr[j].as_py()!r} ({digits} fractional digits) "
            f"in the same column",
            file=where, line=i + line_offset,
        )
    dec = arr.cast(pa.decimal128(38, digits))
    # decimal128 stores the unscaled value as a little-endian 128-bit integer;
    # it fits in int64 (at most 18 digits), so the low word is the value.
    words = np.frombuffer(dec.buffers()[1], dtype=np.int64)[2 * dec.offset : 2 * (dec.offset + len(dec))]
    return words[0::2].copy(), 10**digits


def _finest_unit(values, scale):
    """Largest 10**k / scale (k <= digits) dividing every value: the resolution the data uses."""
    digits = len(str(scale)) - 1
    k = 0
    nz = values[values != 0]
    while k < digits and not np.any(nz % (10 ** (k + 1))):
        k += 1
    return Decimal(10**k) / Decimal(scale)


def rescale(parts):
    """[(scaled, scale), ...] (parse_decimal_strings results) -> (one int64 array at the finest scale, scale)."""
    scale = max([s for _, s in parts] + [1])
    out = [v * (scale // s) for v, s in parts]
    return (np.concatenate(out) if out else np.zeros(0, np.int64)), scale


def infer_instrument(symbol, tick_size, lot_size, prices, sizes, info=None):
    """Instrument with the given tick / lot sizes, or (None) the finest decimal resolution the data uses.

    prices / sizes: lists of (scaled, scale) as parse_decimal_strings returns.
    The result is a power of ten, which can be coarser than the venue's true
    tick if the data never uses the finer digits. If `info` (a dict, e.g. a
    report's info) is given, the sizes, which were inferred and the decimals
    seen on the wire are written to it.
    """
    px, qty = rescale(prices), rescale(sizes)
    inferred = []
    if tick_size is None:
        tick_size = _finest_unit(*px)
        inferred.append("tick_size")
    if lot_size is None:
        lot_size = _finest_unit(*qty)
        inferred.append("lot_size")
    inst = Instrument(symbol or "", Decimal(str(tick_size)), Decimal(str(lot_size)))
    if info is not None:
        info["tick_size"] = plain(inst.tick_size)
        info["lot_size"] = plain(inst.lot_size)
        info["inferred"] = inferred
        info["price_decimals_on_wire"] = len(str(px[1])) - 1
        info["size_decimals_on_wire"] = len(str(qty[1])) - 1
    return inst
